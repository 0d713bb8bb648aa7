// Informer caches of the agent: list + watch per resource, kept in a Map, with a periodic full re-list and a
// watchdog so a watch that silently stops (a known client-node failure) cannot leave the cache stale forever.
// Reads that decide correctness (pool status at commit time, endpoint and pod on DEL) bypass these caches.

import { type KubeConfig, Watch } from "@kubernetes/client-node";
import type { KubeHttp } from "./client.ts";

/** The metadata every cached object has. */
export interface Meta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface CacheOptions {
  /** Collection path, e.g. `/api/v1/pods` or `/apis/spiderpool.spidernet.io/v2beta1/spiderippools`. */
  path: string;
  fieldSelector?: string;
  /** Full re-list period; default 5 minutes. */
  resyncMs?: number;
  /** A watch with no event or bookmark for this long is restarted; default 2 minutes. */
  watchdogMs?: number;
  log?: (message: string) => void;
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
 * restart of the watch) began meanwhile: applying an older list after a newer one would roll objects and
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

/** One resource's list + watch cache. `synced` resolves after the first successful list. */
export class ResourceCache<T extends Meta> {
  readonly #http: KubeHttp;
  readonly #watch: Watch;
  readonly #opts: Required<Omit<CacheOptions, "fieldSelector">> & { fieldSelector?: string };
  #objects = new Map<string, T>();
  #resourceVersion = "";
  #abort?: AbortController;
  #stopped = false;
  #lastEvent = 0;
  #timers: ReturnType<typeof setInterval>[] = [];
  #restarting = false;
  #generation = 0;
  #resolveSynced!: () => void;
  /** Resolves once the first list has filled the cache. */
  readonly synced: Promise<void>;
  #listeners: ((obj: T, deleted: boolean) => void)[] = [];

  constructor(kc: KubeConfig, http: KubeHttp, opts: CacheOptions) {
    this.#http = http;
    this.#watch = new Watch(kc);
    this.#opts = {
      resyncMs: 300_000,
      watchdogMs: 120_000,
      log: (m) => console.error(m),
      ...opts,
    };
    this.synced = new Promise((r) => this.#resolveSynced = r);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#objects.get(key(name, namespace));
  }

  list(): T[] {
    return [...this.#objects.values()];
  }

  /** Called for every add/update (deleted=false) and delete (deleted=true) seen by the watch or a re-list. */
  onChange(fn: (obj: T, deleted: boolean) => void): void {
    this.#listeners.push(fn);
  }

  /** Lists, then watches; retries failed lists with backoff until stop(). */
  start(): void {
    this.#stopped = false;
    void this.#restart("start");
    this.#timers.push(setInterval(() => void this.#restart("periodic re-list"), this.#opts.resyncMs));
    this.#timers.push(setInterval(() => {
      if (!this.#restarting && Date.now() - this.#lastEvent > this.#opts.watchdogMs) {
        void this.#restart(`watchdog: no watch event for ${this.#opts.watchdogMs} ms`);
      }
    }, Math.min(this.#opts.watchdogMs, 30_000)));
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    this.#abort?.abort();
    this.#abort = undefined;
  }

  async #restart(why: string): Promise<void> {
    if (this.#stopped) return;
    const generation = ++this.#generation;
    this.#abort?.abort();
    this.#abort = undefined;
    this.#restarting = true;
    let delay = 200;
    while (!this.#stopped && generation === this.#generation) {
      try {
        await this.#list(generation);
        break;
      } catch (err) {
        this.#opts.log(`cache ${this.#opts.path}: list failed (${why}): ${(err as Error).message}; retrying`);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10_000);
      }
    }
    this.#restarting = false;
    if (this.#stopped || generation !== this.#generation) return;
    this.#lastEvent = Date.now();
    await this.#startWatch(generation);
  }

  async #list(generation: number): Promise<void> {
    const sel = this.#opts.fieldSelector
      ? `?fieldSelector=${encodeURIComponent(this.#opts.fieldSelector)}`
      : "";
    const { body } = await this.#http.get<{ items: T[]; metadata?: { resourceVersion?: string } }>(
      `${this.#opts.path}${sel}`,
    );
    if (this.#stopped) return;
    const swap = swapForList(this.#objects, body.items ?? [], generation, this.#generation);
    if (!swap) return;
    this.#objects = swap.objects;
    this.#resourceVersion = body.metadata?.resourceVersion ?? "";
    for (const obj of swap.deleted) this.#emit(obj, true);
    for (const obj of swap.changed) this.#emit(obj, false);
    this.#resolveSynced();
  }

  async #startWatch(generation: number): Promise<void> {
    const params: Record<string, string | boolean> = {
      resourceVersion: this.#resourceVersion,
      allowWatchBookmarks: true,
    };
    if (this.#opts.fieldSelector) params.fieldSelector = this.#opts.fieldSelector;
    try {
      const abort = await this.#watch.watch(
        this.#opts.path,
        params,
        (phase, obj) => this.#event(generation, phase, obj),
        (err) => this.#done(generation, err),
      );
      // stop() or a restart may have happened while the watch was being opened.
      if (this.#stopped || generation !== this.#generation) abort.abort();
      else this.#abort = abort;
    } catch (err) {
      this.#done(generation, err);
    }
  }

  #event(generation: number, phase: string, obj: T & { code?: number }): void {
    if (generation !== this.#generation) return;
    this.#lastEvent = Date.now();
    const rv = obj?.metadata?.resourceVersion;
    if (phase === "ERROR") {
      // 410 Gone: our resourceVersion is too old; only a fresh list can recover.
      void this.#restart(`watch error ${obj.code ?? ""}`);
      return;
    }
    if (rv) this.#resourceVersion = rv;
    if (phase === "BOOKMARK") return;
    const k = key(obj.metadata?.name ?? "", obj.metadata?.namespace);
    if (phase === "DELETED") {
      this.#objects.delete(k);
      this.#emit(obj, true);
    } else {
      this.#objects.set(k, obj);
      this.#emit(obj, false);
    }
  }

  #done(generation: number, err: unknown): void {
    if (this.#stopped || generation !== this.#generation) return;
    if (err && (err as Error).name !== "AbortError") {
      this.#opts.log(`cache ${this.#opts.path}: watch ended: ${(err as Error).message ?? err}`);
    }
    // A watch that ends normally (server timeout) resumes from the last resourceVersion; an error re-lists.
    setTimeout(() => {
      if (this.#stopped || generation !== this.#generation) return;
      if (err) void this.#restart("watch error");
      else void this.#startWatch(generation);
    }, err ? 500 : 0);
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
