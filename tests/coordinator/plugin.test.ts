// The coordinator binary without a cluster: the configuration names the pod and service CIDRs itself, so the
// agent is not needed. Every CNI version, both network backends, rollback of a failed ADD, DEL with the
// sandbox gone or without a record, CHECK, a repeated ADD, and the errors a runtime sees.

import assert from "node:assert/strict";
import { SUPPORTED_CNI_VERSIONS } from "../../src/cni/version.ts";
import { recordPath } from "../../src/coordinator/state.ts";
import { delNetns, ip } from "../e2e/netns.ts";
import { snapshot } from "../net/helpers.ts";
import { coordinatorConf, counters, type MiniPod, miniPod, pingFrom, runCoordinator } from "./harness.ts";

const KEYS = { overlayPodCIDR: ["198.18.128.0/24"], serviceCIDR: ["198.18.0.0/24"] };

async function both(m: MiniPod): Promise<string[][]> {
  return [await snapshot(`/var/run/netns/${m.node}`, m.node), await snapshot(m.netnsPath, m.pod)];
}

function call(
  m: MiniPod,
  command: "ADD" | "DEL" | "CHECK",
  conf: Record<string, unknown>,
  backend?: "netlink" | "iproute",
) {
  return runCoordinator({
    command,
    conf,
    containerId: m.containerId,
    netns: m.netnsPath,
    pod: m.podRef,
    nodeNetns: m.node,
    backend,
  });
}

for (const version of SUPPORTED_CNI_VERSIONS) {
  Deno.test(`coordinator CNI ${version}: ADD prints prevResult unchanged, CHECK passes, DEL leaves nothing`, async () => {
    await using m = await miniPod("cv");
    const before = await both(m);
    const conf = coordinatorConf({
      cniVersion: version,
      prevResult: m.prevResultFor(version),
      keys: KEYS,
      dir: m.dir,
    });
    const add = await call(m, "ADD", conf);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    assert.deepEqual(add.json, m.prevResultFor(version));
    // The pod now reaches the node through veth0.
    const c0 = await counters(m.pod, "veth0");
    assert.ok(await pingFrom(m.pod, "203.0.113.2"), "the pod pings the node's address");
    const c1 = await counters(m.pod, "veth0");
    assert.ok(c1.tx > c0.tx && c1.rx > c0.rx, `through veth0: ${JSON.stringify([c0, c1])}`);
    if (version >= "0.4.0") {
      const check = await call(m, "CHECK", conf);
      assert.equal(check.code, 0, check.stdout);
    }
    const del = await call(m, "DEL", conf);
    assert.equal(del.code, 0, del.stdout);
    assert.deepEqual(await both(m), before);
  });
}

Deno.test("coordinator through iproute2 (SPIDERPOOL_NET_BACKEND=iproute) makes exactly what netlink makes", async () => {
  const states: string[][][] = [];
  for (const backend of ["netlink", "iproute"] as const) {
    await using m = await miniPod("cb");
    const conf = coordinatorConf({
      prevResult: m.prevResult,
      keys: { ...KEYS, podMACPrefix: "0a:1b", txQueueLen: 2000 },
      dir: m.dir,
    });
    const add = await call(m, "ADD", conf, backend);
    assert.equal(add.code, 0, add.stdout);
    const logged = await Deno.readTextFile(`${m.dir}/coordinator.log`);
    if (backend === "iproute") {
      assert.match(logged, /network changes go through iproute2: SPIDERPOOL_NET_BACKEND=iproute/);
    }
    // Random veth MACs and names differ between runs; everything else must be the same.
    const normalise = (lines: string[]) =>
      lines.map((l) =>
        l.replaceAll(m.containerId.slice(0, 11), "CID").replace(
          /([0-9a-f]{2}:){5}[0-9a-f]{2}/g,
          (mac) => mac.startsWith("0a:1b") ? mac : "MAC",
        )
      );
    states.push((await both(m)).map(normalise));
    const del = await call(m, "DEL", conf, backend);
    assert.equal(del.code, 0, del.stdout);
  }
  assert.deepEqual(states[1], states[0]);
});

Deno.test("a failing step fails the ADD with code 102 naming it, and rolls back everything before it", async () => {
  await using m = await miniPod("crb");
  const before = await both(m);
  const conf = coordinatorConf({
    prevResult: m.prevResult,
    keys: { ...KEYS, podMACPrefix: "0a:1b", policyRoutes: [{ dst: "198.19.0.0/16", gw: "198.51.100.1" }] },
    dir: m.dir,
  });
  const add = await call(m, "ADD", conf);
  assert.equal(add.code, 1);
  assert.equal(add.json?.code, 102);
  assert.match(
    String(add.json?.msg),
    /policy-routes: cannot add route 198\.19\.0\.0\/16 via 198\.51\.100\.1 dev eth0 table 254 in the pod: .*everything done before it was rolled back/,
  );
  assert.deepEqual(await both(m), before);
  await assert.rejects(() => Deno.stat(recordPath(m.containerId, "eth0")), Deno.errors.NotFound);
});

Deno.test("DEL succeeds when the pod's namespace is gone and removes the host side", async () => {
  await using m = await miniPod("cgone");
  const hostBefore = await snapshot(`/var/run/netns/${m.node}`, m.node);
  const conf = coordinatorConf({ prevResult: m.prevResult, keys: KEYS, dir: m.dir });
  assert.equal((await call(m, "ADD", conf)).code, 0);
  assert.match(await ip("-n", m.node, "rule", "show"), /from all lookup 500/);
  await delNetns(m.pod);
  const del = await call(m, "DEL", conf);
  assert.equal(del.code, 0, del.stdout);
  assert.deepEqual(await snapshot(`/var/run/netns/${m.node}`, m.node), hostBefore);
  await assert.rejects(() => Deno.stat(recordPath(m.containerId, "eth0")), Deno.errors.NotFound);
  assert.equal((await call(m, "DEL", conf)).code, 0, "a second DEL succeeds too");
});

Deno.test("DEL without the ADD's record finds the coordinator's objects by name and address", async () => {
  await using m = await miniPod("cnorec");
  const before = await both(m);
  const conf = coordinatorConf({ prevResult: m.prevResult, keys: KEYS, dir: m.dir });
  assert.equal((await call(m, "ADD", conf)).code, 0);
  await Deno.remove(recordPath(m.containerId, "eth0"));
  const del = await call(m, "DEL", conf);
  assert.equal(del.code, 0, del.stdout);
  assert.match(await Deno.readTextFile(`${m.dir}/coordinator.log`), /no record of an ADD/);
  assert.deepEqual(await both(m), before);
});

Deno.test("CHECK reports what went missing after the ADD, with code 103", async () => {
  await using m = await miniPod("cchk");
  const conf = coordinatorConf({ prevResult: m.prevResult, keys: KEYS, dir: m.dir });
  assert.equal((await call(m, "ADD", conf)).code, 0);
  await ip("-n", m.pod, "rule", "del", "fwmark", "1", "lookup", "100");
  const check = await call(m, "CHECK", conf);
  assert.equal(check.json?.code, 103, check.stdout);
  assert.match(String(check.json?.msg), /missing rule fwmark 1 lookup 100 in the pod/);
  assert.equal((await call(m, "DEL", conf)).code, 0);
});

Deno.test("a repeated ADD changes nothing and DEL still removes everything", async () => {
  await using m = await miniPod("crep");
  const before = await both(m);
  const conf = coordinatorConf({ prevResult: m.prevResult, keys: KEYS, dir: m.dir });
  assert.equal((await call(m, "ADD", conf)).code, 0);
  const once = await both(m);
  const again = await call(m, "ADD", conf);
  assert.equal(again.code, 0, again.stdout);
  assert.deepEqual(await both(m), once);
  assert.equal((await call(m, "DEL", conf)).code, 0);
  assert.deepEqual(await both(m), before);
});

Deno.test("mode disable passes prevResult through without asking the agent or touching anything", async () => {
  await using m = await miniPod("cdis");
  const before = await both(m);
  for (const mode of ["disable", "disabled"]) {
    const conf = coordinatorConf({ prevResult: m.prevResult, keys: { mode }, dir: m.dir });
    const add = await call(m, "ADD", conf);
    assert.equal(add.code, 0, add.stdout);
    assert.deepEqual(add.json, m.prevResultFor("1.0.0"));
    assert.equal((await call(m, "DEL", conf)).code, 0);
  }
  assert.deepEqual(await both(m), before);
});

Deno.test("without the agent and without CIDRs in the configuration ADD asks the runtime to retry (code 11)", async () => {
  await using m = await miniPod("cnoag");
  const add = await call(m, "ADD", coordinatorConf({ prevResult: m.prevResult, dir: m.dir }));
  assert.equal(add.json?.code, 11, add.stdout);
  assert.match(String(add.json?.msg), /spiderpool-agent at .*no-agent\.sock: cannot connect/);
  const del = await call(m, "DEL", coordinatorConf({ prevResult: m.prevResult, dir: m.dir }));
  assert.equal(del.code, 0, "DEL never needs the agent");
});

Deno.test("a coordinator without prevResult, or on a NIC without an address, fails with a clear error", async () => {
  await using m = await miniPod("cbad");
  const noPrev = await call(m, "ADD", coordinatorConf({ keys: KEYS, dir: m.dir }));
  assert.equal(noPrev.json?.code, 7);
  assert.match(String(noPrev.json?.msg), /has no prevResult; it must follow the main plugin/);
  await ip("-n", m.pod, "addr", "flush", "dev", "eth0");
  const noAddr = await call(m, "ADD", coordinatorConf({ prevResult: m.prevResult, keys: KEYS, dir: m.dir }));
  assert.equal(noAddr.json?.code, 101);
  assert.match(String(noAddr.json?.msg), /interface eth0 has no IP address/);
});

Deno.test("dual stack: IPv6 too reaches the node through veth0, with its own rules and marks", async () => {
  await using m = await miniPod("cds");
  await ip("-n", m.node, "addr", "add", "2001:db8:1::2/64", "dev", "ens0", "nodad");
  await ip("-n", m.pod, "addr", "add", "2001:db8::10/64", "dev", "eth0", "nodad");
  const before = await both(m);
  const prev = {
    ...m.prevResult,
    ips: [...m.prevResult.ips!, { address: "2001:db8::10/64", interface: 0 }],
  };
  const conf = coordinatorConf({
    prevResult: prev,
    keys: { ...KEYS, serviceCIDR: ["198.18.0.0/24", "2001:db8:5::/112"], podMACPrefix: "0a:1b" },
    dir: m.dir,
  });
  const add = await call(m, "ADD", conf);
  assert.equal(add.code, 0, add.stdout);
  assert.equal(
    JSON.parse(await ip("-n", m.pod, "-j", "link", "show", "eth0"))[0].address,
    "0a:1b:c0:00:02:0a",
  );
  assert.match(
    await Deno.readTextFile(`${m.dir}/coordinator.log`),
    /announce 192\.0\.2\.10, 2001:db8::10 on eth0/,
  );
  assert.match(await ip("-n", m.pod, "-6", "rule", "show"), /1000:\s+from all fwmark 0x1 lookup 100/);
  assert.match(
    await ip("-n", m.pod, "-6", "route", "show", "2001:db8:5::/112"),
    /via 2001:db8:1::2 dev veth0/,
  );
  assert.match(await ip("-n", m.node, "-6", "route", "show", "table", "500"), /2001:db8::10 dev veth/);
  assert.match(
    await ip("netns", "exec", m.pod, "ip6tables", "-t", "mangle", "-S"),
    /CONNMARK --restore-mark/,
  );
  const c0 = await counters(m.pod, "veth0");
  assert.ok(await pingFrom(m.pod, "2001:db8:1::2"), "the pod pings the node's IPv6 address");
  assert.ok((await counters(m.pod, "veth0")).tx > c0.tx, "through veth0");
  assert.equal((await call(m, "DEL", conf)).code, 0);
  assert.deepEqual(await both(m), before);
});

Deno.test("policyRoutes go through the NIC and leave with DEL", async () => {
  await using m = await miniPod("cpr");
  const before = await both(m);
  const conf = coordinatorConf({
    prevResult: m.prevResult,
    keys: { ...KEYS, policyRoutes: [{ dst: "198.19.50.0/24", gw: "192.0.2.254" }] },
    dir: m.dir,
  });
  assert.equal((await call(m, "ADD", conf)).code, 0);
  assert.equal(
    (await ip("-n", m.pod, "route", "show", "198.19.50.0/24")).trim(),
    "198.19.50.0/24 via 192.0.2.254 dev eth0",
  );
  assert.equal((await call(m, "DEL", conf)).code, 0);
  assert.deepEqual(await both(m), before);
});
