// The SpiderMultusConfig controller (spec §9): keeps one NetworkAttachmentDefinition per SpiderMultusConfig
// equal to its rendering. Level-triggered like the pool reconcilers: SMC and NAD watches feed a work queue of
// SMC keys, a reconcile reads the NAD from the API server, plans purely (sync.ts) and writes only the drift,
// conditional on the resourceVersion it read; everything is requeued every 60 s (upstream's resync). The
// caches run on every replica; queue, workers and writes exist only while this replica leads.

import type { KubeConfig } from "@kubernetes/client-node";
import { API_VERSION, KIND, PLURAL } from "../api/constants.ts";
import { defaultMultusConfig } from "../api/defaults.ts";
import type { SpiderMultusConfig } from "../api/types.ts";
import { formatFieldErrors } from "../api/validate/common.ts";
import { multusConfigNADName, validateMultusConfig } from "../api/validate/multusconfig.ts";
import { ResourceCache } from "../kube/cache.ts";
import { ConflictError, type KubeHttp, NotFoundError } from "../kube/client.ts";
import { OptionalResourceCache } from "../kube/discovery.ts";
import type { LeaderView, LeaderWork } from "../controller/leader.ts";
import { ControllerMetrics, type ReconcileResult } from "../controller/metrics.ts";
import { EventRecorder, type PlannedEvent } from "../controller/reconcile/events.ts";
import { NotLeaderError, ReconcileKube } from "../controller/reconcile/kube.ts";
import { WorkQueue } from "../controller/reconcile/queue.ts";
import { MultusMetrics, type NADSyncResult } from "./metrics.ts";
import { NAD_GROUP, NAD_PLURAL, nadPath, type NetworkAttachmentDefinition } from "./nad.ts";
import { type RenderedNAD, RenderError, renderNAD } from "./render.ts";
import { planNAD } from "./sync.ts";

export interface MultusConfigControllerOptions {
  http: KubeHttp;
  kubeConfig: KubeConfig;
  /** This replica (pod name): the `reportingInstance` of its Events. */
  identity: string;
  metrics?: ControllerMetrics;
  multusMetrics?: MultusMetrics;
  /** Every SpiderMultusConfig is synced again this often while leading; default 60 s (upstream's resync). */
  resyncMs?: number;
  /** Watch only this namespace (all when absent), e.g. to run several controllers side by side in tests. */
  namespace?: string;
  /** Pause before looking again at a NAD that is being deleted; default 1 s. */
  terminatingRetryMs?: number;
  /** How often the NAD API (Multus' CRD) is looked for when absent; default 30 s. */
  discoveryMs?: number;
  log?: (message: string) => void;
}

/** Writes that lose to another writer are re-read and planned again this many times, then requeued. */
const CONFLICT_STEPS = 5;

/** The NetworkAttachmentDefinition API is not served: Multus (its CRD) is not installed. */
export class MultusNotInstalledError extends Error {
  constructor(what: string) {
    super(
      `${what}: the API server does not serve ${NAD_PLURAL}.${NAD_GROUP}; install Multus (its ` +
        `NetworkAttachmentDefinition CRD) for SpiderMultusConfigs to take effect`,
    );
    this.name = "MultusNotInstalledError";
  }
}

interface Term {
  signal: AbortSignal;
  kube: ReconcileKube;
  queue: WorkQueue;
  workers: Promise<void>[];
  resync?: ReturnType<typeof setInterval>;
}

interface Outcome {
  result: ReconcileResult;
  sync: NADSyncResult;
  requeueAfterMs?: number;
}

const smcRef = (smc: SpiderMultusConfig): SpiderMultusConfig => ({
  ...smc,
  apiVersion: API_VERSION,
  kind: KIND.multusConfig,
});

/**
 * The SpiderMultusConfig → NetworkAttachmentDefinition controller as one piece of leader-only work.
 *
 * @example
 * ```ts
 * const multus = new MultusConfigController({ http, kubeConfig, identity: podName, metrics });
 * multus.start(); // caches
 * const elector = new LeaderElector({ http, namespace, identity: podName, work: [multus] });
 * ```
 */
export class MultusConfigController implements LeaderWork {
  readonly metrics: ControllerMetrics;
  readonly multusMetrics: MultusMetrics;
  readonly #opts: MultusConfigControllerOptions;
  readonly #log: (m: string) => void;
  readonly #smcs: ResourceCache<SpiderMultusConfig>;
  readonly #nads: OptionalResourceCache<NetworkAttachmentDefinition>;
  readonly #events: EventRecorder;
  #term?: Term;
  #stopping: Promise<void> = Promise.resolve();
  /** Resolves once the SpiderMultusConfig cache holds a first list. */
  readonly synced: Promise<void>;

  constructor(opts: MultusConfigControllerOptions) {
    this.#opts = opts;
    this.#log = opts.log ?? ((m) => console.error(`multus config: ${m}`));
    this.metrics = opts.metrics ?? new ControllerMetrics();
    this.multusMetrics = opts.multusMetrics ?? new MultusMetrics();
    const ns = opts.namespace;
    const resyncMs = opts.resyncMs ?? 60_000;
    this.#smcs = new ResourceCache<SpiderMultusConfig>(opts.kubeConfig, opts.http, {
      path: ns === undefined
        ? `/apis/${API_VERSION}/${PLURAL.multusConfig}`
        : `/apis/${API_VERSION}/namespaces/${encodeURIComponent(ns)}/${PLURAL.multusConfig}`,
      resyncMs: Math.max(resyncMs, 60_000),
      log: this.#log,
    });
    this.#nads = new OptionalResourceCache<NetworkAttachmentDefinition>(opts.kubeConfig, opts.http, {
      group: NAD_GROUP,
      plural: NAD_PLURAL,
      subPath: ns === undefined ? `/${NAD_PLURAL}` : `/namespaces/${encodeURIComponent(ns)}/${NAD_PLURAL}`,
      checkMs: opts.discoveryMs,
      log: this.#log,
    });
    this.#events = new EventRecorder({ instance: opts.identity, log: this.#log });
    this.#smcs.onChange((smc) => this.#enqueue(smc.metadata?.namespace, smc.metadata?.name));
    this.#nads.onChange((nad) => this.#nadChanged(nad));
    // A NAD API that appears later (Multus installed after Spiderpool) means every SMC has work to do.
    this.#nads.onPresence((present) => present && this.resync());
    this.multusMetrics.countConfigs(() => this.#smcs.list().length);
    this.synced = this.#smcs.synced;
  }

  /** Starts the caches (on every replica). */
  start(): void {
    this.#smcs.start();
    this.#nads.start();
  }

  /** Ends any term and stops the caches. */
  async stop(): Promise<void> {
    await this.stopLeading();
    this.#smcs.stop();
    this.#nads.stop();
  }

  startLeading(signal: AbortSignal, leader: LeaderView): void {
    if (this.#term && !this.#term.signal.aborted) return;
    const kube = new ReconcileKube(this.#opts.http, {
      isLeader: () => !signal.aborted && leader.isLeader(),
      signal,
    }, this.metrics);
    // One worker, as upstream: SpiderMultusConfigs are few and a NAD name is shared by at most one of them.
    const term: Term = { signal, kube, queue: new WorkQueue(), workers: [] };
    this.#term = term;
    term.workers.push(this.#work(term));
    signal.addEventListener("abort", () => this.#endTerm(term), { once: true });
    void this.synced.then(() => {
      if (term.signal.aborted) return;
      this.#enqueueAll(term);
      term.resync = setInterval(() => this.#enqueueAll(term), this.#opts.resyncMs ?? 60_000);
    });
  }

  async stopLeading(): Promise<void> {
    const term = this.#term;
    if (term) this.#endTerm(term);
    await this.#stopping;
  }

  /** Queues every SpiderMultusConfig now, as the periodic resync does (while leading). */
  resync(): void {
    if (this.#term) this.#enqueueAll(this.#term);
  }

  /** Resolves once every queued sync has finished and none waits for a retry. For tests and benchmarks. */
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
    this.#stopping = Promise.all(term.workers).then(() => {});
  }

  #enqueueAll(term: Term): void {
    for (const smc of this.#smcs.list()) term.queue.add(keyOf(smc.metadata?.namespace, smc.metadata?.name));
  }

  #enqueue(namespace: string | undefined, name: string | undefined): void {
    if (name) this.#term?.queue.add(keyOf(namespace, name));
  }

  /** A NAD changed or went away: its controlling SMC and any SMC that renders to its name get a look. */
  #nadChanged(nad: NetworkAttachmentDefinition): void {
    const ns = nad.metadata?.namespace;
    const owner = nad.metadata?.ownerReferences?.find((r) => r.controller && r.kind === KIND.multusConfig);
    if (owner) this.#enqueue(ns, owner.name);
    for (const smc of this.#smcs.list()) {
      if (smc.metadata?.namespace === ns && multusConfigNADName(smc) === nad.metadata?.name) {
        this.#enqueue(ns, smc.metadata?.name);
      }
    }
  }

  async #work(term: Term): Promise<void> {
    const { queue } = term;
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const t0 = performance.now();
      let result: ReconcileResult;
      try {
        const outcome = await this.#reconcile(term, key);
        result = outcome.result;
        this.multusMetrics.synced(outcome.sync);
        queue.forget(key);
        if (outcome.requeueAfterMs !== undefined) queue.addAfter(key, outcome.requeueAfterMs);
      } catch (err) {
        if (err instanceof NotLeaderError || term.signal.aborted) {
          result = "not_leader";
        } else {
          result = err instanceof ConflictError ? "conflict" : "error";
          this.multusMetrics.synced("error");
          if (result === "error" || queue.failures(key) >= 3) {
            this.#log(`${KIND.multusConfig} ${key}: ${(err as Error).message}; retrying`);
          }
          queue.addRateLimited(key);
        }
      } finally {
        queue.done(key);
      }
      this.metrics.reconciled("SpiderMultusConfig", result, (performance.now() - t0) / 1000);
    }
  }

  async #reconcile(term: Term, key: string): Promise<Outcome> {
    const [namespace, name] = splitKey(key);
    const smc = this.#smcs.get(name, namespace);
    if (!smc || smc.metadata?.deletionTimestamp) return { result: "converged", sync: "unchanged" };
    const { kube } = term;
    const event = (ev: PlannedEvent) => this.#events.emit(kube, smcRef(smc), ev);

    // Validated as the webhook saw it (after defaulting), rendered as stored: see renderNAD.
    const errors = validateMultusConfig(defaultMultusConfig(smc));
    let desired: RenderedNAD;
    try {
      if (errors.length > 0) throw new Error(formatFieldErrors(errors));
      desired = renderNAD(smc);
    } catch (err) {
      if (!(err instanceof RenderError) && errors.length === 0) throw err;
      // Only an object that bypassed the validating webhook gets here; its next change is queued by the watch.
      await event({
        type: "Warning",
        reason: "InvalidSpec",
        message: `no NetworkAttachmentDefinition is rendered: ${(err as Error).message}`,
      });
      return { result: "converged", sync: "invalid_spec" };
    }

    const path = nadPath(namespace, desired.name);
    for (let attempt = 1;; attempt++) {
      const existing = await kube.get<NetworkAttachmentDefinition>(path);
      const plan = planNAD(desired, existing);
      try {
        switch (plan.action) {
          case "none":
            return { result: "converged", sync: "unchanged" };
          case "wait":
            return {
              result: "converged",
              sync: "waiting",
              requeueAfterMs: this.#opts.terminatingRetryMs ?? 1_000,
            };
          case "foreign":
            await event({
              type: "Warning",
              reason: "NetworkAttachmentDefinitionConflict",
              message: plan.message,
            });
            return { result: "converged", sync: "foreign_owner" };
          case "create":
            await kube.post(nadPath(namespace), plan.nad, "nad_create");
            await event({
              type: "Normal",
              reason: "NetworkAttachmentDefinitionCreated",
              message: `created NetworkAttachmentDefinition ${namespace}/${desired.name}`,
            });
            return { result: "written", sync: "created" };
          case "update":
            await kube.mergePatch(path, plan.patch, "nad_update");
            await event({
              type: "Normal",
              reason: plan.adopt
                ? "NetworkAttachmentDefinitionAdopted"
                : "NetworkAttachmentDefinitionUpdated",
              message: `${plan.adopt ? "adopted and " : ""}updated NetworkAttachmentDefinition ` +
                `${namespace}/${desired.name} (${plan.drift.join(", ")} ${
                  plan.adopt ? "overwritten" : "had drifted"
                })`,
            });
            return { result: "written", sync: plan.adopt ? "adopted" : "updated" };
        }
      } catch (err) {
        if (err instanceof NotFoundError && plan.action === "create") {
          // Not retried with backoff: the NAD API appearing queues every SMC (and so does the resync).
          await event({
            type: "Warning",
            reason: "MultusNotInstalled",
            message: new MultusNotInstalledError(`no NetworkAttachmentDefinition ${desired.name}`).message,
          });
          return { result: "converged", sync: "multus_missing" };
        }
        // The NAD changed, appeared or went away since it was read: read it again and plan again.
        const raced = err instanceof ConflictError || err instanceof NotFoundError;
        if (raced && attempt < CONFLICT_STEPS) continue;
        throw err;
      }
    }
  }
}

function keyOf(namespace: string | undefined, name: string | undefined): string {
  return `${namespace ?? ""}/${name ?? ""}`;
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf("/");
  return [key.slice(0, i), key.slice(i + 1)];
}
