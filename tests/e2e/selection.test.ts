// Pool selection end to end: which pool a pod's address comes from, decided by the agent from its informer
// caches (nodes, namespaces, reserved IPs, pools) and the pod's owners, as objects change while it runs.

import assert from "node:assert/strict";
import { API_VERSION, PLURAL } from "../../src/api/constants.ts";
import { kubeTest } from "../kube/harness.ts";
import { resultAddresses } from "./cni.ts";
import { e2e, eventually, getEndpoint, poolRecords } from "./env.ts";
import { addressesIn } from "./netns.ts";

const ippool = (v4: string[]) => ({ "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: v4 }) });

kubeTest("e2e: pods on two nodes get addresses from the pool their node is allowed to use", async () => {
  await using env = await e2e("e2e-affinity");
  const [n1, n2] = await env.startNodes(2);
  const byLabel = await env.pool("n1", {
    subnet: "192.0.2.0/24",
    ips: ["192.0.2.100-192.0.2.109"],
    nodeAffinity: { matchLabels: { "kubernetes.io/hostname": n1.name } },
  });
  const byName = await env.pool("n2", {
    subnet: "198.51.100.0/24",
    ips: ["198.51.100.100-198.51.100.109"],
    nodeName: [n2.name],
  });
  for (const [node, expected] of [[n1, "192.0.2.100/24"], [n2, "198.51.100.100/24"]] as const) {
    const pod = await env.createPod(`on-${node.name.slice(-2)}`, node, {
      annotations: ippool([byLabel, byName]),
    });
    const sb = await env.sandbox(pod, node);
    const add = await env.add(sb);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    assert.deepEqual(await addressesIn(sb.netns, "eth0", 4), [expected], node.name);
  }
});

kubeTest("e2e: a pod whose only pool excludes its node is refused with the pool and the reason", async () => {
  await using env = await e2e("e2e-nodeout");
  const [n1, n2] = await env.startNodes(2);
  const pool = await env.pool("n2only", {
    subnet: "192.0.2.0/24",
    ips: ["192.0.2.110-192.0.2.119"],
    nodeName: [n2.name],
  });
  const pod = await env.createPod("misplaced", n1, { annotations: ippool([pool]) });
  const add = await env.add(await env.sandbox(pod, n1));
  assert.notEqual(add.code, 0);
  assert.match(
    add.json?.msg as string,
    new RegExp(`${pool}.*filtered out|filtered out.*${pool}`),
    add.stdout,
  );
  assert.match(add.json?.msg as string, /spec\.nodeName/, add.stdout);
  assert.deepEqual(await poolRecords(env.http, pool), {});
});

kubeTest("e2e: a SpiderReservedIP created while the agent runs is never handed out", async () => {
  await using env = await e2e("e2e-reserved");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("v4", { subnet: "203.0.113.0/24", ips: ["203.0.113.110-203.0.113.119"] });
  const reserved = env.scope.name("rsv");
  const path = `/apis/${API_VERSION}/${PLURAL.reservedIP}`;
  await env.http.post(path, {
    apiVersion: API_VERSION,
    kind: "SpiderReservedIP",
    metadata: { name: reserved },
    spec: { ipVersion: 4, ips: ["203.0.113.110-203.0.113.111"] },
  });
  env.scope.track(`${path}/${reserved}`);
  // The agent learns about the reservation through its watch; give it the time a watch event takes.
  await new Promise((r) => setTimeout(r, 1_000));
  const pod = await env.createPod("p", node, { annotations: ippool([pool]) });
  const add = await env.add(await env.sandbox(pod, node));
  assert.equal(add.code, 0, add.stdout + add.stderr);
  assert.deepEqual(resultAddresses(add), ["203.0.113.112/24"]);
});

kubeTest(
  "e2e: a namespace's default-ipv4-ippool annotation, set while the agent runs, picks the pool",
  async () => {
    await using env = await e2e("e2e-nsdefault");
    const [node] = await env.startNodes(1);
    const pool = await env.pool("ns", { subnet: "198.18.0.0/15", ips: ["198.18.30.1-198.18.30.9"] });
    await env.http.patch(`/api/v1/namespaces/${env.namespace}`, {
      metadata: { annotations: { "ipam.spidernet.io/default-ipv4-ippool": JSON.stringify([pool]) } },
    });
    await new Promise((r) => setTimeout(r, 1_000));
    const pod = await env.createPod("plain", node);
    const sb = await env.sandbox(pod, node);
    const add = await env.add(sb);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    assert.deepEqual(await addressesIn(sb.netns, "eth0", 4), ["198.18.30.1/15"]);
  },
);

kubeTest("e2e: a Deployment's pod records the Deployment as its owner in the SpiderEndpoint", async () => {
  await using env = await e2e("e2e-deploy");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.120-192.0.2.129"] });
  await env.http.post(`/apis/apps/v1/namespaces/${env.namespace}/deployments`, {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "api" },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: "api" } },
      template: {
        metadata: { labels: { app: "api" }, annotations: ippool([pool]) },
        spec: { containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
      },
    },
  });
  const name = await eventually("kube-controller-manager to create the Deployment's pod", async () => {
    const { body } = await env.http.get<{ items: { metadata: { name: string } }[] }>(
      `/api/v1/namespaces/${env.namespace}/pods?labelSelector=app%3Dapi`,
    );
    return body.items[0]?.metadata.name;
  }, 60_000);
  const pod = await env.bindPod(name, node);
  const add = await env.add(await env.sandbox(pod, node));
  assert.equal(add.code, 0, add.stdout + add.stderr);
  const ep = await getEndpoint(env.http, env.namespace, name);
  assert.equal(ep?.status.ownerControllerType, "Deployment");
  assert.equal(ep?.status.ownerControllerName, "api");
  assert.deepEqual(Object.values(await poolRecords(env.http, pool)), [
    { pod: `${env.namespace}/${name}`, podUid: pod.uid },
  ]);
});

kubeTest("e2e: the chain works with CNI 0.3.1, 0.4.0 and 1.0.0 network configurations", async () => {
  await using env = await e2e("e2e-versions");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("v4", { subnet: "203.0.113.0/24", ips: ["203.0.113.120-203.0.113.129"] });
  for (const [i, cniVersion] of ["0.3.1", "0.4.0", "1.0.0"].entries()) {
    const pod = await env.createPod(`v${i}`, node, { annotations: ippool([pool]) });
    const sb = await env.sandbox(pod, node);
    const add = await env.add(sb, { conf: { ...env.conf(node), cniVersion } });
    assert.equal(add.code, 0, `${cniVersion}: ${add.stdout} ${add.stderr}`);
    assert.equal(add.json?.cniVersion, cniVersion);
    // Each pod is deleted before the next, so each gets the first address again.
    assert.deepEqual(resultAddresses(add), ["203.0.113.120/24"], cniVersion);
    assert.deepEqual(await addressesIn(sb.netns, "eth0", 4), ["203.0.113.120/24"], cniVersion);
    const del = await env.deletePod(sb);
    assert.equal(del.code, 0, `${cniVersion} DEL: ${del.stdout} ${del.stderr}`);
  }
  assert.deepEqual(await poolRecords(env.http, pool), {});
});
