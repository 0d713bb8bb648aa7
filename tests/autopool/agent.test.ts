// Auto-pools end to end: kube-controller-manager makes the pods of a Deployment or StatefulSet whose template
// names a SpiderSubnet, the in-process application controller makes the pool (validated by the real webhook),
// and a real agent serves the ADD through Debian's bridge plugin with spiderpool as IPAM into a network
// namespace; third-party controllers get their pool from the agent itself.

import assert from "node:assert/strict";
import { decodeControlledIPPools } from "../../src/api/allocated.ts";
import { NotFoundError } from "../../src/kube/client.ts";
import { kubeTest } from "../kube/harness.ts";
import { resultAddresses } from "../e2e/cni.ts";
import { bareIP, type E2E, e2e, eventually, getEndpoint, poolRecords, type Sandbox } from "../e2e/env.ts";
import { addressesIn } from "../e2e/netns.ts";
import { scrapeMetrics, type SimNode } from "../e2e/node_sim.ts";
import {
  autoPoolWorld,
  deployment,
  getPool,
  getSubnet,
  POOLS,
  poolsOf,
  size,
  subnetAnnotation,
} from "./world.ts";

interface PodObj {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
}

/** The name of a pod kube-controller-manager made for `app` (label app=<app>), once there is one. */
async function controllerPod(env: E2E, app: string, notUid?: string): Promise<string> {
  return await eventually(`kube-controller-manager to make a pod of ${app}`, async () => {
    const { body } = await env.http.get<{ items: PodObj[] }>(
      `/api/v1/namespaces/${env.namespace}/pods?labelSelector=${encodeURIComponent(`app=${app}`)}`,
    );
    return body.items.find((p) => !p.metadata.deletionTimestamp && p.metadata.uid !== notUid)?.metadata.name;
  }, 60_000);
}

/** Binds the pod, makes its sandbox and runs the ADD (bridge + spiderpool). */
async function podUp(env: E2E, node: SimNode, name: string): Promise<{ sb: Sandbox; address: string }> {
  const pod = await env.bindPod(name, node);
  const sb = await env.sandbox(pod, node);
  const add = await env.add(sb);
  assert.equal(add.code, 0, `ADD ${name}: ${add.stdout} ${add.stderr}`);
  return { sb, address: resultAddresses(add)[0] };
}

kubeTest(
  "auto-pool e2e: a Deployment's pod gets its address from the auto-pool through the bridge chain",
  async () => {
    await using env = await e2e("ap-e2e");
    await using w = await autoPoolWorld("", { scope: env.scope });
    const [node] = await env.startNodes(1);
    const subnet = await w.subnet("s", 20, { from: 100 });
    await env.http.post(
      `/apis/apps/v1/namespaces/${env.namespace}/deployments`,
      deployment("web", 1, subnetAnnotation(subnet.name)),
    );
    const name = await controllerPod(env, "web");
    const { sb, address } = await podUp(env, node, name);

    const [pool] = await poolsOf(env.http, env.namespace, "web");
    assert.equal(size(pool), 2);
    assert.equal(
      address,
      `${subnet.prefix}100/24`,
      "the pool's first address, with the subnet's prefix length",
    );
    assert.deepEqual(await addressesIn(sb.netns, "eth0", 4), [address]);
    assert.deepEqual(await poolRecords(env.http, pool.metadata.name), {
      [bareIP(address)!]: { pod: `${env.namespace}/${name}`, podUid: sb.pod.uid },
    });
    const ep = await getEndpoint(env.http, env.namespace, name);
    assert.equal(ep?.status.current.ips?.[0]?.ipv4Pool, pool.metadata.name);
    assert.equal(ep?.status.ownerControllerType, "Deployment");
    assert.equal(ep?.status.ownerControllerName, "web");
  },
);

kubeTest(
  "auto-pool e2e: an ADD that comes before its pool waits, and is served once the controller makes it",
  async () => {
    await using env = await e2e("ap-wait");
    await using w = await autoPoolWorld("", { scope: env.scope, start: false });
    const [node] = await env.startNodes(1);
    const subnet = await w.subnet("s", 20, { from: 120 });
    await env.http.post(
      `/apis/apps/v1/namespaces/${env.namespace}/deployments`,
      deployment("late", 1, subnetAnnotation(subnet.name)),
    );
    const name = await controllerPod(env, "late");
    const pod = await env.bindPod(name, node);
    const sb = await env.sandbox(pod, node);
    const started = Date.now();
    const adding = env.add(sb);
    await new Promise((r) => setTimeout(r, 1_500));
    assert.deepEqual(await poolsOf(env.http, env.namespace, "late"), [], "no controller leads yet");
    await w.startLeading();
    const add = await adding;
    assert.equal(add.code, 0, `${add.stdout} ${add.stderr}`);
    assert.ok(Date.now() - started >= 1_500, "the ADD waited for the pool");
    assert.equal(resultAddresses(add)[0], `${subnet.prefix}120/24`);
    const metrics = await scrapeMetrics(node.agent.metricsPort);
    assert.equal(metrics.get('spiderpool_agent_auto_pool_wait_seconds_count{outcome="found"}'), 1);
  },
);

kubeTest(
  "auto-pool e2e: when the pool never comes the wait is bounded and the error names application and subnet",
  async () => {
    // The agent reads SPIDERPOOL_WAIT_SUBNET_POOL_* from its environment, inherited from this process.
    Deno.env.set("SPIDERPOOL_WAIT_SUBNET_POOL_MAX_RETRIES", "3");
    Deno.env.set("SPIDERPOOL_WAIT_SUBNET_POOL_TIME_IN_SECOND", "0.5");
    await using env = await e2e("ap-never");
    let node: SimNode;
    try {
      [node] = await env.startNodes(1);
    } finally {
      Deno.env.delete("SPIDERPOOL_WAIT_SUBNET_POOL_MAX_RETRIES");
      Deno.env.delete("SPIDERPOOL_WAIT_SUBNET_POOL_TIME_IN_SECOND");
    }
    await env.http.post(
      `/apis/apps/v1/namespaces/${env.namespace}/deployments`,
      deployment("orphan", 1, subnetAnnotation("no-such-subnet")),
    );
    const name = await controllerPod(env, "orphan");
    const pod = await env.bindPod(name, node);
    const sb = await env.sandbox(pod, node);
    const started = Date.now();
    const add = await env.add(sb);
    const took = Date.now() - started;
    assert.notEqual(add.code, 0);
    const msg = String(add.json?.msg ?? "") + String(add.json?.details ?? "");
    assert.match(msg, new RegExp(`Deployment ${env.namespace}/orphan`));
    assert.match(msg, /SpiderSubnet "no-such-subnet"/);
    assert.match(msg, /at most 3 × 0.5 s/);
    assert.ok(took >= 1_400 && took < 20_000, `the wait was bounded (${took} ms)`);
  },
);

kubeTest(
  "auto-pool e2e: a StatefulSet pod with an auto-pool keeps its address when it is recreated",
  async () => {
    await using env = await e2e("ap-sts");
    await using w = await autoPoolWorld("", { scope: env.scope });
    const [node] = await env.startNodes(1);
    const subnet = await w.subnet("s", 20, { from: 140 });
    await env.http.post(`/apis/apps/v1/namespaces/${env.namespace}/statefulsets`, {
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: { name: "db" },
      spec: {
        replicas: 2,
        serviceName: "db",
        selector: { matchLabels: { app: "db" } },
        template: {
          metadata: { labels: { app: "db" }, annotations: subnetAnnotation(subnet.name) },
          spec: {
            containers: [{ name: "c", image: "registry.invalid/pause:1" }],
            terminationGracePeriodSeconds: 30,
          },
        },
      },
    });
    await eventually("kube-controller-manager to make db-0", async () => {
      try {
        await env.http.get(`/api/v1/namespaces/${env.namespace}/pods/db-0`);
        return true;
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    }, 60_000);
    const first = await podUp(env, node, "db-0");
    const del = await env.deletePod(first.sb);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    const [pool] = await poolsOf(env.http, env.namespace, "db");
    assert.equal(size(pool), 3, "2 replicas + 1");
    assert.deepEqual(
      Object.keys(await poolRecords(env.http, pool.metadata.name)),
      [bareIP(first.address)],
      "kept",
    );

    await controllerPod(env, "db", first.sb.pod.uid);
    await eventually("db-0 to be recreated", async () => {
      const { body } = await env.http.get<PodObj>(`/api/v1/namespaces/${env.namespace}/pods/db-0`);
      return body.metadata.uid !== first.sb.pod.uid ? true : undefined;
    }, 60_000);
    const second = await podUp(env, node, "db-0");
    assert.equal(second.address, first.address);
    assert.deepEqual(await addressesIn(second.sb.netns, "eth0", 4), [first.address]);
    assert.deepEqual(await poolRecords(env.http, pool.metadata.name), {
      [bareIP(first.address)!]: { pod: `${env.namespace}/db-0`, podUid: second.sb.pod.uid },
    });
  },
);

kubeTest(
  "auto-pool e2e: a third-party controller's pod gets a fixed-size pool the agent makes; the controller reclaims it",
  async () => {
    await using env = await e2e("ap-third");
    await using w = await autoPoolWorld("", { scope: env.scope });
    const [node] = await env.startNodes(1);
    const subnet = await w.subnet("s", 20, { from: 160 });
    // A third-party kind served by the API server, as an operator would install it.
    const group = `${env.namespace}.example.com`;
    const crd = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.${group}`;
    await env.http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: `widgets.${group}` },
      spec: {
        group,
        scope: "Namespaced",
        names: { plural: "widgets", singular: "widget", kind: "Widget", listKind: "WidgetList" },
        versions: [{
          name: "v1",
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } },
        }],
      },
    });
    env.scope.track(crd);
    const widgets = `/apis/${group}/v1/namespaces/${env.namespace}/widgets`;
    const widget = await eventually("the Widget kind to be served", async () => {
      try {
        return (await env.http.post<PodObj>(widgets, {
          apiVersion: `${group}/v1`,
          kind: "Widget",
          metadata: { name: "gadget" },
        })).body;
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    });
    const owner = [{
      apiVersion: `${group}/v1`,
      kind: "Widget",
      name: "gadget",
      uid: widget.metadata.uid,
      controller: true,
    }];

    // A flexible size cannot be served: the agent cannot count a third-party controller's replicas.
    const flexible = await env.createPod("flex", node, {
      annotations: subnetAnnotation(subnet.name),
      ownerReferences: owner,
    });
    const refused = await env.add(await env.sandbox(flexible, node));
    assert.notEqual(refused.code, 0);
    assert.match(
      String(refused.json?.msg ?? "") + String(refused.json?.details ?? ""),
      /only supports fixed auto-created IPPool IP Number/,
    );

    const fixed = { ...subnetAnnotation(subnet.name), "ipam.spidernet.io/ippool-ip-number": "3" };
    const pod = await env.createPod("gadget-1", node, { annotations: fixed, ownerReferences: owner });
    const sb = await env.sandbox(pod, node);
    const add = await env.add(sb);
    assert.equal(add.code, 0, `${add.stdout} ${add.stderr}`);
    assert.equal(resultAddresses(add)[0], `${subnet.prefix}160/24`);
    const [pool] = await poolsOf(env.http, env.namespace, "gadget");
    assert.equal(pool.metadata.labels?.["ipam.spidernet.io/owner-application-kind"], "Widget");
    assert.equal(pool.metadata.labels?.["ipam.spidernet.io/owner-application-gv"], `${group}_v1`);
    assert.equal(size(pool), 3);
    const entries = decodeControlledIPPools(
      (await getSubnet(env.http, subnet.name)).status?.controlledIPPools,
      subnet.name,
    );
    assert.deepEqual(entries[pool.metadata.name], {
      ips: [`${subnet.prefix}160-${subnet.prefix}162`],
      application: `${group}_v1_Widget_${env.namespace}_gadget`,
    });
    await w.apps.settled();
    assert.ok(
      await getPool(env.http, pool.metadata.name),
      "the controller leaves a live application's pool alone",
    );

    // The Widget goes: the controller finds it gone through discovery and deletes the reclaimable pool.
    await env.deletePod(sb);
    await env.http.delete(`${widgets}/gadget`);
    w.apps.resync();
    await eventually("the third-party pool to be deleted", async () => {
      const now = await getPool(env.http, pool.metadata.name);
      return now === undefined || now.metadata.deletionTimestamp ? true : undefined;
    });
    // The agent's pool carries no label of this test's pool reconciler, which would now drop the finalizer.
    await env.http.patch(`${POOLS}/${pool.metadata.name}`, { metadata: { finalizers: null } }, "merge")
      .catch((err) => {
        if (!(err instanceof NotFoundError)) throw err;
      });
    await eventually("its pre-allocation to be dropped", async () => {
      const s = await getSubnet(env.http, subnet.name);
      return decodeControlledIPPools(s.status?.controlledIPPools, subnet.name)[pool.metadata.name]
        ? undefined
        : true;
    });
  },
);
