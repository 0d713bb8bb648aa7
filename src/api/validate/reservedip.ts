// Admission validation of SpiderReservedIP: a non-empty list of valid ranges of one family, that family
// enabled and, once set, never changed; and no address reserved by two SpiderReservedIPs (deleting one of them
// would otherwise silently leave the address reserved by the other).

import { KIND } from "../constants.ts";
import type { SpiderReservedIP } from "../types.ts";
import {
  checkImmutable,
  checkIPVersion,
  checkRanges,
  describeSet,
  familyOfText,
  type FeatureFlags,
  type FieldError,
  Problems,
} from "./common.ts";
import { IPRangeSet } from "../../ip/mod.ts";

/** What SpiderReservedIP validation reads from the cluster. */
export interface ReservedIPValidationContext {
  /** Every SpiderReservedIP; the one being validated is skipped by name. */
  reservedIPs?: readonly SpiderReservedIP[];
}

/** Validates a SpiderReservedIP on CREATE (`old` undefined) or UPDATE. */
export function validateReservedIP(
  rip: SpiderReservedIP,
  old: SpiderReservedIP | undefined,
  flags: Pick<FeatureFlags, "enableIPv4" | "enableIPv6">,
  ctx: ReservedIPValidationContext = {},
): FieldError[] {
  const p = new Problems(KIND.reservedIP, rip.metadata?.name);
  const spec = rip.spec ?? {};
  const ips = spec.ips ?? [];
  if (old !== undefined) checkImmutable(p, "spec.ipVersion", old.spec?.ipVersion, spec.ipVersion);
  if (ips.length === 0) {
    p.add("spec.ips", `spec.ips is empty; list the addresses to reserve, e.g. ["192.0.2.10-192.0.2.20"]`);
    return p.errors;
  }
  const first = familyOfText(ips[0]);
  const family = checkIPVersion(
    p,
    spec.ipVersion,
    first,
    flags,
    first === undefined ? "spec.ips[0]" : `spec.ips[0] ${JSON.stringify(ips[0])}`,
  );
  if (family === undefined) {
    if (first === undefined) checkRanges(p, "spec.ips", ips.slice(0, 1), 4, undefined);
    return p.errors;
  }
  const mine = checkRanges(p, "spec.ips", ips, family, undefined);
  const name = rip.metadata?.name ?? "";
  for (const other of ctx.reservedIPs ?? []) {
    const otherName = other.metadata?.name ?? "";
    if (otherName === name || other.metadata?.deletionTimestamp) continue;
    let theirs: IPRangeSet;
    try {
      theirs = IPRangeSet.parse(family, other.spec?.ips ?? []);
    } catch {
      continue; // another family, or malformed: not comparable
    }
    const both = mine.intersect(theirs);
    if (!both.isEmpty()) {
      p.add(
        "spec.ips",
        `spec.ips overlaps ${KIND.reservedIP} ${JSON.stringify(otherName)} at ${describeSet(both)}; ` +
          `reserve each address in one ${KIND.reservedIP} only (extend that one, or remove these addresses)`,
      );
    }
  }
  return p.errors;
}
