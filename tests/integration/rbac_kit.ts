// Helpers of the RBAC tests: apply deploy/rbac.yaml (and other cluster-scoped manifests) to the test cluster, act
// as one of its ServiceAccounts with a short-lived token (as a client, or as a kubeconfig file for a process),
// and tell an authorised answer (any status but 403) from a refused one.
import assert from "node:assert/strict";
import { loadAll } from "js-yaml";
import { KubeHttp, KubeHttpError } from "../../src/kube/client.ts";
import type { TestScope } from "../kube/harness.ts";

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

const RBAC = "/apis/rbac.authorization.k8s.io/v1";
const PATHS: Record<string, (m: Manifest) => string> = {
  ServiceAccount: (m) => `/api/v1/namespaces/${m.metadata.namespace}/serviceaccounts/${m.metadata.name}`,
  ClusterRole: (m) => `${RBAC}/clusterroles/${m.metadata.name}`,
  ClusterRoleBinding: (m) => `${RBAC}/clusterrolebindings/${m.metadata.name}`,
  Role: (m) => `${RBAC}/namespaces/${m.metadata.namespace}/roles/${m.metadata.name}`,
  RoleBinding: (m) => `${RBAC}/namespaces/${m.metadata.namespace}/rolebindings/${m.metadata.name}`,
};

/** Server-side applies every object of deploy/rbac.yaml; returns their paths for clean-up. */
export async function applyRbac(http: KubeHttp): Promise<string[]> {
  const text = await Deno.readTextFile(new URL("../../deploy/rbac.yaml", import.meta.url));
  const paths: string[] = [];
  for (const m of loadAll(text) as Manifest[]) {
    const path = PATHS[m.kind]?.(m);
    assert.ok(path, `deploy/rbac.yaml has a ${m.kind}, which this test does not know how to apply`);
    await http.patch(`${path}?fieldManager=spiderpool-test&force=true`, m, "apply");
    paths.push(path);
  }
  return paths;
}

/** A client authenticated as `namespace/name`'s ServiceAccount with a short-lived token. */
export async function clientAs(scope: TestScope, namespace: string, name: string): Promise<KubeHttp> {
  const cluster = scope.cluster.kc.getCurrentCluster()!;
  const caPem = cluster.caData ? atob(cluster.caData) : await Deno.readTextFile(cluster.caFile!);
  const token = await tokenOf(scope, namespace, name);
  return new KubeHttp({
    server: cluster.server,
    caPem,
    authorization: () => Promise.resolve(`Bearer ${token}`),
  });
}

/** The HTTP status a request ends with (200 for any success). */
export async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof KubeHttpError) return err.status;
    throw err;
  }
}

/** Retries `call` while it is refused: RBAC changes reach the authorizer's cache asynchronously. */
export async function whenAuthorised(call: () => Promise<unknown>): Promise<number> {
  let status = 403;
  for (let i = 0; i < 50 && (status = await statusOf(call())) === 403; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  return status;
}

/** A short-lived token of `namespace/name`'s ServiceAccount. */
async function tokenOf(scope: TestScope, namespace: string, name: string): Promise<string> {
  const { body } = await scope.cluster.http.post<{ status: { token: string } }>(
    `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
    { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 900 } },
  );
  return body.status.token;
}

/**
 * Writes a kubeconfig at `path` that authenticates as `namespace/name`'s ServiceAccount with a short-lived
 * token, for a process of ours to run as that ServiceAccount (what it would get in a pod).
 */
export async function kubeconfigAs(
  scope: TestScope,
  namespace: string,
  name: string,
  path: string,
): Promise<string> {
  const cluster = scope.cluster.kc.getCurrentCluster()!;
  const caPem = cluster.caData ? atob(cluster.caData) : await Deno.readTextFile(cluster.caFile!);
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{
      name: "test",
      cluster: { server: cluster.server, "certificate-authority-data": btoa(caPem) },
    }],
    users: [{ name, user: { token: await tokenOf(scope, namespace, name) } }],
    contexts: [{ name, context: { cluster: "test", user: name, namespace } }],
    "current-context": name,
  };
  await Deno.writeTextFile(path, JSON.stringify(config), { mode: 0o600 });
  return path;
}

/** Server-side applies every object of `deploy/<file>` that is cluster-scoped; returns their paths. */
export async function applyClusterManifest(
  http: KubeHttp,
  file: string,
  paths: Record<string, (m: Manifest) => string>,
): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(`../../deploy/${file}`, import.meta.url));
  const out: string[] = [];
  for (const m of loadAll(text) as Manifest[]) {
    const path = paths[m.kind]?.(m);
    assert.ok(path, `deploy/${file} has a ${m.kind}, which this test does not know how to apply`);
    await http.patch(`${path}?fieldManager=kubectl&force=true`, m, "apply");
    out.push(path);
  }
  return out;
}
