// Running the coordinator as a container runtime does, in network namespaces: a node namespace (the plugin's
// "host"), pod sandboxes, the plugin binary from dist/ started inside the node namespace with the previous
// plugin's result as prevResult, and the readings the tests make (link counters, pings from a given source).

import { convertResult, type Result } from "../../src/cni/types.ts";
import { type CniRun, DIST_CNI, execCni, type PodRef } from "../e2e/cni.ts";
import { addNetns, delNetns, ip, netnsPath, shortId } from "../e2e/netns.ts";

export const COORDINATOR = `${DIST_CNI}/coordinator`;
export const IFACER = `${DIST_CNI}/ifacer`;

export interface CoordinatorCall {
  command: "ADD" | "DEL" | "CHECK";
  conf: Record<string, unknown>;
  containerId: string;
  netns: string;
  ifName?: string;
  pod: PodRef;
  nodeNetns: string;
  backend?: "netlink" | "iproute";
}

/** Runs the coordinator binary once. */
export function runCoordinator(c: CoordinatorCall): Promise<CniRun> {
  return execCni({
    command: c.command,
    conf: c.conf,
    containerId: c.containerId,
    netns: c.netns,
    ifName: c.ifName ?? "eth0",
    pod: c.pod,
    plugin: COORDINATOR,
    nodeNetns: c.nodeNetns,
    env: c.backend ? { SPIDERPOOL_NET_BACKEND: c.backend } : undefined,
  });
}

/** The coordinator's network configuration with `prevResult` (converted to `cniVersion`). */
export function coordinatorConf(
  o: {
    cniVersion?: string;
    name?: string;
    prevResult?: unknown;
    keys?: Record<string, unknown>;
    dir: string;
    socket?: string;
  },
): Record<string, unknown> {
  const cniVersion = o.cniVersion ?? "1.0.0";
  return {
    cniVersion,
    name: o.name ?? "coord-test",
    type: "coordinator",
    ipamUnixSocketPath: o.socket ?? `${o.dir}/no-agent.sock`,
    logOptions: { logFile: `${o.dir}/coordinator.log`, logLevel: "debug" },
    ...o.keys,
    ...(o.prevResult !== undefined ? { prevResult: o.prevResult } : {}),
  };
}

/** Packet counters of a link in a named namespace. */
export async function counters(ns: string, dev: string): Promise<{ rx: number; tx: number }> {
  const [l] = JSON.parse(await ip("-n", ns, "-j", "-s", "link", "show", "dev", dev));
  return { rx: l.stats64.rx.packets, tx: l.stats64.tx.packets };
}

/** One ping from `ns` (optionally from source address `from`); true when answered. */
export async function pingFrom(ns: string, target: string, from?: string): Promise<boolean> {
  const out = await new Deno.Command("ip", {
    args: ["netns", "exec", ns, "ping", "-c1", "-W1", ...(from ? ["-I", from] : []), target],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(10_000),
  }).output();
  return out.success;
}

/**
 * A node namespace with an uplink address (203.0.113.2/24 on ens0) and a pod sandbox whose eth0 was set up by a
 * stand-in main plugin (192.0.2.10/24, default via 192.0.2.1, the peer in a third namespace playing the
 * underlay). The result that plugin would have printed is `prevResult` (CNI 1.x shape).
 */
export interface MiniPod extends AsyncDisposable {
  id: string;
  node: string;
  pod: string;
  underlay: string;
  netnsPath: string;
  containerId: string;
  podRef: PodRef;
  dir: string;
  prevResult: Result;
  /** prevResult in the shape of `version`. */
  prevResultFor(version: string): unknown;
}

export async function miniPod(prefix: string): Promise<MiniPod> {
  const id = shortId(6);
  const node = `${prefix}-${id}-node`;
  const pod = `${prefix}-${id}-pod`;
  const underlay = `${prefix}-${id}-ul`;
  const dir = await Deno.makeTempDir({ prefix: "coordinator-test-" });
  for (const n of [node, pod, underlay]) await addNetns(n);
  await ip("-n", node, "link", "add", "name", "ens0", "type", "veth", "peer", "name", "ens0p");
  await ip("-n", node, "addr", "add", "203.0.113.2/24", "dev", "ens0");
  await ip("-n", node, "link", "set", "ens0", "up");
  await ip("-n", node, "link", "set", "ens0p", "up");
  await ip(
    "-n",
    underlay,
    "link",
    "add",
    "name",
    "ul0",
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    netnsPath(pod),
  );
  await ip("-n", underlay, "link", "set", "ul0", "up");
  await ip("-n", pod, "addr", "add", "192.0.2.10/24", "dev", "eth0");
  await ip("-n", pod, "link", "set", "eth0", "up");
  await ip("-n", pod, "route", "add", "default", "via", "192.0.2.1", "dev", "eth0");
  const mac = JSON.parse(await ip("-n", pod, "-j", "link", "show", "eth0"))[0].address;
  const prevResult: Result = {
    cniVersion: "1.1.0",
    interfaces: [{ name: "eth0", mac, sandbox: netnsPath(pod) }],
    ips: [{ address: "192.0.2.10/24", gateway: "192.0.2.1", interface: 0 }],
    routes: [{ dst: "0.0.0.0/0", gw: "192.0.2.1" }],
  };
  return {
    id,
    node,
    pod,
    underlay,
    netnsPath: netnsPath(pod),
    containerId: `${id}${shortId(26)}`,
    podRef: { namespace: "default", name: `pod-${id}`, uid: crypto.randomUUID() },
    dir,
    prevResult,
    prevResultFor: (version) => convertResult(prevResult, version),
    async [Symbol.asyncDispose]() {
      for (const n of [pod, underlay, node]) await delNetns(n);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
