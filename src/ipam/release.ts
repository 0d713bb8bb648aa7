// Giving addresses back (CNI DEL) and handing a fixed IP to the next pod of a StatefulSet or KubeVirt VM.
// A record is only ever removed or re-stamped when the pod UID says it belongs to that pod, so a late DEL of
// an old pod can never take an address from the new pod of the same name.

import type { AllocatedIPs } from "../api/allocated.ts";
import { KIND } from "../api/constants.ts";
import type { IPAllocationDetail, SpiderEndpoint, SpiderIPPool } from "../api/types.ts";
import { type Family, formatIP, IPRangeSet, parseIP } from "../ip/mod.ts";
import { describeOverlaps, type Overlap } from "./overlap.ts";
import { usableAddresses } from "./pool.ts";
import { isPodAlive, type PodLike } from "./workload.ts";

/** An address recorded on a SpiderEndpoint, with its pool. */
export interface PoolIP {
  pool: string;
  /** The address without prefix, canonical. */
  ip: string;
}

export interface ReleaseResult {
  records: AllocatedIPs;
  released: string[];
  /** Addresses left in place: not recorded, or recorded for another pod UID. */
  skipped: { ip: string; reason: string }[];
}

/**
 * Removes from `records` the addresses in `ips` (with or without `/prefix`) recorded for `podUid`; records of
 * any other UID are kept. `records` is not modified.
 *
 * ```ts
 * releaseIPs({ "192.0.2.5": { pod: "default/a", podUid: "u1" } }, ["192.0.2.5/24"], "u1").released; // ["192.0.2.5"]
 * ```
 */
export function releaseIPs(
  records: Readonly<AllocatedIPs>,
  ips: readonly string[],
  podUid: string,
): ReleaseResult {
  const r = releaseEach(records, [{ ips, podUid }]);
  return { records: r.records, ...r.results[0] };
}

/**
 * releaseIPs for several requests in order, copying `records` once: a batch of a thousand releases on a pool
 * of thousands of records would otherwise copy the whole map once per request.
 */
export function releaseEach(
  records: Readonly<AllocatedIPs>,
  requests: readonly { ips: readonly string[]; podUid: string }[],
): { records: AllocatedIPs; results: Omit<ReleaseResult, "records">[] } {
  const out: AllocatedIPs = { ...records };
  const results = requests.map(({ ips, podUid }) => {
    const released: string[] = [];
    const skipped: { ip: string; reason: string }[] = [];
    for (const raw of ips) {
      const ip = canonicalIP(raw);
      const rec = out[ip];
      if (rec === undefined) {
        skipped.push({ ip, reason: "not allocated" });
      } else if (rec.podUid !== podUid) {
        skipped.push({ ip, reason: `held by ${rec.pod} with pod UID ${rec.podUid}, not ${podUid}` });
      } else {
        delete out[ip];
        released.push(ip);
      }
    }
    return { released, skipped };
  });
  return { records: out, results };
}

/** Addresses and pools recorded on an endpoint, per family, in endpoint order (all NICs). */
export function endpointPoolIPs(endpoint: SpiderEndpoint): PoolIP[] {
  return detailPoolIPs(endpoint.status.current.ips ?? []);
}

/** Addresses and pools of endpoint details, in order. */
export function detailPoolIPs(details: readonly IPAllocationDetail[]): PoolIP[] {
  const out: PoolIP[] = [];
  for (const d of details) {
    if (d.ipv4 && d.ipv4Pool) out.push({ pool: d.ipv4Pool, ip: canonicalIP(d.ipv4) });
    if (d.ipv6 && d.ipv6Pool) out.push({ pool: d.ipv6Pool, ip: canonicalIP(d.ipv6) });
  }
  return out;
}

/**
 * The addresses of `ips` that `endpoint` does not list for `podUid`: what an ADD whose endpoint write looked
 * failed may give back. An address the stored endpoint lists must stay recorded, or the next pod gets it too.
 *
 * ```ts
 * notListedBy([{ pool: "a", ip: "192.0.2.5" }], endpointListing5ForU1, "u1"); // []
 * ```
 */
export function notListedBy(
  ips: readonly PoolIP[],
  endpoint: SpiderEndpoint | undefined,
  podUid: string,
): PoolIP[] {
  if (endpoint === undefined || endpoint.status.current.uid !== podUid) return [...ips];
  const listed = new Set(endpointPoolIPs(endpoint).map((x) => `${x.pool}\u0000${x.ip}`));
  return ips.filter((x) => !listed.has(`${x.pool}\u0000${canonicalIP(x.ip)}`));
}

/** Groups pool addresses by pool name, pools sorted, for one status update per pool. */
export function byPool(ips: readonly PoolIP[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const { pool, ip } of [...ips].sort((a, b) => a.pool.localeCompare(b.pool))) {
    m.set(pool, [...(m.get(pool) ?? []), ip]);
  }
  return m;
}

/** A fixed address cannot be handed to the new pod: the pool record names another pod. */
export class RestampError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RestampError";
  }
}

/**
 * Hands the fixed addresses of a StatefulSet member or KubeVirt VM (`ips` of `pool`) to the pod's new UID.
 * A record must name the same `<namespace>/<name>`; a record that is gone (released meanwhile) is recreated
 * when the address is still usable in the pool, free, and claimed by no other pool (`overlaps`). Throws
 * RestampError otherwise.
 */
export function restampIPs(
  pool: SpiderIPPool,
  records: Readonly<AllocatedIPs>,
  ips: readonly string[],
  request: { pod: string; podUid: string },
  overlaps: readonly Overlap[] = [],
): { records: AllocatedIPs; restamped: string[]; recreated: string[] } {
  const out: AllocatedIPs = { ...records };
  const restamped: string[] = [];
  const recreated: string[] = [];
  const where = `${KIND.ippool} ${JSON.stringify(pool.metadata.name)}`;
  for (const raw of ips) {
    const ip = canonicalIP(raw);
    const rec = out[ip];
    if (rec === undefined) {
      const { family, usable } = usableAddresses(pool);
      const p = parseIP(ip);
      if (p.family !== family || !usable.has(p.value)) {
        throw new RestampError(
          `fixed IP ${ip} of ${request.pod} is no longer in ${where} spec.ips; delete SpiderEndpoint ` +
            `${request.pod} so the pod gets a new address`,
        );
      }
      const claimed = claimedElsewhere(family, p.value, overlaps);
      if (claimed !== undefined) {
        throw new RestampError(
          `fixed IP ${ip} of ${request.pod} is no longer recorded in ${where} and ${claimed}; remove the ` +
            `overlap, or delete SpiderEndpoint ${request.pod} so the pod gets a new address`,
        );
      }
      out[ip] = { pod: request.pod, podUid: request.podUid };
      recreated.push(ip);
    } else if (rec.pod !== request.pod) {
      throw new RestampError(
        `data broken: fixed IP ${ip} of ${request.pod} is recorded in ${where} for ${rec.pod}; delete ` +
          `SpiderEndpoint ${request.pod} so the pod gets a new address`,
      );
    } else {
      if (rec.podUid !== request.podUid) out[ip] = { pod: rec.pod, podUid: request.podUid };
      restamped.push(ip);
    }
  }
  return { records: out, restamped, recreated };
}

/** An address an endpoint lists is recorded in its pool for another pod: answering with it would duplicate it. */
export class EnsureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EnsureError";
  }
}

/**
 * Checks, before a repeated ADD is answered from the SpiderEndpoint, that the pool still records each of `ips`
 * for this pod UID. A missing record (freed by a rolled-back write, or by hand) is recreated when the address is
 * still in the pool, not reserved and free; a record of another pod UID, or an address no longer usable, throws
 * EnsureError naming the address and its holder. `records` is not modified; `recreated` empty = nothing to write.
 *
 * ```ts
 * ensureIPs(pool, { "192.0.2.5": { pod: "ns/a", podUid: "u2" } }, ["192.0.2.5"], { pod: "ns/a", podUid: "u1" });
 * // throws EnsureError: 192.0.2.5 is recorded for ns/a with pod UID u2
 * ```
 */
export function ensureIPs(
  pool: SpiderIPPool,
  records: Readonly<AllocatedIPs>,
  ips: readonly string[],
  request: { pod: string; podUid: string },
  reserved?: IPRangeSet,
  overlaps: readonly Overlap[] = [],
): { records: AllocatedIPs; recreated: string[] } {
  const out: AllocatedIPs = { ...records };
  const recreated: string[] = [];
  const where = `${KIND.ippool} ${JSON.stringify(pool.metadata.name)}`;
  const fix = `delete SpiderEndpoint ${request.pod} and recreate the pod so it gets a new address`;
  for (const raw of ips) {
    const ip = canonicalIP(raw);
    const rec = out[ip];
    if (rec !== undefined) {
      if (rec.podUid === request.podUid) continue;
      throw new EnsureError(
        `IP ${ip} of SpiderEndpoint ${request.pod} (pod UID ${request.podUid}) is recorded in ${where} for ` +
          `${rec.pod} with pod UID ${rec.podUid}; not answering with an address another pod holds; ${fix}`,
      );
    }
    const { family, usable } = usableAddresses(pool);
    const p = parseIP(ip);
    if (p.family !== family || !usable.has(p.value) || reserved?.has(p.value)) {
      throw new EnsureError(
        `IP ${ip} of SpiderEndpoint ${request.pod} is not recorded in ${where} and can no longer be given ` +
          `(not in spec.ips, excluded or reserved); ${fix}`,
      );
    }
    const claimed = claimedElsewhere(family, p.value, overlaps);
    if (claimed !== undefined) {
      throw new EnsureError(
        `IP ${ip} of SpiderEndpoint ${request.pod} is not recorded in ${where} and ${claimed}; ${fix}`,
      );
    }
    out[ip] = { pod: request.pod, podUid: request.podUid };
    recreated.push(ip);
  }
  return { records: out, recreated };
}

/** How other pools claim `value` (describeOverlaps wording), or undefined when none does. */
function claimedElsewhere(family: Family, value: bigint, overlaps: readonly Overlap[]): string | undefined {
  const one = IPRangeSet.fromRanges(family, [{ start: value, end: value }]);
  const hits = overlaps
    .map((o) => ({ pool: o.pool, listed: o.listed.intersect(one), held: o.held.intersect(one) }))
    .filter((o) => !o.listed.isEmpty() || !o.held.isEmpty());
  return hits.length > 0 ? `it is ${describeOverlaps(hits)}` : undefined;
}

/** A StatefulSet as seen by DEL: `replicas` and `spec.ordinals.start` (default 0). */
export interface StatefulSetInfo {
  replicas: number;
  ordinalsStart?: number;
}

/**
 * Whether the StatefulSet still wants the member `podName` (`<sts>-<ordinal>`): its ordinal lies in
 * `[start, start + replicas - 1]`. False when the StatefulSet is gone (undefined).
 *
 * ```ts
 * statefulSetOrdinalValid("db-2", { replicas: 3 }); // true
 * statefulSetOrdinalValid("db-3", { replicas: 3 }); // false
 * ```
 */
export function statefulSetOrdinalValid(podName: string, sts: StatefulSetInfo | undefined): boolean {
  if (sts === undefined) return false;
  const m = /-(0|[1-9][0-9]*)$/.exec(podName);
  if (!m) return false;
  const ordinal = Number(m[1]);
  const start = sts.ordinalsStart ?? 0;
  return ordinal >= start && ordinal <= start + sts.replicas - 1;
}

/** KubeVirt state as seen by DEL. */
export interface KubevirtInfo {
  /** The VMI exists and is not being deleted. */
  vmiAlive: boolean;
  /** The VMI is terminating but owned by a VirtualMachine that still exists (restart, not deletion). */
  ownedByLiveVM: boolean;
}

/**
 * Whether a KubeVirt VM still wants its fixed addresses: its VMI is alive, or is terminating under a
 * VirtualMachine that still exists (a restart, not a deletion). False when its state is unknown (undefined).
 * DEL and the IP GC both decide with this one rule.
 *
 * ```ts
 * kubevirtVMWanted({ vmiAlive: false, ownedByLiveVM: true }); // true
 * ```
 */
export function kubevirtVMWanted(kv: KubevirtInfo | undefined): boolean {
  return kv !== undefined && (kv.vmiAlive || kv.ownedByLiveVM);
}

export interface ReleaseInput {
  /** The pod read from the API server (not a cache); undefined when already gone. */
  pod?: PodLike;
  /**
   * UID from the DEL request (`K8S_POD_UID`). When the pod read from the API has another UID, it is a newer
   * pod of the same name and the DEL concerns the old one.
   */
  requestUid?: string;
  ifName: string;
  /** The endpoint read from the API server; undefined when not found. */
  endpoint?: SpiderEndpoint;
  /** For StatefulSet endpoints: the StatefulSet, or undefined when it is gone. */
  statefulSet?: StatefulSetInfo;
  /** For KubeVirt endpoints. */
  kubevirt?: KubevirtInfo;
  flags: { enableStatefulSet: boolean; enableKubevirtStaticIP: boolean };
}

/** What DEL does. */
export type ReleaseDecision =
  /**
   * Nothing: the pod is alive, its UID is unknown, there is no endpoint, or the IPs are kept. `kept`: the
   * pod holds addresses it still needs (alive, or a fixed-IP member or VM that comes back).
   */
  | { kind: "nothing"; reason: string; kept?: boolean }
  | {
    kind: "release";
    /** The pod UID records must carry to be released. */
    uid: string;
    /** Every address of the endpoint (all NICs); remove from pools where the record's podUid is `uid`. */
    ips: PoolIP[];
    /** Delete the endpoint (fixed-IP workload no longer wants it); the finalizer is removed either way. */
    deleteEndpoint: boolean;
  }
  /** A fixed-IP endpoint the workload no longer wants, but of another pod UID: delete it, release nothing. */
  | { kind: "delete-endpoint"; reason: string };

/**
 * The decision for CNI DEL (Spiderpool's `Release`): keep the IPs of a live pod and of a StatefulSet member
 * or VM that will come back; otherwise release every address of the endpoint recorded for this pod UID.
 */
export function decideRelease(input: ReleaseInput): ReleaseDecision {
  const { pod, endpoint, ifName, flags } = input;
  // A pod of the same name but another UID is a newer pod: this DEL is for the old one, which is gone.
  const samePod = pod !== undefined &&
    (!input.requestUid || !pod.metadata.uid || pod.metadata.uid === input.requestUid);
  if (samePod && isPodAlive(pod)) {
    return { kind: "nothing", kept: true, reason: "pod is alive; its IPs are kept" };
  }
  const uid = (samePod ? pod.metadata.uid : undefined) || input.requestUid || "";
  if (uid === "") return { kind: "nothing", reason: "no pod UID known; IP GC will release the IPs" };
  if (endpoint === undefined) return { kind: "nothing", reason: "no SpiderEndpoint; nothing to release" };
  const type = endpoint.status.ownerControllerType;
  let deleteEndpoint = false;
  if (flags.enableStatefulSet && type === "StatefulSet") {
    if (statefulSetOrdinalValid(endpoint.metadata.name, input.statefulSet)) {
      return {
        kind: "nothing",
        kept: true,
        reason: "StatefulSet still wants this member; its fixed IPs are kept",
      };
    }
    deleteEndpoint = true;
  } else if (flags.enableKubevirtStaticIP && type === "VirtualMachineInstance") {
    if (kubevirtVMWanted(input.kubevirt)) {
      return {
        kind: "nothing",
        kept: true,
        reason: "the VM is still running or restarting; its fixed IPs are kept",
      };
    }
    deleteEndpoint = true;
  }
  const cur = endpoint.status.current;
  const hasNIC = (cur.ips ?? []).some((d) => d.interface === ifName || d.interface === "");
  if (cur.uid !== uid || !hasNIC) {
    if (deleteEndpoint) {
      return { kind: "delete-endpoint", reason: `endpoint belongs to pod UID ${cur.uid}, not ${uid}` };
    }
    return {
      kind: "nothing",
      reason: cur.uid !== uid
        ? `SpiderEndpoint belongs to pod UID ${cur.uid}, not ${uid}`
        : `SpiderEndpoint has no addresses for ${ifName} (already released)`,
    };
  }
  return { kind: "release", uid, ips: endpointPoolIPs(endpoint), deleteEndpoint };
}

/** `192.0.2.5/24` or `192.0.2.5` → canonical `192.0.2.5`. */
export function canonicalIP(text: string): string {
  const slash = text.indexOf("/");
  const p = parseIP(slash === -1 ? text : text.slice(0, slash));
  return formatIP(p.family, p.value);
}
