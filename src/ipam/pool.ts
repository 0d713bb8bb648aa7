// A SpiderIPPool as allocation reads it, assuming no webhook ever ran: the spec as the mutating webhook would
// have stored it (family from `subnet`, canonical ranges), the checks a valid pool passes before it may serve
// (subnet, ipVersion, ips, gateway, routes: the rules of src/api), and the addresses it may hand out.

import { defaultIPPool } from "../api/defaults.ts";
import {
  checkGateway,
  checkIPVersion,
  checkRoutes,
  checkSelector,
  checkSubnet,
  type FieldError,
  ipMessage,
  Problems,
} from "../api/validate/common.ts";
import { KIND } from "../api/constants.ts";
import type { SpiderIPPool } from "../api/types.ts";
import { type CIDR, type Family, IPRangeSet, parseCIDR, parseIP } from "../ip/mod.ts";

/**
 * A pool that cannot serve any pod as written: its spec breaks a rule the admission webhook enforces. The
 * message names the pool, each field and its value.
 */
export class InvalidPoolError extends Error {
  readonly pool: string;
  readonly problems: FieldError[];
  constructor(pool: string, problems: readonly FieldError[]) {
    super(
      `${
        problems.map((p) => p.message).join("; ")
      }; fix the ${KIND.ippool} (no address is handed out from it ` +
        `until then)`,
    );
    this.name = "InvalidPoolError";
    this.pool = pool;
    this.problems = [...problems];
  }
}

/** The addresses a valid pool hands out, with its family and subnet. */
export interface PoolAddresses {
  family: Family;
  subnet: CIDR;
  /** `ips ∩ subnet − excludeIPs − gateway` (reserved IPs and other pools are subtracted by the caller). */
  usable: IPRangeSet;
}

// Pools from a cache are replaced, never mutated, so their derived views are kept per object.
const admittedMemo = new WeakMap<SpiderIPPool, SpiderIPPool>();
const problemsMemo = new WeakMap<SpiderIPPool, FieldError[]>();
const addressesMemo = new WeakMap<SpiderIPPool, PoolAddresses>();

/**
 * The pool as the mutating webhook would have stored it: `spec.ipVersion` derived from `spec.subnet` when
 * unset, ranges merged, addresses canonical. Pools copied from Spiderpool's guides omit `ipVersion`; without a
 * webhook they reach the agent that way. The input is not modified.
 */
export function admittedPool(pool: SpiderIPPool): SpiderIPPool {
  let out = admittedMemo.get(pool);
  if (out === undefined) {
    // Ownership by a SpiderSubnet is the controller's business; only the pool's own fields are defaulted.
    out = defaultIPPool(pool, { enableSpiderSubnet: false, subnets: [] });
    admittedMemo.set(pool, out);
  }
  return out;
}

/**
 * The family of a pool: `spec.ipVersion`, else derived from `spec.subnet` exactly as the mutating webhook
 * does; undefined when neither gives one.
 */
export function poolFamily(pool: SpiderIPPool): Family | undefined {
  const v = admittedPool(pool).spec?.ipVersion;
  return v === 4 || v === 6 ? v : undefined;
}

/**
 * What keeps a pool from serving: a missing or malformed `subnet`, an `ipVersion` that is unknown or disagrees
 * with the subnet, `ips`/`excludeIPs` that do not parse, a `gateway` that does not parse, is of the other
 * family or lies outside the subnet, routes the webhook would refuse, and affinity selectors that do not
 * parse. Addresses of `ips` outside the
 * subnet and a gateway inside `ips` are not problems here: usableAddresses leaves them out. Empty = valid.
 */
export function poolSpecProblems(pool: SpiderIPPool): FieldError[] {
  let out = problemsMemo.get(pool);
  if (out === undefined) {
    out = specProblems(pool);
    problemsMemo.set(pool, out);
  }
  return out;
}

function specProblems(pool: SpiderIPPool): FieldError[] {
  const spec = admittedPool(pool).spec ?? {};
  const p = new Problems(KIND.ippool, pool.metadata?.name);
  // A selector the API server could not parse matches nothing: say so, rather than "labels do not match".
  checkSelector(p, "spec.podAffinity", spec.podAffinity, false);
  checkSelector(p, "spec.namespaceAffinity", spec.namespaceAffinity, false);
  checkSelector(p, "spec.nodeAffinity", spec.nodeAffinity, false);
  const subnet = checkSubnet(p, "spec.subnet", spec.subnet);
  // Disabled families never reach the pool (candidates drop them), so both count as enabled here.
  const family = checkIPVersion(
    p,
    spec.ipVersion,
    subnet?.family,
    { enableIPv4: true, enableIPv6: true },
    "spec.subnet",
  );
  if (family === undefined) return p.errors;
  for (const field of ["ips", "excludeIPs"] as const) {
    try {
      IPRangeSet.parse(family, spec[field] ?? [], `spec.${field}`);
    } catch (e) {
      p.add(`spec.${field}`, ipMessage(e));
    }
  }
  checkGateway(p, "spec.gateway", spec.gateway, family, subnet, undefined);
  checkRoutes(p, "spec.routes", spec.routes, family, subnet);
  return p.errors;
}

/** Why a pool cannot serve because of its spec (problems without the pool's name), or undefined when valid. */
export function invalidSpecReason(pool: SpiderIPPool): string | undefined {
  const problems = poolSpecProblems(pool);
  if (problems.length === 0) return undefined;
  const prefix = `${KIND.ippool} ${JSON.stringify(pool.metadata?.name ?? "")}: `;
  return `invalid spec: ${
    problems.map((p) => p.message.startsWith(prefix) ? p.message.slice(prefix.length) : p.message).join("; ")
  }`;
}

/**
 * The addresses a pool hands out: `ips ∩ subnet − excludeIPs − gateway`. Throws InvalidPoolError when the
 * spec has problems (poolSpecProblems).
 *
 * ```ts
 * usableAddresses({ metadata: { name: "a" }, spec: { subnet: "198.51.100.0/28", ips: ["198.51.100.1-198.51.100.20"], gateway: "198.51.100.1" } }).usable.toStrings();
 * // ["198.51.100.2-198.51.100.15"]
 * ```
 */
export function usableAddresses(pool: SpiderIPPool): PoolAddresses {
  let out = addressesMemo.get(pool);
  if (out === undefined) {
    const problems = poolSpecProblems(pool);
    if (problems.length > 0) throw new InvalidPoolError(pool.metadata?.name ?? "", problems);
    const spec = admittedPool(pool).spec;
    const subnet = parseCIDR(spec.subnet);
    const family = subnet.family;
    let usable = IPRangeSet.parse(family, spec.ips ?? [])
      .intersect(IPRangeSet.fromCIDR(subnet))
      .subtract(IPRangeSet.parse(family, spec.excludeIPs ?? []));
    if (spec.gateway !== undefined && spec.gateway !== null) {
      const gw = parseIP(spec.gateway, family).value;
      usable = usable.subtract(IPRangeSet.fromRanges(family, [{ start: gw, end: gw }]));
    }
    out = { family, subnet, usable };
    addressesMemo.set(pool, out);
  }
  return out;
}
