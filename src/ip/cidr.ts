// Subnets in CIDR notation. A CIDR is stored by its network (base) address and prefix length; Spiderpool
// requires the canonical form, so host bits set in `spec.subnet` are an error that names the canonical subnet.

import { detectFamily, formatIP, parseIPv4, parseIPv6 } from "./address.ts";
import { type Family, familyBits, familyName, IPError, maxValue } from "./family.ts";
import type { Range } from "./range.ts";

/** A subnet: `base` is the network address (host bits zero), `prefix` the prefix length. */
export interface CIDR {
  readonly family: Family;
  readonly base: bigint;
  readonly prefix: number;
}

/**
 * Parses `addr/prefix`. By default the address must be the network address (`192.0.2.0/24`, not
 * `192.0.2.1/24`); with `{ canonical: false }` host bits are accepted and cleared.
 *
 * ```ts
 * parseCIDR("10.6.0.0/16"); // { family: 4, base: 168165376n, prefix: 16 }
 * ```
 */
export function parseCIDR(text: string, opts: { canonical?: boolean } = {}): CIDR {
  const { family, value, prefix } = parseIPPrefix(text);
  const base = value & prefixMask(family, prefix);
  if (base !== value && opts.canonical !== false) {
    const canonical = formatCIDR({ family, base, prefix });
    throw new IPError(
      `invalid subnet ${JSON.stringify(text)}: host bits are set; expected the network address, ` +
        `i.e. ${JSON.stringify(canonical)}`,
    );
  }
  return { family, base, prefix };
}

/**
 * Parses `addr/prefix` keeping the host bits, as in an interface address (`192.0.2.7/24`).
 *
 * ```ts
 * parseIPPrefix("192.0.2.7/24"); // { family: 4, value: 3221225991n, prefix: 24 }
 * ```
 */
export function parseIPPrefix(text: string): { family: Family; value: bigint; prefix: number } {
  const family = detectFamily(text, "CIDR", "a subnet like 192.0.2.0/24 or 2001:db8::/64");
  const slash = text.indexOf("/");
  const example = family === 4 ? "192.0.2.0/24" : "2001:db8::/64";
  if (slash === -1) {
    throw new IPError(`invalid CIDR ${JSON.stringify(text)}: missing "/prefix"; expected e.g. ${example}`);
  }
  const addr = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  let value: bigint;
  try {
    value = family === 4 ? BigInt(parseIPv4(addr)) : parseIPv6(addr);
  } catch (e) {
    throw new IPError(`invalid CIDR ${JSON.stringify(text)}: ${(e as Error).message}`);
  }
  const bits = familyBits(family);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > bits) {
    throw new IPError(
      `invalid CIDR ${JSON.stringify(text)}: prefix length ${JSON.stringify(prefixText)} is not valid; ` +
        `expected a decimal number 0-${bits} for ${familyName(family)}`,
    );
  }
  return { family, value, prefix: Number(prefixText) };
}

/** Canonical text `network/prefix`, e.g. `2001:db8::/64`. */
export function formatCIDR(c: CIDR): string {
  return `${formatIP(c.family, c.base)}/${c.prefix}`;
}

/** The inclusive range of addresses of a subnet, network and broadcast addresses included. */
export function cidrRange(c: CIDR): Range {
  return { start: c.base, end: c.base | hostMask(c.family, c.prefix) };
}

/** True when the address `value` (of the CIDR's family) lies inside `c`. */
export function cidrContains(c: CIDR, value: bigint): boolean {
  return (value & prefixMask(c.family, c.prefix)) === c.base;
}

/** True when the two subnets share at least one address (families must match to overlap). */
export function cidrsOverlap(a: CIDR, b: CIDR): boolean {
  if (a.family !== b.family) return false;
  const ra = cidrRange(a);
  const rb = cidrRange(b);
  return ra.start <= rb.end && rb.start <= ra.end;
}

/** Mask with the `prefix` high bits set: `prefixMask(4, 24)` is 0xffffff00. */
export function prefixMask(family: Family, prefix: number): bigint {
  return maxValue(family) ^ hostMask(family, prefix);
}

/** Mask with the host bits set: `hostMask(4, 24)` is 0xff. */
export function hostMask(family: Family, prefix: number): bigint {
  return (1n << BigInt(familyBits(family) - prefix)) - 1n;
}
