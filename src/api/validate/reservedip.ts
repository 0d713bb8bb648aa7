// Admission validation of SpiderReservedIP: a non-empty list of valid ranges of one family, that family
// enabled and, once set, never changed.

import { KIND } from "../constants.ts";
import type { SpiderReservedIP } from "../types.ts";
import {
  checkImmutable,
  checkIPVersion,
  checkRanges,
  familyOfText,
  type FeatureFlags,
  type FieldError,
  Problems,
} from "./common.ts";

/** Validates a SpiderReservedIP on CREATE (`old` undefined) or UPDATE. */
export function validateReservedIP(
  rip: SpiderReservedIP,
  old: SpiderReservedIP | undefined,
  flags: Pick<FeatureFlags, "enableIPv4" | "enableIPv6">,
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
  checkRanges(p, "spec.ips", ips, family, undefined);
  return p.errors;
}
