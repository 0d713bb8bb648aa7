// Leader election of the controller replicas on the coordination.k8s.io/v1 Lease `spiderpool-controller-leases`
// (upstream §1.4): pure decision functions (lease, observation, identity, now → action) and a small elector that
// carries them out with optimistic concurrency on the Lease's resourceVersion.
//
// Clock model (what makes it safe without synchronised clocks): no replica ever compares a timestamp written by
// another replica with its own clock. Each replica measures only durations on its own monotonic clock:
// - a candidate treats the lease as expired once the exact same lease version (resourceVersion) has been
//   observed unchanged for `leaseDurationSeconds` since it FIRST saw that version;
// - the leader treats itself as leader only until `renewDeadline` after it SENT its last successful renewal.
// The renewal was committed after it was sent, and a candidate saw it after it was committed, so every
// candidate's expiry is at least `leaseDuration` after the leader's send time, while the leader stops at
// `renewDeadline` after it: the gap (15 s − 10 s by default) absorbs clock-rate drift and scheduling delays.
// The absolute offset between node clocks plays no part (renewTime/acquireTime are informational only).
// Assumptions: monotonic clocks advance at roughly the same rate (drift well below 5 s per 15 s), and they
// keep counting while a process is stopped (CLOCK_MONOTONIC does; a suspended node, where it does not, is
// not covered). A process stopped (SIGSTOP, long GC) finds on resumption that its deadline passed: isLeader()
// checks the clock synchronously, so leader-only work that asks before each write stops before writing.

import { ConflictError, type KubeHttp, NotFoundError } from "../kube/client.ts";

/** Name of the Lease (upstream's). */
export const LEASE_NAME = "spiderpool-controller-leases";
const LEASES = (ns: string) => `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/leases`;

/** Durations of the election, in milliseconds. */
export interface LeaseTimings {
  /** How long a candidate waits on an unchanged lease before taking it (`SPIDERPOOL_LEADER_DURATION`). */
  leaseDurationMs: number;
  /** How long the leader keeps leading after its last successful renewal was sent
   * (`SPIDERPOOL_LEADER_RENEW_DEADLINE`). */
  renewDeadlineMs: number;
  /** Pause between attempts (`SPIDERPOOL_LEADER_RETRY_PERIOD`). */
  retryPeriodMs: number;
}

/** Upstream's defaults: 15 s, 10 s, 2 s. */
export const DEFAULT_TIMINGS: LeaseTimings = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
};

/** Candidates spread their attempts over [retryPeriod, 1.2 × retryPeriod], as client-go does. */
const JITTER = 1.2;

/** Bad election durations (from the environment or options); the message names the setting and the fix. */
export class LeaderConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LeaderConfigError";
  }
}

/** Checks that the durations can keep two leaders apart; throws LeaderConfigError otherwise. */
export function validateTimings(t: LeaseTimings): LeaseTimings {
  for (const [k, v] of Object.entries(t)) {
    if (!Number.isFinite(v) || v <= 0) {
      throw new LeaderConfigError(`leader election ${k} must be > 0, got ${v}`);
    }
  }
  if (t.leaseDurationMs <= t.renewDeadlineMs) {
    throw new LeaderConfigError(
      `SPIDERPOOL_LEADER_DURATION (${t.leaseDurationMs / 1000} s) must be greater than ` +
        `SPIDERPOOL_LEADER_RENEW_DEADLINE (${
          t.renewDeadlineMs / 1000
        } s): the difference is the margin that ` +
        `keeps an old leader from overlapping a new one`,
    );
  }
  if (t.renewDeadlineMs <= JITTER * t.retryPeriodMs) {
    throw new LeaderConfigError(
      `SPIDERPOOL_LEADER_RENEW_DEADLINE (${t.renewDeadlineMs / 1000} s) must be greater than ${JITTER} × ` +
        `SPIDERPOOL_LEADER_RETRY_PERIOD (${t.retryPeriodMs / 1000} s), or the leader cannot renew in time`,
    );
  }
  return t;
}

/**
 * Reads the durations from upstream's environment variables (whole or decimal seconds; unset or empty means the
 * default) and validates them.
 *
 * ```ts
 * timingsFromEnv((k) => ({ SPIDERPOOL_LEADER_DURATION: "30" } as Record<string, string>)[k]);
 * // { leaseDurationMs: 30000, renewDeadlineMs: 10000, retryPeriodMs: 2000 }
 * ```
 */
export function timingsFromEnv(env: (key: string) => string | undefined): LeaseTimings {
  const seconds = (key: string, fallbackMs: number) => {
    const raw = env(key)?.trim();
    if (raw === undefined || raw === "") return fallbackMs;
    const m = /^(\d+(?:\.\d+)?)s?$/.exec(raw);
    if (!m) {
      throw new LeaderConfigError(`${key}=${JSON.stringify(raw)} is not a number of seconds; use e.g. "15"`);
    }
    return Math.round(Number(m[1]) * 1000);
  };
  return validateTimings({
    leaseDurationMs: seconds("SPIDERPOOL_LEADER_DURATION", DEFAULT_TIMINGS.leaseDurationMs),
    renewDeadlineMs: seconds("SPIDERPOOL_LEADER_RENEW_DEADLINE", DEFAULT_TIMINGS.renewDeadlineMs),
    retryPeriodMs: seconds("SPIDERPOOL_LEADER_RETRY_PERIOD", DEFAULT_TIMINGS.retryPeriodMs),
  });
}

/** `spec` of a coordination.k8s.io/v1 Lease. Times are MicroTime strings. */
export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number | null;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number | null;
}

export interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  spec?: LeaseSpec;
}

/**
 * What a replica remembers of the lease between attempts. `othersValidUntil` is the latest local monotonic time
 * until which another replica may still consider itself leader, as far as this replica has observed.
 */
export interface Observation {
  /** resourceVersion of the lease last seen; undefined when never seen or absent. */
  resourceVersion?: string;
  /** Holder of the lease last seen ("" or undefined: nobody). */
  holder?: string;
  othersValidUntil: number;
}

/** Nothing observed yet. Expiries are -Infinity rather than 0: a monotonic clock may have any origin. */
export const NO_OBSERVATION: Observation = { othersValidUntil: -Infinity };

const holderOf = (lease: Lease | undefined) => lease?.spec?.holderIdentity ?? "";

/**
 * The observation after reading `lease` (undefined = absent) at local monotonic time `now`. A new version
 * held by another replica restarts its expiry clock; a released lease (no holder) and a lease held by us
 * clear it. An absent lease keeps the previous expiry: a lease deleted while held may still be acted on by
 * its holder until then.
 */
export function observe(
  prev: Observation,
  lease: Lease | undefined,
  identity: string,
  now: number,
  defaultDurationMs: number,
): Observation {
  if (lease === undefined) return { holder: prev.holder, othersValidUntil: prev.othersValidUntil };
  const rv = lease.metadata.resourceVersion;
  const holder = holderOf(lease);
  if (rv !== undefined && rv === prev.resourceVersion) return prev;
  if (holder === "" || holder === identity) {
    return { resourceVersion: rv, holder, othersValidUntil: -Infinity };
  }
  const seconds = lease.spec?.leaseDurationSeconds;
  const durationMs = typeof seconds === "number" && seconds > 0 ? seconds * 1000 : defaultDurationMs;
  return { resourceVersion: rv, holder, othersValidUntil: Math.max(prev.othersValidUntil, now + durationMs) };
}

/** What to do with the lease after reading it. */
export type LeaseAction =
  /** No lease and nobody is known to hold one: create it naming us. */
  | { kind: "create" }
  /** The lease names us: renew it. */
  | { kind: "renew" }
  /** Released, or held by another replica that has not renewed for a whole lease duration: take it. */
  | { kind: "acquire"; from: string }
  /** Another replica holds it (or may still act on a deleted one) until `untilMs` (local monotonic). */
  | { kind: "wait"; holder: string; untilMs: number };

/**
 * The one rule of the election, given the lease just read (undefined = absent) and the observation made from
 * it (see {@linkcode observe}).
 *
 * ```ts
 * decide(observe(NO_OBSERVATION, lease, "b", 0, 15_000), lease, "b", 0);
 * // lease held by "a": { kind: "wait", holder: "a", untilMs: 15000 }
 * ```
 */
export function decide(
  obs: Observation,
  lease: Lease | undefined,
  identity: string,
  now: number,
): LeaseAction {
  const holder = holderOf(lease);
  if (lease === undefined) {
    return now < obs.othersValidUntil
      ? { kind: "wait", holder: obs.holder ?? "", untilMs: obs.othersValidUntil }
      : { kind: "create" };
  }
  if (holder === identity) return { kind: "renew" };
  if (holder === "") return { kind: "acquire", from: "" };
  if (now < obs.othersValidUntil) return { kind: "wait", holder, untilMs: obs.othersValidUntil };
  return { kind: "acquire", from: holder };
}

/**
 * Formats a Kubernetes MicroTime (RFC 3339 with exactly six fractional digits: the API server rejects the three
 * that Date.toISOString writes).
 */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/**
 * The lease spec to write for `action` (create, renew or acquire). `leading` says whether this process already
 * leads under the lease; a renewal by a process that does not (e.g. restarted with the same identity) starts a
 * new term and so sets acquireTime.
 */
export function leaseSpecFor(
  action: Exclude<LeaseAction, { kind: "wait" }>,
  lease: Lease | undefined,
  identity: string,
  wallNow: Date,
  durationMs: number,
  leading: boolean,
): LeaseSpec {
  const now = microTime(wallNow);
  const transitions = lease?.spec?.leaseTransitions ?? 0;
  const base = {
    holderIdentity: identity,
    leaseDurationSeconds: Math.max(1, Math.ceil(durationMs / 1000)),
    renewTime: now,
  };
  switch (action.kind) {
    case "create":
      return { ...base, acquireTime: now, leaseTransitions: 0 };
    case "renew":
      return {
        ...base,
        acquireTime: leading ? (lease?.spec?.acquireTime ?? now) : now,
        leaseTransitions: transitions,
      };
    case "acquire":
      return { ...base, acquireTime: now, leaseTransitions: transitions + 1 };
  }
}

/** The lease spec that hands leadership over at once on a graceful stop: no holder. */
export function releasedSpec(lease: Lease, wallNow: Date): LeaseSpec {
  return {
    leaseDurationSeconds: 1,
    acquireTime: microTime(wallNow),
    renewTime: microTime(wallNow),
    leaseTransitions: lease.spec?.leaseTransitions ?? 0,
  };
}

/**
 * Until when (local monotonic) a successful create/renew/acquire lets this replica lead: `renewDeadline` after
 * the round began (before the lease was even read, so before the write was committed and before any other
 * replica could observe it). Undefined when that moment has already passed by the time the answer arrived.
 */
export function termValidUntil(
  sentAt: number,
  answeredAt: number,
  renewDeadlineMs: number,
): number | undefined {
  const until = sentAt + renewDeadlineMs;
  return answeredAt < until ? until : undefined;
}

/** Leader-only work the elector starts when this replica becomes leader and stops when it stops leading. */
export interface LeaderWork {
  /**
   * Called when leadership starts; `signal` aborts at the moment leadership ends, and `leader.isLeader()` must be
   * asked right before each write. Must not block.
   */
  startLeading(signal: AbortSignal, leader: LeaderView): void;
  /** Called when leadership ends (signal already aborted); resolves once no more work is in flight. */
  stopLeading(): Promise<void>;
}

/** What the daemon's readiness probe and the write guards ask. */
export interface LeaderView {
  /** True only while this replica holds the lease and its renew deadline has not passed (checked now). */
  isLeader(): boolean;
  /** True when some replica (this one or another) is known to hold a valid lease. */
  leaderKnown(): boolean;
}

export interface LeaderElectorOptions {
  http: KubeHttp;
  /** The controller's namespace (`SPIDERPOOL_POD_NAMESPACE`). */
  namespace: string;
  /** This replica's identity: the pod name (`SPIDERPOOL_POD_NAME`). Must be unique among replicas. */
  identity: string;
  /** Default {@linkcode LEASE_NAME}. */
  leaseName?: string;
  timings?: LeaseTimings;
  /** Started and stopped with leadership, in this order (stopped in reverse). */
  work?: LeaderWork[];
  onStartedLeading?(): void;
  onStoppedLeading?(reason: string): void;
  /** A different holder (or none, "") was observed. */
  onNewLeader?(identity: string): void;
  /** Told of every start and end of a term (e.g. ControllerMetrics). */
  metrics?: { leadership(leading: boolean): void };
  log?: (message: string) => void;
  /** Local monotonic clock in ms; default performance.now. */
  monotonic?: () => number;
  /** Wall clock for the informational lease timestamps; default Date. */
  wallClock?: () => Date;
}

/**
 * Runs the election loop. Leader-only work is given through `work` (or the callbacks) and must ask
 * {@linkcode isLeader} synchronously right before each write: on a lost renew deadline, on a renewal that finds
 * another holder, or on a deleted lease, leadership ends at once, before any further write.
 *
 * @example
 * ```ts
 * const elector = new LeaderElector({ http, namespace: "kube-system", identity: podName, work: [reconcilers] });
 * elector.start();
 * // ... on SIGTERM:
 * await elector.stop(); // stops the work, then releases the lease so another replica takes over at once
 * ```
 */
export class LeaderElector implements LeaderView {
  readonly identity: string;
  readonly #opts: LeaderElectorOptions;
  readonly #timings: LeaseTimings;
  readonly #path: string;
  readonly #now: () => number;
  readonly #wall: () => Date;
  readonly #log: (m: string) => void;
  #obs: Observation = NO_OBSERVATION;
  #lastLease?: Lease;
  #leading = false;
  /** Local monotonic time until which this replica may act as leader. */
  #validUntil = -Infinity;
  #term?: AbortController;
  /** Resolves once the work of the last term has stopped. */
  #stopping: Promise<unknown> = Promise.resolve();
  #watchdog?: ReturnType<typeof setTimeout>;
  #running?: Promise<void>;
  #stopped = false;
  #wake?: () => void;
  #observedHolder?: string;

  constructor(opts: LeaderElectorOptions) {
    if (!opts.identity) throw new LeaderConfigError("leader election needs an identity (the pod name)");
    this.#opts = opts;
    this.identity = opts.identity;
    this.#timings = validateTimings(opts.timings ?? DEFAULT_TIMINGS);
    this.#path = `${LEASES(opts.namespace)}/${encodeURIComponent(opts.leaseName ?? LEASE_NAME)}`;
    this.#now = opts.monotonic ?? (() => performance.now());
    this.#wall = opts.wallClock ?? (() => new Date());
    this.#log = opts.log ?? ((m) => console.error(`leader election: ${m}`));
  }

  isLeader(): boolean {
    if (this.#leading && this.#now() >= this.#validUntil) {
      this.#lose(`no successful renewal for ${this.#timings.renewDeadlineMs} ms (renew deadline)`);
    }
    return this.#leading;
  }

  leaderKnown(): boolean {
    if (this.isLeader()) return true;
    return (this.#obs.holder ?? "") !== "" && this.#obs.holder !== this.identity &&
      this.#now() < this.#obs.othersValidUntil;
  }

  /** The holder last observed ("" when none). */
  leader(): string {
    return this.isLeader() ? this.identity : (this.#obs.holder ?? "");
  }

  /** Aborted when the current term ends; undefined when not leading. */
  get signal(): AbortSignal | undefined {
    return this.isLeader() ? this.#term?.signal : undefined;
  }

  start(): void {
    if (this.#running) return;
    this.#stopped = false;
    this.#running = this.#loop();
  }

  /** Stops leader-only work, releases the lease if this replica holds it, and ends the loop. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#running;
    this.#running = undefined;
    this.#lose("stopping");
    await this.#stopping;
    // Also when a write that made us holder finished after stop() began: the lease is given back either way.
    if (holderOf(this.#lastLease) === this.identity) await this.#release();
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      let again = false;
      try {
        again = await this.#attempt();
      } catch (err) {
        this.#log(`attempt failed: ${(err as Error).message}`);
      }
      if (this.#stopped) break;
      if (again) continue;
      const { retryPeriodMs } = this.#timings;
      const pause = this.#leading ? retryPeriodMs : retryPeriodMs * (1 + Math.random() * (JITTER - 1));
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, pause);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  /** One read-decide-write round; true when the next round should follow at once (after a conflict). */
  async #attempt(): Promise<boolean> {
    this.isLeader(); // a term whose deadline passed ends before this round computes its request deadline
    const sentAt = this.#now();
    const { http } = this.#opts;
    const timeoutMs = this.#requestTimeout();
    let lease: Lease | undefined;
    try {
      lease = (await http.get<Lease>(this.#path, { timeoutMs })).body;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    this.isLeader(); // the read may have taken past the deadline (or the process was stopped meanwhile)
    this.#lastLease = lease;
    this.#obs = observe(this.#obs, lease, this.identity, this.#now(), this.#timings.leaseDurationMs);
    if (lease !== undefined) this.#noteHolder(holderOf(lease));
    const action = decide(this.#obs, lease, this.identity, this.#now());
    if (action.kind === "wait") {
      if (this.#leading) this.#lose(`the lease is held by ${JSON.stringify(action.holder)}`);
      return false;
    }
    if (this.#leading && lease === undefined) {
      // Deleted while we held it: someone may create it now, so this term ends before anything else is written.
      this.#lose("the lease was deleted");
    }
    const spec = leaseSpecFor(
      action,
      lease,
      this.identity,
      this.#wall(),
      this.#timings.leaseDurationMs,
      this.#leading,
    );
    try {
      if (lease === undefined) {
        const body = {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: this.#opts.leaseName ?? LEASE_NAME, namespace: this.#opts.namespace },
          spec,
        };
        this.#lastLease = (await http.post<Lease>(this.#path.slice(0, this.#path.lastIndexOf("/")), body, {
          timeoutMs,
        })).body;
      } else {
        this.#lastLease = (await http.put<Lease>(this.#path, { ...lease, spec }, { timeoutMs })).body;
      }
    } catch (err) {
      if (err instanceof ConflictError) {
        // Someone else wrote the lease since we read it. Usually another replica took it; rarely it was our own
        // earlier write that timed out here but was committed. Either way this term ends before anything else
        // is written, and the next round (at once) finds out who holds the lease now.
        this.#lose("the lease changed under a renewal (409 Conflict)");
        return true;
      }
      if (err instanceof NotFoundError && this.#leading) this.#lose("the lease was deleted");
      throw err;
    }
    this.#renewed(sentAt, action);
    return false;
  }

  #requestTimeout(): number {
    const { retryPeriodMs } = this.#timings;
    if (!this.#leading) return Math.max(1_000, retryPeriodMs);
    return Math.max(1, Math.min(this.#validUntil - this.#now(), 30_000));
  }

  #renewed(sentAt: number, action: LeaseAction): void {
    // stop() began while the write was in flight: no new term; stop() gives the lease back.
    if (this.#stopped && !this.#leading) return;
    const until = termValidUntil(sentAt, this.#now(), this.#timings.renewDeadlineMs);
    if (until === undefined) {
      // The round took longer than the renew deadline (e.g. the process was stopped): candidates may already
      // count this renewal as expired, so it starts no term; the next round renews afresh.
      this.#log("a renewal succeeded only after the renew deadline; not leading on it");
      this.isLeader();
      return;
    }
    this.#validUntil = until;
    this.#obs = {
      resourceVersion: this.#lastLease?.metadata.resourceVersion,
      holder: this.identity,
      othersValidUntil: -Infinity,
    };
    clearTimeout(this.#watchdog);
    // Ends the term when the deadline passes even if every timer of the work is late or no one asks.
    this.#watchdog = setTimeout(() => this.isLeader(), Math.max(0, this.#validUntil - this.#now()) + 1);
    if (!this.#leading) {
      this.#leading = true;
      this.#term = new AbortController();
      this.#noteHolder(this.identity);
      this.#log(
        `started leading (${
          action.kind === "acquire" && action.from
            ? `took over from ${JSON.stringify(action.from)}`
            : action.kind
        })`,
      );
      for (const w of this.#opts.work ?? []) {
        try {
          w.startLeading(this.#term.signal, this);
        } catch (err) {
          this.#log(`leader work failed to start: ${(err as Error).message}`);
        }
      }
      this.#opts.metrics?.leadership(true);
      this.#opts.onStartedLeading?.();
    }
  }

  /** Ends the term synchronously: aborts its signal first, so nothing in flight or queued writes afterwards. */
  #lose(reason: string): void {
    if (!this.#leading) return;
    this.#leading = false;
    this.#validUntil = -Infinity;
    clearTimeout(this.#watchdog);
    this.#term?.abort(new Error(`leadership lost: ${reason}`));
    this.#log(`stopped leading: ${reason}`);
    const stops = [...(this.#opts.work ?? [])].reverse().map((w) =>
      w.stopLeading().catch((err) => this.#log(`leader work failed to stop: ${err.message}`))
    );
    this.#stopping = Promise.all([this.#stopping, ...stops]);
    this.#opts.metrics?.leadership(false);
    this.#opts.onStoppedLeading?.(reason);
    this.#wake?.();
  }

  #noteHolder(holder: string): void {
    if (holder === this.#observedHolder) return;
    this.#observedHolder = holder;
    this.#opts.onNewLeader?.(holder);
  }

  /** Hands the lease over: writes it without a holder, only if it still names us (resourceVersion guard). */
  async #release(): Promise<void> {
    const { http } = this.#opts;
    try {
      let lease = this.#lastLease;
      if (lease === undefined || holderOf(lease) !== this.identity) {
        lease = (await http.get<Lease>(this.#path, { timeoutMs: 5_000 })).body;
      }
      if (holderOf(lease) !== this.identity) return;
      await http.put(this.#path, { ...lease, spec: releasedSpec(lease, this.#wall()) }, { timeoutMs: 5_000 });
      this.#log("released the lease");
    } catch (err) {
      this.#log(
        `could not release the lease (another replica takes over after it expires): ${
          (err as Error).message
        }`,
      );
    }
  }
}
