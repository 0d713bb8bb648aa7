// SpiderReservedIPs as allocation reads them, assuming no webhook ever ran: the addresses held back, per family.
// An object whose addresses cannot be read blocks allocation in its family: what it holds back is unknown, and
// handing out such an address could collide with whatever it was reserved for (upstream's allocation fails the
// same way). An object whose family cannot be known at all is skipped, as upstream's per-family look-up skips it.

import { KIND } from "../api/constants.ts";
import { defaultReservedIP } from "../api/defaults.ts";
import type { SpiderReservedIP } from "../api/types.ts";
import { ipMessage } from "../api/validate/common.ts";
import { type Family, IPRangeSet } from "../ip/mod.ts";

/** A SpiderReservedIP whose addresses cannot be read: nothing of its family is handed out until it is fixed. */
export class UnreadableReservedIPError extends Error {
  readonly reservedIP: string;
  readonly family: Family;
  constructor(reservedIP: string, family: Family, problem: string) {
    super(
      `${KIND.reservedIP} ${JSON.stringify(reservedIP)}: ${problem}; no IPv${family} address is handed out ` +
        `until it is fixed or deleted (the addresses it holds back cannot be known)`,
    );
    this.name = "UnreadableReservedIPError";
    this.reservedIP = reservedIP;
    this.family = family;
  }
}

export interface ReservedAddresses {
  /** Per family: the addresses held back, or the first object whose addresses cannot be read. */
  byFamily: Map<Family, IPRangeSet | UnreadableReservedIPError>;
  /** Objects left out because their family cannot be known, each with why. */
  skipped: string[];
}

/**
 * The addresses `list` holds back (terminating objects excluded), per family: `spec.ipVersion`, else the
 * family of `spec.ips[0]` as the mutating webhook derives it.
 *
 * ```ts
 * reservedAddresses([{ metadata: { name: "r" }, spec: { ipVersion: 4, ips: ["192.0.2.300"] } }]).byFamily.get(4);
 * // UnreadableReservedIPError: SpiderReservedIP "r": spec.ips[0]: invalid IPv4 address "192.0.2.300": ...
 * ```
 */
export function reservedAddresses(list: readonly SpiderReservedIP[]): ReservedAddresses {
  const byFamily = new Map<Family, IPRangeSet | UnreadableReservedIPError>([
    [4, IPRangeSet.empty(4)],
    [6, IPRangeSet.empty(6)],
  ]);
  const skipped: string[] = [];
  for (const r of list) {
    if (r.metadata.deletionTimestamp) continue;
    const f = defaultReservedIP(r).spec.ipVersion;
    if (f !== 4 && f !== 6) {
      skipped.push(`ignoring ${KIND.reservedIP} ${r.metadata.name}: its IP family cannot be known`);
      continue;
    }
    const sofar = byFamily.get(f)!;
    if (sofar instanceof UnreadableReservedIPError) continue;
    try {
      byFamily.set(f, sofar.union(IPRangeSet.parse(f, r.spec?.ips ?? [], "spec.ips")));
    } catch (err) {
      byFamily.set(f, new UnreadableReservedIPError(r.metadata.name, f, ipMessage(err)));
    }
  }
  return { byFamily, skipped };
}
