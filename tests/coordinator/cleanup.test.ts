// DEL without a record of the ADD (planCleanup) and CHECK (missingObjects): what they find to remove, and
// what they report as gone.

import assert from "node:assert/strict";
import { missingObjects, type NsView, planCleanup } from "../../src/coordinator/cleanup.ts";
import { markRules, planAdd, POD_VETH } from "../../src/coordinator/plan.ts";
import { inverse } from "../../src/net/ops.ts";
import { NUD_PERMANENT, RT_TABLE } from "../../src/net/types.ts";
import { addr, host, input, link, MAIN_RULES, neigh, pod, route, rule, settings } from "./fixtures.ts";

const cid = "0123456789abcdef0123";

Deno.test("cleanup without a record: the host veth, the rule-table routes and legacy rules of the pod's IPs", () => {
  const h = host({
    links: [link(1, "lo"), link(2, "ens192"), link(9, "veth0123456789a")],
    routes: [
      route("192.0.2.10/32", { table: 500, ifindex: 9 }),
      route("192.0.2.10/32", { table: 500, ifindex: 2 }),
      route("192.0.2.99/32", { table: 500, ifindex: 2 }),
    ],
    rules: [
      ...MAIN_RULES,
      rule({ priority: 1000, table: 500 }),
      rule({ priority: 32000, table: 500, dst: "192.0.2.10/32" }),
    ],
  });
  const ops = planCleanup({
    settings: settings(),
    containerId: cid,
    ifName: "eth0",
    podIPs: ["192.0.2.10"],
    host: h,
  });
  assert.deepEqual(ops, [
    { ns: "host", kind: "link.del", name: "veth0123456789a" },
    { ns: "host", kind: "route.del", route: { family: 4, dst: "192.0.2.10/32", table: 500, dev: "ens192" } },
    { ns: "host", kind: "rule.del", rule: { family: 4, priority: 32000, table: 500, dst: "192.0.2.10/32" } },
    { ns: "host", kind: "rule.del", rule: { family: 4, priority: 1000, table: 500 }, ifTableEmpty: true },
  ]);
});

Deno.test("cleanup without a record: in the pod, the source rules of the NIC and the first NIC's marks", () => {
  const p = pod({
    links: [link(1, "lo"), link(2, "eth0"), link(3, POD_VETH, { kind: "veth" })],
    rules: [
      ...MAIN_RULES,
      rule({ priority: 1000, table: 100, fwmark: 1, fwmask: 0xffffffff }),
      rule({ priority: 1001, table: 101, src: "192.0.2.10/32" }),
      rule({ priority: 1001, table: 102, src: "198.51.100.5/32" }),
    ],
  });
  const ops = planCleanup({
    settings: settings(),
    containerId: cid,
    ifName: "eth0",
    podIPs: ["192.0.2.10"],
    host: host(),
    pod: p,
  });
  assert.deepEqual(ops.filter((o) => o.ns === "pod").map((o) => o.kind), [
    "rule.del",
    "iptables.del",
    "iptables.del",
    "iptables.del",
    "rule.del",
  ]);
  assert.deepEqual(
    ops.filter((o) => o.kind === "iptables.del").map((o) => o.kind === "iptables.del" && o.rule),
    markRules(4),
  );
});

Deno.test("cleanup in overlay mode removes the permanent host neighbours on the overlay veth only", () => {
  const p = pod({ links: [link(1, "lo"), link(2, "eth0", { kind: "veth", link: 7 }), link(4, "net1")] });
  const h = host({
    links: [link(1, "lo"), link(2, "ens192"), link(7, "cali0a1b2c")],
    neighs: [
      neigh(7, "198.51.100.5", "02:00:00:00:00:04", NUD_PERMANENT),
      neigh(2, "198.51.100.5", "02:00:00:00:00:09", 2),
    ],
  });
  const ops = planCleanup({
    settings: settings(),
    containerId: cid,
    ifName: "net1",
    podIPs: ["198.51.100.5"],
    host: h,
    pod: p,
  });
  assert.deepEqual(ops.filter((o) => o.kind === "neigh.del"), [
    { ns: "host", kind: "neigh.del", neigh: { family: 4, dev: "cali0a1b2c", dst: "198.51.100.5" } },
  ]);
});

function view(o: Partial<NsView> = {}): NsView {
  return { links: [], addrs: [], routes: [], rules: [], neighs: [], sysctls: {}, ...o };
}

Deno.test("CHECK: nothing missing right after an ADD, each missing object named once it is gone", () => {
  const plan = planAdd(input({ settings: settings({ podMACPrefix: "0a:1b" }) }));
  const undo = plan.ops.map(inverse).filter((o) => o !== undefined);
  const podLinks = [link(1, "lo"), link(2, "eth0", { mac: "0a:1b:c0:00:02:0a" }), link(3, "veth0")];
  const hostLinks = [link(1, "lo"), link(2, "ens192"), link(9, "veth0123456789a")];
  const after = {
    host: view({
      links: hostLinks,
      routes: [route("192.0.2.10/32", { table: 500, ifindex: 9 })],
      rules: [...MAIN_RULES, rule({ priority: 1000, table: 500 })],
      neighs: [neigh(9, "192.0.2.10", "02:bb:00:00:00:01", NUD_PERMANENT)],
    }),
    pod: view({
      links: podLinks,
      addrs: [addr(2, "192.0.2.10/24")],
      routes: [
        route("203.0.113.2/32", { ifindex: 3 }),
        ...["198.18.128.0/24", "198.18.0.0/24", "169.254.0.0/16"].map((d) =>
          route(d, { ifindex: 3, gw: "203.0.113.2" })
        ),
        route("default", { ifindex: 3, gw: "203.0.113.2", table: 100 }),
      ],
      rules: [...MAIN_RULES, rule({ priority: 1000, table: 100, fwmark: 1, fwmask: 0xffffffff })],
      neighs: [neigh(3, "203.0.113.2", "02:aa:00:00:00:01", NUD_PERMANENT)],
    }),
    iptables: () => true,
  };
  assert.deepEqual(missingObjects(undo, after), []);
  const broken = {
    ...after,
    pod: { ...after.pod, rules: MAIN_RULES, routes: after.pod.routes.filter((r) => r.table !== 100) },
    host: { ...after.host, links: hostLinks.slice(0, 2) },
    iptables: () => false,
  };
  const missing = missingObjects(undo, broken);
  assert.ok(missing.includes("link veth0123456789a on the host"), missing.join("\n"));
  assert.ok(missing.includes("rule fwmark 1 lookup 100 in the pod"), missing.join("\n"));
  assert.ok(
    missing.includes(`route 0.0.0.0/0 via 203.0.113.2 dev veth0 table ${100} in the pod`),
    missing.join("\n"),
  );
  assert.equal(missing.filter((m) => m.startsWith("iptables")).length, 3);
  assert.equal(RT_TABLE.main, 254);
});
