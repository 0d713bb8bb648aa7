// RDMA metrics of the node (spec §12, SPIDERPOOL_ENABLED_RDMA_METRIC): the agent reads the RDMA devices, the
// RDMA subsystem's network-namespace mode and the per-port hardware counters with iproute2's `rdma -j`, and
// exports each counter as `rdma_<counter>_total` with the device, port and netdev as labels. In exclusive mode a
// device moved into a pod's namespace (SR-IOV) is read inside that namespace and labelled with the pod and its
// owner, found by the netdev's addresses among the SpiderEndpoints (else the pods' status). Parsing and the
// samples are pure functions over the tool's JSON; the tool call and the metrics registry are the shell. On a machine
// without RDMA the agent says so once and exports nothing.

import { Counter, type Registry } from "./exposition.ts";
import type { SpiderEndpoint } from "../api/types.ts";
import type { Pod } from "./kube.ts";

// ---------------------------------------------------------------------------------------------------------
// The tool's JSON (iproute2 rdma/{dev,link,sys,stat}.c), as plain data

export interface RdmaDevice {
  index: number;
  name: string;
  nodeType?: string;
  fw?: string;
  /** "0c42:a103:00f5:6e7e" */
  nodeGuid?: string;
  sysImageGuid?: string;
}

export interface RdmaPort {
  device: string;
  port: number;
  state?: string;
  physicalState?: string;
  /** The Ethernet (RoCE) or IPoIB netdev of the port, when it has one. */
  netdev?: string;
}

export interface RdmaPortStats {
  device: string;
  port: number;
  /** Counter name → value, as the driver names them (mlx5: rx_write_requests, out_of_buffer, ...). */
  counters: Record<string, number>;
}

export type NetnsMode = "shared" | "exclusive";

/** `rdma -j ...` printed something that is not the JSON its source prints. */
export class RdmaOutputError extends Error {
  constructor(command: string, expected: string, got: string) {
    super(`rdma ${command} printed ${JSON.stringify(got.slice(0, 200))}; expected ${expected}`);
    this.name = "RdmaOutputError";
  }
}

/** The objects of a JSON list (older rdma prints one object per line without the list; both are read). */
function objects(command: string, text: string): Record<string, unknown>[] {
  const trimmed = text.trim();
  if (trimmed === "") return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch {
    try {
      parsed = trimmed.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
    } catch {
      throw new RdmaOutputError(command, "JSON", text);
    }
  }
  const list = Array.isArray(parsed) ? parsed : [parsed];
  if (list.some((o) => typeof o !== "object" || o === null || Array.isArray(o))) {
    throw new RdmaOutputError(command, "a JSON list of objects", text);
  }
  return list as Record<string, unknown>[];
}

const str = (v: unknown): string | undefined => typeof v === "string" && v !== "" ? v : undefined;
const num = (v: unknown): number | undefined => typeof v === "number" && Number.isFinite(v) ? v : undefined;

/** `rdma -j dev show`: `[{"ifindex":0,"ifname":"mlx5_0","node_type":"ca","fw":"...","node_guid":"..."}]`. */
export function parseDevices(text: string): RdmaDevice[] {
  return objects("dev show", text).flatMap((o) => {
    const name = str(o.ifname);
    const index = num(o.ifindex);
    if (name === undefined || index === undefined) return [];
    return [{
      index,
      name,
      ...(str(o.node_type) ? { nodeType: str(o.node_type) } : {}),
      ...(str(o.fw) ? { fw: str(o.fw) } : {}),
      ...(str(o.node_guid) ? { nodeGuid: str(o.node_guid) } : {}),
      ...(str(o.sys_image_guid) ? { sysImageGuid: str(o.sys_image_guid) } : {}),
    }];
  });
}

/** Device and port of an `ifname`: "mlx5_0" with a separate "port", or "mlx5_0/1" (older rdma). */
function devicePort(o: Record<string, unknown>): { device: string; port: number } | undefined {
  const name = str(o.ifname);
  if (name === undefined) return undefined;
  const slash = name.lastIndexOf("/");
  const port = num(o.port) ?? (slash > 0 ? Number(name.slice(slash + 1)) : undefined);
  if (port === undefined || !Number.isInteger(port)) return undefined;
  return { device: slash > 0 ? name.slice(0, slash) : name, port };
}

/** `rdma -j link show`: one object per port, `netdev` naming its Ethernet or IPoIB interface. */
export function parseLinks(text: string): RdmaPort[] {
  return objects("link show", text).flatMap((o) => {
    const dp = devicePort(o);
    if (!dp) return [];
    return [{
      ...dp,
      ...(str(o.state) ? { state: str(o.state) } : {}),
      ...(str(o.physical_state) ? { physicalState: str(o.physical_state) } : {}),
      ...(str(o.netdev) ? { netdev: str(o.netdev) } : {}),
    }];
  });
}

/** `rdma -j system show`: `[{"netns":"shared"}]` (newer versions add other keys). */
export function parseSystem(text: string): NetnsMode {
  const mode = objects("system show", text).map((o) => o.netns).find((m) => m !== undefined);
  if (mode !== "shared" && mode !== "exclusive") {
    throw new RdmaOutputError("system show", 'a "netns" of shared or exclusive', text);
  }
  return mode;
}

/** `rdma -j statistic show`: per port, `ifname`, `port` and one number per hardware counter. */
export function parseStats(text: string): RdmaPortStats[] {
  return objects("statistic show", text).flatMap((o) => {
    const dp = devicePort(o);
    if (!dp) return [];
    const counters: Record<string, number> = {};
    for (const [k, v] of Object.entries(o)) {
      if (k === "ifname" || k === "port" || k === "ifindex") continue;
      const n = num(v);
      if (n !== undefined && n >= 0) counters[k] = n;
    }
    return [{ ...dp, counters }];
  });
}

// ---------------------------------------------------------------------------------------------------------
// Samples

/** The pod (and its top controller) a device in a pod's namespace belongs to. */
export interface PodOwner {
  podNamespace: string;
  podName: string;
  ownerKind?: string;
  ownerName?: string;
  ownerApiVersion?: string;
}

/** What was read in one network namespace: the host's (`netns` undefined) or a pod's. */
export interface NamespaceReading {
  netns?: string;
  pod?: PodOwner;
  ports: RdmaPort[];
  stats: RdmaPortStats[];
}

export interface RdmaSample {
  /** Prometheus family name without `_total`: `rdma_<counter>`. */
  metric: string;
  labels: Record<string, string>;
  value: number;
}

export const RDMA_LABELS = [
  "node_name",
  "ifname",
  "port",
  "net_dev_name",
  "node_guid",
  "sys_image_guid",
  "is_root",
  "rdma_parent_name",
  "pod_namespace",
  "pod_name",
  "owner_api_version",
  "owner_kind",
  "owner_namespace",
  "owner_name",
] as const;

/** `rdma_` + the counter name, with anything Prometheus does not allow in a name replaced by `_`. */
export function metricName(counter: string): string {
  const snake = counter.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase();
  return `rdma_${snake.replace(/[^a-z0-9_]/g, "_")}`;
}

/**
 * One sample per counter of every port read. A device whose node GUID is its system image GUID is a root (a
 * PF); another device with that system image GUID is one of its functions (an SR-IOV VF): `is_root` false. As
 * upstream, `rdma_parent_name` is the netdev of the root (for the root too).
 */
export function rdmaSamples(
  nodeName: string,
  devices: readonly RdmaDevice[],
  readings: readonly NamespaceReading[],
): RdmaSample[] {
  const byName = new Map(devices.map((d) => [d.name, d]));
  const netdevOf = new Map<string, string>();
  for (const r of readings) {
    for (const p of r.ports) if (p.netdev && !netdevOf.has(p.device)) netdevOf.set(p.device, p.netdev);
  }
  const rootOfImage = new Map(
    devices.filter((d) => d.nodeGuid && d.nodeGuid === d.sysImageGuid).map((d) => [d.nodeGuid!, d.name]),
  );
  const out: RdmaSample[] = [];
  for (const r of readings) {
    for (const s of r.stats) {
      const dev = byName.get(s.device);
      const port = r.ports.find((p) => p.device === s.device && p.port === s.port);
      const isRoot = dev?.nodeGuid !== undefined && dev.nodeGuid === dev.sysImageGuid;
      const root = dev?.sysImageGuid ? rootOfImage.get(dev.sysImageGuid) : undefined;
      const parent = root ? netdevOf.get(root) : undefined;
      const labels: Record<string, string> = {
        node_name: nodeName,
        ifname: s.device,
        port: String(s.port),
        net_dev_name: port?.netdev ?? "",
        node_guid: dev?.nodeGuid ?? "",
        sys_image_guid: dev?.sysImageGuid ?? "",
        is_root: String(isRoot),
        ...(parent ? { rdma_parent_name: parent } : {}),
        ...(r.pod
          ? {
            pod_namespace: r.pod.podNamespace,
            pod_name: r.pod.podName,
            owner_namespace: r.pod.podNamespace,
            ...(r.pod.ownerKind ? { owner_kind: r.pod.ownerKind } : {}),
            ...(r.pod.ownerName ? { owner_name: r.pod.ownerName } : {}),
            ...(r.pod.ownerApiVersion ? { owner_api_version: r.pod.ownerApiVersion } : {}),
          }
          : {}),
      };
      for (const [counter, value] of Object.entries(s.counters)) {
        out.push({ metric: metricName(counter), labels, value });
      }
    }
  }
  return out;
}

const OWNER_API_VERSIONS: Record<string, string> = {
  Pod: "v1",
  Deployment: "apps/v1",
  ReplicaSet: "apps/v1",
  StatefulSet: "apps/v1",
  DaemonSet: "apps/v1",
  Job: "batch/v1",
  CronJob: "batch/v1",
  VirtualMachineInstance: "kubevirt.io/v1",
};

const bare = (a: string) => a.split("/")[0];

/**
 * The pod holding any of `ips`: the SpiderEndpoint recording one of them (its top controller as owner), else a
 * pod whose status lists one (its controller reference as owner).
 */
export function podOwnerFor(
  ips: readonly string[],
  endpoints: readonly SpiderEndpoint[],
  pods: readonly Pod[],
): PodOwner | undefined {
  const wanted = new Set(ips.map(bare));
  for (const ep of endpoints) {
    const held = (ep.status?.current?.ips ?? []).flatMap((d) => [d.ipv4, d.ipv6]).filter((a): a is string =>
      !!a
    );
    if (!held.some((a) => wanted.has(bare(a)))) continue;
    const ns = ep.metadata.namespace ?? "";
    const pod = pods.find((p) => p.metadata.uid === ep.status.current.uid);
    const kind = ep.status.ownerControllerType;
    return {
      podNamespace: ns,
      podName: pod?.metadata.name ?? ep.metadata.name,
      ...(kind ? { ownerKind: kind } : {}),
      ...(ep.status.ownerControllerName ? { ownerName: ep.status.ownerControllerName } : {}),
      ...(kind && OWNER_API_VERSIONS[kind] ? { ownerApiVersion: OWNER_API_VERSIONS[kind] } : {}),
    };
  }
  for (const pod of pods) {
    const status = pod.status as { podIPs?: { ip?: string }[] } | undefined;
    if (!(status?.podIPs ?? []).some((p) => p.ip && wanted.has(p.ip))) continue;
    const owner = pod.metadata.ownerReferences?.find((o) => o.controller) ??
      pod.metadata.ownerReferences?.[0];
    return {
      podNamespace: pod.metadata.namespace,
      podName: pod.metadata.name,
      ownerKind: owner?.kind ?? "Pod",
      ownerName: owner?.name ?? pod.metadata.name,
      ownerApiVersion: owner?.apiVersion ?? "v1",
    };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// The tool

export interface RdmaRun {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Runs `rdma -j ARGS`, in the named network namespace when given (through `ip netns exec`). */
export type RdmaRunner = (args: string[], netns?: string) => Promise<RdmaRun>;

const decoder = new TextDecoder();

export const runRdma: RdmaRunner = async (args, netns) => {
  const [cmd, argv] = netns === undefined
    ? ["rdma", ["-j", ...args]]
    : ["ip", ["netns", "exec", netns, "rdma", "-j", ...args]];
  try {
    const out = await new Deno.Command(cmd, {
      args: argv,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(10_000),
    }).output();
    return { ok: out.success, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr).trim() };
  } catch (e) {
    // Not installed (iproute2 ships it), or it hung.
    return { ok: false, stdout: "", stderr: `${cmd}: ${(e as Error).message}` };
  }
};

/** What the node has: nothing (with the reason), or its devices and the namespace mode. */
export type RdmaInventory =
  | { kind: "none"; reason: string }
  | { kind: "present"; mode: NetnsMode; devices: RdmaDevice[] };

export async function readInventory(run: RdmaRunner): Promise<RdmaInventory> {
  const dev = await run(["dev", "show"]);
  if (!dev.ok) {
    // e.g. "Failed to open NETLINK_RDMA socket": the kernel has no RDMA subsystem loaded.
    return { kind: "none", reason: `rdma dev show: ${dev.stderr || "failed"}` };
  }
  const devices = parseDevices(dev.stdout);
  if (devices.length === 0) return { kind: "none", reason: "rdma dev show lists no device" };
  const sys = await run(["system", "show"]);
  if (!sys.ok) throw new Error(`rdma system show: ${sys.stderr}`);
  return { kind: "present", mode: parseSystem(sys.stdout), devices };
}

/** Reads the ports and counters of one namespace (undefined: the agent's own). */
export async function readNamespace(run: RdmaRunner, netns?: string): Promise<NamespaceReading> {
  const [links, stats] = await Promise.all([run(["link", "show"], netns), run(["statistic", "show"], netns)]);
  const where = netns === undefined ? "" : ` in ${netns}`;
  if (!links.ok) throw new Error(`rdma link show${where}: ${links.stderr}`);
  if (!stats.ok) throw new Error(`rdma statistic show${where}: ${stats.stderr}`);
  return { ...(netns ? { netns } : {}), ports: parseLinks(links.stdout), stats: parseStats(stats.stdout) };
}

// ---------------------------------------------------------------------------------------------------------
// The exporter

export interface RdmaExporterOptions {
  registry: Registry;
  nodeName: string;
  log: (message: string) => void;
  run?: RdmaRunner;
  /** The SpiderEndpoints and pods of the node, for the pod of a device in a pod's namespace. */
  owners?: () => { endpoints: readonly SpiderEndpoint[]; pods: readonly Pod[] };
  /** Where named namespaces live (exclusive mode reads each); default /var/run/netns. */
  netnsDir?: string;
  /** How often a node without RDMA is looked at again (a driver loaded later); default 5 min. */
  recheckMs?: number;
  /** How long one reading serves scrapes; default 2 s. */
  cacheMs?: number;
}

/** Exports `rdma_*` counters on `registry` while the node has RDMA devices. */
export class RdmaExporter {
  readonly #o: Required<Omit<RdmaExporterOptions, "owners">> & Pick<RdmaExporterOptions, "owners">;
  readonly #families = new Map<string, Counter>();
  #inventory: RdmaInventory = { kind: "none", reason: "not read yet" };
  #reading?: { at: number; samples: Promise<RdmaSample[]> };
  #timer?: ReturnType<typeof setTimeout>;
  #saidNone = false;

  private constructor(o: RdmaExporterOptions) {
    this.#o = {
      run: runRdma,
      netnsDir: "/var/run/netns",
      recheckMs: 300_000,
      cacheMs: 2_000,
      ...o,
    };
  }

  /** Reads the node once; registers the families found, or says once that there is nothing to export. */
  static async start(o: RdmaExporterOptions): Promise<RdmaExporter> {
    const e = new RdmaExporter(o);
    await e.#look();
    return e;
  }

  /** True while devices are exported. */
  get active(): boolean {
    return this.#inventory.kind === "present";
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #look(): Promise<void> {
    try {
      this.#inventory = await readInventory(this.#o.run);
    } catch (e) {
      this.#inventory = { kind: "none", reason: (e as Error).message };
    }
    if (this.#inventory.kind === "none") {
      if (!this.#saidNone) {
        this.#o.log(`no RDMA device on this node (${this.#inventory.reason}); RDMA metrics are not exported`);
        this.#saidNone = true;
      }
      const timer = setTimeout(() => this.#look(), this.#o.recheckMs);
      Deno.unrefTimer(timer);
      this.#timer = timer;
      return;
    }
    const { devices, mode } = this.#inventory;
    this.#o.log(
      `RDMA devices ${devices.map((d) => d.name).join(", ")} (netns mode ${mode}): exporting rdma_* metrics`,
    );
    for (const s of await this.#samples()) this.#family(s.metric);
  }

  /** The samples of now, shared by every family of one scrape. */
  #samples(): Promise<RdmaSample[]> {
    const now = performance.now();
    if (this.#reading && now - this.#reading.at < this.#o.cacheMs) return this.#reading.samples;
    const samples = this.#read().catch((e) => {
      this.#o.log(`reading RDMA counters failed: ${(e as Error).message}`);
      return [];
    });
    this.#reading = { at: now, samples };
    return samples;
  }

  async #read(): Promise<RdmaSample[]> {
    if (this.#inventory.kind !== "present") return [];
    const { run } = this.#o;
    // The device list can change (VFs created or moved); the mode only by an administrator.
    const devices = parseDevices((await run(["dev", "show"])).stdout);
    const readings = [await readNamespace(run)];
    if (this.#inventory.mode === "exclusive") {
      // A device in exclusive mode is visible only in its namespace: read every named one (the runtime's).
      for (const netns of await this.#namespaces()) {
        try {
          const r = await readNamespace(run, netns);
          if (r.stats.length === 0) continue;
          readings.push({ ...r, ...await this.#podOf(netns, r.ports) });
        } catch (e) {
          this.#o.log(`reading RDMA counters in namespace ${netns} failed: ${(e as Error).message}`);
        }
      }
    }
    const samples = rdmaSamples(this.#o.nodeName, devices, readings);
    for (const s of samples) this.#family(s.metric);
    return samples;
  }

  async #namespaces(): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(this.#o.netnsDir)) names.push(e.name);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return names.sort();
  }

  async #podOf(netns: string, ports: RdmaPort[]): Promise<{ pod?: PodOwner }> {
    if (!this.#o.owners) return {};
    const netdevs = new Set(ports.map((p) => p.netdev).filter((n): n is string => !!n));
    if (netdevs.size === 0) return {};
    const { openNs } = await import("../net/mod.ts");
    const ns = openNs(`${this.#o.netnsDir}/${netns}`);
    try {
      const links = await ns.links();
      const indexes = new Set(links.filter((l) => netdevs.has(l.name)).map((l) => l.index));
      const ips = (await ns.addrs()).filter((a) => indexes.has(a.index)).map((a) => a.address);
      const { endpoints, pods } = this.#o.owners();
      const pod = podOwnerFor(ips, endpoints, pods);
      return pod ? { pod } : {};
    } finally {
      ns.close();
    }
  }

  /** The counter family of `metric`, registered on first sight; it reports the latest reading on each scrape. */
  #family(metric: string): void {
    if (this.#families.has(metric)) return;
    const samples = () => this.#samples();
    const counter: Counter = new Counter({
      name: `${metric}_total`,
      help: `RDMA hardware counter ${metric.slice("rdma_".length)} (rdma statistic show)`,
      labelNames: [...RDMA_LABELS],
      registers: [this.#o.registry],
      async collect() {
        const now = await samples();
        counter.reset();
        for (const s of now) if (s.metric === metric) counter.inc(s.labels, s.value);
      },
    });
    this.#families.set(metric, counter);
  }
}
