// Spiderpool IP-range strings (`spec.ips`, `excludeIPs`, reserved IPs): one address `192.0.2.10` or an inclusive
// range `192.0.2.10-192.0.2.20`, both ends of one family, start not after end, no spaces.

import { detectFamily, formatIP, parseIP } from "./address.ts";
import { parseIPPrefix } from "./cidr.ts";
import { type Family, familyName, IPError } from "./family.ts";

const RANGE_EXAMPLE = `"ip" or "start-end" like 192.0.2.10-192.0.2.20 or 2001:db8::1-2001:db8::ff`;

/** An inclusive range of address values. */
export interface Range {
  readonly start: bigint;
  readonly end: bigint;
}

/**
 * Parses `ip` or `start-end`. When `family` is given, a range of the other family is rejected.
 *
 * ```ts
 * parseRange("192.0.2.10-192.0.2.20"); // { family: 4, range: { start: 3221225994n, end: 3221226004n } }
 * ```
 */
export function parseRange(text: string, family?: Family): { family: Family; range: Range } {
  detectFamily(text, "IP range", RANGE_EXAMPLE);
  const dash = text.indexOf("-");
  if (dash === -1) {
    const ip = parseIPInRange(text, text, family);
    return { family: ip.family, range: { start: ip.value, end: ip.value } };
  }
  if (text.indexOf("-", dash + 1) !== -1) {
    throw new IPError(
      `invalid IP range ${
        JSON.stringify(text)
      }: more than one "-"; expected "start-end" like 192.0.2.10-192.0.2.20`,
    );
  }
  const start = parseIPInRange(text, text.slice(0, dash), family);
  const end = parseIPInRange(text, text.slice(dash + 1), family);
  if (start.family !== end.family) {
    throw new IPError(
      `invalid IP range ${JSON.stringify(text)}: mixes ${familyName(start.family)} and ${
        familyName(end.family)
      }; expected both ends of the same family`,
    );
  }
  if (start.value > end.value) {
    const a = formatIP(start.family, start.value);
    const b = formatIP(end.family, end.value);
    throw new IPError(
      `invalid IP range ${
        JSON.stringify(text)
      }: start ${a} is after end ${b}; expected start <= end, e.g. "${b}-${a}"`,
    );
  }
  return { family: start.family, range: { start: start.value, end: end.value } };
}

function parseIPInRange(whole: string, part: string, family?: Family): { family: Family; value: bigint } {
  if (part === "") {
    throw new IPError(
      `invalid IP range ${
        JSON.stringify(whole)
      }: an end is empty; expected "ip" or "start-end" like 192.0.2.10-192.0.2.20`,
    );
  }
  try {
    return parseIP(part, family);
  } catch (e) {
    if (part === whole) throw e;
    throw new IPError(`invalid IP range ${JSON.stringify(whole)}: ${(e as Error).message}`);
  }
}

/** `a` when the range is one address, else `a-b`, both ends canonical. */
export function formatRange(family: Family, r: Range): string {
  const a = formatIP(family, r.start);
  return r.start === r.end ? a : `${a}-${formatIP(family, r.end)}`;
}

/**
 * Family of a valid IP, IP range or CIDR string; undefined when the text is none of these. Never throws.
 *
 * ```ts
 * familyOf("fd00::1-fd00::ff"); // 6
 * familyOf("10.1"); // undefined
 * ```
 */
export function familyOf(text: string): Family | undefined {
  try {
    return text.includes("/") ? parseIPPrefix(text).family : parseRange(text).family;
  } catch {
    return undefined;
  }
}
