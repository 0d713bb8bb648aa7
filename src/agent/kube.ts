// The agent's reads and writes of Kubernetes objects through the project's KubeHttp client: direct (uncached)
// reads of pools, pods and endpoints where correctness depends on freshness, and every write request (409s
// included), counted in the agent's metrics.

import { API_VERSION, FINALIZER, KIND, PLURAL } from "../api/constants.ts";
import type { OwnerReference, SpiderEndpoint, SpiderIPPool } from "../api/types.ts";
import { type KubeHttp, NotFoundError } from "../kube/client.ts";
import type { AgentMetrics } from "./metrics.ts";

export const POOLS = `/apis/${API_VERSION}/${PLURAL.ippool}`;
export const RESERVED_IPS = `/apis/${API_VERSION}/${PLURAL.reservedIP}`;
export const COORDINATORS = `/apis/${API_VERSION}/${PLURAL.coordinator}`;
export const ALL_ENDPOINTS = `/apis/${API_VERSION}/${PLURAL.endpoint}`;
export const endpointsIn = (ns: string) => `/apis/${API_VERSION}/namespaces/${ns}/${PLURAL.endpoint}`;

/** The parts of a core Pod the agent reads. */
export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: OwnerRef[];
    deletionTimestamp?: string;
    deletionGracePeriodSeconds?: number;
    resourceVersion?: string;
  };
  spec?: { nodeName?: string; restartPolicy?: string; [k: string]: unknown };
  status?: { phase?: string; reason?: string; [k: string]: unknown };
}

export type OwnerRef = OwnerReference;

/** Any object with metadata: Namespaces, Nodes, ReplicaSets, Jobs, StatefulSets. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: OwnerRef[];
    deletionTimestamp?: string;
    resourceVersion?: string;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

const enc = encodeURIComponent;

/** Uncached reads and counted writes. */
export class AgentKube {
  /**
   * `namespace/name` of each SpiderEndpoint this agent created or updated, with when: until the endpoint cache
   * shows the write, an endpoint the cache does not list may still exist (the agent clears entries it sees).
   */
  readonly endpointsWritten = new Map<string, number>();

  constructor(readonly http: KubeHttp, readonly metrics: AgentMetrics) {}

  async getPool(name: string): Promise<SpiderIPPool> {
    return (await this.http.get<SpiderIPPool>(`${POOLS}/${enc(name)}`)).body;
  }

  /**
   * PUT on the status subresource with the pool's resourceVersion: 409 when someone wrote in between. Returns
   * the pool as stored (its new resourceVersion).
   */
  async writePoolStatus(pool: SpiderIPPool): Promise<SpiderIPPool> {
    const name = pool.metadata?.name ?? "";
    try {
      return (await this.http.put<SpiderIPPool>(`${POOLS}/${enc(name)}/status`, pool)).body;
    } finally {
      this.metrics.poolStatusWritten();
    }
  }

  /** Undefined when absent. */
  async getPod(ns: string, name: string): Promise<Pod | undefined> {
    return await orUndefined(this.http.get<Pod>(`/api/v1/namespaces/${enc(ns)}/pods/${enc(name)}`));
  }

  async getObject<T = KubeObject>(path: string): Promise<T | undefined> {
    return await orUndefined(this.http.get<T>(path));
  }

  async getEndpoint(ns: string, name: string): Promise<SpiderEndpoint | undefined> {
    this.metrics.endpointReads++;
    return await orUndefined(this.http.get<SpiderEndpoint>(`${endpointsIn(enc(ns))}/${enc(name)}`));
  }

  async createEndpoint(ep: SpiderEndpoint): Promise<SpiderEndpoint> {
    const ns = ep.metadata?.namespace ?? "";
    const body = { apiVersion: API_VERSION, kind: KIND.endpoint, ...ep };
    try {
      const created = (await this.http.post<SpiderEndpoint>(endpointsIn(enc(ns)), body)).body;
      this.#wrote(ns, ep.metadata?.name ?? "");
      return created;
    } finally {
      this.metrics.endpointWritten();
    }
  }

  #wrote(ns: string, name: string): void {
    const now = Date.now();
    // Bounded: entries the cache never confirmed (it stopped, or the endpoint went at once) age out.
    if (this.endpointsWritten.size >= 4096) {
      for (const [k, t] of this.endpointsWritten) if (now - t > 600_000) this.endpointsWritten.delete(k);
    }
    this.endpointsWritten.set(`${ns}/${name}`, now);
  }

  /** Plain update (SpiderEndpoint has no status subresource); 409 when it changed since it was read. */
  async updateEndpoint(ep: SpiderEndpoint): Promise<SpiderEndpoint> {
    const ns = ep.metadata?.namespace ?? "";
    const name = ep.metadata?.name ?? "";
    try {
      const updated = (await this.http.put<SpiderEndpoint>(`${endpointsIn(enc(ns))}/${enc(name)}`, ep)).body;
      this.#wrote(ns, name);
      return updated;
    } finally {
      this.metrics.endpointWritten();
    }
  }

  /**
   * Removes our finalizer, guarded by resourceVersion (409 if the endpoint changed since it was read); a no-op
   * when the finalizer is not there or the endpoint is gone.
   */
  async removeEndpointFinalizer(ep: SpiderEndpoint): Promise<void> {
    const finalizers = ep.metadata?.finalizers ?? [];
    if (!finalizers.includes(FINALIZER)) return;
    const ns = ep.metadata?.namespace ?? "";
    const name = ep.metadata?.name ?? "";
    // resourceVersion in a merge patch is a precondition: 409 when the endpoint changed since it was read.
    const patch = {
      metadata: {
        resourceVersion: ep.metadata?.resourceVersion,
        finalizers: finalizers.filter((f) => f !== FINALIZER),
      },
    };
    try {
      await this.http.patch(`${endpointsIn(enc(ns))}/${enc(name)}`, patch, "merge");
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    } finally {
      this.metrics.endpointWritten();
    }
  }

  /** Deletes the endpoint if it still has `uid`; absent is fine. */
  async deleteEndpoint(ep: SpiderEndpoint): Promise<void> {
    const ns = ep.metadata?.namespace ?? "";
    const name = ep.metadata?.name ?? "";
    try {
      await this.http.delete(`${endpointsIn(enc(ns))}/${enc(name)}`, {
        preconditions: { uid: ep.metadata?.uid },
        propagationPolicy: "Background",
      });
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    } finally {
      this.metrics.endpointWritten();
    }
  }
}

async function orUndefined<T>(p: Promise<{ body: T }>): Promise<T | undefined> {
  try {
    return (await p).body;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}
