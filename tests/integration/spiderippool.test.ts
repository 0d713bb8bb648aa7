// SpiderIPPool objects through @kubernetes/client-node against a real kube-apiserver: the reads, writes and
// watches the IPAM agent and controller depend on, and what `kubectl get sp` shows.

import assert from "node:assert/strict";
import { ApiException, CustomObjectsApi, Watch } from "@kubernetes/client-node";
import { kubeTest, poll, type TestScope, testScope } from "../kube/harness.ts";

const GROUP = "spiderpool.spidernet.io";
const VERSION = "v2beta1";
const PLURAL = "spiderippools";
const POOLS = `/apis/${GROUP}/${VERSION}/${PLURAL}`;

interface SpiderIPPool {
  apiVersion: string;
  kind: string;
  metadata: { name: string; uid?: string; resourceVersion?: string; labels?: Record<string, string> };
  spec: { ipVersion?: number; subnet: string; ips?: string[]; default?: boolean; disable?: boolean };
  status?: { allocatedIPs?: string; allocatedIPCount?: number; totalIPCount?: number };
}

/** Creates a pool owned by `scope` (deleted when the scope ends) through client-node. */
async function createPool(
  scope: TestScope,
  suffix: string,
  spec?: SpiderIPPool["spec"],
): Promise<SpiderIPPool> {
  const name = scope.name(suffix);
  scope.track(`${POOLS}/${name}`);
  const api = scope.cluster.kc.makeApiClient(CustomObjectsApi);
  return await api.createClusterCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: "SpiderIPPool",
      metadata: { name, labels: { "spiderpool.spidernet.io/test-scope": scope.namespace } },
      spec: spec ?? { ipVersion: 4, subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] },
    },
  }) as SpiderIPPool;
}

kubeTest(
  "SpiderIPPool created through client-node is returned by get and list with defaults applied",
  async () => {
    await using scope = await testScope("pool-crud", { serviceAccount: false });
    const api = scope.cluster.kc.makeApiClient(CustomObjectsApi);
    const created = await createPool(scope, "v4");

    const got = await api.getClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      name: created.metadata.name,
    }) as SpiderIPPool;
    assert.equal(got.metadata.uid, created.metadata.uid);
    assert.deepEqual(got.spec, {
      ipVersion: 4,
      subnet: "192.0.2.0/24",
      ips: ["192.0.2.10-192.0.2.20"],
      // Schema defaults, filled in by the API server.
      default: false,
      disable: false,
    });

    const list = await api.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      labelSelector: `spiderpool.spidernet.io/test-scope=${scope.namespace}`,
    }) as { items: SpiderIPPool[] };
    assert.deepEqual(list.items.map((p) => p.metadata.name), [created.metadata.name]);
  },
);

kubeTest("SpiderIPPool watch delivers ADDED, MODIFIED and DELETED events in order", async () => {
  await using scope = await testScope("pool-watch", { serviceAccount: false });
  const events: [string, string | undefined][] = [];
  let watchEnded: unknown = "still running";
  const selector = `spiderpool.spidernet.io/test-scope=${scope.namespace}`;
  const { http, kc } = scope.cluster;
  const list = await http.get<{ metadata: { resourceVersion: string } }>(
    `${POOLS}?labelSelector=${selector}`,
  );
  const controller = await new Watch(kc).watch(
    POOLS,
    { labelSelector: selector, resourceVersion: list.body.metadata.resourceVersion },
    (phase, obj: SpiderIPPool) => events.push([phase, obj.spec?.ips?.[0]]),
    (err) => watchEnded = err,
  );
  try {
    const pool = await createPool(scope, "watched");
    await http.patch(`${POOLS}/${pool.metadata.name}`, { spec: { ips: ["192.0.2.30"] } });
    await http.delete(`${POOLS}/${pool.metadata.name}`);
    await poll("three watch events", 10_000, () => Promise.resolve(events.length >= 3 ? true : undefined));
    assert.deepEqual(events, [
      ["ADDED", "192.0.2.10-192.0.2.20"],
      ["MODIFIED", "192.0.2.30"],
      ["DELETED", "192.0.2.30"],
    ]);
    assert.equal(watchEnded, "still running");
  } finally {
    controller.abort();
  }
});

kubeTest(
  "SpiderIPPool status update with a stale resourceVersion gets 409 and succeeds with the fresh one",
  async () => {
    await using scope = await testScope("pool-status", { serviceAccount: false });
    const api = scope.cluster.kc.makeApiClient(CustomObjectsApi);
    const pool = await createPool(scope, "status");
    const name = pool.metadata.name;
    const replaceStatus = (body: SpiderIPPool) =>
      api.replaceClusterCustomObjectStatus({ group: GROUP, version: VERSION, plural: PLURAL, name, body });

    // Another writer (say, a second agent) allocates first and moves the resourceVersion on.
    const first = await replaceStatus({
      ...pool,
      status: { allocatedIPCount: 1, totalIPCount: 11 },
    }) as SpiderIPPool;
    assert.notEqual(first.metadata.resourceVersion, pool.metadata.resourceVersion);

    const stale = await replaceStatus({ ...pool, status: { allocatedIPCount: 2, totalIPCount: 11 } }).then(
      () => assert.fail("status update with a stale resourceVersion was accepted"),
      (err) => err,
    );
    assert.ok(stale instanceof ApiException, `expected ApiException, got ${stale}`);
    assert.equal(stale.code, 409);
    assert.equal(JSON.parse(stale.body).reason, "Conflict");

    const fresh = await api.getClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      name,
    }) as SpiderIPPool;
    await replaceStatus({
      ...fresh,
      status: { allocatedIPCount: (fresh.status?.allocatedIPCount ?? 0) + 1, totalIPCount: 11 },
    });
    const after = await api.getClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      name,
    }) as SpiderIPPool;
    assert.deepEqual(after.status, { allocatedIPCount: 2, totalIPCount: 11 });
  },
);

kubeTest("SpiderIPPool status subresource ignores spec changes sent with the status", async () => {
  await using scope = await testScope("pool-status-spec", { serviceAccount: false });
  const api = scope.cluster.kc.makeApiClient(CustomObjectsApi);
  const pool = await createPool(scope, "status");
  await api.replaceClusterCustomObjectStatus({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    name: pool.metadata.name,
    body: { ...pool, spec: { ...pool.spec, ips: ["192.0.2.99"] }, status: { totalIPCount: 11 } },
  });
  const got = await api.getClusterCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    name: pool.metadata.name,
  }) as SpiderIPPool;
  assert.deepEqual(got.spec.ips, ["192.0.2.10-192.0.2.20"]);
  assert.equal(got.status?.totalIPCount, 11);
});

interface Table {
  kind: string;
  columnDefinitions: { name: string; priority: number }[];
  rows: { cells: unknown[] }[];
}

kubeTest("SpiderIPPool printer columns are served as a Table", async () => {
  await using scope = await testScope("pool-table", { serviceAccount: false });
  const pool = await createPool(scope, "table", {
    ipVersion: 6,
    subnet: "2001:db8:1::/64",
    ips: ["2001:db8:1::10-2001:db8:1::20"],
  });
  const { http, crds } = scope.cluster;
  await http.put(`${POOLS}/${pool.metadata.name}/status`, {
    ...pool,
    status: { allocatedIPCount: 3, totalIPCount: 17 },
  });

  const { body: table } = await http.get<Table>(`${POOLS}/${pool.metadata.name}`, {
    accept: "application/json;as=Table;v=v1;g=meta.k8s.io",
  });
  assert.equal(table.kind, "Table");
  const declared = crds.find((c) => c.spec.names.plural === PLURAL)!.spec.versions
    .find((v) => v.name === VERSION)!.additionalPrinterColumns!.map((c) => c.name);
  const columns = table.columnDefinitions.map((c) => c.name);
  // With declared columns the server adds only Name; Age appears only when the CRD declares it.
  assert.deepEqual(columns, ["Name", ...declared]);
  const cell = (name: string) => table.rows[0].cells[columns.indexOf(name)];
  assert.equal(cell("Name"), pool.metadata.name);
  // VERSION is declared as a string column (as upstream Spiderpool does), so the server renders "6".
  assert.equal(cell("VERSION"), "6");
  assert.equal(cell("SUBNET"), "2001:db8:1::/64");
  assert.equal(cell("ALLOCATED-IP-COUNT"), 3);
  assert.equal(cell("TOTAL-IP-COUNT"), 17);
  assert.equal(cell("DEFAULT"), false);
});
