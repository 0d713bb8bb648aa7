// CNI GC (spec 1.1) for one network on one node, as plain decisions. A GC names its network and the
// attachments the runtime still has on it. At ADD the agent records on the SpiderEndpoint the sandbox
// (container ID) and, per NIC, the network the NIC was attached through; a GC only considers NICs attached
// through its own network, of sandboxes with no attachment listed as valid there, and releases nothing of a
// sandbox that may still be running (sandboxMayRun, decided from the pod read from the API server).

import type { SpiderEndpoint } from "../api/types.ts";
import { isPodAlive, type PodLike } from "./workload.ts";

/** Annotation on a SpiderEndpoint: the container (sandbox) its addresses were allocated for. */
export const CONTAINER_ID_ANNOTATION = "ipam.spidernet.io/container-id";
/**
 * Annotation on a SpiderEndpoint: JSON object NIC → CNI network name (the configuration's `name`) of the
 * attachment that recorded it, e.g. `{"eth0":"macvlan-a","net1":"macvlan-b"}`.
 */
export const NIC_NETWORKS_ANNOTATION = "ipam.spidernet.io/nic-networks";

/**
 * Allowance for the clock of the API server (which set `deletionTimestamp`) running behind this node's: a
 * terminating pod keeps its addresses until this long after its grace period.
 */
export const GRACE_SKEW_MS = 5_000;

/** The NIC → network records of an endpoint; a missing or malformed annotation records nothing. */
export function nicNetworks(
  annotations: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  const raw = annotations?.[NIC_NETWORKS_ANNOTATION];
  if (!raw) return {};
  try {
    const v = JSON.parse(raw);
    if (typeof v !== "object" || v === null || Array.isArray(v)) return {};
    return Object.fromEntries(Object.entries(v).filter(([, n]) => typeof n === "string")) as Record<
      string,
      string
    >;
  } catch {
    return {};
  }
}

/** One ADD as the endpoint records it. */
export interface AttachmentRecord {
  containerID: string;
  ifName: string;
  /** The CNI network of the ADD; absent when the plugin did not send it (an upstream plugin). */
  networkName?: string;
  /** The NICs the endpoint lists after this ADD (an ADD may allocate for several NICs at once). */
  nics: readonly string[];
}

/**
 * The endpoint annotations after an ADD: the container ID, and the network of every listed NIC. A NIC
 * allocated by this ADD without its own ADD yet (several NICs from one annotation) is recorded under this
 * ADD's network, until its own ADD names its network. A new container ID starts the records afresh: they
 * belong to the sandbox. Returns `annotations` itself when nothing changes.
 *
 * ```ts
 * recordAttachment({}, { containerID: "c1", ifName: "eth0", networkName: "a", nics: ["eth0", "net1"] });
 * // { "ipam.spidernet.io/container-id": "c1", "ipam.spidernet.io/nic-networks": '{"eth0":"a","net1":"a"}' }
 * ```
 */
export function recordAttachment(
  annotations: Readonly<Record<string, string>> | undefined,
  a: AttachmentRecord,
): Record<string, string> {
  const sameSandbox = annotations?.[CONTAINER_ID_ANNOTATION] === a.containerID;
  const networks = sameSandbox ? nicNetworks(annotations) : {};
  if (a.networkName) {
    for (const nic of a.nics) networks[nic] ??= a.networkName;
    networks[a.ifName] = a.networkName;
  }
  for (const nic of Object.keys(networks)) if (!a.nics.includes(nic)) delete networks[nic];
  const out: Record<string, string> = { ...annotations, [CONTAINER_ID_ANNOTATION]: a.containerID };
  if (Object.keys(networks).length > 0) out[NIC_NETWORKS_ANNOTATION] = JSON.stringify(sortKeys(networks));
  else delete out[NIC_NETWORKS_ANNOTATION];
  const same = annotations !== undefined && Object.keys(out).length === Object.keys(annotations).length &&
    Object.entries(out).every(([k, v]) => annotations[k] === v);
  return same ? annotations as Record<string, string> : out;
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

/** A GC's request: its network, the attachments the runtime still has on it, and this node. */
export interface GcScope {
  network: string;
  valid: readonly { containerID: string; ifName: string }[];
  node: string;
}

/** An endpoint a GC may release NICs of, once the pod says its sandbox is not running. */
export interface GcCandidate {
  containerID: string;
  /** The NICs attached through the GC's network (those with addresses). */
  nics: string[];
  /** Every NIC with addresses is among `nics`: the whole endpoint may go. */
  whole: boolean;
}

/**
 * Whether a GC for `scope.network` may release NICs of `endpoint`, and which: undefined when the endpoint is
 * on another node, has no recorded sandbox, has no NIC attached through this network, or its sandbox has an
 * attachment the runtime lists as valid on this network.
 */
export function gcCandidate(endpoint: SpiderEndpoint, scope: GcScope): GcCandidate | undefined {
  const cur = endpoint.status?.current;
  if (!cur || cur.node !== scope.node) return undefined;
  const cid = endpoint.metadata.annotations?.[CONTAINER_ID_ANNOTATION];
  if (!cid) return undefined;
  if (scope.valid.some((a) => a.containerID === cid)) return undefined;
  const networks = nicNetworks(endpoint.metadata.annotations);
  const withAddresses = (cur.ips ?? []).filter((d) => d.ipv4 || d.ipv6).map((d) => d.interface);
  const nics = withAddresses.filter((nic) => networks[nic] === scope.network);
  if (nics.length === 0) return undefined;
  return { containerID: cid, nics, whole: nics.length === withAddresses.length };
}

/**
 * Whether the sandbox of the pod with UID `uid` may still be running, from the pod read from the API server:
 * the pod exists with that UID and is alive, or is terminating within its grace period (plus GRACE_SKEW_MS).
 * A pod that is gone (or replaced by one of another UID), finished, or past its grace period has no running
 * sandbox the runtime does not know about.
 */
export function sandboxMayRun(pod: PodLike | undefined, uid: string, nowMs: number): boolean {
  if (!pod || pod.metadata.uid !== uid) return false;
  if (isPodAlive(pod)) return true;
  const deadline = pod.metadata.deletionTimestamp ? Date.parse(pod.metadata.deletionTimestamp) : NaN;
  return Number.isFinite(deadline) && nowMs < deadline + GRACE_SKEW_MS;
}
