// Choosing addresses inside one pool (Spiderpool's `genRandomIP`, which is first-fit): a pod that already holds
// an address of the pool gets it back, otherwise the lowest usable address (`ips ∩ subnet − excludeIPs −
// gateway`) that is neither reserved, claimed by another pool (overlap.ts) nor allocated. The batch form
// serves several pods in one pass for one status update.

import type { AllocatedIPs, AllocationRecord } from "../api/allocated.ts";
import { encodeAllocatedIPs } from "../api/allocated.ts";
import { ANNOTATION, KIND, MAX_ALLOCATED_IPS } from "../api/constants.ts";
import type { IPPoolStatus, SpiderIPPool } from "../api/types.ts";
import { type Family, firstFree, formatIP, IPRangeSet, parseIP } from "../ip/mod.ts";
import { blockedBy, describeOverlaps, type Overlap } from "./overlap.ts";
import { usableAddresses } from "./pool.ts";

/** One pod asking for an address: `pod` is `<namespace>/<name>` (VMI name for KubeVirt), `podUid` its UID. */
export interface AllocationRequest {
  pod: string;
  podUid: string;
  /**
   * Addresses of this pool already given to the same pod for its other NICs in this ADD. They are never
   * handed back for this request, so two NICs allocated from one pool in separate updates get two addresses.
   */
  otherNICs?: readonly string[];
}

export interface Chosen {
  ip: string;
  /** True when the pod already held this address (a retried ADD); the records are then unchanged for it. */
  reused: boolean;
}

/** The outcome for one request of a batch. */
export type ChooseOutcome = { ok: true; value: Chosen } | { ok: false; error: PoolExhaustedError };

export interface ChooseOptions {
  /** Records one pool may hold (`SPIDERPOOL_IPPOOL_MAX_ALLOCATED_IPS`); default 5000. */
  maxAllocated?: number;
  /** Addresses of the pool that other pools claim (overlapsWith); they are never handed out. */
  overlaps?: readonly Overlap[];
}

/**
 * The pool cannot give this pod an address: every address is taken (`reason: "no-free-ip"`) or the pool holds
 * the most records allowed (`reason: "max-allocated"`). The caller tries the next candidate pool.
 */
export class PoolExhaustedError extends Error {
  readonly pool: string;
  readonly reason: "no-free-ip" | "max-allocated";
  /** Records whose address lies in the pool's usable addresses. */
  readonly allocated: number;
  /** Usable addresses: `spec.ips` minus `spec.excludeIPs`. */
  readonly total: bigint;
  /** Usable addresses held back by SpiderReservedIPs. */
  readonly reserved: bigint;
  /** Usable addresses other pools claim: unusable while the overlap lasts. */
  readonly overlaps: Overlap[];
  constructor(
    pool: string,
    reason: "no-free-ip" | "max-allocated",
    counts: {
      allocated: number;
      total: bigint;
      reserved: bigint;
      records: number;
      max: number;
      overlaps?: readonly Overlap[];
    },
  ) {
    const where = `${KIND.ippool} ${JSON.stringify(pool)}`;
    const overlaps = counts.overlaps ?? [];
    const fix = overlaps.length > 0
      ? `remove the overlap from one of the pools (spec.ips or spec.excludeIPs), or add ips or another pool ` +
        `to ${ANNOTATION.ippools}`
      : `add ips or another pool to ${ANNOTATION.ippools}`;
    const overlapping = overlaps.length > 0
      ? `, ${blockedBy(overlaps[0].listed.family, overlaps).count()} unusable while other pools claim them: ${
        describeOverlaps(overlaps)
      }`
      : "";
    super(
      reason === "no-free-ip" && counts.total === 0n
        ? `no free IP in ${where}: it has no address to hand out (spec.ips within spec.subnet, minus ` +
          `spec.excludeIPs and spec.gateway, is empty); ${fix}`
        : reason === "no-free-ip"
        ? `no free IP in ${where} (${counts.allocated} of ${counts.total} allocated${
          counts.reserved > 0n ? `, ${counts.reserved} reserved` : ""
        }${overlapping}); ${fix}`
        : `${where} already holds ${counts.records} allocated IPs, the most one pool may hold ` +
          `(SPIDERPOOL_IPPOOL_MAX_ALLOCATED_IPS=${counts.max}); add another pool to ${ANNOTATION.ippools}`,
    );
    this.name = "PoolExhaustedError";
    this.pool = pool;
    this.reason = reason;
    this.allocated = counts.allocated;
    this.total = counts.total;
    this.reserved = counts.reserved;
    this.overlaps = [...overlaps];
  }
}

/**
 * Every usable pool of a NIC and family was tried and none could give an address. The message lists each
 * pool's own reason, in the order tried.
 */
export class CandidatesExhaustedError extends Error {
  readonly family: Family;
  readonly nic: string;
  readonly errors: PoolExhaustedError[];
  constructor(family: Family, nic: string, errors: readonly PoolExhaustedError[]) {
    const names = errors.map((e) => JSON.stringify(e.pool)).join(",");
    super(
      `no free IP in any IPv${family} IPPool [${names}] of ${nic}: ${
        errors.map((e) => e.message).join("; ")
      }`,
    );
    this.name = "CandidatesExhaustedError";
    this.family = family;
    this.nic = nic;
    this.errors = [...errors];
  }
}

/**
 * One address of `pool` for one pod. `records` is the pool's decoded `status.allocatedIPs` and is not
 * modified; the new records are returned. Throws PoolExhaustedError when the pool cannot serve the pod.
 *
 * ```ts
 * chooseIP(pool, IPRangeSet.empty(4), {}, { pod: "default/web-0", podUid: "u1" });
 * // { ip: "192.0.2.10", reused: false, records: { "192.0.2.10": { pod: "default/web-0", podUid: "u1" } } }
 * ```
 */
export function chooseIP(
  pool: SpiderIPPool,
  reserved: IPRangeSet,
  records: Readonly<AllocatedIPs>,
  request: AllocationRequest,
  opts: ChooseOptions = {},
): Chosen & { records: AllocatedIPs } {
  const { outcomes, records: out } = chooseIPs(pool, reserved, records, [request], opts);
  const o = outcomes[0];
  if (!o.ok) throw o.error;
  return { ...o.value, records: out };
}

/**
 * Addresses of `pool` for several requests at once, for one status update: the same address is never given
 * twice, each pod that already holds addresses of the pool gets those back (one per request, lowest first),
 * and new addresses are handed out first-fit in request order. Deterministic for the same inputs.
 */
export function chooseIPs(
  pool: SpiderIPPool,
  reserved: IPRangeSet,
  records: Readonly<AllocatedIPs>,
  requests: readonly AllocationRequest[],
  opts: ChooseOptions = {},
): { outcomes: ChooseOutcome[]; records: AllocatedIPs } {
  const max = opts.maxAllocated ?? MAX_ALLOCATED_IPS;
  const name = pool.metadata.name;
  const { family, usable } = usableAddresses(pool);
  if (reserved.family !== family) {
    throw new Error(
      `reserved IPs are IPv${reserved.family} but ${KIND.ippool} ${JSON.stringify(name)} is IPv${family}; ` +
        `pass the reserved IPs of the pool's family`,
    );
  }
  const out: AllocatedIPs = { ...records };
  const allocated: bigint[] = [];
  const heldBy = new Map<string, { ip: string; value: bigint }[]>();
  for (const [ip, rec] of Object.entries(records)) {
    let value: bigint;
    try {
      const p = parseIP(ip);
      if (p.family !== family) continue;
      value = p.value;
    } catch {
      continue; // a key that is no address cannot block an address
    }
    allocated.push(value);
    const list = heldBy.get(rec.podUid) ?? [];
    list.push({ ip, value });
    heldBy.set(rec.podUid, list);
  }
  for (const list of heldBy.values()) {
    list.sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  }

  const overlaps = opts.overlaps ?? [];
  let free = usable.subtract(reserved).subtract(blockedBy(family, overlaps));
  const outcomes: ChooseOutcome[] = new Array(requests.length);
  const pending: number[] = [];
  requests.forEach((req, i) => {
    const held = heldBy.get(req.podUid) ?? [];
    const other = new Set((req.otherNICs ?? []).map(canonical));
    const k = held.findIndex((h) => !other.has(h.ip));
    if (k === -1) {
      pending.push(i);
      return;
    }
    const [again] = held.splice(k, 1);
    outcomes[i] = { ok: true, value: { ip: again.ip, reused: true } };
  });

  const counts = () => ({
    allocated: allocated.filter((v) => usable.has(v)).length,
    total: usable.count(),
    reserved: usable.intersect(reserved).count(),
    records: Object.keys(out).length,
    max,
    overlaps,
  });
  let recordCount = Object.keys(out).length;
  for (const i of pending) {
    if (recordCount >= max) {
      outcomes[i] = { ok: false, error: new PoolExhaustedError(name, "max-allocated", counts()) };
      continue;
    }
    const v = free.isEmpty() ? undefined : firstFree(free, IPRangeSet.empty(family), allocated);
    if (v === undefined) {
      free = IPRangeSet.empty(family);
      outcomes[i] = { ok: false, error: new PoolExhaustedError(name, "no-free-ip", counts()) };
      continue;
    }
    const ip = formatIP(family, v);
    const rec: AllocationRecord = { pod: requests[i].pod, podUid: requests[i].podUid };
    out[ip] = rec;
    recordCount++;
    allocated.push(v);
    // Every address below v is taken: searching from v + 1 keeps a batch linear in the records.
    free = free.subtract(IPRangeSet.fromRanges(family, [{ start: free.first()!, end: v }]));
    outcomes[i] = { ok: true, value: { ip, reused: false } };
  }
  return { outcomes, records: out };
}

function canonical(ip: string): string {
  try {
    const p = parseIP(ip);
    return formatIP(p.family, p.value);
  } catch {
    return ip;
  }
}

/**
 * The pool's status after an allocation or release: `allocatedIPs` encoded (absent when empty) and
 * `allocatedIPCount`; other status fields are kept.
 */
export function poolStatusWith(pool: SpiderIPPool, records: Readonly<AllocatedIPs>): IPPoolStatus {
  const { allocatedIPs: _old, ...rest } = pool.status ?? {};
  const encoded = encodeAllocatedIPs(records);
  return {
    ...rest,
    ...(encoded !== undefined ? { allocatedIPs: encoded } : {}),
    allocatedIPCount: Object.keys(records).length,
  };
}
