// The agent's reads and writes of pool status for its group committer (src/kube/pool_commit.ts), without a GET
// before every write: the base of the next write is the pool as this agent's last successful write returned
// it, or the watch cache's copy once the cache has shown that write and moved past it (another writer's newer
// status). Every write still carries the base's resourceVersion, so a stale base costs one 409 (after which
// the pool is read from the API server), never a lost update: the freshness checks stay with the API server.

import type { SpiderIPPool } from "../api/types.ts";
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
  /** The cache has shown this write: any other version it shows from now on is newer. */
  seen: boolean;
  /** Whether `pool` is what the write returned or a newer copy from the cache. */
  source: "written" | "cache";
}

/** Counts of where bases came from, for tests and benchmarks. */
export interface PoolBaseStats {
  /** From the API server (GET). */
  read: number;
  /** The object the last write returned. */
  written: number;
  /** The cache's copy, newer than the last write. */
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
      // The cache applies events in the API server's order: after our write, a different version is newer.
      base.pool = pool;
      base.source = "cache";
    }
    // Before the cache shows our write, the versions it shows are older than our base: ignored.
  }

  async read(name: string): Promise<SpiderIPPool> {
    const base = this.#bases.get(name);
    const cached = this.#deps.cached(name);
    // A spec change (another generation) is read from the API server, so the plan checks the pool as it is.
    if (
      base && cached && cached.metadata?.uid === base.pool.metadata?.uid &&
      cached.metadata?.generation === base.pool.metadata?.generation
    ) {
      this.stats[base.source]++;
      return base.pool;
    }
    this.stats.read++;
    return await this.#deps.getPool(name);
  }

  async writeStatus(pool: SpiderIPPool): Promise<void> {
    const name = pool.metadata?.name ?? "";
    try {
      const written = await this.#deps.writePoolStatus(pool);
      const cached = this.#deps.cached(name);
      this.#bases.set(name, {
        pool: written,
        seen: cached?.metadata?.resourceVersion === written.metadata?.resourceVersion,
        source: "written",
      });
    } catch (err) {
      // Someone else wrote, the pool is gone, or the outcome is unknown (a timeout): the next read goes to the
      // API server.
      this.#bases.delete(name);
      throw err;
    }
  }
}
