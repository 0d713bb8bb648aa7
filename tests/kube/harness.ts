// Shared real control plane for the integration tests: the one named by $SPIDERPOOL_TEST_KUBECONFIG (the test
// script starts one per run), else one started on first use and stopped when the process exits. Installs the
// project's CRDs from crds/ and gives each test its own namespace and clean-up.

import type { KubeConfig } from "@kubernetes/client-node";
import { KubeHttp, NotFoundError } from "../../src/kube/client.ts";
import { closeKubeConfig, loadKubeConfig } from "../../src/kube/client_node.ts";
import { type ControlPlane, startControlPlane } from "./controlplane.ts";
import { CRD_DIR, type CustomResourceDefinition, installCrds, MULTUS_CRD_DIR } from "./crds.ts";
import { poll } from "./poll.ts";

export { type CustomResourceDefinition, readCrds } from "./crds.ts";
export { poll } from "./poll.ts";

export interface TestCluster {
  kubeconfigPath: string;
  /** client-node config through the project's factory (pooled connections). */
  kc: KubeConfig;
  /** The project's fetch client, also used by the harness itself. */
  http: KubeHttp;
  /** The CRDs read from crds/, as installed. */
  crds: CustomResourceDefinition[];
}

let shared: Promise<TestCluster> | undefined;

/** The control plane for this test process, with crds/ installed and Established. */
export function getCluster(): Promise<TestCluster> {
  shared ??= connect().catch((err) => {
    shared = undefined;
    throw err;
  });
  return shared;
}

async function connect(): Promise<TestCluster> {
  let kubeconfigPath = Deno.env.get("SPIDERPOOL_TEST_KUBECONFIG");
  let cp: ControlPlane | undefined;
  if (!kubeconfigPath) {
    // CRDs go in before the controller-manager starts, so its garbage collector watches SpiderEndpoints from
    // the start rather than after its 30 s rediscovery.
    cp = await startControlPlane({ crdDir: CRD_DIR });
    kubeconfigPath = cp.kubeconfigPath;
    const running = cp;
    // unload cannot await; the components' parent-death signal ends them anyway, this also removes the dir.
    globalThis.addEventListener("unload", () => running.kill());
  }
  const kc = loadKubeConfig(kubeconfigPath);
  const http = await KubeHttp.fromKubeConfig(kc);
  try {
    const crds = await installCrds(http, CRD_DIR);
    await installCrds(http, MULTUS_CRD_DIR);
    return { kubeconfigPath, kc, http, crds };
  } catch (err) {
    http.close();
    await closeKubeConfig(kc);
    throw err;
  }
}

/**
 * One test's footprint in the cluster: a fresh namespace plus cluster-scoped objects registered with `track`,
 * all deleted on dispose. Use with `await using`.
 */
export interface TestScope extends AsyncDisposable {
  cluster: TestCluster;
  namespace: string;
  /** A name unique to this test, for cluster-scoped objects: `${prefix}-${suffix}`. */
  name(suffix: string): string;
  /** Registers an API path (e.g. `/apis/.../spiderippools/x`) to delete when the scope ends. */
  track(path: string): void;
}

export interface ScopeOptions {
  /** Wait for the namespace's "default" ServiceAccount (created by kube-controller-manager); Pods need it.
   * Default true. */
  serviceAccount?: boolean;
}

/** Creates a namespace named after `prefix` (lower-case, unique) and returns the scope that owns it. */
export async function testScope(prefix: string, opts: ScopeOptions = {}): Promise<TestScope> {
  const cluster = await getCluster();
  const { http } = cluster;
  const id = `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
  await http.post("/api/v1/namespaces", {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: id, labels: { "spiderpool.spidernet.io/test": "true" } },
  });
  const tracked: string[] = [];
  const scope: TestScope = {
    cluster,
    namespace: id,
    name: (suffix) => `${id}-${suffix}`,
    track: (path) => tracked.push(path),
    async [Symbol.asyncDispose]() {
      const errors: string[] = [];
      for (const path of [...tracked.reverse(), `/api/v1/namespaces/${id}`]) {
        try {
          await http.delete(path, { propagationPolicy: "Background" });
        } catch (err) {
          if (!(err instanceof NotFoundError)) errors.push(`${path}: ${(err as Error).message}`);
        }
      }
      if (errors.length) throw new Error(`clean-up of test scope ${id} failed:\n${errors.join("\n")}`);
    },
  };
  if (opts.serviceAccount ?? true) {
    await poll(`ServiceAccount ${id}/default (made by kube-controller-manager)`, 30_000, async () => {
      try {
        return await http.get(`/api/v1/namespaces/${id}/serviceaccounts/default`);
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    });
  }
  return scope;
}

/**
 * Deno.test for tests against the cluster. Resource and op sanitizers are off: the shared control plane's
 * processes and the pooled keep-alive connections outlive any single test by design.
 */
export function kubeTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });
}
