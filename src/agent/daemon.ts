// Start-up and shut-down of the agent: host sysctls, Kubernetes client, informer caches, the IPAM service, the
// unix-socket API, the health probes and the metrics endpoint (with the RDMA exporter), in upstream's order
// (tune the host, wait for the API server, sync caches, delete the stale socket, serve, mark startup done).

import type { KubeConfig } from "@kubernetes/client-node";
import type { SpiderCoordinator, SpiderEndpoint, SpiderIPPool, SpiderReservedIP } from "../api/types.ts";
import { KubeHttp } from "../kube/client.ts";
import { type ClusterAccess, loadClusterAccess } from "../kube/kubeconfig.ts";
import { type AgentConfig, defaultAgentConfig } from "./config.ts";
import {
  type CacheTiming,
  cacheTimingFromEnv,
  metadataOnly,
  ResourceCache,
  withoutManagedFields,
} from "../kube/cache.ts";
import { serveHealth, serveMetrics, type TcpServer } from "./health.ts";
import {
  AgentKube,
  ALL_ENDPOINTS,
  COORDINATORS,
  type KubeObject,
  type Pod,
  POOLS,
  RESERVED_IPS,
} from "./kube.ts";
import { AgentMetrics } from "./metrics.ts";
import { IpamAgent } from "./ipam.ts";
import { serveSocket, type SocketServer } from "./server.ts";
import { tuneHost } from "./sysctl.ts";

export interface AgentOptions {
  nodeName: string;
  socketPath: string;
  /**
   * Path of a kubeconfig; when absent, $KUBECONFIG, the in-cluster service account, then ~/.kube/config
   * (src/kube/kubeconfig.ts).
   */
  kubeconfig?: string;
  /** An already loaded configuration; wins over `kubeconfig`. */
  access?: ClusterAccess;
  /**
   * A client-node KubeConfig a caller holds (tests); wins over both. Only its methods are called, so the agent
   * still loads no client-node code of its own.
   */
  kubeConfig?: KubeConfig;
  config?: AgentConfig;
  /** 0 picks a free port; undefined disables the server. */
  healthPort?: number;
  metricsPort?: number;
  /** Namespace Spiderpool is installed in (multusName without a namespace refers to it). */
  namespace?: string;
  /** Deadline of one ADD/DEL inside the agent; default 60 s (the plugin waits 100 s). */
  requestTimeoutMs?: number;
  /**
   * Re-list period, watch timeout and stall margin of the caches; each field wins over its environment
   * variable (SPIDERPOOL_CACHE_RESYNC_SECONDS, SPIDERPOOL_WATCH_TIMEOUT_SECONDS,
   * SPIDERPOOL_WATCH_STALL_MARGIN_SECONDS), which wins over the defaults.
   */
  cacheTiming?: CacheTiming;
  /**
   * Apply the ConfigMap's `tuneSysctlConfig` to the network namespace this process runs in (the node's).
   * `spiderpool agent` does; an agent embedded in another process (tests) leaves that namespace alone.
   */
  tuneHost?: boolean;
  /** Export `rdma_*` metrics on the metrics server (SPIDERPOOL_ENABLED_RDMA_METRIC). */
  rdmaMetrics?: boolean;
  log?: (message: string) => void;
}

/** The caches the agent reads through. */
export interface AgentCaches {
  pools: ResourceCache<SpiderIPPool>;
  reservedIPs: ResourceCache<SpiderReservedIP>;
  endpoints: ResourceCache<SpiderEndpoint>;
  namespaces: ResourceCache<KubeObject>;
  nodes: ResourceCache<KubeObject>;
  /** Pods bound to this node only. */
  pods: ResourceCache<Pod>;
  coordinators: ResourceCache<SpiderCoordinator>;
}

export interface RunningAgent {
  socketPath: string;
  metrics: AgentMetrics;
  ipam: IpamAgent;
  caches: AgentCaches;
  healthPort?: number;
  metricsPort?: number;
  stop(): Promise<void>;
}

/** Waits for the API server's `/readyz`, 15 tries about 2 s apart, like upstream. */
async function waitApiServer(http: KubeHttp, log: (m: string) => void): Promise<void> {
  let last: unknown;
  for (let i = 0; i < 15; i++) {
    try {
      await http.get("/readyz");
      return;
    } catch (err) {
      last = err;
      log(`waiting for the API server /readyz (${i + 1}/15): ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 2_000));
    }
  }
  throw new Error(`the API server is not ready after 15 tries: ${(last as Error)?.message}`);
}

/** Starts an agent and resolves once it serves its socket. */
export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const log = opts.log ?? ((m: string) => console.error(`spiderpool-agent: ${m}`));
  const config = opts.config ?? defaultAgentConfig();
  const http = opts.kubeConfig
    ? await KubeHttp.fromKubeConfig(opts.kubeConfig)
    : new KubeHttp(opts.access ?? await loadClusterAccess(opts.kubeconfig));
  const metrics = new AgentMetrics();
  const stops: (() => Promise<void> | void)[] = [];
  const stop = async () => {
    for (const s of stops.reverse()) {
      try {
        await s();
      } catch (err) {
        log(`shutdown: ${(err as Error).message}`);
      }
    }
  };
  stops.push(() => http.close());
  try {
    if (opts.tuneHost) {
      if (config.tuneSysctlConfig) await tuneHost(config, (m) => log(`host sysctls: ${m}`));
      else log("tuneSysctlConfig is false: the node's sysctls are left as they are");
    }
    await waitApiServer(http, log);
    const timing = { ...cacheTimingFromEnv(Deno.env), ...opts.cacheTiming };
    const cacheOf = <T extends { metadata?: { name?: string } }>(
      path: string,
      fieldSelector?: string,
      transform?: (obj: T) => T,
    ) => {
      const c = new ResourceCache<T>(undefined, http, { ...timing, path, fieldSelector, log, transform });
      c.start();
      stops.push(() => c.stop());
      return c;
    };
    const caches: AgentCaches = {
      pools: cacheOf<SpiderIPPool>(POOLS),
      reservedIPs: cacheOf<SpiderReservedIP>(RESERVED_IPS),
      endpoints: cacheOf<SpiderEndpoint>(ALL_ENDPOINTS, undefined, withoutManagedFields),
      namespaces: cacheOf<KubeObject>("/api/v1/namespaces", undefined, metadataOnly),
      nodes: cacheOf<KubeObject>("/api/v1/nodes", undefined, metadataOnly),
      pods: cacheOf<Pod>("/api/v1/pods", `spec.nodeName=${opts.nodeName}`, withoutManagedFields),
      coordinators: cacheOf<SpiderCoordinator>(COORDINATORS),
    };
    const ipam = new IpamAgent({
      nodeName: opts.nodeName,
      namespace: opts.namespace ?? "kube-system",
      config,
      kube: new AgentKube(http, metrics),
      caches,
      metrics,
      requestTimeoutMs: opts.requestTimeoutMs ?? 60_000,
      clusterNetwork: Deno.env.get("MULTUS_CLUSTER_NETWORK") || undefined,
      releaseConflictIPs: Deno.env.get("SPIDERPOOL_ENABLED_RELEASE_CONFLICT_IPS")?.toLowerCase() !== "false",
      log,
    });
    await Promise.all(Object.values(caches).map((c) => c.synced));
    const socket: SocketServer = await serveSocket(opts.socketPath, ipam, {
      log: (m) => log(`socket ${opts.socketPath}: ${m}`),
    });
    stops.push(() => socket.shutdown());
    let started = false;
    let health: TcpServer | undefined;
    if (opts.healthPort !== undefined) {
      health = serveHealth(opts.healthPort, opts.socketPath, () => started);
      stops.push(() => health!.shutdown());
    }
    let metricsServer: TcpServer | undefined;
    if (opts.metricsPort !== undefined) {
      metricsServer = serveMetrics(opts.metricsPort, metrics.registry);
      stops.push(() => metricsServer!.shutdown());
    }
    if (opts.rdmaMetrics && metricsServer) {
      const { RdmaExporter } = await import("./rdma.ts");
      const rdma = await RdmaExporter.start({
        registry: metrics.registry,
        nodeName: opts.nodeName,
        log: (m) => log(`rdma: ${m}`),
        owners: () => ({ endpoints: caches.endpoints.list(), pods: caches.pods.list() }),
      });
      stops.push(() => rdma.stop());
    } else if (opts.rdmaMetrics) {
      log("SPIDERPOOL_ENABLED_RDMA_METRIC is on but the metrics server is off (SPIDERPOOL_ENABLED_METRIC)");
    }
    started = true;
    log(`serving IPAM for node ${opts.nodeName} on ${opts.socketPath}`);
    return {
      socketPath: opts.socketPath,
      metrics,
      ipam,
      caches,
      healthPort: health?.port,
      metricsPort: metricsServer?.port,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
