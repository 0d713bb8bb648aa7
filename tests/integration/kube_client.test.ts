// The project's Kubernetes clients (src/kube/client.ts, src/kube/client_node.ts) against a real kube-apiserver:
// pooled connections for client-node, and KubeHttp's results and typed errors.

import assert from "node:assert/strict";
import { CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import {
  ConflictError,
  KubeHttp,
  KubeHttpError,
  KubeTimeoutError,
  NotFoundError,
} from "../../src/kube/client.ts";
import { closeKubeConfig, loadKubeConfig } from "../../src/kube/client_node.ts";
import { getCluster, kubeTest, type TestScope, testScope } from "../kube/harness.ts";

const GROUP = "spiderpool.spidernet.io";
const VERSION = "v2beta1";
const POOLS = `/apis/${GROUP}/${VERSION}/spiderippools`;

interface Pool {
  apiVersion: string;
  kind: string;
  metadata: { name: string; resourceVersion?: string };
  spec: { ipVersion: number; subnet: string; ips?: string[] };
  status?: { allocatedIPCount?: number };
}

function poolBody(name: string): Pool {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "SpiderIPPool",
    metadata: { name },
    spec: { ipVersion: 4, subnet: "198.51.100.0/24", ips: ["198.51.100.10-198.51.100.20"] },
  };
}

async function createPool(scope: TestScope, suffix: string): Promise<Pool> {
  const name = scope.name(suffix);
  scope.track(`${POOLS}/${name}`);
  return (await scope.cluster.http.post<Pool>(POOLS, poolBody(name))).body;
}

/** Established TCP connections from this process to `port` on the loopback (from /proc, no tooling). */
function connectionsTo(port: number): number {
  const inodes = new Set<string>();
  for (const fd of Deno.readDirSync("/proc/self/fd")) {
    try {
      const m = Deno.readLinkSync(`/proc/self/fd/${fd.name}`).match(/^socket:\[(\d+)\]$/);
      if (m) inodes.add(m[1]);
    } catch { /* closed while listing */ }
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  let n = 0;
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of Deno.readTextFileSync(table).split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // f[2] is rem_address (ADDR:PORT), f[3] the state (01 = ESTABLISHED), f[9] the inode.
      if (f.length > 9 && f[2].endsWith(`:${hexPort}`) && f[3] === "01" && inodes.has(f[9])) n++;
    }
  }
  return n;
}

async function getPoolNTimes(kc: KubeConfig, name: string, n: number): Promise<void> {
  const api = kc.makeApiClient(CustomObjectsApi);
  for (let i = 0; i < n; i++) {
    await api.getClusterCustomObject({ group: GROUP, version: VERSION, plural: "spiderippools", name });
  }
}

kubeTest("client-node from loadKubeConfig sends 20 sequential requests over one TCP connection", async () => {
  await using scope = await testScope("client-pooled", { serviceAccount: false });
  const pool = await createPool(scope, "p");
  const kc = loadKubeConfig(scope.cluster.kubeconfigPath);
  const port = Number(new URL(kc.getCurrentCluster()!.server).port);
  const before = connectionsTo(port);
  try {
    await getPoolNTimes(kc, pool.metadata.name, 20);
    assert.equal(connectionsTo(port) - before, 1);
  } finally {
    await closeKubeConfig(kc);
  }
});

kubeTest("client-node 2.0.1 without the factory opens a new TCP connection per request", async () => {
  await using scope = await testScope("client-plain", { serviceAccount: false });
  const pool = await createPool(scope, "p");
  const kc = new KubeConfig();
  kc.loadFromFile(scope.cluster.kubeconfigPath);
  const port = Number(new URL(kc.getCurrentCluster()!.server).port);
  const before = connectionsTo(port);
  await getPoolNTimes(kc, pool.metadata.name, 10);
  // Idle connections of the discarded agents linger for undici's keep-alive timeout (4 s) before closing.
  assert.ok(
    connectionsTo(port) - before >= 5,
    `expected ≥ 5 new connections, saw ${connectionsTo(port) - before}`,
  );
});

kubeTest("KubeHttp get returns status 200 and the parsed object", async () => {
  await using scope = await testScope("http-get", { serviceAccount: false });
  const pool = await createPool(scope, "p");
  const res = await scope.cluster.http.get<Pool>(`${POOLS}/${pool.metadata.name}`);
  assert.equal(res.status, 200);
  assert.equal(res.body.metadata.name, pool.metadata.name);
  assert.deepEqual(res.body.spec.ips, ["198.51.100.10-198.51.100.20"]);
});

kubeTest("KubeHttp post returns 201 and the created object", async () => {
  await using scope = await testScope("http-post", { serviceAccount: false });
  const name = scope.name("p");
  scope.track(`${POOLS}/${name}`);
  const res = await scope.cluster.http.post<Pool>(POOLS, poolBody(name));
  assert.equal(res.status, 201);
  assert.ok(res.body.metadata.resourceVersion);
});

kubeTest("KubeHttp get of a missing object throws NotFoundError", async () => {
  const { http } = await getCluster();
  const err = await http.get(`${POOLS}/does-not-exist`).then(
    () => assert.fail("got a missing object"),
    (e) => e,
  );
  assert.ok(err instanceof NotFoundError);
  assert.equal(err.status, 404);
  assert.equal(err.reason, "NotFound");
});

kubeTest(
  "KubeHttp status put with a stale resourceVersion throws ConflictError; the fresh one succeeds",
  async () => {
    await using scope = await testScope("http-conflict", { serviceAccount: false });
    const { http } = scope.cluster;
    const pool = await createPool(scope, "p");
    const path = `${POOLS}/${pool.metadata.name}/status`;
    await http.put(path, { ...pool, status: { allocatedIPCount: 1 } });

    const err = await http.put(path, { ...pool, status: { allocatedIPCount: 2 } }).then(
      () => assert.fail("stale resourceVersion accepted"),
      (e) => e,
    );
    assert.ok(err instanceof ConflictError);
    assert.equal(err.reason, "Conflict");

    const fresh = (await http.get<Pool>(`${POOLS}/${pool.metadata.name}`)).body;
    const res = await http.put<Pool>(path, { ...fresh, status: { allocatedIPCount: 2 } });
    assert.equal(res.body.status?.allocatedIPCount, 2);
  },
);

kubeTest("KubeHttp post of an existing name throws ConflictError with reason AlreadyExists", async () => {
  await using scope = await testScope("http-exists", { serviceAccount: false });
  const pool = await createPool(scope, "p");
  const err = await scope.cluster.http.post(POOLS, poolBody(pool.metadata.name)).then(
    () => assert.fail("duplicate accepted"),
    (e) => e,
  );
  assert.ok(err instanceof ConflictError);
  assert.equal(err.reason, "AlreadyExists");
});

kubeTest("KubeHttp merge patch changes only the given fields", async () => {
  await using scope = await testScope("http-patch", { serviceAccount: false });
  const pool = await createPool(scope, "p");
  const res = await scope.cluster.http.patch<Pool>(`${POOLS}/${pool.metadata.name}`, {
    spec: { ips: ["198.51.100.30"] },
  });
  assert.deepEqual(res.body.spec.ips, ["198.51.100.30"]);
  assert.equal(res.body.spec.subnet, "198.51.100.0/24");
});

kubeTest("KubeHttp surfaces an RBAC refusal as KubeHttpError with status 403", async () => {
  const { kc } = await getCluster();
  const cluster = kc.getCurrentCluster()!;
  using anonymous = new KubeHttp({ server: cluster.server, caPem: atob(cluster.caData!) });
  const err = await anonymous.get(POOLS).then(() => assert.fail("anonymous list allowed"), (e) => e);
  assert.ok(
    err instanceof KubeHttpError && !(err instanceof NotFoundError) && !(err instanceof ConflictError),
  );
  // Without a token the request runs as system:anonymous, which RBAC does not allow to list pools.
  assert.equal(err.status, 403);
  assert.equal(err.reason, "Forbidden");
});

kubeTest(
  "KubeHttp aborts a request the server holds open after timeoutMs, naming method, path and deadline",
  async () => {
    const { http } = await getCluster();
    // A watch is answered with headers at once and then held open: the deadline must cover the body too.
    const path = `${POOLS}?watch=true`;
    const started = Date.now();
    const err = await http.get(path, { timeoutMs: 500 }).then(
      () => assert.fail("a watch returned within 500 ms"),
      (e) => e,
    );
    const elapsed = Date.now() - started;
    assert.ok(err instanceof KubeTimeoutError, `expected KubeTimeoutError, got ${err}`);
    assert.equal(err.method, "GET");
    assert.equal(err.path, path);
    assert.equal(err.timeoutMs, 500);
    assert.match(
      err.message,
      /^GET \/apis\/spiderpool\.spidernet\.io\/v2beta1\/spiderippools\?watch=true: .* 500 ms/,
    );
    assert.ok(elapsed >= 450 && elapsed < 5_000, `aborted after ${elapsed} ms`);
  },
);

kubeTest("KubeHttp with a short default timeout still completes ordinary requests", async () => {
  await using scope = await testScope("http-timeout-ok", { serviceAccount: false });
  const pool = await createPool(scope, "p");
  using quick = await KubeHttp.fromKubeConfig(scope.cluster.kc, { timeoutMs: 2_000 });
  const got = await quick.get<Pool>(`${POOLS}/${pool.metadata.name}`);
  assert.equal(got.body.metadata.name, pool.metadata.name);
  const patched = await quick.patch<Pool>(`${POOLS}/${pool.metadata.name}`, {
    spec: { ips: ["198.51.100.40"] },
  });
  assert.deepEqual(patched.body.spec.ips, ["198.51.100.40"]);
});

kubeTest("KubeHttp timeoutMs 0 lets a watch outlive the client's default deadline", async () => {
  const { kc } = await getCluster();
  using quick = await KubeHttp.fromKubeConfig(kc, { timeoutMs: 300 });
  const stop = AbortSignal.timeout(1_500);
  const started = Date.now();
  const err = await quick.get(`${POOLS}?watch=true`, { timeoutMs: 0, signal: stop }).then(
    () => assert.fail("a watch returned"),
    (e) => e,
  );
  // Only the caller's own signal ended it, long after the 300 ms default.
  assert.ok(!(err instanceof KubeTimeoutError), `the default deadline applied: ${err}`);
  assert.ok(stop.aborted);
  assert.ok(Date.now() - started >= 1_400, `ended after ${Date.now() - started} ms`);
});
