// Objects the webhooks must accept, and the cluster-dependent rules (overlaps, allocated IPs, owning subnet,
// immutability) exercised one at a time.

import assert from "node:assert/strict";
import { encodeAllocatedIPs, encodeControlledIPPools } from "../../src/api/allocated.ts";
import { FINALIZER, LABEL } from "../../src/api/constants.ts";
import { defaultCoordinator, defaultIPPool, defaultMultusConfig } from "../../src/api/defaults.ts";
import type { SpiderIPPool, SpiderMultusConfig, SpiderSubnet } from "../../src/api/types.ts";
import { type FieldError, formatFieldErrors } from "../../src/api/validate/common.ts";
import { validateCoordinator } from "../../src/api/validate/coordinator.ts";
import {
  type IPPoolValidationContext,
  validateIPPool,
  validateIPPoolDelete,
} from "../../src/api/validate/ippool.ts";
import { validateMultusConfig } from "../../src/api/validate/multusconfig.ts";
import { validateReservedIP } from "../../src/api/validate/reservedip.ts";
import { validateSubnet, validateSubnetDelete } from "../../src/api/validate/subnet.ts";

const flags = { enableIPv4: true, enableIPv6: true, enableSpiderSubnet: false };

function pool(
  name: string,
  spec: Partial<SpiderIPPool["spec"]>,
  extra: Partial<SpiderIPPool> = {},
): SpiderIPPool {
  return {
    metadata: { name },
    spec: { subnet: "192.0.2.0/24", ipVersion: 4, ...spec },
    ...extra,
  } as SpiderIPPool;
}

function subnet(
  name: string,
  spec: Partial<SpiderSubnet["spec"]>,
  extra: Partial<SpiderSubnet> = {},
): SpiderSubnet {
  return {
    metadata: { name },
    spec: { subnet: "192.0.2.0/24", ipVersion: 4, ...spec },
    ...extra,
  } as SpiderSubnet;
}

function ctx(over: Partial<IPPoolValidationContext> = {}): IPPoolValidationContext {
  return { ...flags, pools: [], subnets: [], ...over };
}

/** Asserts exactly one error, at `path`, whose message contains every fragment. */
function oneError(errors: FieldError[], path: string, ...fragments: string[]): void {
  assert.equal(errors.length, 1, formatFieldErrors(errors));
  assert.equal(errors[0].path, path, errors[0].message);
  for (const f of fragments) {
    assert.ok(errors[0].message.includes(f), `lacks ${JSON.stringify(f)}: ${errors[0].message}`);
  }
}

Deno.test("a complete IPv4 pool is accepted", () => {
  const p = pool("v4-a", {
    ips: ["192.0.2.10-192.0.2.100"],
    excludeIPs: ["192.0.2.50"],
    gateway: "192.0.2.1",
    routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.254" }],
    podAffinity: { matchLabels: { app: "web" } },
    namespaceAffinity: {},
    namespaceName: ["default"],
    nodeName: ["node-1"],
    multusName: ["kube-system/macvlan-a", "macvlan-b"],
  });
  assert.deepEqual(validateIPPool(p, undefined, ctx()), []);
});

Deno.test("an IPv6 pool is accepted", () => {
  const p = pool("v6-a", {
    subnet: "2001:db8::/64",
    ipVersion: 6,
    ips: ["2001:db8::10-2001:db8::ff"],
    gateway: "2001:db8::1",
  });
  assert.deepEqual(validateIPPool(p, undefined, ctx()), []);
});

Deno.test("a pool without ips is accepted", () => {
  assert.deepEqual(validateIPPool(pool("v4-a", {}), undefined, ctx()), []);
});

Deno.test("the gateway may be inside ips when it is also excluded", () => {
  const p = pool("v4-a", { ips: ["192.0.2.1-192.0.2.100"], excludeIPs: ["192.0.2.1"], gateway: "192.0.2.1" });
  assert.deepEqual(validateIPPool(p, undefined, ctx()), []);
});

Deno.test("pools with the identical subnet string and disjoint ips are accepted", () => {
  const other = pool("v4-b", { ips: ["192.0.2.101-192.0.2.200"] });
  assert.deepEqual(
    validateIPPool(pool("v4-a", { ips: ["192.0.2.10-192.0.2.100"] }), undefined, ctx({ pools: [other] })),
    [],
  );
});

Deno.test("pools whose ips overlap only on excluded addresses are accepted", () => {
  const other = pool("v4-b", { ips: ["192.0.2.100-192.0.2.200"] });
  const p = pool("v4-a", { ips: ["192.0.2.10-192.0.2.100"], excludeIPs: ["192.0.2.100"] });
  assert.deepEqual(validateIPPool(p, undefined, ctx({ pools: [other] })), []);
});

Deno.test("pools overlapping in ips are rejected, naming the other pool and the addresses", () => {
  const other = pool("v4-b", { ips: ["192.0.2.90-192.0.2.200"] });
  oneError(
    validateIPPool(pool("v4-a", { ips: ["192.0.2.10-192.0.2.100"] }), undefined, ctx({ pools: [other] })),
    "spec.ips",
    'SpiderIPPool "v4-a": spec.ips overlaps SpiderIPPool "v4-b" at 192.0.2.90-192.0.2.100',
    "remove those addresses from one of the pools",
  );
});

Deno.test("a pool whose subnet overlaps a different subnet of another pool is rejected", () => {
  const other = pool("v4-b", { subnet: "192.0.2.0/25" });
  oneError(
    validateIPPool(pool("v4-a", {}), undefined, ctx({ pools: [other] })),
    "spec.subnet",
    'overlaps subnet "192.0.2.0/25" of SpiderIPPool "v4-b"',
  );
});

Deno.test("subnets of different families never overlap", () => {
  const other = pool("v6-b", { subnet: "2001:db8::/64", ipVersion: 6, ips: ["2001:db8::1"] });
  assert.deepEqual(
    validateIPPool(pool("v4-a", { ips: ["192.0.2.1"] }), undefined, ctx({ pools: [other] })),
    [],
  );
});

Deno.test("the pool being updated is not compared with its own stored copy", () => {
  const p = pool("v4-a", { ips: ["192.0.2.10"] });
  assert.deepEqual(validateIPPool(p, p, ctx({ pools: [p] })), []);
});

Deno.test("UPDATE may not drop an allocated IP", () => {
  const old = pool("v4-a", { ips: ["192.0.2.10-192.0.2.20"] }, {
    status: { allocatedIPs: encodeAllocatedIPs({ "192.0.2.15": { pod: "default/web-0", podUid: "u" } }) },
  });
  oneError(
    validateIPPool(pool("v4-a", { ips: ["192.0.2.10-192.0.2.14"] }), old, ctx()),
    "spec.ips",
    "no longer contains 192.0.2.15 (pod default/web-0)",
    "until the pods release them",
  );
});

Deno.test("UPDATE may not exclude an allocated IP", () => {
  const old = pool("v4-a", { ips: ["192.0.2.10-192.0.2.20"] }, {
    status: { allocatedIPs: encodeAllocatedIPs({ "192.0.2.15": { pod: "default/web-0", podUid: "u" } }) },
  });
  const errs = validateIPPool(
    pool("v4-a", { ips: ["192.0.2.10-192.0.2.20"], excludeIPs: ["192.0.2.15"] }),
    old,
    ctx(),
  );
  oneError(errs, "spec.ips", "192.0.2.15");
});

Deno.test("UPDATE may drop unallocated IPs", () => {
  const old = pool("v4-a", { ips: ["192.0.2.10-192.0.2.20"] }, {
    status: { allocatedIPs: encodeAllocatedIPs({ "192.0.2.10": { pod: "default/web-0", podUid: "u" } }) },
  });
  assert.deepEqual(validateIPPool(pool("v4-a", { ips: ["192.0.2.10"] }), old, ctx()), []);
});

Deno.test("UPDATE of subnet and ipVersion is rejected as immutable", () => {
  const old = pool("v4-a", { subnet: "192.0.2.0/24" });
  oneError(
    validateIPPool(pool("v4-a", { subnet: "198.51.100.0/24" }), old, ctx()),
    "spec.subnet",
    "spec.subnet is immutable",
    "create a new object instead",
  );
});

Deno.test("a terminating pool that still holds the finalizer cannot be updated", () => {
  const terminating = { deletionTimestamp: "2026-01-01T00:00:00Z", finalizers: [FINALIZER] };
  const old = pool("v4-a", {}, { metadata: { name: "v4-a", ...terminating } });
  const next = pool("v4-a", { ips: ["192.0.2.1"] }, { metadata: { name: "v4-a", ...terminating } });
  oneError(validateIPPool(next, old, ctx()), "metadata.deletionTimestamp", "being deleted");
});

Deno.test("removing the finalizer of a terminating pool is allowed", () => {
  const old = pool("v4-a", {}, {
    metadata: { name: "v4-a", deletionTimestamp: "2026-01-01T00:00:00Z", finalizers: [FINALIZER] },
  });
  const next = pool("v4-a", {}, {
    metadata: { name: "v4-a", deletionTimestamp: "2026-01-01T00:00:00Z", finalizers: [] },
  });
  assert.deepEqual(validateIPPool(next, old, ctx()), []);
});

Deno.test("a pool of a disabled family is rejected", () => {
  oneError(
    validateIPPool(
      pool("v6-a", { subnet: "2001:db8::/64", ipVersion: 6 }),
      undefined,
      ctx({ enableIPv6: false }),
    ),
    "spec.ipVersion",
    "IPv6 is disabled in ConfigMap spiderpool-conf (enableIPv6: false)",
  );
});

Deno.test("with SpiderSubnet, a pool's IPs must be offered by its subnet", () => {
  const s = subnet("subnet-a", { ips: ["192.0.2.10-192.0.2.50"], excludeIPs: ["192.0.2.20"] });
  const c = ctx({ enableSpiderSubnet: true, subnets: [s] });
  assert.deepEqual(validateIPPool(pool("v4-a", { ips: ["192.0.2.10-192.0.2.19"] }), undefined, c), []);
  oneError(
    validateIPPool(pool("v4-a", { ips: ["192.0.2.15-192.0.2.60"] }), undefined, c),
    "spec.ips",
    '192.0.2.20, 192.0.2.51-192.0.2.60, which SpiderSubnet "subnet-a" does not offer',
  );
});

Deno.test("without SpiderSubnet, the subnet's ranges do not constrain pools", () => {
  const s = subnet("subnet-a", { ips: ["192.0.2.10-192.0.2.50"] });
  assert.deepEqual(
    validateIPPool(pool("v4-a", { ips: ["192.0.2.60"] }), undefined, ctx({ subnets: [s] })),
    [],
  );
});

Deno.test("an auto-pool's ips must equal what its subnet pre-allocated", () => {
  const s = subnet("subnet-a", { ips: ["192.0.2.10-192.0.2.50"] }, {
    status: {
      controlledIPPools: encodeControlledIPPools({
        "auto4-web-eth0-1a2b3": {
          ips: ["192.0.2.10-192.0.2.12"],
          application: "apps_v1_Deployment_default_web",
        },
      }),
    },
  });
  const autoMeta = {
    name: "auto4-web-eth0-1a2b3",
    labels: { [LABEL.ownerApplicationUID]: "app-uid", [LABEL.ownerSpiderSubnet]: "subnet-a" },
  };
  const c = ctx({ enableSpiderSubnet: true, subnets: [s] });
  const good = pool("", {
    ips: ["192.0.2.10-192.0.2.12"],
    podAffinity: { matchLabels: { [LABEL.appName]: "web" } },
  }, {
    metadata: autoMeta,
  });
  assert.deepEqual(validateIPPool(good, undefined, c), []);
  const bad = pool("", { ips: ["192.0.2.10-192.0.2.13"] }, { metadata: autoMeta });
  oneError(validateIPPool(bad, undefined, c), "spec.ips", "differs from the IPs", "pre-allocated");
});

Deno.test("an auto-pool's podAffinity may only use the app labels", () => {
  const p = pool("", { podAffinity: { matchLabels: { [LABEL.appName]: "web", team: "a" } } }, {
    metadata: { name: "auto4-web-eth0-1a2b3", labels: { [LABEL.ownerApplicationUID]: "u" } },
  });
  oneError(validateIPPool(p, undefined, ctx()), "spec.podAffinity", "found team");
});

Deno.test("defaulted pools validate: [.1-.3, .2-.5] becomes [.1-.5] and is accepted", () => {
  const p = defaultIPPool(
    {
      metadata: { name: "v4-a" },
      spec: { subnet: "192.0.2.0/24", ips: ["192.0.2.1-192.0.2.3", "192.0.2.2-192.0.2.5"] },
    },
    { enableSpiderSubnet: false, subnets: [] },
  );
  assert.deepEqual(p.spec.ips, ["192.0.2.1-192.0.2.5"]);
  assert.deepEqual(validateIPPool(p, undefined, ctx()), []);
});

Deno.test("a subnet with ranges, gateway and routes is accepted", () => {
  const s = subnet("subnet-a", {
    ips: ["192.0.2.10-192.0.2.200"],
    gateway: "192.0.2.1",
    routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.254" }],
  });
  assert.deepEqual(validateSubnet(s, undefined, { ...flags, subnets: [], pools: [] }), []);
});

Deno.test("subnets may not overlap, even with the same CIDR", () => {
  const other = subnet("subnet-b", { ips: ["192.0.2.1"] });
  oneError(
    validateSubnet(subnet("subnet-a", {}), undefined, { ...flags, subnets: [other], pools: [] }),
    "spec.subnet",
    'overlaps SpiderSubnet "subnet-b"',
  );
});

Deno.test("a new subnet must cover the pools already using its CIDR", () => {
  const p = pool("v4-a", { ips: ["192.0.2.10-192.0.2.20"] });
  oneError(
    validateSubnet(subnet("subnet-a", { ips: ["192.0.2.10-192.0.2.15"] }), undefined, {
      ...flags,
      subnets: [],
      pools: [p],
    }),
    "spec.ips",
    'does not cover 192.0.2.16-192.0.2.20 of existing SpiderIPPool "v4-a"',
  );
});

Deno.test("subnet UPDATE may not remove IPs given to pools", () => {
  const old = subnet("subnet-a", { ips: ["192.0.2.10-192.0.2.50"] }, {
    status: { controlledIPPools: encodeControlledIPPools({ "v4-a": { ips: ["192.0.2.40-192.0.2.45"] } }) },
  });
  oneError(
    validateSubnet(subnet("subnet-a", { ips: ["192.0.2.10-192.0.2.42"] }), old, {
      ...flags,
      subnets: [old],
      pools: [],
    }),
    "spec.ips",
    'no longer offers 192.0.2.43-192.0.2.45, already given to SpiderIPPool "v4-a"',
    "shrink or delete that pool first",
  );
});

Deno.test("subnet UPDATE may remove IPs no pool holds", () => {
  const old = subnet("subnet-a", { ips: ["192.0.2.10-192.0.2.50"] }, {
    status: { controlledIPPools: encodeControlledIPPools({ "v4-a": { ips: ["192.0.2.10"] } }) },
  });
  assert.deepEqual(
    validateSubnet(subnet("subnet-a", { ips: ["192.0.2.10-192.0.2.20"] }), old, {
      ...flags,
      subnets: [old],
      pools: [],
    }),
    [],
  );
});

Deno.test("a reserved IP list of one family is accepted", () => {
  assert.deepEqual(
    validateReservedIP(
      { metadata: { name: "r" }, spec: { ipVersion: 6, ips: ["2001:db8::1", "2001:db8::10-2001:db8::20"] } },
      undefined,
      flags,
    ),
    [],
  );
});

Deno.test("reserved IP ipVersion is immutable", () => {
  const old = { metadata: { name: "r" }, spec: { ipVersion: 4 as const, ips: ["192.0.2.1"] } };
  const errs = validateReservedIP(
    { metadata: { name: "r" }, spec: { ipVersion: 6, ips: ["2001:db8::1"] } },
    old,
    flags,
  );
  assert.ok(
    errs.some((e) => e.path === "spec.ipVersion" && e.message.includes("immutable")),
    formatFieldErrors(errs),
  );
});

Deno.test("a defaulted coordinator with podCIDRType is accepted", () => {
  const c = defaultCoordinator({
    metadata: { name: "default" },
    spec: {
      podCIDRType: "auto",
      hijackCIDR: ["169.254.0.0/16", "198.51.100.7"],
      policyRoutes: [{ dst: "198.18.0.0/15", gw: "192.0.2.1" }],
      podMACPrefix: "0a:1b",
      podRPFilter: -1,
      vethLinkAddress: "169.254.100.1",
      mode: "disable",
    },
  });
  assert.deepEqual(validateCoordinator(c), []);
});

function smc(spec: SpiderMultusConfig["spec"], annotations?: Record<string, string>): SpiderMultusConfig {
  return defaultMultusConfig({ metadata: { name: "m", namespace: "kube-system", annotations }, spec });
}

Deno.test("multus configs of every cniType are accepted when complete", () => {
  const good: SpiderMultusConfig[] = [
    smc({}),
    smc({ cniType: "custom", customCNI: '{"cniVersion":"0.3.1","type":"bridge"}' }),
    smc({ cniType: "macvlan", macvlan: { master: ["ens192"], vlanID: 100, ippools: { ipv4: ["v4-a"] } } }),
    smc({ cniType: "ipvlan", ipvlan: { master: ["ens192", "ens224"], bond: { name: "bond0", mode: 1 } } }),
    smc({ cniType: "vlan", vlan: { master: ["ens192"], vlanID: 10 } }),
    smc({ cniType: "vlan", vlan: { master: ["ens192"], vlanMode: "auto" } }),
    smc({
      cniType: "sriov",
      sriov: { resourceName: "spidernet.io/vf", ippools: { matchMasterSubnet: true } },
    }),
    smc({ cniType: "ib-sriov", ibsriov: { resourceName: "spidernet.io/ib" } }),
    smc({ cniType: "ipoib", ipoib: { master: "ib0" } }),
    smc({ cniType: "ovs", ovs: { bridge: "br1", trunk: [{ minID: 10, maxID: 20 }, { id: 30 }] } }),
    smc({
      cniType: "macvlan",
      macvlan: { master: ["ens192"] },
      chainCNIJsonData: ['{"type":"tuning","sysctl":{}}'],
      coordinator: { podMACPrefix: "0a:1b" },
    }, { "multus.spidernet.io/cni-version": "1.1.0", "multus.spidernet.io/cr-name": "macvlan.ens192" }),
  ];
  for (const m of good) assert.deepEqual(validateMultusConfig(m), [], JSON.stringify(m.spec));
});

Deno.test("multus config: the cr-name annotation cannot be added or changed on UPDATE", () => {
  const old = smc({}, {});
  const added = smc({}, { "multus.spidernet.io/cr-name": "other" });
  oneError(
    validateMultusConfig(added, old),
    'metadata.annotations["multus.spidernet.io/cr-name"]',
    "cannot be added after creation",
  );
  const changed = smc({}, { "multus.spidernet.io/cr-name": "new" });
  oneError(
    validateMultusConfig(changed, smc({}, { "multus.spidernet.io/cr-name": "old" })),
    'metadata.annotations["multus.spidernet.io/cr-name"]',
    'cannot change (was "old")',
  );
  assert.deepEqual(validateMultusConfig(changed, changed), []);
});

Deno.test("multus config: a NAD owned by another SpiderMultusConfig is a conflict", () => {
  const nad = {
    metadata: {
      name: "macvlan-a",
      namespace: "kube-system",
      ownerReferences: [{
        apiVersion: "spiderpool.spidernet.io/v2beta1",
        kind: "SpiderMultusConfig",
        name: "other",
        uid: "u",
        controller: true,
      }],
    },
  };
  const m = smc({}, { "multus.spidernet.io/cr-name": "macvlan-a" });
  oneError(
    validateMultusConfig(m, undefined, { nads: [nad] }),
    "metadata.name",
    'NetworkAttachmentDefinition "macvlan-a" already belongs to SpiderMultusConfig "other"',
  );
});

Deno.test("multus config: an unowned NAD or one it owns itself is no conflict", () => {
  const unowned = { metadata: { name: "m", namespace: "kube-system" } };
  const own = {
    metadata: {
      name: "m",
      namespace: "kube-system",
      ownerReferences: [{
        apiVersion: "spiderpool.spidernet.io/v2beta1",
        kind: "SpiderMultusConfig",
        name: "m",
        uid: "u",
        controller: true,
      }],
    },
  };
  assert.deepEqual(validateMultusConfig(smc({}), undefined, { nads: [unowned, own] }), []);
});

Deno.test("DELETE of a pool with allocated IPs is refused only when the delete webhook is enabled", () => {
  const p = pool("v4-a", {}, { status: { allocatedIPCount: 3 } });
  assert.deepEqual(validateIPPoolDelete(p, false), []);
  oneError(
    validateIPPoolDelete(p, true),
    "status.allocatedIPCount",
    "3 IPs are allocated",
    "delete or move the pods",
  );
  assert.deepEqual(validateIPPoolDelete(pool("v4-a", {}, { status: { allocatedIPCount: 0 } }), true), []);
});

Deno.test("DELETE of a subnet that gave IPs to pools is refused only when the delete webhook is enabled", () => {
  const s = subnet("subnet-a", {}, { status: { allocatedIPCount: 1 } });
  assert.deepEqual(validateSubnetDelete(s, false), []);
  oneError(
    validateSubnetDelete(s, true),
    "status.allocatedIPCount",
    "its pools hold 1 of its IPs",
    "delete those pools first",
  );
});
