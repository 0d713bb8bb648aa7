// The SpiderCoordinator's status as a pure plan (spec §7.3): from what the cluster shows (the default CNI's
// name, kubeadm-config or the kube-controller-manager's flags, ServiceCIDR objects, Calico IPPools, the Cilium
// config and CiliumPodIPPools) to `Synced` with the overlay pod CIDRs and service CIDRs, or `NotReady` with a
// reason a user can act on and both lists emptied. The I/O that gathers these facts is in controller.ts.
//
// Where this differs from upstream on purpose (spec §13 #11: coordinators stuck NotReady on clusters without
// kubeadm-config, e.g. RKE2): kubeadm-config and the kube-controller-manager pod are only required when the
// answer depends on them (podCIDRType cluster, Cilium in kubernetes IPAM mode, or service CIDRs that no
// ServiceCIDR object gives); the kube-controller-manager's flags are read from command and args, in both the
// `--flag=value` and `--flag value` forms.

import type { CoordinatorStatus, PodCIDRType } from "../../api/types.ts";
import { IPError, parseCIDR } from "../../ip/mod.ts";
import type { PlannedEvent } from "../reconcile/events.ts";

/** The pod CIDR source the default CNI's configuration name implies (for podCIDRType auto). */
export function podCIDRTypeOfCNI(cniName: string | undefined): Exclude<PodCIDRType, "auto"> {
  switch (cniName) {
    case "calico":
    case "k8s-pod-network":
      return "calico";
    case "cilium":
      return "cilium";
    case "flannel":
      return "cluster";
    default:
      return "none";
  }
}

/** Pod and service CIDRs the cluster's own configuration gives, and where they were found. */
export interface ClusterCIDRs {
  podCIDR: string[];
  serviceCIDR: string[];
  source: string;
}

/** Keeps the valid CIDRs of a comma (or space) separated list, as given. */
function cidrList(text: string | undefined): string[] {
  if (!text) return [];
  return text.split(/[\s,]+/).filter((c) => c !== "" && validCIDR(c));
}

function validCIDR(text: string): boolean {
  try {
    parseCIDR(text, { canonical: false });
    return true;
  } catch (e) {
    if (e instanceof IPError) return false;
    throw e;
  }
}

/** podSubnet and serviceSubnet of kubeadm-config's ClusterConfiguration (a YAML document in a string). */
export function cidrsFromKubeadmConfig(data: Record<string, string> | undefined): ClusterCIDRs | undefined {
  const config = data?.ClusterConfiguration;
  if (config === undefined) return undefined;
  const value = (key: string) => config.match(new RegExp(`^\\s*${key}:\\s*["']?([^"'\\s#]+)`, "m"))?.[1];
  return {
    podCIDR: cidrList(value("podSubnet")),
    serviceCIDR: cidrList(value("serviceSubnet")),
    source: "ConfigMap kube-system/kubeadm-config",
  };
}

/** The shape of a kube-controller-manager pod that the flags are read from. */
export interface KCMPod {
  metadata?: { name?: string; namespace?: string };
  spec?: { containers?: { command?: string[]; args?: string[] }[] };
}

/**
 * `--cluster-cidr` and `--service-cluster-ip-range` of a kube-controller-manager pod (command, then args;
 * `--flag=value` or `--flag value`), or undefined when it has neither.
 */
export function cidrsFromKCMPod(pod: KCMPod): ClusterCIDRs | undefined {
  const words = (pod.spec?.containers ?? []).flatMap((c) => [...(c.command ?? []), ...(c.args ?? [])]);
  const flag = (name: string) => {
    for (let i = 0; i < words.length; i++) {
      const w = words[i];
      if (w.startsWith(`${name}=`)) return w.slice(name.length + 1);
      if (w === name) return words[i + 1];
    }
    return undefined;
  };
  const pod4 = flag("--cluster-cidr");
  const svc = flag("--service-cluster-ip-range");
  if (pod4 === undefined && svc === undefined) return undefined;
  return {
    podCIDR: cidrList(pod4),
    serviceCIDR: cidrList(svc),
    source: `the flags of kube-controller-manager pod ${pod.metadata?.namespace ?? ""}/${
      pod.metadata?.name ?? ""
    }`,
  };
}

/** An object with the metadata ordering and liveness are read from. */
interface Listed {
  metadata?: { name?: string; creationTimestamp?: string; deletionTimestamp?: string };
}

export interface CalicoIPPool extends Listed {
  spec?: { cidr?: string; disabled?: boolean };
}

export interface CiliumPodIPPool extends Listed {
  spec?: { ipv4?: { cidrs?: string[] }; ipv6?: { cidrs?: string[] } };
}

export interface ServiceCIDR extends Listed {
  spec?: { cidrs?: string[] };
}

/** Oldest first (the order upstream uses so the lists do not churn), name breaking ties; terminating ones out. */
export function byCreation<T extends Listed>(items: readonly T[]): T[] {
  return items.filter((i) => !i.metadata?.deletionTimestamp).sort((a, b) =>
    (a.metadata?.creationTimestamp ?? "").localeCompare(b.metadata?.creationTimestamp ?? "") ||
    (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? "")
  );
}

/** Everything the status depends on, as gathered from the cluster for one reconcile. */
export interface CoordinatorFacts {
  name: string;
  /** `spec.podCIDRType` as set (undefined: not set). */
  podCIDRType?: PodCIDRType;
  /** For auto: the default CNI's configuration name, or why it could not be read. */
  defaultCNI?: { dir: string; name?: string; file?: string; error?: string };
  /** From kubeadm-config, else the kube-controller-manager pod; undefined when neither exists. */
  cluster?: ClusterCIDRs;
  /** ServiceCIDR objects, when the API server serves them (undefined: not served). */
  serviceCIDRs?: ServiceCIDR[];
  /** Calico's IPPools (undefined: Calico's IPPool CRD is not installed). Gathered for podCIDRType calico. */
  calicoPools?: CalicoIPPool[];
  /** The Cilium ConfigMap (namespace/name) and its data (undefined: absent). Gathered for cilium. */
  cilium?: { configMap: string; data?: Record<string, string>; pools?: CiliumPodIPPool[] };
}

export interface StatusPlan {
  status: CoordinatorStatus;
  /** The podCIDRType in effect (auto resolved). */
  podCIDRType?: Exclude<PodCIDRType, "auto">;
  /** Where the CIDRs came from, for the Synced event. */
  sources: string[];
  /** Warning events of a NotReady plan. */
  events: PlannedEvent[];
}

class NotReady extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

/** Cilium's IPAM modes (its `ipam` key), as upstream reads them. */
const CILIUM_CLUSTER_POOL = ["cluster-pool", "cluster-pool-v2beta"];

/**
 * The status `facts` call for. Synced carries the CIDRs; NotReady says why, with both lists empty (the
 * coordinator plugin must not route with partial CIDRs), and a Warning event with the same text.
 */
export function planCoordinatorStatus(f: CoordinatorFacts): StatusPlan {
  const sources: string[] = [];
  let type: Exclude<PodCIDRType, "auto"> | undefined;
  try {
    type = resolveType(f);
    const needCluster = (what: string): ClusterCIDRs => {
      if (f.cluster) return f.cluster;
      throw new NotReady(
        "ClusterNotReady",
        `${what}, but neither ConfigMap kube-system/kubeadm-config nor a pod labelled ` +
          `component=kube-controller-manager can be found to read them from`,
      );
    };
    let overlay: string[];
    switch (type) {
      case "none":
        overlay = [];
        break;
      case "cluster": {
        const c = needCluster("podCIDRType cluster takes the pod CIDRs from the cluster's configuration");
        if (c.podCIDR.length === 0) {
          throw new NotReady(
            "ClusterNotReady",
            `podCIDRType cluster takes the pod CIDRs from the cluster's configuration, but ${c.source} ` +
              `names none (kubeadm podSubnet / --cluster-cidr); set podCIDRType to calico, cilium or none`,
          );
        }
        overlay = c.podCIDR;
        sources.push(c.source);
        break;
      }
      case "calico":
        overlay = calicoCIDRs(f);
        sources.push("Calico IPPools");
        break;
      case "cilium": {
        const r = ciliumCIDRs(f, needCluster);
        overlay = r.cidrs;
        sources.push(r.source);
        break;
      }
    }
    let service: string[];
    const fromObjects = (f.serviceCIDRs ? byCreation(f.serviceCIDRs) : []).flatMap((s) =>
      s.spec?.cidrs ?? []
    );
    if (fromObjects.length > 0) {
      service = fromObjects;
      sources.push("ServiceCIDR objects");
    } else {
      const c = needCluster(
        f.serviceCIDRs === undefined
          ? "the API server serves no ServiceCIDRs (networking.k8s.io, Kubernetes ≥ 1.29) to take the service CIDRs from"
          : "there is no ServiceCIDR object to take the service CIDRs from",
      );
      if (c.serviceCIDR.length === 0) {
        throw new NotReady(
          "ClusterNotReady",
          `the service CIDRs are unknown: no ServiceCIDR object, and ${c.source} names none ` +
            `(kubeadm serviceSubnet / --service-cluster-ip-range)`,
        );
      }
      service = c.serviceCIDR;
      sources.push(c.source);
    }
    return {
      status: { phase: "Synced", overlayPodCIDR: overlay, serviceCIDR: service },
      podCIDRType: type,
      sources: [...new Set(sources)],
      events: [],
    };
  } catch (err) {
    if (!(err instanceof NotReady)) throw err;
    const message = `SpiderCoordinator ${JSON.stringify(f.name)}: ${err.message}`;
    return {
      status: { phase: "NotReady", reason: message, overlayPodCIDR: [], serviceCIDR: [] },
      podCIDRType: type,
      sources: [],
      events: [{ type: "Warning", reason: err.reason, message }],
    };
  }
}

/** The podCIDRType in effect (auto resolved from the default CNI), or undefined when it cannot be told. */
export function effectivePodCIDRType(
  f: Pick<CoordinatorFacts, "podCIDRType" | "defaultCNI">,
): Exclude<PodCIDRType, "auto"> | undefined {
  try {
    return resolveType(f);
  } catch (err) {
    if (err instanceof NotReady) return undefined;
    throw err;
  }
}

function resolveType(f: Pick<CoordinatorFacts, "podCIDRType" | "defaultCNI">): Exclude<PodCIDRType, "auto"> {
  const t = f.podCIDRType;
  if (t === undefined) {
    throw new NotReady(
      "InvalidSpec",
      "spec.podCIDRType is not set; set it to auto, cluster, calico, cilium or none",
    );
  }
  if (t !== "auto") return t;
  const cni = f.defaultCNI;
  if (cni?.error) {
    throw new NotReady(
      "CNIConfigUnreadable",
      `podCIDRType auto reads the default CNI from ${cni.dir}, which failed: ${cni.error}; fix the ` +
        `configuration there or set podCIDRType explicitly`,
    );
  }
  return podCIDRTypeOfCNI(cni?.name);
}

function calicoCIDRs(f: CoordinatorFacts): string[] {
  if (f.calicoPools === undefined) {
    throw new NotReady(
      "CalicoNotReady",
      "podCIDRType is calico, but Calico's IPPool CRD (ippools.crd.projectcalico.org) is not installed; " +
        "install Calico first or set podCIDRType to match the cluster's CNI",
    );
  }
  return byCreation(f.calicoPools).filter((p) => !p.spec?.disabled && p.spec?.cidr).map((p) => p.spec!.cidr!);
}

function ciliumCIDRs(
  f: CoordinatorFacts,
  needCluster: (what: string) => ClusterCIDRs,
): { cidrs: string[]; source: string } {
  const where = `ConfigMap ${f.cilium?.configMap ?? "kube-system/cilium-config"}`;
  const data = f.cilium?.data;
  if (!data) {
    throw new NotReady(
      "CiliumNotReady",
      `podCIDRType is cilium, but ${where} does not exist; install Cilium first, or point ` +
        `SPIDERPOOL_CILIUM_CONFIGMAP_NAMESPACE_NAME at its ConfigMap`,
    );
  }
  // Cilium's own default IPAM mode is cluster-pool.
  const mode = data.ipam ?? "cluster-pool";
  if (CILIUM_CLUSTER_POOL.includes(mode)) {
    const cidrs: string[] = [];
    for (const key of ["cluster-pool-ipv4-cidr", "cluster-pool-ipv6-cidr"]) {
      for (const c of (data[key] ?? "").split(/[\s,]+/).filter((x) => x !== "")) {
        if (!validCIDR(c)) {
          throw new NotReady(
            "InvalidCIDR",
            `${where} key ${key} has ${JSON.stringify(c)}, which is not a CIDR`,
          );
        }
        cidrs.push(c);
      }
    }
    return { cidrs, source: `${where} (ipam ${mode})` };
  }
  if (mode === "multi-pool") {
    if (f.cilium?.pools === undefined) {
      throw new NotReady(
        "CiliumNotReady",
        `${where} sets ipam multi-pool, but the CiliumPodIPPool CRD (ciliumpodippools.cilium.io) is not installed`,
      );
    }
    const cidrs = byCreation(f.cilium.pools).flatMap((p) => [
      ...(p.spec?.ipv4?.cidrs ?? []),
      ...(p.spec?.ipv6?.cidrs ?? []),
    ]);
    return { cidrs, source: "CiliumPodIPPools" };
  }
  if (mode === "kubernetes") {
    const c = needCluster(`${where} sets ipam kubernetes, whose pod CIDRs are the cluster's`);
    return { cidrs: c.podCIDR, source: c.source };
  }
  throw new NotReady(
    "CiliumNotReady",
    `${where} sets ipam ${JSON.stringify(mode)}, which is not supported; supported: cluster-pool, ` +
      `cluster-pool-v2beta, multi-pool, kubernetes (or set podCIDRType to none)`,
  );
}

/** True when two statuses say the same (an absent reason equals an empty one; list order matters). */
export function sameStatus(a: CoordinatorStatus | undefined, b: CoordinatorStatus): boolean {
  const list = (l: string[] | undefined) => JSON.stringify(l ?? []);
  return a?.phase === b.phase && (a?.reason || "") === (b.reason || "") &&
    list(a?.overlayPodCIDR) === list(b.overlayPodCIDR) && list(a?.serviceCIDR) === list(b.serviceCIDR);
}
