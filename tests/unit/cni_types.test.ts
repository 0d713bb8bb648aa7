// Result conversion between the current (1.x) format and 0.3.x/0.4.0, both directions.
import assert from "node:assert/strict";
import { CniError, convertResult, type Result, toCurrentResult } from "../../src/cni/mod.ts";

const FULL: Result = {
  cniVersion: "1.1.0",
  interfaces: [{ name: "eth0", mac: "0a:58:c0:00:02:0a", sandbox: "/var/run/netns/x", mtu: 1500 }],
  ips: [
    { interface: 0, address: "192.0.2.10/24", gateway: "192.0.2.1" },
    { interface: 0, address: "2001:db8::a/64", gateway: "2001:db8::1" },
  ],
  routes: [{ dst: "0.0.0.0/0", gw: "192.0.2.1", table: 100, priority: 5 }, { dst: "198.51.100.0/24" }],
  dns: { nameservers: ["192.0.2.53"], search: ["example.test"] },
};

Deno.test("converting to 0.3.x/0.4.0 adds the family to every ip", () => {
  for (const v of ["0.3.0", "0.3.1", "0.4.0"]) {
    const out = convertResult(FULL, v);
    assert.equal(out.cniVersion, v);
    assert.deepEqual(out.ips, [
      { interface: 0, address: "192.0.2.10/24", gateway: "192.0.2.1", version: "4" },
      { interface: 0, address: "2001:db8::a/64", gateway: "2001:db8::1", version: "6" },
    ]);
  }
});

Deno.test("converting to 0.x drops the interface and route fields added in 1.1.0", () => {
  const out = convertResult(FULL, "0.4.0");
  assert.deepEqual(out.interfaces, [{ name: "eth0", mac: "0a:58:c0:00:02:0a", sandbox: "/var/run/netns/x" }]);
  assert.deepEqual(out.routes, [{ dst: "0.0.0.0/0", gw: "192.0.2.1" }, { dst: "198.51.100.0/24" }]);
});

Deno.test("converting to 1.x keeps the shape and has no ip version fields", () => {
  for (const v of ["1.0.0", "1.1.0"]) {
    const out = convertResult(FULL, v);
    assert.deepEqual(out, { ...FULL, cniVersion: v });
  }
});

Deno.test("an IPAM result without interfaces stays without interfaces in every version", () => {
  const ipam: Result = { cniVersion: "1.1.0", ips: [{ address: "203.0.113.5/24" }] };
  for (const v of ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
    const out = convertResult(ipam, v);
    assert.equal("interfaces" in out, false, v);
    assert.equal("dns" in out, false, v);
  }
});

Deno.test("converting to an unsupported version is code 1", () => {
  assert.throws(() => convertResult(FULL, "0.2.0"), (e) => e instanceof CniError && e.code === 1);
});

Deno.test("a 0.4.0 prevResult reads back into the current format without ip versions", () => {
  const legacy = convertResult(FULL, "0.4.0");
  const back = toCurrentResult(legacy);
  assert.equal(back.cniVersion, "1.1.0");
  assert.deepEqual(back.ips, [
    { interface: 0, address: "192.0.2.10/24", gateway: "192.0.2.1" },
    { interface: 0, address: "2001:db8::a/64", gateway: "2001:db8::1" },
  ]);
  assert.deepEqual(back.dns, FULL.dns);
});

Deno.test("a prevResult that is not an object is code 6; one of version 0.2.0 is code 1", () => {
  assert.throws(() => toCurrentResult("x"), (e) => e instanceof CniError && e.code === 6);
  assert.throws(
    () => toCurrentResult({ cniVersion: "0.2.0", ip4: { ip: "192.0.2.1/24" } }),
    (e) => e instanceof CniError && e.code === 1,
  );
});
