import assert from "node:assert/strict";
import { firstFree, formatIP, IPRangeSet, parseCIDR, parseIP } from "../../src/ip/mod.ts";

const v4 = (items: string[]) => IPRangeSet.parse(4, items);
const ip = (text: string) => parseIP(text).value;
const ips = (...texts: string[]) => texts.map(ip);

Deno.test("firstFree returns the first address of the pool when nothing is taken", () => {
  assert.equal(firstFree(v4(["192.0.2.10-192.0.2.20"]), v4([]), []), ip("192.0.2.10"));
});

Deno.test("firstFree skips excluded and allocated addresses, in any order and with duplicates", () => {
  const pool = v4(["192.0.2.1-192.0.2.10"]);
  const got = firstFree(
    pool,
    v4(["192.0.2.1", "192.0.2.4"]),
    ips("192.0.2.3", "192.0.2.2", "192.0.2.2", "192.0.2.5"),
  );
  assert.equal(got, ip("192.0.2.6"));
});

Deno.test("firstFree moves on to the next range of the pool", () => {
  const pool = v4(["192.0.2.1-192.0.2.2", "192.0.2.100-192.0.2.101"]);
  assert.equal(firstFree(pool, v4(["192.0.2.2"]), ips("192.0.2.1", "192.0.2.100")), ip("192.0.2.101"));
});

Deno.test("firstFree ignores allocations outside the pool", () => {
  assert.equal(
    firstFree(v4(["192.0.2.5-192.0.2.6"]), v4([]), ips("192.0.2.4", "198.51.100.1")),
    ip("192.0.2.5"),
  );
});

Deno.test("firstFree returns undefined when the pool is used up", () => {
  const pool = v4(["192.0.2.1-192.0.2.3"]);
  assert.equal(firstFree(pool, v4(["192.0.2.2"]), ips("192.0.2.1", "192.0.2.3")), undefined);
  assert.equal(firstFree(v4([]), v4([]), []), undefined);
  assert.equal(firstFree(pool, pool, []), undefined);
});

Deno.test("firstFree accepts any iterable of allocated addresses, such as a Set", () => {
  assert.equal(firstFree(v4(["192.0.2.1-192.0.2.3"]), v4([]), new Set(ips("192.0.2.1"))), ip("192.0.2.2"));
});

Deno.test("firstFree on a /15 pool with the first 5000 addresses allocated is the 5001st", () => {
  const pool = IPRangeSet.fromCIDR(parseCIDR("198.18.0.0/15"));
  const base = ip("198.18.0.0");
  const allocated = Array.from({ length: 5000 }, (_, i) => base + BigInt(i));
  const got = firstFree(pool, v4(["198.18.0.0"]), allocated.reverse());
  assert.equal(formatIP(4, got!), "198.18.19.136");
});

Deno.test("firstFree on an IPv6 /64 pool with the first 5000 addresses allocated is the 5001st", () => {
  const pool = IPRangeSet.fromCIDR(parseCIDR("2001:db8::/64"));
  const base = ip("2001:db8::");
  const allocated = Array.from({ length: 5000 }, (_, i) => base + BigInt(i));
  const started = performance.now();
  const got = firstFree(pool, IPRangeSet.empty(6), allocated);
  // No enumeration of 2^64 addresses could finish: a generous bound keeps this independent of machine load.
  assert.ok(performance.now() - started < 10_000, "a /64 must not be enumerated");
  assert.equal(formatIP(6, got!), "2001:db8::1388");
});

Deno.test("firstFree on the whole IPv6 space (span beyond 64 bits) still finds the gap", () => {
  const pool = IPRangeSet.fromCIDR(parseCIDR("::/0"));
  assert.equal(firstFree(pool, IPRangeSet.parse(6, ["::"]), [1n, 3n, 2n, (1n << 128n) - 1n]), 4n);
});
