// The controller's reconcile loops for SpiderIPPools and SpiderSubnets, in controller-runtime's shape: list+watch
// caches feed work queues keyed by object name; workers call a level-triggered reconcile (read the cached object,
// plan purely, write only the difference, conditional on the resourceVersion read); conflicts re-read from the
// API server and retry with backoff; a resync re-queues everything every 300 s. The caches run on every replica
// (a new leader starts warm); queues, workers and every write exist only during a leadership term.

import type { KubeConfig } from "@kubernetes/client-node";
import { API_VERSION, KIND, LABEL } from "../../api/constants.ts";
import type { SpiderIPPool, SpiderSubnet } from "../../api/types.ts";
import { parseOtherSubnet, sameCIDR } from "../../api/validate/common.ts";
import { ResourceCache } from "../../kube/cache.ts";
import { ConflictError, type KubeHttp, NotFoundError } from "../../kube/client.ts";
import type { LeaderView, LeaderWork } from "../leader.ts";
import { ControllerMetrics, type ReconcileKind, type ReconcileResult } from "../metrics.ts";
import { EventRecorder } from "./events.ts";
import { finalizerPatch, planPool, poolRef, poolStatusPatch } from "./ippool.ts";
import { NotLeaderError, POOLS, ReconcileKube, SUBNETS } from "./kube.ts";
import { WorkQueue } from "./queue.ts";
import { FOREGROUND_DELETION, planSubnet } from "./subnet.ts";

export interface ReconcilersOptions {
  http: KubeHttp;
  /** For the caches' watches. */
  kubeConfig: KubeConfig;
  /** This replica (pod name): the `reportingInstance` of its Events. */
  identity: string;
  metrics?: ControllerMetrics;
  /** ConfigMap `enableSpiderSubnet`; without it no subnet is reconciled. Default true. */
  enableSpiderSubnet?: boolean;
  /** Every object is reconciled again this often while leading; default 300 s (upstream's resync). */
  resyncMs?: number;
  /** Default 3 (`SPIDERPOOL_IPPOOL_INFORMER_WORKERS`). */
  poolWorkers?: number;
  /** Default 5 (upstream's subnet controller). */
  subnetWorkers?: number;
  /**
   * Reconcile only pools and subnets with these labels (all when absent), e.g. to run several controllers side
   * by side in tests. Matched here on the cached objects.
   */
  matchLabels?: Record<string, string>;
  log?: (message: string) => void;
}

/** Conditional writes that lose to another writer are re-read and retried this many times, then requeued. */
const CONFLICT_STEPS = 5;
/** Upper bound of subnet writes in one reconcile (labels, foreground delete, finalizer or status). */
const SUBNET_STEPS = 4;

interface Term {
  signal: AbortSignal;
  kube: ReconcileKube;
  pools: WorkQueue;
  subnets: WorkQueue;
  workers: Promise<void>[];
  resync?: ReturnType<typeof setInterval>;
}

/** What the subnet reconciler of a pool depends on; a change of anything else does not concern subnets. */
function subnetFacts(pool: SpiderIPPool | undefined): string {
  if (!pool) return "";
  const m = pool.metadata;
  return JSON.stringify([
    pool.spec?.subnet,
    pool.spec?.ips,
    pool.spec?.excludeIPs,
    m?.labels?.[LABEL.ownerSpiderSubnet],
    m?.ownerReferences,
    Boolean(m?.deletionTimestamp),
    isAutoLabels(pool),
  ]);
}

function isAutoLabels(pool: SpiderIPPool): string | undefined {
  const l = pool.metadata?.labels;
  return l?.[LABEL.ownerApplicationUID] ?? l?.[LABEL.ownerApplicationName];
}

const subnetRef = (s: SpiderSubnet): SpiderSubnet => ({ ...s, apiVersion: API_VERSION, kind: KIND.subnet });

/**
 * The pool and subnet reconcilers as one piece of leader-only work.
 *
 * @example
 * ```ts
 * const reconcilers = new Reconcilers({ http, kubeConfig, identity: podName, metrics });
 * reconcilers.start(); // caches
 * const elector = new LeaderElector({ http, namespace, identity: podName, work: [reconcilers] });
 * ```
 */
export class Reconcilers implements LeaderWork {
  readonly metrics: ControllerMetrics;
  readonly #opts: ReconcilersOptions;
  readonly #log: (m: string) => void;
  readonly #poolCache: ResourceCache<SpiderIPPool>;
  readonly #subnetCache?: ResourceCache<SpiderSubnet>;
  readonly #events: EventRecorder;
  /** Per object: the resourceVersion a write of ours replaced and the one it produced, until the cache has it. */
  readonly #written = new Map<string, { from: string; to: string }>();
  readonly #poolFacts = new Map<string, { facts: string; subnets: string[] }>();
  readonly #selected: (o: { metadata?: { labels?: Record<string, string> } }) => boolean;
  #term?: Term;
  #stopping: Promise<void> = Promise.resolve();
  /** Resolves once the caches hold a first full list. */
  readonly synced: Promise<void>;

  constructor(opts: ReconcilersOptions) {
    this.#opts = opts;
    this.#log = opts.log ?? ((m) => console.error(`reconcile: ${m}`));
    this.metrics = opts.metrics ?? new ControllerMetrics();
    const match = Object.entries(opts.matchLabels ?? {});
    this.#selected = (o) => match.every(([k, v]) => o.metadata?.labels?.[k] === v);
    const cache = <T extends { metadata?: { name?: string } }>(path: string) =>
      new ResourceCache<T>(opts.kubeConfig, opts.http, {
        path,
        log: this.#log,
        resyncMs: opts.resyncMs ?? 300_000,
      });
    this.#poolCache = cache<SpiderIPPool>(POOLS);
    if (opts.enableSpiderSubnet ?? true) this.#subnetCache = cache<SpiderSubnet>(SUBNETS);
    this.#events = new EventRecorder({ instance: opts.identity, log: this.#log });
    this.#poolCache.onChange((pool, deleted) => this.#poolChanged(pool, deleted));
    this.#subnetCache?.onChange((subnet) => {
      if (this.#selected(subnet)) this.#term?.subnets.add(subnet.metadata?.name ?? "");
    });
    this.metrics.countObjects({
      pools: () => this.#poolCache.list().length,
      subnets: () => this.#subnetCache?.list().length ?? 0,
    });
    this.synced = Promise.all([this.#poolCache.synced, this.#subnetCache?.synced]).then(() => {});
  }

  /** Starts the caches (on every replica). */
  start(): void {
    this.#poolCache.start();
    this.#subnetCache?.start();
  }

  /** Ends any term and stops the caches. */
  async stop(): Promise<void> {
    await this.stopLeading();
    this.#poolCache.stop();
    this.#subnetCache?.stop();
  }

  startLeading(signal: AbortSignal, leader: LeaderView): void {
    if (this.#term && !this.#term.signal.aborted) return;
    const kube = new ReconcileKube(this.#opts.http, {
      isLeader: () => !signal.aborted && leader.isLeader(),
      signal,
    }, this.metrics);
    const term: Term = { signal, kube, pools: new WorkQueue(), subnets: new WorkQueue(), workers: [] };
    this.#term = term;
    // The caches may be behind a write of a previous term; the first reconcile of each key re-reads if so.
    this.#written.clear();
    for (let i = 0; i < (this.#opts.poolWorkers ?? 3); i++) {
      term.workers.push(this.#work(term, term.pools, "SpiderIPPool", (k) => this.#reconcilePool(term, k)));
    }
    if (this.#subnetCache) {
      for (let i = 0; i < (this.#opts.subnetWorkers ?? 5); i++) {
        term.workers.push(
          this.#work(term, term.subnets, "SpiderSubnet", (k) => this.#reconcileSubnet(term, k)),
        );
      }
    }
    signal.addEventListener("abort", () => this.#endTerm(term), { once: true });
    void this.synced.then(() => {
      if (term.signal.aborted) return;
      this.#enqueueAll(term);
      term.resync = setInterval(() => this.#enqueueAll(term), this.#opts.resyncMs ?? 300_000);
    });
  }

  async stopLeading(): Promise<void> {
    const term = this.#term;
    if (term) this.#endTerm(term);
    await this.#stopping;
  }

  /**
   * Resolves once every queued reconcile of the current term has finished and none waits for a retry: the
   * reconcilers have settled. For tests and benchmarks.
   */
  async settled(): Promise<void> {
    await this.synced;
    for (;;) {
      const term = this.#term;
      if (!term || term.signal.aborted) return;
      await Promise.all([term.pools.whenIdle(), term.subnets.whenIdle()]);
      await new Promise((r) => setTimeout(r, 20));
      if (
        term.pools.idle() && term.subnets.idle() && term.pools.delayed === 0 && term.subnets.delayed === 0
      ) {
        return;
      }
    }
  }

  #endTerm(term: Term): void {
    if (this.#term !== term) return;
    this.#term = undefined;
    clearInterval(term.resync);
    term.pools.shutDown();
    term.subnets.shutDown();
    this.#stopping = Promise.all(term.workers).then(() => {});
  }

  /** Queues every pool and subnet now, as the periodic resync does (while leading). */
  resync(): void {
    if (this.#term) this.#enqueueAll(this.#term);
  }

  #enqueueAll(term: Term): void {
    for (const p of this.#pools()) term.pools.add(p.metadata?.name ?? "");
    for (const s of this.#subnetCache?.list() ?? []) {
      if (this.#selected(s)) term.subnets.add(s.metadata?.name ?? "");
    }
  }

  #pools(): SpiderIPPool[] {
    return this.#opts.matchLabels ? this.#poolCache.list().filter(this.#selected) : this.#poolCache.list();
  }

  #poolChanged(pool: SpiderIPPool, deleted: boolean): void {
    if (!this.#selected(pool)) return;
    const name = pool.metadata?.name ?? "";
    this.#term?.pools.add(name);
    if (!this.#subnetCache) return;
    const facts = deleted ? "" : subnetFacts(pool);
    const before = this.#poolFacts.get(name);
    if (before?.facts === facts) return;
    const now = deleted ? [] : this.#subnetsOf(pool);
    if (deleted) this.#poolFacts.delete(name);
    else this.#poolFacts.set(name, { facts, subnets: now });
    for (const s of new Set([...(before?.subnets ?? []), ...now])) this.#term?.subnets.add(s);
  }

  /** Subnets a pool may concern: the one its label or controller reference names, and those of its CIDR. */
  #subnetsOf(pool: SpiderIPPool): string[] {
    const out = new Set<string>();
    const label = pool.metadata?.labels?.[LABEL.ownerSpiderSubnet];
    if (label) out.add(label);
    const ref = pool.metadata?.ownerReferences?.find((r) => r.controller && r.kind === KIND.subnet);
    if (ref) out.add(ref.name);
    const subnet = pool.spec?.subnet;
    if (subnet) {
      for (const s of this.#subnetCache?.list() ?? []) {
        if (s.spec?.subnet && s.metadata?.name && sameNetwork(s.spec.subnet, subnet)) {
          out.add(s.metadata.name);
        }
      }
    }
    return [...out];
  }

  async #work(
    term: Term,
    queue: WorkQueue,
    kind: ReconcileKind,
    reconcile: (key: string) => Promise<ReconcileResult>,
  ): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const t0 = performance.now();
      let result: ReconcileResult;
      try {
        result = await reconcile(key);
        queue.forget(key);
      } catch (err) {
        if (err instanceof NotLeaderError || term.signal.aborted) {
          result = "not_leader";
        } else {
          result = err instanceof ConflictError ? "conflict" : "error";
          if (result === "error" || queue.failures(key) >= 3) {
            this.#log(`${kind} ${JSON.stringify(key)}: ${(err as Error).message}; retrying`);
          }
          queue.addRateLimited(key);
        }
      } finally {
        queue.done(key);
      }
      this.metrics.reconciled(kind, result, (performance.now() - t0) / 1000);
    }
  }

  /** Skips an object the cache still shows at the version one of our writes replaced (the watch is behind). */
  #behind(key: string, rv: string | undefined): boolean {
    const w = this.#written.get(key);
    if (!w) return false;
    if (rv === w.from) return true;
    this.#written.delete(key);
    return false;
  }

  #wrote(key: string, from: string | undefined, to: string | undefined): void {
    if (from && to && from !== to) this.#written.set(key, { from, to });
  }

  async #reconcilePool(term: Term, name: string): Promise<ReconcileResult> {
    const key = `pool/${name}`;
    let pool = this.#poolCache.get(name);
    if (!pool || !this.#selected(pool)) {
      this.metrics.poolGone(name);
      this.#written.delete(key);
      return "converged";
    }
    if (this.#behind(key, pool.metadata?.resourceVersion)) return "converged";
    const { kube } = term;
    for (let attempt = 1;; attempt++) {
      const plan = planPool(pool);
      this.metrics.pool(name, plan.total, plan.allocated);
      for (const ev of plan.events) await this.#events.emit(kube, poolRef(pool), ev);
      if (!plan.removeFinalizer && !plan.status) return "converged";
      const rv = pool.metadata?.resourceVersion;
      try {
        const written = plan.removeFinalizer
          ? await kube.mergePatch<SpiderIPPool>(
            `${POOLS}/${enc(name)}`,
            finalizerPatch(pool),
            "ippool_metadata",
          )
          : await kube.mergePatch<SpiderIPPool>(
            `${POOLS}/${enc(name)}/status`,
            poolStatusPatch(rv, plan.status!),
            "ippool_status",
          );
        this.#wrote(key, rv, written?.metadata?.resourceVersion);
        return "written";
      } catch (err) {
        if (err instanceof NotFoundError) return "converged";
        if (!(err instanceof ConflictError) || attempt >= CONFLICT_STEPS) throw err;
        // Usually an agent committed an allocation in between: read the pool as it is now and plan again.
        await jitteredPause(attempt, term.signal);
        const fresh = await kube.get<SpiderIPPool>(`${POOLS}/${enc(name)}`);
        if (!fresh) return "converged";
        pool = fresh;
      }
    }
  }

  async #reconcileSubnet(term: Term, name: string): Promise<ReconcileResult> {
    const key = `subnet/${name}`;
    let subnet = this.#subnetCache?.get(name);
    if (!subnet || !this.#selected(subnet)) {
      this.metrics.subnetGone(name);
      this.#written.delete(key);
      return "converged";
    }
    const cachedRV = subnet.metadata?.resourceVersion;
    if (this.#behind(key, cachedRV)) return "converged";
    const { kube } = term;
    const path = `${SUBNETS}/${enc(name)}`;
    let result: ReconcileResult = "converged";
    let conflicts = 0;
    for (let step = 0; step < SUBNET_STEPS; step++) {
      const pools = this.#pools();
      const plan = planSubnet(subnet, pools);
      this.metrics.subnet(name, plan.pools, plan.total ?? 0, plan.allocated ?? 0);
      for (const ev of plan.events) {
        const pool = ev.pool === undefined ? undefined : pools.find((p) => p.metadata?.name === ev.pool);
        await this.#events.emit(kube, pool ? poolRef(pool) : subnetRef(subnet), ev);
      }
      let poolConflict = false;
      for (const a of plan.adopt) {
        try {
          await kube.mergePatch(`${POOLS}/${enc(a.pool)}`, a.patch, "ippool_metadata");
          result = "written";
        } catch (err) {
          // The pool changed since the cache showed it; its watch event queues this subnet again.
          if (err instanceof ConflictError) poolConflict = true;
          else if (!(err instanceof NotFoundError)) throw err;
        }
      }
      const rv: string | undefined = subnet.metadata?.resourceVersion;
      let next: SpiderSubnet | undefined;
      try {
        if (plan.labels) {
          next = await kube.mergePatch(
            path,
            { metadata: { resourceVersion: rv, labels: plan.labels } },
            "subnet_metadata",
          );
        } else if (plan.foregroundDelete) {
          // Deleted without foreground propagation: its pools would wait for it and it for them. Deleting it
          // again with Foreground makes the garbage collector delete the pools first.
          await kube.delete(path, {
            apiVersion: "v1",
            kind: "DeleteOptions",
            propagationPolicy: "Foreground",
            preconditions: { uid: subnet.metadata?.uid },
          }, "subnet_delete");
          next = await kube.get<SpiderSubnet>(path);
          if (next?.metadata?.finalizers?.includes(FOREGROUND_DELETION) !== true) {
            throw new Error(
              `${KIND.subnet} ${JSON.stringify(name)}: foreground deletion did not take effect`,
            );
          }
        } else if (plan.removeFinalizer) {
          next = await kube.mergePatch(path, finalizerPatch(subnet), "subnet_metadata");
        } else if (plan.status) {
          next = await kube.mergePatch(
            `${path}/status`,
            { metadata: { resourceVersion: rv }, status: plan.status },
            "subnet_status",
          );
        } else {
          if (poolConflict) {
            throw new ConflictError("PATCH", POOLS, 409, "Conflict", "a pool changed under adoption");
          }
          this.#wrote(key, cachedRV, rv);
          return result;
        }
      } catch (err) {
        if (err instanceof NotFoundError) return result;
        if (!(err instanceof ConflictError) || ++conflicts >= CONFLICT_STEPS) throw err;
        await jitteredPause(conflicts, term.signal);
        next = await kube.get<SpiderSubnet>(path);
      }
      if (!next) return result;
      if (next.metadata?.resourceVersion !== rv) result = "written";
      subnet = next;
    }
    this.#wrote(key, cachedRV, subnet.metadata?.resourceVersion);
    return result;
  }
}

const enc = encodeURIComponent;

function sameNetwork(a: string, b: string): boolean {
  const ca = parseOtherSubnet(a);
  const cb = parseOtherSubnet(b);
  return ca !== undefined && cb !== undefined && sameCIDR(ca, cb);
}

async function jitteredPause(attempt: number, signal: AbortSignal): Promise<void> {
  const ms = 10 * 2 ** (attempt - 1) * (1 + Math.random());
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
