// Group commit of SpiderIPPool status updates, shared by the agent (ADD, DEL) and the controller's IP GC.
// Within one process, requests for the same pool queue up; one committer takes every waiting request, reads
// the pool once (the agent's PoolIO can skip that read, src/agent/pool_io.ts), lets a pure `plan` decide all of
// them together, and writes ONE status update with the read resourceVersion. Across processes, a 409 Conflict
// means another writer won: the whole batch, joined by the requests that arrived meanwhile, is re-read,
// re-planned and retried with backoff.

import { ConflictError, NotFoundError } from "./client.ts";
import type { SpiderIPPool } from "../api/types.ts";

/** Retry schedule on 409 Conflict (upstream: steps 5, 10 ms, ×1.5, jitter 0.1). */
export interface Backoff {
  steps: number;
  initialMs: number;
  factor: number;
  jitter: number;
  /** Longest delay between two attempts (before jitter); unbounded when absent. */
  maxDelayMs?: number;
}

/**
 * More steps and a wider jitter than upstream: several agents that lost to the same writer otherwise retry in
 * lockstep and collide again (with 3 agents and 300 pods, 8 steps at jitter 0.1 still exhausted a batch).
 */
export const DEFAULT_BACKOFF: Backoff = { steps: 12, initialMs: 10, factor: 1.5, jitter: 1 };

/** The outcome a plan gives each request: a value, or an error only that request sees. */
export type Outcome<R> = { ok: true; value: R } | { ok: false; error: Error };

/** What a plan decides for one batch: the new pool status (undefined = nothing changed) and one outcome each. */
export interface Plan<R> {
  status?: SpiderIPPool["status"];
  outcomes: Outcome<R>[];
}

export interface PoolIO {
  /** Reads the pool from the API server (never from a cache). */
  read(pool: string): Promise<SpiderIPPool>;
  /** Writes `pool.status` through the status subresource, with `pool.metadata.resourceVersion`. */
  writeStatus(pool: SpiderIPPool): Promise<void>;
}

/** A batch lost every retry to concurrent writers. */
export class RetriesExhaustedError extends Error {
  constructor(readonly pool: string, readonly attempts: number) {
    super(
      `exhaust all retries (${attempts} times) updating SpiderIPPool "${pool}": other writers kept ` +
        `changing it; retry later`,
    );
    this.name = "RetriesExhaustedError";
  }
}

/** A request waited past its deadline before its pool's committer took it. */
export class QueueTimeoutError extends Error {
  constructor(readonly pool: string, waitedMs: number) {
    super(`timed out after ${waitedMs} ms waiting to update SpiderIPPool "${pool}"`);
    this.name = "QueueTimeoutError";
  }
}

/** The pool does not exist (deleted after it was chosen from the cache). */
export class PoolNotFoundError extends Error {
  constructor(readonly pool: string) {
    super(`SpiderIPPool "${pool}" not found`);
    this.name = "PoolNotFoundError";
  }
}

/** The API server did not answer before the deadline of every request in the batch. */
export class CommitTimeoutError extends Error {
  constructor(readonly pool: string) {
    super(`timed out updating SpiderIPPool "${pool}": the API server did not answer in time`);
    this.name = "CommitTimeoutError";
  }
}

async function withDeadline<T>(pool: string, deadline: number, fn: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CommitTimeoutError(pool)), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([fn(), expired]);
  } finally {
    clearTimeout(timer);
  }
}

interface Waiter<Op, R> {
  op: Op;
  deadline: number;
  enqueued: number;
  resolve(v: R): void;
  reject(e: Error): void;
}

export interface CommitterHooks<Op> {
  /** A batch was taken after its requests waited `waitedMs` each. */
  admitted?(op: Op, waitedMs: number): void;
  /** A status write hit 409 Conflict; `ops` is the batch that will be retried. */
  conflict?(ops: Op[]): void;
  /** A status write succeeded. */
  written?(pool: string, ops: Op[]): void;
}

/**
 * Serialises and batches the updates of each pool. `plan` must be pure: it may be called several times for
 * the same batch (once per conflict) and must not keep state between calls.
 */
export class PoolCommitter<Op, R> {
  readonly #io: PoolIO;
  readonly #plan: (pool: SpiderIPPool, ops: Op[]) => Plan<R>;
  readonly #backoff: Backoff;
  readonly #hooks: CommitterHooks<Op>;
  readonly #queues = new Map<string, Waiter<Op, R>[]>();
  /** Largest batch taken so far, for tests and benchmarks. */
  maxBatch = 0;

  constructor(
    io: PoolIO,
    plan: (pool: SpiderIPPool, ops: Op[]) => Plan<R>,
    opts: { backoff?: Backoff; hooks?: CommitterHooks<Op> } = {},
  ) {
    this.#io = io;
    this.#plan = plan;
    this.#backoff = opts.backoff ?? DEFAULT_BACKOFF;
    this.#hooks = opts.hooks ?? {};
  }

  /** Queues `op` for `pool`; resolves with its outcome once the batch holding it is written. */
  submit(pool: string, op: Op, deadline: number): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const waiter = { op, deadline, enqueued: Date.now(), resolve, reject };
      const queue = this.#queues.get(pool);
      if (queue) {
        queue.push(waiter);
        return;
      }
      this.#queues.set(pool, [waiter]);
      void this.#drain(pool);
    });
  }

  async #drain(pool: string): Promise<void> {
    const queue = this.#queues.get(pool)!;
    try {
      // Let requests submitted in the same turn (the NICs and families of one ADD) join the first batch.
      await Promise.resolve();
      while (queue.length > 0) await this.#commit(pool, [], queue);
    } finally {
      this.#queues.delete(pool);
    }
  }

  /** Moves every waiting request of `queue` into `batch`, as admitted. */
  #admit(batch: Waiter<Op, R>[], queue: Waiter<Op, R>[]): void {
    const now = Date.now();
    for (const w of queue.splice(0)) {
      this.#hooks.admitted?.(w.op, now - w.enqueued);
      batch.push(w);
    }
  }

  async #commit(pool: string, batch: Waiter<Op, R>[], queue: Waiter<Op, R>[]): Promise<void> {
    let delay = this.#backoff.initialMs;
    for (let attempt = 1;; attempt++) {
      // Requests that arrived while the previous attempt was out (or backing off after a conflict) join this
      // one: under contention every write that lands serves more requests, so fewer writes compete.
      this.#admit(batch, queue);
      batch = this.#dropExpired(pool, batch);
      if (batch.length === 0) return;
      this.maxBatch = Math.max(this.maxBatch, batch.length);
      const ops = batch.map((w) => w.op);
      let plan: Plan<R>;
      try {
        // A hung API call must not hold the pool hostage: once every waiter's deadline has passed the batch
        // fails and the queue moves on. A write that still lands later only leaves records of pods that
        // were told the ADD failed; their retried ADD gets the same address back (same pod UID).
        const latest = Math.max(...batch.map((w) => w.deadline));
        plan = await withDeadline(pool, latest, async () => {
          const current = await this.#io.read(pool);
          const plan = this.#plan(current, ops);
          if (plan.status !== undefined) {
            await this.#io.writeStatus({ ...current, status: plan.status });
            this.#hooks.written?.(pool, ops);
          }
          return plan;
        });
      } catch (err) {
        if (err instanceof ConflictError && attempt < this.#backoff.steps) {
          this.#hooks.conflict?.(ops);
          const jitter = 1 + Math.random() * this.#backoff.jitter;
          await new Promise((r) => setTimeout(r, delay * jitter));
          delay = Math.min(delay * this.#backoff.factor, this.#backoff.maxDelayMs ?? Infinity);
          continue;
        }
        if (err instanceof ConflictError) this.#hooks.conflict?.(ops);
        const error = err instanceof ConflictError
          ? new RetriesExhaustedError(pool, attempt)
          : err instanceof NotFoundError
          ? new PoolNotFoundError(pool)
          : err as Error;
        for (const w of batch) w.reject(error);
        return;
      }
      batch.forEach((w, i) => {
        const o = plan.outcomes[i];
        if (o === undefined) {
          w.reject(new Error(`internal error: no outcome for request ${i} of pool "${pool}"`));
        } else if (o.ok) w.resolve(o.value);
        else w.reject(o.error);
      });
      return;
    }
  }

  #dropExpired(pool: string, batch: Waiter<Op, R>[]): Waiter<Op, R>[] {
    const now = Date.now();
    return batch.filter((w) => {
      if (w.deadline > now) return true;
      w.reject(new QueueTimeoutError(pool, now - w.enqueued));
      return false;
    });
  }
}
