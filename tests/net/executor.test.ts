// Applying plans to real namespaces: a failed step takes back everything done before it (both backends),
// objects that were already there are neither reported as made nor removed, and the layer falls back to
// iproute2 when libnl cannot be loaded.

import assert from "node:assert/strict";
import {
  ApplyError,
  applyPlan,
  NetError,
  NUD_PERMANENT,
  type Op,
  openNs,
  undoAll,
} from "../../src/net/mod.ts";
import { BACKENDS, nsExec, scratchNamespaces, snapshot } from "./helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

function plan(failing: boolean): Op[] {
  const ops: Op[] = [
    {
      ns: "host",
      kind: "link.veth",
      veth: {
        name: "vhx",
        mac: "02:00:5e:00:10:01",
        mtu: 1500,
        peer: { name: "veth0", mac: "02:00:5e:00:10:02" },
      },
      peerNs: "pod",
    },
    { ns: "pod", kind: "link.set", name: "veth0", change: { up: true } },
    { ns: "host", kind: "link.set", name: "vhx", change: { up: true } },
    { ns: "pod", kind: "link.set", name: "lo", change: { txqlen: 4321 }, prev: { txqlen: 1000 } },
    { ns: "pod", kind: "addr.add", dev: "veth0", cidr: "192.0.2.7/24" },
    {
      ns: "pod",
      kind: "route.add",
      route: { family: 4, dst: "203.0.113.2/32", dev: "veth0", table: 254, scope: 253 },
    },
    {
      ns: "pod",
      kind: "route.add",
      route: { family: 4, dst: "198.18.0.0/24", gw: "203.0.113.2", dev: "veth0", table: 254 },
    },
    { ns: "pod", kind: "rule.add", rule: { family: 4, priority: 1000, table: 100, fwmark: 1 } },
    { ns: "pod", kind: "rule.add", rule: { family: 4, priority: 1001, table: 101, src: "192.0.2.7/32" } },
    { ns: "host", kind: "rule.add", rule: { family: 4, priority: 1000, table: 500 }, ifTableEmpty: true },
    {
      ns: "host",
      kind: "route.add",
      route: { family: 4, dst: "192.0.2.7/32", dev: "vhx", table: 500, scope: 253 },
    },
    {
      ns: "host",
      kind: "neigh.add",
      neigh: { family: 4, dev: "vhx", dst: "192.0.2.7", lladdr: "02:00:5e:00:10:02", state: NUD_PERMANENT },
    },
    { ns: "pod", kind: "sysctl.set", key: "net.ipv4.conf.all.rp_filter", value: "2", prev: "0" },
    {
      ns: "pod",
      kind: "iptables.add",
      rule: { family: 4, table: "mangle", chain: "OUTPUT", args: ["-j", "CONNMARK", "--restore-mark"] },
    },
  ];
  if (failing) {
    // No route to this gateway: the kernel refuses (ENETUNREACH).
    ops.push({
      ns: "pod",
      kind: "route.add",
      route: { family: 4, dst: "198.19.0.0/16", gw: "198.51.100.1", dev: "veth0", table: 254 },
    });
  }
  return ops;
}

for (const backend of BACKENDS) {
  Deno.test(`${backend}: a failing step rolls back every earlier step, leaving both namespaces as they were`, async () => {
    await using s = await scratchNamespaces("ex-rb", 2);
    await nsExec(s.names[1], "sh", "-c", "echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter");
    const before = [await snapshot(s.paths[0], s.names[0]), await snapshot(s.paths[1], s.names[1])];
    const host = openNs(s.paths[0], backend);
    const pod = openNs(s.paths[1], backend);
    try {
      const err = await applyPlan({ host, pod }, plan(true)).then(() => undefined, (e) => e);
      assert.ok(err instanceof ApplyError, String(err));
      assert.match(
        err.message,
        /cannot add route 198\.19\.0\.0\/16 via 198\.51\.100\.1 dev veth0 table 254 in the pod/,
      );
      assert.match(err.message, /everything done before it was rolled back/);
      assert.ok(err.cause instanceof NetError);
      assert.deepEqual(await snapshot(s.paths[0], s.names[0]), before[0]);
      assert.deepEqual(await snapshot(s.paths[1], s.names[1]), before[1]);
      assert.equal((await nsExec(s.names[1], "cat", "/proc/sys/net/ipv4/conf/all/rp_filter")).trim(), "0");
    } finally {
      host.close();
      pod.close();
    }
  });

  Deno.test(`${backend}: the undo list takes a successful plan back completely, and again without harm`, async () => {
    await using s = await scratchNamespaces("ex-undo", 2);
    const before = [await snapshot(s.paths[0], s.names[0]), await snapshot(s.paths[1], s.names[1])];
    const host = openNs(s.paths[0], backend);
    const pod = openNs(s.paths[1], backend);
    try {
      const undo = await applyPlan({ host, pod }, plan(false));
      assert.equal(undo.length, plan(false).length - 2); // the two "up" changes have nothing to take back
      assert.notDeepEqual(await snapshot(s.paths[1], s.names[1]), before[1]);
      assert.deepEqual(await undoAll({ host, pod }, undo), []);
      assert.deepEqual(await snapshot(s.paths[0], s.names[0]), before[0]);
      assert.deepEqual(await snapshot(s.paths[1], s.names[1]), before[1]);
      assert.deepEqual(
        await undoAll({ host, pod }, undo),
        [],
        "a second DEL finds everything gone and succeeds",
      );
    } finally {
      host.close();
      pod.close();
    }
  });
}

Deno.test("what already existed is not taken back, and a shared rule stays while its table is in use", async () => {
  await using s = await scratchNamespaces("ex-keep", 2);
  await nsExec(s.names[1], "ip", "rule", "add", "fwmark", "1", "lookup", "100", "pref", "1000");
  await nsExec(s.names[0], "ip", "link", "add", "name", "other", "type", "veth", "peer", "name", "other1");
  await nsExec(s.names[0], "ip", "link", "set", "other", "up");
  await nsExec(s.names[0], "ip", "route", "add", "198.51.100.9/32", "dev", "other", "table", "500");
  const host = openNs(s.paths[0], "netlink");
  const pod = openNs(s.paths[1], "netlink");
  try {
    const undo = await applyPlan({ host, pod }, plan(false));
    assert.equal(undo.some((o) => o.kind === "rule.del" && o.rule.fwmark === 1), false);
    await undoAll({ host, pod }, undo);
    assert.match(await nsExec(s.names[1], "ip", "rule", "show"), /fwmark 0x1 lookup 100/);
    // Another pod's route is still in table 500, so the host rule leading there stays.
    assert.match(await nsExec(s.names[0], "ip", "rule", "show"), /1000:\s+from all lookup 500/);
  } finally {
    host.close();
    pod.close();
  }
});

Deno.test("without a loadable libnl the layer chooses iproute2 and says why", async () => {
  // A private mount namespace where libnl-3's file is an empty file: dlopen fails as on a node without it.
  const script = `import { chooseBackend, openNs } from "${ROOT}src/net/mod.ts";
    const c = chooseBackend(); const ns = openNs(undefined, c.kind);
    console.log(JSON.stringify({ ...c, backend: ns.backend, links: (await ns.links()).length > 0 }));`;
  const lib = Deno.realPathSync("/usr/lib/x86_64-linux-gnu/libnl-3.so.200");
  const out = await new Deno.Command("unshare", {
    args: ["-m", "sh", "-c", `mount --bind /dev/null ${lib} && exec "$0" eval "$1"`, Deno.execPath(), script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const got = JSON.parse(text);
  assert.equal(got.kind, "iproute");
  assert.equal(got.backend, "iproute");
  assert.match(got.reason, /libnl cannot be loaded/);
  assert.equal(got.links, true);
});

Deno.test("SPIDERPOOL_NET_BACKEND chooses the backend; a wrong value is an error naming it", async () => {
  const run = async (value: string) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { chooseBackend } from "${ROOT}src/net/mod.ts"; console.log(JSON.stringify(chooseBackend()))`,
      ],
      env: { SPIDERPOOL_NET_BACKEND: value },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      ok: out.success,
      text: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
    };
  };
  assert.equal(JSON.parse((await run("iproute")).text).kind, "iproute");
  assert.equal(JSON.parse((await run("netlink")).text).kind, "netlink");
  const bad = await run("carrier-pigeon");
  assert.equal(bad.ok, false);
  assert.match(bad.text, /SPIDERPOOL_NET_BACKEND="carrier-pigeon" is not a backend; use netlink or iproute/);
});
