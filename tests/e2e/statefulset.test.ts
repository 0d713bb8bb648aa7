// StatefulSet fixed IPs end to end: kube-controller-manager's StatefulSet controller makes the pods, the test
// binds them to a simulated node as a scheduler would and plays the kubelet (CNI ADD/DEL, final delete).

import assert from "node:assert/strict";
import { kubeTest } from "../kube/harness.ts";
import { resultAddresses } from "./cni.ts";
import { bareIP, type E2E, e2e, eventually, getEndpoint, poolRecords, type Sandbox } from "./env.ts";
import { addressesIn } from "./netns.ts";
import type { SimNode } from "./node_sim.ts";

const ippool = (v4: string[]) => ({ "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: v4 }) });

interface PodObj {
  metadata: { uid: string; deletionTimestamp?: string; annotations?: Record<string, string> };
}

/** Creates StatefulSet `name` with `replicas` pods whose template names `pool`. */
async function statefulSet(env: E2E, name: string, replicas: number, pool: string): Promise<string> {
  const path = `/apis/apps/v1/namespaces/${env.namespace}/statefulsets`;
  await env.http.post(path, {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name },
    spec: {
      replicas,
      serviceName: name,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations: ippool([pool]) },
        spec: {
          containers: [{ name: "c", image: "registry.invalid/pause:1" }],
          terminationGracePeriodSeconds: 30,
        },
      },
    },
  });
  return `${path}/${name}`;
}

/** Waits for the controller to (re)create pod `name` (a UID other than `notUid`), binds it and runs its ADD. */
async function controllerPodUp(
  env: E2E,
  node: SimNode,
  name: string,
  notUid?: string,
): Promise<{ sb: Sandbox; address: string }> {
  await eventually(`kube-controller-manager to create pod ${name}${notUid ? " again" : ""}`, async () => {
    try {
      const { body } = await env.http.get<PodObj>(`/api/v1/namespaces/${env.namespace}/pods/${name}`);
      return body.metadata.uid !== notUid && !body.metadata.deletionTimestamp ? true : undefined;
    } catch {
      return undefined;
    }
  }, 60_000);
  const pod = await env.bindPod(name, node);
  const sb = await env.sandbox(pod, node);
  const add = await env.add(sb);
  assert.equal(add.code, 0, `${name}: ${add.stdout} ${add.stderr}`);
  return { sb, address: resultAddresses(add)[0] };
}

/** Plays the kubelet for a pod the controller is deleting: waits for the deletion, DEL, final delete. */
async function kubeletTearDown(env: E2E, sb: Sandbox): Promise<void> {
  const path = `/api/v1/namespaces/${env.namespace}/pods/${sb.pod.name}`;
  await eventually(`pod ${sb.pod.name} to be marked for deletion`, async () => {
    const { body } = await env.http.get<PodObj>(path);
    return body.metadata.deletionTimestamp ? true : undefined;
  }, 60_000);
  const del = await env.del(sb);
  assert.equal(del.code, 0, `DEL ${sb.pod.name}: ${del.stdout} ${del.stderr}`);
  await env.http.delete(path, { gracePeriodSeconds: 0, preconditions: { uid: sb.pod.uid } });
}

kubeTest(
  "e2e: a StatefulSet pod deleted and recreated with a new UID gets its old address back",
  async () => {
    await using env = await e2e("e2e-sts");
    const [node] = await env.startNodes(1);
    const pool = await env.pool("v4", { subnet: "203.0.113.0/24", ips: ["203.0.113.70-203.0.113.79"] });
    await statefulSet(env, "db", 1, pool);
    const first = await controllerPodUp(env, node, "db-0");

    // The pod is deleted (a restart, an eviction): the runtime's DEL keeps the fixed IP for the StatefulSet.
    const del = await env.deletePod(first.sb);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.deepEqual(await poolRecords(env.http, pool), {
      [bareIP(first.address)!]: { pod: `${env.namespace}/db-0`, podUid: first.sb.pod.uid },
    });

    const second = await controllerPodUp(env, node, "db-0", first.sb.pod.uid);
    assert.equal(second.address, first.address);
    assert.deepEqual(await addressesIn(second.sb.netns, "eth0", 4), [first.address]);
    assert.deepEqual(await poolRecords(env.http, pool), {
      [bareIP(first.address)!]: { pod: `${env.namespace}/db-0`, podUid: second.sb.pod.uid },
    });
    const ep = await getEndpoint(env.http, env.namespace, "db-0");
    assert.equal(ep?.status.current.uid, second.sb.pod.uid);
    assert.equal(ep?.status.current.ips?.[0]?.ipv4, first.address);
  },
);

kubeTest("e2e: scaling a StatefulSet down releases the fixed IP of the removed member", async () => {
  await using env = await e2e("e2e-stsdown");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("v4", { subnet: "198.51.100.0/24", ips: ["198.51.100.80-198.51.100.89"] });
  const sts = await statefulSet(env, "kv", 2, pool);
  const member0 = await controllerPodUp(env, node, "kv-0");
  const member1 = await controllerPodUp(env, node, "kv-1");
  assert.equal(Object.keys(await poolRecords(env.http, pool)).length, 2);

  await env.http.patch(sts, { spec: { replicas: 1 } }, "merge");
  await kubeletTearDown(env, member1.sb);

  assert.deepEqual(await poolRecords(env.http, pool), {
    [bareIP(member0.address)!]: { pod: `${env.namespace}/kv-0`, podUid: member0.sb.pod.uid },
  });
  await eventually(
    "the SpiderEndpoint of kv-1 to be gone",
    async () => await getEndpoint(env.http, env.namespace, "kv-1") === undefined ? true : undefined,
  );
  assert.equal((await getEndpoint(env.http, env.namespace, "kv-0"))?.status.current.uid, member0.sb.pod.uid);
});

kubeTest("e2e: a StatefulSet whose pool annotation changed moves its pod to the new pool", async () => {
  await using env = await e2e("e2e-stsmove");
  const [node] = await env.startNodes(1);
  const oldPool = await env.pool("old", { subnet: "192.0.2.0/24", ips: ["192.0.2.80-192.0.2.89"] });
  const newPool = await env.pool("new", { subnet: "203.0.113.0/24", ips: ["203.0.113.100-203.0.113.109"] });
  const sts = await statefulSet(env, "web", 1, oldPool);
  const before = await controllerPodUp(env, node, "web-0");
  assert.match(before.address, /^192\.0\.2\./);

  // The template changes: the controller replaces web-0 with a pod naming the new pool.
  await env.http.patch(
    sts,
    { spec: { template: { metadata: { annotations: ippool([newPool]) } } } },
    "merge",
  );
  await kubeletTearDown(env, before.sb);
  const after = await controllerPodUp(env, node, "web-0", before.sb.pod.uid);

  assert.equal(after.address, "203.0.113.100/24");
  assert.deepEqual(await addressesIn(after.sb.netns, "eth0", 4), ["203.0.113.100/24"]);
  assert.deepEqual(await poolRecords(env.http, oldPool), {});
  assert.deepEqual(await poolRecords(env.http, newPool), {
    "203.0.113.100": { pod: `${env.namespace}/web-0`, podUid: after.sb.pod.uid },
  });
  const ep = await getEndpoint(env.http, env.namespace, "web-0");
  assert.deepEqual(ep?.status.current.ips?.map((d) => [d.ipv4, d.ipv4Pool]), [["203.0.113.100/24", newPool]]);
});
