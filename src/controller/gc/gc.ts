// The controller's IP garbage collector (spec §6): scan-all at start on every replica, every
// SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION on the leader and on request; event tracing (own pod watch, traced-pod
// database, trace loop, workers, retries) only while this replica leads. Decisions are src/ipam/gc.ts's.
//
// Never freeing a live address: a verdict reached on listed (possibly stale) objects is only a candidate.
// Before anything is written the pod, the endpoint, the node and the fixed-IP workload are read again from the
// API server and the same rules decide again; the endpoint is deleted with its UID and resourceVersion as
// preconditions; records are removed by the group committer, which re-reads the pool, removes only records
// that still carry the holder's pod UID and writes with the read resourceVersion (409 → re-plan). A record that
// no SpiderEndpoint lists waits SPIDERPOOL_GC_UNCONFIRMED_RECORD_GRACE_DURATION first: its ADD may still be
// about to write the endpoint.

import type { KubeConfig } from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import type { SpiderEndpoint, SpiderIPPool } from "../../api/types.ts";
import {
  afterFailure,
  decideHolder,
  endpointFixedIPOwner,
  endpointOutdated,
  type FixedIPOwner,
  type GcPod,
  type GcReason,
  type Holder,
  type HolderFacts,
  holderKey,
  holdersOf,
  isNodeReady,
  type Membership,
  memberValid,
  outdatedEndpointCandidates,
  pendingUnconfirmed,
  podFixedIPOwner,
  type TraceEntry,
  traceEntryFor,
} from "../../ipam/gc.ts";
import { planPoolBatch, type PoolOp, type PoolOpResult } from "../../ipam/pool_ops.ts";
import { byPool, endpointPoolIPs, type PoolIP } from "../../ipam/release.ts";
import { endpointNameFor, topController } from "../../ipam/workload.ts";
import { ResourceCache } from "../../kube/cache.ts";
import { ConflictError, type KubeHttp } from "../../kube/client.ts";
import { PoolCommitter, PoolNotFoundError } from "../../kube/pool_commit.ts";
import type { GcConfig } from "./config.ts";
import { GcKube, type NodeLike, poolRef } from "./kube.ts";
import { GcMetrics, type ScanTrigger } from "./metrics.ts";
import { TraceDb, TraceDbFullError } from "./trace_db.ts";

/** What scan-all starts from. */
export interface Snapshot {
  pools: SpiderIPPool[];
  pods: GcPod[];
  endpoints: SpiderEndpoint[];
  nodes: NodeLike[];
}

/** One address the GC gave back. */
export interface ReleasedIP {
  pool: string;
  ip: string;
  /** `<namespace>/<name>` of the record. */
  pod: string;
  podUid: string;
  reason: GcReason;
  detail: string;
}

/** One address left for now because no SpiderEndpoint confirms it yet. */
export interface DeferredIP {
  pool: string;
  ip: string;
  pod: string;
  podUid: string;
  /** When it may be released, ISO 8601. */
  until: string;
  detail: string;
}

/** What one scan-all did; also the body of `POST /v1/ipam/gc_ips`. */
export interface ScanReport {
  trigger: ScanTrigger;
  replica: string;
  leader: boolean;
  startedAt: string;
  durationMs: number;
  pools: number;
  records: number;
  released: ReleasedIP[];
  deferred: DeferredIP[];
  endpointsDeleted: { namespace: string; name: string; uid: string; reason: GcReason; detail: string }[];
  /** Pods handed to the trace loop (leader only). */
  traced: number;
  /** Candidates the direct re-read showed to be in use after all. */
  keptAfterVerification: number;
  errors: string[];
}

/** Test and benchmark seams: what scan-all sees, and a pause between verification and the writes. */
export interface GcHooks {
  /** Replaces the listed snapshot (e.g. a pod list that lags, as an informer cache can). */
  snapshot?(s: Snapshot): Snapshot | Promise<Snapshot>;
  /** Runs after a holder was verified against the API server and before anything is written for it. */
  beforeApply?(holder: Holder): void | Promise<void>;
}

export interface IpGcOptions {
  http: KubeHttp;
  /** For the leader's pod and node watches. */
  kubeConfig: KubeConfig;
  config: GcConfig;
  /** Whether this replica leads now; polled, and asked again before the leader-only work writes. */
  isLeader(): boolean;
  registry: Registry;
  /** This replica's name, for reports and Events. */
  identity?: string;
  /** How often leadership is polled (`SPIDERPOOL_LEADER_RETRY_GAP`); default 1 s. */
  leaderPollMs?: number;
  log?: (message: string) => void;
  hooks?: GcHooks;
}

/** The GC is switched off (`SPIDERPOOL_GC_IP_ENABLED=false`). */
export class GcDisabledError extends Error {
  constructor() {
    super("IP garbage collection is disabled (SPIDERPOOL_GC_IP_ENABLED=false)");
    this.name = "GcDisabledError";
  }
}

/** Holders verified at once during a scan. */
const SCAN_CONCURRENCY = 8;
/** Deadline of one release through the committer. */
const RELEASE_TIMEOUT_MS = 30_000;

const RELEASE_ONLY = {
  reservedFor(): never {
    throw new Error("internal error: the IP GC only releases addresses");
  },
  cachedPools(): never {
    throw new Error("internal error: the IP GC only releases addresses");
  },
};

interface Recheck {
  holder: Holder;
  until: number;
  podName?: string;
}

export class IpGc {
  readonly #o: IpGcOptions;
  readonly #kube: GcKube;
  readonly #log: (m: string) => void;
  readonly #committer: PoolCommitter<PoolOp, PoolOpResult>;
  readonly metrics: GcMetrics;
  readonly #db: TraceDb;
  /** `pool\0ip\0uid` → when first seen unconfirmed (ms, this process's clock). */
  readonly #firstSeen = new Map<string, number>();
  /** Holders with records waiting out the unconfirmed grace, looked at again by the leader's trace loop. */
  readonly #rechecks = new Map<string, Recheck>();
  #timers: ReturnType<typeof setInterval>[] = [];
  #started = false;
  #stopped = false;
  #tracing?: {
    pods: ResourceCache<GcPod>;
    nodes: ResourceCache<NodeLike>;
    loop: ReturnType<typeof setInterval>;
    synced: boolean;
  };
  #queue: TraceEntry[] = [];
  #looping = false;
  #queued = new Set<string>();
  #wake: (() => void)[] = [];
  #workers: Promise<void>[] = [];
  #scanChain: Promise<unknown> = Promise.resolve();
  #nextScan?: { trigger: ScanTrigger; promise: Promise<ScanReport> };
  #inFlight = new Set<Promise<unknown>>();
  lastReport?: ScanReport;

  constructor(opts: IpGcOptions) {
    this.#o = opts;
    this.#log = opts.log ?? ((m) => console.error(`spiderpool-controller: ip gc: ${m}`));
    this.#kube = new GcKube(opts.http, "spiderpool-controller", opts.identity ?? "");
    this.#db = new TraceDb(opts.config.maxTraced);
    this.metrics = new GcMetrics(opts.registry, {
      traced: () => this.#db.size,
      deferred: () => this.#firstSeen.size,
    });
    this.#committer = new PoolCommitter<PoolOp, PoolOpResult>(
      { read: (p) => this.#kube.getPool(p), writeStatus: (p) => this.#kube.writePoolStatus(p) },
      (pool, ops) => planPoolBatch(pool, ops, RELEASE_ONLY),
      { hooks: { conflict: () => this.metrics.poolConflicts.inc() } },
    );
  }

  get enabled(): boolean {
    return this.#o.config.enabled;
  }

  /** Pods traced now. */
  get traced(): number {
    return this.#db.size;
  }

  /** True while this replica traces pods (it leads and its pod watch runs). */
  get tracing(): boolean {
    return this.#tracing !== undefined;
  }

  /** Readiness: a leading replica is ready once its pod watch has listed every pod (upstream's rule). */
  ready(): boolean {
    if (!this.enabled || this.#tracing === undefined) return true;
    return this.#tracing.synced;
  }

  /** Starts the GC: one scan-all now, the interval timer, and leadership polling for the tracing part. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    if (!this.enabled) {
      this.#log("IP garbage collection is disabled (SPIDERPOOL_GC_IP_ENABLED=false)");
      return;
    }
    this.#background(this.scanAll("startup"));
    this.#timers.push(setInterval(() => {
      if (this.#o.isLeader()) this.#background(this.scanAll("interval"));
    }, this.#o.config.intervalMs));
    const poll = () => {
      const leading = this.#o.isLeader();
      if (leading && !this.#tracing) this.#startTracing();
      else if (!leading && this.#tracing) this.#stopTracing("leadership lost");
    };
    poll();
    this.#timers.push(setInterval(poll, this.#o.leaderPollMs ?? 1_000));
  }

  /** Stops every timer, watch and worker; waits for scans and releases under way. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    this.#stopTracing("stopping");
    for (const w of this.#wake.splice(0)) w();
    await Promise.allSettled([...this.#inFlight, ...this.#workers]);
  }

  /**
   * Runs scan-all and resolves with its report. A request made while a scan runs waits for it and then gets a
   * scan of its own that starts after the request; requests waiting together share that scan.
   */
  scanAll(trigger: ScanTrigger): Promise<ScanReport> {
    if (!this.enabled) return Promise.reject(new GcDisabledError());
    if (this.#nextScan) return this.#nextScan.promise;
    const promise = this.#scanChain.then(async () => {
      this.#nextScan = undefined;
      const report = await this.#scan(trigger);
      // Upstream pauses after a requested scan so that a burst of requests cannot keep the GC scanning.
      if (trigger === "request" && this.#o.config.requestGapMs > 0 && !this.#stopped) {
        await new Promise((r) => setTimeout(r, this.#o.config.requestGapMs));
      }
      return report;
    });
    this.#nextScan = { trigger, promise };
    this.#scanChain = promise.catch(() => {});
    return promise;
  }

  #background(p: Promise<unknown>): void {
    const tracked = p.catch((err) => this.#log(`${(err as Error).message}`)).finally(() =>
      this.#inFlight.delete(tracked)
    );
    this.#inFlight.add(tracked);
  }

  // -------------------------------------------------------------------------------------------------------
  // Scan-all

  async #snapshot(): Promise<Snapshot> {
    const k = this.#kube;
    const [pools, pods, endpoints, nodes] = await Promise.all([
      k.listPools(),
      k.listPods(),
      k.listEndpoints(),
      k.listNodes(),
    ]);
    const snap = { pools, pods, endpoints, nodes };
    return this.#o.hooks?.snapshot ? await this.#o.hooks.snapshot(snap) : snap;
  }

  async #scan(trigger: ScanTrigger): Promise<ScanReport> {
    const t0 = performance.now();
    const leader = this.#o.isLeader();
    const report: ScanReport = {
      trigger,
      replica: this.#o.identity ?? "",
      leader,
      startedAt: new Date().toISOString(),
      durationMs: 0,
      pools: 0,
      records: 0,
      released: [],
      deferred: [],
      endpointsDeleted: [],
      traced: 0,
      keptAfterVerification: 0,
      errors: [],
    };
    try {
      const snap = await this.#snapshot();
      const { holders, records, problems } = holdersOf(snap.pools);
      report.pools = snap.pools.length;
      report.records = records;
      report.errors.push(...problems);
      const pods = byKey(snap.pods);
      const endpoints = byKey(snap.endpoints);
      const nodes = new Map(snap.nodes.map((n) => [n.metadata.name, n]));
      const members = new MemberCache(this.#kube);
      const now = Date.now();
      const candidates: Holder[] = [];
      for (const holder of holders) {
        const key = `${holder.namespace}/${holder.name}`;
        const pod = pods.get(key);
        let v;
        try {
          const node = nodes.get(pod?.spec?.nodeName ?? "");
          v = decideHolder(await this.#facts(holder, pod, endpoints.get(key), node, members, now));
        } catch (err) {
          // A workload that cannot be read leaves its members alone this time, not the whole scan.
          report.errors.push(`${key} (pod UID ${holder.uid}): ${(err as Error).message}`);
          continue;
        }
        if (v.action === "release") candidates.push(holder);
        else if (v.action === "trace" && leader) report.traced += this.#trace(v.entry) ? 1 : 0;
      }
      await eachLimited(candidates, SCAN_CONCURRENCY, (h) => this.#settle(h, report, "scan"));
      // Records that left the pools no longer wait for anything.
      const present = new Set(holders.flatMap((h) => h.records.map((r) => recordKey(r, h.uid))));
      for (const k of this.#firstSeen.keys()) if (!present.has(k)) this.#firstSeen.delete(k);
      if (this.#o.config.cleanOutdatedEndpoint) await this.#cleanOutdated(snap.endpoints, holders, report);
    } catch (err) {
      report.errors.push(`scan-all failed: ${(err as Error).message}`);
    }
    report.durationMs = Math.round(performance.now() - t0);
    this.metrics.scans.inc({ trigger });
    this.metrics.scanDuration.observe({ trigger }, report.durationMs / 1000);
    this.lastReport = report;
    this.#log(
      `scan-all (${trigger}) took ${report.durationMs} ms: ${report.pools} pools, ${report.records} records, ` +
        `${report.released.length} released, ${report.deferred.length} deferred, ${report.endpointsDeleted.length} ` +
        `endpoints deleted, ${report.errors.length} errors`,
    );
    for (const e of report.errors) this.#log(e);
    return report;
  }

  /** Builds decideHolder's input; membership validity is looked up only for fixed-IP pods and endpoints. */
  async #facts(
    holder: Holder,
    pod: GcPod | undefined,
    endpoint: SpiderEndpoint | undefined,
    node: NodeLike | undefined,
    members: MemberCache,
    now: number,
  ): Promise<HolderFacts> {
    const s = this.#o.config;
    const podOwner = pod ? podFixedIPOwner(pod, s) : undefined;
    const epOwner = endpoint ? endpointFixedIPOwner(endpoint, s) : undefined;
    const ns = holder.namespace;
    return {
      holder,
      pod,
      podMember: podOwner && pod ? await members.resolve(ns, podOwner, pod.metadata.name) : undefined,
      endpoint,
      endpointMember: epOwner && endpoint
        ? await members.resolve(ns, epOwner, endpoint.metadata.name)
        : undefined,
      nodeReady: isNodeReady(node),
      now,
      switches: s,
    };
  }

  /** The same facts, read now from the API server (no list, no cache, no memo). */
  async #freshFacts(holder: Holder, podName = holder.name): Promise<HolderFacts> {
    const k = this.#kube;
    const [pod, endpoint] = await Promise.all([
      k.getPod(holder.namespace, podName),
      k.getEndpoint(holder.namespace, holder.name),
    ]);
    const node = pod?.spec?.nodeName ? await k.getNode(pod.spec.nodeName) : undefined;
    // For KubeVirt the trace worker reads the launcher pod by its own name; the rules look it up by holder.
    return this.#facts(holder, pod, endpoint, node, new MemberCache(k), Date.now());
  }

  /**
   * Verifies one candidate holder against the API server and carries out what the rules then say. Used by
   * scan-all, by the re-checks of deferred records and by the trace workers. Throws on API failures only in
   * `trace` mode (the worker retries); otherwise they land in the report.
   */
  async #settle(holder: Holder, report: ScanReport, source: "scan" | "recheck" | "trace", podName?: string) {
    try {
      await this.#settleOnce(holder, report, source, podName);
    } catch (err) {
      this.metrics.failures.inc();
      const msg = `${holder.namespace}/${holder.name} (pod UID ${holder.uid}): ${(err as Error).message}`;
      if (source === "trace") throw new Error(msg);
      report.errors.push(msg);
    }
  }

  async #settleOnce(
    holder: Holder,
    report: ScanReport,
    source: "scan" | "recheck" | "trace",
    podName?: string,
  ) {
    const fresh = await this.#freshFacts(holder, podName);
    const v = decideHolder(fresh);
    const hk = holderKey(holder);
    if (v.action !== "release") {
      this.#rechecks.delete(hk);
      if (v.action === "trace" && this.#o.isLeader()) report.traced += this.#trace(v.entry) ? 1 : 0;
      else if (source !== "trace") report.keptAfterVerification++;
      return;
    }
    const now = Date.now();
    const split = pendingUnconfirmed(
      v.records,
      fresh.endpoint,
      holder.uid,
      (r) => this.#firstSeen.get(recordKey(r, holder.uid)),
      now,
      this.#o.config.unconfirmedGraceMs,
    );
    for (const r of split.unconfirmed) {
      const k = recordKey(r, holder.uid);
      if (!this.#firstSeen.has(k)) this.#firstSeen.set(k, now);
    }
    const pod = `${holder.namespace}/${holder.name}`;
    for (const w of split.waiting) {
      report.deferred.push({
        pool: w.record.pool,
        ip: w.record.ip,
        pod,
        podUid: holder.uid,
        until: new Date(w.until).toISOString(),
        detail: `${v.reason}; no SpiderEndpoint lists it yet (an ADD may still be writing it)`,
      });
    }
    if (split.waiting.length > 0) {
      this.#rechecks.set(hk, { holder, until: Math.min(...split.waiting.map((w) => w.until)), podName });
    } else {
      this.#rechecks.delete(hk);
    }
    await this.#o.hooks?.beforeApply?.(holder);

    const code: GcReason = source === "trace" && v.code === "pod_not_found" ? "pod_deleted" : v.code;
    const ep = fresh.endpoint;
    if (v.deleteEndpoint && ep) {
      // Precondition on UID and resourceVersion: an ADD that adopted or rewrote the endpoint since it was read
      // wins, and this holder is looked at again next time.
      try {
        await this.#kube.deleteEndpoint(ep);
      } catch (err) {
        if (err instanceof ConflictError) {
          throw new Error(
            `SpiderEndpoint ${pod} changed since it was read; nothing released, looking again later`,
          );
        }
        throw err;
      }
      this.metrics.endpointsDeleted.inc({ reason: code });
      report.endpointsDeleted.push({
        namespace: holder.namespace,
        name: ep.metadata.name,
        uid: ep.status.current.uid,
        reason: code,
        detail: v.reason,
      });
    }
    const released = await this.#release(holder.uid, split.due);
    for (const r of released) {
      const k = recordKey(r, holder.uid);
      this.#firstSeen.delete(k);
      report.released.push({
        pool: r.pool,
        ip: r.ip,
        pod,
        podUid: holder.uid,
        reason: code,
        detail: v.reason,
      });
    }
    this.metrics.releasedIPs(code, released.length);
    if ((v.removeFinalizer || v.deleteEndpoint) && ep) {
      // Read again: the delete (or anything since) changed its resourceVersion.
      const now = await this.#kube.getEndpoint(holder.namespace, ep.metadata.name);
      if (now && now.metadata.uid === ep.metadata.uid) await this.#removeFinalizer(now);
    }
    await this.#events(holder, fresh.pod, released, code, v.reason);
  }

  /** Gives back `records` recorded for `uid`, pool by pool; what each pool really removed is returned. */
  async #release(uid: string, records: readonly PoolIP[]): Promise<PoolIP[]> {
    const deadline = Date.now() + RELEASE_TIMEOUT_MS;
    const out: PoolIP[] = [];
    const results = await Promise.allSettled([...byPool(records)].map(async ([pool, ips]) => {
      try {
        const r = await this.#committer.submit(pool, { kind: "release", ips, podUid: uid }, deadline);
        if (r.kind === "release") out.push(...r.released.map((ip) => ({ pool, ip })));
      } catch (err) {
        if (!(err instanceof PoolNotFoundError)) throw err;
      }
    }));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    return out;
  }

  async #removeFinalizer(ep: SpiderEndpoint): Promise<void> {
    try {
      await this.#kube.removeEndpointFinalizer(ep);
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      const now = await this.#kube.getEndpoint(ep.metadata.namespace ?? "", ep.metadata.name);
      if (now && now.metadata.uid === ep.metadata.uid) await this.#kube.removeEndpointFinalizer(now);
    }
  }

  /** One Event per pool (and one on the pod when it still exists) saying what was released and why. */
  async #events(holder: Holder, pod: GcPod | undefined, released: PoolIP[], code: GcReason, reason: string) {
    if (released.length === 0) return;
    const who = `${holder.namespace}/${holder.name}`;
    const writes: Promise<void>[] = [];
    for (const [pool, ips] of byPool(released)) {
      writes.push(this.#kube.event({
        object: poolRef(pool),
        reason: "IPReleasedByGC",
        message: `released ${ips.join(", ")} of ${who} (pod UID ${holder.uid}): ${code}: ${reason}`,
      }));
    }
    if (pod) {
      writes.push(this.#kube.event({
        object: {
          apiVersion: "v1",
          kind: "Pod",
          name: pod.metadata.name,
          namespace: holder.namespace,
          uid: pod.metadata.uid,
        },
        reason: "IPReleasedByGC",
        message: `released ${released.map((r) => `${r.ip} (${r.pool})`).join(", ")} recorded for pod UID ` +
          `${holder.uid}: ${code}: ${reason}`,
      }));
    }
    // An Event is a courtesy: failing to write one never fails the release.
    for (const r of await Promise.allSettled(writes)) {
      if (r.status === "rejected") this.#log(`could not record an Event: ${(r.reason as Error).message}`);
    }
  }

  /** enableCleanOutdatedEndpoint: endpoints no record names, checked against their pools read now. */
  async #cleanOutdated(endpoints: SpiderEndpoint[], holders: Holder[], report: ScanReport): Promise<void> {
    await eachLimited(outdatedEndpointCandidates(endpoints, holders), SCAN_CONCURRENCY, async (cand) => {
      const ns = cand.metadata.namespace ?? "";
      const who = `${ns}/${cand.metadata.name}`;
      try {
        const ep = await this.#kube.getEndpoint(ns, cand.metadata.name);
        if (!ep || ep.metadata.uid !== cand.metadata.uid) return;
        const poolNames = [...new Set(endpointPoolIPs(ep).map((r) => r.pool))];
        const pools = (await Promise.all(poolNames.map((p) => this.#kube.getPoolOrUndefined(p))))
          .filter((p): p is SpiderIPPool => p !== undefined);
        const pod = await this.#kube.getPod(ns, cand.metadata.name);
        const verdict = endpointOutdated(ep, pools, pod);
        if (!verdict.outdated) return;
        await this.#kube.deleteEndpoint(ep);
        const now = await this.#kube.getEndpoint(ns, ep.metadata.name);
        if (now && now.metadata.uid === ep.metadata.uid) await this.#removeFinalizer(now);
        this.metrics.endpointsDeleted.inc({ reason: "outdated_endpoint" });
        report.endpointsDeleted.push({
          namespace: ns,
          name: ep.metadata.name,
          uid: ep.status.current.uid,
          reason: "outdated_endpoint",
          detail: verdict.reason,
        });
      } catch (err) {
        this.metrics.failures.inc();
        report.errors.push(`outdated SpiderEndpoint ${who}: ${(err as Error).message}`);
      }
    });
  }

  // -------------------------------------------------------------------------------------------------------
  // Tracing (leader only)

  /** Adds a traced pod; false when it was already traced as such or the database is full. */
  #trace(entry: TraceEntry): boolean {
    try {
      return this.#db.apply(entry);
    } catch (err) {
      if (!(err instanceof TraceDbFullError)) throw err;
      this.#log(err.message);
      return false;
    }
  }

  #startTracing(): void {
    const { kubeConfig, http } = this.#o;
    const log = (m: string) => this.#log(m);
    const pods = new ResourceCache<GcPod>(kubeConfig, http, { path: "/api/v1/pods", log });
    const nodes = new ResourceCache<NodeLike>(kubeConfig, http, { path: "/api/v1/nodes", log });
    const tracing = {
      pods,
      nodes,
      synced: false,
      loop: setInterval(() => this.#background(this.#traceLoop()), this.#o.config.traceGapMs),
    };
    this.#tracing = tracing;
    pods.onChange((pod, deleted) => {
      if (this.#tracing !== tracing) return;
      this.#background(this.#onPod(pod, deleted));
    });
    nodes.start();
    pods.start();
    this.#log("leading: tracing pods");
    this.#background(
      Promise.all([pods.synced, nodes.synced]).then(() => {
        if (this.#tracing !== tracing) return;
        tracing.synced = true;
        // Events seen before this replica led were not traced; one scan-all picks those pods up.
        return this.scanAll("leader");
      }),
    );
    for (let i = this.#workers.length; i < this.#o.config.workers; i++) this.#workers.push(this.#worker(i));
  }

  #stopTracing(why: string): void {
    const t = this.#tracing;
    if (!t) return;
    this.#tracing = undefined;
    clearInterval(t.loop);
    t.pods.stop();
    t.nodes.stop();
    this.#db.clear();
    this.#queue = [];
    this.#queued.clear();
    this.#rechecks.clear();
    this.#log(`not tracing pods any more: ${why}`);
  }

  async #onPod(pod: GcPod, deleted: boolean): Promise<void> {
    const t = this.#tracing;
    if (!t || !this.#o.isLeader()) return;
    const s = this.#o.config;
    const owner = podFixedIPOwner(pod, s);
    // Only a fixed-IP pod that is finishing needs its workload read; every other event decides from the pod.
    const finishing = deleted || !!pod.metadata.deletionTimestamp || pod.status?.phase === "Succeeded" ||
      pod.status?.phase === "Failed";
    if (!finishing || pod.spec?.hostNetwork) return;
    let member: Membership | undefined;
    try {
      member = owner
        ? await new MemberCache(this.#kube).resolve(pod.metadata.namespace ?? "", owner, pod.metadata.name)
        : undefined;
    } catch (err) {
      this.#log(
        `pod ${pod.metadata.namespace}/${pod.metadata.name}: ${(err as Error).message}; scan-all will decide`,
      );
      return;
    }
    const d = traceEntryFor({
      pod,
      endpointName: endpointNameFor(pod, topController(pod), s),
      deleted,
      now: Date.now(),
      nodeReady: isNodeReady(t.nodes.get(pod.spec?.nodeName ?? "")),
      member,
      switches: s,
    });
    if (d.kind === "trace" && this.#tracing === t) this.#trace(d.entry);
  }

  /** Every SPIDERPOOL_GC_TRACE_POD_GAP_DURATION: hand due entries to the workers; re-check deferred records. */
  async #traceLoop(): Promise<void> {
    if (!this.#tracing || !this.#o.isLeader() || this.#looping) return;
    this.#looping = true;
    try {
      const now = Date.now();
      for (const entry of this.#db.due(now)) {
        const key = TraceDb.key(entry);
        if (this.#queued.has(key)) continue;
        // As upstream: wait up to SPIDERPOOL_GC_SIGNAL_TIMEOUT_DURATION for room in the worker queue
        // (SPIDERPOOL_GC_CHANNEL_BUFFER), then leave the rest for the next loop; entries stay in the database.
        const until = Date.now() + this.#o.config.signalTimeoutMs;
        while (this.#queue.length >= this.#o.config.channelBuffer && Date.now() < until && !this.#stopped) {
          await new Promise((r) => setTimeout(r, 50));
        }
        if (this.#queue.length >= this.#o.config.channelBuffer) {
          this.#log(
            `trace queue full (${this.#queue.length}, SPIDERPOOL_GC_CHANNEL_BUFFER); retrying next loop`,
          );
          break;
        }
        this.#queued.add(key);
        this.#queue.push(entry);
        this.#wake.shift()?.();
      }
      for (const [key, r] of this.#rechecks) {
        if (r.until > now) continue;
        this.#rechecks.delete(key);
        this.#background(this.#recheck(r));
      }
    } finally {
      this.#looping = false;
    }
  }

  async #recheck(r: Recheck): Promise<void> {
    const report = this.#emptyReport("leader");
    await this.#settle(r.holder, report, "recheck", r.podName);
    for (const e of report.errors) this.#log(e);
    if (report.released.length > 0) {
      this.#log(
        `released ${report.released.map((x) => `${x.ip} (${x.pool})`).join(", ")} of ` +
          `${r.holder.namespace}/${r.holder.name} after the unconfirmed grace`,
      );
    }
  }

  #emptyReport(trigger: ScanTrigger): ScanReport {
    return {
      trigger,
      replica: this.#o.identity ?? "",
      leader: this.#o.isLeader(),
      startedAt: new Date().toISOString(),
      durationMs: 0,
      pools: 0,
      records: 0,
      released: [],
      deferred: [],
      endpointsDeleted: [],
      traced: 0,
      keptAfterVerification: 0,
      errors: [],
    };
  }

  async #worker(_index: number): Promise<void> {
    while (!this.#stopped) {
      const entry = this.#queue.shift();
      if (!entry) {
        await new Promise<void>((r) => this.#wake.push(r));
        continue;
      }
      this.#queued.delete(TraceDb.key(entry));
      if (!this.#tracing || !this.#o.isLeader()) continue;
      try {
        await this.#releaseTraced(entry);
        this.#db.delete(entry);
      } catch (err) {
        const next = afterFailure(entry, this.#o.config.maxRetries);
        if ("retry" in next) this.#db.requeue(next.retry);
        else this.#db.delete(entry);
        this.#log(
          `traced pod ${entry.namespace}/${entry.pod}: ${(err as Error).message}; ` +
            ("retry" in next
              ? `attempt ${next.retry.requeues} of ${this.#o.config.maxRetries} retries`
              : next.drop),
        );
      }
    }
  }

  /** The trace worker: the endpoint's addresses of the traced UID, through the same verification as a scan. */
  async #releaseTraced(entry: TraceEntry): Promise<void> {
    const ep = await this.#kube.getEndpoint(entry.namespace, entry.endpoint);
    // Gone: DEL or scan-all already gave everything back. Another UID: scan-all handles what it left.
    if (!ep || ep.status.current.uid !== entry.uid) return;
    const holder: Holder = {
      namespace: entry.namespace,
      name: entry.endpoint,
      uid: entry.uid,
      records: endpointPoolIPs(ep),
    };
    const report = this.#emptyReport("leader");
    await this.#settle(holder, report, "trace", entry.pod);
    if (report.traced > 0) return; // still within its grace (e.g. the grace period was changed): traced again
    if (report.released.length > 0) {
      this.#log(
        `released ${report.released.map((x) => `${x.ip} (${x.pool})`).join(", ")} of traced pod ` +
          `${entry.namespace}/${entry.pod} (${entry.reason})`,
      );
    }
  }
}

/** Per-scan memo of workload look-ups (StatefulSets, VMIs); the fresh verification uses a new one. */
class MemberCache {
  readonly #memo = new Map<string, Promise<Membership>>();
  constructor(readonly kube: GcKube) {}

  resolve(ns: string, owner: FixedIPOwner, member: string): Promise<Membership> {
    const key = `${owner.kind}\u0000${ns}\u0000${owner.owner}\u0000${member}`;
    let p = this.#memo.get(key);
    if (!p) {
      p = owner.kind === "StatefulSet"
        ? this.kube.statefulSet(ns, owner.owner).then((sts) =>
          memberValid(owner, member, { statefulSet: sts })
        )
        : this.kube.kubevirt(ns, owner.owner).then((kv) => memberValid(owner, member, { kubevirt: kv }));
      this.#memo.set(key, p);
    }
    return p;
  }
}

function byKey<T extends { metadata: { name: string; namespace?: string } }>(items: T[]): Map<string, T> {
  return new Map(items.map((o) => [`${o.metadata.namespace ?? ""}/${o.metadata.name}`, o]));
}

const recordKey = (r: PoolIP, uid: string) => `${r.pool}\u0000${r.ip}\u0000${uid}`;

/** Runs `fn` over `items` with at most `limit` at a time. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (t: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const run = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}
