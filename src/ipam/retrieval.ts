// What ADD does with the SpiderEndpoint already stored under the pod's name: answer from it (retried ADD),
// hand fixed IPs to a new StatefulSet/KubeVirt pod, throw away a stale endpoint of a deleted same-name pod, or
// move a StatefulSet member whose pool annotation changed to its new pools.

import type { IPAllocationDetail, SpiderEndpoint } from "../api/types.ts";
import { ANNOTATION, KIND } from "../api/constants.ts";
import { type Family, IPError, parseIP } from "../ip/mod.ts";
import { type Candidates, type NICCandidate, type PoolCandidates, PoolSelectionError } from "./candidates.ts";
import { detailPoolIPs, endpointPoolIPs, type PoolIP } from "./release.ts";
import {
  hasStaticIP,
  isStatefulSetPod,
  KUBEVIRT_VMI,
  podKey,
  type TopController,
  type WorkloadFlags,
} from "./workload.ts";

export type RetrievalDecision =
  /** No usable endpoint: allocate. `existing` (same pod, or fixed-IP workload) is merged into, not replaced. */
  | { kind: "fresh"; existing?: SpiderEndpoint }
  /** Same pod UID and the NIC is recorded: answer from the endpoint (responseFromEndpoint), no pool writes. */
  | { kind: "reuse" }
  /**
   * Fixed-IP workload (StatefulSet member, KubeVirt VM) recreated: re-stamp `ips` in their pools with the new
   * UID (restampIPs, records must name `pod`), set the endpoint's uid and node, answer from it.
   */
  | { kind: "restamp"; pod: string; uid: string; ips: PoolIP[] }
  /**
   * The endpoint belongs to a deleted pod of the same name (different UID, not a fixed-IP workload): delete
   * it and drop its finalizer, release `release` where the record's podUid is `staleUid`, then allocate.
   */
  | { kind: "replace-stale"; staleUid: string; release: PoolIP[] }
  /**
   * StatefulSet member whose pools changed: release `release` (records of `releaseUid`), then either delete
   * the endpoint (`deleteEndpoint`) or keep only `keep` (re-stamping `restamp` for `pod` with the new UID),
   * and allocate the changed NICs afresh.
   */
  | {
    kind: "pool-changed";
    releaseUid: string;
    release: PoolIP[];
    deleteEndpoint: boolean;
    keep: IPAllocationDetail[];
    pod: string;
    restamp: PoolIP[];
  };

export interface RetrievalInput {
  endpoint?: SpiderEndpoint;
  pod: { namespace: string; uid: string };
  /** The endpoint name (pod name, or VMI name for KubeVirt). */
  endpointName: string;
  ifName: string;
  top: TopController;
  flags: WorkloadFlags;
  /** Current candidates of the pod; needed for the StatefulSet pool-changed check. */
  candidates?: Candidates;
}

/**
 * Decides how ADD uses an existing SpiderEndpoint (after requireReadableEndpoint), in this order: a StatefulSet
 * member whose pools changed
 * moves; a StatefulSet member or KubeVirt VM otherwise re-stamps its fixed IPs whatever the old UID; a
 * stateless pod with the same UID is answered from the endpoint; another UID means the endpoint is stale.
 *
 * ```ts
 * decideRetrieval({ endpoint: undefined, pod, endpointName: "web-0", ifName: "eth0", top, flags });
 * // { kind: "fresh" }
 * ```
 */
export function decideRetrieval(input: RetrievalInput): RetrievalDecision {
  const { endpoint, ifName } = input;
  if (endpoint === undefined) return { kind: "fresh" };
  requireReadableEndpoint(endpoint);
  const cur = endpoint.status.current;
  const hasNIC = (cur.ips ?? []).some((d) => d.interface === ifName || d.interface === "");

  if (hasStaticIP(input.top, input.flags)) {
    requireSameStaticOwner(endpoint, input.top);
    if (isStatefulSetPod(input.top, input.flags) && input.candidates !== undefined) {
      const changed = statefulSetPoolChanges(
        endpoint,
        input.candidates,
        podKey(input.pod.namespace, input.endpointName),
      );
      if (changed !== undefined) return changed;
    }
    if (hasNIC) {
      return {
        kind: "restamp",
        pod: podKey(input.pod.namespace, input.endpointName),
        uid: input.pod.uid,
        ips: endpointPoolIPs(endpoint),
      };
    }
    return { kind: "fresh", existing: endpoint };
  }

  if (cur.uid !== input.pod.uid) {
    requireSameStaticOwner(endpoint, input.top);
    return { kind: "replace-stale", staleUid: cur.uid, release: endpointPoolIPs(endpoint) };
  }
  return hasNIC ? { kind: "reuse" } : { kind: "fresh", existing: endpoint };
}

/** A stored SpiderEndpoint records an address no ADD could have written (e.g. edited while no webhook ran). */
export class EndpointDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EndpointDataError";
  }
}

/**
 * Checks the addresses of a stored endpoint before ADD decides anything from it: each `ipv4`/`ipv6` of
 * `status.current.ips` is an address of that family (with an optional `/prefix`) and names its pool. Throws
 * EndpointDataError naming the endpoint, the field and the value, and how to recover.
 *
 * ```ts
 * requireReadableEndpoint(epWith({ interface: "eth0", ipv4: "garbage", ipv4Pool: "v4" }));
 * // EndpointDataError: SpiderEndpoint ns/web: status.current.ips[0].ipv4 "garbage": invalid IPv4 address ...
 * ```
 */
export function requireReadableEndpoint(endpoint: SpiderEndpoint): void {
  const who = `${KIND.endpoint} ${endpoint.metadata.namespace}/${endpoint.metadata.name}`;
  const fix = `delete ${who} and recreate the pod so it gets a new address`;
  (endpoint.status?.current?.ips ?? []).forEach((d, i) => {
    for (const family of [4, 6] as const) {
      const addr = family === 4 ? d.ipv4 : d.ipv6;
      if (addr === undefined || addr === null || addr === "") continue;
      const field = `status.current.ips[${i}].ipv${family}`;
      const problem = addressProblem(addr, family);
      if (problem !== undefined) {
        throw new EndpointDataError(`${who}: ${field} ${JSON.stringify(addr)}: ${problem}; ${fix}`);
      }
      const pool = family === 4 ? d.ipv4Pool : d.ipv6Pool;
      if (typeof pool !== "string" || pool === "") {
        throw new EndpointDataError(`${who}: ${field} ${addr} names no pool (${field}Pool is empty); ${fix}`);
      }
    }
  });
}

/** What is wrong with an interface address `IP` or `IP/prefix` of `family`, or undefined. */
function addressProblem(addr: string, family: Family): string | undefined {
  const slash = addr.indexOf("/");
  try {
    parseIP(slash === -1 ? addr : addr.slice(0, slash), family);
  } catch (err) {
    if (err instanceof IPError) return err.message;
    throw err;
  }
  if (slash === -1) return undefined;
  const prefix = addr.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  return /^[0-9]{1,3}$/.test(prefix) && Number(prefix) <= max
    ? undefined
    : `prefix length ${JSON.stringify(prefix)} is not 0-${max}`;
}

/** Controller kinds whose SpiderEndpoint keeps fixed IPs for the next pod of the same name. */
const STATIC_IP_OWNERS: readonly string[] = ["StatefulSet", KUBEVIRT_VMI.kind];

/** The endpoint of the same name keeps the fixed IPs of a StatefulSet member or KubeVirt VM of another owner. */
export class EndpointOwnerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EndpointOwnerError";
  }
}

/**
 * A pod may only throw away a same-name endpoint as stale when it does not hold the fixed IPs of a StatefulSet
 * or KubeVirt VM other than the pod's own top controller (a plain pod named like a VMI or a StatefulSet
 * member must not take its addresses). Throws EndpointOwnerError naming that owner.
 */
export function requireSameStaticOwner(endpoint: SpiderEndpoint, top: TopController): void {
  const type = endpoint.status.ownerControllerType;
  const name = endpoint.status.ownerControllerName;
  if (!STATIC_IP_OWNERS.includes(type)) return;
  if (type === top.kind && name === top.name) return;
  const ep = `${endpoint.metadata.namespace}/${endpoint.metadata.name}`;
  throw new EndpointOwnerError(
    `SpiderEndpoint ${ep} keeps the fixed IPs of ${type} ${JSON.stringify(name)}, not of this pod's ` +
      `${top.kind} ${JSON.stringify(top.name)}; rename the pod, or delete SpiderEndpoint ${ep} if that ` +
      `${type} no longer exists`,
  );
}

/**
 * The StatefulSet "pool changed" check (upstream #3543): details whose IPv4 or IPv6 pool is no longer a
 * candidate of their NIC are released; when every NIC changed, or in no-name mode, the whole endpoint goes.
 * Undefined when nothing changed. Subnet (auto-pool) candidates are never "changed" here.
 */
export function statefulSetPoolChanges(
  endpoint: SpiderEndpoint,
  candidates: Candidates,
  pod: string,
): Extract<RetrievalDecision, { kind: "pool-changed" }> | undefined {
  if (candidates.kind !== "pools") return undefined;
  const details = endpoint.status.current.ips ?? [];
  const changed: IPAllocationDetail[] = [];
  const keep: IPAllocationDetail[] = [];
  details.forEach((d, i) => {
    const cand = candidates.noNameMode
      ? candidates.nics[i] ?? candidates.nics.find((c) => c.nic === d.interface && d.interface !== "")
      : candidates.nics.find((c) => c.nic === d.interface);
    const moved = cand !== undefined &&
      ((d.ipv4Pool !== undefined && d.ipv4Pool !== "" && !cand.ipv4.includes(d.ipv4Pool)) ||
        (d.ipv6Pool !== undefined && d.ipv6Pool !== "" && !cand.ipv6.includes(d.ipv6Pool)));
    (moved ? changed : keep).push(d);
  });
  if (changed.length === 0) return undefined;
  const deleteEndpoint = keep.length === 0 || candidates.noNameMode;
  const gone = deleteEndpoint ? details : changed;
  const kept = deleteEndpoint ? [] : keep;
  return {
    kind: "pool-changed",
    releaseUid: endpoint.status.current.uid,
    release: detailPoolIPs(gone),
    deleteEndpoint,
    keep: kept,
    pod,
    restamp: detailPoolIPs(kept),
  };
}

/**
 * The NICs a fresh allocation still has to serve when `existing` (same pod, or a fixed-IP workload) already
 * records some: by name, or in no-name mode by position (details are stored in NIC order). Throws
 * PoolSelectionError when nothing is left for `ifName`, e.g. a third ADD for a no-name `ippools` of two items.
 */
export function nicsToAllocate(
  candidates: PoolCandidates,
  existing: SpiderEndpoint | undefined,
  ifName: string,
): NICCandidate[] {
  const details = existing?.status.current.ips ?? [];
  const left = candidates.noNameMode
    ? candidates.nics.filter((c) => c.index >= details.length)
    : candidates.nics.filter((c) => !details.some((d) => d.interface === c.nic));
  if (left.length === 0) {
    const have = details.map((d) => JSON.stringify(d.interface)).join(", ");
    throw new PoolSelectionError(
      ANNOTATION.ippools,
      `no IPPool left for interface ${JSON.stringify(ifName)}: every NIC named by the pod's pool selection ` +
        `already has addresses (${have}); add an item for ${JSON.stringify(ifName)} to ${ANNOTATION.ippools}`,
    );
  }
  return left;
}
