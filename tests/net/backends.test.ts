// The network layer against the kernel, in scratch namespaces, once per backend (netlink through libnl, and
// the iproute2 fallback): every operation is read back with the other means, and errors carry the errno.

import assert from "node:assert/strict";
import { IpRouteNs } from "../../src/net/iproute.ts";
import { NetError, NUD_PERMANENT, openNs } from "../../src/net/mod.ts";
import { BACKENDS, nsExec, scratchNamespaces } from "./helpers.ts";

for (const backend of BACKENDS) {
  Deno.test(`${backend}: a veth pair with its peer in another namespace, MACs, MTU, up, txqueuelen, delete`, async () => {
    await using s = await scratchNamespaces("nt-veth", 2);
    const host = openNs(s.paths[0], backend);
    const pod = openNs(s.paths[1], backend);
    try {
      await host.addVeth({
        name: "vh1",
        mac: "02:00:5e:00:00:01",
        mtu: 1400,
        peer: { name: "veth0", mac: "02:00:5e:00:00:02" },
      }, pod);
      await pod.setLink("veth0", { up: true, txqlen: 777 });
      await host.setLink("vh1", { up: true, mtu: 1300 });
      const shown = JSON.parse(await nsExec(s.names[1], "ip", "-j", "link", "show", "veth0"))[0];
      assert.deepEqual([shown.address, shown.mtu, shown.txqlen, shown.flags.includes("UP")], [
        "02:00:5e:00:00:02",
        1400,
        777,
        true,
      ]);
      const h = (await host.links()).find((l) => l.name === "vh1")!;
      const p = (await pod.links()).find((l) => l.name === "veth0")!;
      assert.deepEqual([h.mac, h.mtu, h.kind, p.link], ["02:00:5e:00:00:01", 1300, "veth", h.index]);
      assert.ok(p.linkNetnsId !== undefined, "the peer is in another namespace");
      await pod.setLink("veth0", { mac: "02:00:5e:00:00:03" });
      assert.equal((await pod.links()).find((l) => l.name === "veth0")?.mac, "02:00:5e:00:00:03");
      await host.delLink("vh1");
      assert.deepEqual((await pod.links()).map((l) => l.name), ["lo"]);
    } finally {
      host.close();
      pod.close();
    }
  });

  Deno.test(`${backend}: addresses, routes with table/scope/src/gateway, and a route lookup`, async () => {
    await using s = await scratchNamespaces("nt-route", 1);
    await nsExec(s.names[0], "ip", "link", "add", "name", "d0", "type", "veth", "peer", "name", "d1");
    await nsExec(s.names[0], "ip", "link", "set", "d0", "up");
    await nsExec(s.names[0], "ip", "link", "set", "d1", "up");
    const ns = openNs(s.paths[0], backend);
    try {
      await ns.addAddr("d0", "192.0.2.5/24");
      await ns.addAddr("d0", "2001:db8::5/64");
      await ns.addRoute({ family: 4, dst: "198.51.100.0/24", gw: "192.0.2.1", dev: "d0", table: 101 });
      await ns.addRoute({
        family: 4,
        dst: "203.0.113.9/32",
        dev: "d0",
        table: 254,
        scope: 253,
        src: "192.0.2.5",
      });
      await ns.addRoute({ family: 6, dst: "2001:db8:9::/48", gw: "2001:db8::1", dev: "d0", table: 1234567 });
      const table101 = await nsExec(s.names[0], "ip", "route", "show", "table", "101");
      assert.equal(table101.trim(), "198.51.100.0/24 via 192.0.2.1 dev d0");
      const main = await nsExec(s.names[0], "ip", "route", "show", "203.0.113.9");
      assert.equal(main.trim(), "203.0.113.9 dev d0 scope link src 192.0.2.5");
      const big = await ns.routes(6, 1234567);
      assert.deepEqual(big.map((r) => [r.dst, r.gw, r.table]), [["2001:db8:9::/48", "2001:db8::1", 1234567]]);
      const addrs = (await ns.addrs()).filter((a) => a.scope === 0).map((a) => `${a.address}/${a.prefixLen}`);
      assert.deepEqual(addrs.sort(), ["192.0.2.5/24", "2001:db8::5/64"]);
      const got = await ns.routeGet("203.0.113.9");
      assert.equal(got?.src, "192.0.2.5");
      assert.equal(await ns.routeGet("198.18.1.1"), undefined, "no route: undefined, not an error");
      await ns.delRoute({ family: 4, dst: "198.51.100.0/24", gw: "192.0.2.1", dev: "d0", table: 101 });
      await ns.delRoute({ family: 4, dst: "203.0.113.9/32", table: 254 });
      assert.equal(
        (await nsExec(s.names[0], "ip", "route", "show", "table", "all", "203.0.113.9")).trim(),
        "",
      );
      await ns.delAddr("d0", "192.0.2.5/24");
      assert.equal((await ns.addrs(4)).filter((a) => a.scope === 0).length, 0);
    } finally {
      ns.close();
    }
  });

  Deno.test(`${backend}: rules by priority, table, fwmark, source and destination`, async () => {
    await using s = await scratchNamespaces("nt-rule", 1);
    const ns = openNs(s.paths[0], backend);
    try {
      await ns.addRule({ family: 4, priority: 1000, table: 100, fwmark: 1, fwmask: 0xffffffff });
      await ns.addRule({ family: 4, priority: 1001, table: 101, src: "192.0.2.5/32" });
      await ns.addRule({ family: 6, priority: 1001, table: 102, src: "2001:db8::5/128" });
      await ns.addRule({ family: 4, priority: 32000, table: 500, dst: "198.51.100.7/32" });
      const text = await nsExec(s.names[0], "ip", "rule", "show");
      assert.match(text, /^1000:\s+from all fwmark 0x1 lookup 100$/m);
      assert.match(text, /^1001:\s+from 192\.0\.2\.5 lookup 101$/m);
      assert.match(text, /^32000:\s+from all to 198\.51\.100\.7 lookup 500$/m);
      const rules = await ns.rules();
      assert.deepEqual(rules.filter((r) => r.table === 102).map((r) => [r.family, r.src, r.priority]), [[
        6,
        "2001:db8::5/128",
        1001,
      ]]);
      assert.deepEqual(
        rules.filter((r) => r.fwmark !== undefined).map((r) => [r.fwmark, r.fwmask, r.table]),
        [[1, 0xffffffff, 100]],
      );
      await assert.rejects(
        () => ns.addRule({ family: 4, priority: 1001, table: 101, src: "192.0.2.5/32" }),
        (e: unknown) => e instanceof NetError && e.exists,
      );
      for (
        const r of [
          { family: 4 as const, priority: 1000, table: 100, fwmark: 1 },
          { family: 4 as const, priority: 1001, table: 101, src: "192.0.2.5/32" },
          { family: 6 as const, priority: 1001, table: 102, src: "2001:db8::5/128" },
          { family: 4 as const, priority: 32000, table: 500, dst: "198.51.100.7/32" },
        ]
      ) await ns.delRule(r);
      assert.deepEqual((await ns.rules()).map((r) => r.priority).sort(), [0, 0, 32766, 32766, 32767]);
      await assert.rejects(
        () => ns.delRule({ family: 4, priority: 1001, table: 101, src: "192.0.2.5/32" }),
        (e: unknown) => e instanceof NetError && e.gone,
      );
    } finally {
      ns.close();
    }
  });

  Deno.test(`${backend}: permanent neighbours are added, replaced and deleted`, async () => {
    await using s = await scratchNamespaces("nt-neigh", 1);
    await nsExec(s.names[0], "ip", "link", "add", "name", "n0", "type", "veth", "peer", "name", "n1");
    const ns = openNs(s.paths[0], backend);
    try {
      await ns.addNeigh({
        family: 4,
        dev: "n0",
        dst: "192.0.2.9",
        lladdr: "02:00:5e:00:01:01",
        state: NUD_PERMANENT,
      });
      await ns.addNeigh({
        family: 4,
        dev: "n0",
        dst: "192.0.2.9",
        lladdr: "02:00:5e:00:01:02",
        state: NUD_PERMANENT,
      });
      await ns.addNeigh({
        family: 6,
        dev: "n0",
        dst: "2001:db8::9",
        lladdr: "02:00:5e:00:01:03",
        state: NUD_PERMANENT,
      });
      const shown = await nsExec(s.names[0], "ip", "neigh", "show", "dev", "n0");
      assert.match(shown, /192\.0\.2\.9 lladdr 02:00:5e:00:01:02 PERMANENT/);
      assert.match(shown, /2001:db8::9 lladdr 02:00:5e:00:01:03 PERMANENT/);
      assert.equal((await ns.neighs(4)).filter((n) => n.dst === "192.0.2.9").length, 1);
      await ns.delNeigh({ family: 4, dev: "n0", dst: "192.0.2.9" });
      await assert.rejects(
        () => ns.delNeigh({ family: 4, dev: "n0", dst: "192.0.2.9" }),
        (e: unknown) => e instanceof NetError && e.gone,
      );
      assert.deepEqual((await ns.neighs()).map((n) => n.dst), ["2001:db8::9"]);
    } finally {
      ns.close();
    }
  });

  Deno.test(`${backend}: sysctls are read and written inside the namespace, not in the process's own`, async () => {
    await using s = await scratchNamespaces("nt-sysctl", 1);
    const ns = openNs(s.paths[0], backend);
    const own = await Deno.readTextFile("/proc/sys/net/ipv4/conf/all/rp_filter");
    try {
      const value = own.trim() === "2" ? "1" : "2";
      await ns.writeSysctl("net.ipv4.conf.all.rp_filter", value);
      assert.equal(await ns.readSysctl("net.ipv4.conf.all.rp_filter"), value);
      assert.equal((await nsExec(s.names[0], "cat", "/proc/sys/net/ipv4/conf/all/rp_filter")).trim(), value);
      assert.equal(await Deno.readTextFile("/proc/sys/net/ipv4/conf/all/rp_filter"), own);
      assert.equal(await ns.readSysctl("net.ipv4.conf.nosuchlink.rp_filter"), undefined);
      await assert.rejects(() => ns.writeSysctl("net.ipv4.conf.nosuchlink.rp_filter", "1"), NetError);
      await assert.rejects(() => ns.readSysctl("net..ipv4"), /invalid sysctl key/);
    } finally {
      ns.close();
    }
  });

  Deno.test(`${backend}: errors carry the errno: EEXIST, ENODEV, and "not supported" for a missing link type`, async () => {
    await using s = await scratchNamespaces("nt-err", 1);
    await nsExec(s.names[0], "ip", "link", "add", "name", "e0", "type", "veth", "peer", "name", "e1");
    const ns = openNs(s.paths[0], backend);
    try {
      await ns.addAddr("e0", "192.0.2.5/24");
      await assert.rejects(
        () => ns.addAddr("e0", "192.0.2.5/24"),
        (e: unknown) => e instanceof NetError && e.code === "EEXIST",
      );
      await assert.rejects(
        () => ns.setLink("nope0", { up: true }),
        (e: unknown) => e instanceof NetError && e.gone,
      );
      await assert.rejects(
        () => ns.delRoute({ family: 4, dst: "198.51.100.0/24", table: 254 }),
        (e: unknown) => e instanceof NetError && e.gone,
      );
      // This kernel has no VLAN support: the kernel's answer comes back as EOPNOTSUPP.
      const vlan = await ns.addVlan({ name: "e0.100", parent: "e0", vlanId: 100 }).then(
        () => undefined,
        (e) => e,
      );
      if (vlan === undefined) {
        console.log(
          "  (this kernel supports VLANs; the not-supported path is exercised on kernels without 8021q)",
        );
        await ns.delLink("e0.100");
      } else {
        assert.ok(vlan instanceof NetError && vlan.errno === 95, String(vlan));
        assert.match(vlan.message, /create VLAN e0\.100 \(id 100\) on e0: Operation not supported/);
      }
    } finally {
      ns.close();
    }
  });
}

Deno.test("netlink: a namespace handle works after the thread went home; async work never runs inside it", async () => {
  await using s = await scratchNamespaces("nt-thread", 1);
  const own = await Deno.readLink("/proc/thread-self/ns/net");
  const pod = openNs(s.paths[0], "netlink");
  try {
    await pod.writeSysctl("net.ipv4.conf.all.forwarding", "1");
    // Still home: this thread's namespace, and a child spawned now, are the process's own.
    assert.equal(await Deno.readLink("/proc/thread-self/ns/net"), own);
    const child = await new Deno.Command("readlink", { args: ["/proc/self/ns/net"], stdout: "piped" })
      .output();
    assert.equal(new TextDecoder().decode(child.stdout).trim(), own);
    // The socket opened inside keeps answering for the pod's namespace.
    assert.deepEqual((await pod.links()).map((l) => l.name), ["lo"]);
  } finally {
    pod.close();
  }
});

Deno.test("iproute: a command failure names the command and keeps its message", async () => {
  const ns = new IpRouteNs();
  await assert.rejects(
    () => ns.setLink("nosuchlink9", { up: true }),
    (e: unknown) => e instanceof NetError && e.gone && /ip link set dev nosuchlink9 up/.test(e.message),
  );
});
