import assert from "node:assert/strict";
import { familyOf, formatRange, parseRange } from "../../src/ip/mod.ts";

Deno.test("parseRange reads a single address as a one-address range", () => {
  assert.deepEqual(parseRange("198.18.40.10"), {
    family: 4,
    range: { start: 0xc612280an, end: 0xc612280an },
  });
});

Deno.test("parseRange reads start-end of either family", () => {
  assert.deepEqual(parseRange("192.0.2.10-192.0.2.20"), {
    family: 4,
    range: { start: 0xc000020an, end: 0xc0000214n },
  });
  const v6 = parseRange("2001:db8::1-2001:db8::ff");
  assert.equal(v6.family, 6);
  assert.equal(v6.range.end - v6.range.start, 0xfen);
  assert.deepEqual(parseRange("192.0.2.5-192.0.2.5").range, { start: 0xc0000205n, end: 0xc0000205n });
});

Deno.test("parseRange with a family rejects a range of the other family", () => {
  assert.throws(
    () => parseRange("2001:db8::1-2001:db8::2", 4),
    /expected an IPv4 address, got IPv6 address "2001:db8::1"/,
  );
});

Deno.test("formatRange prints one address alone and a span as a-b", () => {
  assert.equal(formatRange(4, { start: 0xc0000201n, end: 0xc0000201n }), "192.0.2.1");
  assert.equal(formatRange(4, { start: 0xc0000201n, end: 0xc0000205n }), "192.0.2.1-192.0.2.5");
  assert.equal(formatRange(6, parseRange("2001:DB8:0::1-2001:db8::00ff").range), "2001:db8::1-2001:db8::ff");
});

Deno.test("familyOf classifies IPs, ranges and CIDRs and returns undefined for anything invalid", () => {
  assert.equal(familyOf("192.0.2.1"), 4);
  assert.equal(familyOf("192.0.2.1-192.0.2.9"), 4);
  assert.equal(familyOf("192.0.2.0/24"), 4);
  assert.equal(familyOf("192.0.2.1/24"), 4);
  assert.equal(familyOf("::ffff:192.0.2.1"), 6);
  assert.equal(familyOf("2001:db8::1-2001:db8::ff"), 6);
  assert.equal(familyOf("2001:db8::/32"), 6);
  for (
    const bad of ["", "192.0", "x", "192.0.2.9-192.0.2.1", "192.0.2.0/33", "fe80::1%eth0", "1.2.3.4-::1"]
  ) {
    assert.equal(familyOf(bad), undefined, bad);
  }
});
