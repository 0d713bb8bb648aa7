import assert from "node:assert/strict";
import type { AllocatedIPs } from "../../src/api/allocated.ts";
import { encodeAllocatedIPs } from "../../src/api/allocated.ts";
import type { SpiderIPPool } from "../../src/api/types.ts";
import { IPRangeSet } from "../../src/ip/mod.ts";
import { ipamStatus, PoolSelectionError, type StatusInput } from "../../src/ipam/mod.ts";

/** A pool of `ips`; `taken` addresses are allocated to pods. */
function pool(
  name: string,
  ips: string[],
  opts: { taken?: string[]; spec?: Partial<SpiderIPPool["spec"]>; terminating?: boolean } = {},
): SpiderIPPool {
  const v6 = ips[0]?.includes(":");
  const records: AllocatedIPs = {};
  (opts.taken ?? []).forEach((ip, i) => records[ip] = { pod: `default/pod-${i}`, podUid: `uid-${i}` });
  const encoded = encodeAllocatedIPs(records);
  return {
    metadata: {
      name,
      ...(opts.terminating ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}),
    },
    spec: {
      ipVersion: v6 ? 6 : 4,
      subnet: v6 ? "2001:db8::/64" : "192.0.2.0/24",
      ips,
      ...opts.spec,
    },
    ...(encoded ? { status: { allocatedIPs: encoded, allocatedIPCount: Object.keys(records).length } } : {}),
  };
}

/** Every address of 192.0.2.`from`–`to`. */
function v4s(from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => `192.0.2.${from + i}`);
}

const FULL_A = pool("v4-a", ["192.0.2.1-192.0.2.254"], { taken: v4s(1, 254), spec: { default: true } });

function input(pools: SpiderIPPool[], over: Partial<StatusInput> = {}): StatusInput {
  return {
    cniDefaults: { ipv4: [], ipv6: [] },
    pools,
    reserved: { 4: IPRangeSet.empty(4), 6: IPRangeSet.empty(6) },
    flags: { enableIPv4: true, enableIPv6: true },
    ...over,
  };
}

Deno.test("ipamStatus: a default pool with a free address is available", () => {
  const r = ipamStatus(
    input([pool("v4-a", ["192.0.2.1-192.0.2.10"], { taken: v4s(1, 9), spec: { default: true } })]),
  );
  assert.equal(r.available, true);
  assert.equal(r.message, undefined);
  assert.deepEqual(r.families, [{
    family: 4,
    source: "default",
    pools: [{ pool: "v4-a", free: 1n }],
    available: true,
  }]);
});

Deno.test("ipamStatus: every default pool unusable names each pool and why, and what to do", () => {
  const disabled = pool("v4-b", ["198.51.100.1-198.51.100.10"], {
    spec: { default: true, disable: true, subnet: "198.51.100.0/24" },
  });
  const r = ipamStatus(input([FULL_A, disabled]));
  assert.equal(r.available, false);
  assert.equal(
    r.message,
    'no free IPv4 address in the default pools (spec.default: true): "v4-a" 254 of 254 allocated, ' +
      '"v4-b" disabled (spec.disable: true); add ips or another default pool',
  );
});

Deno.test("ipamStatus: one usable default pool with room is enough for its family", () => {
  const room = pool("v4-b", ["198.51.100.1-198.51.100.10"], {
    spec: { default: true, subnet: "198.51.100.0/24" },
  });
  const r = ipamStatus(input([FULL_A, room]));
  assert.equal(r.available, true);
  assert.deepEqual(r.families[0].pools, [
    { pool: "v4-a", free: 0n, reason: "254 of 254 allocated" },
    { pool: "v4-b", free: 10n },
  ]);
});

Deno.test("ipamStatus: a terminating pool cannot serve", () => {
  const r = ipamStatus(input([pool("v4-a", ["192.0.2.1"], { terminating: true, spec: { default: true } })]));
  assert.equal(r.available, false);
  assert.match(r.message!, /"v4-a" terminating/);
});

Deno.test("ipamStatus: a CNI default pool that does not exist cannot serve", () => {
  const r = ipamStatus(input([], { cniDefaults: { ipv4: ["gone"], ipv6: [] } }));
  assert.equal(r.available, false);
  assert.equal(
    r.message,
    'no free IPv4 address in the CNI config\'s default_ipv4_ippool pools: "gone" SpiderIPPool not found; ' +
      "add ips to them or another pool to default_ipv4_ippool",
  );
});

Deno.test("ipamStatus: a CNI default pool of the other family cannot serve", () => {
  const v6 = pool("v6-a", ["2001:db8::10"]);
  const r = ipamStatus(input([v6], { cniDefaults: { ipv4: ["v6-a"], ipv6: [] } }));
  assert.equal(r.available, false);
  assert.match(r.message!, /"v6-a" an IPv6 pool, not IPv4/);
});

Deno.test("ipamStatus: a pool with no usable address (ips ∩ subnet − excludeIPs − gateway) cannot serve", () => {
  const p = pool("v4-a", ["192.0.2.1-192.0.2.4"], {
    spec: { default: true, excludeIPs: ["192.0.2.1-192.0.2.4"] },
  });
  const r = ipamStatus(input([p]));
  assert.equal(r.available, false);
  assert.match(
    r.message!,
    /"v4-a" has no address \(spec\.ips within spec\.subnet, minus spec\.excludeIPs and spec\.gateway, is empty\)/,
  );
});

Deno.test("ipamStatus: reserved IPs count as used, and the message says how many", () => {
  const p = pool("v4-a", ["192.0.2.1-192.0.2.10"], { taken: v4s(1, 8), spec: { default: true } });
  const reserved = {
    4: IPRangeSet.parse(4, ["192.0.2.9-192.0.2.10", "198.51.100.1"]),
    6: IPRangeSet.empty(6),
  };
  const r = ipamStatus(input([p], { reserved }));
  assert.equal(r.available, false);
  assert.match(r.message!, /"v4-a" 8 of 10 allocated, 2 reserved;/);
  const oneLess = ipamStatus(
    input([p], { reserved: { ...reserved, 4: IPRangeSet.parse(4, ["192.0.2.10"]) } }),
  );
  assert.equal(oneLess.available, true);
  assert.equal(oneLess.families[0].pools[0].free, 1n);
});

Deno.test("ipamStatus: excluded addresses and records outside spec.ips are not counted", () => {
  const p = pool("v4-a", ["192.0.2.1-192.0.2.10"], {
    taken: ["192.0.2.1", "192.0.2.50"],
    spec: { default: true, excludeIPs: ["192.0.2.2-192.0.2.3"] },
  });
  assert.equal(ipamStatus(input([p])).families[0].pools[0].free, 7n);
});

Deno.test("ipamStatus: a pool holding the most records allowed cannot serve even with free addresses", () => {
  const p = pool("v4-a", ["192.0.2.1-192.0.2.10"], { taken: v4s(1, 3), spec: { default: true } });
  const r = ipamStatus(input([p], { maxAllocated: 3 }));
  assert.equal(r.available, false);
  assert.match(r.message!, /"v4-a" holds 3 allocated IPs, the most one pool may hold/);
});

Deno.test("ipamStatus: a pool whose status cannot be decoded cannot serve, and says so", () => {
  const p = pool("v4-a", ["192.0.2.1-192.0.2.10"], { spec: { default: true } });
  p.status = { allocatedIPs: "{not json" };
  const r = ipamStatus(input([p]));
  assert.equal(r.available, false);
  assert.match(r.message!, /"v4-a" unreadable: .*status\.allocatedIPs/);
});

Deno.test("ipamStatus: CNI config globs expand against pools of that family", () => {
  const a = pool("net-a", ["192.0.2.1"], { taken: ["192.0.2.1"] });
  const b = pool("net-b", ["192.0.2.2"], { spec: { disable: true } });
  const other = pool("other", ["192.0.2.3"]);
  const v6 = pool("net-6", ["2001:db8::1"]);
  const r = ipamStatus(input([a, b, other, v6], { cniDefaults: { ipv4: ["net-*"], ipv6: [] } }));
  assert.equal(r.available, false);
  assert.deepEqual(r.families.map((f) => [f.family, f.pools.map((p) => p.pool)]), [[4, ["net-a", "net-b"]]]);
  const withOther = ipamStatus(input([a, b, other], { cniDefaults: { ipv4: ["net-*", "oth?r"], ipv6: [] } }));
  assert.equal(withOther.available, true);
});

Deno.test("ipamStatus: CNI config defaults win over spec.default pools entirely", () => {
  const cni = pool("cni-v4", ["192.0.2.1"], { taken: ["192.0.2.1"] });
  const roomyDefault = pool("def-v4", ["192.0.2.2-192.0.2.9"], { spec: { default: true } });
  const r = ipamStatus(input([cni, roomyDefault], { cniDefaults: { ipv4: ["cni-v4"], ipv6: [] } }));
  assert.equal(r.available, false);
  assert.match(r.message!, /"cni-v4" 1 of 1 allocated/);
  assert.doesNotMatch(r.message!, /def-v4/);
});

Deno.test("ipamStatus: each family is checked on its own and a failing one is named", () => {
  const v6 = pool("v6-a", ["2001:db8::1-2001:db8::2"], {
    taken: ["2001:db8::1", "2001:db8::2"],
    spec: { default: true },
  });
  const v4 = pool("v4-a", ["192.0.2.1-192.0.2.10"], { spec: { default: true } });
  const r = ipamStatus(input([v4, v6]));
  assert.equal(r.available, false);
  assert.deepEqual(r.families.map((f) => [f.family, f.available]), [[4, true], [6, false]]);
  assert.equal(
    r.message,
    'no free IPv6 address in the default pools (spec.default: true): "v6-a" 2 of 2 allocated; add ips or ' +
      "another default pool",
  );
});

Deno.test("ipamStatus: a family disabled in the ConfigMap is not checked", () => {
  const v6 = pool("v6-a", ["2001:db8::1"], { taken: ["2001:db8::1"], spec: { default: true } });
  const v4 = pool("v4-a", ["192.0.2.1-192.0.2.10"], { spec: { default: true } });
  const r = ipamStatus(input([v4, v6], { flags: { enableIPv4: true, enableIPv6: false } }));
  assert.equal(r.available, true);
  assert.deepEqual(r.families.map((f) => f.family), [4]);
  const cni = ipamStatus(
    input([v6], {
      cniDefaults: { ipv4: [], ipv6: ["v6-a"] },
      flags: { enableIPv4: true, enableIPv6: false },
    }),
  );
  assert.deepEqual(cni, { available: true, families: [] });
});

Deno.test("ipamStatus: a family without candidates does not count", () => {
  const v4 = pool("v4-a", ["192.0.2.1-192.0.2.10"], { spec: { default: true } });
  const r = ipamStatus(input([v4, pool("v6-a", ["2001:db8::1"])]));
  assert.equal(r.available, true);
  assert.deepEqual(r.families.map((f) => f.family), [4]);
  const cni = ipamStatus(input([FULL_A], { cniDefaults: { ipv4: [], ipv6: ["nothing-*"] } }));
  assert.deepEqual(cni, { available: true, families: [] });
});

Deno.test("ipamStatus: no candidate pools at all is available (pods choose pools by annotation)", () => {
  const notDefault = pool("v4-a", ["192.0.2.1"], { taken: ["192.0.2.1"] });
  assert.deepEqual(ipamStatus(input([notDefault])), { available: true, families: [] });
  assert.deepEqual(ipamStatus(input([])), { available: true, families: [] });
});

Deno.test("ipamStatus: a pool listed twice in the CNI config is a PoolSelectionError naming it", () => {
  assert.throws(
    () => ipamStatus(input([FULL_A], { cniDefaults: { ipv4: ["v4-a", "v4-a"], ipv6: [] } })),
    (e: unknown) => e instanceof PoolSelectionError && /"v4-a" twice/.test(e.message),
  );
});

Deno.test("ipamStatus: large IPv6 pools are counted without enumerating addresses", () => {
  const p = pool("v6-a", ["2001:db8::-2001:db8::ffff:ffff:ffff:ffff"], {
    taken: ["2001:db8::1"],
    spec: { default: true },
  });
  const r = ipamStatus(input([p], { flags: { enableIPv4: false, enableIPv6: true } }));
  assert.equal(r.available, true);
  assert.equal(r.families[0].pools[0].free, (1n << 64n) - 1n);
});

Deno.test("ipamStatus: default pools for other nodes do not count for this node", () => {
  const mine = pool("v4-mine", ["192.0.2.1-192.0.2.10"], { spec: { default: true, nodeName: ["node-a"] } });
  const rack = { default: true, nodeAffinity: { matchLabels: { rack: "r2" } } };
  const theirs = pool("v4-theirs", ["192.0.2.11-192.0.2.20"], { spec: rack });
  const r = ipamStatus(input([mine, theirs], { node: { name: "node-b", labels: { rack: "r1" } } }));
  assert.equal(r.available, false);
  assert.match(r.message!, /"v4-mine" node "node-b" is not in spec\.nodeName/);
  assert.match(r.message!, /"v4-theirs" labels of node "node-b" do not match spec\.nodeAffinity/);
  assert.equal(ipamStatus(input([mine, theirs], { node: { name: "node-a" } })).available, true);
});
