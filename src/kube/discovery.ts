// API discovery for resources that may or may not be served (another project's CRDs, APIs of newer Kubernetes
// versions), and a list+watch cache that starts once its resource is served and stops when it goes away.
// Controllers that watch Multus, Calico or Cilium objects use it instead of failing or logging forever.

import type { KubeConfig } from "@kubernetes/client-node";
import { type Meta, ResourceCache } from "./cache.ts";
import { type KubeHttp, NotFoundError } from "./client.ts";

interface APIResourceList {
  resources?: { name: string; kind?: string; verbs?: string[] }[];
}

interface APIGroup {
  versions?: { groupVersion: string; version: string }[];
  preferredVersion?: { groupVersion: string; version: string };
}

/** The base path of a group/version: `/api/v1` for the core group, `/apis/<group>/<version>` otherwise. */
export function groupVersionPath(groupVersion: string): string {
  return groupVersion.includes("/") ? `/apis/${groupVersion}` : `/api/${groupVersion}`;
}

/** Whether the API server serves `plural` in `groupVersion` (e.g. `crd.projectcalico.org/v1`, `ippools`). */
export async function servesResource(
  http: KubeHttp,
  groupVersion: string,
  plural: string,
  signal?: AbortSignal,
): Promise<boolean> {
  try {
    const { body } = await http.get<APIResourceList>(groupVersionPath(groupVersion), { signal });
    return (body.resources ?? []).some((r) => r.name === plural);
  } catch (err) {
    if (err instanceof NotFoundError) return false;
    throw err;
  }
}

/**
 * The versions of `group` that serve `plural`, the server's preferred version first; empty when none does
 * (e.g. `networking.k8s.io` ServiceCIDRs: v1 on Kubernetes ≥ 1.33, v1beta1 or v1alpha1 before).
 */
export async function servingVersions(
  http: KubeHttp,
  group: string,
  plural: string,
  signal?: AbortSignal,
): Promise<string[]> {
  let g: APIGroup;
  try {
    g = (await http.get<APIGroup>(`/apis/${group}`, { signal })).body;
  } catch (err) {
    if (err instanceof NotFoundError) return [];
    throw err;
  }
  const preferred = g.preferredVersion?.groupVersion;
  const versions = (g.versions ?? []).map((v) => v.groupVersion)
    .sort((a, b) => (a === preferred ? -1 : b === preferred ? 1 : 0));
  const out: string[] = [];
  for (const gv of versions) {
    if (await servesResource(http, gv, plural, signal)) out.push(gv);
  }
  return out;
}

export interface OptionalCacheOptions {
  /** e.g. `cilium.io`. */
  group: string;
  plural: string;
  /** The collection path below the group/version, default `/<plural>` (cluster-wide). */
  subPath?: string;
  /** How often presence is checked again; default 30 s. */
  checkMs?: number;
  resyncMs?: number;
  log?: (message: string) => void;
}

/**
 * A ResourceCache for a resource that may not be served yet: every `checkMs` it asks discovery, starts the
 * cache (on the preferred serving version) once the resource appears, and stops and empties it when the
 * resource disappears. `onChange` listeners also hear the deletions an emptying implies.
 */
export class OptionalResourceCache<T extends Meta> {
  readonly #kc: KubeConfig;
  readonly #http: KubeHttp;
  readonly #opts: OptionalCacheOptions;
  #cache?: ResourceCache<T>;
  #version?: string;
  #timer?: ReturnType<typeof setInterval>;
  #checking?: Promise<void>;
  #listeners: ((obj: T, deleted: boolean) => void)[] = [];
  #presenceListeners: ((present: boolean) => void)[] = [];
  #synced = false;

  constructor(kc: KubeConfig, http: KubeHttp, opts: OptionalCacheOptions) {
    this.#kc = kc;
    this.#http = http;
    this.#opts = opts;
  }

  /** The group/version being watched, undefined while the resource is not served. */
  get groupVersion(): string | undefined {
    return this.#version;
  }

  /** True once the resource is served and its cache holds a first list. */
  get ready(): boolean {
    return this.#cache !== undefined && this.#synced;
  }

  list(): T[] {
    return this.#cache?.list() ?? [];
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#cache?.get(name, namespace);
  }

  onChange(fn: (obj: T, deleted: boolean) => void): void {
    this.#listeners.push(fn);
  }

  /** Called when the resource starts (after the first list) or stops being served. */
  onPresence(fn: (present: boolean) => void): void {
    this.#presenceListeners.push(fn);
  }

  start(): void {
    void this.check();
    this.#timer = setInterval(() => void this.check(), this.#opts.checkMs ?? 30_000);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#cache?.stop();
    this.#cache = undefined;
    this.#version = undefined;
    this.#synced = false;
  }

  /** Checks presence now (also done periodically); resolves once the check is done. */
  check(): Promise<void> {
    this.#checking ??= this.#check().finally(() => this.#checking = undefined);
    return this.#checking;
  }

  async #check(): Promise<void> {
    let versions: string[];
    try {
      versions = await servingVersions(this.#http, this.#opts.group, this.#opts.plural);
    } catch (err) {
      this.#opts.log?.(`discovery of ${this.#opts.plural}.${this.#opts.group}: ${(err as Error).message}`);
      return;
    }
    const want = versions[0];
    if (want === this.#version) return;
    const old = this.#cache;
    if (old) {
      old.stop();
      this.#cache = undefined;
      this.#synced = false;
      for (const obj of old.list()) this.#emit(obj, true);
    }
    this.#version = want;
    if (!want) {
      this.#opts.log?.(`${this.#opts.plural}.${this.#opts.group} is no longer served`);
      for (const fn of this.#presenceListeners) fn(false);
      return;
    }
    const cache = new ResourceCache<T>(this.#kc, this.#http, {
      path: `/apis/${want}${this.#opts.subPath ?? `/${this.#opts.plural}`}`,
      resyncMs: this.#opts.resyncMs,
      log: this.#opts.log,
    });
    cache.onChange((obj, deleted) => this.#emit(obj, deleted));
    this.#cache = cache;
    cache.start();
    // Not awaited: a list that keeps failing (e.g. forbidden) must not stop later presence checks.
    void cache.synced.then(() => {
      if (this.#cache !== cache) return;
      this.#synced = true;
      for (const fn of this.#presenceListeners) fn(true);
    });
  }

  #emit(obj: T, deleted: boolean): void {
    for (const fn of this.#listeners) {
      try {
        fn(obj, deleted);
      } catch (err) {
        this.#opts.log?.(`${this.#opts.plural}: listener failed: ${(err as Error).message}`);
      }
    }
  }
}
