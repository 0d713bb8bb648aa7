import assert from "node:assert/strict";
import {
  cidrContains,
  cidrRange,
  cidrsOverlap,
  formatCIDR,
  hostMask,
  parseCIDR,
  parseIPPrefix,
  prefixMask,
} from "../../src/ip/mod.ts";

Deno.test("parseCIDR reads canonical IPv4 and IPv6 subnets", () => {
  assert.deepEqual(parseCIDR("198.18.0.0/16"), { family: 4, base: 0xc6120000n, prefix: 16 });
  assert.deepEqual(parseCIDR("0.0.0.0/0"), { family: 4, base: 0n, prefix: 0 });
  assert.deepEqual(parseCIDR("192.0.2.7/32"), { family: 4, base: 0xc0000207n, prefix: 32 });
  assert.deepEqual(parseCIDR("2001:db8::/64"), { family: 6, base: 0x20010db8n << 96n, prefix: 64 });
  assert.deepEqual(parseCIDR("::/0"), { family: 6, base: 0n, prefix: 0 });
  assert.deepEqual(parseCIDR("::1/128"), { family: 6, base: 1n, prefix: 128 });
});

Deno.test("parseCIDR rejects host bits and names the canonical subnet", () => {
  assert.throws(() => parseCIDR("192.0.2.1/24"), /"192\.0\.2\.1\/24".*"192\.0\.2\.0\/24"/);
  assert.throws(() => parseCIDR("198.18.1.0/16"), /"198\.18\.0\.0\/16"/);
  assert.throws(() => parseCIDR("2001:db8::1/64"), /"2001:db8::\/64"/);
});

Deno.test("parseCIDR with canonical: false clears host bits", () => {
  assert.deepEqual(parseCIDR("192.0.2.1/24", { canonical: false }), {
    family: 4,
    base: 0xc0000200n,
    prefix: 24,
  });
});

Deno.test("parseIPPrefix keeps the host bits of an interface address", () => {
  assert.deepEqual(parseIPPrefix("192.0.2.7/24"), { family: 4, value: 0xc0000207n, prefix: 24 });
  assert.deepEqual(parseIPPrefix("2001:db8::5/120"), {
    family: 6,
    value: (0x20010db8n << 96n) | 5n,
    prefix: 120,
  });
});

Deno.test("formatCIDR prints the canonical network/prefix", () => {
  assert.equal(formatCIDR(parseCIDR("198.18.0.0/16")), "198.18.0.0/16");
  assert.equal(formatCIDR(parseCIDR("2001:DB8:0:0::/64")), "2001:db8::/64");
});

Deno.test("cidrRange spans network to broadcast address", () => {
  assert.deepEqual(cidrRange(parseCIDR("192.0.2.0/24")), { start: 0xc0000200n, end: 0xc00002ffn });
  assert.deepEqual(cidrRange(parseCIDR("0.0.0.0/0")), { start: 0n, end: 0xffffffffn });
  const v6 = cidrRange(parseCIDR("2001:db8::/64"));
  assert.equal(v6.end - v6.start + 1n, 1n << 64n);
});

Deno.test("cidrContains tests membership at the edges", () => {
  const c = parseCIDR("192.0.2.0/24");
  assert.equal(cidrContains(c, 0xc0000200n), true);
  assert.equal(cidrContains(c, 0xc00002ffn), true);
  assert.equal(cidrContains(c, 0xc00001ffn), false);
  assert.equal(cidrContains(c, 0xc0000300n), false);
  assert.equal(cidrContains(parseCIDR("::/0"), (1n << 128n) - 1n), true);
});

Deno.test("cidrsOverlap detects nested and disjoint subnets, never across families", () => {
  assert.equal(cidrsOverlap(parseCIDR("198.18.0.0/15"), parseCIDR("198.19.0.0/16")), true);
  assert.equal(cidrsOverlap(parseCIDR("198.19.0.0/16"), parseCIDR("198.18.0.0/15")), true);
  assert.equal(cidrsOverlap(parseCIDR("198.18.0.0/16"), parseCIDR("198.19.0.0/16")), false);
  assert.equal(cidrsOverlap(parseCIDR("0.0.0.0/0"), parseCIDR("::/0")), false);
});

Deno.test("prefixMask and hostMask split the address bits", () => {
  assert.equal(prefixMask(4, 24), 0xffffff00n);
  assert.equal(hostMask(4, 24), 0xffn);
  assert.equal(prefixMask(4, 0), 0n);
  assert.equal(hostMask(6, 128), 0n);
  assert.equal(prefixMask(6, 64), ((1n << 64n) - 1n) << 64n);
});
