// A real one-node Kubernetes cluster on this machine: the control plane of tests/kube, kube-scheduler,
// containerd 2.x with runc, a kubelet registered as a Node, and kube-proxy. Everything lives in one temp dir;
// stop() ends exactly the processes it started (by pid), unmounts what they mounted, and removes the cgroups,
// network namespaces, links and iptables chains they created. Also a CLI (`start --state-file F`).
//
// What this machine needs (cgroup v1 controllers with an empty v2 hierarchy at /sys/fs/cgroup/unified, no
// systemd as init): kubelet with `failCgroupV1: false` and `cgroupDriver: cgroupfs`, containerd's runc with
// `SystemdCgroup = false`, and every pod cgroup below a per-node `cgroupRoot` so nothing is shared with the host.

import { parseArgs } from "node:util";
import {
  type Component,
  type ControlPlane,
  spawn,
  startControlPlane,
  stopComponent,
  tail,
  waitHealthy,
} from "../kube/controlplane.ts";
import { freePorts } from "../kube/ports.ts";
import { CRD_DIR } from "../kube/crds.ts";

export const REPO_ROOT = new URL("../../", import.meta.url).pathname;
/** Debian's CNI reference plugins (bridge, loopback, host-local, ...). */
export const SYSTEM_CNI_DIR = "/usr/lib/cni";
const CGROUP_FS = "/sys/fs/cgroup";

export interface NodeOptions {
  /** Directory with kubelet, kube-scheduler, kube-proxy, kubectl, containerd, containerd-shim-runc-v2, ctr, runc,
   * helm, ocibuild; default: $SPIDERPOOL_NODE_BIN, else the last line of scripts/node-build.sh. */
  binDir?: string;
  /** Image tarballs to import into containerd before the kubelet starts (at least the pause image). */
  images?: ImageRef[];
  /** The OCI runtime containerd starts containers with; default binDir/runc (built from its Go module), or
   * $SPIDERPOOL_NODE_RUNC (e.g. Debian's /usr/sbin/runc, to compare). */
  runc?: string;
  /** Start kube-proxy (iptables mode). Default true. */
  kubeProxy?: boolean;
  log?: (message: string) => void;
}

export interface ImageRef {
  name: string;
  ref: string;
  tar: string;
}

export interface LocalNode {
  nodeName: string;
  kubeconfigPath: string;
  server: string;
  /** Temp dir holding everything: control plane, containerd root/state, kubelet root, CNI dirs, logs. */
  dir: string;
  binDir: string;
  /** The node's CNI directories, as containerd is configured (our plugins go to cniBinDir; Debian's plugins
   * come from /usr/lib/cni). */
  cniBinDir: string;
  cniConfDir: string;
  /** Where `spiderpool install` keeps builds, the IPAM socket, a unique bridge name for the pod network. */
  libDir: string;
  socketPath: string;
  /** A bridge made at start, standing for the node's NIC towards the underlay network. */
  bridgeName: string;
  /** How pods join it: macvlan interfaces on it where the kernel has macvlan (Spiderpool's underlay), else
   * ports of it through Debian's bridge plugin. $SPIDERPOOL_NODE_MAIN_PLUGIN chooses one. */
  mainPlugin: MainPlugin;
  /** Per-node cgroup parent of every pod cgroup. */
  cgroupRoot: string;
  containerdSocket: string;
  images: Record<string, string>;
  pids: Record<string, number>;
  /** Resolves with a message when a component dies on its own. */
  died: Promise<string>;
  kubectl(...args: string[]): Promise<string>;
  helm(...args: string[]): Promise<string>;
  ctr(...args: string[]): Promise<string>;
  importImage(tar: string): Promise<void>;
  stop(): Promise<void>;
}

export type MainPlugin = "macvlan" | "bridge";

export class CommandError extends Error {}

/** Runs a command; resolves with stdout, or throws with the command line and stderr. */
export async function run(cmd: string, args: string[], env?: Record<string, string>, stdin?: string) {
  const child = new Deno.Command(cmd, {
    args,
    env,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new CommandError(`${cmd} ${args.join(" ")} exited with ${out.code}: ${err || text}`);
  }
  return text;
}

/** Runs a build script and returns the last line it printed (its output directory). */
export async function lastLine(script: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: [`${REPO_ROOT}${script}`, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  if (!out.success || !lines.at(-1)) throw new Error(`${script} failed with exit code ${out.code}`);
  return lines.at(-1)!;
}

/** Builds (or reuses) the images of images/build.sh from dist/ (or `opts.dist`), which must be built. */
export async function buildImages(
  binDir: string,
  opts: { cacheDir?: string; dist?: string } = {},
): Promise<Record<string, ImageRef>> {
  const out = await new Deno.Command("bash", {
    args: [`${REPO_ROOT}images/build.sh`, ...(opts.cacheDir ? [opts.cacheDir] : [])],
    env: { OCIBUILD: `${binDir}/ocibuild`, ...(opts.dist ? { SPIDERPOOL_DIST: opts.dist } : {}) },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`images/build.sh failed with exit code ${out.code}`);
  const images: Record<string, ImageRef> = {};
  for (const line of new TextDecoder().decode(out.stdout).trim().split("\n")) {
    const [name, ref, tar] = line.split(" ");
    images[name] = { name, ref, tar };
  }
  return images;
}

/** The address of the interface holding the default route: the kubelet's node IP (it refuses loopback). */
async function nodeIP(): Promise<string> {
  const routes = JSON.parse(await run("ip", ["-j", "-4", "route", "show", "default"])) as { dev?: string }[];
  const dev = routes[0]?.dev;
  if (!dev) throw new Error("no IPv4 default route: the kubelet needs a non-loopback node IP");
  const addrs = JSON.parse(await run("ip", ["-j", "-4", "addr", "show", "dev", dev])) as {
    addr_info: { local: string; scope: string }[];
  }[];
  const ip = addrs[0]?.addr_info.find((a) => a.scope === "global")?.local;
  if (!ip) throw new Error(`no global IPv4 address on ${dev}`);
  return ip;
}

/** The v1 controller hierarchies mounted here, plus the v2 one (where a cgroup is created too). */
async function cgroupHierarchies(): Promise<string[]> {
  const out: string[] = [];
  for (const line of (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-");
    if (sep < 0) continue;
    const fstype = f[sep + 1];
    if ((fstype === "cgroup" || fstype === "cgroup2") && f[4].startsWith(CGROUP_FS)) out.push(f[4]);
  }
  return out;
}

/** Mount points under `dir`, deepest first (so nested mounts come off before their parents). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m): m is string => Boolean(m))
    .map((m) => m.replace(/\\040/g, " "))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
  return [...new Set(mounts)].sort((a, b) => b.length - a.length);
}

/** cgroup directories named `root` (or below it) in any hierarchy. */
export async function cgroupsOf(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const h of await cgroupHierarchies()) {
    try {
      await Deno.stat(`${h}${root}`);
      out.push(`${h}${root}`);
    } catch { /* not there */ }
  }
  return out;
}

/** Processes whose command line mentions `needle` (e.g. our containerd socket): the shims we caused. */
export async function pidsMentioning(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
    try {
      const cmdline = (await Deno.readTextFile(`/proc/${e.name}/cmdline`)).replaceAll("\0", " ");
      if (cmdline.includes(needle)) pids.push(Number(e.name));
    } catch { /* exited */ }
  }
  return pids;
}

/** The names of the iptables chains (all tables, IPv4 and IPv6). */
export async function iptablesChains(): Promise<Set<string>> {
  const chains = new Set<string>();
  for (const save of ["iptables-save", "ip6tables-save"]) {
    let out = "";
    try {
      out = await run(save, []);
    } catch {
      continue;
    }
    let table = "";
    for (const line of out.split("\n")) {
      if (line.startsWith("*")) table = line.slice(1);
      else if (line.startsWith(":")) {
        chains.add(`${save.startsWith("ip6") ? "v6" : "v4"}/${table}/${line.slice(1).split(" ")[0]}`);
      }
    }
  }
  return chains;
}

async function removeChains(chains: string[]): Promise<void> {
  // Rules jumping to a chain must go before the chain: flush every chain first, then drop the jumps, then delete.
  const byFamily = (c: string) => c.startsWith("v6") ? "ip6tables" : "iptables";
  for (const c of chains) {
    const [, table, name] = c.split("/");
    await run(byFamily(c), ["-t", table, "-F", name]).catch(() => {});
  }
  for (const c of chains) {
    const [, table, name] = c.split("/");
    const save = await run(`${byFamily(c)}-save`, ["-t", table]).catch(() => "");
    for (const line of save.split("\n")) {
      if (line.startsWith("-A ") && line.includes(`-j ${name}`)) {
        await run(byFamily(c), ["-t", table, ...splitRule(line.replace(/^-A /, "-D "))]).catch(() => {});
      }
    }
  }
  for (const c of chains) {
    const [, table, name] = c.split("/");
    await run(byFamily(c), ["-t", table, "-X", name]).catch(() => {});
  }
}

/** Splits an iptables-save rule line into arguments (quoted comments stay one argument). */
function splitRule(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of line.matchAll(re)) out.push(m[1] !== undefined ? m[1].replace(/\\"/g, '"') : m[2]);
  return out;
}

/** The kernel settings the kubelet changes at start (its setupKernelTunables, with protectKernelDefaults off). */
export const KUBELET_SYSCTLS = [
  "vm/overcommit_memory",
  "vm/panic_on_oom",
  "kernel/panic",
  "kernel/panic_on_oops",
  "kernel/keys/root_maxkeys",
  "kernel/keys/root_maxbytes",
];

export async function readSysctls(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const k of KUBELET_SYSCTLS) out[k] = (await Deno.readTextFile(`/proc/sys/${k}`)).trim();
  return out;
}

export async function linkExists(name: string): Promise<boolean> {
  const out = await new Deno.Command("ip", {
    args: ["link", "show", "dev", name],
    stdout: "null",
    stderr: "null",
  })
    .output();
  return out.success;
}

function containerdConfig(o: {
  dir: string;
  socket: string;
  runc: string;
  cniBinDir: string;
  cniConfDir: string;
  pauseRef: string;
}): string {
  // Version 3 is containerd 2.x's configuration schema. The CNI plugins come from the node's CNI dir (where
  // `spiderpool install` links ours) and from Debian's /usr/lib/cni (bridge, loopback).
  return `version = 3
root = "${o.dir}/containerd/root"
state = "${o.dir}/containerd/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
  "io.containerd.nri.v1.nri",
]

[grpc]
  address = "${o.socket}"

[ttrpc]
  address = "${o.socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = "${o.dir}/containerd/opt"

  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "${o.pauseRef}"

  [plugins.'io.containerd.cri.v1.runtime']
    # Network namespaces go below the state dir, not /var/run/netns, so this node's are all in one place.
    netns_mounts_under_state_dir = true
    enable_selinux = false
    # This machine's root has no CAP_SYS_RESOURCE, so no process may lower its OOM score below containerd's
    # own: clamp the sandboxes' (-998) and critical pods' (-997) scores to it instead of failing to start them.
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["${o.cniBinDir}", "${SYSTEM_CNI_DIR}"]
      conf_dir = "${o.cniConfDir}"
      max_conf_num = 1
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "${o.runc}"
          # No systemd here: the kubelet's cgroupfs driver and runc's must agree.
          SystemdCgroup = false

  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
`;
}

function kubeletConfig(o: {
  dir: string;
  socket: string;
  cgroupRoot: string;
  address: string;
  port: number;
  healthzPort: number;
  resolvConf: string;
  caFile: string;
}): string {
  return JSON.stringify(
    {
      apiVersion: "kubelet.config.k8s.io/v1beta1",
      kind: "KubeletConfiguration",
      // This machine mounts cgroup v1 controllers (the v2 hierarchy beside them has no controllers): kubelet
      // 1.35+ refuses v1 unless told otherwise.
      failCgroupV1: false,
      cgroupDriver: "cgroupfs",
      cgroupRoot: o.cgroupRoot,
      cgroupsPerQOS: true,
      containerRuntimeEndpoint: `unix://${o.socket}`,
      address: o.address,
      port: o.port,
      readOnlyPort: 0,
      healthzBindAddress: "127.0.0.1",
      healthzPort: o.healthzPort,
      // Only the API server (no client cert configured there) talks to this port, bound to the node IP.
      authentication: {
        anonymous: { enabled: true },
        webhook: { enabled: false },
        x509: { clientCAFile: o.caFile },
      },
      authorization: { mode: "AlwaysAllow" },
      failSwapOn: false,
      // Lowering it needs CAP_SYS_RESOURCE, which root does not have on this machine.
      oomScoreAdj: 0,
      resolvConf: o.resolvConf,
      clusterDomain: "cluster.local",
      // A shared build machine's disk and memory are not this node's to police.
      evictionHard: { "memory.available": "1%", "nodefs.available": "1%", "imagefs.available": "1%" },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      serializeImagePulls: false,
      registerNode: true,
      rotateCertificates: false,
      serverTLSBootstrap: false,
      protectKernelDefaults: false,
      makeIPTablesUtilChains: false,
      syncFrequency: "10s",
      nodeStatusUpdateFrequency: "5s",
      fileCheckFrequency: "20s",
      shutdownGracePeriod: "0s",
      logging: { format: "text", verbosity: 1 },
    },
    null,
    2,
  ) + "\n";
}

function kubeProxyConfig(
  o: { kubeconfig: string; nodeName: string; healthz: number; metrics: number },
): string {
  return JSON.stringify(
    {
      apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
      kind: "KubeProxyConfiguration",
      mode: "iptables",
      clientConnection: { kubeconfig: o.kubeconfig },
      hostnameOverride: o.nodeName,
      bindAddress: "127.0.0.1",
      healthzBindAddress: `127.0.0.1:${o.healthz}`,
      metricsBindAddress: `127.0.0.1:${o.metrics}`,
      // Leave the host's conntrack sysctls alone, and no NodePorts on loopback (that would need route_localnet).
      conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: "0s", tcpCloseWaitTimeout: "0s" },
      nodePortAddresses: ["primary"],
      iptables: { localhostNodePorts: false, masqueradeAll: false },
    },
    null,
    2,
  ) + "\n";
}

/**
 * Makes the node's underlay bridge and picks the main plugin: macvlan when this kernel can put a macvlan link
 * on the bridge (checked by making one), else bridge. `wanted` ("macvlan" or "bridge") overrides the choice;
 * asking for macvlan where the kernel lacks it is an error.
 */
export async function makeUnderlay(name: string, wanted?: string): Promise<MainPlugin> {
  if (wanted !== undefined && wanted !== "macvlan" && wanted !== "bridge") {
    throw new Error(`SPIDERPOOL_NODE_MAIN_PLUGIN=${JSON.stringify(wanted)}: use macvlan or bridge`);
  }
  await run("ip", ["link", "add", name, "type", "bridge"]);
  await run("ip", ["link", "set", name, "up"]);
  if (wanted === "bridge") return "bridge";
  const probe = `mvp${name.slice(-8)}`;
  try {
    await run("ip", ["link", "add", "link", name, "name", probe, "type", "macvlan", "mode", "bridge"]);
    await run("ip", ["link", "del", probe]);
    return "macvlan";
  } catch (err) {
    if (wanted === "macvlan") {
      throw new Error(
        `SPIDERPOOL_NODE_MAIN_PLUGIN=macvlan, but this kernel cannot make a macvlan link: ${err}`,
      );
    }
    return "bridge";
  }
}

/** Creates the per-node cgroup parent in every hierarchy (the kubelet requires that it exists). */
async function makeCgroupRoot(root: string): Promise<void> {
  for (const h of await cgroupHierarchies()) {
    await Deno.mkdir(`${h}${root}`, { recursive: true });
    if (h.endsWith("/cpuset")) {
      // A new cpuset cgroup starts with no CPUs and no memory nodes: copy the parent's, or nothing can join it.
      for (const f of ["cpuset.cpus", "cpuset.mems"]) {
        await Deno.writeTextFile(`${h}${root}/${f}`, await Deno.readTextFile(`${h}/${f}`));
      }
    }
  }
}

/** Removes a cgroup tree bottom-up in every hierarchy; a cgroup that still has processes is reported. */
async function removeCgroupTree(root: string, log: (m: string) => void): Promise<void> {
  const rm = async (path: string) => {
    for await (const e of Deno.readDir(path)) {
      if (e.isDirectory) await rm(`${path}/${e.name}`);
    }
    for (let i = 0; i < 20; i++) {
      try {
        await Deno.remove(path);
        return;
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return;
        // EBUSY while the kernel finishes reaping the last task of the cgroup.
        await new Promise((r) => setTimeout(r, 100));
        if (i === 19) log(`cannot remove cgroup ${path}: ${err instanceof Error ? err.message : err}`);
      }
    }
  };
  for (const path of await cgroupsOf(root)) await rm(path);
}

/** Starts the control plane and the node; resolves once the Node is registered. */
export async function startNode(opts: NodeOptions = {}): Promise<LocalNode> {
  const log = opts.log ?? ((m: string) => console.error(`node: ${m}`));
  const binDir = opts.binDir ?? Deno.env.get("SPIDERPOOL_NODE_BIN") ??
    await lastLine("scripts/node-build.sh");
  const suffix = crypto.randomUUID().slice(0, 6);
  const nodeName = `spiderpool-node-${suffix}`;
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-node-" });
  const logDir = `${dir}/logs`;
  await Deno.mkdir(logDir);
  const components: Component[] = [];
  let stopped = false;
  let reportDeath: (m: string) => void = () => {};
  const died = new Promise<string>((r) => reportDeath = r);
  const onExit = (c: Component, status: Deno.CommandStatus) => {
    if (!stopped) {
      reportDeath(`${c.name} (pid ${c.child.pid}) exited with code ${status.code}; see ${c.logPath}`);
    }
  };
  const cgroupRoot = `/spiderpool-node-${suffix}`;
  const containerdSocket = `${dir}/containerd/containerd.sock`;
  const cniBinDir = `${dir}/opt/cni/bin`;
  const cniConfDir = `${dir}/etc/cni/net.d`;
  const bridgeName = `spbr${suffix}`;
  const chainsBefore = await iptablesChains();
  const sysctlsBefore = await readSysctls();
  let cp: ControlPlane | undefined;
  let kubeconfigPath = "";
  let mainPlugin: MainPlugin = "bridge";
  const env = {
    KUBECONFIG: "",
    HELM_CACHE_HOME: `${dir}/helm/cache`,
    HELM_CONFIG_HOME: `${dir}/helm/config`,
    HELM_DATA_HOME: `${dir}/helm/data`,
  };
  const kubectl = (...args: string[]) => run(`${binDir}/kubectl`, ["--kubeconfig", kubeconfigPath, ...args]);
  const helm = (...args: string[]) => run(`${binDir}/helm`, ["--kubeconfig", kubeconfigPath, ...args], env);
  const ctr = (...args: string[]) =>
    run(`${binDir}/ctr`, ["--address", containerdSocket, "-n", "k8s.io", ...args]);
  const importImage = async (tar: string) => {
    await ctr("images", "import", "--platform", "linux/amd64", "--no-unpack=false", tar);
  };
  const byName = (n: string) => components.find((c) => c.name === n);

  const stop = async () => {
    if (stopped) return;
    const started = performance.now();
    // 1. While kubelet, containerd and the pod network still run: evict every pod that has a network namespace,
    //    so the runtime calls CNI DEL for each through the plugins still installed.
    if (byName("kubelet") && !byName("kubelet")!.done) {
      await drain().catch((err) => log(`drain: ${err instanceof Error ? err.message : err}`));
    }
    stopped = true;
    // 2. The node's own processes, newest first.
    for (const n of ["kube-proxy", "kube-scheduler", "kubelet"]) {
      const c = byName(n);
      if (c) await stopComponent(c);
    }
    if (byName("kube-proxy")) {
      await run(`${binDir}/kube-proxy`, ["--cleanup", "--proxy-mode=iptables"]).catch((err) =>
        log(`kube-proxy --cleanup: ${err.message}`)
      );
    }
    // 3. Containers the kubelet left (hostNetwork pods such as the agent): kill their tasks, then containerd,
    //    then any shim still alive (shims outlive containerd by design).
    const c = byName("containerd");
    if (c && !c.done) {
      const tasks = await ctr("tasks", "ls", "-q").catch(() => "");
      for (const id of tasks.split("\n").filter(Boolean)) {
        await ctr("tasks", "kill", "-s", "SIGKILL", id).catch(() => {});
      }
      for (let i = 0; i < 50 && (await ctr("tasks", "ls", "-q").catch(() => "")).trim(); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      await stopComponent(c);
    }
    for (const pid of await pidsMentioning(containerdSocket)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    // 4. Mounts (rootfs overlays, shm, netns files, pod volumes), cgroups, links, chains.
    for (let round = 0; round < 3; round++) {
      const mounts = await mountsUnder(dir);
      if (mounts.length === 0) break;
      for (const m of mounts) await run("umount", ["-l", m]).catch(() => {});
    }
    await removeCgroupTree(cgroupRoot, log);
    if (await linkExists(bridgeName)) await run("ip", ["link", "del", bridgeName]).catch(() => {});
    const added = [...await iptablesChains()].filter((ch) => !chainsBefore.has(ch));
    if (added.length > 0) await removeChains(added);
    for (const [k, v] of Object.entries(sysctlsBefore)) {
      await Deno.writeTextFile(`/proc/sys/${k}`, v).catch((err) =>
        log(`cannot restore ${k}: ${err.message}`)
      );
    }
    if (cp) await cp.stop();
    if (Deno.env.get("SPIDERPOOL_KEEP_NODE_DIR")) log(`kept ${dir}`);
    else {await Deno.remove(dir, { recursive: true }).catch((err) =>
        log(`cannot remove ${dir}: ${err.message}`)
      );}
    log(`stopped in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  };

  /** Evicts the node's pods (DaemonSet pods too) and waits until no pod with its own network is left. */
  const drain = async () => {
    await kubectl("cordon", nodeName);
    await kubectl(
      "drain",
      nodeName,
      "--ignore-daemonsets",
      "--delete-emptydir-data",
      "--force",
      "--disable-eviction",
      "--grace-period=1",
      "--timeout=90s",
    ).catch((err) => log(`kubectl drain: ${err.message}`));
    // DaemonSet pods in the pod network (not hostNetwork) would come back: their DaemonSets go.
    const pods = JSON.parse(
      await kubectl("get", "pods", "-A", "--field-selector", `spec.nodeName=${nodeName}`, "-o", "json"),
    ) as {
      items: {
        metadata: { namespace: string; name: string; ownerReferences?: { kind: string; name: string }[] };
        spec: { hostNetwork?: boolean };
      }[];
    };
    for (const p of pods.items.filter((p) => !p.spec.hostNetwork)) {
      const ds = p.metadata.ownerReferences?.find((o) => o.kind === "DaemonSet");
      if (ds) {
        await kubectl("-n", p.metadata.namespace, "delete", "daemonset", ds.name, "--wait=false").catch(
          () => {},
        );
      }
      await kubectl(
        "-n",
        p.metadata.namespace,
        "delete",
        "pod",
        p.metadata.name,
        "--grace-period=1",
        "--wait=false",
      )
        .catch(() => {});
    }
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      const left = JSON.parse(
        await kubectl("get", "pods", "-A", "--field-selector", `spec.nodeName=${nodeName}`, "-o", "json"),
      ) as {
        items: { spec: { hostNetwork?: boolean } }[];
      };
      if (!left.items.some((p) => !p.spec.hostNetwork)) return;
      await new Promise((r) => setTimeout(r, 500));
    }
    log("pods with their own network were still there after 90 s");
  };

  try {
    // --- control plane (with the CRDs, so the controller-manager's GC watches them from the start) -----------
    cp = await startControlPlane({ crdDir: CRD_DIR, log: (m) => log(`controlplane: ${m}`) });
    kubeconfigPath = cp.kubeconfigPath;
    const caFile = `${cp.dir}/pki/ca.crt`;
    const [schedPort, kubeletPort, kubeletHealthz, proxyHealthz, proxyMetrics] = freePorts(5);

    spawn(logDir, components, "kube-scheduler", `${binDir}/kube-scheduler`, [
      `--kubeconfig=${kubeconfigPath}`,
      `--authentication-kubeconfig=${kubeconfigPath}`,
      `--authorization-kubeconfig=${kubeconfigPath}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${schedPort}`,
      `--cert-dir=${dir}/scheduler-certs`,
    ], onExit);

    // --- containerd ---------------------------------------------------------------------------------------------
    for (const d of [cniBinDir, cniConfDir, `${dir}/containerd`, `${dir}/kubelet`]) {
      await Deno.mkdir(d, { recursive: true });
    }
    const pause = opts.images?.find((i) => i.name === "pause");
    if (!pause) throw new Error("startNode needs the pause image (images/build.sh) in opts.images");
    await Deno.writeTextFile(
      `${dir}/containerd/config.toml`,
      containerdConfig({
        dir,
        socket: containerdSocket,
        runc: opts.runc ?? Deno.env.get("SPIDERPOOL_NODE_RUNC") ?? `${binDir}/runc`,
        cniBinDir,
        cniConfDir,
        pauseRef: pause.ref,
      }),
    );
    const containerdEnv = `PATH=${binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
    const containerd = spawn(logDir, components, "containerd", "env", [
      containerdEnv,
      `${binDir}/containerd`,
      `--config=${dir}/containerd/config.toml`,
      "--log-level=info",
    ], onExit);
    await waitFor(containerd, async () => {
      await ctr("version");
      return true;
    }, 60_000);
    for (const image of opts.images ?? []) await importImage(image.tar);
    log(`containerd ready; imported ${(opts.images ?? []).map((i) => i.ref).join(", ")}`);

    // --- the pods' underlay -----------------------------------------------------------------------------------------
    mainPlugin = await makeUnderlay(bridgeName, Deno.env.get("SPIDERPOOL_NODE_MAIN_PLUGIN") || undefined);
    log(`pods join ${bridgeName} through ${mainPlugin}`);

    // --- kubelet --------------------------------------------------------------------------------------------------
    await makeCgroupRoot(cgroupRoot);
    const address = await nodeIP();
    // Pods get no name servers: nothing in this cluster resolves names, and no query may leave the machine.
    await Deno.writeTextFile(`${dir}/kubelet/resolv.conf`, "options ndots:1\n");
    await Deno.writeTextFile(
      `${dir}/kubelet/config.json`,
      kubeletConfig({
        dir,
        socket: containerdSocket,
        cgroupRoot,
        address,
        port: kubeletPort,
        healthzPort: kubeletHealthz,
        resolvConf: `${dir}/kubelet/resolv.conf`,
        caFile,
      }),
    );
    const kubelet = spawn(logDir, components, "kubelet", "env", [
      containerdEnv,
      `${binDir}/kubelet`,
      `--config=${dir}/kubelet/config.json`,
      `--kubeconfig=${kubeconfigPath}`,
      `--root-dir=${dir}/kubelet/root`,
      `--cert-dir=${dir}/kubelet/pki`,
      `--hostname-override=${nodeName}`,
      `--node-ip=${address}`,
    ], onExit);
    await waitHealthy(
      kubelet,
      `http://127.0.0.1:${kubeletHealthz}/healthz`,
      undefined,
      120_000,
      (b) => b === "ok",
    );
    await waitFor(kubelet, async () => {
      await kubectl("get", "node", nodeName);
      return true;
    }, 120_000);
    log(`kubelet registered Node ${nodeName} (${address})`);

    // --- kube-proxy -----------------------------------------------------------------------------------------------
    if (opts.kubeProxy ?? true) {
      await Deno.writeTextFile(
        `${dir}/kube-proxy.json`,
        kubeProxyConfig({
          kubeconfig: kubeconfigPath,
          nodeName,
          healthz: proxyHealthz,
          metrics: proxyMetrics,
        }),
      );
      const proxy = spawn(logDir, components, "kube-proxy", "env", [
        containerdEnv,
        `${binDir}/kube-proxy`,
        `--config=${dir}/kube-proxy.json`,
      ], onExit);
      await waitHealthy(proxy, `http://127.0.0.1:${proxyHealthz}/livez`, undefined, 60_000, () => true);
      log("kube-proxy running (iptables mode)");
    }
  } catch (err) {
    for (const c of components) {
      console.error(`--- last lines of ${c.logPath} ---\n${await tail(c.logPath, 25)}`);
    }
    Deno.env.set("SPIDERPOOL_KEEP_NODE_DIR", "1");
    await stop();
    throw new Error(`node failed to start (kept ${dir}): ${err instanceof Error ? err.message : err}`, {
      cause: err,
    });
  }

  return {
    nodeName,
    kubeconfigPath,
    server: cp.server,
    dir,
    binDir,
    cniBinDir,
    cniConfDir,
    libDir: `${dir}/opt/spiderpool`,
    socketPath: `${dir}/run/spidernet/spiderpool.sock`,
    bridgeName,
    mainPlugin,
    cgroupRoot,
    containerdSocket,
    images: Object.fromEntries((opts.images ?? []).map((i) => [i.name, i.ref])),
    pids: {
      ...cp.pids,
      ...Object.fromEntries(components.map((c) => [c.name, c.child.pid])),
    },
    died: Promise.race([died, cp.died]),
    kubectl,
    helm,
    ctr,
    importImage,
    stop,
  };
}

/** Polls `check` until it returns true, the component dies, or the timeout passes. */
async function waitFor(c: Component, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (c.done) throw new Error(`${c.name} exited before becoming ready; see ${c.logPath}`);
    try {
      if (await check()) return;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(
    `${c.name} not ready after ${timeoutMs} ms (last: ${last.slice(0, 300)}); see ${c.logPath}`,
  );
}

/** Helm values that fit the chart to this node: its CNI dirs, socket, bridge, API server and our image. */
export function chartValues(
  node: Pick<
    LocalNode,
    "cniBinDir" | "cniConfDir" | "libDir" | "socketPath" | "bridgeName" | "mainPlugin" | "server" | "images"
  >,
  image = node.images.spiderpool,
): Record<string, unknown> {
  const at = image.lastIndexOf(":");
  const [registry, ...repo] = image.slice(0, at).split("/");
  const imageValues = {
    registry,
    repository: repo.join("/"),
    tag: image.slice(at + 1),
    pullPolicy: "IfNotPresent",
  };
  const api = new URL(node.server);
  return {
    global: {
      cniBinHostPath: node.cniBinDir,
      cniConfHostPath: node.cniConfDir,
      libHostPath: node.libDir,
      ipamUNIXSocketHostPath: node.socketPath,
      // The API server listens on loopback only and the agent runs in the host's network.
      k8sServiceHost: api.hostname,
      k8sServicePort: api.port,
    },
    ipam: { enableIPv6: false },
    spiderpoolAgent: {
      image: imageValues,
      // Spiderpool is this cluster's only network: the conflist is the chart's, with coordinator after the
      // main plugin (the chart's default), in underlay mode for the pods' eth0.
      cniConfig: {
        install: true,
        mainPlugin: node.mainPlugin,
        ...(node.mainPlugin === "macvlan"
          ? { macvlanMaster: node.bridgeName }
          : { bridgeName: node.bridgeName }),
      },
      // The agent runs in this machine's own network namespace (hostNetwork): it must not tune its sysctls.
      tuneSysctlConfig: false,
    },
    // The controller as the chart deploys it (webhooks, tls.method auto); one replica, as there is one node.
    spiderpoolController: { image: imageValues },
    spiderpoolInit: { image: imageValues },
  };
}

/** State written by the CLI for scripts/node.sh and tests in other processes. */
export interface NodeState {
  nodeName: string;
  kubeconfigPath: string;
  server: string;
  dir: string;
  binDir: string;
  cniBinDir: string;
  cniConfDir: string;
  libDir: string;
  socketPath: string;
  bridgeName: string;
  mainPlugin: MainPlugin;
  cgroupRoot: string;
  containerdSocket: string;
  images: Record<string, string>;
  pids: Record<string, number>;
  /** pid of the CLI itself: SIGTERM it to stop everything. */
  pid: number;
}

const USAGE = `usage: deno run -A tests/node/node.ts start --state-file FILE [--no-kube-proxy]
       deno run -A tests/node/node.ts values --state-file FILE   (Helm values for charts/spiderpool, JSON)

Builds what is missing (scripts/kube-build.sh, scripts/node-build.sh, scripts/build.sh must have run for dist/,
images/build.sh), starts the control plane, kube-scheduler, containerd, a kubelet and kube-proxy, writes FILE
(JSON) once the Node is registered, and stays in the foreground until SIGTERM or SIGINT, then stops everything.`;

async function main(args: string[]): Promise<number> {
  if (args[0] === "values") {
    const { values } = parseArgs({
      args: args.slice(1),
      strict: true,
      options: { "state-file": { type: "string" } },
    });
    if (!values["state-file"]) {
      console.error(`missing --state-file\n${USAGE}`);
      return 2;
    }
    const state = JSON.parse(await Deno.readTextFile(values["state-file"])) as NodeState;
    console.log(JSON.stringify(chartValues(state), null, 2));
    return 0;
  }
  if (args[0] !== "start") {
    console.error(USAGE);
    return 2;
  }
  const { values } = parseArgs({
    args: args.slice(1),
    strict: true,
    options: { "state-file": { type: "string" }, "no-kube-proxy": { type: "boolean", default: false } },
  });
  const stateFile = values["state-file"];
  if (!stateFile) {
    console.error(`missing --state-file\n${USAGE}`);
    return 2;
  }
  let stopRequested: (signal: string) => void = () => {};
  const stopSignal = new Promise<string>((r) => stopRequested = r);
  const handlers = (["SIGTERM", "SIGINT"] as const).map((s) => [s, () => stopRequested(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);

  const started = performance.now();
  const binDir = Deno.env.get("SPIDERPOOL_NODE_BIN") ?? await lastLine("scripts/node-build.sh");
  const images = await buildImages(binDir);
  const node = await startNode({
    binDir,
    images: Object.values(images),
    kubeProxy: !values["no-kube-proxy"],
  });
  const state: NodeState = {
    nodeName: node.nodeName,
    kubeconfigPath: node.kubeconfigPath,
    server: node.server,
    dir: node.dir,
    binDir: node.binDir,
    cniBinDir: node.cniBinDir,
    cniConfDir: node.cniConfDir,
    libDir: node.libDir,
    socketPath: node.socketPath,
    bridgeName: node.bridgeName,
    mainPlugin: node.mainPlugin,
    cgroupRoot: node.cgroupRoot,
    containerdSocket: node.containerdSocket,
    images: node.images,
    pids: node.pids,
    pid: Deno.pid,
  };
  await Deno.writeTextFile(`${stateFile}.tmp`, JSON.stringify(state, null, 2) + "\n");
  await Deno.rename(`${stateFile}.tmp`, stateFile);
  console.error(
    `node: ${node.nodeName} running (${((performance.now() - started) / 1000).toFixed(1)} s); ` +
      `KUBECONFIG=${node.kubeconfigPath}; SIGTERM pid ${Deno.pid} to stop`,
  );
  const reason = await Promise.race([stopSignal.then((s) => `received ${s}`), node.died]);
  console.error(`node: ${reason}; stopping`);
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  await node.stop();
  await Deno.remove(stateFile).catch(() => {});
  return reason.startsWith("received") ? 0 : 1;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    console.error(`node: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
}
