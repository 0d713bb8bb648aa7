// deploy/rbac.yaml against the real API server with RBAC authorization: the agent's ServiceAccount can do
// what IPAM needs (read pools, write pool status, own SpiderEndpoints, make third-party controllers' auto-pools)
// and nothing that would let a node delete pools or change a subnet's spec.
import assert from "node:assert/strict";
import { kubeTest, testScope } from "../kube/harness.ts";
import { applyRbac, clientAs, statusOf } from "./rbac_kit.ts";

const POOLS = "/apis/spiderpool.spidernet.io/v2beta1/spiderippools";

kubeTest(
  "the agent's ServiceAccount may allocate (pool status, endpoints) and make auto-pools, but not delete pools",
  async () => {
    await using scope = await testScope("rbac");
    const { http } = scope.cluster;
    for (const path of await applyRbac(http)) scope.track(path);
    const name = scope.name("pool");
    scope.track(`${POOLS}/${name}`);
    const { body: pool } = await http.post<{ metadata: { resourceVersion: string } }>(POOLS, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderIPPool",
      metadata: { name },
      spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] },
    });
    // RBAC changes reach the authorizer's cache asynchronously; the first allowed call is retried briefly.
    const agent = await clientAs(scope, "kube-system", "spiderpool-agent");
    try {
      let listed = 0;
      for (let i = 0; i < 50 && (listed = await statusOf(agent.get(POOLS))) === 403; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(listed, 200, "agent cannot list SpiderIPPools");

      const status = {
        apiVersion: "spiderpool.spidernet.io/v2beta1",
        kind: "SpiderIPPool",
        metadata: { name, resourceVersion: pool.metadata.resourceVersion },
        spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] },
        status: {
          allocatedIPs: JSON.stringify({ "192.0.2.10": { pod: `${scope.namespace}/p`, podUid: "u1" } }),
          allocatedIPCount: 1,
        },
      };
      assert.equal(
        await statusOf(agent.put(`${POOLS}/${name}/status`, status)),
        200,
        "agent cannot write status",
      );
      // Auto-pools of third-party controllers: the agent creates and resizes them (the webhook checks both).
      assert.equal(
        await statusOf(
          agent.patch(`${POOLS}/${name}?dryRun=All`, { spec: { ips: ["192.0.2.10-192.0.2.30"] } }),
        ),
        200,
        "agent cannot resize an auto-pool",
      );
      assert.equal(
        await statusOf(agent.post(`${POOLS}?dryRun=All`, {
          apiVersion: "spiderpool.spidernet.io/v2beta1",
          kind: "SpiderIPPool",
          metadata: { name: scope.name("auto") },
          spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips: ["192.0.2.40"] },
        })),
        200,
        "agent cannot create an auto-pool",
      );
      const subnets = "/apis/spiderpool.spidernet.io/v2beta1/spidersubnets";
      assert.equal(
        await statusOf(agent.patch(`${subnets}/x/status?dryRun=All`, { status: { allocatedIPCount: 1 } })),
        404,
        "agent cannot pre-allocate from a subnet (patch its status)",
      );
      assert.equal(
        await statusOf(agent.patch(`${subnets}/x?dryRun=All`, { spec: { ips: [] } })),
        403,
        "agent may change a subnet's spec",
      );
      assert.equal(await statusOf(agent.delete(`${POOLS}/${name}`)), 403, "agent may delete pools");

      const endpoints = `/apis/spiderpool.spidernet.io/v2beta1/namespaces/${scope.namespace}/spiderendpoints`;
      const endpoint = {
        apiVersion: "spiderpool.spidernet.io/v2beta1",
        kind: "SpiderEndpoint",
        metadata: { name: "p" },
        status: {
          current: {
            uid: "u1",
            node: "node-a",
            ips: [{ interface: "eth0", ipv4: "192.0.2.10/24", ipv4Pool: name }],
          },
          ownerControllerType: "Pod",
          ownerControllerName: "p",
        },
      };
      assert.equal(
        await statusOf(agent.post(endpoints, endpoint)),
        200,
        "agent cannot create SpiderEndpoints",
      );
      assert.equal(
        await statusOf(agent.delete(`${endpoints}/p`)),
        200,
        "agent cannot delete SpiderEndpoints",
      );
      assert.equal(await statusOf(agent.get(`/api/v1/namespaces/${scope.namespace}/pods`)), 200);
      assert.equal(
        await statusOf(agent.post(`/api/v1/namespaces/${scope.namespace}/configmaps`, {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "x" },
        })),
        403,
        "agent may create ConfigMaps",
      );
      const { body: after } = await http.get<{ status?: { allocatedIPCount?: number } }>(`${POOLS}/${name}`);
      assert.equal(after.status?.allocatedIPCount, 1);
    } finally {
      agent.close();
    }
  },
);
