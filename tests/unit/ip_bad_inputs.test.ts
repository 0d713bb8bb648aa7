// Every malformed input is rejected with an IPError whose message quotes the input and says what is expected.
import assert from "node:assert/strict";
import { IPError, IPRangeSet, parseCIDR, parseIP, parseRange } from "../../src/ip/mod.ts";

type Case = { kind: "ip" | "range" | "cidr"; input: string; expect: RegExp };

const CASES: Case[] = [
  // IPv4 shape
  { kind: "ip", input: "", expect: /got an empty string/ },
  { kind: "ip", input: "192.0", expect: /has 2 octets, expected four decimal octets/ },
  { kind: "ip", input: "192.0.2", expect: /has 3 octets, expected four decimal octets/ },
  { kind: "ip", input: "192", expect: /has 1 octet, expected four decimal octets/ },
  { kind: "ip", input: "1.2.3.4.5", expect: /more than four octets/ },
  { kind: "ip", input: "256.1.1.1", expect: /exceeds 255; each octet must be 0-255/ },
  { kind: "ip", input: "1.2.3.1000", expect: /exceeds 255/ },
  { kind: "ip", input: "01.2.3.4", expect: /leading zero.*without leading zeros/ },
  { kind: "ip", input: "192.0.2.010", expect: /leading zero/ },
  { kind: "ip", input: "1.2.3.00", expect: /leading zero/ },
  { kind: "ip", input: "1..3.4", expect: /empty octet; expected four decimal octets/ },
  { kind: "ip", input: "1.2.3.4.", expect: /empty octet/ },
  { kind: "ip", input: ".1.2.3", expect: /empty octet/ },
  { kind: "ip", input: "1.2.3.a", expect: /unexpected character "a"; expected four decimal octets/ },
  { kind: "ip", input: "0x1.2.3.4", expect: /unexpected character "x"/ },
  { kind: "ip", input: "-1.2.3.4", expect: /unexpected character "-"/ },
  { kind: "ip", input: "1.2.3.4/32", expect: /unexpected character "\/"/ },
  { kind: "ip", input: " 1.2.3.4", expect: /must not contain spaces; expected an IPv4 address like/ },
  { kind: "ip", input: "1.2.3.4 ", expect: /must not contain spaces/ },
  { kind: "ip", input: "1.2.3.4\t", expect: /must not contain spaces/ },
  // IPv6 shape
  { kind: "ip", input: "1::2::3", expect: /"::" may appear only once/ },
  { kind: "ip", input: "::1::", expect: /"::" may appear only once/ },
  { kind: "ip", input: "1:::2", expect: /":::" never/ },
  { kind: "ip", input: "1:2:3:4:5:6:7:8:9", expect: /has 9 groups, expected 8 groups/ },
  { kind: "ip", input: "1:2:3:4:5:6:7", expect: /has 7 groups, expected 8 groups/ },
  { kind: "ip", input: "1:2:3:4:5:6:7::8", expect: /too many groups: 8 plus "::", expected at most 7/ },
  { kind: "ip", input: "1:2:3:4:5:6:7:1.2.3.4", expect: /has 9 groups, expected 8/ },
  { kind: "ip", input: "12345::1", expect: /group "12345" is not 1-4 hex digits/ },
  { kind: "ip", input: "2001:db8::g", expect: /group "g" is not 1-4 hex digits/ },
  { kind: "ip", input: ":1:2:3:4:5:6:7", expect: /empty group.*expected hex groups/ },
  { kind: "ip", input: "1:2:3:4:5:6:7:", expect: /empty group/ },
  { kind: "ip", input: ":", expect: /empty group/ },
  { kind: "ip", input: "fe80::1%eth0", expect: /zone ids .* are not allowed/ },
  { kind: "ip", input: "fe80::1%1", expect: /zone ids/ },
  { kind: "ip", input: "1.2.3.4::", expect: /embedded IPv4 address may appear only as the last part/ },
  { kind: "ip", input: "::1.2.3.4:1", expect: /embedded IPv4 address may appear only as the last part/ },
  { kind: "ip", input: "::ffff:1.2.3", expect: /has 3 octets/ },
  { kind: "ip", input: "::ffff:1.2.3.256", expect: /exceeds 255/ },
  { kind: "ip", input: "::ffff:01.2.3.4", expect: /leading zero/ },
  { kind: "ip", input: "[::1]", expect: /group "\[" is not 1-4 hex digits/ },
  { kind: "ip", input: "2001:db8::1 ", expect: /must not contain spaces/ },
  // ranges
  { kind: "range", input: "", expect: /got an empty string/ },
  {
    kind: "range",
    input: "192.0.2.20-192.0.2.10",
    expect: /start 192\.0\.2\.20 is after end 192\.0\.2\.10.*192\.0\.2\.10-192\.0\.2\.20/,
  },
  { kind: "range", input: "2001:db8::ff-2001:db8::1", expect: /start 2001:db8::ff is after end 2001:db8::1/ },
  {
    kind: "range",
    input: "192.0.2.1-2001:db8::1",
    expect: /mixes IPv4 and IPv6; expected both ends of the same family/,
  },
  { kind: "range", input: "2001:db8::1-192.0.2.1", expect: /mixes IPv6 and IPv4/ },
  {
    kind: "range",
    input: "192.0.2.1 - 192.0.2.5",
    expect: /must not contain spaces; expected "ip" or "start-end"/,
  },
  { kind: "range", input: "192.0.2.1-", expect: /an end is empty; expected "ip" or "start-end"/ },
  { kind: "range", input: "-192.0.2.1", expect: /an end is empty/ },
  {
    kind: "range",
    input: "192.0.2.1-192.0.2.2-192.0.2.3",
    expect: /more than one "-"; expected "start-end"/,
  },
  { kind: "range", input: "192.0.2.1-192.0", expect: /invalid IPv4 address "192\.0": has 2 octets/ },
  { kind: "range", input: "192.0.2.1-192.0.2.300", expect: /exceeds 255/ },
  { kind: "range", input: "192.0.2.0/24", expect: /unexpected character "\/"/ },
  { kind: "range", input: "fe80::1%eth0-fe80::2", expect: /zone ids/ },
  // CIDRs
  { kind: "cidr", input: "", expect: /got an empty string/ },
  {
    kind: "cidr",
    input: "192.0.2.1/24",
    expect: /host bits are set; expected the network address, i\.e\. "192\.0\.2\.0\/24"/,
  },
  { kind: "cidr", input: "198.18.1.0/16", expect: /"198\.18\.0\.0\/16"/ },
  { kind: "cidr", input: "2001:db8::1/64", expect: /"2001:db8::\/64"/ },
  { kind: "cidr", input: "192.0.2.0", expect: /missing "\/prefix"; expected e\.g\. 192\.0\.2\.0\/24/ },
  { kind: "cidr", input: "2001:db8::", expect: /missing "\/prefix"; expected e\.g\. 2001:db8::\/64/ },
  {
    kind: "cidr",
    input: "192.0.2.0/33",
    expect: /prefix length "33" is not valid; expected a decimal number 0-32/,
  },
  { kind: "cidr", input: "2001:db8::/129", expect: /prefix length "129".*0-128 for IPv6/ },
  { kind: "cidr", input: "192.0.2.0/", expect: /prefix length "" is not valid/ },
  { kind: "cidr", input: "192.0.2.0/-1", expect: /prefix length "-1"/ },
  { kind: "cidr", input: "192.0.2.0/024", expect: /prefix length "024"/ },
  { kind: "cidr", input: "192.0.2.0/24/1", expect: /prefix length "24\/1"/ },
  { kind: "cidr", input: "192.0.2.0/x", expect: /prefix length "x"/ },
  { kind: "cidr", input: "192.0/16", expect: /invalid IPv4 address "192\.0"/ },
  { kind: "cidr", input: "192.0.2.0 /24", expect: /must not contain spaces; expected a subnet like/ },
  { kind: "cidr", input: "fe80::%eth0/64", expect: /zone ids/ },
  { kind: "cidr", input: "1::2::/64", expect: /"::" may appear only once/ },
];

const PARSERS = {
  ip: (s: string) => parseIP(s),
  range: (s: string) => parseRange(s),
  cidr: (s: string) => parseCIDR(s),
};

for (const { kind, input, expect } of CASES) {
  Deno.test(`${kind} ${JSON.stringify(input)} is rejected with a message naming it and what is expected`, () => {
    let error: unknown;
    try {
      PARSERS[kind](input);
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof IPError, `accepted, or threw something other than IPError: ${error}`);
    assert.ok(
      error.message.includes(JSON.stringify(input)),
      `message does not quote the input: ${error.message}`,
    );
    assert.match(error.message, expect);
  });
}

Deno.test("IPRangeSet.parse names the field and index of the bad item", () => {
  assert.throws(
    () => IPRangeSet.parse(4, ["192.0.2.1", "192.0.2.9-192.0.2.3"], "spec.excludeIPs"),
    /^IPError: spec\.excludeIPs\[1\]: invalid IP range "192\.0\.2\.9-192\.0\.2\.3": start 192\.0\.2\.9 is after end/,
  );
});

Deno.test("IPRangeSet.parse rejects a set that mixes families", () => {
  assert.throws(
    () => IPRangeSet.parse(4, ["192.0.2.1", "2001:db8::1"], "spec.ips"),
    /spec\.ips\[1\]: expected an IPv4 address, got IPv6 address "2001:db8::1"/,
  );
  assert.throws(
    () => IPRangeSet.parse(6, ["2001:db8::1-2001:db8::5", "192.0.2.1-192.0.2.2"], "spec.ips"),
    /spec\.ips\[1\]: .*expected an IPv6 address, got IPv4 address "192\.0\.2\.1"/,
  );
});
