// The application controller's reads and writes: fresh reads of subnets, pools and applications, and writes
// that are refused locally unless this replica is leader at the moment they are sent (a synchronous check)
// and that carry the term's abort signal, counted in the auto-pool metrics. Implements the AutoPoolIO of
// src/ipam/autopool_ensure.ts.

import { API_VERSION, KIND } from "../../api/constants.ts";
import type { SpiderIPPool, SpiderReservedIP, SpiderSubnet } from "../../api/types.ts";
import type { Family, IPRangeSet } from "../../ip/mod.ts";
import { reservedAddresses } from "../../ipam/autopool.ts";
import type { AutoPoolIO } from "../../ipam/autopool_ensure.ts";
import { ConflictError, type KubeHttp, KubeHttpError, NotFoundError } from "../../kube/client.ts";
import { type Leadership, NotLeaderError, POOLS, SUBNETS } from "../reconcile/kube.ts";
import type { AutoPoolMetrics, AutoPoolWrite } from "./metrics.ts";

const enc = encodeURIComponent;

/** Runs functions one at a time per key, in arrival order. */
class KeyedMutex {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => release = r);
    const tail = before.then(() => mine);
    this.#tails.set(key, tail);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

export interface ControllerIOOptions {
  http: KubeHttp;
  leadership: Leadership;
  metrics: AutoPoolMetrics;
  pools: () => readonly SpiderIPPool[];
  reservedIPs: () => readonly SpiderReservedIP[];
  /** The cached subnet of that name, if a cache is kept. */
  subnets?: (name: string) => SpiderSubnet | undefined;
}

/** The later of two copies of one object by resourceVersion (etcd revisions, compared as numbers). */
function newer<T extends { metadata?: { resourceVersion?: string } }>(a?: T, b?: T): T | undefined {
  const rv = (o?: T) => {
    const v = o?.metadata?.resourceVersion;
    return v !== undefined && /^\d+$/.test(v) ? BigInt(v) : -1n;
  };
  if (a === undefined) return b;
  if (b === undefined) return a;
  return rv(b) > rv(a) ? b : a;
}

/** An admission refusal of a pool write that names the subnet's pre-allocation (see staleAdmission). */
export function isStaleAdmission(err: unknown): boolean {
  return err instanceof KubeHttpError && err.status === 422 && /pre-allocated/.test(err.message);
}

export class ControllerIO implements AutoPoolIO {
  readonly #o: ControllerIOOptions;
  readonly #subnets = new KeyedMutex();
  /** Subnet name → the subnet as this process's last status write returned it. */
  readonly #latest = new Map<string, SpiderSubnet>();

  constructor(opts: ControllerIOOptions) {
    this.#o = opts;
  }

  get http(): KubeHttp {
    return this.#o.http;
  }

  /** Uncached GET; undefined when absent. */
  async get<T>(path: string): Promise<T | undefined> {
    try {
      return (await this.#o.http.get<T>(path, { signal: this.#o.leadership.signal })).body;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  async getSubnet(name: string, fresh = true): Promise<SpiderSubnet | undefined> {
    if (!fresh) {
      // The newer of the cached copy and this process's own last write (resourceVersions are etcd revisions).
      const cached = this.#o.subnets?.(name);
      const mine = this.#latest.get(name);
      const newest = newer(cached, mine);
      if (newest !== undefined) return newest;
    }
    const now = await this.get<SpiderSubnet>(`${SUBNETS}/${enc(name)}`);
    if (now === undefined) this.#latest.delete(name);
    return now;
  }

  getPool(name: string): Promise<SpiderIPPool | undefined> {
    return this.get<SpiderIPPool>(`${POOLS}/${enc(name)}`);
  }

  pools(): readonly SpiderIPPool[] {
    return this.#o.pools();
  }

  reserved(family: Family): IPRangeSet {
    return reservedAddresses(this.#o.reservedIPs(), family);
  }

  async patchSubnetStatus(
    name: string,
    resourceVersion: string | undefined,
    status: { controlledIPPools: string | null; totalIPCount: number; allocatedIPCount: number },
  ): Promise<SpiderSubnet> {
    const written = await this.#write("subnet_status", (signal) =>
      this.#o.http.patch<SpiderSubnet>(
        `${SUBNETS}/${enc(name)}/status`,
        { metadata: { resourceVersion }, status },
        "merge",
        { signal },
      ));
    this.#latest.set(name, written);
    return written;
  }

  createPool(pool: SpiderIPPool): Promise<SpiderIPPool> {
    return this.#write(
      "ippool_create",
      (signal) => this.#o.http.post<SpiderIPPool>(POOLS, { ...pool, apiVersion: API_VERSION }, { signal }),
    );
  }

  patchPool(name: string, patch: Record<string, unknown>): Promise<SpiderIPPool> {
    return this.#write(
      "ippool_update",
      (signal) => this.#o.http.patch<SpiderIPPool>(`${POOLS}/${enc(name)}`, patch, "merge", { signal }),
    );
  }

  /** Deletes a pool if it still has `uid` (absent is fine): its finalizer keeps it until its IPs are released. */
  async deletePool(pool: SpiderIPPool): Promise<void> {
    try {
      await this.#write(
        "ippool_delete",
        (signal) =>
          this.#o.http.delete(`${POOLS}/${enc(pool.metadata?.name ?? "")}`, {
            apiVersion: "v1",
            kind: "DeleteOptions",
            preconditions: { uid: pool.metadata?.uid },
          }, { signal }),
      );
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  withSubnet<T>(subnet: string, fn: () => Promise<T>): Promise<T> {
    return this.#subnets.run(subnet, fn);
  }

  conflict(err: unknown): boolean {
    return err instanceof ConflictError;
  }

  staleAdmission(err: unknown): boolean {
    return isStaleAdmission(err);
  }

  sleep(ms: number): Promise<void> {
    const signal = this.#o.leadership.signal;
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });
  }

  async #write<T>(
    kind: AutoPoolWrite,
    send: (signal: AbortSignal | undefined) => Promise<{ body: T }>,
  ): Promise<T> {
    // isLeader() first: it may end the term (and abort its signal) right here.
    if (!this.#o.leadership.isLeader() || this.#o.leadership.signal?.aborted) {
      throw new NotLeaderError(`${kind} (${KIND.ippool}/${KIND.subnet})`);
    }
    this.#o.metrics.wrote(kind);
    try {
      return (await send(this.#o.leadership.signal)).body;
    } catch (err) {
      if (err instanceof ConflictError) this.#o.metrics.conflicted(kind);
      throw err;
    }
  }
}
