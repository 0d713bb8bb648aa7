// Shared real control plane for the integration tests: the one named by $SPIDERPOOL_TEST_KUBECONFIG (the test
// script starts one per run), else one started on first use and stopped when the process exits. Installs the
// project's CRDs from crds/ and gives each test its own namespace and clean-up.

import type { KubeConfig } from "@kubernetes/client-node";
// Raw YAML, not client-node's loadAllYaml: that one maps objects onto its models (`default` becomes `_default`).
// js-yaml is already in the graph as a dependency of client-node; pinned to the version in deno.lock.
// deno-lint-ignore no-import-prefix
import { loadAll as loadAllYaml } from "npm:js-yaml@5.5.0";
import { closeKubeConfig, KubeHttp, loadKubeConfig, NotFoundError } from "../../src/kube/client.ts";
import { type ControlPlane, startControlPlane } from "./controlplane.ts";

const CRD_DIR = new URL("../../crds/", import.meta.url).pathname;
const CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const FIELD_MANAGER = "spiderpool-tests";

export interface CustomResourceDefinition {
  apiVersion: string;
  kind: "CustomResourceDefinition";
  metadata: { name: string; resourceVersion?: string; [k: string]: unknown };
  spec: {
    group: string;
    names: { kind: string; plural: string; singular?: string; shortNames?: string[] };
    scope: "Namespaced" | "Cluster";
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      additionalPrinterColumns?: { name: string; type: string; jsonPath: string; priority?: number }[];
      subresources?: { status?: Record<string, never> };
      schema?: { openAPIV3Schema: Record<string, unknown> };
    }[];
  };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

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
    cp = await startControlPlane();
    kubeconfigPath = cp.kubeconfigPath;
    const running = cp;
    // unload cannot await; the components' parent-death signal ends them anyway, this also removes the dir.
    globalThis.addEventListener("unload", () => running.kill());
  }
  const kc = loadKubeConfig(kubeconfigPath);
  const http = await KubeHttp.fromKubeConfig(kc);
  try {
    const crds = await installCrds(http);
    return { kubeconfigPath, kc, http, crds };
  } catch (err) {
    http.close();
    await closeKubeConfig(kc);
    throw err;
  }
}

/** Reads every CRD in crds/ (one CustomResourceDefinition per file). */
export async function readCrds(dir = CRD_DIR): Promise<CustomResourceDefinition[]> {
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /\.ya?ml$/.test(e.name)) files.push(e.name);
  }
  if (files.length === 0) throw new Error(`no CRD YAML files in ${dir}; generate them with "deno task crds"`);
  files.sort();
  const crds: CustomResourceDefinition[] = [];
  for (const f of files) {
    const docs = loadAllYaml(await Deno.readTextFile(`${dir}${f}`)).filter((d) =>
      d
    ) as ({ kind?: unknown } | undefined)[];
    for (const doc of docs) {
      if (doc?.kind !== "CustomResourceDefinition") {
        throw new Error(
          `${dir}${f}: expected kind CustomResourceDefinition, got ${JSON.stringify(doc?.kind)}`,
        );
      }
      crds.push(doc as CustomResourceDefinition);
    }
  }
  return crds;
}

/** Server-side applies every CRD in crds/ and waits until each is Established. */
export async function installCrds(http: KubeHttp, timeoutMs = 30_000): Promise<CustomResourceDefinition[]> {
  const crds = await readCrds();
  for (const crd of crds) {
    await http.patch(
      `${CRD_API}/${crd.metadata.name}?fieldManager=${FIELD_MANAGER}&force=true`,
      crd,
      "apply",
    );
  }
  for (const crd of crds) await waitEstablished(http, crd.metadata.name, timeoutMs);
  return crds;
}

/** Waits until the CRD's Established condition is True; fails early if its names are rejected. */
export async function waitEstablished(
  http: KubeHttp,
  name: string,
  timeoutMs = 30_000,
): Promise<CustomResourceDefinition> {
  return await poll(`CRD ${name} to be Established`, timeoutMs, async () => {
    const { body } = await http.get<CustomResourceDefinition>(`${CRD_API}/${name}`);
    const conditions = body.status?.conditions ?? [];
    const names = conditions.find((c) => c.type === "NamesAccepted");
    if (names?.status === "False") throw new Error(`CRD ${name}: names not accepted: ${names.message}`);
    return conditions.some((c) => c.type === "Established" && c.status === "True") ? body : undefined;
  });
}

/**
 * Calls `check` every 100–500 ms until it returns a value other than undefined; throws after `timeoutMs` with
 * `what` and the last error seen.
 */
export async function poll<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 100;
  let lastError: unknown;
  while (true) {
    try {
      const v = await check();
      if (v !== undefined) return v;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? `; last error: ${lastError.message}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
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
