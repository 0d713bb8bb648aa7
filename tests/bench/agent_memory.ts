// What holds the agent's memory. Part 1, at rest: fresh runtime processes that load, in turn, nothing (the
// runtime's baseline), prom-client, @kubernetes/client-node, and the agent's bundled code from dist/, each
// reporting its resident set (anonymous and file-backed) and V8 heap after a full GC. Part 2, under load: one
// real agent per V8 flag set serves an ADD burst and a DEL burst of the `spiderpool` plugin (a real control
// plane behind it); its peak RSS (VmHWM), anonymous and file-backed RSS, and its CPU per call are printed
// next to the default's, so a flag's memory gain is weighed against its CPU cost in the same run.
//
// Usage: deno run -A tests/bench/agent_memory.ts [--pods 150] [--concurrency 16]   (after scripts/build.sh)

import { parseArgs } from "node:util";
import { podCniArgs, type PodRef } from "../e2e/cni.ts";
import { e2e } from "../e2e/env.ts";

const { values } = parseArgs({
  options: {
    pods: { type: "string", default: "150" },
    concurrency: { type: "string", default: "16" },
  },
  strict: true,
});
const PODS = Number(values.pods);
const CONCURRENCY = Number(values.concurrency);
const ROOT = new URL("../../", import.meta.url).pathname;
const DIST = `${ROOT}dist`;

/**
 * V8 flag sets tried on the agent under load, as DENO_V8_FLAGS (comma-separated); undefined leaves the variable
 * unset, so the launcher applies the build's flags (scripts/build.sh). `--no-lite-mode` changes nothing: V8's
 * defaults (an empty DENO_V8_FLAGS is refused by the runtime).
 */
const FLAG_SETS: [string, string | undefined][] = [
  ["V8 defaults", "--no-lite-mode"],
  ["the build's flags (scripts/build.sh)", undefined],
  ["semi-space ≤ 2 MiB", "--max-semi-space-size=2"],
  ["lite mode", "--lite-mode"],
  ["single-threaded", "--single-threaded"],
  ["lite mode + semi-space ≤ 1 MiB", "--lite-mode,--max-semi-space-size=1"],
  ["Sparkplug only + semi-space ≤ 2 MiB", "--no-maglev,--no-turbofan,--max-semi-space-size=2"],
];

interface Memory {
  rssMiB: number;
  anonMiB: number;
  fileMiB: number;
  peakMiB: number;
}

async function memoryOf(pid: number | "self"): Promise<Memory> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const mib = (key: string) =>
    Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN) / 1024;
  return { rssMiB: mib("VmRSS"), anonMiB: mib("RssAnon"), fileMiB: mib("RssFile"), peakMiB: mib("VmHWM") };
}

const fmt = (n: number, d = 1) => Number.isFinite(n) ? n.toFixed(d) : "-";

/** Part 1: a fresh process per step; each loads `imports` and reports its memory after a full GC. */
async function atRest(): Promise<void> {
  const agentChunk = [...Deno.readDirSync(`${DIST}/lib`)].find((e) => /^agent-.*\.js$/.test(e.name))?.name;
  // The libraries as the agent carries them: bundled, only the names src/ imports from them.
  const tmp = await Deno.makeTempDir({ prefix: "spiderpool-bench-mem-" });
  const bundled = async (name: string, source: string) => {
    await Deno.writeTextFile(`${tmp}/${name}-entry.ts`, source);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "deno", "-o", `${tmp}/${name}.js`, `${tmp}/${name}-entry.ts`],
      cwd: ROOT,
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`bundling ${name}: ${new TextDecoder().decode(out.stderr)}`);
    return `${tmp}/${name}.js`;
  };
  const kubeUse = 'export { KubeConfig, loadYaml, Watch } from "@kubernetes/client-node";\n';
  const promUse = 'export { Counter, Gauge, Histogram, Registry } from "prom-client";\n';
  const steps: [string, string[]][] = [
    ["runtime baseline (empty program)", []],
    ["prom-client", ["prom-client"]],
    ["@kubernetes/client-node", ["@kubernetes/client-node"]],
    ["client-node + prom-client + js-yaml", ["@kubernetes/client-node", "prom-client", "js-yaml"]],
    ["what the agent uses of prom-client, bundled", [await bundled("prom", promUse)]],
    ["what the agent uses of client-node, bundled", [await bundled("kube", kubeUse)]],
    ...(agentChunk
      ? [["the agent's bundled code (dist, not started)", [`${DIST}/lib/${agentChunk}`]]] as [
        string,
        string[],
      ][]
      : []),
  ];
  console.log("at rest: one fresh process per row, after a full GC");
  console.log(
    `${"loaded".padEnd(46)}${"RSS MiB".padStart(9)}${"anon".padStart(7)}${"file".padStart(7)}` +
      `${"heap used".padStart(11)}${"heap total".padStart(12)}${"external".padStart(10)}`,
  );
  let base: number | undefined;
  for (const [name, imports] of steps) {
    const program = [
      ...imports.map((m) => `await import(${JSON.stringify(m.startsWith("/") ? `file://${m}` : m)});`),
      "globalThis.gc(); globalThis.gc();",
      "const status = Deno.readTextFileSync('/proc/self/status');",
      "const kib = (k) => Number(status.match(new RegExp(`^${k}:\\\\s+(\\\\d+) kB`, 'm'))[1]);",
      "console.log(JSON.stringify({ ...Deno.memoryUsage(), anon: kib('RssAnon'), file: kib('RssFile') }));",
    ].join("\n");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--v8-flags=--expose-gc", program],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
    if (!out.success) throw new Error(`${name}: ${new TextDecoder().decode(out.stderr)}`);
    const m = JSON.parse(text);
    const rss = m.rss / 2 ** 20;
    base ??= rss;
    console.log(
      `${name.padEnd(46)}${fmt(rss).padStart(9)}${fmt(m.anon / 1024).padStart(7)}${
        fmt(m.file / 1024).padStart(7)
      }` +
        `${fmt(m.heapUsed / 2 ** 20).padStart(11)}${fmt(m.heapTotal / 2 ** 20).padStart(12)}` +
        `${fmt(m.external / 2 ** 20).padStart(10)}   +${fmt(rss - base)}`,
    );
  }
  if (agentChunk) {
    console.log(`the agent's bundled code by origin: ${chunkOrigins(`${DIST}/lib/${agentChunk}`)}`);
  }
}

/** Source bytes of a bundled chunk by the package (or src/ folder) each module came from, largest first. */
function chunkOrigins(path: string): string {
  const bytes = new Map<string, number>();
  let origin = "(bundler runtime)";
  for (const line of Deno.readTextFileSync(path).split("\n")) {
    const m = line.match(/^\/\/ (?:node_modules\/\.deno\/([^/]+)\/|(src\/[^/]+)\/)/);
    if (m) origin = (m[1] ?? m[2]).replace(/^@([^+]+)\+/, "@$1/").replace(/@[\d.]+[^@]*$/, "");
    bytes.set(origin, (bytes.get(origin) ?? 0) + line.length + 1);
  }
  const total = [...bytes.values()].reduce((a, b) => a + b, 0);
  return `${(total / 2 ** 20).toFixed(1)} MiB: ` + [...bytes].sort((a, b) => b[1] - a[1]).slice(0, 8)
    .map(([o, n]) => `${o} ${(100 * n / total).toFixed(0)}%`).join(", ");
}

/** Runs `fn` over `items`, `limit` at a time. */
async function pooled<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Part 2: one agent per flag set, an ADD and a DEL burst, then its memory and CPU. */
async function underLoad(): Promise<void> {
  console.log(
    `\nunder load: one agent per row, ${PODS} pods ADD then DEL through dist/cni/spiderpool, ` +
      `${CONCURRENCY} at a time`,
  );
  console.log(
    `${"agent V8 flags".padEnd(40)}${"peak MiB".padStart(10)}${"RSS".padStart(7)}${"anon".padStart(7)}` +
      `${"file".padStart(7)}${"CPU/call ms".padStart(13)}${"ADD/s".padStart(8)}${"failed".padStart(8)}`,
  );
  for (const [name, flags] of FLAG_SETS) {
    // The agent inherits DENO_V8_FLAGS from this process; it is unset again before any plugin call.
    if (flags !== undefined) Deno.env.set("DENO_V8_FLAGS", flags);
    else Deno.env.delete("DENO_V8_FLAGS");
    await using env = await e2e("bench-agent-mem");
    const [node] = await env.startNodes(1);
    Deno.env.delete("DENO_V8_FLAGS");
    const pool = await env.pool("p", { subnet: "198.18.0.0/20", ips: ["198.18.0.10-198.18.15.254"] });
    const annotations = { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [pool] }) };
    const pods: PodRef[] = [];
    await pooled(Array.from({ length: PODS }, (_, i) => i), 8, async (i) => {
      pods.push(await env.createPod(`p-${i}`, node, { annotations }));
    });
    const conf = JSON.stringify({
      cniVersion: "1.0.0",
      name: "bench-agent-mem",
      type: "bridge",
      ipam: {
        type: "spiderpool",
        ipam_unix_socket_path: node.agent.socketPath,
        log_file_path: `${env.dir}/p.log`,
      },
    });
    let failed = 0;
    const call = async (command: string, pod: PodRef) => {
      const cid = `c${pod.uid.slice(0, 8)}`;
      const child = new Deno.Command(`${DIST}/cni/spiderpool`, {
        env: {
          CNI_COMMAND: command,
          CNI_CONTAINERID: cid,
          CNI_NETNS: "/var/run/netns/bench",
          CNI_IFNAME: "eth0",
          CNI_PATH: "/usr/lib/cni",
          CNI_ARGS: podCniArgs(pod, cid),
        },
        stdin: "piped",
        stdout: "null",
        stderr: "null",
      }).spawn();
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(conf));
      await w.close();
      if (!(await child.status).success) failed++;
    };
    const cpu0 = await cpuSeconds(node.agent.pid);
    const started = performance.now();
    await pooled(pods, CONCURRENCY, (p) => call("ADD", p));
    const addPerSec = PODS / ((performance.now() - started) / 1000);
    await pooled(pods, CONCURRENCY, (p) => call("DEL", p));
    const cpuPerCall = ((await cpuSeconds(node.agent.pid)) - cpu0) * 1000 / (2 * PODS);
    const m = await memoryOf(node.agent.pid);
    console.log(
      `${name.padEnd(40)}${fmt(m.peakMiB, 0).padStart(10)}${fmt(m.rssMiB, 0).padStart(7)}` +
        `${fmt(m.anonMiB, 0).padStart(7)}${fmt(m.fileMiB, 0).padStart(7)}${fmt(cpuPerCall).padStart(13)}` +
        `${fmt(addPerSec).padStart(8)}${String(failed).padStart(8)}`,
    );
  }
}

if (import.meta.main) {
  try {
    await atRest();
    await underLoad();
  } catch (err) {
    console.error(`bench agent memory: ${(err as Error).stack ?? err}`);
    Deno.exitCode = 1;
  }
  Deno.exit();
}
