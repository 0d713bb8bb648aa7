import assert from "node:assert/strict";
import { assertWithin, IPError, IPRangeSet, parseCIDR, parseIP } from "../../src/ip/mod.ts";

const v4 = (items: string[]) => IPRangeSet.parse(4, items);
const v6 = (items: string[]) => IPRangeSet.parse(6, items);
const ip = (text: string) => parseIP(text).value;

Deno.test("parse merges overlapping, duplicate and adjacent ranges into canonical minimal ranges", () => {
  assert.deepEqual(v4(["192.0.2.1-192.0.2.3", "192.0.2.2-192.0.2.5"]).toStrings(), ["192.0.2.1-192.0.2.5"]);
  assert.deepEqual(v4(["192.0.2.6", "192.0.2.1-192.0.2.5"]).toStrings(), ["192.0.2.1-192.0.2.6"]);
  assert.deepEqual(v4(["192.0.2.9", "192.0.2.9", "192.0.2.1"]).toStrings(), ["192.0.2.1", "192.0.2.9"]);
  assert.deepEqual(v4(["192.0.2.1-192.0.2.100", "192.0.2.5-192.0.2.6"]).toStrings(), [
    "192.0.2.1-192.0.2.100",
  ]);
  assert.deepEqual(v6(["2001:db8::10-2001:db8::ff", "2001:db8::1-2001:db8::f"]).toStrings(), [
    "2001:db8::1-2001:db8::ff",
  ]);
});

Deno.test("parse of an empty list is the empty set", () => {
  const s = v4([]);
  assert.equal(s.isEmpty(), true);
  assert.equal(s.count(), 0n);
  assert.deepEqual(s.toStrings(), []);
});

Deno.test("empty gives an empty set of the family", () => {
  assert.equal(IPRangeSet.empty(6).family, 6);
  assert.equal(IPRangeSet.empty(6).isEmpty(), true);
});

Deno.test("fromRanges sorts and merges and rejects reversed or out-of-family ranges", () => {
  const s = IPRangeSet.fromRanges(4, [{ start: 10n, end: 12n }, { start: 1n, end: 3n }, {
    start: 4n,
    end: 4n,
  }]);
  assert.deepEqual(s.ranges, [{ start: 1n, end: 4n }, { start: 10n, end: 12n }]);
  assert.throws(() => IPRangeSet.fromRanges(4, [{ start: 5n, end: 4n }]), IPError);
  assert.throws(
    () => IPRangeSet.fromRanges(4, [{ start: 0n, end: 1n << 32n }]),
    /expected 0 <= start <= end/,
  );
});

Deno.test("fromCIDR holds every address of the subnet", () => {
  assert.deepEqual(IPRangeSet.fromCIDR(parseCIDR("192.0.2.0/30")).toStrings(), ["192.0.2.0-192.0.2.3"]);
});

Deno.test("union merges across both sets", () => {
  const u = v4(["192.0.2.1-192.0.2.3", "192.0.2.10"]).union(
    v4(["192.0.2.4", "192.0.2.8-192.0.2.9", "192.0.2.20"]),
  );
  assert.deepEqual(u.toStrings(), ["192.0.2.1-192.0.2.4", "192.0.2.8-192.0.2.10", "192.0.2.20"]);
});

Deno.test("subtract removes excludeIPs, splitting ranges", () => {
  const s = v4(["192.0.2.1-192.0.2.100"]).subtract(v4(["192.0.2.1", "192.0.2.50-192.0.2.60", "192.0.2.100"]));
  assert.deepEqual(s.toStrings(), ["192.0.2.2-192.0.2.49", "192.0.2.61-192.0.2.99"]);
  assert.equal(v4(["192.0.2.1-192.0.2.5"]).subtract(v4(["192.0.2.0-192.0.2.9"])).isEmpty(), true);
});

Deno.test("intersect keeps the common addresses", () => {
  const s = v4(["192.0.2.1-192.0.2.10", "192.0.2.20-192.0.2.30"]).intersect(v4(["192.0.2.5-192.0.2.25"]));
  assert.deepEqual(s.toStrings(), ["192.0.2.5-192.0.2.10", "192.0.2.20-192.0.2.25"]);
});

Deno.test("has finds addresses at range edges and misses the gaps", () => {
  const s = v4(["192.0.2.1-192.0.2.3", "192.0.2.7"]);
  assert.equal(s.has(ip("192.0.2.1")), true);
  assert.equal(s.has(ip("192.0.2.3")), true);
  assert.equal(s.has(ip("192.0.2.4")), false);
  assert.equal(s.has(ip("192.0.2.7")), true);
  assert.equal(s.has(ip("192.0.2.8")), false);
  assert.equal(v4([]).has(0n), false);
});

Deno.test("containsSet is true only when every address of the other set is inside", () => {
  const pool = v4(["192.0.2.1-192.0.2.10", "192.0.2.20-192.0.2.30"]);
  assert.equal(pool.containsSet(v4(["192.0.2.2", "192.0.2.25-192.0.2.30"])), true);
  assert.equal(pool.containsSet(v4(["192.0.2.10-192.0.2.11"])), false);
  assert.equal(pool.containsSet(v4([])), true);
  assert.equal(v4([]).containsSet(pool), false);
});

Deno.test("overlaps is true when the sets share an address", () => {
  const a = v4(["192.0.2.1-192.0.2.10"]);
  assert.equal(a.overlaps(v4(["192.0.2.10-192.0.2.20"])), true);
  assert.equal(a.overlaps(v4(["192.0.2.11-192.0.2.20"])), false);
  assert.equal(a.overlaps(v4([])), false);
});

Deno.test("equals compares addresses, not the way they were written", () => {
  assert.equal(v4(["192.0.2.1-192.0.2.2", "192.0.2.3"]).equals(v4(["192.0.2.1-192.0.2.3"])), true);
  assert.equal(v4(["192.0.2.1"]).equals(v4(["192.0.2.2"])), false);
  assert.equal(IPRangeSet.empty(4).equals(IPRangeSet.empty(6)), false);
});

Deno.test("count of a /64 is exactly 2^64 without enumerating", () => {
  const s = IPRangeSet.fromCIDR(parseCIDR("2001:db8::/64"));
  assert.equal(s.count(), 18446744073709551616n);
  assert.equal(s.subtract(v6(["2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"])).count(), (1n << 64n) - 2n);
  assert.equal(IPRangeSet.fromCIDR(parseCIDR("::/0")).count(), 1n << 128n);
});

Deno.test("first is the lowest address, undefined when empty", () => {
  assert.equal(v4(["192.0.2.9", "192.0.2.3"]).first(), ip("192.0.2.3"));
  assert.equal(v4([]).first(), undefined);
});

Deno.test("toStrings prints canonical IPv6 ranges", () => {
  assert.deepEqual(v6(["2001:DB8:0:0::1-2001:db8::00FF", "::ffff:192.0.2.1"]).toStrings(), [
    "::ffff:192.0.2.1",
    "2001:db8::1-2001:db8::ff",
  ]);
});

Deno.test("values iterates ascending and stops at the limit", () => {
  const s = v4(["192.0.2.1-192.0.2.2", "192.0.2.9"]);
  assert.deepEqual([...s.values()], [ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.9")]);
  assert.deepEqual([...s.values(2)], [ip("192.0.2.1"), ip("192.0.2.2")]);
  assert.deepEqual([...IPRangeSet.fromCIDR(parseCIDR("2001:db8::/64")).values(1)], [ip("2001:db8::")]);
});

Deno.test("the ranges of a set cannot be modified", () => {
  const s = v4(["192.0.2.1"]);
  assert.throws(() => (s.ranges as unknown as unknown[]).push({ start: 0n, end: 0n }), TypeError);
});

Deno.test("operations on sets of different families throw", () => {
  for (const op of ["union", "subtract", "intersect", "containsSet", "overlaps"] as const) {
    assert.throws(
      () => v4(["192.0.2.1"])[op](v6(["::1"])),
      /IPv4 set with an IPv6 set; expected one family/,
      op,
    );
  }
});

Deno.test("assertWithin accepts a set inside the subnet", () => {
  assertWithin(parseCIDR("192.0.2.0/24"), v4(["192.0.2.0-192.0.2.255"]), "spec.ips");
  assertWithin(parseCIDR("192.0.2.0/24"), v4([]), "spec.ips");
});

Deno.test("assertWithin names the first range outside the subnet and the subnet", () => {
  assert.throws(
    () =>
      assertWithin(
        parseCIDR("198.18.1.0/24"),
        v4(["198.18.1.10", "198.18.2.1-198.18.2.5", "198.18.0.1"]),
        "spec.ips",
      ),
    /^IPError: spec\.ips: 198\.18\.0\.1 is outside subnet 198\.18\.1\.0\/24; expected addresses from 198\.18\.1\.0 to 198\.18\.1\.255$/,
  );
  assert.throws(
    () => assertWithin(parseCIDR("192.0.2.0/24"), v4(["192.0.2.250-192.0.3.5"]), "spec.excludeIPs"),
    /spec\.excludeIPs: 192\.0\.2\.250-192\.0\.3\.5 is outside subnet 192\.0\.2\.0\/24/,
  );
  assert.throws(
    () => assertWithin(parseCIDR("2001:db8::/64"), v4(["192.0.2.1"]), "spec.ips"),
    /spec\.ips: IPv4 addresses cannot lie in IPv6 subnet 2001:db8::\/64/,
  );
});
