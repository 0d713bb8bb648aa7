// Who a pod belongs to, as far as IPAM cares: whether it is still alive, its top controller (Deployment,
// StatefulSet, KubeVirt VMI, ...), and the name of the SpiderEndpoint that records its IPs. Callers pass plain
// Kubernetes objects and do any owner look-ups themselves.

import type { OwnerReference } from "../api/types.ts";

/** The parts of a Pod that IPAM reads; a Pod object from the API server fits as is. */
export interface PodLike {
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
    deletionGracePeriodSeconds?: number;
    ownerReferences?: OwnerReference[];
  };
  spec?: { nodeName?: string; restartPolicy?: string };
  status?: { phase?: string; reason?: string };
}

/** The controller at the top of a pod's owner chain; `kind: "Pod"` (apiVersion v1) for an orphan pod. */
export interface TopController {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid: string;
}

/** ConfigMap switches that change how a pod's IPs are kept. */
export interface WorkloadFlags {
  enableStatefulSet: boolean;
  enableKubevirtStaticIP: boolean;
}

/** apiVersions whose kinds Spiderpool knows; an owner with any other apiVersion is a third-party controller. */
const NATIVE_API_VERSIONS = new Set(["v1", "apps/v1", "batch/v1"]);

/** The kinds Spiderpool treats as native applications (auto-pools are created by the controller for them). */
export const NATIVE_CONTROLLER_KINDS: readonly string[] = [
  "Deployment",
  "ReplicaSet",
  "StatefulSet",
  "DaemonSet",
  "Job",
  "CronJob",
];

export const KUBEVIRT_VMI = { apiVersion: "kubevirt.io/v1", kind: "VirtualMachineInstance" } as const;

/**
 * Whether a pod still needs its IPs: not being deleted, and not finished for good (Succeeded without
 * restartPolicy Always, Failed with restartPolicy Never, or Evicted).
 */
export function isPodAlive(pod: PodLike): boolean {
  if (pod.metadata.deletionTimestamp) return false;
  const phase = pod.status?.phase;
  const restart = pod.spec?.restartPolicy;
  if (phase === "Succeeded" && restart !== "Always") return false;
  if (phase === "Failed" && restart === "Never") return false;
  if (phase === "Failed" && pod.status?.reason === "Evicted") return false;
  return true;
}

/** The controller owner reference (`controller: true`) of an object, if any. */
export function controllerOf(owners: readonly OwnerReference[] | undefined): OwnerReference | undefined {
  return owners?.find((o) => o.controller === true);
}

/**
 * The owner the caller must fetch before calling topController: the pod's ReplicaSet (to find its
 * Deployment) or Job (to find its CronJob). Undefined when no look-up is needed.
 */
export function ownerToResolve(pod: PodLike): OwnerReference | undefined {
  const owner = controllerOf(pod.metadata.ownerReferences);
  if (owner === undefined) return undefined;
  if (owner.apiVersion === "apps/v1" && owner.kind === "ReplicaSet") return owner;
  if (owner.apiVersion === "batch/v1" && owner.kind === "Job") return owner;
  return undefined;
}

/**
 * The top controller of a pod. `ownerOwners` are the ownerReferences of the owner named by ownerToResolve
 * (the ReplicaSet or Job); without them a ReplicaSet or Job is itself the top.
 *
 * ```ts
 * topController({ metadata: { name: "web-0", namespace: "default", uid: "u1" } });
 * // { apiVersion: "v1", kind: "Pod", name: "web-0", namespace: "default", uid: "u1" }
 * ```
 */
export function topController(pod: PodLike, ownerOwners?: readonly OwnerReference[]): TopController {
  const namespace = pod.metadata.namespace ?? "";
  const owner = controllerOf(pod.metadata.ownerReferences);
  if (owner === undefined) {
    return { apiVersion: "v1", kind: "Pod", name: pod.metadata.name, namespace, uid: pod.metadata.uid ?? "" };
  }
  const top = (o: OwnerReference): TopController => ({
    apiVersion: o.apiVersion,
    kind: o.kind,
    name: o.name,
    namespace,
    uid: o.uid,
  });
  if (!NATIVE_API_VERSIONS.has(owner.apiVersion)) return top(owner);
  const parent = controllerOf(ownerOwners);
  if (owner.kind === "ReplicaSet" && parent?.apiVersion === "apps/v1" && parent.kind === "Deployment") {
    return top(parent);
  }
  if (owner.kind === "Job" && parent?.apiVersion === "batch/v1" && parent.kind === "CronJob") {
    return top(parent);
  }
  return top(owner);
}

/** True when the top controller is a StatefulSet and StatefulSet fixed IPs are enabled. */
export function isStatefulSetPod(top: TopController, flags: WorkloadFlags): boolean {
  return flags.enableStatefulSet && top.apiVersion === "apps/v1" && top.kind === "StatefulSet";
}

/** True when the top controller is a KubeVirt VMI and KubeVirt fixed IPs are enabled. */
export function isKubevirtPod(top: TopController, flags: WorkloadFlags): boolean {
  return flags.enableKubevirtStaticIP && top.apiVersion === KUBEVIRT_VMI.apiVersion &&
    top.kind === KUBEVIRT_VMI.kind;
}

/** True for pods whose IPs outlive the pod (StatefulSet member, KubeVirt VM). */
export function hasStaticIP(top: TopController, flags: WorkloadFlags): boolean {
  return isStatefulSetPod(top, flags) || isKubevirtPod(top, flags);
}

/** The SpiderEndpoint name: the VMI name for KubeVirt pods with fixed IPs, else the pod name. */
export function endpointNameFor(pod: PodLike, top: TopController, flags: WorkloadFlags): string {
  return isKubevirtPod(top, flags) ? top.name : pod.metadata.name;
}

/** `<namespace>/<name>` as recorded in `status.allocatedIPs` (`name` = endpoint name, i.e. VMI for KubeVirt). */
export function podKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}
