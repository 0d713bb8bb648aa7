// What IP-conflict and gateway detection costs the `spiderpool` IPAM plugin per ADD: CPU (user + system of the
// plugin process) and wall time with detection off and on, in the same run, against the same kind of agent on
// the real control plane. Dual-stack pods, each ADD in a pod namespace whose eth0 is on the node's bridge, a
// gateway namespace answering on that bridge (so "on" passes: 2 conflict checks, then 2 gateway checks). The
// plugin is called directly (as a main plugin calls it), so the figures are the IPAM plugin's alone; the
// plugin answering VERSION is the start-up reference. With `--reference DIR`, a second build's plugin (e.g.
// one without detection) runs the "off" ADDs too.
//
// Usage: deno run -A tests/bench/detect.ts [--pods 30] [--reference /path/to/other/dist]   (after build.sh)

import { parseArgs } from "node:util";
import { type E2E, e2e } from "../e2e/env.ts";
import { DIST_CNI, execCni, type PodRef } from "../e2e/cni.ts";
import { addNetns, delNetns, ip, netnsPath, shortId } from "../e2e/netns.ts";
import { type SimNode, startSimNode } from "../e2e/node_sim.ts";

const { values } = parseArgs({
  options: { pods: { type: "string", default: "30" }, reference: { type: "string" } },
  strict: true,
});
const PODS = Number(values.pods);
if (!Number.isInteger(PODS) || PODS < 1 || PODS > 100) {
  throw new Error(`--pods must be 1..100, got ${values.pods}`);
}

const libc = Deno.dlopen("libc.so.6", { getrusage: { parameters: ["i32", "buffer"], result: "i32" } });
const RUSAGE_CHILDREN = -1;

/** CPU seconds (user + system) of the children this process has waited for. */
function childrenCpu(): number {
  const ru = new BigInt64Array(18);
  if (libc.symbols.getrusage(RUSAGE_CHILDREN, new Uint8Array(ru.buffer)) !== 0) throw new Error("getrusage");
  const [us, uus, ss, sus] = [ru[0], ru[1], ru[2], ru[3]].map(Number);
  return us + uus / 1e6 + ss + sus / 1e6;
}

const median = (xs: number[]) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / (xs.length || 1);

interface Mode {
  name: string;
  node: SimNode;
  plugin: string;
  pods: { pod: PodRef; ns: string }[];
  cpuMs: number[];
  wallMs: number[];
}

async function nodeWith(env: E2E, suffix: string, configYaml: string): Promise<SimNode> {
  const node = await startSimNode({
    http: env.http,
    kubeconfig: env.scope.cluster.kubeconfigPath,
    name: `${env.namespace}-${suffix}`,
    dir: env.dir,
    configYaml,
  });
  env.nodes.push(node);
  await ip("-n", node.netns, "link", "add", node.bridge, "type", "bridge");
  await ip("-n", node.netns, "link", "set", node.bridge, "up");
  return node;
}

/** A namespace with `eth0` on `node`'s bridge (and these addresses); returns its name. */
async function attach(node: SimNode, names: string[], addrs: string[] = []): Promise<string> {
  const ns = `bd-${shortId(8)}`;
  await addNetns(ns);
  names.push(ns);
  const port = `bd${shortId(8)}`;
  await ip("-n", node.netns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns);
  await ip("-n", node.netns, "link", "set", port, "master", node.bridge, "up");
  for (const a of addrs) {
    await ip("-n", ns, "addr", "add", a, "dev", "eth0", ...(a.includes(":") ? ["nodad"] : []));
  }
  await ip("-n", ns, "link", "set", "eth0", "up");
  return ns;
}

async function main(): Promise<void> {
  console.error("bench detect: starting the control plane and two simulated nodes ...");
  await using env = await e2e("bench-detect");
  const namespaces: string[] = [];
  try {
    const on = await nodeWith(env, "on", "enableIPConflictDetection: true\nenableGatewayDetection: true\n");
    const off = await nodeWith(env, "off", "");
    const modes: Mode[] = [];
    const reference = values.reference ? `${values.reference.replace(/\/$/, "")}/cni/spiderpool` : undefined;
    let block = 0;
    for (
      const [name, node, plugin] of [
        ["detection off", off, `${DIST_CNI}/spiderpool`],
        ["detection on", on, `${DIST_CNI}/spiderpool`],
        ...(reference ? [["reference build, off", off, reference] as const] : []),
      ] as const
    ) {
      const b = 20 + block++;
      await attach(node, namespaces, [`198.18.${b}.1/24`, `2001:db8:${b}::1/64`]);
      const v4 = await env.pool(`v4-${b}`, {
        subnet: `198.18.${b}.0/24`,
        ips: [`198.18.${b}.10-198.18.${b}.200`],
        gateway: `198.18.${b}.1`,
      });
      const v6 = await env.pool(`v6-${b}`, {
        subnet: `2001:db8:${b}::/64`,
        ips: [`2001:db8:${b}::10-2001:db8:${b}::ff`],
        gateway: `2001:db8:${b}::1`,
      });
      const annotations = { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [v4], ipv6: [v6] }) };
      const pods = [];
      for (let i = 0; i < PODS + 1; i++) {
        const pod = await env.createPod(`p${b}-${i}`, node, { annotations });
        pods.push({ pod, ns: await attach(node, namespaces) });
      }
      modes.push({ name, node, plugin, pods, cpuMs: [], wallMs: [] });
    }

    console.error(`bench detect: ${modes.length} modes × ${PODS} pods set up; measuring ...`);
    const add = async (m: Mode, i: number) => {
      const { pod, ns } = m.pods[i];
      const c0 = childrenCpu();
      const run = await execCni({
        command: "ADD",
        conf: env.conf(m.node),
        containerId: `bd${shortId(20)}`,
        netns: netnsPath(ns),
        pod,
        plugin: m.plugin,
      });
      const cpu = childrenCpu() - c0;
      if (run.code !== 0) throw new Error(`${m.name}: ADD of ${pod.name} failed: ${run.stdout}${run.stderr}`);
      return { cpuMs: cpu * 1000, wallMs: run.ms };
    };
    // One warm-up ADD per mode (page cache, V8 code cache), then the modes interleaved so that machine noise
    // hits them alike.
    for (const m of modes) await add(m, PODS);
    for (let i = 0; i < PODS; i++) {
      for (const m of modes) {
        const r = await add(m, i);
        m.cpuMs.push(r.cpuMs);
        m.wallMs.push(r.wallMs);
      }
    }
    const versionCpu: number[] = [];
    for (let i = 0; i < PODS; i++) {
      const c0 = childrenCpu();
      await new Deno.Command(`${DIST_CNI}/spiderpool`, { env: { CNI_COMMAND: "VERSION" }, stdout: "null" })
        .output();
      versionCpu.push((childrenCpu() - c0) * 1000);
    }

    console.log(
      `spiderpool IPAM plugin, dual-stack ADD called directly, ${PODS} pods per mode (interleaved)`,
    );
    console.log(
      `${"mode".padEnd(26)}${"CPU mean ms".padStart(13)}${"CPU median".padStart(12)}${
        "wall median".padStart(13)
      }${"wall p90".padStart(10)}`,
    );
    const p90 = (xs: number[]) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length * 0.9)];
    for (const m of modes) {
      console.log(
        `${m.name.padEnd(26)}${mean(m.cpuMs).toFixed(1).padStart(13)}${
          median(m.cpuMs).toFixed(1).padStart(12)
        }${median(m.wallMs).toFixed(1).padStart(13)}${p90(m.wallMs).toFixed(1).padStart(10)}`,
      );
    }
    console.log(
      `${"VERSION (start-up only)".padEnd(26)}${mean(versionCpu).toFixed(1).padStart(13)}${
        median(versionCpu).toFixed(1).padStart(12)
      }`,
    );
    const [offM, onM] = modes;
    console.log(
      `detection on / off: CPU ${(mean(onM.cpuMs) / mean(offM.cpuMs)).toFixed(2)}x ` +
        `(+${(mean(onM.cpuMs) - mean(offM.cpuMs)).toFixed(1)} ms), wall +${
          (median(onM.wallMs) - median(offM.wallMs)).toFixed(0)
        } ms (the 100 ms conflict window)`,
    );
    if (modes[2]) {
      console.log(
        `this build off / reference off: CPU ${(mean(offM.cpuMs) / mean(modes[2].cpuMs)).toFixed(2)}x (+${
          (mean(offM.cpuMs) - mean(modes[2].cpuMs)).toFixed(1)
        } ms; without detection nothing is loaded or sent)`,
      );
    }
  } finally {
    for (const ns of namespaces.reverse()) await delNetns(ns);
  }
}

// The control plane this process started (tests/kube/harness.ts) keeps it alive: exit once done.
try {
  await main();
} catch (err) {
  console.error(`bench detect: ${(err as Error).stack ?? err}`);
  Deno.exitCode = 1;
}
Deno.exit();
