// The ifacer binary in a namespace standing for the node: an empty result when there is nothing to make, the
// kernel's "not supported" answer as a CNI error naming the link type and its module (this machine's kernel
// has neither VLAN nor bond links), and, where the kernel has them, VLANs and bonds made once and reused.

import assert from "node:assert/strict";
import { execCni } from "../e2e/cni.ts";
import { addNetns, delNetns, ip, shortId } from "../e2e/netns.ts";
import { snapshot } from "../net/helpers.ts";
import { IFACER } from "../coordinator/harness.ts";

/** Whether this kernel can create links of `kind` (tried in a scratch namespace). */
async function supports(kind: "vlan" | "bond"): Promise<boolean> {
  const ns = `probe-${shortId(6)}`;
  await addNetns(ns);
  try {
    await ip("-n", ns, "link", "add", "name", "p0", "type", "veth", "peer", "name", "p1");
    if (kind === "vlan") {
      await ip("-n", ns, "link", "add", "link", "p0", "name", "p0.5", "type", "vlan", "id", "5");
    } else await ip("-n", ns, "link", "add", "name", "pb0", "type", "bond");
    return true;
  } catch (e) {
    if (/Unknown device type|not supported/i.test((e as Error).message)) return false;
    throw e;
  } finally {
    await delNetns(ns);
  }
}

const VLAN = await supports("vlan");
const BOND = await supports("bond");

interface Node extends AsyncDisposable {
  ns: string;
  run(command: "ADD" | "DEL" | "CHECK", keys: Record<string, unknown>): ReturnType<typeof execCni>;
}

/** A namespace standing for the node, with two "physical" NICs ens0 and ens1. */
async function node(): Promise<Node> {
  const ns = `ifacer-${shortId(6)}`;
  await addNetns(ns);
  await ip("-n", ns, "link", "add", "name", "ens0", "type", "veth", "peer", "name", "ens0p");
  await ip("-n", ns, "link", "add", "name", "ens1", "type", "veth", "peer", "name", "ens1p");
  return {
    ns,
    run: (command, keys) =>
      execCni({
        command,
        conf: { cniVersion: "1.0.0", name: "ifacer-net", type: "ifacer", ...keys },
        containerId: `c${shortId(12)}`,
        netns: "/proc/self/ns/net",
        ifName: "net1",
        pod: { namespace: "default", name: "p", uid: "u" },
        plugin: IFACER,
        nodeNetns: ns,
      }),
    async [Symbol.asyncDispose]() {
      await delNetns(ns);
    },
  };
}

Deno.test("ifacer: one interface without a VLAN id gives an empty result and changes nothing", async () => {
  await using n = await node();
  const before = await snapshot(`/var/run/netns/${n.ns}`);
  const add = await n.run("ADD", { interfaces: ["ens0"] });
  assert.equal(add.code, 0, add.stdout);
  assert.deepEqual(add.json, { cniVersion: "1.0.0" });
  assert.deepEqual(await snapshot(`/var/run/netns/${n.ns}`), before);
  assert.equal((await n.run("DEL", { interfaces: ["ens0"] })).code, 0);
});

Deno.test({
  name: `ifacer: a VLAN the kernel cannot make is a CNI error naming the link type and module${
    VLAN ? " (skipped: this kernel supports VLANs)" : ""
  }`,
  ignore: VLAN,
  fn: async () => {
    await using n = await node();
    await ip("-n", n.ns, "link", "set", "ens0", "down");
    const before = await snapshot(`/var/run/netns/${n.ns}`);
    const add = await n.run("ADD", { interfaces: ["ens0"], vlanID: 100 });
    assert.equal(add.code, 1);
    assert.equal(add.json?.code, 104);
    assert.match(
      String(add.json?.msg),
      /cannot create vlan interface ens0\.100: this kernel does not support the link type "vlan" .*Operation not supported.*; load the 8021q kernel module/,
    );
    // The parent was set up before the VLAN was tried; the rollback set it down again.
    assert.deepEqual(await snapshot(`/var/run/netns/${n.ns}`), before);
  },
});

Deno.test({
  name: `ifacer: a bond the kernel cannot make is a CNI error naming the link type and module${
    BOND ? " (skipped: this kernel supports bonds)" : ""
  }`,
  ignore: BOND,
  fn: async () => {
    await using n = await node();
    const before = await snapshot(`/var/run/netns/${n.ns}`);
    const add = await n.run("ADD", {
      interfaces: ["ens0", "ens1"],
      bond: { name: "bond0", mode: 1, options: "miimon=100" },
    });
    assert.equal(add.json?.code, 104, add.stdout);
    assert.match(String(add.json?.msg), /link type "bond" .*; load the bonding kernel module/);
    assert.deepEqual(await snapshot(`/var/run/netns/${n.ns}`), before, "the NICs are left as they were");
  },
});

Deno.test({
  name: `ifacer: a VLAN is made once, up, and reused by the next ADD${
    VLAN ? "" : " (skipped: this kernel has no VLAN support)"
  }`,
  ignore: !VLAN,
  fn: async () => {
    await using n = await node();
    for (let i = 0; i < 2; i++) {
      const add = await n.run("ADD", { interfaces: ["ens0"], vlanID: 100 });
      assert.equal(add.code, 0, add.stdout);
    }
    const [l] = JSON.parse(await ip("-n", n.ns, "-j", "-d", "link", "show", "ens0.100"));
    assert.equal(l.linkinfo.info_data.id, 100);
    assert.ok(l.flags.includes("UP"));
    assert.equal((await n.run("CHECK", { interfaces: ["ens0"], vlanID: 100 })).code, 0);
    const other = await n.run("ADD", { interfaces: ["ens1"], vlanID: 100 });
    assert.match(String(other.json?.msg), /same vlanId 100/);
  },
});

Deno.test({
  name: `ifacer: a bond with options enslaves both NICs and carries the VLAN${
    BOND && VLAN ? "" : " (skipped: this kernel has no bond or VLAN support)"
  }`,
  ignore: !(BOND && VLAN),
  fn: async () => {
    await using n = await node();
    const keys = {
      interfaces: ["ens0", "ens1"],
      vlanID: 200,
      bond: { name: "bond0", mode: 1, options: "miimon=100;primary=ens0" },
    };
    for (let i = 0; i < 2; i++) assert.equal((await n.run("ADD", keys)).code, 0);
    const [b] = JSON.parse(await ip("-n", n.ns, "-j", "-d", "link", "show", "bond0"));
    assert.equal(b.linkinfo.info_data.mode, "active-backup");
    assert.equal(b.linkinfo.info_data.miimon, 100);
    for (const nic of ["ens0", "ens1"]) {
      assert.equal(JSON.parse(await ip("-n", n.ns, "-j", "link", "show", nic))[0].master, "bond0");
    }
    assert.ok(JSON.parse(await ip("-n", n.ns, "-j", "link", "show", "bond0.200"))[0].flags.includes("UP"));
  },
});

Deno.test("ifacer CHECK reports a missing interface", async () => {
  await using n = await node();
  const check = await n.run("CHECK", { interfaces: ["ens0"], vlanID: 300 });
  assert.equal(check.json?.code, 103, check.stdout);
  assert.match(String(check.json?.msg), /ens0\.300 is missing/);
});
