import assert from "node:assert/strict";
import { formatIP, IPError, isIP, parseIP } from "../../src/ip/mod.ts";
import { prng } from "./_helpers.ts";

Deno.test("parseIP reads a dotted quad as family 4", () => {
  assert.deepEqual(parseIP("192.0.2.1"), { family: 4, value: 0xc0000201n });
  assert.deepEqual(parseIP("0.0.0.0"), { family: 4, value: 0n });
  assert.deepEqual(parseIP("255.255.255.255"), { family: 4, value: 0xffffffffn });
  assert.deepEqual(parseIP("198.51.100.9"), { family: 4, value: 0xc6336409n });
});

Deno.test("parseIP reads full, compressed and upper-case IPv6", () => {
  assert.deepEqual(parseIP("2001:db8::1"), { family: 6, value: 0x20010db8000000000000000000000001n });
  assert.deepEqual(parseIP("2001:DB8:0:0:0:0:0:1"), {
    family: 6,
    value: 0x20010db8000000000000000000000001n,
  });
  assert.deepEqual(parseIP("::"), { family: 6, value: 0n });
  assert.deepEqual(parseIP("::1"), { family: 6, value: 1n });
  assert.deepEqual(parseIP("fe80::"), { family: 6, value: 0xfe80n << 112n });
  assert.deepEqual(parseIP("1:2:3:4:5:6:7::"), { family: 6, value: 0x0001000200030004000500060007_0000n });
  assert.deepEqual(parseIP("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), {
    family: 6,
    value: (1n << 128n) - 1n,
  });
});

Deno.test("parseIP reads IPv4-embedded IPv6 forms as family 6", () => {
  assert.deepEqual(parseIP("::ffff:192.0.2.1"), { family: 6, value: 0xffffc0000201n });
  assert.deepEqual(parseIP("::192.0.2.1"), { family: 6, value: 0xc0000201n });
  assert.deepEqual(parseIP("64:ff9b::192.0.2.1"), { family: 6, value: (0x64ff9bn << 96n) | 0xc0000201n });
  assert.deepEqual(parseIP("1:2:3:4:5:6:192.0.2.1"), {
    family: 6,
    value: 0x000100020003000400050006c0000201n,
  });
});

Deno.test("parseIP with a family rejects the other family and names both", () => {
  assert.equal(parseIP("192.0.2.1", 4).value, 0xc0000201n);
  assert.throws(() => parseIP("2001:db8::1", 4), /expected an IPv4 address, got IPv6 address "2001:db8::1"/);
  assert.throws(() => parseIP("192.0.2.1", 6), /expected an IPv6 address, got IPv4 address "192.0.2.1"/);
  assert.throws(() => parseIP("::ffff:192.0.2.1", 4), IPError);
});

Deno.test("isIP accepts valid addresses of both families and rejects everything else", () => {
  for (const good of ["192.0.2.1", "::", "2001:db8::1", "::ffff:198.51.100.1"]) {
    assert.equal(isIP(good), true, good);
  }
  for (const bad of ["", "192.0", "192.0.2.1/24", "1.2.3.4-1.2.3.5", "fe80::1%eth0", "x"]) {
    assert.equal(isIP(bad), false, bad);
  }
});

Deno.test("formatIP prints IPv4 as a dotted quad", () => {
  assert.equal(formatIP(4, 0n), "0.0.0.0");
  assert.equal(formatIP(4, 0xc0000201n), "192.0.2.1");
  assert.equal(formatIP(4, 0xffffffffn), "255.255.255.255");
});

// RFC 5952 §4 and its examples, plus edge cases of run selection.
const RFC5952_VECTORS: [string, string][] = [
  ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"], // §4.1 leading zeros, §4.2.1 longest run
  ["2001:db8:0:0:0:0:2:1", "2001:db8::2:1"],
  ["2001:db8::0:1", "2001:db8::1"], // §4.2.1 "::" must cover the whole run
  ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // §4.2.2 a single zero group is not compressed
  ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // §4.2.3 the longest run wins
  ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // §4.2.3 the first run wins on ties
  ["2001:DB8::AAAA", "2001:db8::aaaa"], // §4.3 lower case
  ["0:0:0:0:0:0:0:0", "::"],
  ["0:0:0:0:0:0:0:1", "::1"],
  ["1:0:0:0:0:0:0:0", "1::"],
  ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
  ["0:0:1:0:0:0:0:0", "0:0:1::"],
  ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
  ["1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"],
  ["fe80:0:0:0:0:0:0:ff", "fe80::ff"],
  ["0:0:0:0:0:ffff:c000:201", "::ffff:192.0.2.1"], // §5 IPv4-mapped in mixed notation
  ["::ffff:0.0.0.0", "::ffff:0.0.0.0"],
  ["::c000:201", "::c000:201"], // IPv4-compatible (deprecated) stays hex
  ["64:ff9b::192.0.2.1", "64:ff9b::c000:201"],
];

Deno.test("formatIP follows RFC 5952 for IPv6", () => {
  for (const [input, canonical] of RFC5952_VECTORS) {
    const { family, value } = parseIP(input);
    assert.equal(formatIP(family, value), canonical, input);
  }
});

Deno.test("formatIP rejects values outside the family", () => {
  assert.throws(() => formatIP(4, 1n << 32n), /out of range/);
  assert.throws(() => formatIP(6, -1n), /out of range/);
});

Deno.test("formatIP agrees with the WHATWG URL serializer and round-trips through parseIP (random, seeded)", () => {
  const seed = 5952;
  const rand = prng(seed);
  for (let n = 0; n < 3000; n++) {
    // Mostly-zero groups exercise run selection; the URL serializer does not print IPv4-mapped mixed forms.
    let value = 0n;
    for (let g = 0; g < 8; g++) {
      const r = rand();
      value = (value << 16n) | BigInt(r < 0.55 ? 0 : r < 0.7 ? 1 : Math.floor(rand() * 65536));
    }
    const text = formatIP(6, value);
    const context = `seed ${seed}, case ${n}, value ${value.toString(16)}`;
    assert.equal(parseIP(text).value, value, context);
    if (value >> 32n !== 0xffffn) {
      assert.equal(text, new URL(`http://[${text}]/`).hostname.slice(1, -1), context);
    }
    const v4 = BigInt(Math.floor(rand() * 2 ** 32));
    assert.equal(parseIP(formatIP(4, v4)).value, v4, context);
  }
});
