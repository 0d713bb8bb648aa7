// Coordinator benchmark: the same plans applied through netlink (libnl over FFI) and through iproute2 commands,
// in one run, on real namespaces. Prints (1) what loading libnl adds to a process, (2) per-operation latency of
// each backend and their ratio, per-pod ADD and DEL wall time and CPU, (3) the coordinator plugin process per
// pod with each backend, and (4) the ADD latency of the whole bridge → spiderpool chain with and without the
// coordinator, against a real agent and control plane.
//
// Usage: deno run -A tests/bench/coordinator.ts [--pods 30] [--chain-pods 20] [--runs 30] [--sections 1,2,3,4]
// (after scripts/build.sh; section 4 starts a control plane unless $SPIDERPOOL_TEST_KUBECONFIG names one)

import process from "node:process";
import { parseArgs } from "node:util";
import { observeHost, observePod } from "../../src/coordinator/observe.ts";
import { mergeSettings } from "../../src/coordinator/config.ts";
import { planAdd, randomMac } from "../../src/coordinator/plan.ts";
import { applyOne, applyPlan, inverse, type NetNs, type Op, openNs, undoAll } from "../../src/net/mod.ts";
import { execCni, spiderpoolBridgeConf } from "../e2e/cni.ts";
import { addNetns, delNetns, ip, netnsPath, shortId } from "../e2e/netns.ts";
import { COORDINATOR, coordinatorConf } from "../coordinator/harness.ts";

const { values } = parseArgs({
  options: {
    pods: { type: "string", default: "30" },
    "chain-pods": { type: "string", default: "20" },
    "no-chain": { type: "boolean", default: false },
    runs: { type: "string", default: "30" },
    sections: { type: "string", default: "1,2,3,4" },
  },
  strict: true,
});
const PODS = Number(values.pods);
const CHAIN_PODS = Number(values["chain-pods"]);
const RUNS = Number(values.runs);
const ROOT = new URL("../../", import.meta.url).pathname;
const SETTINGS = mergeSettings({
  cniVersion: "1.0.0",
  name: "bench",
  type: "coordinator",
  overlayPodCIDR: ["198.18.128.0/24"],
  serviceCIDR: ["198.18.0.0/24"],
  podMACPrefix: "0a:1b",
  txQueueLen: 2000,
}, undefined);

const median = (xs: number[]) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / (xs.length || 1);
const fmt = (x: number, d = 2) => x.toFixed(d);
const pad = (s: string, n: number) => s.padEnd(n);

/**
 * CPU seconds used by this process (getrusage) and, with `children`, by the children it has waited for (from
 * /proc/self/stat; reading it costs CPU itself, so a path without children does not read it).
 */
function cpu(children = true): { self: number; children: number } {
  const u = process.cpuUsage();
  if (!children) return { self: (u.user + u.system) / 1e6, children: 0 };
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const hz = 100;
  return { self: (u.user + u.system) / 1e6, children: (Number(f[13]) + Number(f[14])) / hz };
}

function cpuSince(c0: { self: number; children: number }, children = true): number {
  const c1 = cpu(children);
  return (c1.self - c0.self) + (c1.children - c0.children);
}

// ---------------------------------------------------------------------------------------------------------
// 1. What dlopen of libnl adds to a process.
async function dlopenCost(): Promise<void> {
  const withNl = `import { libnl } from "${ROOT}src/net/ffi.ts"; const t = performance.now(); libnl(); ` +
    `console.log(performance.now() - t);`;
  const without = `import "${ROOT}src/net/ffi.ts"; console.log(0);`;
  const once = async (code: string) => {
    const c0 = cpu();
    const t0 = performance.now();
    const out = await new Deno.Command(Deno.execPath(), { args: ["eval", code], stdout: "piped" }).output();
    const wall = performance.now() - t0;
    return { wall, cpu: cpuSince(c0), inside: Number(new TextDecoder().decode(out.stdout)) };
  };
  await once(withNl);
  await once(without);
  const a: Awaited<ReturnType<typeof once>>[] = [];
  const b: Awaited<ReturnType<typeof once>>[] = [];
  for (let i = 0; i < RUNS; i++) {
    a.push(await once(withNl));
    b.push(await once(without));
  }
  console.log(`\n1. loading libnl-3 + libnl-route-3 (Deno.dlopen, ${RUNS} processes each)`);
  console.log(`   dlopen inside the process:         median ${fmt(median(a.map((x) => x.inside)), 3)} ms`);
  console.log(
    `   process wall, with / without:      median ${fmt(median(a.map((x) => x.wall)), 1)} / ${
      fmt(median(b.map((x) => x.wall)), 1)
    } ms (+${fmt(median(a.map((x) => x.wall)) - median(b.map((x) => x.wall)), 1)} ms)`,
  );
  console.log(
    `   process CPU, with / without:       mean ${fmt(mean(a.map((x) => x.cpu)) * 1000, 1)} / ${
      fmt(mean(b.map((x) => x.cpu)) * 1000, 1)
    } ms (+${fmt((mean(a.map((x) => x.cpu)) - mean(b.map((x) => x.cpu))) * 1000, 1)} ms)`,
  );
}

// ---------------------------------------------------------------------------------------------------------
// 2. The same plans through both backends, in this process.
interface Pod {
  ns: string;
  path: string;
  containerId: string;
  address: string;
}

async function makeNode(prefix: string): Promise<string> {
  const node = `${prefix}-${shortId(6)}`;
  await addNetns(node);
  await ip("-n", node, "link", "add", "name", "ens0", "type", "veth", "peer", "name", "ens0p");
  await ip("-n", node, "addr", "add", "203.0.113.2/24", "dev", "ens0");
  await ip("-n", node, "link", "set", "ens0", "up");
  await ip("-n", node, "link", "set", "ens0p", "up");
  return node;
}

async function makePod(node: string, i: number): Promise<Pod> {
  const ns = `${node}-p${i}`;
  await addNetns(ns);
  await ip(
    "-n",
    node,
    "link",
    "add",
    "name",
    `ul${i}`,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    netnsPath(ns),
  );
  await ip("-n", node, "link", "set", `ul${i}`, "up");
  await ip("-n", ns, "addr", "add", `192.0.2.${10 + i}/24`, "dev", "eth0");
  await ip("-n", ns, "link", "set", "eth0", "up");
  await ip("-n", ns, "route", "add", "default", "via", "192.0.2.1", "dev", "eth0");
  return {
    ns,
    path: netnsPath(ns),
    containerId: `${shortId(8)}${i.toString().padStart(4, "0")}${shortId(20)}`,
    address: `192.0.2.${10 + i}/24`,
  };
}

const KERNEL_KINDS = new Set([
  "link.veth",
  "link.set",
  "link.del",
  "addr.add",
  "addr.del",
  "route.add",
  "route.del",
  "rule.add",
  "rule.del",
  "neigh.add",
  "neigh.del",
  "sysctl.set",
]);

interface BackendFigures {
  perOp: number[]; // ms, kernel operations (not iptables, not announcements)
  perKind: Map<string, number[]>; // ms, by operation kind (ADD)
  opCpu: number; // CPU seconds of all kernel operations (this process and its children)
  kindCpu: Map<string, number>; // CPU seconds by operation kind
  iptables: number[]; // ms per batch
  observe: number[];
  add: number[];
  del: number[];
  addCpu: number[];
  delCpu: number[];
  ops: number;
}

async function timedApply(
  nets: { host: NetNs; pod: NetNs },
  ops: Op[],
  f: BackendFigures,
  spawns: boolean,
): Promise<Op[]> {
  const undo: Op[] = [];
  for (let i = 0; i < ops.length;) {
    const op = ops[i];
    if (op.kind === "iptables.add") {
      let n = 1;
      while (ops[i + n]?.kind === "iptables.add") n++;
      const t0 = performance.now();
      const batch = await applyPlan(nets, ops.slice(i, i + n));
      f.iptables.push(performance.now() - t0);
      undo.push(...batch);
      i += n;
      continue;
    }
    const c0 = cpu(spawns);
    const t0 = performance.now();
    const outcome = await applyOne(nets, op);
    const ms = performance.now() - t0;
    if (KERNEL_KINDS.has(op.kind)) {
      const used = cpuSince(c0, spawns);
      f.opCpu += used;
      f.kindCpu.set(op.kind, (f.kindCpu.get(op.kind) ?? 0) + used);
    }
    if (KERNEL_KINDS.has(op.kind)) {
      f.perOp.push(ms);
      f.perKind.set(op.kind, [...(f.perKind.get(op.kind) ?? []), ms]);
    }
    if (outcome === "done") {
      const back = inverse(op);
      if (back) undo.push(back);
    }
    i++;
  }
  return undo;
}

async function backendComparison(): Promise<void> {
  const node = await makeNode("bco");
  const pods: Pod[] = [];
  const figures: Record<"netlink" | "iproute", BackendFigures> = {
    netlink: {
      perOp: [],
      opCpu: 0,
      kindCpu: new Map(),
      perKind: new Map(),
      iptables: [],
      observe: [],
      add: [],
      del: [],
      addCpu: [],
      delCpu: [],
      ops: 0,
    },
    iproute: {
      perOp: [],
      opCpu: 0,
      kindCpu: new Map(),
      perKind: new Map(),
      iptables: [],
      observe: [],
      add: [],
      del: [],
      addCpu: [],
      delCpu: [],
      ops: 0,
    },
  };
  try {
    // One more pod than measured: the first warms up the code paths (JIT) of both backends.
    for (let i = 0; i <= PODS; i++) pods.push(await makePod(node, i));
    const empty = (): BackendFigures => ({
      perOp: [],
      opCpu: 0,
      kindCpu: new Map(),
      perKind: new Map(),
      iptables: [],
      observe: [],
      add: [],
      del: [],
      addCpu: [],
      delCpu: [],
      ops: 0,
    });
    const warmUp = { netlink: empty(), iproute: empty() };
    for (const [n, pod] of pods.entries()) {
      for (const backend of ["netlink", "iproute"] as const) {
        const f = n === 0 ? warmUp[backend] : figures[backend];
        const host = openNs(netnsPath(node), backend);
        const podNs = openNs(pod.path, backend);
        const nets = { host, pod: podNs };
        try {
          const c0 = cpu();
          const t0 = performance.now();
          const ps = await observePod(podNs);
          const hs = await observeHost(
            host,
            SETTINGS,
            ps.addrs.filter((a) => a.scope === 0).map((a) => a.address),
          );
          f.observe.push(performance.now() - t0);
          const plan = planAdd({
            settings: SETTINGS,
            containerId: pod.containerId,
            ifName: "eth0",
            pod: ps,
            host: hs,
            macs: { host: randomMac(), pod: randomMac() },
          });
          f.ops = plan.ops.length;
          const undo = await timedApply(nets, plan.ops, f, backend === "iproute");
          f.add.push(performance.now() - t0);
          f.addCpu.push(cpuSince(c0));
          const c1 = cpu();
          const t1 = performance.now();
          const failures = await undoAll(nets, undo);
          f.del.push(performance.now() - t1);
          f.delCpu.push(cpuSince(c1));
          if (failures.length) throw new Error(`DEL through ${backend} failed: ${failures.join("; ")}`);
        } finally {
          host.close();
          podNs.close();
        }
      }
    }
  } finally {
    for (const p of pods) await delNetns(p.ns);
    await delNetns(node);
  }
  const nl = figures.netlink;
  const ipr = figures.iproute;
  console.log(
    `\n2. one coordinator ADD (underlay, first NIC, MAC prefix, txqueuelen) per pod, ${PODS} pods, in-process`,
  );
  console.log(
    `   ${nl.ops} operations per ADD, ${
      nl.perOp.length / PODS
    } of them kernel changes (links, addresses, routes, rules, neighbours, sysctls)`,
  );
  console.log(`   ${pad("", 44)}${"netlink".padStart(12)}${"iproute2".padStart(12)}${"ratio".padStart(9)}`);
  const row = (name: string, a: number, b: number, unit = "ms", d = 3) =>
    console.log(
      `   ${pad(name, 44)}${`${fmt(a, d)} ${unit}`.padStart(12)}${`${fmt(b, d)} ${unit}`.padStart(12)}${
        `${fmt(b / a, 1)}×`.padStart(9)
      }`,
    );
  row("per kernel operation (median)", median(nl.perOp) * 1000, median(ipr.perOp) * 1000, "µs", 1);
  for (const [kind, xs] of [...nl.perKind].sort()) {
    const other = ipr.perKind.get(kind) ?? [];
    row(`  ${kind}, wall (median of ${xs.length})`, median(xs) * 1000, median(other) * 1000, "µs", 1);
    row(
      `  ${kind}, CPU (mean)`,
      ((nl.kindCpu.get(kind) ?? 0) / xs.length) * 1e6,
      ((ipr.kindCpu.get(kind) ?? 0) / other.length) * 1e6,
      "µs",
      1,
    );
  }
  row(
    "CPU per kernel operation (mean, incl. children)",
    (nl.opCpu / nl.perOp.length) * 1e6,
    (ipr.opCpu / ipr.perOp.length) * 1e6,
    "µs",
    1,
  );
  row("reading both namespaces (median)", median(nl.observe), median(ipr.observe), "ms", 2);
  row("iptables batch, 3 rules (median, same path)", median(nl.iptables), median(ipr.iptables), "ms", 1);
  row("ADD per pod, wall (median)", median(nl.add), median(ipr.add), "ms", 1);
  row("ADD per pod, CPU incl. children (mean)", mean(nl.addCpu) * 1000, mean(ipr.addCpu) * 1000, "ms", 1);
  row("DEL per pod, wall (median)", median(nl.del), median(ipr.del), "ms", 1);
  row("DEL per pod, CPU incl. children (mean)", mean(nl.delCpu) * 1000, mean(ipr.delCpu) * 1000, "ms", 1);
  const ratio = median(ipr.perOp) / median(nl.perOp);
  const verdict = [...nl.perKind].sort().map(([kind, xs]) => {
    const wall = median(ipr.perKind.get(kind) ?? []) / median(xs);
    const used = ((ipr.kindCpu.get(kind) ?? 0) / (ipr.perKind.get(kind)?.length ?? 1)) /
      ((nl.kindCpu.get(kind) ?? 0) / xs.length);
    return `${kind} ${fmt(wall, 0)}× wall / ${fmt(used, 0)}× CPU`;
  });
  console.log(
    `   goal ≥ 50× per operation: median over all ${fmt(ratio, 0)}× ${
      ratio >= 50 ? "(met)" : "(not met)"
    }; ` +
      `by kind: ${verdict.join(", ")}`,
  );
  console.log(
    "   (link creation, link up/MAC and sysctl writes cost the kernel the same whichever way they are asked)",
  );
}

// ---------------------------------------------------------------------------------------------------------
// 2b. Steady state: the same operation repeated, once the code is warm (what a busy node sees).
async function steadyState(): Promise<void> {
  const ns = `bss-${shortId(6)}`;
  await addNetns(ns);
  const n = Math.max(50, PODS * 5);
  const rows: [string, number, number, number, number][] = [];
  try {
    await ip("-n", ns, "link", "add", "name", "d0", "type", "veth", "peer", "name", "d1");
    await ip("-n", ns, "link", "set", "d0", "up");
    await ip("-n", ns, "link", "set", "d1", "up");
    const kinds: [string, (x: NetNs, i: number) => Promise<void>][] = [
      [
        "route add",
        (x, i) =>
          x.addRoute({ family: 4, dst: `198.18.${i >> 8}.${i & 255}/32`, dev: "d0", table: 101, scope: 253 }),
      ],
      ["route del", (x, i) => x.delRoute({ family: 4, dst: `198.18.${i >> 8}.${i & 255}/32`, table: 101 })],
      [
        "rule add",
        (x, i) =>
          x.addRule({ family: 4, priority: 2000 + i, table: 101, src: `198.19.${i >> 8}.${i & 255}/32` }),
      ],
      [
        "rule del",
        (x, i) =>
          x.delRule({ family: 4, priority: 2000 + i, table: 101, src: `198.19.${i >> 8}.${i & 255}/32` }),
      ],
      [
        "neigh add",
        (x, i) =>
          x.addNeigh({
            family: 4,
            dev: "d0",
            dst: `198.18.${i >> 8}.${i & 255}`,
            lladdr: "02:00:5e:00:00:01",
            state: 0x80,
          }),
      ],
      ["neigh del", (x, i) => x.delNeigh({ family: 4, dev: "d0", dst: `198.18.${i >> 8}.${i & 255}` })],
    ];
    const handles = { netlink: openNs(netnsPath(ns), "netlink"), iproute: openNs(netnsPath(ns), "iproute") };
    try {
      // Warm up the netlink path (the iproute path pays its cost in every process it starts anyway).
      for (const [, fn] of kinds) for (let i = 0; i < 20; i++) await fn(handles.netlink, 60000 + i);
      for (const [name, fn] of kinds) {
        const figures = { netlink: [] as number[], iproute: [] as number[], cpu: { netlink: 0, iproute: 0 } };
        for (const backend of ["netlink", "iproute"] as const) {
          const count = backend === "netlink" ? n * 4 : n;
          const c0 = cpu(backend === "iproute");
          for (let i = 0; i < count; i++) {
            const t0 = performance.now();
            await fn(handles[backend], backend === "netlink" ? i : 20000 + i);
            figures[backend].push(performance.now() - t0);
          }
          figures.cpu[backend] = cpuSince(c0, backend === "iproute") / count;
        }
        rows.push([
          name,
          median(figures.netlink),
          median(figures.iproute),
          figures.cpu.netlink,
          figures.cpu.iproute,
        ]);
      }
    } finally {
      handles.netlink.close();
    }
  } finally {
    await delNetns(ns);
  }
  console.log(`\n2b. steady state: one operation repeated (${n * 4} through netlink, ${n} through ip)`);
  console.log(
    `   ${pad("", 16)}${"netlink".padStart(12)}${"ip".padStart(12)}${"ratio".padStart(8)}${
      "CPU netlink".padStart(14)
    }${"CPU ip".padStart(12)}${"ratio".padStart(8)}`,
  );
  for (const [name, a, b, ca, cb] of rows) {
    console.log(
      `   ${pad(name, 16)}${`${fmt(a * 1000, 1)} µs`.padStart(12)}${`${fmt(b * 1000, 0)} µs`.padStart(12)}` +
        `${`${fmt(b / a, 0)}×`.padStart(8)}${`${fmt(ca * 1e6, 1)} µs`.padStart(14)}${
          `${fmt(cb * 1e6, 0)} µs`.padStart(12)
        }` +
        `${`${fmt(cb / ca, 0)}×`.padStart(8)}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// 3. The plugin process per pod, each backend.
async function pluginProcess(): Promise<void> {
  const node = await makeNode("bcp");
  const dir = await Deno.makeTempDir({ prefix: "coordinator-bench-" });
  const pods: Pod[] = [];
  const wall: Record<string, { add: number[]; del: number[]; cpu: number[] }> = {
    netlink: { add: [], del: [], cpu: [] },
    iproute: { add: [], del: [], cpu: [] },
  };
  try {
    for (let i = 0; i < PODS; i++) pods.push(await makePod(node, i));
    for (const pod of pods) {
      for (const backend of ["netlink", "iproute"] as const) {
        const podRef = { namespace: "bench", name: pod.ns, uid: crypto.randomUUID() };
        const prevResult = {
          cniVersion: "1.0.0",
          interfaces: [{ name: "eth0", sandbox: pod.path }],
          ips: [{ address: pod.address, interface: 0 }],
        };
        const conf = coordinatorConf({
          prevResult,
          keys: {
            overlayPodCIDR: ["198.18.128.0/24"],
            serviceCIDR: ["198.18.0.0/24"],
            logOptions: { logFile: `${dir}/c.log`, logLevel: "info" },
          },
          dir,
        });
        const base = {
          conf,
          containerId: pod.containerId,
          netns: pod.path,
          pod: podRef,
          plugin: COORDINATOR,
          nodeNetns: node,
          env: { SPIDERPOOL_NET_BACKEND: backend },
        };
        const c0 = cpu();
        const add = await execCni({ command: "ADD", ...base });
        const del = await execCni({ command: "DEL", ...base });
        if (add.code !== 0 || del.code !== 0) {
          throw new Error(`plugin through ${backend}: ${add.stdout} ${del.stdout}`);
        }
        wall[backend].add.push(add.ms);
        wall[backend].del.push(del.ms);
        wall[backend].cpu.push(cpuSince(c0));
      }
    }
  } finally {
    for (const p of pods) await delNetns(p.ns);
    await delNetns(node);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  console.log(
    `\n3. the coordinator plugin process (dist/cni/coordinator, started through ip netns exec), ${PODS} pods`,
  );
  console.log(`   ${pad("", 44)}${"netlink".padStart(12)}${"iproute2".padStart(12)}${"ratio".padStart(9)}`);
  const row = (name: string, a: number, b: number) =>
    console.log(
      `   ${pad(name, 44)}${`${fmt(a, 1)} ms`.padStart(12)}${`${fmt(b, 1)} ms`.padStart(12)}${
        `${fmt(b / a, 1)}×`.padStart(9)
      }`,
    );
  row("ADD wall (median)", median(wall.netlink.add), median(wall.iproute.add));
  row("DEL wall (median)", median(wall.netlink.del), median(wall.iproute.del));
  row(
    "ADD+DEL CPU per pod incl. children (mean)",
    mean(wall.netlink.cpu) * 1000,
    mean(wall.iproute.cpu) * 1000,
  );
}

// ---------------------------------------------------------------------------------------------------------
// 4. The whole chain against a real agent, with and without the coordinator.
async function wholeChain(): Promise<void> {
  const { e2e } = await import("../e2e/env.ts");
  const { API_VERSION, PLURAL } = await import("../../src/api/constants.ts");
  await using env = await e2e("bench-coord");
  const [node] = await env.startNodes(1);
  await ip("-n", node.netns, "link", "add", "name", "ens0", "type", "veth", "peer", "name", "ens0p");
  await ip("-n", node.netns, "addr", "add", "203.0.113.2/24", "dev", "ens0");
  await ip("-n", node.netns, "link", "set", "ens0", "up");
  const pool = await env.pool("v4", {
    subnet: "198.18.64.0/18",
    ips: ["198.18.64.10-198.18.127.250"],
    gateway: "198.18.64.1",
  });
  const coords = `/apis/${API_VERSION}/${PLURAL.coordinator}`;
  await env.http.delete(`${coords}/default`).catch(() => {});
  const { body } = await env.http.post<{ metadata: { resourceVersion: string } }>(coords, {
    apiVersion: API_VERSION,
    kind: "SpiderCoordinator",
    metadata: { name: "default" },
    spec: { podCIDRType: "cluster", mode: "auto", hijackCIDR: ["169.254.0.0/16"] },
  });
  env.scope.track(`${coords}/default`);
  await env.http.put(`${coords}/default/status`, {
    apiVersion: API_VERSION,
    kind: "SpiderCoordinator",
    metadata: { name: "default", resourceVersion: body.metadata.resourceVersion },
    status: { phase: "Synced", overlayPodCIDR: ["198.18.128.0/24"], serviceCIDR: ["198.18.0.0/24"] },
  });
  const times = {
    without: [] as number[],
    with: [] as number[],
    coordinator: [] as number[],
    delWithout: [] as number[],
    delWith: [] as number[],
  };
  const bridgeConf = spiderpoolBridgeConf({
    name: "bench",
    bridge: node.bridge,
    ipam: {
      ipam_unix_socket_path: node.agent.socketPath,
      log_file_path: `${env.dir}/plugin.log`,
      default_ipv4_ippool: [pool],
    },
  });
  for (let i = 0; i < CHAIN_PODS * 2; i++) {
    const withCoordinator = i % 2 === 1;
    const pod = await env.createPod(`p${i}`, node);
    const sb = await env.sandbox(pod, node);
    const base = {
      containerId: sb.containerId,
      netns: netnsPath(sb.netns),
      ifName: "eth0",
      pod,
      nodeNetns: node.netns,
    };
    const t0 = performance.now();
    const bridge = await execCni({ command: "ADD", conf: bridgeConf, ...base });
    if (bridge.code !== 0) throw new Error(`bridge ADD: ${bridge.stdout}`);
    sb.attached.set("eth0", bridgeConf);
    const cconf = coordinatorConf({ prevResult: bridge.json, dir: env.dir, socket: node.agent.socketPath });
    if (withCoordinator) {
      const c = await execCni({ command: "ADD", conf: cconf, plugin: COORDINATOR, ...base });
      if (c.code !== 0) throw new Error(`coordinator ADD: ${c.stdout}`);
      times.coordinator.push(c.ms);
    }
    (withCoordinator ? times.with : times.without).push(performance.now() - t0);
    const t1 = performance.now();
    if (withCoordinator) await execCni({ command: "DEL", conf: cconf, plugin: COORDINATOR, ...base });
    await env.del(sb);
    (withCoordinator ? times.delWith : times.delWithout).push(performance.now() - t1);
  }
  console.log(
    `\n4. the whole chain bridge → spiderpool (real agent and API server) → coordinator, ${CHAIN_PODS} pods each, one at a time`,
  );
  console.log(`   ADD without coordinator:  median ${fmt(median(times.without), 1)} ms`);
  console.log(
    `   ADD with coordinator:     median ${fmt(median(times.with), 1)} ms (the coordinator process: median ${
      fmt(median(times.coordinator), 1)
    } ms)`,
  );
  console.log(
    `   DEL without / with:       median ${fmt(median(times.delWithout), 1)} / ${
      fmt(median(times.delWith), 1)
    } ms`,
  );
}

console.log(
  `coordinator benchmark (load average ${
    (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ")
  })`,
);
const sections = new Set(values.sections.split(","));
if (sections.has("1")) await dlopenCost();
if (sections.has("2")) await backendComparison();
if (sections.has("2")) await steadyState();
if (sections.has("3")) await pluginProcess();
if (sections.has("4") && !values["no-chain"]) await wholeChain();
