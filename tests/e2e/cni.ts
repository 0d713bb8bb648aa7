// Runs a CNI plugin chain the way a container runtime does: environment variables, the network configuration
// on stdin, the result or error JSON on stdout. The main plugin is Debian's `bridge`, started inside the
// simulated node's namespace (so its bridge and host-side veths live there); it delegates IPAM through CNI_PATH.

const ROOT = new URL("../../", import.meta.url).pathname;

/**
 * The build under test: `dist/`, or the one $SPIDERPOOL_DIST names (a benchmark compares two builds in one run).
 */
export const DIST = (Deno.env.get("SPIDERPOOL_DIST") ?? `${ROOT}dist`).replace(/\/+$/, "");
/** Directory holding our plugin names (symlinks to the one binary), first on CNI_PATH. */
export const DIST_CNI = `${DIST}/cni`;
/** Debian's containernetworking-plugins. */
export const SYSTEM_CNI = "/usr/lib/cni";
export const CNI_PATH = `${DIST_CNI}:${SYSTEM_CNI}`;

export interface CniRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (a result on success, `{code, msg, details}` on failure). */
  json?: Record<string, unknown>;
  /** Wall time of the plugin process, ms. */
  ms: number;
}

export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

export interface CniCall {
  command: "ADD" | "DEL" | "CHECK" | "STATUS" | "GC";
  /** The network configuration: an object (sent as JSON) or raw text (sent as is, e.g. malformed). */
  conf: unknown;
  containerId: string;
  /** CNI_NETNS (a path); empty for a DEL whose sandbox is gone. */
  netns: string;
  ifName?: string;
  pod: PodRef;
  /** Plugin executable; default Debian's bridge. */
  plugin?: string;
  /** Namespace to run the plugin in (the simulated node's); default the caller's. */
  nodeNetns?: string;
  cniPath?: string;
  timeoutMs?: number;
  /** Extra environment for the plugin (e.g. SPIDERPOOL_NET_BACKEND). */
  env?: Record<string, string>;
}

/** The CNI_ARGS a kubelet passes for a pod sandbox. */
export function podCniArgs(pod: PodRef, containerId: string): string {
  return `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};` +
    `K8S_POD_INFRA_CONTAINER_ID=${containerId};K8S_POD_UID=${pod.uid}`;
}

/** Runs one CNI command; never throws for a plugin failure (look at `code` and `json`). */
export async function execCni(call: CniCall): Promise<CniRun> {
  const plugin = call.plugin ?? `${SYSTEM_CNI}/bridge`;
  const [cmd, args] = call.nodeNetns ? ["ip", ["netns", "exec", call.nodeNetns, plugin]] : [plugin, []];
  const started = performance.now();
  const child = new Deno.Command(cmd, {
    args,
    env: {
      CNI_COMMAND: call.command,
      CNI_CONTAINERID: call.containerId,
      CNI_NETNS: call.netns,
      CNI_IFNAME: call.ifName ?? "eth0",
      CNI_PATH: call.cniPath ?? CNI_PATH,
      CNI_ARGS: podCniArgs(call.pod, call.containerId),
      ...call.env,
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(call.timeoutMs ?? 120_000),
  }).spawn();
  const writer = child.stdin.getWriter();
  const text = typeof call.conf === "string" ? call.conf : JSON.stringify(call.conf);
  await writer.write(new TextEncoder().encode(text)).catch(() => {});
  await writer.close().catch(() => {});
  const out = await child.output();
  const ms = performance.now() - started;
  const stdout = new TextDecoder().decode(out.stdout);
  let json: Record<string, unknown> | undefined;
  try {
    json = stdout.trim() === "" ? undefined : JSON.parse(stdout);
  } catch {
    json = undefined;
  }
  return { code: out.code, stdout, stderr: new TextDecoder().decode(out.stderr), json, ms };
}

/** Throws with the plugin's output unless the run succeeded. */
export function expectOk(run: CniRun, what: string): CniRun {
  if (run.code !== 0) {
    throw new Error(`${what} failed (exit ${run.code}): ${run.stdout.trim()} ${run.stderr.trim()}`.trim());
  }
  return run;
}

/** The addresses of a CNI result (`ips[].address`). */
export function resultAddresses(run: CniRun): string[] {
  const ips = (run.json?.ips ?? []) as { address: string }[];
  return ips.map((i) => i.address);
}

export interface BridgeConfOptions {
  /** Network name. */
  name: string;
  /** Bridge device name (≤ 15 characters). */
  bridge: string;
  /** The spiderpool `ipam` section keys beyond `type` (e.g. `ipam_unix_socket_path`, `log_file_path`). */
  ipam: Record<string, unknown>;
  cniVersion?: string;
}

/** `bridge` with IPAM delegated to the spiderpool plugin. */
export function spiderpoolBridgeConf(o: BridgeConfOptions): Record<string, unknown> {
  return {
    cniVersion: o.cniVersion ?? "1.0.0",
    name: o.name,
    type: "bridge",
    bridge: o.bridge,
    ipam: { type: "spiderpool", ...o.ipam },
  };
}

/** `bridge` with Debian's node-local `host-local` IPAM over `subnet` (state kept in `dataDir`). */
export function hostLocalBridgeConf(
  o: {
    name: string;
    bridge: string;
    subnet: string;
    rangeStart?: string;
    rangeEnd?: string;
    dataDir: string;
  },
): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name: o.name,
    type: "bridge",
    bridge: o.bridge,
    ipam: {
      type: "host-local",
      dataDir: o.dataDir,
      ranges: [[{ subnet: o.subnet, rangeStart: o.rangeStart, rangeEnd: o.rangeEnd }]],
    },
  };
}
