// Single addresses: strict parsing of IPv4 dotted quads and IPv6 text (RFC 4291 §2.2, including the embedded
// IPv4 form), and canonical formatting (dotted quad; RFC 5952 for IPv6). Values are unsigned bigints.

import { type Family, familyName, IPError, maxValue } from "./family.ts";

const WHITESPACE = /\s/;
const EXAMPLE = "an IPv4 address like 192.0.2.1 or an IPv6 address like 2001:db8::1";

/**
 * Parses one address. Strict: no shorthand (`10.1`), no leading zeros in IPv4 octets (ambiguous octal), no
 * spaces, no zone ids (`fe80::1%eth0`). An IPv4-embedded IPv6 address such as `::ffff:192.0.2.1` is family 6.
 * When `family` is given, an address of the other family is rejected.
 *
 * ```ts
 * parseIP("192.0.2.1"); // { family: 4, value: 3221225985n }
 * parseIP("::ffff:192.0.2.1"); // { family: 6, value: 281473902969345n }
 * ```
 */
export function parseIP(text: string, family?: Family): { family: Family; value: bigint } {
  const found = detectFamily(text, "IP address");
  if (family !== undefined && found !== family) {
    throw new IPError(
      `expected an ${familyName(family)} address, got ${familyName(found)} address ${JSON.stringify(text)}`,
    );
  }
  return { family: found, value: found === 4 ? BigInt(parseIPv4(text)) : parseIPv6(text) };
}

/** True when `text` is a valid IPv4 or IPv6 address by the rules of {@link parseIP}. */
export function isIP(text: string): boolean {
  try {
    parseIP(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Canonical text of an address: IPv4 dotted quad; IPv6 per RFC 5952 (lower case, the longest run of two or more
 * zero groups compressed to `::`, the first such run on ties); IPv4-mapped addresses as `::ffff:a.b.c.d`.
 *
 * ```ts
 * formatIP(6, 0x20010db8000000000000000000000001n); // "2001:db8::1"
 * ```
 */
export function formatIP(family: Family, value: bigint): string {
  if (value < 0n || value > maxValue(family)) {
    throw new IPError(`cannot format ${value} as an ${familyName(family)} address: out of range`);
  }
  if (family === 4) return formatIPv4(Number(value));
  if (value >> 32n === 0xffffn) return "::ffff:" + formatIPv4(Number(value & 0xffffffffn));
  return formatIPv6(value);
}

/**
 * Checks the characters every address form shares (empty, spaces, zone ids) and returns the family the text
 * claims: 6 when it contains a colon, else 4. `kind` and `expected` describe the wanted form in messages.
 */
export function detectFamily(text: string, kind: string, expected = EXAMPLE): Family {
  if (text === "") throw new IPError(`invalid ${kind} "": expected ${expected}, got an empty string`);
  if (WHITESPACE.test(text)) {
    throw new IPError(
      `invalid ${kind} ${JSON.stringify(text)}: must not contain spaces; expected ${expected}`,
    );
  }
  if (text.includes("%")) {
    throw new IPError(
      `invalid ${kind} ${JSON.stringify(text)}: zone ids ("%eth0") are not allowed; expected ${expected}`,
    );
  }
  return text.includes(":") ? 6 : 4;
}

/** Parses a strict dotted quad to a number in [0, 2^32). Throws IPError naming `text` otherwise. */
export function parseIPv4(text: string, whole: string = text): number {
  let value = 0;
  let octets = 0;
  let digits = 0;
  let octet = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46; // a virtual "." closes the last octet
    if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) {
        throw v4Error(
          whole,
          `octet with a leading zero is ambiguous (octal?); write it without leading zeros`,
        );
      }
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) throw v4Error(whole, `octet exceeds 255; each octet must be 0-255`);
    } else if (c === 46) {
      if (digits === 0) throw v4Error(whole, `empty octet; expected four decimal octets a.b.c.d`);
      if (++octets > 4) throw v4Error(whole, `more than four octets; expected four decimal octets a.b.c.d`);
      value = value * 256 + octet;
      digits = 0;
      octet = 0;
    } else {
      throw v4Error(
        whole,
        `unexpected character ${JSON.stringify(text[i])}; expected four decimal octets a.b.c.d (0-255 each)`,
      );
    }
  }
  if (octets !== 4) {
    throw v4Error(
      whole,
      `has ${octets} octet${octets === 1 ? "" : "s"}, expected four decimal octets a.b.c.d`,
    );
  }
  return value;
}

function v4Error(text: string, detail: string): IPError {
  return new IPError(`invalid IPv4 address ${JSON.stringify(text)}: ${detail}`);
}

function v6Error(text: string, detail: string): IPError {
  return new IPError(`invalid IPv6 address ${JSON.stringify(text)}: ${detail}`);
}

/** Parses IPv6 text (RFC 4291 §2.2, no zone) to a bigint. Throws IPError naming `text` otherwise. */
export function parseIPv6(text: string): bigint {
  const len = text.length;
  const groups: number[] = [];
  let gap = -1; // index in `groups` where "::" stands
  let i = 0;
  if (text.charCodeAt(0) === COLON) {
    if (text.charCodeAt(1) !== COLON) throw v6Error(text, EMPTY_GROUP);
    gap = 0;
    i = 2;
    if (text.charCodeAt(2) === COLON) throw v6Error(text, ONE_GAP);
  }
  while (i < len) {
    const start = i;
    let group = 0;
    for (let d; i < len && (d = hexValue(text.charCodeAt(i))) >= 0; i++) group = group * 16 + d;
    if (text.charCodeAt(i) === DOT) {
      if (text.indexOf(":", start) !== -1) {
        throw v6Error(
          text,
          `an embedded IPv4 address may appear only as the last part, e.g. ::ffff:192.0.2.1`,
        );
      }
      const v4 = parseIPv4(text.slice(start), text);
      groups.push(v4 >>> 16, v4 & 0xffff);
      break;
    }
    if (i === start || i - start > 4 || (i < len && text.charCodeAt(i) !== COLON)) {
      const end = text.indexOf(":", start);
      const field = text.slice(start, end === -1 ? len : end);
      throw v6Error(
        text,
        field === "" ? EMPTY_GROUP : `group ${JSON.stringify(field)} is not 1-4 hex digits`,
      );
    }
    groups.push(group);
    if (i === len) break;
    i++; // the ":" after the group
    if (text.charCodeAt(i) === COLON) {
      if (gap !== -1 || text.charCodeAt(i + 1) === COLON) throw v6Error(text, ONE_GAP);
      gap = groups.length;
      i++;
    } else if (i === len) {
      throw v6Error(text, EMPTY_GROUP);
    }
  }
  const n = groups.length;
  if (gap === -1 && n !== 8) {
    throw v6Error(text, `has ${n} groups, expected 8 groups of 1-4 hex digits (or "::" for zeros)`);
  }
  if (gap !== -1 && n > 7) {
    throw v6Error(text, `too many groups: ${n} plus "::", expected at most 7 groups with "::"`);
  }
  if (gap !== -1) groups.splice(gap, 0, ...ZEROS.slice(0, 8 - n));
  return (BigInt(groups[0] * 65536 + groups[1]) << 96n) | (BigInt(groups[2] * 65536 + groups[3]) << 64n) |
    (BigInt(groups[4] * 65536 + groups[5]) << 32n) | BigInt(groups[6] * 65536 + groups[7]);
}

const COLON = 58;
const DOT = 46;
const ZEROS = [0, 0, 0, 0, 0, 0, 0, 0];
const EMPTY_GROUP = `empty group (a lone ":" at the start, end or doubled); expected hex groups`;
const ONE_GAP = `"::" may appear only once (and ":::" never)`;

/** Value of a hex digit character code, or -1. */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 32;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

function formatIPv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function formatIPv6(value: bigint): string {
  const high = value >> 64n;
  const low = value & 0xffffffffffffffffn;
  const words = [
    Number(high >> 32n),
    Number(high & 0xffffffffn),
    Number(low >> 32n),
    Number(low & 0xffffffffn),
  ];
  const groups: number[] = new Array(8);
  for (let i = 0; i < 4; i++) {
    groups[2 * i] = words[i] >>> 16;
    groups[2 * i + 1] = words[i] & 0xffff;
  }
  let bestStart = -1;
  let bestLen = 1; // RFC 5952 §4.2.2: never compress a single zero group
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  let out = "";
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += "::";
      i += bestLen - 1;
    } else {
      out += (i === 0 || i === bestStart + bestLen ? "" : ":") + groups[i].toString(16);
    }
  }
  return out;
}
