// Forms that upstream Spiderpool accepts in manifests and annotations, so existing users' objects keep working
// here unchanged. Where upstream keeps a sloppy form as written, this project accepts it and writes it
// canonically (a route destination with host bits set becomes its network, as the kernel would install it).

import assert from "node:assert/strict";
import {
  parsePoolIPNumber,
  parseRoutesAnnotation,
  parseSubnetsAnnotation,
} from "../../src/api/annotations.ts";
import {
  defaultCoordinator,
  defaultIPPool,
  defaultMultusConfig,
  defaultSubnet,
} from "../../src/api/defaults.ts";
import { formatFieldErrors } from "../../src/api/validate/common.ts";
import { validateCoordinator } from "../../src/api/validate/coordinator.ts";
import { validateIPPool } from "../../src/api/validate/ippool.ts";
import { validateMultusConfig } from "../../src/api/validate/multusconfig.ts";
import { validateSubnet } from "../../src/api/validate/subnet.ts";

const flags = { enableIPv4: true, enableIPv6: true, enableSpiderSubnet: false };
const hostBitsRoute = { dst: "198.51.100.9/24", gw: "192.0.2.1" };

Deno.test("a pool route dst with host bits set is accepted and defaulted to its network", () => {
  const raw = { metadata: { name: "v4-a" }, spec: { subnet: "192.0.2.0/24", routes: [hostBitsRoute] } };
  assert.deepEqual(
    validateIPPool({ ...raw, spec: { ...raw.spec, ipVersion: 4 } }, undefined, { ...flags, pools: [] }),
    [],
  );
  const pool = defaultIPPool(raw, { enableSpiderSubnet: false, subnets: [] });
  assert.deepEqual(pool.spec.routes, [{ dst: "198.51.100.0/24", gw: "192.0.2.1" }]);
  const errors = validateIPPool(pool, undefined, { ...flags, pools: [] });
  assert.deepEqual(errors, [], formatFieldErrors(errors));
});

Deno.test("a subnet route dst with host bits set is accepted and defaulted to its network", () => {
  const s = defaultSubnet({
    metadata: { name: "subnet-a" },
    spec: { subnet: "2001:db8::/64", routes: [{ dst: "2001:db8:1::9/48", gw: "2001:db8::1" }] },
  });
  assert.deepEqual(s.spec.routes, [{ dst: "2001:db8:1::/48", gw: "2001:db8::1" }]);
  const errors = validateSubnet(s, undefined, { ...flags, subnets: [], pools: [] });
  assert.deepEqual(errors, [], formatFieldErrors(errors));
});

Deno.test("two route dsts naming the same network are still duplicates", () => {
  const pool = defaultIPPool({
    metadata: { name: "v4-a" },
    spec: { subnet: "192.0.2.0/24", routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.1" }, hostBitsRoute] },
  }, { enableSpiderSubnet: false, subnets: [] });
  const errors = validateIPPool(pool, undefined, { ...flags, pools: [] });
  assert.deepEqual(errors.map((e) => e.path), ["spec.routes[1].dst"]);
  assert.ok(errors[0].message.includes("duplicates spec.routes[0].dst"), errors[0].message);
});

Deno.test("the routes annotation accepts a dst with host bits set and returns its network", () => {
  assert.deepEqual(parseRoutesAnnotation(JSON.stringify([hostBitsRoute])), [
    { dst: "198.51.100.0/24", gw: "192.0.2.1" },
  ]);
});

Deno.test("coordinator hijackCIDR and policyRoutes accept host bits and are defaulted to networks", () => {
  const c = defaultCoordinator({
    metadata: { name: "default" },
    spec: {
      podCIDRType: "auto",
      hijackCIDR: ["198.18.0.1/15", "2001:db8:10:96::1/108"],
      policyRoutes: [{ dst: "198.18.0.1/15", gw: "192.0.2.1" }],
    },
  });
  assert.deepEqual(c.spec.hijackCIDR, ["198.18.0.0/15", "2001:db8:10:96::/108"]);
  assert.deepEqual(c.spec.policyRoutes, [{ dst: "198.18.0.0/15", gw: "192.0.2.1" }]);
  assert.deepEqual(validateCoordinator(c), []);
});

Deno.test("a SpiderMultusConfig coordinator hijackCIDR with host bits set is accepted", () => {
  const smc = defaultMultusConfig({
    metadata: { name: "macvlan-a", namespace: "kube-system" },
    spec: {
      cniType: "macvlan",
      macvlan: { master: ["ens192"] },
      coordinator: { hijackCIDR: ["198.18.0.1/15"] },
    },
  });
  assert.deepEqual(smc.spec.coordinator?.hijackCIDR, ["198.18.0.0/15"]);
  assert.deepEqual(validateMultusConfig(smc), []);
});

Deno.test("subnets annotation: an item without interface is for eth0, as in the subnet annotation", () => {
  assert.deepEqual(parseSubnetsAnnotation('[{"ipv4":["s4-a"]}]'), [{ interface: "eth0", ipv4: "s4-a" }]);
  assert.deepEqual(parseSubnetsAnnotation('[{"ipv4":["s4-a"]},{"interface":"net1","ipv6":["s6-b"]}]'), [
    { interface: "eth0", ipv4: "s4-a" },
    { interface: "net1", ipv6: "s6-b" },
  ]);
});

Deno.test("ippool-ip-number reads N the way Go's strconv.Atoi does: -0 is 0", () => {
  assert.deepEqual(parsePoolIPNumber("-0"), { flexible: false, n: 0 });
  assert.deepEqual(parsePoolIPNumber("+-0"), { flexible: true, n: 0 });
  assert.deepEqual(parsePoolIPNumber("+007"), { flexible: true, n: 7 });
});
