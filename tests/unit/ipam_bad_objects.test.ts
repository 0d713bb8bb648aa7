// Objects and annotations written while no admission webhook ran, as the allocation rules read them: each one
// that cannot be used is refused with the object, the field and the value (the bad-input corpus in
// tests/badinput/ runs the same inputs through the real plugin and agent).

import assert from "node:assert/strict";
import { AnnotationError } from "../../src/api/annotations.ts";
import type { SpiderEndpoint, SpiderIPPool, SpiderReservedIP } from "../../src/api/types.ts";
import {
  type CandidateInput,
  EndpointDataError,
  poolCandidates,
  requireReadableEndpoint,
  reservedAddresses,
  UnreadableReservedIPError,
  unusableReason,
} from "../../src/ipam/mod.ts";

const rip = (name: string, spec: Partial<SpiderReservedIP["spec"]>, deleting = false): SpiderReservedIP => ({
  metadata: { name, ...(deleting ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}) },
  spec: spec as SpiderReservedIP["spec"],
});

Deno.test("reserved IPs: the addresses of readable objects are held back per family", () => {
  const r = reservedAddresses([
    rip("a", { ipVersion: 4, ips: ["192.0.2.5", "192.0.2.10-192.0.2.11"] }),
    rip("b", { ips: ["2001:db8::5"] }),
  ]);
  assert.deepEqual((r.byFamily.get(4) as { toStrings(): string[] }).toStrings(), [
    "192.0.2.5",
    "192.0.2.10-192.0.2.11",
  ]);
  assert.deepEqual((r.byFamily.get(6) as { toStrings(): string[] }).toStrings(), ["2001:db8::5"]);
  assert.deepEqual(r.skipped, []);
});

Deno.test("reserved IPs: an unreadable object blocks its family only, naming the object, field and value", () => {
  const r = reservedAddresses([
    rip("good", { ipVersion: 6, ips: ["2001:db8::5"] }),
    rip("bad", { ipVersion: 4, ips: ["192.0.2.300"] }),
  ]);
  const blocked = r.byFamily.get(4);
  assert.ok(blocked instanceof UnreadableReservedIPError);
  assert.match(blocked.message, /^SpiderReservedIP "bad": spec\.ips\[0\]: .*"192\.0\.2\.300"/);
  assert.match(blocked.message, /no IPv4 address is handed out until it is fixed or deleted/);
  assert.ok(!(r.byFamily.get(6) instanceof UnreadableReservedIPError), "IPv6 is not blocked");
});

Deno.test("reserved IPs: an object whose family cannot be known is skipped; a terminating one is ignored", () => {
  const r = reservedAddresses([
    rip("unknown", { ips: ["garbage"] }),
    rip("going", { ipVersion: 4, ips: ["192.0.2.300"] }, true),
  ]);
  assert.deepEqual(r.skipped, ["ignoring SpiderReservedIP unknown: its IP family cannot be known"]);
  assert.ok(!(r.byFamily.get(4) instanceof UnreadableReservedIPError));
});

const endpoint = (ips: Record<string, unknown>[]): SpiderEndpoint => ({
  metadata: { name: "web", namespace: "ns" },
  status: {
    current: { uid: "u1", node: "n1", ips: ips as SpiderEndpoint["status"]["current"]["ips"] },
    ownerControllerType: "Pod",
    ownerControllerName: "web",
  },
});

Deno.test("endpoint: addresses that do not parse, of the wrong family or without a pool are refused by field", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ interface: "eth0", ipv4: "garbage", ipv4Pool: "p" }, /status\.current\.ips\[0\]\.ipv4 "garbage"/],
    [
      { interface: "eth0", ipv4: "2001:db8::1/64", ipv4Pool: "p" },
      /ipv4 "2001:db8::1\/64": expected an IPv4/,
    ],
    [{ interface: "eth0", ipv4: "192.0.2.5/33", ipv4Pool: "p" }, /prefix length "33" is not 0-32/],
    [{ interface: "eth0", ipv6: "2001:db8::1/64" }, /ipv6 2001:db8::1\/64 names no pool/],
  ];
  for (const [detail, re] of bad) {
    assert.throws(() => requireReadableEndpoint(endpoint([detail])), (err: Error) => {
      assert.ok(err instanceof EndpointDataError);
      assert.match(err.message, /^SpiderEndpoint ns\/web: /);
      assert.match(err.message, re);
      assert.match(err.message, /delete SpiderEndpoint ns\/web and recreate the pod/);
      return true;
    });
  }
  requireReadableEndpoint(endpoint([
    { interface: "eth0", ipv4: "192.0.2.5/24", ipv4Pool: "p4", ipv6: "2001:db8::5/64", ipv6Pool: "p6" },
    { interface: "net1", ipv4: "198.51.100.5", ipv4Pool: "p" },
  ]));
});

const pool = (spec: Record<string, unknown>): SpiderIPPool => ({
  metadata: { name: "p" },
  spec: {
    ipVersion: 4,
    subnet: "192.0.2.0/24",
    ips: ["192.0.2.10-192.0.2.20"],
    ...spec,
  } as SpiderIPPool["spec"],
});

Deno.test("pool: an affinity selector that does not parse makes the pool invalid, naming the field", () => {
  assert.match(
    unusableReason(pool({ podAffinity: { matchExpressions: [{ key: "app", operator: "Near" }] } }), 4) ?? "",
    /invalid spec: spec\.podAffinity\.matchExpressions\[0\]\.operator: operator "Near" is not supported/,
  );
  assert.match(
    unusableReason(pool({ nodeAffinity: { matchLabels: { "bad key": "x" } } }), 4) ?? "",
    /invalid spec: spec\.nodeAffinity\.matchLabels: label key "bad key"/,
  );
  assert.equal(unusableReason(pool({ podAffinity: { matchLabels: { app: "web" } } }), 4), undefined);
});

Deno.test("pool: an ipVersion that disagrees with the subnet is named, not taken for the other family", () => {
  assert.match(
    unusableReason(pool({ ipVersion: 6 }), 4) ?? "",
    /spec\.ipVersion 6 does not match spec\.subnet/,
  );
  assert.match(
    unusableReason(pool({ ipVersion: 6 }), 6) ?? "",
    /spec\.ipVersion 6 does not match spec\.subnet/,
  );
});

Deno.test("candidates: a malformed auto-pool size or reclaim beside a subnet annotation refuses the pod by key", () => {
  const input = (extra: Record<string, string>): CandidateInput => ({
    pod: {
      name: "web-0",
      namespace: "default",
      uid: "u1",
      annotations: { "ipam.spidernet.io/subnet": '{"interface":"eth0","ipv4":["s4"]}', ...extra },
      nodeName: "n1",
    },
    namespace: { name: "default", annotations: {} },
    ifName: "eth0",
    cniDefaults: { ipv4: [], ipv6: [], cleanGateway: false },
    pools: [],
    flags: {
      enableIPv4: true,
      enableIPv6: true,
      enableSpiderSubnet: true,
      enableAutoPoolForApplication: true,
    },
    top: { apiVersion: "apps/v1", kind: "Deployment", name: "web", namespace: "default", uid: "d1" },
  });
  for (
    const [key, value] of [
      ["ipam.spidernet.io/ippool-ip-number", "many"],
      ["ipam.spidernet.io/ippool-ip-number", "-1"],
      ["ipam.spidernet.io/ippool-reclaim", "maybe"],
    ]
  ) {
    assert.throws(() => poolCandidates(input({ [key]: value })), (err: Error) => {
      assert.ok(err instanceof AnnotationError);
      assert.equal(err.key, key);
      assert.equal(err.value, value);
      return true;
    });
  }
  assert.equal(poolCandidates(input({ "ipam.spidernet.io/ippool-ip-number": "+2" })).kind, "subnet");
});
