// The group committer's retry rules (src/kube/pool_commit.ts), over an in-memory pool with resourceVersion
// checks: requests that arrive while a batch backs off from a conflict join its retry, delays are capped,
// retries end.

import assert from "node:assert/strict";
import type { SpiderIPPool } from "../../src/api/types.ts";
import { type Plan, PoolCommitter, type PoolIO, RetriesExhaustedError } from "../../src/kube/pool_commit.ts";
import { ConflictError } from "../../src/kube/client.ts";

/** A pool held in memory, written only at its current resourceVersion; `conflicts` first writes are refused. */
function store(conflicts: number) {
  const s = {
    pool: {
      metadata: { name: "p", resourceVersion: "1" },
      spec: { subnet: "192.0.2.0/24" },
      status: { allocatedIPCount: 0 },
    } as SpiderIPPool,
    attempts: 0,
    writes: 0,
  };
  const io: PoolIO = {
    read: () => Promise.resolve(structuredClone(s.pool)),
    writeStatus: (p) => {
      s.attempts++;
      if (s.attempts <= conflicts || p.metadata?.resourceVersion !== s.pool.metadata?.resourceVersion) {
        return Promise.reject(new ConflictError("PUT", "/p/status", 409, "Conflict", {}));
      }
      s.writes++;
      s.pool = {
        ...p,
        metadata: { ...p.metadata, resourceVersion: `${Number(p.metadata?.resourceVersion) + 1}` },
      };
      return Promise.resolve();
    },
  };
  return { s, io };
}

/** Each op adds its number to allocatedIPCount; every op learns the batch it was written in. */
function plan(pool: SpiderIPPool, ops: number[]): Plan<number[]> {
  const sum = ops.reduce((a, b) => a + b, 0);
  return {
    status: { ...pool.status, allocatedIPCount: (pool.status?.allocatedIPCount ?? 0) + sum },
    outcomes: ops.map(() => ({ ok: true as const, value: ops })),
  };
}

Deno.test("requests that arrive while a batch backs off from a 409 join its retry: one write serves them all", async () => {
  const { s, io } = store(1);
  const late: Promise<number[]>[] = [];
  const committer: PoolCommitter<number, number[]> = new PoolCommitter(io, plan, {
    backoff: { steps: 5, initialMs: 20, factor: 1, jitter: 0 },
    hooks: {
      // Called after the refused write, before the backoff: these arrive while the batch waits.
      conflict: () => {
        if (late.length === 0) {
          late.push(
            committer.submit("p", 2, Date.now() + 10_000),
            committer.submit("p", 3, Date.now() + 10_000),
          );
        }
      },
    },
  });
  const first = await committer.submit("p", 1, Date.now() + 10_000);
  assert.deepEqual(first, [1, 2, 3]);
  assert.deepEqual(await Promise.all(late), [[1, 2, 3], [1, 2, 3]]);
  assert.equal(s.writes, 1);
  assert.equal(s.attempts, 2);
  assert.equal(s.pool.status?.allocatedIPCount, 6);
});

Deno.test("backoff delays are capped by maxDelayMs, and a batch that keeps losing fails with RetriesExhaustedError", async () => {
  const { s, io } = store(Infinity);
  // Uncapped, the delays would be 100 ms, 10 s, 1,000 s, ...
  const committer = new PoolCommitter(io, plan, {
    backoff: { steps: 5, initialMs: 100, factor: 100, jitter: 0, maxDelayMs: 100 },
  });
  const started = Date.now();
  await assert.rejects(
    committer.submit("p", 1, Date.now() + 60_000),
    (e: Error) => e instanceof RetriesExhaustedError && /exhaust all retries \(5 times\)/.test(e.message),
  );
  assert.equal(s.attempts, 5);
  assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
});
