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
//
// Speed without giving any of that up: scan-all verifies and writes its candidates in batches. A batch re-reads
// a namespace's pods and endpoints with one LIST each when that is cheaper than a GET per holder (a LIST without
// resourceVersion is as fresh as a GET), then deletes endpoints, then queues every release at once, so the
// committer writes each pool's status once for the whole batch instead of once per handful of holders.

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
  type HolderVerdict,
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
  /** Scan-all is about to verify `holders` candidates of `namespace` again, by one LIST or by GETs. */
  verifying?(namespace: string, holders: number, by: "list" | "get"): void;
}

export interface IpGcOptions {
  http: KubeHttp;
  /** For the leader's pod and node watches. */
  kubeConfig: KubeConfig;
  config: GcConfig;
  /**
   * Whether this replica leads now; asked again before the leader-only work writes. Polled every
   * `leaderPollMs`, unless the owner tells the GC itself through startLeading/stopLeading.
   */
  isLeader(): boolean;
  registry: Registry;
  /** This replica's name, for reports and Events. */
  identity?: string;
  /**
   * How often leadership is polled (`SPIDERPOOL_LEADER_RETRY_GAP`); default 1 s. 0: never polled, the owner
   * calls startLeading/stopLeading (the controller's leader election does, so a lost term stops at once).
   */
  leaderPollMs?: number;
  /** Only pools with these labels are scanned; all when absent (several controllers in one test cluster). */
  poolSelector?: Record<string, string>;
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

/** Candidates of a scan verified and written together; bounds the time between their re-read and the writes. */
const SETTLE_BATCH = 1_000;
/** Reads and writes of single objects (GETs, endpoint deletes, finalizers, Events) in flight at once. */
const IO_CONCURRENCY = 16;
/** Verification by LIST needs this many candidates in a namespace, ... */
const LIST_MIN_HOLDERS = 8;
/**
 * ... and a namespace of at most this many pods and endpoints per candidate: a GET on the API server costs
 * about as much as decoding a few dozen listed objects.
 */
const OBJECTS_PER_GET = 40;

/**
 * Whether scan-all re-reads `holders` candidates of one namespace through one LIST of its pods and one of its
 * endpoints rather than a GET of each: when there are several and the namespace (`objects` pods and endpoints
 * in the snapshot) is small enough that the LISTs cost less.
 *
 * ```ts
 * verifyByList(2_500, 0); // true: the pods are gone, two small LISTs replace 5,000 GETs
 * verifyByList(3, 10_000); // false
 * ```
 */
export function verifyByList(holders: number, objects: number): boolean {
  return holders >= LIST_MIN_HOLDERS && objects <= holders * OBJECTS_PER_GET;
}

/** A release the rules decided on facts read again from the API server; nothing is written yet. */
interface Settlement {
  holder: Holder;
  facts: HolderFacts;
  verdict: Extract<HolderVerdict, { action: "release" }>;
  /** The verdict's records that may go now; the others wait out the unconfirmed grace. */
  due: PoolIP[];
  code: GcReason;
}
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
  /** Releases the trace workers and re-checks are carrying out (awaited when the term ends). */
  #tracedInFlight = new Set<Promise<unknown>>();
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
    if (this.#o.leaderPollMs === 0) return;
    poll();
    this.#timers.push(setInterval(poll, this.#o.leaderPollMs ?? 1_000));
  }

  /**
   * The term of this replica began (leader election's LeaderWork): trace pods now. `signal` aborts when the
   * term ends; tracing stops at that moment, before stopLeading is called.
   */
  startLeading(signal: AbortSignal): void {
    if (!this.enabled || this.#stopped || signal.aborted) return;
    signal.addEventListener("abort", () => this.#stopTracing("leadership lost"), { once: true });
    if (!this.#tracing) this.#startTracing();
  }

  /** The term ended: tracing is stopped; resolves once the releases the trace workers had begun are done. */
  async stopLeading(): Promise<void> {
    this.#stopTracing("leadership lost");
    await Promise.allSettled([...this.#tracedInFlight]);
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
      k.listPools(this.#o.poolSelector),
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
        this.#checkNotStopped();
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
      const objects = new Map<string, number>();
      for (const o of [...snap.pods, ...snap.endpoints]) {
        const ns = o.metadata.namespace ?? "";
        objects.set(ns, (objects.get(ns) ?? 0) + 1);
      }
      for (let i = 0; i < candidates.length; i += SETTLE_BATCH) {
        this.#checkNotStopped();
        await this.#settleBatch(candidates.slice(i, i + SETTLE_BATCH), report, objects);
      }
      // Records that left the pools no longer wait for anything.
      const present = new Set(holders.flatMap((h) => h.records.map((r) => recordKey(r, h.uid))));
      for (const k of this.#firstSeen.keys()) if (!present.has(k)) this.#firstSeen.delete(k);
      if (this.#o.config.cleanOutdatedEndpoint) {
        this.#checkNotStopped();
        // Limited to some pools: only endpoints all of whose addresses come from them are this GC's to judge.
        const scanned = new Set(snap.pools.map((p) => p.metadata.name));
        const endpoints = this.#o.poolSelector
          ? snap.endpoints.filter((ep) => endpointPoolIPs(ep).every((r) => scanned.has(r.pool)))
          : snap.endpoints;
        await this.#cleanOutdated(endpoints, holders, report);
      }
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
    // Each release named, as the trace and recheck paths name theirs: which path frees an address is a race.
    for (const [pod, ips] of Map.groupBy(report.released, (r) => `${r.pod} (pod UID ${r.podUid})`)) {
      this.#log(
        `released ${ips.map((x) => `${x.ip} (${x.pool})`).join(", ")} of ${pod} in scan-all (${trigger}): ` +
          `${ips[0].reason}`,
      );
    }
    return report;
  }

  /**
   * Ends a scan of a GC that is stopping between two holders: stop() waits for scans under way, and a scan of a
   * large cluster must not hold a replica's shutdown for its whole length (what it left is the next scan's).
   */
  #checkNotStopped(): void {
    if (this.#stopped) throw new Error("stopped before the end: the GC is stopping");
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
   * Fresh facts for a batch of scan candidates, every one read from the API server after the snapshot: per
   * namespace one LIST of its pods and one of its endpoints when verifyByList says so, else a GET of each;
   * workloads and nodes are read once per batch. `failed` gets each holder that could not be read.
   */
  async #freshFactsOf(
    holders: readonly Holder[],
    objects: ReadonlyMap<string, number>,
    failed: (h: Holder, err: unknown) => void,
  ): Promise<Map<Holder, HolderFacts>> {
    const k = this.#kube;
    const out = new Map<Holder, HolderFacts>();
    const members = new MemberCache(k);
    const nodes = new Map<string, Promise<NodeLike | undefined>>();
    const node = (name: string | undefined) => {
      if (!name) return Promise.resolve(undefined);
      let p = nodes.get(name);
      if (!p) nodes.set(name, p = k.getNode(name));
      return p;
    };
    const byNs = new Map<string, Holder[]>();
    for (const h of holders) {
      const list = byNs.get(h.namespace);
      if (list) list.push(h);
      else byNs.set(h.namespace, [h]);
    }
    await eachLimited([...byNs], 4, async ([ns, hs]) => {
      const listed = verifyByList(hs.length, objects.get(ns) ?? 0);
      this.#o.hooks?.verifying?.(ns, hs.length, listed ? "list" : "get");
      let pods: Map<string, GcPod> | undefined;
      let eps: Map<string, SpiderEndpoint> | undefined;
      if (listed) {
        try {
          const [p, e] = await Promise.all([k.listPodsIn(ns), k.listEndpointsIn(ns)]);
          pods = new Map(p.map((o) => [o.metadata.name, o]));
          eps = new Map(e.map((o) => [o.metadata.name, o]));
        } catch (err) {
          for (const h of hs) failed(h, err);
          return;
        }
      }
      await eachLimited(hs, IO_CONCURRENCY, async (h) => {
        try {
          const [pod, ep] = pods && eps
            ? [pods.get(h.name), eps.get(h.name)]
            : await Promise.all([k.getPod(ns, h.name), k.getEndpoint(ns, h.name)]);
          out.set(h, await this.#facts(h, pod, ep, await node(pod?.spec?.nodeName), members, Date.now()));
        } catch (err) {
          failed(h, err);
        }
      });
    });
    return out;
  }

  /** Verifies a batch of scan candidates and carries out what the rules then say; failures go to the report. */
  async #settleBatch(holders: readonly Holder[], report: ScanReport, objects: ReadonlyMap<string, number>) {
    const failed = (h: Holder, err: unknown) => {
      this.metrics.failures.inc();
      report.errors.push(`${h.namespace}/${h.name} (pod UID ${h.uid}): ${(err as Error).message}`);
    };
    const facts = await this.#freshFactsOf(holders, objects, failed);
    const settlements: Settlement[] = [];
    for (const h of holders) {
      const f = facts.get(h);
      const s = f && this.#decide(h, f, report, "scan");
      if (s) settlements.push(s);
    }
    for (const { settlement, error } of await this.#apply(settlements, report)) {
      failed(settlement.holder, error);
    }
  }

  /**
   * Verifies one candidate holder against the API server and carries out what the rules then say. Used by
   * the re-checks of deferred records and by the trace workers. Throws on API failures only in `trace` mode
   * (the worker retries); otherwise they land in the report.
   */
  async #settle(holder: Holder, report: ScanReport, source: "recheck" | "trace", podName?: string) {
    try {
      const s = this.#decide(holder, await this.#freshFacts(holder, podName), report, source, podName);
      const [failure] = s ? await this.#apply([s], report) : [];
      if (failure) throw failure.error;
    } catch (err) {
      this.metrics.failures.inc();
      const msg = `${holder.namespace}/${holder.name} (pod UID ${holder.uid}): ${(err as Error).message}`;
      if (source === "trace") throw new Error(msg);
      report.errors.push(msg);
    }
  }

  /**
   * Decides on facts just read: keeps or traces the holder, or returns what to release now, remembering the
   * records that must first wait out the unconfirmed grace.
   */
  #decide(
    holder: Holder,
    fresh: HolderFacts,
    report: ScanReport,
    source: "scan" | "recheck" | "trace",
    podName?: string,
  ): Settlement | undefined {
    const v = decideHolder(fresh);
    const hk = holderKey(holder);
    if (v.action !== "release") {
      this.#rechecks.delete(hk);
      if (v.action === "trace" && this.#o.isLeader()) report.traced += this.#trace(v.entry) ? 1 : 0;
      else if (source !== "trace") report.keptAfterVerification++;
      return undefined;
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
    const code: GcReason = source === "trace" && v.code === "pod_not_found" ? "pod_deleted" : v.code;
    return { holder, facts: fresh, verdict: v, due: split.due, code };
  }

  /**
   * Writes what `settlements` decided, each holder in the same order as alone: its endpoint is deleted (as
   * read), then its records are released by pod UID, then the finalizer goes. Each step runs for the whole
   * batch at once; every release is queued together, so each pool gets one status write for the batch. A
   * holder whose step fails goes no further; the failures are returned.
   */
  async #apply(
    settlements: readonly Settlement[],
    report: ScanReport,
  ): Promise<{ settlement: Settlement; error: Error }[]> {
    const failures = new Map<Settlement, Error>();
    for (const s of settlements) await this.#o.hooks?.beforeApply?.(s.holder);

    // Precondition on UID and resourceVersion: an ADD that adopted or rewrote the endpoint since it was read
    // wins, and this holder is looked at again next time.
    const deleting = settlements.filter((s) => s.verdict.deleteEndpoint && s.facts.endpoint);
    await eachLimited(deleting, IO_CONCURRENCY, async (s) => {
      const ep = s.facts.endpoint!;
      try {
        await this.#kube.deleteEndpoint(ep);
      } catch (err) {
        failures.set(
          s,
          err instanceof ConflictError
            ? new Error(
              `SpiderEndpoint ${s.holder.namespace}/${s.holder.name} changed since it was read; nothing ` +
                "released, looking again later",
            )
            : err as Error,
        );
        return;
      }
      this.metrics.endpointsDeleted.inc({ reason: s.code });
      report.endpointsDeleted.push({
        namespace: s.holder.namespace,
        name: ep.metadata.name,
        uid: ep.status.current.uid,
        reason: s.code,
        detail: s.verdict.reason,
      });
    });

    const releasing = settlements.filter((s) => !failures.has(s));
    const released = new Map<Settlement, PoolIP[]>();
    const deadline = Date.now() + RELEASE_TIMEOUT_MS;
    await Promise.all(releasing.map(async (s) => {
      try {
        released.set(s, await this.#release(s.holder.uid, s.due, deadline));
      } catch (err) {
        failures.set(s, err as Error);
      }
    }));
    const done: { s: Settlement; ips: PoolIP[] }[] = [];
    for (const s of releasing) {
      const ips = released.get(s);
      if (!ips) continue;
      done.push({ s, ips });
      for (const r of ips) {
        this.#firstSeen.delete(recordKey(r, s.holder.uid));
        report.released.push({
          pool: r.pool,
          ip: r.ip,
          pod: `${s.holder.namespace}/${s.holder.name}`,
          podUid: s.holder.uid,
          reason: s.code,
          detail: s.verdict.reason,
        });
      }
      this.metrics.releasedIPs(s.code, ips.length);
    }

    const finalizing = done.filter(({ s }) =>
      (s.verdict.removeFinalizer || s.verdict.deleteEndpoint) && s.facts.endpoint
    );
    await eachLimited(finalizing, IO_CONCURRENCY, async ({ s }) => {
      const ep = s.facts.endpoint!;
      try {
        // Read again: the delete (or anything since) changed its resourceVersion.
        const now = await this.#kube.getEndpoint(s.holder.namespace, ep.metadata.name);
        if (now && now.metadata.uid === ep.metadata.uid) await this.#removeFinalizer(now);
      } catch (err) {
        failures.set(s, err as Error);
      }
    });
    await this.#events(done.filter((d) => d.ips.length > 0));
    return settlements.flatMap((s) => {
      const error = failures.get(s);
      return error ? [{ settlement: s, error }] : [];
    });
  }

  /** Gives back `records` recorded for `uid`, pool by pool; what each pool really removed is returned. */
  async #release(uid: string, records: readonly PoolIP[], deadline: number): Promise<PoolIP[]> {
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

  /**
   * Events saying what was released and why: one per pool for the whole batch, and one on each pod that still
   * exists (a newer pod of the same name, a terminating or finished one).
   */
  async #events(done: readonly { s: Settlement; ips: PoolIP[] }[]): Promise<void> {
    const writes: (() => Promise<void>)[] = [];
    const perPool = new Map<string, { s: Settlement; ips: string[] }[]>();
    for (const { s, ips } of done) {
      for (const [pool, mine] of byPool(ips)) {
        const list = perPool.get(pool);
        if (list) list.push({ s, ips: mine });
        else perPool.set(pool, [{ s, ips: mine }]);
      }
    }
    const of = (s: Settlement) => `${s.holder.namespace}/${s.holder.name} (pod UID ${s.holder.uid})`;
    for (const [pool, items] of perPool) {
      const message = items.length === 1
        ? `released ${items[0].ips.join(", ")} of ${of(items[0].s)}: ${items[0].s.code}: ${
          items[0].s.verdict.reason
        }`
        : `released ${items.reduce((n, i) => n + i.ips.length, 0)} addresses of ${items.length} pods: ` +
          items.map((i) => `${i.ips.join(", ")} of ${of(i.s)}: ${i.s.code}`).join("; ");
      writes.push(() => this.#kube.event({ object: poolRef(pool), reason: "IPReleasedByGC", message }));
    }
    for (const { s, ips } of done) {
      const pod = s.facts.pod;
      if (!pod) continue;
      writes.push(() =>
        this.#kube.event({
          object: {
            apiVersion: "v1",
            kind: "Pod",
            name: pod.metadata.name,
            namespace: s.holder.namespace,
            uid: pod.metadata.uid,
          },
          reason: "IPReleasedByGC",
          message: `released ${ips.map((r) => `${r.ip} (${r.pool})`).join(", ")} recorded for pod UID ` +
            `${s.holder.uid}: ${s.code}: ${s.verdict.reason}`,
        })
      );
    }
    // An Event is a courtesy: failing to write one never fails the release.
    await eachLimited(writes, IO_CONCURRENCY, async (write) => {
      try {
        await write();
      } catch (err) {
        this.#log(`could not record an Event: ${(err as Error).message}`);
      }
    });
  }

  /** enableCleanOutdatedEndpoint: endpoints no record names, checked against their pools read now. */
  async #cleanOutdated(endpoints: SpiderEndpoint[], holders: Holder[], report: ScanReport): Promise<void> {
    await eachLimited(outdatedEndpointCandidates(endpoints, holders), IO_CONCURRENCY, async (cand) => {
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
        const checking = this.#recheck(r);
        this.#tracedInFlight.add(checking);
        this.#background(checking.finally(() => this.#tracedInFlight.delete(checking)));
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
      const releasing = this.#releaseTraced(entry);
      this.#tracedInFlight.add(releasing);
      try {
        await releasing;
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
      } finally {
        this.#tracedInFlight.delete(releasing);
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
