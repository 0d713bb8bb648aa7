// The coordinator's ADD plan, step by step and mode by mode: what each configuration and each observed pod
// and host state turn into, read as the list of operations the executor would apply.

import assert from "node:assert/strict";
import {
  chooseGateways,
  hostVethForwarding,
  hostVethName,
  macFromPrefix,
  MARK_TABLE,
  nodeAddresses,
  planAdd,
  PlanError,
  POD_VETH,
  randomMac,
  SOURCE_RULE_PRIORITY,
} from "../../src/coordinator/plan.ts";
import type { Op } from "../../src/net/ops.ts";
import { IFF_UP, NUD_PERMANENT, RT_SCOPE, RT_TABLE, RTPROT } from "../../src/net/types.ts";
import { addr, host, input, link, MAIN_RULES, neigh, pod, route, rule, settings } from "./fixtures.ts";

type K = Op["kind"];
const of = <T extends K>(ops: Op[], kind: T) => ops.filter((o): o is Op & { kind: T } => o.kind === kind);
const steps = (ops: Op[]) => [...new Set(ops.map((o) => o.step))];
const routesIn = (ops: Op[], table: number, ns: "pod" | "host" = "pod") =>
  of(ops, "route.add").filter((o) => o.ns === ns && o.route.table === table).map((o) => o.route);

/** A pod whose eth0 was set up by a first coordinator ADD and which now gets net1 (underlay). */
function podWithNet1(o: { net1Default?: boolean } = {}) {
  return pod({
    links: [
      link(1, "lo"),
      link(2, "eth0", { kind: "macvlan" }),
      link(3, POD_VETH, { kind: "veth", link: 9, linkNetnsId: 0, mac: "02:bb:00:00:00:01" }),
      link(4, "net1", { kind: "macvlan" }),
    ],
    addrs: [addr(2, "192.0.2.10/24"), addr(4, "198.51.100.5/24")],
    routes: [
      route("192.0.2.0/24", { ifindex: 2, protocol: RTPROT.kernel, src: "192.0.2.10" }),
      route("default", { ifindex: 2, gw: "192.0.2.1" }),
      route("203.0.113.2/32", { ifindex: 3, src: "192.0.2.10" }),
      route("198.51.100.0/24", { ifindex: 4, protocol: RTPROT.kernel, src: "198.51.100.5" }),
      route("198.19.7.0/24", { ifindex: 4, gw: "198.51.100.1" }),
      ...(o.net1Default === false ? [] : [route("default", { ifindex: 4, gw: "198.51.100.1", metric: 10 })]),
    ],
  });
}

const hostWithVeth = (cid: string) =>
  host({
    links: [
      link(1, "lo"),
      link(2, "ens192"),
      link(9, hostVethName(cid), { kind: "veth", mac: "02:aa:00:00:00:01" }),
    ],
    sourceToward: { "198.51.100.5": "203.0.113.2", "192.0.2.10": "203.0.113.2" },
  });

Deno.test("underlay first NIC: the steps come in the spec's order", () => {
  const plan = planAdd(input());
  assert.equal(plan.mode, "underlay");
  assert.equal(plan.firstInvoke, true);
  assert.equal(plan.table, 101);
  assert.deepEqual(steps(plan.ops), [
    "veth",
    "neighbours",
    "host-routes",
    "host-rule",
    "hijack-routes",
    "reply-via-veth",
  ]);
});

Deno.test("underlay first NIC: a veth pair with the given random MACs and vethMTU, both ends up", () => {
  const plan = planAdd(input({ settings: settings({ vethMTU: 9000 }) }));
  const [veth] = of(plan.ops, "link.veth");
  assert.deepEqual(veth, {
    ns: "host",
    step: "veth",
    kind: "link.veth",
    veth: {
      name: "veth0123456789a",
      mac: "02:aa:00:00:00:01",
      mtu: 9000,
      peer: { name: "veth0", mac: "02:bb:00:00:00:01" },
    },
    peerNs: "pod",
  });
  assert.deepEqual(of(plan.ops, "link.set").map((o) => [o.ns, o.name, o.change]), [
    ["pod", "veth0", { up: true }],
    ["host", "veth0123456789a", { up: true }],
  ]);
});

Deno.test("underlay first NIC: the host forwards what enters its veth (IPv4), whatever the node's global switch", () => {
  // A pod's connection to a ClusterIP is DNATed by the host to another pod: it enters one host veth and leaves by
  // another, and so does the reply. A new link inherits forwarding off from a node whose global switch is off.
  const plan = planAdd(input());
  const hostSysctls = of(plan.ops, "sysctl.set").filter((o) => o.ns === "host");
  assert.deepEqual(hostSysctls.map((o) => [o.step, o.key, o.value]), [
    ["veth", "net.ipv4.conf.veth0123456789a.forwarding", "1"],
  ]);
  assert.equal(hostVethForwarding("veth0123456789a"), "net.ipv4.conf.veth0123456789a.forwarding");
  // After the veth exists, before any route sends traffic into it.
  const at = plan.ops.indexOf(hostSysctls[0]);
  assert.ok(at > plan.ops.findIndex((o) => o.kind === "link.veth"));
  assert.ok(at < plan.ops.findIndex((o) => o.kind === "route.add"));
  // An IPv6-only pod: IPv6 forwarding has only the global switch (the agent's tuneSysctlConfig).
  const v6 = planAdd(input({
    pod: pod({ addrs: [addr(2, "2001:db8::a/64")], routes: [] }),
    host: host({ sourceToward: {}, addrs: [addr(2, "2001:db8:1::2/64")] }),
  }));
  assert.deepEqual(of(v6.ops, "sysctl.set").filter((o) => o.ns === "host"), []);
});

Deno.test("a later underlay NIC leaves the host veth's sysctls alone (set by the first NIC's ADD)", () => {
  const plan = planAdd(input({ ifName: "net1", pod: podWithNet1(), host: hostWithVeth("0123456789abcdef") }));
  assert.equal(plan.firstInvoke, false);
  assert.deepEqual(of(plan.ops, "sysctl.set").filter((o) => o.ns === "host"), []);
});

Deno.test("the host veth is named veth + the first 11 characters of the container id", () => {
  assert.equal(hostVethName("0123456789abcdef"), "veth0123456789a");
  assert.equal(hostVethName("abc"), "vethabc");
});

Deno.test("a down NIC is set up before anything else", () => {
  const p = pod();
  p.links[1] = { ...p.links[1], flags: 0 };
  const plan = planAdd(input({ pod: p }));
  assert.deepEqual(plan.ops[0], {
    ns: "pod",
    step: "link-up",
    kind: "link.set",
    name: "eth0",
    change: { up: true },
    prev: { up: false },
  });
});

Deno.test("vethLinkAddress goes on veth0 as a /32, not for an IPv6-only pod", () => {
  const plan = planAdd(input({ settings: settings({ vethLinkAddress: "169.254.200.1" }) }));
  assert.deepEqual(of(plan.ops, "addr.add").map((o) => [o.dev, o.cidr]), [["veth0", "169.254.200.1/32"]]);
  const v6 = planAdd(input({
    settings: settings({ vethLinkAddress: "169.254.200.1" }),
    pod: pod({ addrs: [addr(2, "2001:db8::a/64")], routes: [] }),
    host: host({ sourceToward: {}, addrs: [addr(2, "2001:db8:1::2/64")] }),
  }));
  assert.deepEqual(of(v6.ops, "addr.add"), []);
});

Deno.test("podMACPrefix: prefix + the IPv4 address, then a gratuitous announcement of every address", () => {
  assert.equal(macFromPrefix("0a:1b", "192.0.2.10"), "0a:1b:c0:00:02:0a");
  assert.equal(macFromPrefix("0A:1B", "2001:db8::1:a0b:c0d"), "0a:1b:0a:0b:0c:0d");
  const plan = planAdd(input({ settings: settings({ podMACPrefix: "0a:1b" }) }));
  const mac = of(plan.ops, "link.set").find((o) => o.change.mac);
  assert.deepEqual(mac?.change, { mac: "0a:1b:c0:00:02:0a" });
  assert.deepEqual(mac?.prev, { mac: "02:00:00:00:00:02" });
  assert.deepEqual(of(plan.ops, "announce").map((o) => [o.dev, o.ips]), [["eth0", ["192.0.2.10"]]]);
});

Deno.test("podMACPrefix: a NIC that already has the MAC is left alone (a repeated ADD)", () => {
  const p = pod();
  p.links[1] = { ...p.links[1], mac: "0a:1b:c0:00:02:0a" };
  const plan = planAdd(input({ pod: p, settings: settings({ podMACPrefix: "0a:1b" }) }));
  assert.deepEqual(of(plan.ops, "announce"), []);
});

Deno.test("txQueueLen > 0 sets the NIC's queue length (remembering the old one); 0 leaves it", () => {
  const plan = planAdd(input({ settings: settings({ txQueueLen: 5000 }) }));
  const tx = of(plan.ops, "link.set").find((o) => o.change.txqlen);
  assert.deepEqual([tx?.name, tx?.change, tx?.prev], ["eth0", { txqlen: 5000 }, { txqlen: 1000 }]);
  assert.equal(of(planAdd(input()).ops, "link.set").filter((o) => o.change.txqlen).length, 0);
});

Deno.test("sysctls: rp_filter set unless negative or already right; IPv6 enabled for a pod with IPv6", () => {
  const strict = pod({
    sysctls: { "net.ipv4.conf.all.rp_filter": "1", "net.ipv6.conf.all.disable_ipv6": "1" },
  });
  const stepOf = (ops: Op[]) => of(ops, "sysctl.set").filter((o) => o.step === "sysctl");
  const plan = planAdd(input({ pod: strict, settings: settings({ podRPFilter: 2 }) }));
  assert.deepEqual(stepOf(plan.ops).map((o) => [o.key, o.value, o.prev]), [
    ["net.ipv4.conf.all.rp_filter", "2", "1"],
  ]);
  assert.deepEqual(stepOf(planAdd(input({ pod: strict, settings: settings({ podRPFilter: -1 }) })).ops), []);
  assert.deepEqual(stepOf(planAdd(input()).ops), []); // already 0
  const dual = pod({
    addrs: [addr(2, "192.0.2.10/24"), addr(2, "2001:db8::a/64")],
    sysctls: { "net.ipv4.conf.all.rp_filter": "0", "net.ipv6.conf.all.disable_ipv6": "1" },
  });
  assert.deepEqual(stepOf(planAdd(input({ pod: dual })).ops).map((o) => [o.key, o.value]), [
    ["net.ipv6.conf.all.disable_ipv6", "0"],
  ]);
});

Deno.test("neighbours: permanent pod IP → pod veth MAC on the host veth, node IPs → host veth MAC in the pod", () => {
  const plan = planAdd(input());
  assert.deepEqual(of(plan.ops, "neigh.add").map((o) => [o.ns, o.neigh]), [
    ["host", {
      family: 4,
      dev: "veth0123456789a",
      dst: "192.0.2.10",
      lladdr: "02:bb:00:00:00:01",
      state: NUD_PERMANENT,
    }],
    ["pod", {
      family: 4,
      dev: "veth0",
      dst: "203.0.113.2",
      lladdr: "02:aa:00:00:00:01",
      state: NUD_PERMANENT,
    }],
  ]);
});

Deno.test("neighbours: the host's stale entries for the pod IP are deleted first, on any link", () => {
  const h = host({
    neighs: [
      neigh(2, "192.0.2.10", "02:de:ad:00:00:01", 0x02),
      neigh(2, "192.0.2.99", "02:00:00:00:00:99", 2),
    ],
  });
  const plan = planAdd(input({ host: h }));
  const del = of(plan.ops, "neigh.del");
  assert.deepEqual(del.map((o) => [o.ns, o.neigh.dev, o.neigh.dst]), [["host", "ens192", "192.0.2.10"]]);
  assert.ok(plan.ops.indexOf(del[0]) < plan.ops.findIndex((o) => o.kind === "neigh.add"));
});

Deno.test("node addresses: the host's source toward the pod first, then its own NICs' global addresses", () => {
  const h = host({
    links: [
      link(1, "lo"),
      link(2, "ens192"),
      link(3, "ens224"),
      link(4, "docker0"),
      link(5, "veth1234"),
      link(6, "cali1"),
      link(7, "cilium_host"),
      link(8, "flannel.1"),
      link(9, "cni0"),
      link(10, "kube-ipvs0"),
    ],
    addrs: [
      addr(1, "127.0.0.1/8", RT_SCOPE.host),
      addr(2, "203.0.113.2/24"),
      addr(2, "fe80::1/64", RT_SCOPE.link),
      addr(3, "198.51.100.2/24"),
      ...[4, 5, 6, 7, 8, 9, 10].map((i) => addr(i, `198.19.0.${i}/24`)),
    ],
    sourceToward: { "192.0.2.10": "198.51.100.2" },
  });
  assert.deepEqual(nodeAddresses(h, ["192.0.2.10"], [4]), ["198.51.100.2", "203.0.113.2"]);
});

Deno.test("#3359: the hijack gateway is never a link-local or hijacked address (a node-local DNS cache)", () => {
  assert.deepEqual(chooseGateways(["169.254.20.10", "203.0.113.2"], ["169.254.0.0/16"]), {
    4: "203.0.113.2",
  });
  assert.deepEqual(chooseGateways(["198.18.0.10", "203.0.113.2"], ["198.18.0.0/24"]), { 4: "203.0.113.2" });
  assert.deepEqual(chooseGateways(["fe80::1", "2001:db8::2", "203.0.113.2"], []), {
    4: "203.0.113.2",
    6: "2001:db8::2",
  });
  // In a whole plan: the DNS cache address still gets its host route, but routes nothing.
  const h = host({
    links: [link(1, "lo"), link(2, "nodelocaldns"), link(3, "ens192")],
    addrs: [addr(2, "169.254.20.10/32"), addr(3, "203.0.113.2/24")],
    sourceToward: { "192.0.2.10": "169.254.20.10" },
  });
  const plan = planAdd(input({ host: h }));
  assert.deepEqual(plan.nodeIPs, ["169.254.20.10", "203.0.113.2"]);
  assert.deepEqual(routesIn(plan.ops, RT_TABLE.main).filter((r) => r.gw).map((r) => r.gw), [
    "203.0.113.2",
    "203.0.113.2",
    "203.0.113.2",
  ]);
});

Deno.test("underlay first NIC: node addresses and hijacked CIDRs in main through veth0, source the pod's IPv4", () => {
  const plan = planAdd(input());
  assert.deepEqual(routesIn(plan.ops, RT_TABLE.main).map((r) => [r.dst, r.gw ?? "", r.dev, r.scope, r.src]), [
    ["203.0.113.2/32", "", "veth0", RT_SCOPE.link, "192.0.2.10"],
    ["198.18.128.0/24", "203.0.113.2", "veth0", RT_SCOPE.universe, "192.0.2.10"],
    ["198.18.0.0/24", "203.0.113.2", "veth0", RT_SCOPE.universe, "192.0.2.10"],
    ["169.254.0.0/16", "203.0.113.2", "veth0", RT_SCOPE.universe, "192.0.2.10"],
  ]);
  assert.deepEqual(routesIn(plan.ops, 101), []); // nothing reads the first NIC's table
});

Deno.test("host side: `from all lookup 500 pref 1000` once per family, the pod's /32 through its veth in 500", () => {
  const plan = planAdd(input());
  assert.deepEqual(
    of(plan.ops, "rule.add").filter((o) => o.ns === "host").map((o) => [o.rule, o.ifTableEmpty]),
    [
      [{ family: 4, priority: 1000, table: 500 }, true],
    ],
  );
  assert.deepEqual(routesIn(plan.ops, 500, "host"), [
    { family: 4, dst: "192.0.2.10/32", dev: "veth0123456789a", scope: RT_SCOPE.link, table: 500 },
  ]);
  const withRule = host({ rules: [...MAIN_RULES, rule({ priority: 1000, table: 500 })] });
  assert.equal(
    of(planAdd(input({ host: withRule })).ops, "rule.add").filter((o) => o.ns === "host").length,
    0,
  );
});

Deno.test("host side: a stale route to the pod IP in the rule table (an earlier pod's veth) is replaced", () => {
  const h = host({ routes: [route("192.0.2.10/32", { table: 500, ifindex: 2 })] });
  const plan = planAdd(input({ host: h }));
  const del = of(plan.ops, "route.del");
  assert.deepEqual(del.map((o) => [o.ns, o.route]), [["host", {
    family: 4,
    dst: "192.0.2.10/32",
    table: 500,
    dev: "ens192",
  }]]);
});

Deno.test("underlay first NIC: conntrack marks send replies to connections from the node back through veth0", () => {
  const plan = planAdd(input());
  assert.deepEqual(
    of(plan.ops, "sysctl.set").filter((o) => o.ns === "pod").map((o) => [o.key, o.value, o.prev]),
    [
      ["net.ipv4.conf.veth0.src_valid_mark", "1", undefined],
    ],
  );
  assert.deepEqual(
    of(plan.ops, "iptables.add").map((o) => [o.rule.family, o.rule.chain, o.rule.args.join(" ")]),
    [
      [4, "PREROUTING", "-i veth0 -m conntrack --ctstate NEW -j MARK --set-xmark 0x1/0xffffffff"],
      [4, "PREROUTING", "-m mark --mark 0x1 -j CONNMARK --save-mark"],
      [4, "OUTPUT", "-j CONNMARK --restore-mark"],
    ],
  );
  assert.deepEqual(of(plan.ops, "rule.add").filter((o) => o.ns === "pod").map((o) => o.rule), [
    { family: 4, priority: 1000, table: MARK_TABLE, fwmark: 1, fwmask: 0xffffffff },
  ]);
  assert.deepEqual(routesIn(plan.ops, MARK_TABLE), [
    { family: 4, dst: "0.0.0.0/0", gw: "203.0.113.2", dev: "veth0", table: 100, scope: 0, src: "192.0.2.10" },
  ]);
});

Deno.test("dual stack: both families get rules, marks and routes; IPv6 routes carry no source", () => {
  const p = pod({ addrs: [addr(2, "192.0.2.10/24"), addr(2, "2001:db8::a/64")] });
  const h = host({
    addrs: [addr(2, "203.0.113.2/24"), addr(2, "2001:db8:1::2/64")],
    sourceToward: { "192.0.2.10": "203.0.113.2", "2001:db8::a": "2001:db8:1::2" },
  });
  const plan = planAdd(
    input({ pod: p, host: h, settings: settings({ serviceCIDR: ["198.18.0.0/24", "2001:db8:5::/112"] }) }),
  );
  assert.deepEqual(plan.families, [4, 6]);
  assert.deepEqual(of(plan.ops, "iptables.add").map((o) => o.rule.family), [4, 4, 4, 6, 6, 6]);
  assert.deepEqual(routesIn(plan.ops, MARK_TABLE).map((r) => [r.dst, r.gw, r.src]), [
    ["0.0.0.0/0", "203.0.113.2", "192.0.2.10"],
    ["::/0", "2001:db8:1::2", undefined],
  ]);
  const v6hijack = routesIn(plan.ops, RT_TABLE.main).find((r) => r.dst === "2001:db8:5::/112");
  assert.deepEqual([v6hijack?.gw, v6hijack?.src], ["2001:db8:1::2", undefined]);
  assert.equal(of(plan.ops, "rule.add").filter((o) => o.ns === "host").length, 2);
});

Deno.test("a hijacked CIDR of a family the NIC lacks is skipped; one without a node address is noted", () => {
  const plan = planAdd(input({ settings: settings({ serviceCIDR: ["2001:db8:5::/112"] }) }));
  assert.equal(routesIn(plan.ops, RT_TABLE.main).some((r) => r.family === 6), false);
  const noNode = planAdd(input({ host: host({ addrs: [], sourceToward: {} }) }));
  assert.ok(noNode.notes.some((n) => n.includes("no IPv4 node address")));
});

Deno.test("underlay later NIC: table = UP links + 98, host and hijack routes in it, no pod neighbours", () => {
  const cid = "0123456789abcdef0123";
  const plan = planAdd(input({ ifName: "net1", pod: podWithNet1(), host: hostWithVeth(cid) }));
  assert.deepEqual([plan.mode, plan.firstInvoke, plan.table, plan.podVeth], [
    "underlay",
    false,
    101,
    "veth0",
  ]);
  assert.deepEqual(of(plan.ops, "link.veth"), []);
  assert.deepEqual(of(plan.ops, "neigh.add").map((o) => [o.ns, o.neigh.dst, o.neigh.lladdr]), [
    ["host", "198.51.100.5", "02:bb:00:00:00:01"],
  ]);
  assert.deepEqual(routesIn(plan.ops, 101).slice(0, 4).map((r) => [r.dst, r.dev]), [
    ["203.0.113.2/32", "veth0"],
    ["198.18.128.0/24", "veth0"],
    ["198.18.0.0/24", "veth0"],
    ["169.254.0.0/16", "veth0"],
  ]);
  assert.deepEqual(routesIn(plan.ops, RT_TABLE.main), []);
  assert.deepEqual(of(plan.ops, "iptables.add"), []);
});

Deno.test("tunePodRoutes: a later NIC's routes move to its table; its subnet stays in main; rules by source", () => {
  const cid = "0123456789abcdef0123";
  const plan = planAdd(input({ ifName: "net1", pod: podWithNet1(), host: hostWithVeth(cid) }));
  const tune = plan.ops.filter((o) => o.step === "tune-routes");
  assert.deepEqual(of(tune, "rule.add").map((o) => o.rule), [
    { family: 4, priority: SOURCE_RULE_PRIORITY, table: 101, src: "198.51.100.5/32" },
  ]);
  // Copies: direct route first, then gateway routes, the default last; then the removals from main.
  assert.deepEqual(
    tune.filter((o) => o.kind !== "rule.add").map((
      o,
    ) => [
      o.kind,
      (o as { route: { dst: string; table: number } }).route.dst,
      (o as { route: { table: number } }).route.table,
    ]),
    [
      ["route.add", "198.51.100.0/24", 101],
      ["route.add", "198.19.7.0/24", 101],
      ["route.add", "0.0.0.0/0", 101],
      ["route.del", "198.19.7.0/24", 254],
      ["route.del", "0.0.0.0/0", 254],
    ],
  );
  const moved = of(tune, "route.add").find((o) => o.route.dst === "0.0.0.0/0");
  assert.deepEqual(moved?.route, {
    family: 4,
    dst: "0.0.0.0/0",
    table: 101,
    dev: "net1",
    scope: 0,
    protocol: RTPROT.boot,
    gw: "198.51.100.1",
    metric: 10,
  });
  // eth0 keeps the default route in main.
  assert.equal(plan.ops.some((o) => o.kind === "route.del" && o.route.dev === "eth0"), false);
});

Deno.test("tunePodRoutes=false: a later NIC's routes stay in main", () => {
  const plan = planAdd(input({
    ifName: "net1",
    pod: podWithNet1(),
    host: hostWithVeth("0123456789abcdef0123"),
    settings: settings({ tunePodRoutes: false }),
  }));
  assert.equal(plan.ops.some((o) => o.step === "tune-routes"), false);
});

Deno.test("podDefaultRouteNic = this NIC: the old default NIC's routes move out of main, with rules for its IPs", () => {
  const plan = planAdd(input({
    ifName: "net1",
    pod: podWithNet1(),
    host: hostWithVeth("0123456789abcdef0123"),
    settings: settings({ podDefaultRouteNic: "net1" }),
  }));
  const tune = plan.ops.filter((o) => o.step === "tune-routes");
  assert.deepEqual(of(tune, "rule.add").map((o) => o.rule.src), ["192.0.2.10/32"]);
  assert.deepEqual(of(tune, "route.del").map((o) => [o.route.dst, o.route.dev]), [["0.0.0.0/0", "eth0"]]);
  assert.equal(of(tune, "route.del").some((o) => o.route.dev === "net1"), false);
});

Deno.test("podDefaultRouteNic naming a NIC not attached yet leaves the default where it is (no error)", () => {
  const plan = planAdd(input({
    ifName: "net1",
    pod: podWithNet1(),
    host: hostWithVeth("0123456789abcdef0123"),
    settings: settings({ podDefaultRouteNic: "net2" }),
  }));
  assert.ok(plan.notes.some((n) => n.includes("net2")));
  assert.deepEqual(of(plan.ops, "route.del").map((o) => o.route.dev), ["net1", "net1"]);
});

Deno.test("tunePodRoutes: with no default route on another NIC nothing moves", () => {
  const p = podWithNet1();
  p.routes = p.routes.filter((r) => !(r.dst === "0.0.0.0/0" && r.ifindex === 2));
  const plan = planAdd(input({ ifName: "net1", pod: p, host: hostWithVeth("0123456789abcdef0123") }));
  assert.equal(plan.ops.some((o) => o.step === "tune-routes"), false);
  assert.ok(plan.notes.some((n) => n.startsWith("tunePodRoutes skipped")));
});

Deno.test("IPv6: only this NIC's nexthop leaves a multipath default route", () => {
  const p = pod({
    links: [link(1, "lo"), link(2, "eth0"), link(3, POD_VETH, { kind: "veth", link: 9 }), link(4, "net1")],
    addrs: [addr(2, "2001:db8::a/64"), addr(4, "2001:db8:2::5/64")],
    routes: [
      route("2001:db8:2::/64", { ifindex: 4, protocol: RTPROT.kernel, metric: 256 }),
      route("fe80::/64", { ifindex: 4, protocol: RTPROT.kernel, metric: 256 }),
      route("default", {
        family: 6,
        metric: 1024,
        multipath: [{ ifindex: 2, gw: "2001:db8::1" }, { ifindex: 4, gw: "2001:db8:2::1" }],
      }),
    ],
  });
  const h = host({
    links: [link(1, "lo"), link(2, "ens192"), link(9, "veth0123456789a", { kind: "veth" })],
    addrs: [addr(2, "2001:db8:1::2/64")],
    sourceToward: {},
  });
  const plan = planAdd(input({ ifName: "net1", pod: p, host: h }));
  const tune = plan.ops.filter((o) => o.step === "tune-routes");
  assert.deepEqual(
    tune.filter((o) => o.kind !== "rule.add").map((
      o,
    ) => [
      o.kind,
      (o as { route: { dst: string; gw?: string; table: number } }).route.dst,
      (o as { route: { gw?: string } }).route.gw,
      (o as { route: { table: number } }).route.table,
    ]),
    [
      ["route.add", "2001:db8:2::/64", undefined, 101],
      ["route.add", "::/0", "2001:db8:2::1", 101],
      ["route.del", "::/0", "2001:db8:2::1", 254],
    ],
  );
});

Deno.test("underlay later NIC without veth0 (first NIC without coordinator) is refused", () => {
  const p = podWithNet1();
  p.links = p.links.filter((l) => l.name !== POD_VETH);
  assert.throws(
    () => planAdd(input({ ifName: "net1", pod: p, settings: settings({ mode: "underlay" }) })),
    PlanError,
  );
});

Deno.test("auto mode: eth0 is underlay; a later NIC is underlay when veth0 exists, else overlay", () => {
  assert.equal(planAdd(input()).mode, "underlay");
  assert.equal(
    planAdd(input({ ifName: "net1", pod: podWithNet1(), host: hostWithVeth("0123456789abcdef0123") })).mode,
    "underlay",
  );
  assert.equal(planAdd(overlayInput()).mode, "overlay");
});

function overlayInput(o: { netCount?: number; defaultNic?: string } = {}) {
  const links = [
    link(1, "lo"),
    link(2, "eth0", { kind: "veth", link: 7, linkNetnsId: 0, mac: "02:00:00:00:00:e0" }),
    link(4, "net1", { kind: "macvlan" }),
  ];
  const addrs = [addr(2, "198.18.128.5/32"), addr(4, "198.51.100.5/24")];
  const routes = [
    route("169.254.1.1/32", { ifindex: 2 }),
    route("default", { ifindex: 2, gw: "169.254.1.1" }),
    route("198.51.100.0/24", { ifindex: 4, protocol: RTPROT.kernel, src: "198.51.100.5" }),
    route("default", { ifindex: 4, gw: "198.51.100.1", metric: 5 }),
  ];
  if (o.netCount === 2) {
    links.push(link(5, "net2", { kind: "macvlan" }));
    addrs.push(addr(5, "203.0.113.77/24"));
  }
  return input({
    ifName: o.netCount === 2 ? "net2" : "net1",
    pod: pod({ links, addrs, routes }),
    host: host({
      links: [
        link(1, "lo"),
        link(2, "ens192"),
        link(7, "cali0a1b2c", { kind: "veth", mac: "ee:ee:ee:ee:ee:ee" }),
      ],
      sourceToward: { "198.18.128.5": "203.0.113.2", "198.51.100.5": "203.0.113.2" },
    }),
    settings: settings({ podDefaultRouteNic: o.defaultNic ?? "" }),
  });
}

Deno.test("overlay first NIC: the overlay veth carries node and hijack routes in main; no marks; routes tuned", () => {
  const plan = planAdd(overlayInput());
  assert.deepEqual([plan.mode, plan.firstInvoke, plan.table, plan.podVeth, plan.hostVeth], [
    "overlay",
    true,
    101,
    "eth0",
    "cali0a1b2c",
  ]);
  assert.deepEqual(of(plan.ops, "link.veth"), []);
  assert.deepEqual(of(plan.ops, "iptables.add"), []);
  assert.deepEqual(of(plan.ops, "neigh.add").map((o) => [o.ns, o.neigh.dev, o.neigh.dst, o.neigh.lladdr]), [
    ["host", "cali0a1b2c", "198.51.100.5", "02:00:00:00:00:e0"],
    ["pod", "eth0", "203.0.113.2", "ee:ee:ee:ee:ee:ee"],
  ]);
  assert.deepEqual(routesIn(plan.ops, RT_TABLE.main).map((r) => [r.dst, r.dev]), [
    ["203.0.113.2/32", "eth0"],
    ["198.18.128.0/24", "eth0"],
    ["198.18.0.0/24", "eth0"],
    ["169.254.0.0/16", "eth0"],
  ]);
  assert.deepEqual(of(plan.ops, "rule.add").filter((o) => o.ns === "pod").map((o) => o.rule.src), [
    "198.51.100.5/32",
  ]);
  assert.deepEqual(of(plan.ops, "route.del").map((o) => [o.route.dst, o.route.dev]), [["0.0.0.0/0", "net1"]]);
});

Deno.test("overlay later NIC: table = 99 + UP links, and no node or hijack routes in it (#5682)", () => {
  const plan = planAdd(overlayInput({ netCount: 2 }));
  assert.deepEqual([plan.firstInvoke, plan.table], [false, 102]);
  assert.equal(plan.ops.some((o) => o.step === "host-routes" || o.step === "hijack-routes"), false);
});

Deno.test("#3683: podDefaultRouteNic=net1 in overlay: eth0's default moves to a table chosen by eth0's address", () => {
  const plan = planAdd(overlayInput({ defaultNic: "net1" }));
  const tune = plan.ops.filter((o) => o.step === "tune-routes");
  assert.deepEqual(of(tune, "rule.add").map((o) => [o.rule.src, o.rule.table]), [["198.18.128.5/32", 101]]);
  assert.deepEqual(of(tune, "route.add").map((o) => [o.route.dst, o.route.gw, o.route.dev, o.route.table]), [
    ["169.254.1.1/32", undefined, "eth0", 101],
    ["0.0.0.0/0", "169.254.1.1", "eth0", 101],
  ]);
  assert.deepEqual(of(tune, "route.del").map((o) => [o.route.dst, o.route.dev, o.route.table]), [[
    "0.0.0.0/0",
    "eth0",
    254,
  ]]);
});

Deno.test("overlay mode is refused on the first NIC, and when veth0 shows the pod is underlay", () => {
  assert.throws(() => planAdd(input({ settings: settings({ mode: "overlay" }) })), /first NIC/);
  const underlayPod = podWithNet1();
  assert.throws(
    () => planAdd(input({ ifName: "net1", pod: underlayPod, settings: settings({ mode: "overlay" }) })),
    /veth0 exists/,
  );
});

Deno.test("a table already selected by another NIC's addresses is not reused (#3873)", () => {
  const p = podWithNet1();
  p.rules = [...MAIN_RULES, rule({ priority: 1001, table: 101, src: "203.0.113.77/32" })];
  const plan = planAdd(input({ ifName: "net1", pod: p, host: hostWithVeth("0123456789abcdef0123") }));
  assert.equal(plan.table, 102);
});

Deno.test("policyRoutes go through this NIC: in main for the underlay first NIC, else in its table", () => {
  const s = settings({
    policyRoutes: [{ family: 4, dst: "198.19.50.0/24", gw: "192.0.2.254" }, {
      family: 6,
      dst: "2001:db8:9::/48",
      gw: "2001:db8::fe",
    }],
  });
  const first = planAdd(input({ settings: s }));
  assert.deepEqual(
    of(first.ops, "route.add").filter((o) => o.step === "policy-routes").map((
      o,
    ) => [o.route.dst, o.route.gw, o.route.dev, o.route.table]),
    [
      ["198.19.50.0/24", "192.0.2.254", "eth0", 254],
    ],
  );
  const later = planAdd(
    input({ settings: s, ifName: "net1", pod: podWithNet1(), host: hostWithVeth("0123456789abcdef0123") }),
  );
  assert.deepEqual(
    of(later.ops, "route.add").filter((o) => o.step === "policy-routes").map((
      o,
    ) => [o.route.dev, o.route.table]),
    [
      ["net1", 101],
    ],
  );
});

Deno.test("a repeated ADD reuses the veth pair it made; a veth0 paired with someone else is refused", () => {
  const cid = "0123456789abcdef0123";
  const p = pod({ links: [link(1, "lo"), link(2, "eth0"), link(3, POD_VETH, { kind: "veth", link: 9 })] });
  const again = planAdd(input({ pod: p, host: hostWithVeth(cid) }));
  assert.deepEqual(of(again.ops, "link.veth"), []);
  assert.equal(again.hostVeth, "veth0123456789a");
  const other = host({ links: [link(1, "lo"), link(9, "vethffffffffff0", { kind: "veth" })] });
  assert.throws(() => planAdd(input({ pod: p, host: other })), /not paired/);
});

Deno.test("a host veth left by an earlier attempt of the same container is deleted before the new pair", () => {
  const plan = planAdd(input({ host: hostWithVeth("0123456789abcdef0123") }));
  assert.deepEqual(plan.ops.slice(0, 2).map((o) => o.kind), ["link.del", "link.veth"]);
});

Deno.test("a NIC without an address, or a missing NIC, is refused before anything is planned", () => {
  assert.throws(() => planAdd(input({ pod: pod({ addrs: [] }) })), /has no IP address/);
  assert.throws(() => planAdd(input({ ifName: "net9" })), /does not exist/);
});

Deno.test("random MACs are locally administered unicast", () => {
  for (let i = 0; i < 50; i++) {
    const first = parseInt(randomMac().slice(0, 2), 16);
    assert.equal(first & 1, 0);
    assert.equal(first & 2, 2);
  }
  assert.equal(randomMac(Uint8Array.of(0xff, 1, 2, 3, 4, 5)), "fe:01:02:03:04:05");
});

Deno.test("an up NIC is not set up again", () => {
  assert.equal(planAdd(input()).ops.some((o) => o.step === "link-up"), false);
  assert.equal(IFF_UP, 1);
});
