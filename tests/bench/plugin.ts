// CPU of one CNI plugin call: `dist/cni/spiderpool` answering ADD and DEL through a real agent (a real control
// plane behind it), next to a trivial Deno script run by the same runtime and Debian's Go `host-local` plugin,
// measured interleaved in the same run. A plugin is a new process per pod and per call, so on a busy node its
// CPU (user + system of the whole process tree, launcher included) is what every pod pays twice.
//
// It also splits our figure into its parts, each the difference of two measured processes: the runtime's own
// start (the trivial script), the launcher (the trivial script behind a copy of dist's launcher), loading and
// dispatch (VERSION), and the call itself (ADD or DEL minus VERSION: our code, the socket round trips, and the
// runtime modules the call makes the runtime load lazily, which it lists).
//
// Usage: deno run -A tests/bench/plugin.ts [--rounds 30] [--compare DIR ...]   (after scripts/build.sh)
// --compare adds another build (a directory holding cni/spiderpool, e.g. a copy of dist/ with a change) to the
// same interleaved rounds, so a change's gain is measured against this build under the same machine noise.
// Uses the control plane of $SPIDERPOOL_TEST_KUBECONFIG when set, else starts one (tests/kube/harness.ts).

import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { CACHE_DIR, foldCacheLogs, warmCache } from "../../src/cmd/install.ts";
import { podCniArgs, type PodRef } from "../e2e/cni.ts";
import { e2e } from "../e2e/env.ts";
import { childrenCpu } from "./rusage.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "30" },
    compare: { type: "string", multiple: true, default: [] },
  },
  strict: true,
});
const ROUNDS = Number(values.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 3) {
  throw new Error(`--rounds must be a whole number ≥ 3, got ${values.rounds}`);
}

const ROOT = new URL("../../", import.meta.url).pathname;
const DIST = `${ROOT}dist`;
const HOST_LOCAL = "/usr/lib/cni/host-local";
const VERSION_ANSWER = `{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}`;

interface Target {
  name: string;
  exe: string;
  args?: string[];
  env?: Record<string, string>;
  /** The network configuration for ADD/DEL (stdin). */
  conf?: unknown;
}

interface Sample {
  cpuMs: number;
  wallMs: number;
}

/** Runs one process to its end; returns the CPU of its whole tree and its wall time. */
async function once(t: Target, env: Record<string, string>, stdin: string): Promise<Sample> {
  const before = childrenCpu().total;
  const started = performance.now();
  const child = new Deno.Command(t.exe, {
    args: t.args ?? [],
    env: { ...t.env, ...env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin)).catch(() => {});
  await writer.close().catch(() => {});
  const out = await child.output();
  const wallMs = performance.now() - started;
  const cpuMs = childrenCpu().total - before;
  if (!out.success) {
    const dec = new TextDecoder();
    throw new Error(
      `${t.name} ${env.CNI_COMMAND} failed: ${dec.decode(out.stdout)}${dec.decode(out.stderr)}`,
    );
  }
  return { cpuMs, wallMs };
}

function cniEnv(command: string, pod: PodRef, containerId: string): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: "/var/run/netns/bench-plugin",
    CNI_IFNAME: "eth0",
    CNI_PATH: "/usr/lib/cni",
    CNI_ARGS: podCniArgs(pod, containerId),
  };
}

const median = (xs: number[]) => quantile(xs, 0.5);
function quantile(xs: number[], q: number): number {
  const s = xs.toSorted((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** A copy of dist (launcher, runtime link, program) in `dir`, with `program` as lib/main.js and an empty cache. */
async function distCopy(dir: string, program?: string): Promise<string> {
  await Deno.mkdir(`${dir}/lib`, { recursive: true });
  await Deno.mkdir(`${dir}/cni`);
  await Deno.copyFile(`${DIST}/spiderpool`, `${dir}/spiderpool`);
  await Deno.chmod(`${dir}/spiderpool`, 0o755);
  await Deno.symlink(await Deno.realPath(`${DIST}/lib/deno`), `${dir}/lib/deno`);
  if (program !== undefined) {
    await Deno.writeTextFile(`${dir}/lib/main.js`, program);
  } else {
    for await (const e of Deno.readDir(`${DIST}/lib`)) {
      if (e.name.endsWith(".js")) await Deno.copyFile(`${DIST}/lib/${e.name}`, `${dir}/lib/${e.name}`);
    }
    // The plugins' own programs (scripts/build.sh), which the launcher runs for CNI calls.
    await Deno.mkdir(`${dir}/lib/cni`);
    for await (const e of Deno.readDir(`${DIST}/lib/cni`)) {
      await Deno.copyFile(`${DIST}/lib/cni/${e.name}`, `${dir}/lib/cni/${e.name}`);
    }
  }
  await Deno.symlink("../spiderpool", `${dir}/cni/spiderpool`);
  return `${dir}/cni/spiderpool`;
}

/** The runtime's modules (not ours) whose code a process run with `cache` as DENO_DIR compiled and cached. */
function lazyRuntimeModules(cache: string): string[] {
  return cachedModules(cache).filter((s) => !s.startsWith("file:")).sort();
}

/** Every module (ours and the runtime's) whose code the code cache in `cache` holds. */
function cachedModules(cache: string): string[] {
  const db = new DatabaseSync(`${cache}/v8_code_cache_v2`, { readOnly: true });
  try {
    return (db.prepare("SELECT specifier FROM codecache").all() as { specifier: string }[]).map((r) =>
      r.specifier
    );
  } finally {
    db.close();
  }
}

/** `ext:deno_node/internal/errors.ts` and 20 more → "deno_node (21)". */
function summariseModules(specs: string[]): string {
  const groups = new Map<string, number>();
  for (const s of specs) {
    const group = s.startsWith("ext:") ? s.slice(4, s.indexOf("/")) : s.startsWith("node:") ? "node:*" : s;
    groups.set(group, (groups.get(group) ?? 0) + 1);
  }
  return [...groups].map(([g, n]) => `${g} (${n})`).join(", ") || "none";
}

async function main(): Promise<void> {
  if (!(await Deno.stat(`${DIST}/lib/main.js`).catch(() => null))) {
    throw new Error(
      "this benchmark measures the bundle build (dist/lib/main.js); run scripts/build.sh first",
    );
  }
  await using env = await e2e("bench-plugin");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("p", { subnet: "198.18.0.0/20", ips: ["198.18.0.10-198.18.15.254"] });
  const annotations = { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [pool] }) };
  const pods: PodRef[] = [];
  for (let i = 0; i < ROUNDS + 1; i++) pods.push(await env.createPod(`p-${i}`, node, { annotations }));

  // The references: a trivial script with its own folded cache, and the same behind dist's launcher.
  const tmp = `${env.dir}/bench`;
  await Deno.mkdir(tmp);
  const trivial = `${tmp}/trivial.js`;
  await Deno.writeTextFile(trivial, `console.log(${JSON.stringify(VERSION_ANSWER)});\n`);
  const runtime = await Deno.realPath(`${DIST}/lib/deno`);
  const trivialCache = `${tmp}/trivial-cache`;
  const launcherTrivial = await distCopy(
    `${tmp}/launcher-trivial`,
    `console.log(${JSON.stringify(VERSION_ANSWER)});\n`,
  );

  const spiderpoolConf = {
    cniVersion: "1.0.0",
    name: "bench-plugin",
    type: "bridge",
    ipam: {
      type: "spiderpool",
      ipam_unix_socket_path: node.agent.socketPath,
      log_file_path: `${tmp}/plugin.log`,
    },
  };
  const hostLocalConf = {
    cniVersion: "1.0.0",
    name: "bench-plugin-hl",
    type: "bridge",
    ipam: { type: "host-local", ranges: [[{ subnet: "198.19.0.0/16" }]], dataDir: `${tmp}/host-local` },
  };
  const ours: Target = {
    name: "spiderpool (dist/cni/spiderpool)",
    exe: `${DIST}/cni/spiderpool`,
    conf: spiderpoolConf,
  };
  const others: Target[] = values.compare.map((dir) => ({
    name: dir.length > 34 ? `…${dir.slice(-33)}` : dir,
    exe: `${dir}/cni/spiderpool`,
    conf: spiderpoolConf,
  }));
  const targets: Target[] = [
    ours,
    {
      name: "trivial Deno script",
      exe: runtime,
      args: ["run", "-A", "--no-config", "--no-lock", trivial],
      env: { DENO_DIR: trivialCache, DENO_NO_UPDATE_CHECK: "1" },
    },
    { name: "Debian host-local (Go)", exe: HOST_LOCAL, conf: hostLocalConf },
    ...others,
  ];
  const launcherTarget: Target = { name: "trivial script behind dist's launcher", exe: launcherTrivial };

  const run = (t: Target, command: string, i: number) =>
    once(t, cniEnv(command, pods[i], `bench${i}`), t.conf === undefined ? "" : JSON.stringify(t.conf));

  // Warm every cache (page cache, the trivial script's and the copies' runtime caches), then fold their logs.
  for (const t of [...targets, launcherTarget]) {
    for (const c of ["VERSION", "ADD", "DEL"]) await run(t, c, ROUNDS);
  }
  await foldCacheLogs(trivialCache);
  await foldCacheLogs(`${tmp}/launcher-trivial/${CACHE_DIR}`);

  const samples = new Map<string, Sample[]>();
  const add = (key: string, s: Sample) => samples.set(key, [...samples.get(key) ?? [], s]);
  for (let i = 0; i < ROUNDS; i++) { // interleaved, so that machine noise hits every target alike
    for (const t of targets) add(`${t.name} VERSION`, await run(t, "VERSION", i));
    add(`${launcherTarget.name} VERSION`, await run(launcherTarget, "VERSION", i));
    for (const t of targets) add(`${t.name} ADD`, await run(t, "ADD", i));
    for (const t of targets) add(`${t.name} DEL`, await run(t, "DEL", i));
  }
  const cpu = (key: string) => median(samples.get(key)!.map((s) => s.cpuMs));
  const cpu90 = (key: string) => quantile(samples.get(key)!.map((s) => s.cpuMs), 0.9);
  const wall = (key: string) => median(samples.get(key)!.map((s) => s.wallMs));

  console.log(
    `CPU per CNI call (user+system of the whole process tree), median of ${ROUNDS} interleaved rounds`,
  );
  console.log(
    `${"".padEnd(36)}${"command".padEnd(9)}${"CPU ms".padStart(8)}${"p90".padStart(8)}${
      "wall ms".padStart(9)
    }` +
      `${"vs trivial".padStart(12)}${"vs host-local".padStart(15)}`,
  );
  const trivialName = targets[1].name;
  const hlName = targets[2].name;
  for (const command of ["ADD", "DEL", "VERSION"]) {
    for (const t of targets) {
      const k = `${t.name} ${command}`;
      console.log(
        `${t.name.padEnd(36)}${command.padEnd(9)}${cpu(k).toFixed(1).padStart(8)}${
          cpu90(k).toFixed(1).padStart(8)
        }` +
          `${wall(k).toFixed(1).padStart(9)}${
            (cpu(k) / cpu(`${trivialName} ${command}`)).toFixed(2).padStart(11)
          }x` +
          `${(cpu(k) / cpu(`${hlName} ${command}`)).toFixed(1).padStart(14)}x`,
      );
    }
  }
  const triv = cpu(`${trivialName} VERSION`);
  const launcher = cpu(`${launcherTarget.name} VERSION`) - triv;
  const loading = cpu(`${ours.name} VERSION`) - cpu(`${launcherTarget.name} VERSION`);
  const part = (v: number) => `${v.toFixed(1)} ms`;
  console.log();
  console.log("where our CPU goes (differences of medians; noise of ± 1 ms on a busy machine):");
  console.log(`  runtime start (trivial script)          ${part(triv)}`);
  console.log(`  launcher                                ${part(launcher)}`);
  console.log(`  loading our modules and dispatch        ${part(loading)}`);
  for (const c of ["ADD", "DEL"]) {
    console.log(
      `  the ${c} call itself (${c} - VERSION)       ${
        part(cpu(`${ours.name} ${c}`) - cpu(`${ours.name} VERSION`))
      }`,
    );
  }

  // Which runtime modules a call makes the runtime load lazily: a copy of dist with an empty cache, one ADD and
  // one DEL, then its code cache lists what was compiled beyond our own files.
  const probe = await distCopy(`${tmp}/probe`);
  const probeCache = `${tmp}/probe/${CACHE_DIR}/cni`;
  await once({ ...ours, exe: probe }, cniEnv("VERSION", pods[0], "probe"), "");
  const atVersion = lazyRuntimeModules(probeCache);
  await once({ ...ours, exe: probe }, cniEnv("ADD", pods[0], "probe"), JSON.stringify(spiderpoolConf));
  await once({ ...ours, exe: probe }, cniEnv("DEL", pods[0], "probe"), JSON.stringify(spiderpoolConf));
  const lazy = lazyRuntimeModules(probeCache).filter((m) => !atVersion.includes(m));
  console.log(`  runtime modules ADD/DEL load lazily: ${summariseModules(lazy)}`);
  if (lazy.length > 0) console.log(`    ${lazy.join(" ")}`);

  // What `spiderpool install` (and the build) warm must cover a real call: a warmed copy compiles nothing new.
  const warmed = await distCopy(`${tmp}/warmed`);
  for (const w of await warmCache(`${tmp}/warmed`)) console.log(`  warning: ${w}`);
  const warmedCache = `${tmp}/warmed/${CACHE_DIR}/cni`;
  const cachedBefore = cachedModules(warmedCache);
  await once({ ...ours, exe: warmed }, cniEnv("ADD", pods[0], "warmed"), JSON.stringify(spiderpoolConf));
  await once({ ...ours, exe: warmed }, cniEnv("DEL", pods[0], "warmed"), JSON.stringify(spiderpoolConf));
  const missed = cachedModules(warmedCache).filter((m) => !cachedBefore.includes(m));
  console.log(
    `  modules a call compiled that the install's cache warm-up missed: ${missed.length} ${missed.join(" ")}`,
  );
  const goal = Math.max(
    cpu(`${ours.name} ADD`) / cpu(`${trivialName} ADD`),
    cpu(`${ours.name} DEL`) / cpu(`${trivialName} DEL`),
  );
  console.log();
  console.log(`plugin / trivial Deno script, worst of ADD and DEL: ${goal.toFixed(2)}x (goal ≤ 1.20x)`);
}

if (import.meta.main) {
  try {
    await main();
  } catch (err) {
    console.error(`bench plugin: ${(err as Error).stack ?? err}`);
    Deno.exitCode = 1;
  }
  Deno.exit();
}
