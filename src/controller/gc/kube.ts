// The IP GC's reads and writes through KubeHttp: the lists scan-all starts from, the direct (uncached) reads
// that every release is verified with, endpoint deletion guarded by UID and resourceVersion, finalizer removal,
// pool status writes for the group committer, and Events on the pods and pools it releases from.

import { API_VERSION, FINALIZER, KIND, PLURAL } from "../../api/constants.ts";
import type { OwnerReference, SpiderEndpoint, SpiderIPPool } from "../../api/types.ts";
import type { GcPod } from "../../ipam/gc.ts";
import type { KubevirtInfo, StatefulSetInfo } from "../../ipam/release.ts";
import { KUBEVIRT_VMI } from "../../ipam/workload.ts";
import { type KubeHttp, NotFoundError } from "../../kube/client.ts";

export const POOLS = `/apis/${API_VERSION}/${PLURAL.ippool}`;
export const ALL_ENDPOINTS = `/apis/${API_VERSION}/${PLURAL.endpoint}`;
export const endpointsIn = (ns: string) => `/apis/${API_VERSION}/namespaces/${enc(ns)}/${PLURAL.endpoint}`;

/** The parts of a Node the GC reads. */
export interface NodeLike {
  metadata: { name: string };
  status?: { conditions?: { type?: string; status?: string }[] };
}

interface Meta {
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    deletionTimestamp?: string;
    ownerReferences?: OwnerReference[];
  };
  spec?: Record<string, unknown>;
}

const enc = encodeURIComponent;

/** One Event to record on `object`. */
export interface GcEvent {
  object: { apiVersion: string; kind: string; name: string; namespace?: string; uid?: string };
  reason: string;
  message: string;
  type?: "Normal" | "Warning";
}

export class GcKube {
  constructor(
    readonly http: KubeHttp,
    readonly component = "spiderpool-controller",
    readonly instance = "",
  ) {}

  async list<T>(path: string): Promise<T[]> {
    return (await this.http.get<{ items?: T[] }>(path)).body.items ?? [];
  }

  /** Every pool, or those carrying every label of `selector`. */
  listPools(selector?: Record<string, string>): Promise<SpiderIPPool[]> {
    const labels = Object.entries(selector ?? {}).map(([k, v]) => `${k}=${v}`).join(",");
    return this.list<SpiderIPPool>(labels ? `${POOLS}?labelSelector=${enc(labels)}` : POOLS);
  }

  listPods(): Promise<GcPod[]> {
    return this.list<GcPod>("/api/v1/pods");
  }

  listEndpoints(): Promise<SpiderEndpoint[]> {
    return this.list<SpiderEndpoint>(ALL_ENDPOINTS);
  }

  listNodes(): Promise<NodeLike[]> {
    return this.list<NodeLike>("/api/v1/nodes");
  }

  /**
   * The pods of one namespace, for verifying many holders at once. Like every read here it sends no
   * resourceVersion, so the API server answers with the latest state (a quorum read of etcd, or its watch
   * cache once that has caught up with etcd): as fresh as a GET of each pod at the same moment.
   */
  listPodsIn(ns: string): Promise<GcPod[]> {
    return this.list<GcPod>(`/api/v1/namespaces/${enc(ns)}/pods`);
  }

  /** The SpiderEndpoints of one namespace, read as freshly as listPodsIn. */
  listEndpointsIn(ns: string): Promise<SpiderEndpoint[]> {
    return this.list<SpiderEndpoint>(endpointsIn(ns));
  }

  getPod(ns: string, name: string): Promise<GcPod | undefined> {
    return orUndefined(this.http.get<GcPod>(`/api/v1/namespaces/${enc(ns)}/pods/${enc(name)}`));
  }

  getEndpoint(ns: string, name: string): Promise<SpiderEndpoint | undefined> {
    return orUndefined(this.http.get<SpiderEndpoint>(`${endpointsIn(ns)}/${enc(name)}`));
  }

  getNode(name: string): Promise<NodeLike | undefined> {
    if (!name) return Promise.resolve(undefined);
    return orUndefined(this.http.get<NodeLike>(`/api/v1/nodes/${enc(name)}`));
  }

  async getPool(name: string): Promise<SpiderIPPool> {
    return (await this.http.get<SpiderIPPool>(`${POOLS}/${enc(name)}`)).body;
  }

  getPoolOrUndefined(name: string): Promise<SpiderIPPool | undefined> {
    return orUndefined(this.http.get<SpiderIPPool>(`${POOLS}/${enc(name)}`));
  }

  /** PUT on the status subresource with the pool's resourceVersion: 409 when someone wrote in between. */
  async writePoolStatus(pool: SpiderIPPool): Promise<void> {
    await this.http.put(`${POOLS}/${enc(pool.metadata.name)}/status`, pool);
  }

  /** The StatefulSet as DEL sees it; undefined when it is gone or being deleted. */
  async statefulSet(ns: string, name: string): Promise<StatefulSetInfo | undefined> {
    const sts = await orUndefined(
      this.http.get<Meta>(`/apis/apps/v1/namespaces/${enc(ns)}/statefulsets/${enc(name)}`),
    );
    if (!sts || sts.metadata.deletionTimestamp) return undefined;
    const spec = sts.spec as { replicas?: number; ordinals?: { start?: number } } | undefined;
    return { replicas: spec?.replicas ?? 1, ordinalsStart: spec?.ordinals?.start };
  }

  /** Whether the VMI lives, or restarts under a VirtualMachine that still exists. Only NotFound means gone. */
  async kubevirt(ns: string, vmi: string): Promise<KubevirtInfo> {
    const get = (plural: string, name: string) =>
      orUndefined(
        this.http.get<Meta>(`/apis/${KUBEVIRT_VMI.apiVersion}/namespaces/${enc(ns)}/${plural}/${enc(name)}`),
      );
    const obj = await get("virtualmachineinstances", vmi);
    if (!obj) return { vmiAlive: false, ownedByLiveVM: false };
    if (!obj.metadata.deletionTimestamp) return { vmiAlive: true, ownedByLiveVM: false };
    const owner = obj.metadata.ownerReferences?.find((o) => o.kind === "VirtualMachine");
    const vm = owner ? await get("virtualmachines", owner.name) : undefined;
    return { vmiAlive: false, ownedByLiveVM: vm !== undefined && !vm.metadata.deletionTimestamp };
  }

  /**
   * Deletes the endpoint exactly as it was read: the UID and resourceVersion are preconditions, so an ADD that
   * adopted or rewrote it meanwhile makes this fail with ConflictError instead of losing its update. Gone = done.
   */
  async deleteEndpoint(ep: SpiderEndpoint): Promise<void> {
    try {
      await this.http.delete(`${endpointsIn(ep.metadata.namespace ?? "")}/${enc(ep.metadata.name)}`, {
        preconditions: { uid: ep.metadata.uid, resourceVersion: ep.metadata.resourceVersion },
        propagationPolicy: "Background",
      });
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  /** Removes our finalizer (resourceVersion as precondition); a no-op when absent or gone. */
  async removeEndpointFinalizer(ep: SpiderEndpoint): Promise<void> {
    const finalizers = ep.metadata.finalizers ?? [];
    if (!finalizers.includes(FINALIZER)) return;
    const patch = {
      metadata: {
        resourceVersion: ep.metadata.resourceVersion,
        finalizers: finalizers.filter((f) => f !== FINALIZER),
      },
    };
    try {
      await this.http.patch(
        `${endpointsIn(ep.metadata.namespace ?? "")}/${enc(ep.metadata.name)}`,
        patch,
        "merge",
      );
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  /** Records a core/v1 Event; cluster-scoped objects (pools) get theirs in `default`, as kubectl looks there. */
  async event(e: GcEvent): Promise<void> {
    const ns = e.object.namespace || "default";
    const now = new Date().toISOString();
    await this.http.post(`/api/v1/namespaces/${enc(ns)}/events`, {
      apiVersion: "v1",
      kind: "Event",
      metadata: { generateName: `${e.object.name}.`, namespace: ns },
      involvedObject: e.object,
      reason: e.reason,
      message: e.message.length > 1000 ? `${e.message.slice(0, 997)}...` : e.message,
      type: e.type ?? "Normal",
      source: { component: this.component },
      reportingComponent: this.component,
      reportingInstance: this.instance,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    });
  }
}

/** The Event object reference of a pool. */
export function poolRef(name: string, uid?: string): GcEvent["object"] {
  return { apiVersion: API_VERSION, kind: KIND.ippool, name, uid };
}

async function orUndefined<T>(p: Promise<{ body: T }>): Promise<T | undefined> {
  try {
    return (await p).body;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}
