// kube-controller-manager behaviour the project relies on, through @kubernetes/client-node: garbage collection
// of objects owned by a Pod (how SpiderEndpoints follow their Pods) and Deployment → ReplicaSet → Pod creation.
// No scheduler or kubelet runs, so Pods stay Pending; that is enough for both.

import assert from "node:assert/strict";
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type V1Pod } from "@kubernetes/client-node";
import { NotFoundError } from "../../src/kube/client.ts";
import { kubeTest, poll, type TestScope, testScope } from "../kube/harness.ts";

// The garbage collector rediscovers resource types every 30 s, so a freshly installed CRD may take that long.
const GC_TIMEOUT_MS = 60_000;

function podSpec(scope: TestScope, name: string): V1Pod {
  return {
    metadata: { name, namespace: scope.namespace, labels: { app: name } },
    // Never pulled: nothing runs containers here.
    spec: { containers: [{ name: "main", image: "registry.invalid/pause:3" }] },
  };
}

/** Resolves once GET `path` answers 404. */
function gone(scope: TestScope, path: string, timeoutMs: number): Promise<true> {
  return poll(`${path} to be garbage-collected`, timeoutMs, async () => {
    try {
      await scope.cluster.http.get(path);
      return undefined;
    } catch (err) {
      if (err instanceof NotFoundError) return true;
      throw err;
    }
  });
}

kubeTest("ConfigMap owned by a Pod is garbage-collected after the Pod is deleted", async () => {
  await using scope = await testScope("gc-configmap");
  const core = scope.cluster.kc.makeApiClient(CoreV1Api);
  const ns = scope.namespace;
  const pod = await core.createNamespacedPod({ namespace: ns, body: podSpec(scope, "owner") });
  await core.createNamespacedConfigMap({
    namespace: ns,
    body: {
      metadata: {
        name: "dependent",
        ownerReferences: [{ apiVersion: "v1", kind: "Pod", name: "owner", uid: pod.metadata!.uid! }],
      },
      data: { ip: "192.0.2.10" },
    },
  });
  const path = `/api/v1/namespaces/${ns}/configmaps/dependent`;

  await core.deleteNamespacedPod({ namespace: ns, name: "owner", gracePeriodSeconds: 0 });
  await gone(scope, path, GC_TIMEOUT_MS);
});

kubeTest("SpiderEndpoint owned by a Pod is garbage-collected after the Pod is deleted", async () => {
  await using scope = await testScope("gc-endpoint");
  const { kc } = scope.cluster;
  const core = kc.makeApiClient(CoreV1Api);
  const ns = scope.namespace;
  const pod = await core.createNamespacedPod({ namespace: ns, body: podSpec(scope, "owner") });
  const objects = kc.makeApiClient(CustomObjectsApi);
  await objects.createNamespacedCustomObject({
    group: "spiderpool.spidernet.io",
    version: "v2beta1",
    plural: "spiderendpoints",
    namespace: ns,
    body: {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderEndpoint",
      metadata: {
        name: "owner",
        ownerReferences: [{ apiVersion: "v1", kind: "Pod", name: "owner", uid: pod.metadata!.uid! }],
      },
      status: {
        current: {
          uid: pod.metadata!.uid!,
          node: "node-a",
          ips: [{ interface: "eth0", ipv4: "192.0.2.10/24", ipv4Pool: "pool-a" }],
        },
        ownerControllerType: "Pod",
        ownerControllerName: "owner",
      },
    },
  });
  const path = `/apis/spiderpool.spidernet.io/v2beta1/namespaces/${ns}/spiderendpoints/owner`;

  await core.deleteNamespacedPod({ namespace: ns, name: "owner", gracePeriodSeconds: 0 });
  await gone(scope, path, GC_TIMEOUT_MS);
});

kubeTest("Deployment gets a ReplicaSet that creates its Pods", async () => {
  await using scope = await testScope("deployment");
  const { kc } = scope.cluster;
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const ns = scope.namespace;
  const deployment = await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: "web" },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: "web" } },
        template: {
          metadata: { labels: { app: "web" } },
          spec: { containers: [{ name: "main", image: "registry.invalid/pause:3" }] },
        },
      },
    },
  });

  const rs = await poll("the Deployment's ReplicaSet", 30_000, async () => {
    const list = await apps.listNamespacedReplicaSet({ namespace: ns });
    return list.items.find((r) =>
      r.metadata?.ownerReferences?.some((o) => o.uid === deployment.metadata!.uid)
    );
  });
  assert.equal(rs.spec?.replicas, 2);

  const pods = await poll("2 Pods of the ReplicaSet", 30_000, async () => {
    const list = await core.listNamespacedPod({ namespace: ns, labelSelector: "app=web" });
    return list.items.length === 2 ? list.items : undefined;
  });
  for (const pod of pods) {
    assert.deepEqual(
      pod.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.controller]),
      [["ReplicaSet", rs.metadata!.name, true]],
    );
    // The ServiceAccount admission plugin (kept on because the controller-manager runs) mounted the token.
    assert.equal(pod.spec?.serviceAccountName, "default");
  }
});
