// The agent's reads and writes of pool status for its group committer (src/kube/pool_commit.ts), without a GET
// before every write: the base of the next write is the pool as this agent's last successful write returned
// it, or the watch cache's copy once the cache has shown the base and moved past it (another writer's newer
// status). After a write loses to another writer (409), the cache's next version is the base, so agents that
// share a pool do not read it after every conflict. Every write still carries the base's resourceVersion, so a
// stale base costs one 409, never a lost update: the freshness checks stay with the API server.

import type { SpiderIPPool } from "../api/types.ts";
import { ConflictError } from "../kube/client.ts";
import type { PoolIO } from "../kube/pool_commit.ts";

/** What PoolBases needs from the agent: the direct API calls and the pool cache. */
export interface PoolBaseDeps {
  getPool(name: string): Promise<SpiderIPPool>;
  writePoolStatus(pool: SpiderIPPool): Promise<SpiderIPPool>;
  /** The watch cache's copy of a pool. */
  cached(name: string): SpiderIPPool | undefined;
}

interface Base {
  pool: SpiderIPPool;
  /** The cache has shown this version: any other version it shows from now on is newer. */
  seen: boolean;
  /** Where `pool` came from: the last write's result, a newer copy from the cache, or a read. */
  source: "written" | "cache" | "read";
  /**
   * Whether `pool` may be planned on without a read: true for a write's result and a newer cache copy; false
   * for a read's result (kept only to learn when the cache moves past it) and for a version a write just
   * lost to another writer with (409), until the cache shows a newer one.
   */
  usable: boolean;
}

/** Counts of where bases came from, for tests and benchmarks. */
export interface PoolBaseStats {
  /** From the API server (GET). */
  read: number;
  /** The object the last write returned. */
  written: number;
  /** The cache's copy, newer than the last write or than the version a write lost with. */
  cache: number;
}

/**
 * PoolIO with remembered bases. Feed it the pool cache's events through `observe`.
 *
 * @example
 * ```ts
 * const bases = new PoolBases({ getPool, writePoolStatus, cached: (n) => caches.pools.get(n) });
 * caches.pools.onChange((p, deleted) => bases.observe(p, deleted));
 * const committer = new PoolCommitter(bases, plan);
 * ```
 */
export class PoolBases implements PoolIO {
  readonly #deps: PoolBaseDeps;
  readonly #bases = new Map<string, Base>();
  readonly stats: PoolBaseStats = { read: 0, written: 0, cache: 0 };

  constructor(deps: PoolBaseDeps) {
    this.#deps = deps;
  }

  /** A pool event of the watch cache (in the order the cache applied them). */
  observe(pool: SpiderIPPool, deleted: boolean): void {
    const name = pool.metadata?.name ?? "";
    const base = this.#bases.get(name);
    if (!base) return;
    if (deleted || pool.metadata?.uid !== base.pool.metadata?.uid) {
      this.#bases.delete(name);
    } else if (pool.metadata?.resourceVersion === base.pool.metadata?.resourceVersion) {
      base.seen = true;
    } else if (base.seen) {
      // The cache applies events in the API server's order: after the base, a different version is newer.
      base.pool = pool;
      base.source = "cache";
      base.usable = true;
    }
    // Before the cache shows the base, the versions it shows are older than the base: ignored.
  }

  async read(name: string): Promise<SpiderIPPool> {
    const base = this.#bases.get(name);
    const cached = this.#deps.cached(name);
    // A spec change (another generation) is read from the API server, so the plan checks the pool as it is.
    if (
      base?.usable && cached && cached.metadata?.uid === base.pool.metadata?.uid &&
      cached.metadata?.generation === base.pool.metadata?.generation
    ) {
      this.stats[base.source as "written" | "cache"]++;
      return base.pool;
    }
    this.stats.read++;
    const pool = await this.#deps.getPool(name);
    // Remembered, not used: should a write on it lose (409), the cache's next version after it is the base.
    this.#remember(name, pool, "read", false);
    return pool;
  }

  async writeStatus(pool: SpiderIPPool): Promise<void> {
    const name = pool.metadata?.name ?? "";
    try {
      this.#remember(name, await this.#deps.writePoolStatus(pool), "written", true);
    } catch (err) {
      const base = this.#bases.get(name);
      const rv = pool.metadata?.resourceVersion;
      if (err instanceof ConflictError && base && base.pool.metadata?.uid === pool.metadata?.uid) {
        // Another writer won. The cache shows that write shortly (it is often what the backoff waits for),
        // and a version it shows after the one we wrote on is newer: that is the next base, without a read.
        // If the cache has already moved past it while the write was out, that newer copy is the base now.
        if (base.pool.metadata?.resourceVersion === rv) base.usable = false;
      } else {
        // The pool is gone, or the outcome is unknown (a timeout): the next read goes to the API server.
        this.#bases.delete(name);
      }
      throw err;
    }
  }

  #remember(name: string, pool: SpiderIPPool, source: Base["source"], usable: boolean): void {
    const cached = this.#deps.cached(name);
    this.#bases.set(name, {
      pool,
      seen: cached?.metadata?.resourceVersion === pool.metadata?.resourceVersion,
      source,
      usable,
    });
  }
}
