// A pool as allocation reads it with no webhook in front: the family derived as the mutating webhook would,
// the spec checks a valid pool passes, and the usable addresses ips ∩ subnet − excludeIPs − gateway.

import assert from "node:assert/strict";
import type { SpiderIPPool } from "../../src/api/types.ts";
import {
  admittedPool,
  dropReason,
  type FilterContext,
  InvalidPoolError,
  invalidSpecReason,
  poolCandidates,
  poolFamily,
  poolSpecProblems,
  usableAddresses,
} from "../../src/ipam/mod.ts";

const pool = (spec: Partial<SpiderIPPool["spec"]>, name = "p"): SpiderIPPool => ({
  metadata: { name },
  spec: { subnet: "198.51.100.0/24", ips: ["198.51.100.10-198.51.100.20"], ...spec },
});

Deno.test("pool: the family of a pool without spec.ipVersion comes from spec.subnet, as the webhook's", () => {
  const rows: [string, Partial<SpiderIPPool["spec"]>, 4 | 6 | undefined][] = [
    ["v4 subnet", { subnet: "198.51.100.0/24" }, 4],
    ["v6 subnet", { subnet: "2001:db8::/64", ips: ["2001:db8::10"] }, 6],
    ["v6 subnet written in capitals", { subnet: "2001:DB8::/64", ips: ["2001:db8::10"] }, 6],
    ["explicit ipVersion wins", { ipVersion: 6, subnet: "198.51.100.0/24" }, 6],
    ["no subnet", { subnet: "" }, undefined],
    ["malformed subnet", { subnet: "198.51.100.0/33" }, undefined],
    ["a bare address is no subnet", { subnet: "198.51.100.1" }, undefined],
  ];
  for (const [name, spec, want] of rows) assert.equal(poolFamily(pool(spec)), want, name);
});

Deno.test("pool: admittedPool is the mutating webhook's view and leaves the input alone", () => {
  const raw = pool({ ips: ["198.51.100.12-198.51.100.14", "198.51.100.10-198.51.100.13"] });
  const before = structuredClone(raw);
  const a = admittedPool(raw);
  assert.equal(a.spec.ipVersion, 4);
  assert.deepEqual(a.spec.ips, ["198.51.100.10-198.51.100.14"]);
  assert.deepEqual(raw, before);
  assert.equal(admittedPool(raw), a, "one view per object");
});

Deno.test("pool: a pool copied from Spiderpool's guides (no ipVersion) is a candidate and passes the filter", () => {
  // docs/usage: `spec: {subnet, ips: [...]}` without ipVersion, with documentation addresses.
  const guide = pool(
    { subnet: "203.0.113.0/24", ips: ["203.0.113.40-203.0.113.50"], default: true },
    "guide",
  );
  const ctx: FilterContext = {
    family: 4,
    nic: "eth0",
    pod: { namespace: "default" },
    namespace: { name: "default" },
    node: { name: "n1" },
    agentNamespace: "kube-system",
    top: { apiVersion: "v1", kind: "Pod", name: "web", namespace: "default", uid: "u" },
  };
  assert.equal(dropReason(guide, ctx), undefined);
  assert.equal(dropReason(guide, { ...ctx, family: 6 }), "an IPv4 pool, not IPv6");
  const cands = poolCandidates({
    pod: { name: "web", namespace: "default" },
    namespace: { name: "default" },
    ifName: "eth0",
    cniDefaults: { ipv4: [], ipv6: [], cleanGateway: false },
    pools: [guide],
    flags: {
      enableIPv4: true,
      enableIPv6: true,
      enableSpiderSubnet: false,
      enableAutoPoolForApplication: false,
    },
  });
  assert.equal(cands.kind, "pools");
  assert.deepEqual(cands.kind === "pools" && cands.nics[0].ipv4, ["guide"]);
  assert.deepEqual(usableAddresses(guide).usable.toStrings(), ["203.0.113.40-203.0.113.50"]);
});

Deno.test("pool: usable addresses are ips ∩ subnet − excludeIPs − gateway", () => {
  const rows: [string, Partial<SpiderIPPool["spec"]>, string[]][] = [
    ["plain", {}, ["198.51.100.10-198.51.100.20"]],
    [
      "the report: a /28 whose only ip is its gateway",
      { subnet: "198.51.100.0/28", ips: ["198.51.100.1"], gateway: "198.51.100.1" },
      [],
    ],
    ["gateway inside ips is left out", { gateway: "198.51.100.15" }, [
      "198.51.100.10-198.51.100.14",
      "198.51.100.16-198.51.100.20",
    ]],
    ["gateway outside ips changes nothing", { gateway: "198.51.100.1" }, ["198.51.100.10-198.51.100.20"]],
    ["ips outside the subnet are never handed out", {
      subnet: "198.51.100.0/28",
      ips: ["198.51.100.10-198.51.100.20", "192.0.2.5"],
    }, ["198.51.100.10-198.51.100.15"]],
    ["excludeIPs", { excludeIPs: ["198.51.100.10-198.51.100.18"] }, ["198.51.100.19-198.51.100.20"]],
    ["excludeIPs outside ips", { excludeIPs: ["198.51.100.100"] }, ["198.51.100.10-198.51.100.20"]],
    ["all of it", {
      subnet: "198.51.100.0/28",
      ips: ["198.51.100.1-198.51.100.40"],
      excludeIPs: ["198.51.100.2-198.51.100.3"],
      gateway: "198.51.100.1",
    }, ["198.51.100.4-198.51.100.15"]],
    ["IPv6", {
      subnet: "2001:db8::/120",
      ips: ["2001:db8::1-2001:db8::1:0"],
      gateway: "2001:db8::1",
    }, ["2001:db8::2-2001:db8::ff"]],
    ["no ips", { ips: [] }, []],
  ];
  for (const [name, spec, want] of rows) {
    assert.deepEqual(usableAddresses(pool(spec)).usable.toStrings(), want, name);
  }
});

Deno.test("pool: each spec a valid pool cannot have is a problem naming the field and value", () => {
  const rows: [string, Partial<SpiderIPPool["spec"]>, string, RegExp][] = [
    ["gateway not an address", { gateway: "gw" }, "spec.gateway", /spec.gateway: invalid IPv4 address "gw"/],
    ["gateway of the other family", { gateway: "2001:db8::1" }, "spec.gateway", /"2001:db8::1" is IPv6/],
    [
      "gateway outside the subnet",
      { gateway: "192.0.2.1" },
      "spec.gateway",
      /"192.0.2.1" is outside spec.subnet/,
    ],
    ["empty gateway", { gateway: "" }, "spec.gateway", /spec.gateway: /],
    ["route dst not a CIDR", { routes: [{ dst: "bad", gw: "198.51.100.1" }] }, "spec.routes[0].dst", /"bad"/],
    [
      "route dst of the other family",
      { routes: [{ dst: "2001:db8::/64", gw: "198.51.100.1" }] },
      "spec.routes[0].dst",
      /is IPv6/,
    ],
    [
      "route dst the default route",
      { routes: [{ dst: "0.0.0.0/0", gw: "198.51.100.1" }] },
      "spec.routes[0].dst",
      /default route/,
    ],
    [
      "route gw not an address",
      { routes: [{ dst: "192.0.2.0/24", gw: "router" }] },
      "spec.routes[0].gw",
      /"router"/,
    ],
    [
      "route gw outside the subnet",
      { routes: [{ dst: "192.0.2.0/24", gw: "203.0.113.1" }] },
      "spec.routes[0].gw",
      /outside spec.subnet/,
    ],
    [
      "route dst twice",
      { routes: [{ dst: "192.0.2.0/24", gw: "198.51.100.1" }, { dst: "192.0.2.0/24", gw: "198.51.100.2" }] },
      "spec.routes[1].dst",
      /duplicates/,
    ],
    ["no subnet", { subnet: "" }, "spec.subnet", /spec.subnet is required/],
    ["subnet not a CIDR", { subnet: "net" }, "spec.subnet", /"net"/],
    ["subnet with host bits", { subnet: "198.51.100.5/24" }, "spec.subnet", /"198.51.100.0\/24"/],
    ["ipVersion disagrees with subnet", { ipVersion: 6 }, "spec.ipVersion", /does not match spec.subnet/],
    ["ipVersion not 4 or 6", { ipVersion: 5 as 4 }, "spec.ipVersion", /not an IP version/],
    ["ips item malformed", { ips: ["198.51.100.10", "x"] }, "spec.ips", /spec.ips\[1\]/],
    ["ips item of the other family", { ips: ["2001:db8::1"] }, "spec.ips", /spec.ips\[0\]/],
    [
      "excludeIPs item malformed",
      { excludeIPs: ["198.51.100.9-198.51.100.1"] },
      "spec.excludeIPs",
      /excludeIPs\[0\]/,
    ],
  ];
  for (const [name, spec, path, re] of rows) {
    const problems = poolSpecProblems(pool(spec, "bad"));
    assert.ok(problems.length > 0, name);
    assert.equal(problems[0].path, path, name);
    assert.match(problems[0].message, /^SpiderIPPool "bad": /, name);
    assert.match(problems[0].message, re, name);
    const e = assert.throws(() => usableAddresses(pool(spec, "bad")), InvalidPoolError, name);
    void e;
    assert.match(invalidSpecReason(pool(spec, "bad")) ?? "", /^invalid spec: spec\./, name);
  }
});

Deno.test("pool: specs a valid pool may have are not problems", () => {
  const rows: [string, Partial<SpiderIPPool["spec"]>][] = [
    ["plain", {}],
    ["gateway inside ips", { gateway: "198.51.100.15" }],
    ["ips outside the subnet", { ips: ["192.0.2.1"] }],
    ["route with host bits in dst", { routes: [{ dst: "192.0.2.7/24", gw: "198.51.100.1" }] }],
    ["no ipVersion", {}],
    ["IPv6 in capitals", { subnet: "2001:DB8::/64", ips: ["2001:DB8::1"], gateway: "2001:DB8::FFFF" }],
  ];
  for (const [name, spec] of rows) {
    assert.deepEqual(poolSpecProblems(pool(spec)), [], name);
    assert.equal(invalidSpecReason(pool(spec)), undefined, name);
  }
});

Deno.test("pool: InvalidPoolError names the pool, every field and its value, and what to do", () => {
  const p = pool({ gateway: "gw", routes: [{ dst: "bad", gw: "198.51.100.1" }] }, "v4-broken");
  assert.throws(() => usableAddresses(p), (e: unknown) => {
    assert.ok(e instanceof InvalidPoolError);
    assert.equal(e.pool, "v4-broken");
    assert.deepEqual(e.problems.map((x) => x.path), ["spec.gateway", "spec.routes[0].dst"]);
    assert.match(e.message, /^SpiderIPPool "v4-broken": spec.gateway: invalid IPv4 address "gw"/);
    assert.match(e.message, /spec.routes\[0\].dst: .*"bad"/);
    assert.match(e.message, /fix the SpiderIPPool/);
    return true;
  });
});
