// IP garbage collection rules (Spiderpool's `gcmanager`) as plain functions: when a pod's addresses may be
// given back, when to look again (trace), and when to leave them alone. The controller's GC feeds these the
// objects it read and carries out what they decide; this module does no I/O and reads no clock (`now` is an
// argument).
//
// Mechanism A (event tracing): traceEntryFor turns a pod event into a trace entry with a stop time.
// Mechanism B (scan-all): holdersOf groups every pool record by `<ns>/<name>` and pod UID; decideHolder says
// what to do with one holder's records given its pod, endpoint and fixed-IP workload. The trace worker runs
// decideHolder too, on the records its endpoint lists, so both mechanisms share one copy of each rule.
// Records that no SpiderEndpoint confirms (an ADD writes records before its endpoint) are released only after
// `unconfirmedGraceMs` (pendingUnconfirmed), and outdatedEndpointCandidates is `enableCleanOutdatedEndpoint`.

import { decodeAllocatedIPs } from "../api/allocated.ts";
import type { SpiderEndpoint, SpiderIPPool } from "../api/types.ts";
import {
  type KubevirtInfo,
  kubevirtVMWanted,
  notListedBy,
  type PoolIP,
  type StatefulSetInfo,
  statefulSetOrdinalValid,
} from "./release.ts";
import { isKubevirtPod, isStatefulSetPod, KUBEVIRT_VMI, type PodLike, topController } from "./workload.ts";

/** The GC switches of spec §6 and the ConfigMap flags it honours; durations in milliseconds. */
export interface GcSwitches {
  /** `SPIDERPOOL_GC_STATELESS_TERMINATING_POD_ON_READY_NODE_ENABLED` (default true). */
  terminatingOnReadyNode: boolean;
  /** `SPIDERPOOL_GC_STATELESS_TERMINATING_POD_ON_NOT_READY_NODE_ENABLED` (default true). */
  terminatingOnNotReadyNode: boolean;
  /** `SPIDERPOOL_GC_ENABLE_STATELESS_RUNNING_POD_ON_EMPTY_POD_STATUS_IPS` (default false). */
  runningOnEmptyPodIPs: boolean;
  /** ConfigMap `enableStatefulSet`. */
  enableStatefulSet: boolean;
  /** ConfigMap `enableKubevirtStaticIP`. */
  enableKubevirtStaticIP: boolean;
  /** `SPIDERPOOL_GC_ADDITIONAL_GRACE_DELAY`, added to every grace period. */
  additionalGraceDelayMs: number;
}

/** The parts of a Pod the GC reads; a Pod object from the API server fits as is. */
export interface GcPod extends PodLike {
  spec?: PodLike["spec"] & { hostNetwork?: boolean; terminationGracePeriodSeconds?: number };
  status?: PodLike["status"] & {
    podIPs?: { ip: string }[];
    containerStatuses?: { state?: { terminated?: { finishedAt?: string } } }[];
  };
}

/** A fixed-IP member (StatefulSet pod, KubeVirt VM) and whether its workload still wants it. */
export interface Membership {
  kind: "StatefulSet" | "VirtualMachineInstance";
  /** Name of the StatefulSet, or of the VMI. */
  owner: string;
  valid: boolean;
}

/** The workload a fixed-IP member belongs to, before its validity is known. */
export interface FixedIPOwner {
  kind: Membership["kind"];
  owner: string;
}

/** Why the GC released something: the `reason` label of the metrics and of the report. */
export type GcReason =
  /** Trace: the pod was deleted (its DEL never came, or came before the endpoint). */
  | "pod_deleted"
  /** Scan: no pod of that name exists and no fixed-IP workload wants the member. */
  | "pod_not_found"
  /** The pod is terminating and its grace period (plus delay) is over. */
  | "pod_terminating_timeout"
  /** The pod is terminating and its `status.podIPs` is already empty (the runtime tore the sandbox down). */
  | "pod_terminating_no_ips"
  /** The pod Succeeded or Failed and its termination grace period (plus delay) is over. */
  | "pod_finished"
  /** A running stateless pod without `status.podIPs` (only with the switch on). */
  | "pod_running_no_ips"
  /** A pod in a phase other than Pending/Running without `status.podIPs`. */
  | "pod_no_ips"
  /** A StatefulSet member scaled away or a VM that is gone. */
  | "fixed_ip_member_invalid"
  /** The record names an older pod of the same name. */
  | "pod_uid_mismatch"
  /** The SpiderEndpoint names an older pod of the same name. */
  | "endpoint_uid_mismatch"
  /** The pod's own SpiderEndpoint does not list the address (left by a failed ADD). */
  | "not_in_endpoint"
  /** `enableCleanOutdatedEndpoint`: no pool records the endpoint's pod any more. */
  | "outdated_endpoint";

/** Why a pod is traced (upstream's tracing reasons). */
export type TraceReason = "Deleted" | "Terminating" | "Succeeded" | "Failed";

/** One traced pod: its addresses are checked again at `stopAt` (ms since the epoch). */
export interface TraceEntry {
  namespace: string;
  /** The pod's name. */
  pod: string;
  /** The SpiderEndpoint name (the VMI name for KubeVirt pods with fixed IPs, else the pod name). */
  endpoint: string;
  uid: string;
  node: string;
  reason: TraceReason;
  stopAt: number;
  /** Failed attempts so far (`SPIDERPOOL_GC_PODENTRY_MAX_RETRIES`). */
  requeues: number;
}

// ---------------------------------------------------------------------------------------------------------
// Facts derived from objects

/** True when the Node's `Ready` condition is `True`; a missing node is not ready. */
export function isNodeReady(
  node: { status?: { conditions?: { type?: string; status?: string }[] } } | undefined,
): boolean {
  return node?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/** Whether the node switches let the GC take the addresses of a terminating or finished pod on this node. */
export function nodeSwitchAllows(nodeReady: boolean, s: GcSwitches): boolean {
  return nodeReady ? s.terminatingOnReadyNode : s.terminatingOnNotReadyNode;
}

/** The pod's `status.podIPs` (or `podIP`), empty when the runtime reported none. */
export function podIPsOf(pod: GcPod): string[] {
  const ips = (pod.status?.podIPs ?? []).map((p) => p.ip).filter((ip) => ip);
  const single = (pod.status as { podIP?: string } | undefined)?.podIP;
  return ips.length > 0 ? ips : single ? [single] : [];
}

/** The fixed-IP workload of a pod (by its controller owner), when the ConfigMap switch enables it. */
export function podFixedIPOwner(
  pod: GcPod,
  s: Pick<GcSwitches, "enableStatefulSet" | "enableKubevirtStaticIP">,
) {
  const top = topController(pod);
  if (isStatefulSetPod(top, s)) return { kind: "StatefulSet", owner: top.name } as FixedIPOwner;
  if (isKubevirtPod(top, s)) return { kind: KUBEVIRT_VMI.kind, owner: top.name } as FixedIPOwner;
  return undefined;
}

/** The fixed-IP workload a SpiderEndpoint records (`status.ownerControllerType`), when enabled. */
export function endpointFixedIPOwner(
  ep: SpiderEndpoint,
  s: Pick<GcSwitches, "enableStatefulSet" | "enableKubevirtStaticIP">,
): FixedIPOwner | undefined {
  const type = ep.status?.ownerControllerType;
  if (s.enableStatefulSet && type === "StatefulSet") {
    return { kind: "StatefulSet", owner: ep.status.ownerControllerName };
  }
  if (s.enableKubevirtStaticIP && type === KUBEVIRT_VMI.kind) {
    return { kind: KUBEVIRT_VMI.kind, owner: ep.metadata.name };
  }
  return undefined;
}

/**
 * Whether the workload still wants the member `member` (pod or endpoint name): a StatefulSet whose ordinal
 * range holds it (statefulSetOrdinalValid), or a VM whose VMI is alive or restarting under a live VM
 * (kubevirtVMWanted). DEL's decideRelease calls the same two rules.
 */
export function memberValid(
  owner: FixedIPOwner,
  member: string,
  facts: { statefulSet?: StatefulSetInfo; kubevirt?: KubevirtInfo },
): Membership {
  const valid = owner.kind === "StatefulSet"
    ? statefulSetOrdinalValid(member, facts.statefulSet)
    : kubevirtVMWanted(facts.kubevirt);
  return { ...owner, valid };
}

// ---------------------------------------------------------------------------------------------------------
// Stop times

const DEFAULT_GRACE_SECONDS = 30;

/**
 * When a terminating pod's addresses may go: `deletionTimestamp + deletionGracePeriodSeconds + delay` (upstream
 * adds the grace although the timestamp already includes it). Undefined when the pod is not terminating.
 */
export function terminatingStopAt(pod: GcPod, s: GcSwitches): number | undefined {
  const ts = pod.metadata.deletionTimestamp;
  if (!ts) return undefined;
  const grace = pod.metadata.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ??
    DEFAULT_GRACE_SECONDS;
  return Date.parse(ts) + grace * 1000 + s.additionalGraceDelayMs;
}

/**
 * When a Succeeded/Failed pod's addresses may go: the latest container `finishedAt` +
 * `terminationGracePeriodSeconds` + delay. Undefined when no container reports a finish time.
 */
export function finishedStopAt(pod: GcPod, s: GcSwitches): number | undefined {
  const finished = (pod.status?.containerStatuses ?? [])
    .map((c) => Date.parse(c.state?.terminated?.finishedAt ?? ""))
    .filter((t) => Number.isFinite(t));
  if (finished.length === 0) return undefined;
  const grace = pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS;
  return Math.max(...finished) + grace * 1000 + s.additionalGraceDelayMs;
}

function isFinished(pod: GcPod): boolean {
  const phase = pod.status?.phase;
  return phase === "Succeeded" || phase === "Failed";
}

// ---------------------------------------------------------------------------------------------------------
// Mechanism A: event tracing

export interface TraceInput {
  pod: GcPod;
  /** The SpiderEndpoint name for this pod (endpointNameFor). */
  endpointName: string;
  /** The pod was deleted (a watch DELETE); otherwise it was added or changed. */
  deleted: boolean;
  now: number;
  nodeReady: boolean;
  /** Set when the pod is a fixed-IP member; `valid` says whether its workload still wants it. */
  member?: Membership;
  switches: GcSwitches;
}

export type TraceDecision = { kind: "trace"; entry: TraceEntry } | { kind: "ignore"; reason: string };

/**
 * What the leader's pod watch does with one event: ignore hostNetwork pods, fixed-IP members their workload
 * still wants, live pods and pods the node switches protect; otherwise trace the pod until its stop time.
 *
 * ```ts
 * traceEntryFor({ pod, endpointName: "a", deleted: true, now: 1000, nodeReady: true, switches });
 * // { kind: "trace", entry: { reason: "Deleted", stopAt: 1000 + switches.additionalGraceDelayMs, ... } }
 * ```
 */
export function traceEntryFor(input: TraceInput): TraceDecision {
  const { pod, switches: s, now } = input;
  const who = `pod ${pod.metadata.namespace}/${pod.metadata.name}`;
  if (pod.spec?.hostNetwork) return { kind: "ignore", reason: `${who} uses the host network` };
  if (input.member?.valid) {
    return {
      kind: "ignore",
      reason: `${who} is a member ${input.member.kind} ${input.member.owner} still wants`,
    };
  }
  const entry = (reason: TraceReason, stopAt: number): TraceDecision => ({
    kind: "trace",
    entry: {
      namespace: pod.metadata.namespace ?? "",
      pod: pod.metadata.name,
      endpoint: input.endpointName,
      uid: pod.metadata.uid ?? "",
      node: pod.spec?.nodeName ?? "",
      reason,
      stopAt,
      requeues: 0,
    },
  });
  if (input.deleted) return entry("Deleted", now + s.additionalGraceDelayMs);
  const terminating = terminatingStopAt(pod, s);
  const finished = isFinished(pod);
  if (terminating === undefined && !finished) return { kind: "ignore", reason: `${who} is not terminating` };
  if (!nodeSwitchAllows(input.nodeReady, s)) {
    return { kind: "ignore", reason: switchOffReason(who, input.nodeReady) };
  }
  if (terminating !== undefined) return entry("Terminating", terminating);
  const stop = finishedStopAt(pod, s);
  if (stop === undefined) {
    return { kind: "ignore", reason: `${who} is ${pod.status?.phase} but no container reports finishedAt` };
  }
  return entry(pod.status?.phase === "Failed" ? "Failed" : "Succeeded", stop);
}

function switchOffReason(who: string, nodeReady: boolean): string {
  const env = nodeReady
    ? "SPIDERPOOL_GC_STATELESS_TERMINATING_POD_ON_READY_NODE_ENABLED"
    : "SPIDERPOOL_GC_STATELESS_TERMINATING_POD_ON_NOT_READY_NODE_ENABLED";
  return `${who} is on a ${nodeReady ? "ready" : "not-ready"} node and ${env} is false`;
}

/** After a failed attempt on a traced entry: try again (requeues + 1) or give up past `maxRetries`. */
export function afterFailure(
  entry: TraceEntry,
  maxRetries: number,
): { retry: TraceEntry } | { drop: string } {
  if (entry.requeues >= maxRetries) {
    return { drop: `gave up after ${entry.requeues + 1} attempts; scan-all will look again` };
  }
  return { retry: { ...entry, requeues: entry.requeues + 1 } };
}

// ---------------------------------------------------------------------------------------------------------
// Mechanism B: scan-all

/** The records of one pod UID under one `<namespace>/<name>`, across pools. */
export interface Holder {
  namespace: string;
  /** Pod name, or the VMI name for KubeVirt records. */
  name: string;
  uid: string;
  records: PoolIP[];
}

export const holderKey = (h: { namespace: string; name: string; uid: string }) =>
  `${h.namespace}/${h.name}\u0000${h.uid}`;

/**
 * Groups the records of `pools` by holder, in pool order. A pool whose `status.allocatedIPs` cannot be decoded,
 * or a record whose `pod` is not `<namespace>/<name>`, is reported in `problems` and skipped: the GC never
 * guesses about what it cannot read.
 */
export function holdersOf(
  pools: readonly SpiderIPPool[],
): { holders: Holder[]; records: number; problems: string[] } {
  const holders = new Map<string, Holder>();
  const problems: string[] = [];
  let records = 0;
  for (const pool of pools) {
    const name = pool.metadata.name;
    let decoded;
    try {
      decoded = decodeAllocatedIPs(pool.status?.allocatedIPs, name);
    } catch (err) {
      problems.push((err as Error).message);
      continue;
    }
    for (const [ip, rec] of Object.entries(decoded)) {
      records++;
      const slash = rec.pod.indexOf("/");
      if (slash <= 0 || slash === rec.pod.length - 1) {
        problems.push(
          `SpiderIPPool "${name}": record of ${ip} names pod ${
            JSON.stringify(rec.pod)
          }, not <namespace>/<name>; ` +
            "left alone",
        );
        continue;
      }
      const h = { namespace: rec.pod.slice(0, slash), name: rec.pod.slice(slash + 1), uid: rec.podUid };
      const key = holderKey(h);
      let holder = holders.get(key);
      if (!holder) holders.set(key, holder = { ...h, records: [] });
      holder.records.push({ pool: name, ip });
    }
  }
  return { holders: [...holders.values()], records, problems };
}

/** Everything decideHolder reads about one holder. */
export interface HolderFacts {
  holder: Holder;
  /** The pod named `holder.name` (any UID); undefined when none exists. */
  pod?: GcPod;
  /** Set when `pod` is a fixed-IP member. */
  podMember?: Membership;
  /** The SpiderEndpoint named `holder.name` (any UID); undefined when none exists. */
  endpoint?: SpiderEndpoint;
  /** Set when `endpoint` records a fixed-IP workload. */
  endpointMember?: Membership;
  /** Readiness of the pod's node (false when unknown). */
  nodeReady: boolean;
  now: number;
  switches: GcSwitches;
}

export type HolderVerdict =
  | { action: "keep"; reason: string }
  /** Look again at the entry's stop time (the leader traces it); nothing is released now. */
  | { action: "trace"; entry: TraceEntry; reason: string }
  | {
    action: "release";
    code: GcReason;
    reason: string;
    /** Records to give back, by the holder's UID. Empty when only a stale endpoint goes. */
    records: PoolIP[];
    /** Delete `endpoint` (as read: its UID and resourceVersion are preconditions) and drop its finalizer. */
    deleteEndpoint: boolean;
    /** Drop the endpoint's finalizer once the records are released (the endpoint belongs to this holder). */
    removeFinalizer: boolean;
  };

/**
 * What scan-all (and the trace worker) does with one holder's records, following spec §6: a record whose pod
 * is gone, finished or terminating past its grace goes; a fixed-IP member its workload still wants keeps its
 * addresses whatever its pod does; a record of an older pod of the same name goes unless it is a fixed-IP
 * member being taken over; a live pod's records are never released, even when its endpoint is stale.
 */
export function decideHolder(f: HolderFacts): HolderVerdict {
  const { holder, pod, endpoint } = f;
  const who = `${holder.namespace}/${holder.name}`;
  const epOwn = endpoint !== undefined && endpoint.status.current.uid === holder.uid;

  // The pod is gone: only a fixed-IP workload that still wants the member keeps the addresses.
  if (pod === undefined) {
    if (endpoint === undefined) {
      return released("pod_not_found", `pod ${who} does not exist and has no SpiderEndpoint`, holder.records);
    }
    if (f.endpointMember?.valid) {
      return {
        action: "keep",
        reason: `${f.endpointMember.kind} ${f.endpointMember.owner} still wants ${who}`,
      };
    }
    // The endpoint goes too, whichever pod UID it records: no pod of that name exists.
    const why = f.endpointMember
      ? `pod ${who} does not exist and ${memberGone(f.endpointMember)}`
      : `pod ${who} does not exist`;
    const code = f.endpointMember ? "fixed_ip_member_invalid" : "pod_not_found";
    return released(code, why, holder.records, { deleteEndpoint: true, removeFinalizer: true });
  }

  const podUid = pod.metadata.uid ?? "";
  const ips = podIPsOf(pod);
  const member = f.podMember;
  const own = { deleteEndpoint: epOwn, removeFinalizer: epOwn };

  // A record of an older pod of the same name.
  if (podUid !== holder.uid) {
    const older = `records pod UID ${holder.uid}, but pod ${who} now has UID ${podUid}`;
    if (member) {
      if (ips.length > 0) {
        return released(
          "pod_uid_mismatch",
          `${older}, which already runs with ${ips.join(", ")}`,
          holder.records,
          own,
        );
      }
      if (member.valid) {
        return {
          action: "keep",
          reason: `${older}; ${member.kind} ${member.owner} member is being taken over`,
        };
      }
      return released("fixed_ip_member_invalid", `${older} and ${memberGone(member)}`, holder.records, own);
    }
    return released("pod_uid_mismatch", older, holder.records, own);
  }

  // The holder's own pod.
  const staleEndpoint = endpoint !== undefined && !epOwn ? staleEndpointVerdict(f, ips) : undefined;
  if (member?.valid) {
    return staleEndpoint ?? { action: "keep", reason: `${member.kind} ${member.owner} still wants ${who}` };
  }
  const phaseVerdict = decideByPhase(f, who, ips, own);
  if (phaseVerdict !== undefined) return phaseVerdict;
  if (staleEndpoint) return staleEndpoint;
  // The pod keeps its addresses; a record its own endpoint does not list was left by a failed ADD.
  if (epOwn) {
    const unlisted = notListedBy(holder.records, endpoint, holder.uid);
    if (unlisted.length > 0) {
      const list = unlisted.map((r) => r.ip).join(", ");
      return released(
        "not_in_endpoint",
        `pod ${who} is alive but its SpiderEndpoint does not list ${list}`,
        unlisted,
      );
    }
  }
  return { action: "keep", reason: `pod ${who} is alive` };
}

/** A release verdict; by default the endpoint is left alone. */
function released(
  code: GcReason,
  reason: string,
  records: PoolIP[],
  endpoint: { deleteEndpoint: boolean; removeFinalizer: boolean } = {
    deleteEndpoint: false,
    removeFinalizer: false,
  },
): HolderVerdict {
  return { action: "release", code, reason, records, ...endpoint };
}

/** The verdict by pod phase for the holder's own pod, or undefined when the pod keeps its addresses. */
function decideByPhase(
  f: HolderFacts,
  who: string,
  ips: string[],
  own: { deleteEndpoint: boolean; removeFinalizer: boolean },
): HolderVerdict | undefined {
  const { pod, switches: s, now, holder } = f;
  const member = f.podMember;
  const release = (code: GcReason, reason: string) => released(code, reason, holder.records, own);
  const phase = pod!.status?.phase ?? "";
  const terminatingStop = terminatingStopAt(pod!, s);

  if (isFinished(pod!)) {
    if (member) return release("fixed_ip_member_invalid", `pod ${who} is ${phase} and ${memberGone(member)}`);
    return graceVerdict(
      f,
      who,
      ips,
      terminatingStop ?? finishedStopAt(pod!, s),
      "pod_finished",
      `is ${phase}`,
    );
  }
  if (phase === "Pending" || (phase === "" && terminatingStop === undefined)) return undefined;
  if (terminatingStop !== undefined) {
    return graceVerdict(f, who, ips, terminatingStop, "pod_terminating_timeout", "is terminating");
  }
  if (ips.length > 0) return undefined;
  if (member) {
    return release("fixed_ip_member_invalid", `pod ${who} has no status.podIPs and ${memberGone(member)}`);
  }
  if (phase === "Running") {
    if (!s.runningOnEmptyPodIPs) return undefined;
    return release(
      "pod_running_no_ips",
      `pod ${who} is Running without status.podIPs and SPIDERPOOL_GC_ENABLE_STATELESS_RUNNING_POD_ON_EMPTY_POD_STATUS_IPS is true`,
    );
  }
  return release("pod_no_ips", `pod ${who} is ${phase} without status.podIPs`);

  function graceVerdict(
    f: HolderFacts,
    who: string,
    ips: string[],
    stopAt: number | undefined,
    code: GcReason,
    what: string,
  ): HolderVerdict {
    if (!nodeSwitchAllows(f.nodeReady, s)) {
      return { action: "keep", reason: switchOffReason(`pod ${who}`, f.nodeReady) };
    }
    if (stopAt !== undefined && now >= stopAt) {
      return release(code, `pod ${who} ${what} and its grace period ended ${now - stopAt} ms ago`);
    }
    if (ips.length === 0) {
      return release(
        terminatingStop !== undefined ? "pod_terminating_no_ips" : "pod_no_ips",
        `pod ${who} ${what} and the runtime already removed its addresses (no status.podIPs)`,
      );
    }
    const traced = traceEntryFor({
      pod: pod!,
      endpointName: holder.name,
      deleted: false,
      now,
      nodeReady: f.nodeReady,
      member,
      switches: s,
    });
    if (traced.kind === "trace") {
      return { action: "trace", entry: traced.entry, reason: `pod ${who} ${what}; within its grace period` };
    }
    return { action: "keep", reason: traced.reason };
  }
}

/**
 * The holder's pod is alive under its UID but the endpoint of its name records another UID: for a stateless
 * pod the endpoint is a leftover (#4916) and goes, records untouched; for a fixed-IP member it goes once the
 * new pod runs with its addresses or the workload no longer wants the member.
 */
function staleEndpointVerdict(f: HolderFacts, ips: string[]): HolderVerdict | undefined {
  const who = `${f.holder.namespace}/${f.holder.name}`;
  const ep = f.endpoint!;
  const member = f.podMember ?? f.endpointMember;
  const reason =
    `SpiderEndpoint ${who} records pod UID ${ep.status.current.uid}, but the pod has UID ${f.holder.uid}`;
  if (member && ips.length === 0 && member.valid) return undefined;
  // The endpoint does not list this pod's addresses: deleting it frees nothing the pod holds.
  return released(
    "endpoint_uid_mismatch",
    member && ips.length > 0 ? `${reason} and runs with ${ips.join(", ")}` : reason,
    [],
    { deleteEndpoint: true, removeFinalizer: true },
  );
}

function memberGone(m: Membership): string {
  return m.kind === "StatefulSet"
    ? `StatefulSet ${m.owner} no longer wants that member (deleted or scaled down)`
    : `its VirtualMachineInstance ${m.owner} is gone and no VirtualMachine restarts it`;
}

// ---------------------------------------------------------------------------------------------------------
// Records no endpoint confirms

/** A record waiting out the unconfirmed grace period. */
export interface Pending {
  record: PoolIP;
  /** When it may be released (ms since the epoch). */
  until: number;
}

/**
 * Splits the records a verdict releases into those that may go now and those that must wait: a record the
 * holder's endpoint lists (same UID) is confirmed and goes at once; any other record may belong to an ADD that
 * has not written its endpoint yet, so it goes only once it has been seen unconfirmed for `graceMs`.
 * `firstSeen(record)` is when the GC first saw it so (the caller remembers it); `now` when absent.
 */
export function pendingUnconfirmed(
  records: readonly PoolIP[],
  endpoint: SpiderEndpoint | undefined,
  uid: string,
  firstSeen: (r: PoolIP) => number | undefined,
  now: number,
  graceMs: number,
): { due: PoolIP[]; waiting: Pending[]; unconfirmed: PoolIP[] } {
  const unconfirmed = notListedBy(records, endpoint, uid);
  const isUnconfirmed = new Set(unconfirmed.map((r) => `${r.pool}\u0000${r.ip}`));
  const due: PoolIP[] = [];
  const waiting: Pending[] = [];
  for (const r of records) {
    if (!isUnconfirmed.has(`${r.pool}\u0000${r.ip}`)) {
      due.push(r);
      continue;
    }
    const until = (firstSeen(r) ?? now) + graceMs;
    if (now >= until) due.push(r);
    else waiting.push({ record: r, until });
  }
  return { due, waiting, unconfirmed };
}

// ---------------------------------------------------------------------------------------------------------
// enableCleanOutdatedEndpoint

/** Endpoints whose `<namespace>/<name>` no scanned record names: candidates to check against their pools. */
export function outdatedEndpointCandidates(
  endpoints: readonly SpiderEndpoint[],
  holders: readonly Holder[],
): SpiderEndpoint[] {
  const named = new Set(holders.map((h) => `${h.namespace}/${h.name}`));
  return endpoints.filter((ep) => !named.has(`${ep.metadata.namespace}/${ep.metadata.name}`));
}

/**
 * Whether an endpoint is outdated, from its pools as just read from the API server: no record of any of its
 * pools names `<namespace>/<name>`, and no live pod of that name still carries the endpoint's UID (its
 * addresses are then in use whatever the pools say, and deleting the endpoint would hide them).
 */
export function endpointOutdated(
  ep: SpiderEndpoint,
  pools: readonly SpiderIPPool[],
  pod: GcPod | undefined,
): { outdated: true; reason: string } | { outdated: false; reason: string } {
  const key = `${ep.metadata.namespace}/${ep.metadata.name}`;
  for (const pool of pools) {
    let records;
    try {
      records = decodeAllocatedIPs(pool.status?.allocatedIPs, pool.metadata.name);
    } catch (err) {
      return { outdated: false, reason: (err as Error).message };
    }
    for (const [ip, r] of Object.entries(records)) {
      if (r.pod === key) {
        return { outdated: false, reason: `SpiderIPPool "${pool.metadata.name}" records ${ip} for ${key}` };
      }
    }
  }
  if (
    pod && pod.metadata.uid === ep.status.current.uid && !pod.metadata.deletionTimestamp && !isFinished(pod)
  ) {
    return { outdated: false, reason: `pod ${key} with UID ${pod.metadata.uid} is alive` };
  }
  return {
    outdated: true,
    reason: `no SpiderIPPool records ${key} any more (${
      pools.length === 0 ? "the endpoint lists no pool" : pools.map((p) => p.metadata.name).join(", ")
    })`,
  };
}
