import assert from "node:assert/strict";
import {
  interfaceNameProblem,
  isDNS1123Label,
  isDNS1123Subdomain,
  isGlob,
  labelKeyProblem,
  labelValueProblem,
  poolNameProblem,
} from "../../src/api/validate/names.ts";

Deno.test("DNS-1123 labels and subdomains", () => {
  assert.equal(isDNS1123Label("kube-system"), true);
  assert.equal(isDNS1123Label("a.b"), false);
  assert.equal(isDNS1123Label("x".repeat(64)), false);
  assert.equal(isDNS1123Subdomain("macvlan.ens192"), true);
  assert.equal(isDNS1123Subdomain("-a"), false);
  assert.equal(isDNS1123Subdomain("A"), false);
  assert.equal(isDNS1123Subdomain("a".repeat(254)), false);
});

Deno.test("label keys may carry a DNS prefix; values may be empty", () => {
  assert.equal(labelKeyProblem("ipam.spidernet.io/app-name"), undefined);
  assert.equal(labelKeyProblem("App_Name.v1"), undefined);
  assert.match(labelKeyProblem("/name")!, /invalid prefix/);
  assert.match(labelKeyProblem("a/")!, /is invalid/);
  assert.equal(labelValueProblem(""), undefined);
  assert.match(labelValueProblem("-x")!, /is invalid/);
});

Deno.test("interface names: 1-15 characters without / : or spaces", () => {
  for (const ok of ["eth0", "net1", "bond0.100", "a".repeat(15)]) {
    assert.equal(interfaceNameProblem(ok), undefined, ok);
  }
  for (const bad of ["", "a".repeat(16), "net/1", "eth0:1", "net 1", ".", ".."]) {
    assert.match(interfaceNameProblem(bad)!, /is not a valid interface name/, bad);
  }
});

Deno.test("glob detection and pool-name patterns", () => {
  assert.equal(isGlob("v4-a"), false);
  assert.equal(isGlob("v4-*"), true);
  assert.equal(isGlob("v4-[ab]"), true);
  assert.match(poolNameProblem("[]a]")!, /is not a valid glob/);
  assert.match(poolNameProblem("a\\")!, /is not a valid glob/);
  assert.match(poolNameProblem("x".repeat(254) + "*")!, /longer than 253/);
});
