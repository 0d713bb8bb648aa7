// The application controller (upstream's SpiderSubnet application controller, spec §5): while this replica
// leads, list+watch caches of Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs and CronJobs feed a
// work queue keyed by application (`apps_v1_Deployment_ns_name`); each reconcile reads the application and
// makes its auto-pools the size the rules of src/ipam/autopool.ts say (ensureAutoPool: subnet pre-allocation
// first, then the pool), deletes reclaimable pools of deleted applications (also of third-party controllers,
// whose pools the agent makes), and drops pre-allocations left by pools that are gone. Level-triggered and
// idempotent; every write is conditional and leader-guarded; Events tell the user what happened and what to do.

import type { KubeConfig } from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import { decodeControlledIPPools, encodeControlledIPPools, StatusDecodeError } from "../../api/allocated.ts";
import { AnnotationError } from "../../api/annotations.ts";
import type { SpiderpoolConfig } from "../../api/config.ts";
import { ANNOTATION, KIND, LABEL, PLURAL } from "../../api/constants.ts";
import type { SpiderIPPool, SpiderReservedIP, SpiderSubnet } from "../../api/types.ts";
import { IPRangeSet } from "../../ip/mod.ts";
import {
  applicationFromKey,
  applicationKey,
  type AppObject,
  type AppPresence,
  appReplicas,
  appSkipReason,
  autoPoolConfig,
  autoPoolName,
  autoPoolWants,
  desiredIPCount,
  InsufficientSubnetIPsError,
  ipNumberAnnotation,
  isNativeApp,
  isPoolOf,
  NATIVE_APPS,
  podTemplateOf,
  poolApplication,
  PoolFreeIPsNotEnoughError,
  reclaimablePool,
  selectAutoPool,
  staleEntries,
  SubnetChangedError,
} from "../../ipam/autopool.ts";
import {
  ensureAutoPool,
  type EnsureResult,
  looksConverged,
  SubnetUnavailableError,
} from "../../ipam/autopool_ensure.ts";
import type { TopController } from "../../ipam/workload.ts";
import { ResourceCache } from "../../kube/cache.ts";
import { ConflictError, type KubeHttp } from "../../kube/client.ts";
import type { LeaderView, LeaderWork } from "../leader.ts";
import { ControllerMetrics } from "../metrics.ts";
import { EventRecorder, type InvolvedObject, type PlannedEvent } from "../reconcile/events.ts";
import { NotLeaderError, POOLS, ReconcileKube, SUBNETS } from "../reconcile/kube.ts";
import { WorkQueue } from "../reconcile/queue.ts";
import { ControllerIO } from "./io.ts";
import { type AppReconcileResult, AutoPoolMetrics, type ScaleFailure } from "./metrics.ts";

/** Event reasons of the application controller. */
export const AUTO_POOL_EVENT = {
  created: "AutoPoolCreated",
  scaled: "AutoPoolScaled",
  reclaimed: "AutoPoolReclaimed",
  scaleFailed: "AutoPoolScaleFailed",
  subnetChanged: "ApplicationSubnetChanged",
  invalidAnnotation: "InvalidAutoPoolAnnotation",
} as const;

/** The ConfigMap switches the controller reads. */
export type AutoPoolConfigFlags = Pick<
  SpiderpoolConfig,
  "enableIPv4" | "enableIPv6" | "clusterSubnetDefaultFlexibleIPNumber"
>;

export interface AutoPoolControllerOptions {
  http: KubeHttp;
  /** For the caches' watches. */
  kubeConfig: KubeConfig;
  /** This replica (pod name): the `reportingInstance` of its Events. */
  identity: string;
  config: AutoPoolConfigFlags;
  /** The daemon's registry for the auto-pool metrics; a new one when absent. */
  registry?: Registry;
  metrics?: AutoPoolMetrics;
  /** Counts the Event writes (`spiderpool_controller_api_writes_total{kind="event"}`). */
  controllerMetrics?: ControllerMetrics;
  /** Only applications in these namespaces (all when absent), e.g. to run beside other controllers in tests. */
  namespaces?: readonly string[];
  /** Labels added to every pool this controller creates (a test's webhook object selector). */
  extraPoolLabels?: Record<string, string>;
  /** Default 5 (upstream's application controller). */
  workers?: number;
  /** Every application is reconciled again this often while leading; default 300 s. */
  resyncMs?: number;
  log?: (message: string) => void;
}

/** How long an API discovery answer about a third-party group version is reused. */
const DISCOVERY_TTL_MS = 30_000;

/** How long a third-party kind must be missing from discovery before its applications count as gone. */
const UNSERVED_GRACE_MS = 300_000;

/** Upstream's cap on the application work queue; beyond it keys are dropped until the next resync. */
const MAX_QUEUE = 10_000;

interface Term {
  signal: AbortSignal;
  io: ControllerIO;
  events: ReconcileKube;
  queue: WorkQueue;
  workers: Promise<void>[];
  resync?: ReturnType<typeof setInterval>;
}

interface Caches {
  apps: Map<string, ResourceCache<AppObject>>;
  pools: ResourceCache<SpiderIPPool>;
  subnets: ResourceCache<SpiderSubnet>;
  reserved: ResourceCache<SpiderReservedIP>;
  synced: Promise<void>;
}

/** What of an application decides its pools: a change of anything else (e.g. status) queues nothing. */
function appFacts(kind: string, app: AppObject): string {
  const template = podTemplateOf(kind, app);
  const anno = template?.metadata?.annotations ?? {};
  return JSON.stringify([
    app.metadata.uid,
    app.metadata.ownerReferences?.find((o) => o.controller)?.uid,
    template?.spec?.hostNetwork === true,
    anno[ANNOTATION.subnet],
    anno[ANNOTATION.subnets],
    anno[ANNOTATION.ippoolIPNumber],
    anno[ANNOTATION.ippoolReclaim],
    appReplicas(kind, app),
  ]);
}

const enc = encodeURIComponent;

/** Decoded `controlledIPPools` of cached subnets: cached objects are replaced, never changed, so per object. */
const decoded = new WeakMap<SpiderSubnet, ReturnType<typeof decodeControlledIPPools>>();

/** The pre-allocations of a cached subnet; throws StatusDecodeError when they do not decode. */
function cachedEntries(subnet: SpiderSubnet): ReturnType<typeof decodeControlledIPPools> {
  let out = decoded.get(subnet);
  if (out === undefined) {
    out = decodeControlledIPPools(subnet.status?.controlledIPPools, subnet.metadata?.name ?? "");
    decoded.set(subnet, out);
  }
  return out;
}

/**
 * The application controller as leader-only work: caches, queue and workers exist only while this replica
 * leads.
 *
 * @example
 * ```ts
 * const apps = new AutoPoolController({ http, kubeConfig, identity: podName, config });
 * const elector = new LeaderElector({ http, namespace, identity: podName, work: [reconcilers, apps] });
 * ```
 */
export class AutoPoolController implements LeaderWork {
  readonly metrics: AutoPoolMetrics;
  readonly #o: AutoPoolControllerOptions;
  readonly #log: (m: string) => void;
  readonly #events: EventRecorder;
  readonly #controllerMetrics: ControllerMetrics;
  #caches?: Caches;
  #term?: Term;
  #stopping: Promise<void> = Promise.resolve();
  /** Application key → the facts last queued for (see appFacts). */
  readonly #facts = new Map<string, string>();
  /** Subnet → applications whose last reconcile failed on it (queued again when the subnet changes). */
  readonly #waiting = new Map<string, Set<string>>();
  /** `apiVersion/kind` of third-party applications → when discovery first did not list it. */
  readonly #unserved = new Map<string, number>();
  /** Third-party group/version → kind → plural (API discovery) and when it was asked, per term. */
  #discovery = new Map<string, { at: number; plurals: Promise<Map<string, string> | undefined> }>();

  constructor(opts: AutoPoolControllerOptions) {
    this.#o = opts;
    this.#log = opts.log ?? ((m) => console.error(`auto-pool: ${m}`));
    this.metrics = opts.metrics ?? new AutoPoolMetrics(opts.registry);
    this.#controllerMetrics = opts.controllerMetrics ?? new ControllerMetrics();
    this.#events = new EventRecorder({ instance: opts.identity, log: this.#log });
  }

  startLeading(signal: AbortSignal, leader: LeaderView): void {
    if (this.#term && !this.#term.signal.aborted) return;
    const leadership = { isLeader: () => !signal.aborted && leader.isLeader(), signal };
    const caches = this.#caches ??= this.#startCaches();
    const term: Term = {
      signal,
      io: new ControllerIO({
        http: this.#o.http,
        leadership,
        metrics: this.metrics,
        pools: () => caches.pools.list(),
        reservedIPs: () => caches.reserved.list(),
        subnets: (name) => caches.subnets.get(name),
      }),
      events: new ReconcileKube(this.#o.http, leadership, this.#controllerMetrics),
      queue: new WorkQueue(),
      workers: [],
    };
    this.#term = term;
    this.#facts.clear();
    this.#discovery = new Map();
    this.metrics.observe(
      () => caches.pools.list().filter((p) => poolApplication(p) !== undefined).length,
      () => term.queue.length,
    );
    signal.addEventListener("abort", () => this.#endTerm(term), { once: true });
    void caches.synced.then(() => {
      if (term.signal.aborted) return;
      for (let i = 0; i < (this.#o.workers ?? 5); i++) term.workers.push(this.#work(term));
      this.#enqueueAll(term);
      term.resync = setInterval(() => this.#enqueueAll(term), this.#o.resyncMs ?? 300_000);
    });
  }

  async stopLeading(): Promise<void> {
    const term = this.#term;
    if (term) this.#endTerm(term);
    await this.#stopping;
  }

  /** Ends any term (caches included). */
  async stop(): Promise<void> {
    await this.stopLeading();
  }

  /** Queues every application now, as the periodic resync does (while leading). */
  resync(): void {
    if (this.#term) this.#enqueueAll(this.#term);
  }

  /**
   * Resolves once the caches are synced and every queued reconcile has finished with none waiting for a
   * retry (for tests and benchmarks); while an application keeps failing (e.g. its subnet is too small) it
   * does not resolve.
   */
  async settled(): Promise<void> {
    for (;;) {
      const term = this.#term;
      if (!term || term.signal.aborted) return;
      await this.#caches?.synced;
      if (term.workers.length === 0) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
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
    const caches = this.#caches;
    this.#caches = undefined;
    this.#stopping = Promise.all(term.workers).then(() => {
      // Caches run only while leading: a later term lists afresh.
      if (caches) {
        for (const c of [...caches.apps.values(), caches.pools, caches.subnets, caches.reserved]) c.stop();
      }
    });
  }

  #inScope(namespace: string | undefined): boolean {
    const ns = this.#o.namespaces;
    return ns === undefined || (namespace !== undefined && ns.includes(namespace));
  }

  #startCaches(): Caches {
    const { http, kubeConfig } = this.#o;
    const cache = <T extends { metadata?: { name?: string } }>(path: string) => {
      const c = new ResourceCache<T>(kubeConfig, http, { path, log: this.#log, resyncMs: 300_000 });
      return c;
    };
    const only = this.#o.namespaces?.length === 1 ? this.#o.namespaces[0] : undefined;
    const apps = new Map<string, ResourceCache<AppObject>>();
    for (const [kind, { apiVersion, plural }] of Object.entries(NATIVE_APPS)) {
      const base = `/apis/${apiVersion}${only ? `/namespaces/${enc(only)}` : ""}/${plural}`;
      const c = cache<AppObject>(base);
      c.onChange((app, deleted) => this.#appChanged(kind, app, deleted));
      apps.set(kind, c);
    }
    const pools = cache<SpiderIPPool>(POOLS);
    pools.onChange((pool) => {
      const app = poolApplication(pool);
      if (app && this.#inScope(app.namespace)) this.#enqueue(applicationKey(app));
    });
    const subnets = cache<SpiderSubnet>(SUBNETS);
    subnets.onChange((subnet) => this.#subnetChanged(subnet));
    const reserved = cache<SpiderReservedIP>(`/apis/spiderpool.spidernet.io/v2beta1/${PLURAL.reservedIP}`);
    const all = [...apps.values(), pools, subnets, reserved];
    for (const c of all) c.start();
    return { apps, pools, subnets, reserved, synced: Promise.all(all.map((c) => c.synced)).then(() => {}) };
  }

  #appChanged(kind: string, app: AppObject, deleted: boolean): void {
    const namespace = app.metadata.namespace ?? "";
    if (!this.#inScope(namespace)) return;
    const key = applicationKey({
      apiVersion: NATIVE_APPS[kind].apiVersion,
      kind,
      namespace,
      name: app.metadata.name,
    });
    if (deleted) {
      this.#facts.delete(key);
      this.#enqueue(key);
      return;
    }
    const facts = appFacts(kind, app);
    if (this.#facts.get(key) === facts) return;
    this.#facts.set(key, facts);
    this.#enqueue(key);
  }

  #subnetChanged(subnet: SpiderSubnet): void {
    const name = subnet.metadata?.name ?? "";
    const waiting = this.#waiting.get(name);
    if (waiting) { for (const key of waiting) this.#enqueue(key); }
    // Pre-allocations whose pool is gone: the application they name decides whether they stay.
    let entries;
    try {
      entries = cachedEntries(subnet);
    } catch {
      return; // the subnet reconciler reports it
    }
    const pools = this.#caches?.pools;
    for (const [pool, share] of Object.entries(entries)) {
      if (!share.application || pools?.get(pool)) continue;
      const app = applicationFromKey(share.application);
      if (app && this.#inScope(app.namespace)) this.#enqueue(share.application);
    }
  }

  #enqueue(key: string): void {
    const term = this.#term;
    if (!term) return;
    if (term.queue.length >= MAX_QUEUE) {
      this.#log(`the application work queue is full (${MAX_QUEUE}); ${key} waits for the next resync`);
      return;
    }
    term.queue.add(key);
  }

  #enqueueAll(term: Term): void {
    const caches = this.#caches;
    if (!caches || term !== this.#term) return;
    for (const [kind, c] of caches.apps) {
      for (const app of c.list()) {
        if (!this.#inScope(app.metadata.namespace)) continue;
        const apiVersion = NATIVE_APPS[kind].apiVersion;
        this.#enqueue(
          applicationKey({
            apiVersion,
            kind,
            namespace: app.metadata.namespace ?? "",
            name: app.metadata.name,
          }),
        );
      }
    }
    for (const pool of caches.pools.list()) {
      const app = poolApplication(pool);
      if (app && this.#inScope(app.namespace)) this.#enqueue(applicationKey(app));
    }
    for (const subnet of caches.subnets.list()) this.#subnetChanged(subnet);
  }

  async #work(term: Term): Promise<void> {
    for (;;) {
      const key = await term.queue.get();
      if (key === undefined) return;
      const t0 = performance.now();
      const kind = applicationFromKey(key)?.kind ?? "unknown";
      let result: AppReconcileResult;
      try {
        result = await this.#reconcile(term, key);
        term.queue.forget(key);
      } catch (err) {
        if (err instanceof NotLeaderError || term.signal.aborted) {
          result = "not_leader";
        } else {
          result = "failed";
          if (!(err instanceof RetryLater) || term.queue.failures(key) >= 3) {
            this.#log(`${key}: ${(err as Error).message}; retrying`);
          }
          term.queue.addRateLimited(key);
        }
      } finally {
        term.queue.done(key);
      }
      this.metrics.reconciled(kind, result, (performance.now() - t0) / 1000);
    }
  }

  /** One level-triggered pass over an application: its pools, its leftovers, its pre-allocations. */
  async #reconcile(term: Term, key: string): Promise<AppReconcileResult> {
    const id = applicationFromKey(key);
    if (!id || !this.#inScope(id.namespace)) return "converged";
    const caches = this.#caches!;
    let app: AppObject | undefined;
    let presence: AppPresence;
    if (isNativeApp(id)) {
      app = caches.apps.get(id.kind)?.get(id.name, id.namespace);
      if (app === undefined) {
        // The cache may lag behind a creation a previous leader acted on: confirm before deleting anything.
        app = await term.io.get<AppObject>(appPath(id, NATIVE_APPS[id.kind].plural));
      }
      presence = app ? { exists: true, uid: app.metadata.uid ?? "" } : { exists: false };
    } else {
      presence = await this.#thirdPartyPresence(term, id);
    }

    let written = false;
    const wanted = new Set<string>();
    let failure: Error | undefined;
    if (app !== undefined && isNativeApp(id) && presence.exists === true) {
      const top: TopController = { ...id, uid: presence.uid };
      const outcome = await this.#ensurePools(term, top, app);
      written ||= outcome.written;
      for (const n of outcome.wanted) wanted.add(n);
      failure = outcome.failure;
    }

    // Pools of this application identity that must go: reclaimable ones of a gone (or replaced) application.
    for (const pool of caches.pools.list()) {
      if (!isPoolOf(pool, id) || wanted.has(pool.metadata?.name ?? "")) continue;
      if (!reclaimablePool(pool, presence)) continue;
      await term.io.deletePool(pool);
      written = true;
      this.metrics.changed("deleted");
      await this.#event(term, poolRef(pool), {
        type: "Normal",
        reason: AUTO_POOL_EVENT.reclaimed,
        message: presence.exists === false
          ? `deleted: ${id.kind} ${id.namespace}/${id.name} was deleted and the pool is reclaimable ` +
            `(${LABEL.ippoolReclaim}: "true"); it goes once its IPs are released`
          : `deleted: it belonged to an earlier ${id.kind} ${id.namespace}/${id.name} (UID ` +
            `${pool.metadata?.labels?.[LABEL.ownerApplicationUID]}) and is reclaimable`,
      });
    }

    if (presence.exists !== "unknown") written = (await this.#dropStaleEntries(term, key, wanted)) || written;
    if (failure) throw failure;
    return written ? "written" : "converged";
  }

  /** Makes every pool the application needs the right size; collects what failed. */
  async #ensurePools(
    term: Term,
    top: TopController,
    app: AppObject,
  ): Promise<{ written: boolean; wanted: string[]; failure?: Error }> {
    const ref = appRef(top);
    const wanted: string[] = [];
    const kind = top.kind;
    if (appSkipReason(kind, app) !== undefined) {
      // No pool wanted (or no longer): existing ones stay as they are for the pods still using them.
      for (const p of this.#caches!.pools.list()) {
        if (isPoolOf(p, top) && p.metadata?.labels?.[LABEL.ownerApplicationUID] === top.uid) {
          wanted.push(p.metadata?.name ?? "");
        }
      }
      return { written: false, wanted };
    }
    const annotations = podTemplateOf(kind, app)?.metadata?.annotations ?? {};
    let config;
    try {
      config = autoPoolConfig(annotations, this.#o.config.clusterSubnetDefaultFlexibleIPNumber);
    } catch (err) {
      if (!(err instanceof AnnotationError)) throw err;
      this.metrics.failed("invalid_annotation");
      await this.#event(term, ref, {
        type: "Warning",
        reason: AUTO_POOL_EVENT.invalidAnnotation,
        message: `${err.message}; no auto-created pool is made or resized until the pod template is fixed`,
      });
      // Wait for the template to change (a watch event), not for a retry.
      for (const p of this.#caches!.pools.list()) if (isPoolOf(p, top)) wanted.push(p.metadata?.name ?? "");
      return { written: false, wanted };
    }
    if (!config) return { written: false, wanted };
    const replicas = appReplicas(kind, app);
    const desired = desiredIPCount(config.ipNumber, replicas);
    let written = false;
    let failure: Error | undefined;
    for (const want of autoPoolWants(config, this.#o.config)) {
      const existing = (() => {
        try {
          return selectAutoPool(this.#caches!.pools.list(), top, want);
        } catch {
          return undefined;
        }
      })();
      wanted.push(existing?.metadata?.name ?? autoPoolName(top.name, want.family, want.ifName, top.uid));
      const input = {
        app: top,
        want,
        desired,
        ipNumber: config.ipNumber,
        reclaim: config.reclaim,
        extraLabels: this.#o.extraPoolLabels,
      };
      if (looksConverged(input, existing, this.#caches!.subnets.get(want.subnet))) {
        this.#waitOn(want.subnet, applicationKey(top), false);
        continue;
      }
      let result: EnsureResult;
      try {
        result = await ensureAutoPool(term.io, input);
      } catch (err) {
        if (err instanceof NotLeaderError || term.signal.aborted) throw err;
        const e = err as Error;
        this.#waitOn(want.subnet, applicationKey(top), true);
        this.metrics.failed(failureReason(e));
        failure ??= e instanceof SubnetChangedError || e instanceof PoolFreeIPsNotEnoughError ||
            e instanceof InsufficientSubnetIPsError || e instanceof SubnetUnavailableError
          ? new RetryLater(e.message)
          : e;
        if (e instanceof SubnetChangedError) {
          const pool = this.#caches!.pools.get(e.pool);
          const ev: PlannedEvent = {
            type: "Warning",
            reason: AUTO_POOL_EVENT.subnetChanged,
            message: e.message,
          };
          await this.#event(term, ref, ev);
          if (pool) await this.#event(term, poolRef(pool), ev);
        } else if (!(err instanceof ConflictError)) {
          await this.#event(term, ref, {
            type: "Warning",
            reason: AUTO_POOL_EVENT.scaleFailed,
            message: e.message,
          });
        }
        continue;
      }
      this.#waitOn(want.subnet, applicationKey(top), false);
      wanted[wanted.length - 1] = result.pool.metadata?.name ?? wanted[wanted.length - 1];
      if (result.writes > 0) written = true;
      if (result.action === "unchanged") continue;
      this.metrics.changed(result.action);
      const poolName = result.pool.metadata?.name;
      const number = ipNumberAnnotation(config.ipNumber);
      if (result.action === "created") {
        await this.#event(term, ref, {
          type: "Normal",
          reason: AUTO_POOL_EVENT.created,
          message: `created ${KIND.ippool} ${JSON.stringify(poolName)} with ${result.to} IPs from ` +
            `${KIND.subnet} ${JSON.stringify(want.subnet)} for IPv${want.family} on ${want.ifName} ` +
            `(replicas ${replicas}, ${ANNOTATION.ippoolIPNumber} "${number}")`,
        });
      } else if (result.action === "grown" || result.action === "shrunk") {
        await this.#event(term, ref, {
          type: "Normal",
          reason: AUTO_POOL_EVENT.scaled,
          message: `${KIND.ippool} ${JSON.stringify(poolName)} ${result.action} from ${result.from} to ` +
            `${result.to} IPs (replicas ${replicas}, ${ANNOTATION.ippoolIPNumber} "${number}")`,
        });
      }
    }
    return { written, wanted, failure };
  }

  #waitOn(subnet: string, key: string, failing: boolean): void {
    let set = this.#waiting.get(subnet);
    if (failing) {
      if (!set) this.#waiting.set(subnet, set = new Set());
      set.add(key);
    } else if (set) {
      set.delete(key);
      if (set.size === 0) this.#waiting.delete(subnet);
    }
  }

  /**
   * Drops the pre-allocations of application `key` whose pool is gone (confirmed by a fresh read) and that the
   * application does not want; each subnet write is conditional on the version read.
   */
  async #dropStaleEntries(term: Term, key: string, wanted: ReadonlySet<string>): Promise<boolean> {
    const caches = this.#caches!;
    let written = false;
    for (const cached of caches.subnets.list()) {
      const name = cached.metadata?.name ?? "";
      let entries;
      try {
        entries = cachedEntries(cached);
      } catch (err) {
        if (err instanceof StatusDecodeError) continue;
        throw err;
      }
      const candidates = staleEntries(entries, key, (p) => caches.pools.get(p) !== undefined, wanted);
      if (candidates.length === 0) continue;
      const gone: string[] = [];
      for (const pool of candidates) {
        if (await term.io.getPool(pool) === undefined) gone.push(pool);
      }
      if (gone.length === 0) continue;
      await term.io.withSubnet(name, async () => {
        for (let attempt = 0; attempt < 5; attempt++) {
          const subnet = await term.io.getSubnet(name);
          if (!subnet) return;
          const now = decodeControlledIPPools(subnet.status?.controlledIPPools, name);
          const drop = gone.filter((p) => now[p]?.application === key);
          if (drop.length === 0) return;
          for (const p of drop) delete now[p];
          const counts = subnetCounts(subnet, now);
          try {
            await term.io.patchSubnetStatus(name, subnet.metadata?.resourceVersion, {
              controlledIPPools: encodeControlledIPPools(now) ?? null,
              ...counts,
            });
            written = true;
            return;
          } catch (err) {
            if (!(err instanceof ConflictError)) throw err;
            await term.io.sleep(10 * 2 ** attempt);
          }
        }
        throw new RetryLater(`${KIND.subnet} ${name}: kept changing while dropping stale pre-allocations`);
      });
    }
    return written;
  }

  /**
   * Whether a third-party application exists: found through API discovery of its group version; a group
   * version or kind the API server does not serve means it cannot exist. Any other failure is "unknown".
   */
  async #thirdPartyPresence(
    term: Term,
    id: Pick<TopController, "apiVersion" | "kind" | "namespace" | "name">,
  ): Promise<AppPresence> {
    try {
      let known = this.#discovery.get(id.apiVersion);
      // Discovery changes when CRDs come and go: it is remembered only briefly.
      if (!known || Date.now() - known.at > DISCOVERY_TTL_MS) {
        const base = id.apiVersion.includes("/") ? `/apis/${id.apiVersion}` : `/api/${id.apiVersion}`;
        const plurals = term.io.get<{ resources?: { name: string; kind: string }[] }>(base).then((list) =>
          list === undefined
            ? undefined
            : new Map(list.resources?.filter((r) => !r.name.includes("/")).map((r) => [r.kind, r.name]))
        );
        known = { at: Date.now(), plurals };
        this.#discovery.set(id.apiVersion, known);
      }
      const map = await known.plurals;
      const plural = map?.get(id.kind);
      const kindKey = `${id.apiVersion}/${id.kind}`;
      if (plural === undefined) {
        // A kind the API server does not serve has no objects, but discovery lags behind a CRD just installed:
        // only a kind missing for a whole grace period counts as gone (the periodic resync asks again).
        const since = this.#unserved.get(kindKey) ?? Date.now();
        this.#unserved.set(kindKey, since);
        return Date.now() - since >= UNSERVED_GRACE_MS ? { exists: false } : { exists: "unknown" };
      }
      this.#unserved.delete(kindKey);
      const obj = await term.io.get<AppObject>(appPath(id, plural));
      return obj ? { exists: true, uid: obj.metadata.uid ?? "" } : { exists: false };
    } catch (err) {
      if (err instanceof NotLeaderError || term.signal.aborted) throw err;
      this.#discovery.delete(id.apiVersion);
      this.#log(
        `${id.kind} ${id.namespace}/${id.name}: cannot tell whether it exists: ${(err as Error).message}`,
      );
      return { exists: "unknown" };
    }
  }

  async #event(term: Term, obj: InvolvedObject, ev: PlannedEvent): Promise<void> {
    await this.#events.emit(term.events, obj, ev);
  }
}

/** A failure the user (or time) must fix: retried with backoff, logged only when it persists. */
class RetryLater extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RetryLater";
  }
}

/** `totalIPCount` and `allocatedIPCount` of a subnet whose pre-allocations are `entries` (as the reconciler counts). */
function subnetCounts(
  subnet: SpiderSubnet,
  entries: Readonly<Record<string, { ips: string[] }>>,
): { totalIPCount: number; allocatedIPCount: number } {
  const family = subnet.spec?.ipVersion === 6 || subnet.spec?.subnet?.includes(":") ? 6 : 4;
  const n = (x: bigint) => x > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(x);
  let total = 0n;
  try {
    total = IPRangeSet.parse(family, subnet.spec?.ips ?? [])
      .subtract(IPRangeSet.parse(family, subnet.spec?.excludeIPs ?? [])).count();
  } catch { /* the subnet reconciler reports it */ }
  let allocated = 0n;
  for (const share of Object.values(entries)) {
    try {
      allocated += IPRangeSet.parse(family, share.ips).count();
    } catch { /* the subnet reconciler reports it */ }
  }
  return { totalIPCount: n(total), allocatedIPCount: n(allocated) };
}

function failureReason(err: Error): ScaleFailure {
  if (err instanceof InsufficientSubnetIPsError) return "insufficient_subnet_ips";
  if (err instanceof PoolFreeIPsNotEnoughError) return "pool_free_ips_not_enough";
  if (err instanceof SubnetChangedError) return "subnet_changed";
  if (err instanceof SubnetUnavailableError) return "subnet_unavailable";
  if (err instanceof ConflictError) return "conflict";
  return "other";
}

function appPath(id: Pick<TopController, "apiVersion" | "namespace" | "name">, plural: string): string {
  const base = id.apiVersion.includes("/") ? `/apis/${id.apiVersion}` : `/api/${id.apiVersion}`;
  return `${base}/namespaces/${enc(id.namespace)}/${plural}/${enc(id.name)}`;
}

function appRef(top: TopController): InvolvedObject {
  return {
    apiVersion: top.apiVersion,
    kind: top.kind,
    metadata: { name: top.name, namespace: top.namespace, uid: top.uid },
  };
}

function poolRef(pool: SpiderIPPool): InvolvedObject {
  return {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: KIND.ippool,
    metadata: { name: pool.metadata?.name, uid: pool.metadata?.uid },
  };
}
