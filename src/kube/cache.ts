// List + watch caches for the agent and the controller: one loop per resource lists, then watches from the
// list's resourceVersion through KubeHttp (src/kube/watch.ts), resumes after every end or stall, lists afresh
// after 410 Gone or errors, and re-lists periodically as a safety net. Reads that decide correctness (pool
// status at commit time, endpoint and pod on DEL) bypass these caches.
//
// The cache is always a consistent prefix of the API server's history: its contents are one list's snapshot
// followed by the events of the streams opened after it, each from the resourceVersion the one before ended at,
// applied in order by one loop. Two streams never run at once and a list never runs beside a stream.

import type { KubeConfig } from "@kubernetes/client-node";
import type { KubeHttp } from "./client.ts";
import {
  type BackoffOptions,
  listQuery,
  nextStep,
  readWatch,
  type Selectors,
  WatchAbort,
  type WatchEnd,
  watchQuery,
  watchTimeoutSeconds,
} from "./watch.ts";

/** The metadata every cached object has. */
export interface Meta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

/**
 * The object without `metadata.managedFields` (server-side apply bookkeeping: often half of a pod's JSON). A
 * status write based on such a copy keeps the stored managedFields: the API server ignores their absence.
 */
export function withoutManagedFields<T extends { metadata?: object }>(obj: T): T {
  if (!obj.metadata || !("managedFields" in obj.metadata)) return obj;
  const { managedFields: _, ...metadata } = obj.metadata as { managedFields?: unknown };
  return { ...obj, metadata };
}

/**
 * Only the kind and metadata of an object, without managedFields: what a reader of labels and annotations
 * needs of a Node (whose status lists every image on the node) or a Namespace.
 */
export function metadataOnly<T extends { apiVersion?: string; kind?: string; metadata?: object }>(obj: T): T {
  const { apiVersion, kind } = obj;
  return withoutManagedFields({ apiVersion, kind, metadata: obj.metadata } as T);
}

/** How often a cache re-lists and how long its watches may last and stay silent. */
export interface CacheTiming {
  /** Full re-list period; default 5 minutes. */
  resyncMs?: number;
  /**
   * Lower bound of the server-side timeout of each watch (`timeoutSeconds`): each watch asks for a random
   * value in [t, 2t), like client-go; default 300 s.
   */
  watchTimeoutSeconds?: number;
  /**
   * A stream that delivers no byte for its server timeout plus this margin is aborted and resumed (the server
   * should have ended it by then, so the connection is dead); default 30 s.
   */
  stallMarginMs?: number;
  /** Replaces the stall limit above with a fixed one: a stream with no byte for this long is resumed. */
  watchdogMs?: number;
  /** Objects per page of a list (`limit`), 0 for unpaged; default 500 like client-go. */
  pageSize?: number;
  /** Backoff after failed lists and watches; default 250 ms doubling to 10 s. */
  backoff?: BackoffOptions;
}

export interface CacheOptions<T = unknown> extends CacheTiming, Selectors {
  /** Collection path, e.g. `/api/v1/pods` or `/apis/spiderpool.spidernet.io/v2beta1/spiderippools`. */
  path: string;
  log?: (message: string) => void;
  /**
   * What the cache keeps of each listed or watched object (e.g. without `metadata.managedFields`, which a
   * reader never needs and which can be most of an object's size); the object as received when absent.
   */
  transform?: (obj: T) => T;
}

type Defaulted = "resyncMs" | "watchTimeoutSeconds" | "stallMarginMs" | "pageSize";

/** The defaults of CacheTiming. */
export const DEFAULT_CACHE_TIMING: Readonly<Required<Pick<CacheTiming, Defaulted>>> = {
  resyncMs: 300_000,
  watchTimeoutSeconds: 300,
  stallMarginMs: 30_000,
  pageSize: 500,
};

/** A cache setting from the environment that is not a positive number. */
export class CacheTimingError extends Error {
  constructor(readonly variable: string, readonly value: string) {
    super(
      `${variable}=${JSON.stringify(value)} is not a positive number of seconds; unset it or give e.g. 300`,
    );
    this.name = new.target.name;
  }
}

/** Environment variables that override CacheTiming (seconds, fractions allowed). */
export const CACHE_TIMING_ENV = {
  resyncMs: "SPIDERPOOL_CACHE_RESYNC_SECONDS",
  watchTimeoutSeconds: "SPIDERPOOL_WATCH_TIMEOUT_SECONDS",
  stallMarginMs: "SPIDERPOOL_WATCH_STALL_MARGIN_SECONDS",
} as const;

/**
 * The CacheTiming set through the environment ({@linkcode CACHE_TIMING_ENV}); unset or empty variables are
 * left out. Throws CacheTimingError naming the variable for a value that is not a positive number.
 */
export function cacheTimingFromEnv(env: { get(name: string): string | undefined }): CacheTiming {
  const seconds = (variable: string): number | undefined => {
    const raw = env.get(variable);
    if (raw === undefined || raw.trim() === "") return undefined;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new CacheTimingError(variable, raw);
    return n;
  };
  const timing: CacheTiming = {};
  const resync = seconds(CACHE_TIMING_ENV.resyncMs);
  if (resync !== undefined) timing.resyncMs = resync * 1000;
  const timeout = seconds(CACHE_TIMING_ENV.watchTimeoutSeconds);
  if (timeout !== undefined) timing.watchTimeoutSeconds = timeout;
  const margin = seconds(CACHE_TIMING_ENV.stallMarginMs);
  if (margin !== undefined) timing.stallMarginMs = margin * 1000;
  return timing;
}

const key = (name: string, namespace?: string) => `${namespace ?? ""}/${name}`;

/** What replacing a cache's contents with a fresh list changes: the new map and the events to emit. */
export interface ListSwap<T extends Meta> {
  objects: Map<string, T>;
  deleted: T[];
  changed: T[];
}

/**
 * The result of a list started in generation `listGeneration`, or undefined when a newer re-list (or a
 * restart of the cache) began meanwhile: applying an older list after a newer one would roll objects and
 * the resourceVersion back.
 */
export function swapForList<T extends Meta>(
  old: ReadonlyMap<string, T>,
  items: readonly T[],
  listGeneration: number,
  currentGeneration: number,
): ListSwap<T> | undefined {
  if (listGeneration !== currentGeneration) return undefined;
  const objects = new Map<string, T>();
  for (const obj of items) objects.set(key(obj.metadata?.name ?? "", obj.metadata?.namespace), obj);
  const deleted = [...old].filter(([k]) => !objects.has(k)).map(([, obj]) => obj);
  const changed = [...objects]
    .filter(([k, obj]) => old.get(k)?.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
    .map(([, obj]) => obj);
  return { objects, deleted, changed };
}

/** What a cache is doing and has done, for probes, metrics and tests. */
export interface CacheStatus {
  /** The first list has filled the cache. */
  synced: boolean;
  /** A watch stream is open and has answered. */
  watching: boolean;
  /** The resourceVersion the cache reflects: of the last list, event or bookmark applied. */
  resourceVersion: string;
  /** When the last successful list finished (ms since the epoch), 0 before the first. */
  listedAt: number;
  /** When the API server last sent this cache anything: a list, stream headers, an event or a bookmark. */
  lastContactAt: number;
  /** Successful lists so far (the first included). */
  lists: number;
  /** Watch streams opened so far. */
  watches: number;
  /** How many watch streams ended each way (failed lists count as "failed"). */
  ends: Record<WatchEnd["kind"], number>;
  /** How the last watch stream ended, if one did. */
  lastEnd?: WatchEnd;
}

/** One resource's list + watch cache. `synced` resolves after the first successful list. */
export class ResourceCache<T extends Meta> {
  readonly #http: KubeHttp;
  readonly #opts: CacheOptions<T> & Required<Pick<CacheOptions<T>, Defaulted | "log">>;
  #objects = new Map<string, T>();
  #resourceVersion = "";
  #stopped = true;
  /** Incremented by start() and stop(): a loop of an older generation applies nothing and ends. */
  #generation = 0;
  /** Ends the current stream or backoff wait; its reason (a WatchAbort) says why. */
  #abort?: AbortController;
  #timer?: ReturnType<typeof setInterval>;
  #status: CacheStatus = {
    synced: false,
    watching: false,
    resourceVersion: "",
    listedAt: 0,
    lastContactAt: 0,
    lists: 0,
    watches: 0,
    ends: { closed: 0, stalled: 0, gone: 0, failed: 0, resync: 0 },
  };
  #resolveSynced!: () => void;
  /** Resolves once the first list has filled the cache. */
  readonly synced: Promise<void>;
  #listeners: ((obj: T, deleted: boolean) => void)[] = [];

  /** `kc` is no longer used (watches go through `http`); it is accepted so that callers need no change. */
  constructor(_kc: KubeConfig | undefined, http: KubeHttp, opts: CacheOptions<T>) {
    this.#http = http;
    this.#opts = { ...DEFAULT_CACHE_TIMING, log: (m) => console.error(m), ...withoutUndefined(opts) };
    this.synced = new Promise((r) => this.#resolveSynced = r);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#objects.get(key(name, namespace));
  }

  list(): T[] {
    return [...this.#objects.values()];
  }

  /** The resourceVersion the contents reflect (of the last list, event or bookmark); "" before the first list. */
  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  /** A copy of the cache's state: synced, watching, resourceVersion, last contact, counts. */
  status(): CacheStatus {
    return { ...this.#status, ends: { ...this.#status.ends }, resourceVersion: this.#resourceVersion };
  }

  /** Called for every add/update (deleted=false) and delete (deleted=true) seen by the watch or a re-list. */
  onChange(fn: (obj: T, deleted: boolean) => void): void {
    this.#listeners.push(fn);
  }

  /** Lists, then watches; retries failed lists with backoff until stop(). Calling it twice has no effect. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    const generation = ++this.#generation;
    void this.#run(generation);
    this.#timer = setInterval(() => this.#interrupt({ kind: "resync" }), this.#opts.resyncMs);
  }

  stop(): void {
    this.#stopped = true;
    this.#generation++;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#abort?.abort(new WatchAbort({ kind: "failed", message: "cache stopped" }));
    this.#abort = undefined;
    this.#status.watching = false;
  }

  #interrupt(end: WatchEnd): void {
    this.#abort?.abort(new WatchAbort(end));
  }

  #live(generation: number): boolean {
    return !this.#stopped && generation === this.#generation;
  }

  /** The one loop that writes this cache: list, watch, and after each end decide (nextStep) what follows. */
  async #run(generation: number): Promise<void> {
    let action: "list" | "watch" = "list";
    let failures = 0;
    while (this.#live(generation)) {
      const abort = new AbortController();
      this.#abort = abort;
      let end: WatchEnd;
      if (action === "list") {
        try {
          await this.#list(generation);
          if (!this.#live(generation)) return;
          action = "watch";
          continue;
        } catch (err) {
          if (!this.#live(generation)) return;
          end = { kind: "failed", message: `list failed: ${(err as Error).message}` };
        }
      } else {
        end = await this.#watch(generation, abort.signal);
        if (!this.#live(generation)) return;
        this.#status.lastEnd = end;
      }
      this.#status.ends[end.kind]++;
      const step = nextStep(end, failures, this.#resourceVersion !== "", this.#opts.backoff);
      if (end.kind === "failed" || end.kind === "gone" || end.kind === "stalled") {
        const next = step.action === "list" ? "listing again" : "resuming";
        const after = step.delayMs ? ` in ${step.delayMs} ms` : "";
        this.#opts.log(`cache ${this.#opts.path}: ${describe(end)}; ${next}${after}`);
      }
      action = step.action;
      failures = step.failures;
      if (step.delayMs > 0) await sleep(step.delayMs, abort.signal);
      // A resync requested during the backoff wait still lists.
      if (abort.signal.aborted && (abort.signal.reason as WatchAbort)?.end?.kind === "resync") {
        action = "list";
      }
    }
  }

  async #list(generation: number): Promise<void> {
    const items: T[] = [];
    let resourceVersion = "";
    let cont: string | undefined;
    do {
      const { body } = await this.#http.get<
        { items?: T[]; metadata?: { resourceVersion?: string; continue?: string } }
      >(`${this.#opts.path}${listQuery(this.#opts, { limit: this.#opts.pageSize, continue: cont })}`);
      if (!this.#live(generation)) return;
      const transform = this.#opts.transform;
      for (const item of body.items ?? []) items.push(transform ? transform(item) : item);
      // Every page of one list is read at the first page's snapshot and reports its resourceVersion.
      resourceVersion = body.metadata?.resourceVersion ?? "";
      cont = body.metadata?.continue || undefined;
    } while (cont);
    const swap = swapForList(this.#objects, items, generation, this.#generation);
    if (!swap || this.#stopped) return;
    this.#objects = swap.objects;
    this.#resourceVersion = resourceVersion;
    const now = Date.now();
    this.#status.listedAt = now;
    this.#status.lastContactAt = now;
    this.#status.lists++;
    for (const obj of swap.deleted) this.#emit(obj, true);
    for (const obj of swap.changed) this.#emit(obj, false);
    this.#status.synced = true;
    this.#resolveSynced();
  }

  async #watch(generation: number, signal: AbortSignal): Promise<WatchEnd> {
    const timeoutSeconds = watchTimeoutSeconds(this.#opts.watchTimeoutSeconds);
    const stallMs = this.#opts.watchdogMs ?? timeoutSeconds * 1000 + this.#opts.stallMarginMs;
    this.#status.watches++;
    const end = await readWatch<T>(this.#http, {
      url: `${this.#opts.path}${watchQuery(this.#opts, this.#resourceVersion, timeoutSeconds)}`,
      stallMs,
      signal,
      onContact: () => {
        this.#status.lastContactAt = Date.now();
        this.#status.watching = true;
      },
      onEvent: (event) => {
        if (!this.#live(generation)) return;
        const obj = event.object;
        const rv = obj.metadata?.resourceVersion;
        if (rv) this.#resourceVersion = rv;
        if (event.type === "BOOKMARK") return;
        const k = key(obj.metadata?.name ?? "", obj.metadata?.namespace);
        const kept = this.#opts.transform ? this.#opts.transform(obj) : obj;
        if (event.type === "DELETED") {
          this.#objects.delete(k);
          this.#emit(kept, true);
        } else {
          this.#objects.set(k, kept);
          this.#emit(kept, false);
        }
      },
    });
    this.#status.watching = false;
    return end;
  }

  #emit(obj: T, deleted: boolean): void {
    for (const fn of this.#listeners) {
      try {
        fn(obj, deleted);
      } catch (err) {
        this.#opts.log(`cache ${this.#opts.path}: listener failed: ${(err as Error).message}`);
      }
    }
  }
}

function describe(end: WatchEnd): string {
  switch (end.kind) {
    case "closed":
      return `watch closed after ${end.durationMs} ms with ${end.events} events`;
    case "stalled":
      return `watch silent for ${end.silentMs} ms, aborted`;
    case "gone":
      return `watch history gone (410): ${end.message}`;
    case "failed":
      return `watch failed: ${end.message}`;
    case "resync":
      return "periodic re-list";
  }
}

/** Waits `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

function withoutUndefined<O extends object>(o: O): O {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as O;
}
