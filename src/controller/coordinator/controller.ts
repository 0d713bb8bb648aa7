// The SpiderCoordinator status controller (spec §7.3), leader-only like the reconcilers: it watches the
// SpiderCoordinator and what its CIDRs come from (ServiceCIDRs, Calico IPPools and CiliumPodIPPools when those
// APIs are served, kubeadm-config and the Cilium ConfigMap), reads those facts fresh on each reconcile, plans
// the status purely (cidrs.ts) and patches it only when it differs. Everything is looked at again every 60 s
// (upstream's resync), which also covers what is not watched: the kube-controller-manager pod and the CNI
// configuration directory.

import type { KubeConfig } from "@kubernetes/client-node";
import { API_VERSION, DEFAULT_COORDINATOR_NAME, KIND, PLURAL } from "../../api/constants.ts";
import type { SpiderCoordinator } from "../../api/types.ts";
import { ResourceCache } from "../../kube/cache.ts";
import { ConflictError, type KubeHttp, NotFoundError } from "../../kube/client.ts";
import { OptionalResourceCache, servingVersions } from "../../kube/discovery.ts";
import type { LeaderView, LeaderWork } from "../leader.ts";
import { ControllerMetrics, type ReconcileResult } from "../metrics.ts";
import { EventRecorder } from "../reconcile/events.ts";
import { NotLeaderError, ReconcileKube } from "../reconcile/kube.ts";
import { WorkQueue } from "../reconcile/queue.ts";
import {
  type CalicoIPPool,
  cidrsFromKCMPod,
  cidrsFromKubeadmConfig,
  type CiliumPodIPPool,
  type ClusterCIDRs,
  type CoordinatorFacts,
  effectivePodCIDRType,
  type KCMPod,
  planCoordinatorStatus,
  sameStatus,
  type ServiceCIDR,
} from "./cidrs.ts";
import { readDefaultCNI } from "./cniconf.ts";
import { CoordinatorMetrics } from "./metrics.ts";

export const COORDINATORS = `/apis/${API_VERSION}/${PLURAL.coordinator}`;
const KUBEADM_CONFIG = { namespace: "kube-system", name: "kubeadm-config" };
const KCM_SELECTOR = "component=kube-controller-manager";
/** Upstream's default for SPIDERPOOL_CILIUM_CONFIGMAP_NAMESPACE_NAME. */
export const DEFAULT_CILIUM_CONFIGMAP = "kube-system/cilium-config";
/** Upstream's default for SPIDERPOOL_CNI_CONFIG_DIR. */
export const DEFAULT_CNI_CONFIG_DIR = "/etc/cni/net.d";

export interface CoordinatorControllerOptions {
  http: KubeHttp;
  kubeConfig: KubeConfig;
  /** This replica (pod name): the `reportingInstance` of its Events. */
  identity: string;
  /** The SpiderCoordinator to keep (SPIDERPOOL_COORDINATOR_DEAFULT_NAME); default `default`. */
  name?: string;
  /** SPIDERPOOL_CNI_CONFIG_DIR: where podCIDRType auto finds the default CNI. */
  cniConfigDir?: string;
  /** SPIDERPOOL_CILIUM_CONFIGMAP_NAMESPACE_NAME: `namespace/name` of Cilium's ConfigMap. */
  ciliumConfigMap?: string;
  metrics?: ControllerMetrics;
  coordinatorMetrics?: CoordinatorMetrics;
  /** The status is recomputed this often while leading; default 60 s (upstream's resync). */
  resyncMs?: number;
  /** How often the optional APIs (ServiceCIDR, Calico, Cilium) are looked for; default 30 s. */
  discoveryMs?: number;
  log?: (message: string) => void;
}

/** A bad SPIDERPOOL_CILIUM_CONFIGMAP_NAMESPACE_NAME. */
export class CoordinatorConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CoordinatorConfigError";
  }
}

interface Term {
  signal: AbortSignal;
  kube: ReconcileKube;
  queue: WorkQueue;
  worker: Promise<void>;
  resync?: ReturnType<typeof setInterval>;
}

interface Listed {
  metadata?: { name?: string };
}

interface ConfigMap {
  metadata?: { name?: string; namespace?: string };
  data?: Record<string, string>;
}

const coordRef = (c: SpiderCoordinator): SpiderCoordinator => ({
  ...c,
  apiVersion: API_VERSION,
  kind: KIND.coordinator,
});

/**
 * Keeps `status` of one SpiderCoordinator (phase, reason, overlayPodCIDR, serviceCIDR) as one piece of
 * leader-only work.
 *
 * @example
 * ```ts
 * const coordinator = new CoordinatorController({ http, kubeConfig, identity: podName, metrics });
 * coordinator.start(); // caches
 * const elector = new LeaderElector({ http, namespace, identity: podName, work: [coordinator] });
 * ```
 */
export class CoordinatorController implements LeaderWork {
  readonly metrics: ControllerMetrics;
  readonly coordinatorMetrics: CoordinatorMetrics;
  readonly name: string;
  readonly #opts: CoordinatorControllerOptions;
  readonly #log: (m: string) => void;
  readonly #cilium: { namespace: string; name: string };
  readonly #coordinators: ResourceCache<SpiderCoordinator>;
  readonly #configMaps: ResourceCache<ConfigMap>[];
  readonly #serviceCIDRs: OptionalResourceCache<ServiceCIDR>;
  readonly #calicoPools: OptionalResourceCache<CalicoIPPool>;
  readonly #ciliumPools: OptionalResourceCache<CiliumPodIPPool>;
  readonly #events: EventRecorder;
  /** The podCIDRType of the last reconcile, for the PodCIDRTypeChanged event. */
  #lastType?: string;
  #term?: Term;
  #stopping: Promise<void> = Promise.resolve();
  /** Resolves once the coordinator cache holds a first list. */
  readonly synced: Promise<void>;

  constructor(opts: CoordinatorControllerOptions) {
    this.#opts = opts;
    this.name = opts.name || DEFAULT_COORDINATOR_NAME;
    this.#log = opts.log ?? ((m) => console.error(`coordinator: ${m}`));
    this.metrics = opts.metrics ?? new ControllerMetrics();
    this.coordinatorMetrics = opts.coordinatorMetrics ?? new CoordinatorMetrics();
    this.#cilium = parseNamespacedName(opts.ciliumConfigMap ?? DEFAULT_CILIUM_CONFIGMAP);
    const { kubeConfig: kc, http } = opts;
    const enqueue = () => this.#term?.queue.add(this.name);
    const byName = (name: string) => `metadata.name=${name}`;
    this.#coordinators = new ResourceCache<SpiderCoordinator>(kc, http, {
      path: COORDINATORS,
      fieldSelector: byName(this.name),
      log: this.#log,
    });
    this.#configMaps = [KUBEADM_CONFIG, this.#cilium].map((cm) =>
      new ResourceCache<ConfigMap>(kc, http, {
        path: `/api/v1/namespaces/${encodeURIComponent(cm.namespace)}/configmaps`,
        fieldSelector: byName(cm.name),
        log: this.#log,
      })
    );
    const optional = <T extends { metadata?: { name?: string } }>(group: string, plural: string) =>
      new OptionalResourceCache<T>(kc, http, { group, plural, checkMs: opts.discoveryMs, log: this.#log });
    this.#serviceCIDRs = optional<ServiceCIDR>("networking.k8s.io", "servicecidrs");
    this.#calicoPools = optional<CalicoIPPool>("crd.projectcalico.org", "ippools");
    this.#ciliumPools = optional<CiliumPodIPPool>("cilium.io", "ciliumpodippools");
    for (const c of [this.#coordinators, ...this.#configMaps]) c.onChange(enqueue);
    for (const c of [this.#serviceCIDRs, this.#calicoPools, this.#ciliumPools]) {
      c.onChange(enqueue);
      c.onPresence(enqueue);
    }
    this.#events = new EventRecorder({ instance: opts.identity, log: this.#log });
    this.synced = this.#coordinators.synced;
  }

  /** Starts the caches (on every replica). */
  start(): void {
    this.#coordinators.start();
    for (const c of this.#configMaps) c.start();
    for (const c of [this.#serviceCIDRs, this.#calicoPools, this.#ciliumPools]) c.start();
  }

  /** Ends any term and stops the caches. */
  async stop(): Promise<void> {
    await this.stopLeading();
    this.#coordinators.stop();
    for (const c of this.#configMaps) c.stop();
    for (const c of [this.#serviceCIDRs, this.#calicoPools, this.#ciliumPools]) c.stop();
  }

  startLeading(signal: AbortSignal, leader: LeaderView): void {
    if (this.#term && !this.#term.signal.aborted) return;
    const kube = new ReconcileKube(this.#opts.http, {
      isLeader: () => !signal.aborted && leader.isLeader(),
      signal,
    }, this.metrics);
    const queue = new WorkQueue();
    const term: Term = { signal, kube, queue, worker: Promise.resolve() };
    term.worker = this.#work(term);
    this.#term = term;
    signal.addEventListener("abort", () => this.#endTerm(term), { once: true });
    void this.synced.then(() => {
      if (term.signal.aborted) return;
      queue.add(this.name);
      term.resync = setInterval(() => queue.add(this.name), this.#opts.resyncMs ?? 60_000);
    });
  }

  async stopLeading(): Promise<void> {
    const term = this.#term;
    if (term) this.#endTerm(term);
    await this.#stopping;
  }

  /** Recomputes the status now, as the periodic resync does (while leading). */
  resync(): void {
    this.#term?.queue.add(this.name);
  }

  /** Resolves once the queued reconcile has finished and none waits for a retry. For tests. */
  async settled(): Promise<void> {
    await this.synced;
    for (;;) {
      const term = this.#term;
      if (!term || term.signal.aborted) return;
      await term.queue.whenIdle();
      await new Promise((r) => setTimeout(r, 20));
      if (term.queue.idle() && term.queue.delayed === 0) return;
    }
  }

  #endTerm(term: Term): void {
    if (this.#term !== term) return;
    this.#term = undefined;
    clearInterval(term.resync);
    term.queue.shutDown();
    this.#stopping = term.worker;
  }

  async #work(term: Term): Promise<void> {
    const { queue } = term;
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const t0 = performance.now();
      let result: ReconcileResult;
      try {
        result = await this.#reconcile(term);
        queue.forget(key);
      } catch (err) {
        if (err instanceof NotLeaderError || term.signal.aborted) {
          result = "not_leader";
        } else {
          result = err instanceof ConflictError ? "conflict" : "error";
          if (result === "error" || queue.failures(key) >= 3) {
            this.#log(`${KIND.coordinator} ${JSON.stringify(key)}: ${(err as Error).message}; retrying`);
          }
          queue.addRateLimited(key);
        }
      } finally {
        queue.done(key);
      }
      this.metrics.reconciled("SpiderCoordinator", result, (performance.now() - t0) / 1000);
    }
  }

  async #reconcile(term: Term): Promise<ReconcileResult> {
    const { kube } = term;
    const path = `${COORDINATORS}/${encodeURIComponent(this.name)}`;
    // Read fresh: the status written last time must be compared with what is stored now.
    const coord = await kube.get<SpiderCoordinator>(path);
    if (!coord || coord.metadata.deletionTimestamp) {
      this.coordinatorMetrics.gone(this.name);
      return "converged";
    }
    const facts = await this.#gather(term, coord);
    const plan = planCoordinatorStatus(facts);
    const ref = coordRef(coord);
    const type = coord.spec?.podCIDRType ?? "(unset)";
    if (this.#lastType !== undefined && type !== this.#lastType) {
      await this.#events.emit(kube, ref, {
        type: "Normal",
        reason: "PodCIDRTypeChanged",
        message: `podCIDRType changed from ${this.#lastType} to ${type}`,
      });
    }
    this.#lastType = type;
    for (const ev of plan.events) await this.#events.emit(kube, ref, ev);
    const status = plan.status;
    const changed = !sameStatus(coord.status, status);
    if (changed) {
      await kube.mergePatch(`${path}/status`, {
        metadata: { resourceVersion: coord.metadata.resourceVersion },
        status: { ...status, reason: status.reason ?? null },
      }, "coordinator_status");
      if (status.phase === "Synced") {
        await this.#events.emit(kube, ref, {
          type: "Normal",
          reason: "CIDRsSynced",
          message:
            `podCIDRType ${plan.podCIDRType}: overlayPodCIDR [${status.overlayPodCIDR?.join(", ")}], ` +
            `serviceCIDR [${status.serviceCIDR?.join(", ")}] (from ${plan.sources.join("; ")})`,
        });
      }
    }
    this.coordinatorMetrics.synced(
      this.name,
      status.phase,
      status.overlayPodCIDR?.length ?? 0,
      status.serviceCIDR?.length ?? 0,
      changed,
    );
    return changed ? "written" : "converged";
  }

  /** Reads what the status depends on; only what the podCIDRType in question needs. */
  async #gather(term: Term, coord: SpiderCoordinator): Promise<CoordinatorFacts> {
    const { kube, signal } = term;
    const { http } = this.#opts;
    const facts: CoordinatorFacts = { name: this.name, podCIDRType: coord.spec?.podCIDRType };
    if (facts.podCIDRType === "auto") {
      facts.defaultCNI = await readDefaultCNI(this.#opts.cniConfigDir ?? DEFAULT_CNI_CONFIG_DIR);
    }
    const type = effectivePodCIDRType(facts);
    facts.cluster = await this.#clusterCIDRs(kube, signal);
    // Listed fresh, on the version the cache found served (or discovery now, before the cache's first check).
    const list = async <T>(cache: OptionalResourceCache<Listed>, group: string, plural: string) => {
      const gv = cache.groupVersion ?? (await servingVersions(http, group, plural, signal))[0];
      if (!gv) return undefined;
      try {
        return (await http.get<{ items?: T[] }>(`/apis/${gv}/${plural}`, { signal })).body.items ?? [];
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    };
    facts.serviceCIDRs = await list<ServiceCIDR>(this.#serviceCIDRs, "networking.k8s.io", "servicecidrs");
    if (type === "calico") {
      facts.calicoPools = await list<CalicoIPPool>(this.#calicoPools, "crd.projectcalico.org", "ippools");
    }
    if (type === "cilium") {
      const { namespace, name } = this.#cilium;
      const cm = await kube.get<ConfigMap>(
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps/${encodeURIComponent(name)}`,
      );
      facts.cilium = { configMap: `${namespace}/${name}`, data: cm ? cm.data ?? {} : undefined };
      if (cm?.data?.ipam === "multi-pool") {
        facts.cilium.pools = await list<CiliumPodIPPool>(this.#ciliumPools, "cilium.io", "ciliumpodippools");
      }
    }
    return facts;
  }

  /** kubeadm-config's subnets, each missing one taken from a kube-controller-manager pod's flags. */
  async #clusterCIDRs(kube: ReconcileKube, signal: AbortSignal): Promise<ClusterCIDRs | undefined> {
    const cm = await kube.get<ConfigMap>(
      `/api/v1/namespaces/${KUBEADM_CONFIG.namespace}/configmaps/${KUBEADM_CONFIG.name}`,
    );
    const kubeadm = cidrsFromKubeadmConfig(cm?.data);
    if (kubeadm && kubeadm.podCIDR.length > 0 && kubeadm.serviceCIDR.length > 0) return kubeadm;
    const { body } = await this.#opts.http.get<{ items?: KCMPod[] }>(
      `/api/v1/pods?labelSelector=${encodeURIComponent(KCM_SELECTOR)}`,
      { signal },
    );
    const kcm = (body.items ?? []).map(cidrsFromKCMPod).find((c) => c !== undefined);
    if (!kubeadm) return kcm;
    if (!kcm) return kubeadm;
    return {
      podCIDR: kubeadm.podCIDR.length > 0 ? kubeadm.podCIDR : kcm.podCIDR,
      serviceCIDR: kubeadm.serviceCIDR.length > 0 ? kubeadm.serviceCIDR : kcm.serviceCIDR,
      source: `${kubeadm.source} and ${kcm.source}`,
    };
  }
}

/** `namespace/name` → parts; throws CoordinatorConfigError naming the setting otherwise. */
export function parseNamespacedName(text: string): { namespace: string; name: string } {
  const parts = text.split("/");
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    throw new CoordinatorConfigError(
      `SPIDERPOOL_CILIUM_CONFIGMAP_NAMESPACE_NAME=${JSON.stringify(text)} must be "namespace/name", e.g. ` +
        `${JSON.stringify(DEFAULT_CILIUM_CONFIGMAP)}`,
    );
  }
  return { namespace: parts[0], name: parts[1] };
}
