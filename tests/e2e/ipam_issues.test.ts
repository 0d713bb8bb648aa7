// Failure modes reported against upstream Spiderpool (SPIDERPOOL-API.md §13), replayed end to end through the
// real agent, bridge plugin and network namespaces: each must be impossible here.

import assert from "node:assert/strict";
import { AgentClient } from "../../src/agentapi/client.ts";
import { kubeTest } from "../kube/harness.ts";
import { type CniRun, resultAddresses } from "./cni.ts";
import { bareIP, consistencyProblems, type E2E, e2e, getEndpoint, poolRecords } from "./env.ts";
import type { SimNode } from "./node_sim.ts";
import { addressesIn } from "./netns.ts";

const ippool = (v4: string[]) => ({ "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: v4 }) });

kubeTest(
  "e2e: a same-name pod recreated before the old pod's DEL gets an address, and the late DEL leaves it alone",
  async () => {
    await using env = await e2e("e2e-rename");
    const [node] = await env.startNodes(1);
    const pool = await env.pool("v4", { subnet: "198.51.100.0/24", ips: ["198.51.100.60-198.51.100.69"] });
    const podsPath = `/api/v1/namespaces/${env.namespace}/pods`;
    const old = await env.createPod("web", node, { annotations: ippool([pool]) });
    const oldSb = await env.sandbox(old, node);
    assert.equal((await env.add(oldSb)).code, 0);

    // The old pod is force-deleted; the runtime has not sent its DEL yet.
    await env.http.delete(`${podsPath}/web`, { gracePeriodSeconds: 0 });
    const fresh = await env.createPod("web", node, { annotations: ippool([pool]) });
    assert.notEqual(fresh.uid, old.uid);
    const sb = await env.sandbox(fresh, node);
    const add = await env.add(sb);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const [address] = resultAddresses(add);

    // The old sandbox's DEL arrives late, naming the old UID.
    const lateDel = await env.del(oldSb, { pod: old });
    assert.equal(lateDel.code, 0, lateDel.stdout + lateDel.stderr);

    assert.deepEqual(await poolRecords(env.http, pool), {
      [bareIP(address)!]: { pod: `${env.namespace}/web`, podUid: fresh.uid },
    });
    const ep = await getEndpoint(env.http, env.namespace, "web");
    assert.equal(ep?.status.current.uid, fresh.uid);
    assert.equal(ep?.status.current.ips?.[0]?.ipv4, address);
    assert.deepEqual(await addressesIn(sb.netns, "eth0", 4), [address]);
  },
);

kubeTest(
  "e2e: retried ADDs of a two-NIC pod whose second pool is full do not drain the first pool",
  async () => {
    await using env = await e2e("e2e-drain");
    const [node] = await env.startNodes(1);
    const first = await env.pool("eth0", { subnet: "192.0.2.0/24", ips: ["192.0.2.70-192.0.2.79"] });
    const second = await env.pool("net1", { subnet: "203.0.113.0/24", ips: ["203.0.113.90"] });
    const holder = await env.createPod("holder", node, { annotations: ippool([second]) });
    const holderSb = await env.sandbox(holder, node);
    assert.equal((await env.add(holderSb)).code, 0);

    const annotations = {
      "ipam.spidernet.io/ippools": JSON.stringify([
        { interface: "eth0", ipv4: [first] },
        { interface: "net1", ipv4: [second] },
      ]),
    };
    const pod = await env.createPod("two-nics", node, { annotations });
    const net1Conf = { ...env.conf(node), bridge: `${node.bridge}b` };
    // A runtime retries the sandbox over and over while net1's pool is full.
    for (let attempt = 0; attempt < 4; attempt++) {
      const sb = await env.sandbox(pod, node);
      const add = await env.add(sb);
      assert.notEqual(add.code, 0, `attempt ${attempt}: ADD eth0 should fail while ${second} is full`);
      assert.match(add.json?.msg as string, new RegExp(second), add.stdout);
      assert.equal((await env.del(sb)).code, 0);
    }
    const mine = Object.entries(await poolRecords(env.http, first)).filter(([, r]) => r.podUid === pod.uid);
    assert.ok(
      mine.length <= 1,
      `${first} holds ${mine.length} addresses of one pod: ${JSON.stringify(mine)}`,
    );

    // Room appears in net1's pool: the next attempt sets up both NICs.
    assert.equal((await env.deletePod(holderSb)).code, 0);
    const sb = await env.sandbox(pod, node);
    const eth0 = await env.add(sb);
    assert.equal(eth0.code, 0, eth0.stdout + eth0.stderr);
    const net1 = await env.add(sb, { conf: net1Conf, ifName: "net1" });
    assert.equal(net1.code, 0, net1.stdout + net1.stderr);
    assert.equal((await addressesIn(sb.netns, "eth0", 4)).length, 1);
    assert.deepEqual(await addressesIn(sb.netns, "net1", 4), ["203.0.113.90/24"]);
    const records = Object.entries(await poolRecords(env.http, first)).filter(([, r]) =>
      r.podUid === pod.uid
    );
    assert.equal(records.length, 1, JSON.stringify(records));
    assert.deepEqual(await consistencyProblems(env.http, env.namespace, [first, second]), []);
  },
);

kubeTest("e2e: a pod holding the last address of a full pool gets it again on a repeated ADD", async () => {
  await using env = await e2e("e2e-fullagain");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("one", { subnet: "198.18.0.0/15", ips: ["198.18.20.1"] });
  const pod = await env.createPod("only", node, { annotations: ippool([pool]) });
  const first = await env.add(await env.sandbox(pod, node));
  assert.equal(first.code, 0, first.stdout + first.stderr);
  const sb = await env.sandbox(pod, node);
  const again = await env.add(sb);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.deepEqual(resultAddresses(again), ["198.18.20.1/15"]);
  assert.deepEqual(await addressesIn(sb.netns, "eth0", 4), ["198.18.20.1/15"]);
  assert.deepEqual(await poolRecords(env.http, pool), {
    "198.18.20.1": { pod: `${env.namespace}/only`, podUid: pod.uid },
  });
});

/** Three sandboxes of one pod set up at the same moment, for each of `pods` pods in turn. */
async function racingAdds(env: E2E, node: SimNode, pool: string, pods: number) {
  const out: { pod: string; runs: CniRun[] }[] = [];
  for (let k = 0; k < pods; k++) {
    const pod = await env.createPod(`racy-${k}`, node, { annotations: ippool([pool]) });
    const sandboxes = await Promise.all([0, 1, 2].map(() => env.sandbox(pod, node)));
    out.push({ pod: pod.name, runs: await Promise.all(sandboxes.map((sb) => env.add(sb))) });
  }
  return out;
}

kubeTest(
  "e2e: two ADDs for one pod at the same moment never leave its address free for the next pod",
  async () => {
    await using env = await e2e("e2e-retryrace");
    const [node] = await env.startNodes(1);
    const pool = await env.pool("v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.150-192.0.2.249"] });
    // Two plugin processes of one pod (a runtime retry racing the first ADD) reach the agent together; the
    // plugin's own client sends them, so that they really overlap inside the agent.
    const agent = new AgentClient(node.agent.socketPath);
    const held = new Map<string, string>();
    for (let k = 0; k < 60; k++) {
      const pod = await env.createPod(`racy-${k}`, node, { annotations: ippool([pool]) });
      const args = (containerID: string) => ({
        containerID,
        ifName: "eth0",
        netNamespace: `/var/run/netns/${env.namespace}-racy-${k}`,
        podNamespace: env.namespace,
        podName: pod.name,
        podUID: pod.uid,
      });
      const answers = await Promise.allSettled([
        agent.allocate(args(`${k}-a`)),
        agent.allocate(args(`${k}-b`)),
      ]);
      const addresses = new Set(
        answers.flatMap((a) => a.status === "fulfilled" ? a.value.ips.map((i) => i.address) : []),
      );
      assert.equal(addresses.size, 1, `${pod.name} was answered with [${[...addresses].join(", ")}]`);
      const [address] = addresses;
      const holder = [...held].find(([, a]) => a === address)?.[0];
      assert.equal(holder, undefined, `${pod.name} got ${address}, which ${holder} already holds`);
      held.set(pod.name, address);
    }
    // And the next pod, set up through the whole chain, gets an address nobody holds.
    const next = await env.createPod("next", node, { annotations: ippool([pool]) });
    const sb = await env.sandbox(next, node);
    const add = await env.add(sb);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const [inNetns] = await addressesIn(sb.netns, "eth0", 4);
    const holder = [...held].find(([, a]) => a === inNetns)?.[0];
    assert.equal(holder, undefined, `pod next got ${inNetns}, which ${holder} already holds`);
    assert.deepEqual(await consistencyProblems(env.http, env.namespace, [pool]), []);
  },
);

kubeTest("e2e: concurrent ADDs for one pod all succeed with the same address", async () => {
  await using env = await e2e("e2e-retryok");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("v4", { subnet: "198.51.100.0/24", ips: ["198.51.100.150-198.51.100.199"] });
  for (const { pod, runs } of await racingAdds(env, node, pool, 8)) {
    runs.forEach((r, i) => assert.equal(r.code, 0, `${pod} sandbox ${i}: ${r.stdout} ${r.stderr}`));
    assert.equal(
      new Set(runs.flatMap(resultAddresses)).size,
      1,
      `${pod}: ${runs.map((r) => r.stdout).join()}`,
    );
  }
});
