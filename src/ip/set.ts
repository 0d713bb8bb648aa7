// IPRangeSet: a set of addresses of one family held as sorted, disjoint, non-adjacent inclusive ranges. Every
// operation walks the range lists once, so cost grows with the number of ranges, never with the addresses.

import { formatIP } from "./address.ts";
import { type CIDR, cidrRange, formatCIDR } from "./cidr.ts";
import { type Family, familyName, IPError, maxValue } from "./family.ts";
import { formatRange, parseRange, type Range } from "./range.ts";

/** An immutable set of addresses of one family, kept as canonical minimal ranges. */
export class IPRangeSet {
  readonly family: Family;
  readonly ranges: readonly Range[];

  /** `ranges` must already be sorted, disjoint and non-adjacent; use the static constructors. */
  private constructor(family: Family, ranges: Range[]) {
    this.family = family;
    this.ranges = Object.freeze(ranges);
  }

  /** The empty set of `family`. */
  static empty(family: Family): IPRangeSet {
    return new IPRangeSet(family, []);
  }

  /**
   * Parses Spiderpool range strings (`ip` or `start-end`) of one family and merges them. `what` names the field
   * in error messages, e.g. `spec.ips` gives `spec.ips[2]: invalid IP range "...": ...`.
   *
   * ```ts
   * IPRangeSet.parse(4, ["192.0.2.1-192.0.2.3", "192.0.2.2-192.0.2.5"]).toStrings(); // ["192.0.2.1-192.0.2.5"]
   * ```
   */
  static parse(family: Family, items: readonly string[], what = "ips"): IPRangeSet {
    const ranges: Range[] = new Array(items.length);
    for (let i = 0; i < items.length; i++) {
      try {
        ranges[i] = parseRange(items[i], family).range;
      } catch (e) {
        throw new IPError(`${what}[${i}]: ${(e as Error).message}`);
      }
    }
    return new IPRangeSet(family, mergeRanges(ranges));
  }

  /** Builds a set from ranges in any order, overlapping or not. Each range must have start <= end. */
  static fromRanges(family: Family, ranges: readonly Range[]): IPRangeSet {
    const max = maxValue(family);
    for (const r of ranges) {
      if (r.start < 0n || r.end > max || r.start > r.end) {
        throw new IPError(
          `invalid ${familyName(family)} range {start: ${r.start}, end: ${r.end}}: ` +
            `expected 0 <= start <= end <= ${max}`,
        );
      }
    }
    return new IPRangeSet(family, mergeRanges(ranges.slice()));
  }

  /** All addresses of a subnet, network and broadcast addresses included. */
  static fromCIDR(c: CIDR): IPRangeSet {
    return new IPRangeSet(c.family, [cidrRange(c)]);
  }

  /** Addresses in either set. */
  union(o: IPRangeSet): IPRangeSet {
    this.sameFamily(o, "union");
    if (o.ranges.length === 0) return this;
    if (this.ranges.length === 0) return o;
    const a = this.ranges;
    const b = o.ranges;
    const out: Range[] = [];
    let i = 0;
    let j = 0;
    while (i < a.length || j < b.length) {
      const next = j >= b.length || (i < a.length && a[i].start <= b[j].start) ? a[i++] : b[j++];
      const last = out[out.length - 1];
      if (last !== undefined && next.start <= last.end + 1n) {
        if (next.end > last.end) out[out.length - 1] = { start: last.start, end: next.end };
      } else {
        out.push(next);
      }
    }
    return new IPRangeSet(this.family, out);
  }

  /** Addresses of this set that are not in `o` (e.g. ips minus excludeIPs). */
  subtract(o: IPRangeSet): IPRangeSet {
    this.sameFamily(o, "subtract");
    if (o.ranges.length === 0 || this.ranges.length === 0) return this;
    const b = o.ranges;
    const out: Range[] = [];
    let j = 0;
    for (const r of this.ranges) {
      let start = r.start;
      while (j < b.length && b[j].end < start) j++;
      // b[k] for k >= j may cut r; do not advance j past a range that may also cut the next r.
      let k = j;
      while (k < b.length && b[k].start <= r.end && start <= r.end) {
        if (b[k].start > start) out.push({ start, end: b[k].start - 1n });
        if (b[k].end >= start) start = b[k].end + 1n;
        k++;
      }
      if (start <= r.end) out.push(start === r.start ? r : { start, end: r.end });
    }
    return new IPRangeSet(this.family, out);
  }

  /** Addresses in both sets. */
  intersect(o: IPRangeSet): IPRangeSet {
    this.sameFamily(o, "intersect");
    const a = this.ranges;
    const b = o.ranges;
    const out: Range[] = [];
    let i = 0;
    let j = 0;
    while (i < a.length && j < b.length) {
      const start = a[i].start > b[j].start ? a[i].start : b[j].start;
      const end = a[i].end < b[j].end ? a[i].end : b[j].end;
      if (start <= end) out.push({ start, end });
      if (a[i].end < b[j].end) i++;
      else j++;
    }
    return new IPRangeSet(this.family, out);
  }

  /** True when the address `value` is in the set (binary search). */
  has(value: bigint): boolean {
    const r = this.ranges;
    let lo = 0;
    let hi = r.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (value < r[mid].start) hi = mid - 1;
      else if (value > r[mid].end) lo = mid + 1;
      else return true;
    }
    return false;
  }

  /** True when every address of `o` is in this set. */
  containsSet(o: IPRangeSet): boolean {
    this.sameFamily(o, "compare");
    const a = this.ranges;
    let i = 0;
    for (const r of o.ranges) {
      while (i < a.length && a[i].end < r.start) i++;
      // Ranges are non-adjacent, so one range of this set must cover all of r.
      if (i >= a.length || a[i].start > r.start || a[i].end < r.end) return false;
    }
    return true;
  }

  /** True when the sets share at least one address. */
  overlaps(o: IPRangeSet): boolean {
    this.sameFamily(o, "compare");
    const a = this.ranges;
    const b = o.ranges;
    let i = 0;
    let j = 0;
    while (i < a.length && j < b.length) {
      if (a[i].start <= b[j].end && b[j].start <= a[i].end) return true;
      if (a[i].end < b[j].end) i++;
      else j++;
    }
    return false;
  }

  /** True when both sets hold the same addresses. */
  equals(o: IPRangeSet): boolean {
    if (o.family !== this.family || o.ranges.length !== this.ranges.length) return false;
    return this.ranges.every((r, i) => r.start === o.ranges[i].start && r.end === o.ranges[i].end);
  }

  /** Number of addresses, exact for any size (a /64 counts 2^64). */
  count(): bigint {
    let n = 0n;
    for (const r of this.ranges) n += r.end - r.start + 1n;
    return n;
  }

  /** True when the set holds no address. */
  isEmpty(): boolean {
    return this.ranges.length === 0;
  }

  /** Lowest address, or undefined when empty. */
  first(): bigint | undefined {
    return this.ranges[0]?.start;
  }

  /** Canonical minimal range strings, ascending: `["192.0.2.1-192.0.2.5", "192.0.2.9"]`. */
  toStrings(): string[] {
    return this.ranges.map((r) => formatRange(this.family, r));
  }

  /** The addresses in ascending order, at most `limit` of them when given. */
  *values(limit = Infinity): IterableIterator<bigint> {
    let left = limit;
    for (const r of this.ranges) {
      for (let v = r.start; v <= r.end; v++) {
        if (left-- <= 0) return;
        yield v;
      }
    }
  }

  private sameFamily(o: IPRangeSet, op: string): void {
    if (o.family !== this.family) {
      throw new IPError(
        `cannot ${op} an ${familyName(this.family)} set with an ${
          familyName(o.family)
        } set; expected one family`,
      );
    }
  }
}

/**
 * Throws an IPError when `set` has an address outside `subnet`, naming the first offending range, e.g.
 * `spec.ips: 10.0.1.5-10.0.1.9 is outside subnet 10.0.0.0/24`.
 */
export function assertWithin(subnet: CIDR, set: IPRangeSet, what: string): void {
  const cidr = formatCIDR(subnet);
  if (set.family !== subnet.family) {
    throw new IPError(
      `${what}: ${familyName(set.family)} addresses cannot lie in ${
        familyName(subnet.family)
      } subnet ${cidr}`,
    );
  }
  const { start, end } = cidrRange(subnet);
  const bad = set.ranges.find((r) => r.start < start || r.end > end);
  if (bad !== undefined) {
    throw new IPError(
      `${what}: ${formatRange(set.family, bad)} is outside subnet ${cidr}; expected addresses from ` +
        `${formatIP(subnet.family, start)} to ${formatIP(subnet.family, end)}`,
    );
  }
}

/** Sorts ranges in place by start and merges overlapping and adjacent ones. */
function mergeRanges(ranges: Range[]): Range[] {
  // Lists written back by the webhook are already canonical, so check before paying for a sort.
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i].start < ranges[i - 1].start) {
      ranges.sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : 0));
      break;
    }
  }
  const out: Range[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last !== undefined && r.start <= last.end + 1n) {
      if (r.end > last.end) out[out.length - 1] = { start: last.start, end: r.end };
    } else {
      out.push(r);
    }
  }
  return out;
}
