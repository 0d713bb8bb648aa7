// Pools as users write them, with no webhook in front: overlapping pools never give one address to two live
// pods (also with two agents racing on pools created at the same moment), a pool hands out only addresses a
// valid pool could contain, a malformed gateway or route refuses the ADD, a pool without spec.ipVersion (as in
// Spiderpool's guides) is used, and match_master_subnet on a NIC that is not a VF fails clearly.

import assert from "node:assert/strict";
import { API_VERSION } from "../../src/api/constants.ts";
import type { IpamAddArgs } from "../../src/agentapi/models.ts";
import { AgentClient, AgentRequestError } from "../../src/agentapi/client.ts";
import { kubeTest } from "../kube/harness.ts";
import { resultAddresses } from "./cni.ts";
import { bareIP, e2e, poolRecords, POOLS, type PoolSpec } from "./env.ts";
import { addNetns, addressesIn, delNetns, ip, netnsPath, shortId } from "./netns.ts";
import { lookupMaster } from "../../src/agent/master_nic.ts";
import { MasterInterfaceError } from "../../src/ipam/master.ts";
import type { PodRef } from "./cni.ts";

const ippool = (v4: string[]) => ({ "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: v4 }) });

function addArgs(pod: PodRef, tag: string): IpamAddArgs {
  return {
    containerID: `${tag}-${pod.uid}`,
    ifName: "eth0",
    netNamespace: `/var/run/netns/${pod.name}`,
    podNamespace: pod.namespace,
    podName: pod.name,
    podUID: pod.uid,
  };
}

/** The error text of a failed ADD on the socket, or undefined when it succeeded. */
async function addError(agent: AgentClient, args: IpamAddArgs): Promise<string | undefined> {
  try {
    await agent.allocate(args);
    return undefined;
  } catch (err) {
    if (err instanceof AgentRequestError) return err.message;
    throw err;
  }
}

kubeTest(
  "e2e: two pools 203.0.113.230-231 (the report), one pod annotated with each: never one address, errors name both",
  async () => {
    await using env = await e2e("e2e-overlap");
    const [node] = await env.startNodes(1);
    const spec: PoolSpec = { subnet: "203.0.113.0/24", ips: ["203.0.113.230-203.0.113.231"] };
    const a = await env.pool("a", spec);
    const b = await env.pool("b", spec);
    const runs = [];
    for (const [name, pool] of [["pa", a], ["pb", b]]) {
      const pod = await env.createPod(name, node, { annotations: ippool([pool]) });
      runs.push(await env.add(await env.sandbox(pod, node)));
    }
    const ok = runs.filter((r) => r.code === 0);
    const addresses = ok.flatMap(resultAddresses);
    assert.equal(new Set(addresses).size, addresses.length, `two pods got ${addresses.join(", ")}`);
    for (const r of runs.filter((r) => r.code !== 0)) {
      const msg = String(r.json?.msg);
      assert.match(msg, new RegExp(`"${a}"`), msg);
      assert.match(msg, new RegExp(`"${b}"`), msg);
      assert.match(msg, /203\.0\.113\.230-203\.0\.113\.231/, msg);
    }
    // Once the agent has seen both pools, neither serves while they overlap.
    const late = await env.createPod("pc", node, { annotations: ippool([a]) });
    const third = await env.add(await env.sandbox(late, node));
    assert.notEqual(third.code, 0, third.stdout);
    assert.match(String(third.json?.msg), new RegExp(`also in SpiderIPPool "${b}"`));
    const held = [
      ...Object.keys(await poolRecords(env.http, a)),
      ...Object.keys(await poolRecords(env.http, b)),
    ];
    assert.equal(new Set(held).size, held.length, `recorded twice: ${held.join(", ")}`);
    assert.ok(held.length <= 1, `pools hold ${held.join(", ")}`);
  },
);

kubeTest(
  "e2e: two agents allocate at the same moment from two overlapping pools created at the same moment (40 trials): " +
    "no address is held by two live pods",
  async () => {
    await using env = await e2e("e2e-overlaprace");
    const [n1, n2] = await env.startNodes(2);
    const agents = [new AgentClient(n1.agent.socketPath), new AgentClient(n2.agent.socketPath)];
    const tally = { none: 0, one: 0, both: 0 };
    for (let k = 0; k < 40; k++) {
      const ips = [`203.0.113.${100 + 2 * k}-203.0.113.${101 + 2 * k}`];
      const names = [env.scope.name(`a${k}`), env.scope.name(`b${k}`)];
      const pods = await Promise.all([
        env.createPod(`pa${k}`, n1, { annotations: ippool([names[0]]) }),
        env.createPod(`pb${k}`, n2, { annotations: ippool([names[1]]) }),
      ]);
      // Most trials create both pools at the same moment; some create the second a little later, so that the
      // first agent may serve before the overlap exists. Each agent is asked as soon as its pool exists, while
      // its cache may have seen none, one or both of them.
      const delay = [0, 0, 0, 5, 20, 60][k % 6];
      const answers = await Promise.allSettled(names.map(async (name, i) => {
        if (i === 1 && delay > 0) await new Promise((r) => setTimeout(r, delay));
        await env.http.post(POOLS, {
          apiVersion: API_VERSION,
          kind: "SpiderIPPool",
          metadata: { name },
          spec: { ipVersion: 4, subnet: "203.0.113.0/24", ips },
        });
        env.scope.track(`${POOLS}/${name}`);
        return await agents[i].allocate(addArgs(pods[i], `t${k}`));
      }));
      for (const a of answers) {
        if (a.status === "rejected" && !(a.reason instanceof AgentRequestError)) throw a.reason;
      }
      const got = answers.flatMap((a) =>
        a.status === "fulfilled" ? a.value.ips.map((i) => bareIP(i.address)!) : []
      );
      assert.equal(new Set(got).size, got.length, `trial ${k}: both pods were given ${got.join(", ")}`);
      const records = await Promise.all(names.map((n) => poolRecords(env.http, n)));
      const both = Object.keys(records[0]).filter((ip) => ip in records[1]);
      assert.deepEqual(both, [], `trial ${k}: recorded in both pools`);
      tally[got.length === 0 ? "none" : got.length === 1 ? "one" : "both"]++;
    }
    console.error(`overlap race: ${JSON.stringify(tally)} (trials with no, one, two pods served)`);
    assert.equal(tally.both, 0);
  },
);

kubeTest(
  "e2e: subnet 198.51.100.0/28, ips [198.51.100.1], gateway 198.51.100.1 gives no address",
  async () => {
    await using env = await e2e("e2e-gwonly");
    const [node] = await env.startNodes(1);
    const pool = await env.pool("gw", {
      subnet: "198.51.100.0/28",
      ips: ["198.51.100.1"],
      gateway: "198.51.100.1",
    });
    const pod = await env.createPod("web", node, { annotations: ippool([pool]) });
    const add = await env.add(await env.sandbox(pod, node));
    assert.notEqual(add.code, 0, add.stdout);
    assert.match(String(add.json?.msg), new RegExp(`SpiderIPPool "${pool}": it has no address to hand out`));
    assert.deepEqual(await poolRecords(env.http, pool), {});
  },
);

kubeTest("e2e: ips outside the pool's subnet are never handed out", async () => {
  await using env = await e2e("e2e-outside");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("wide", { subnet: "198.51.100.16/28", ips: ["198.51.100.1-198.51.100.17"] });
  const got: string[] = [];
  for (let i = 0; i < 3; i++) {
    const pod = await env.createPod(`web-${i}`, node, { annotations: ippool([pool]) });
    const sb = await env.sandbox(pod, node);
    const add = await env.add(sb);
    if (i < 2) {
      assert.equal(add.code, 0, add.stdout + add.stderr);
      got.push(...await addressesIn(sb.netns, "eth0", 4));
    } else {
      assert.notEqual(add.code, 0, add.stdout);
      assert.match(String(add.json?.msg), /\(2 of 2 allocated\)/);
    }
  }
  assert.deepEqual(got, ["198.51.100.16/28", "198.51.100.17/28"]);
  assert.deepEqual(Object.keys(await poolRecords(env.http, pool)).sort(), ["198.51.100.16", "198.51.100.17"]);
});

kubeTest(
  'e2e: a pool with gateway "gw" or a route dst "bad" refuses the ADD, naming the pool, the field and the value',
  async () => {
    await using env = await e2e("e2e-badspec");
    const [node] = await env.startNodes(1);
    const agent = new AgentClient(node.agent.socketPath);
    const rows: [string, Partial<PoolSpec>, RegExp][] = [
      ["gw", { gateway: "gw" }, /spec\.gateway: invalid IPv4 address "gw"/],
      ["dst", { routes: [{ dst: "bad", gw: "192.0.2.1" }] }, /spec\.routes\[0\]\.dst: .*"bad"/],
      ["gw6", { gateway: "2001:db8::1" }, /spec\.gateway "2001:db8::1" is IPv6; use an IPv4 address/],
      [
        "gwout",
        { gateway: "198.51.100.1" },
        /spec\.gateway "198\.51\.100\.1" is outside spec\.subnet "192\.0\.2\.0\/24"/,
      ],
      ["rgw", { routes: [{ dst: "203.0.113.0/24", gw: "x" }] }, /spec\.routes\[0\]\.gw: .*"x"/],
    ];
    for (const [suffix, extra, field] of rows) {
      const pool = await env.pool(suffix, {
        subnet: "192.0.2.0/24",
        ips: ["192.0.2.40-192.0.2.41"],
        ...extra,
      });
      const pod = await env.createPod(`web-${suffix}`, node, { annotations: ippool([pool]) });
      const msg = await addError(agent, addArgs(pod, "c"));
      assert.ok(msg !== undefined, `${suffix}: the ADD succeeded`);
      assert.match(msg, new RegExp(`SpiderIPPool "${pool}"|${pool}: invalid spec`), msg);
      assert.match(msg, field, msg);
      assert.deepEqual(await poolRecords(env.http, pool), {}, suffix);
      // Each pool goes before the next, so their addresses never overlap.
      await env.http.delete(`${POOLS}/${pool}`);
    }
  },
);

kubeTest(
  "e2e: a pool without spec.ipVersion (as in Spiderpool's guides) serves pods, its family from subnet",
  async () => {
    await using env = await e2e("e2e-noversion");
    const [node] = await env.startNodes(1);
    const name = env.scope.name("guide");
    await env.http.post(POOLS, {
      apiVersion: API_VERSION,
      kind: "SpiderIPPool",
      metadata: { name },
      spec: { subnet: "198.51.100.0/24", ips: ["198.51.100.60-198.51.100.61"], gateway: "198.51.100.254" },
    });
    env.scope.track(`${POOLS}/${name}`);
    const pod = await env.createPod("web", node, { annotations: ippool([name]) });
    const sb = await env.sandbox(pod, node);
    const add = await env.add(sb);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    assert.deepEqual(await addressesIn(sb.netns, "eth0", 4), ["198.51.100.60/24"]);
    assert.deepEqual(Object.keys(await poolRecords(env.http, name)), ["198.51.100.60"]);
  },
);

kubeTest(
  "e2e: match_master_subnet on a veth NIC (no PCI device) fails the ADD saying why, and allocates nothing",
  async () => {
    await using env = await e2e("e2e-master");
    const [node] = await env.startNodes(1);
    const pool = await env.pool("rail", { subnet: "192.0.2.0/24", ips: ["192.0.2.50-192.0.2.51"] });
    const pod = await env.createPod("web", node, { annotations: ippool([pool]) });
    const sb = await env.sandbox(pod, node);
    const add = await env.add(sb, { conf: env.conf(node, { match_master_subnet: true }) });
    assert.notEqual(add.code, 0, add.stdout);
    assert.match(
      String(add.json?.msg),
      /match_master_subnet: cannot find the master interface of "eth0" in the pod: it is a veth interface with no PCI device; match_master_subnet works with SR-IOV VFs only/,
    );
    assert.deepEqual(await poolRecords(env.http, pool), {});
    // Without the option the same pod is served (in a new sandbox, as a runtime retries).
    const plain = await env.add(await env.sandbox(pod, node));
    assert.equal(plain.code, 0, plain.stdout + plain.stderr);
  },
);

Deno.test(
  "e2e: the master lookup names the reason for a NIC missing from the pod's netns and for a veth",
  async () => {
    const ns = `sp-master-${shortId(6)}`;
    await addNetns(ns);
    try {
      await ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0");
      await assert.rejects(
        lookupMaster(netnsPath(ns), "net1"),
        (e: unknown) =>
          e instanceof MasterInterfaceError &&
          /"net1" in the pod: no such interface in the pod's network namespace/.test(e.message),
      );
      await assert.rejects(
        lookupMaster(netnsPath(ns), "eth0"),
        /"eth0" in the pod: it is a veth interface with no PCI device/,
      );
      await assert.rejects(
        lookupMaster("cni-1234", "eth0"),
        /the network namespace "cni-1234" is not a path/,
      );
    } finally {
      await delNetns(ns);
    }
  },
);
