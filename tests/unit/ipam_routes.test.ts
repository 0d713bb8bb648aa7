import assert from "node:assert/strict";
import type { SpiderIPPool } from "../../src/api/types.ts";
import { ipConfigFor, routesFor, unmatchedRoutes } from "../../src/ipam/mod.ts";

const flags = { enableIPConflictDetection: true, enableGatewayDetection: false };
const v4: SpiderIPPool = {
  metadata: { name: "v4-a" },
  spec: {
    ipVersion: 4,
    subnet: "192.0.2.0/24",
    ips: ["192.0.2.10-192.0.2.20"],
    gateway: "192.0.2.1",
    routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.254" }],
  },
};
const v6: SpiderIPPool = {
  metadata: { name: "v6-a" },
  spec: { ipVersion: 6, subnet: "2001:db8::/64", ips: ["2001:db8::10-2001:db8::20"], gateway: "2001:db8::1" },
};
const custom = [
  { dst: "203.0.113.0/24", gw: "192.0.2.253" },
  { dst: "198.18.0.0/15", gw: "198.51.100.1" },
  { dst: "2001:db8:1::/48", gw: "2001:db8::fe" },
];

Deno.test("ipConfigFor: address carries the pool subnet prefix, gateway, pool, vlan 0 and detection flags", () => {
  assert.deepEqual(ipConfigFor(v4, "192.0.2.10", "eth0", flags), {
    version: 4,
    address: "192.0.2.10/24",
    ipPool: "v4-a",
    gateway: "192.0.2.1",
    nic: "eth0",
    vlan: 0,
    enableGatewayDetection: false,
    enableIPConflictDetection: true,
  });
  assert.equal(ipConfigFor(v6, "2001:db8::10", "net1", flags).address, "2001:db8::10/64");
  assert.equal(ipConfigFor(v6, "2001:db8::10", "net1", flags).version, 6);
});

Deno.test("ipConfigFor omits the gateway when the pool has none", () => {
  const noGw = { ...v4, spec: { ...v4.spec, gateway: undefined } };
  assert.equal("gateway" in ipConfigFor(noGw, "192.0.2.10", "eth0", flags), false);
});

Deno.test("routesFor: pool routes, custom routes whose gw is in the subnet, then the default route", () => {
  assert.deepEqual(routesFor(v4, "eth0", false, custom), [
    { ifName: "eth0", dst: "198.51.100.0/24", gw: "192.0.2.254" },
    { ifName: "eth0", dst: "203.0.113.0/24", gw: "192.0.2.253" },
    { ifName: "eth0", dst: "0.0.0.0/0", gw: "192.0.2.1" },
  ]);
  assert.deepEqual(routesFor(v6, "net1", false, custom), [
    { ifName: "net1", dst: "2001:db8:1::/48", gw: "2001:db8::fe" },
    { ifName: "net1", dst: "::/0", gw: "2001:db8::1" },
  ]);
});

Deno.test("routesFor: cleanGateway leaves out the default route only", () => {
  assert.deepEqual(routesFor(v4, "eth0", true, []), [{
    ifName: "eth0",
    dst: "198.51.100.0/24",
    gw: "192.0.2.254",
  }]);
});

Deno.test("routesFor: no default route when the pool has no gateway", () => {
  const noGw = { ...v6, spec: { ...v6.spec, gateway: undefined } };
  assert.deepEqual(routesFor(noGw, "eth0", false, []), []);
});

Deno.test("unmatchedRoutes: custom routes whose gateway is in no allocated subnet (to be logged)", () => {
  assert.deepEqual(unmatchedRoutes(custom, [v4, v6]), [{ dst: "198.18.0.0/15", gw: "198.51.100.1" }]);
});
