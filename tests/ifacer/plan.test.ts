// The ifacer's configuration and plan: VLAN sub-interfaces and bonds with their options, nothing done for
// what exists, the same-VLAN-id guard, and the errors for configurations the node cannot have.

import assert from "node:assert/strict";
import { CniError } from "../../src/cni/errors.ts";
import {
  BOND_OPTION_KEYS,
  IfacerPlanError,
  parseBondOptions,
  parseIfacerConf,
  planIfacer,
} from "../../src/ifacer/plan.ts";
import type { Op } from "../../src/net/ops.ts";
import { IFF_UP, type LinkInfo } from "../../src/net/types.ts";

const conf = (o: Record<string, unknown>) =>
  parseIfacerConf({ cniVersion: "1.0.0", name: "vlan100", type: "ifacer", ...o });
const link = (index: number, name: string, o: Partial<LinkInfo> = {}): LinkInfo => ({
  index,
  name,
  flags: IFF_UP,
  mac: `02:00:00:00:00:0${index}`,
  mtu: 1500,
  txqlen: 1000,
  ...o,
});
const host = [link(1, "lo"), link(2, "ens192"), link(3, "ens224"), link(4, "ens256", { flags: 0 })];
const describe = (ops: Op[]) =>
  ops.map((o) => {
    switch (o.kind) {
      case "link.set":
        return `set ${o.name} ${JSON.stringify(o.change)}`;
      case "link.vlan":
        return `vlan ${o.vlan.name} on ${o.vlan.parent} id ${o.vlan.vlanId}`;
      case "link.bond":
        return `bond ${o.bond.name} mode ${o.bond.mode} ${JSON.stringify(o.bond.options)}`;
      case "bond.activeSlave":
        return `active ${o.slave}`;
      default:
        return o.kind;
    }
  });

Deno.test("one interface without a VLAN id: nothing to make", () => {
  assert.deepEqual(planIfacer(conf({ interfaces: ["ens192"] }), host).ops, []);
});

Deno.test("one interface with a VLAN id: the parent up, then <parent>.<id> created and up", () => {
  assert.deepEqual(describe(planIfacer(conf({ interfaces: ["ens256"], vlanID: 100 }), host).ops), [
    `set ens256 {"up":true}`,
    "vlan ens256.100 on ens256 id 100",
    `set ens256.100 {"up":true}`,
  ]);
});

Deno.test("an existing VLAN interface is reused: only set up when down (idempotent ADD)", () => {
  const vlan = link(9, "ens192.100", { kind: "vlan", vlanId: 100, link: 2 });
  assert.deepEqual(planIfacer(conf({ interfaces: ["ens192"], vlanID: 100 }), [...host, vlan]).ops, []);
  const down = { ...vlan, flags: 0 };
  assert.deepEqual(describe(planIfacer(conf({ interfaces: ["ens192"], vlanID: 100 }), [...host, down]).ops), [
    `set ens192.100 {"up":true}`,
  ]);
});

Deno.test("another VLAN interface with the same id is refused, as upstream does", () => {
  const other = link(9, "ens224.100", { kind: "vlan", vlanId: 100, link: 3 });
  assert.throws(
    () => planIfacer(conf({ interfaces: ["ens192"], vlanID: 100 }), [...host, other]),
    (e: unknown) =>
      e instanceof IfacerPlanError &&
      /cannot have multiple different vlan interfaces with the same vlanId 100 .*ens224\.100 already has it/
        .test(e.message),
  );
});

Deno.test("a name taken by something else, a missing parent, or a name too long is refused", () => {
  const imposter = link(9, "ens192.100", { kind: "veth" });
  assert.throws(
    () => planIfacer(conf({ interfaces: ["ens192"], vlanID: 100 }), [...host, imposter]),
    /is not VLAN 100 on ens192/,
  );
  assert.throws(
    () => planIfacer(conf({ interfaces: ["ens999"], vlanID: 100 }), host),
    /ens999 .* does not exist/,
  );
  const long = [...host, link(8, "enp129s0f1np1")];
  assert.throws(
    () => planIfacer(conf({ interfaces: ["enp129s0f1np1"], vlanID: 4000 }), long),
    /longer than 15 characters/,
  );
});

Deno.test("several interfaces without a bond: nothing to make", () => {
  assert.deepEqual(planIfacer(conf({ interfaces: ["ens192", "ens224"] }), host).ops, []);
});

Deno.test("a bond: created with mode and options, each slave down → enslaved → up, the bond up, then the VLAN", () => {
  const c = conf({
    interfaces: ["ens192", "ens224"],
    vlanID: 200,
    bond: { name: "bond0", mode: 1, options: "miimon=100;primary=ens192;active_slave=ens224" },
  });
  assert.deepEqual(describe(planIfacer(c, host).ops), [
    `bond bond0 mode 1 {"miimon":100,"primary":"ens192","activeSlave":"ens224"}`,
    `set ens192 {"up":false}`,
    `set ens192 {"master":"bond0"}`,
    `set ens192 {"up":true}`,
    `set ens224 {"up":false}`,
    `set ens224 {"master":"bond0"}`,
    `set ens224 {"up":true}`,
    "active ens224",
    `set bond0 {"up":true}`,
    "vlan bond0.200 on bond0 id 200",
    `set bond0.200 {"up":true}`,
  ]);
});

Deno.test("an existing bond is reused; only slaves not yet in it are enslaved", () => {
  const bond = link(9, "sp_bond0", { kind: "bond" });
  const hosts = [link(1, "lo"), link(2, "ens192", { master: 9 }), link(3, "ens224"), bond];
  assert.deepEqual(describe(planIfacer(conf({ interfaces: ["ens192", "ens224"], bond: {} }), hosts).ops), [
    `set ens224 {"up":false}`,
    `set ens224 {"master":"sp_bond0"}`,
    `set ens224 {"up":true}`,
  ]);
  const done = [link(1, "lo"), link(2, "ens192", { master: 9 }), link(3, "ens224", { master: 9 }), bond];
  assert.deepEqual(planIfacer(conf({ interfaces: ["ens192", "ens224"], bond: {} }), done).ops, []);
});

Deno.test("a bond name used by a non-bond, or a slave of another master, is refused", () => {
  assert.throws(
    () => planIfacer(conf({ interfaces: ["ens192", "ens224"], bond: { name: "ens256" } }), host),
    /is not a bond/,
  );
  const taken = [
    link(1, "lo"),
    link(2, "ens192", { master: 7 }),
    link(3, "ens224"),
    link(7, "br0", { kind: "bridge" }),
  ];
  assert.throws(
    () => planIfacer(conf({ interfaces: ["ens192", "ens224"], bond: {} }), taken),
    /ens192 is already enslaved to br0/,
  );
  assert.throws(
    () => planIfacer(conf({ interfaces: ["ens192", "ens224"], bond: { options: "primary=ens256" } }), host),
    /primary=ens256 is not one of the bonded interfaces/,
  );
});

Deno.test("every documented bond option is parsed: integers, interface names, a MAC and an address list", () => {
  assert.deepEqual(BOND_OPTION_KEYS.length, 25);
  const o = parseBondOptions(
    "active_slave=ens224;ad_actor_sys_prio=10;ad_actor_system=02:00:5E:10:00:01;ad_select=1;ad_user_port_key=3;" +
      'all_slaves_active=1;arp_interval=100;arp_ip_target=["192.0.2.1","192.0.2.2"];arp_validate=2;' +
      "arp_all_targets=1;downdelay=200;fail_over_mac=1;lacp_rate=1;miimon=100;min_links=2;packets_per_slave=4;" +
      "primary=ens192;primary_reselect=2;tlb_dynamic_lb=1;up_delay=300;use_carrier=1;xmit_hash_policy=2;" +
      "lp_interval=5;resend_igmp=6;peer_notif_delay=400",
  );
  assert.deepEqual(o, {
    activeSlave: "ens224",
    adActorSysPrio: 10,
    adActorSystem: "02:00:5e:10:00:01",
    adSelect: 1,
    adUserPortKey: 3,
    allSlavesActive: 1,
    arpInterval: 100,
    arpIpTargets: ["192.0.2.1", "192.0.2.2"],
    arpValidate: 2,
    arpAllTargets: 1,
    downDelay: 200,
    failOverMac: 1,
    lacpRate: 1,
    miimon: 100,
    minLinks: 2,
    packetsPerSlave: 4,
    primary: "ens192",
    primaryReselect: 2,
    tlbDynamicLb: 1,
    upDelay: 300,
    useCarrier: 1,
    xmitHashPolicy: 2,
    lpInterval: 5,
    resendIgmp: 6,
    peerNotifDelay: 400,
  });
});

Deno.test("bad configurations are refused with code 7 naming the key", () => {
  const bad = (o: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => conf(o), (e: unknown) => e instanceof CniError && e.code === 7 && re.test(e.message));
  bad({}, /"interfaces": expected a list of at least one host interface/);
  bad({ interfaces: [] }, /"interfaces"/);
  bad({ interfaces: ["ens192", "ens192"] }, /distinct interface names/);
  bad({ interfaces: ["ens192"], vlanID: 4095 }, /"vlanID": expected a VLAN id from 0 to 4094/);
  bad({ interfaces: ["a", "b"], bond: { mode: 7 } }, /"bond.mode": expected a bonding mode from 0/);
  bad(
    { interfaces: ["a", "b"], bond: { options: "miimon=fast" } },
    /"bond.options miimon": expected a whole number/,
  );
  bad(
    { interfaces: ["a", "b"], bond: { options: "color=blue" } },
    /"bond.options": expected one of the keys active_slave/,
  );
  bad(
    { interfaces: ["a", "b"], bond: { options: "arp_ip_target=[1" } },
    /arp_ip_target": expected a JSON list/,
  );
  bad({ interfaces: ["a", "b"], bond: { options: "arp_ip_target=2001:db8::1" } }, /IPv4 addresses/);
  bad({ interfaces: ["a", "b"], bond: { options: "ad_actor_system=nope" } }, /a MAC address/);
  bad({ interfaces: ["a", "b"], bond: { name: "a-name-far-too-long" } }, /"bond.name"/);
});

Deno.test("the bond name defaults to sp_bond0 and the mode to 0", () => {
  assert.deepEqual(conf({ interfaces: ["a", "b"], bond: {} }).bond, {
    name: "sp_bond0",
    mode: 0,
    options: {},
  });
});
