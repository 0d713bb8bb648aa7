// @kubernetes/client-node for the controller and the tools that still use it: a client-node KubeConfig whose
// HTTP dispatcher is made once and reused (client-node 2.0.1 makes a new one, hence a new TLS connection, for
// every request). The agent never imports this module: it loads its configuration with src/kube/kubeconfig.ts
// and talks through KubeHttp (src/kube/client.ts) only.

import { KubeConfig } from "@kubernetes/client-node";
import type { Cluster } from "@kubernetes/client-node";
import type { AgentOptions } from "node:https";

/**
 * Loads a kubeconfig: from `path` when given, else the in-cluster service account when running in a Pod, else
 * the default rules ($KUBECONFIG, ~/.kube/config). The result reuses one connection pool for all requests.
 *
 * @example
 * ```ts
 * const kc = loadKubeConfig(Deno.env.get("KUBECONFIG"));
 * const core = kc.makeApiClient(CoreV1Api);
 * ```
 */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) {
    kc.loadFromFile(path);
  } else if (Deno.env.get("KUBERNETES_SERVICE_HOST") && Deno.env.get("KUBERNETES_SERVICE_PORT")) {
    kc.loadFromCluster();
  } else {
    kc.loadFromDefault();
  }
  if (!kc.getCurrentCluster()) {
    const source = path ?? "(default: $KUBECONFIG or ~/.kube/config)";
    throw new Error(
      `kubeconfig ${source} has no current cluster; set current-context or pass a kubeconfig path`,
    );
  }
  return withPooledConnections(kc);
}

/** The parts of undici's Dispatcher we rely on; client-node does not export undici's types. */
interface Dispatcher {
  close(): Promise<void>;
}

/** Internals of client-node 2.0.1's KubeConfig that we replace; `createDispatcher` is private in its types. */
interface DispatcherFactory {
  createDispatcher(cluster: Cluster | null, agentOptions: AgentOptions): Dispatcher | undefined;
}

interface PoolEntry {
  identity: string;
  tls: unknown[];
  dispatcher: Dispatcher | undefined;
}

const pools = new WeakMap<KubeConfig, { entry?: PoolEntry }>();

/**
 * Makes `kc` reuse one undici dispatcher (a keep-alive connection pool) for every request and watch instead of
 * opening a new TLS connection per request. Safe to call twice. A new dispatcher is made only when the TLS
 * material or endpoint changes (e.g. a rotated client certificate); the old one is closed after its in-flight
 * requests finish.
 *
 * client-node has no client-side rate limiter (unlike client-go's default of 5 QPS / burst 10), and undici's
 * Agent allows unlimited connections per origin, so there is no limit to raise here: the apiserver's
 * priority-and-fairness is the only throttle.
 */
export function withPooledConnections(kc: KubeConfig): KubeConfig {
  if (pools.has(kc)) return kc;
  const pool: { entry?: PoolEntry } = {};
  pools.set(kc, pool);
  const factory = kc as unknown as DispatcherFactory;
  if (typeof factory.createDispatcher !== "function") {
    throw new Error(
      "KubeConfig.createDispatcher is gone from @kubernetes/client-node; update src/kube/client.ts",
    );
  }
  const create = factory.createDispatcher.bind(kc);
  factory.createDispatcher = (cluster, agentOptions) => {
    const identity = JSON.stringify([
      cluster?.server,
      cluster?.proxyUrl,
      cluster?.skipTLSVerify,
      agentOptions.servername,
      agentOptions.rejectUnauthorized,
    ]);
    const tls = [
      agentOptions.ca,
      agentOptions.cert,
      agentOptions.key,
      agentOptions.pfx,
      agentOptions.passphrase,
    ];
    const cached = pool.entry;
    if (cached && cached.identity === identity && tls.every((v, i) => sameMaterial(v, cached.tls[i]))) {
      return cached.dispatcher;
    }
    const dispatcher = create(cluster, agentOptions);
    pool.entry = { identity, tls, dispatcher };
    cached?.dispatcher?.close().catch(() => {});
    return dispatcher;
  };
  return kc;
}

/** Closes the pooled connections of `kc` (made by loadKubeConfig or withPooledConnections). */
export async function closeKubeConfig(kc: KubeConfig): Promise<void> {
  const pool = pools.get(kc);
  const dispatcher = pool?.entry?.dispatcher;
  if (pool) pool.entry = undefined;
  await dispatcher?.close();
}

function sameMaterial(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    return a.length === b.length && a.every((v, i) => v === b[i]);
  }
  return false;
}
