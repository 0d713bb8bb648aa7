// The agent's pool bases (src/agent/pool_io.ts): which version of a pool the next status write is planned on —
// the API server's, the last write's result, or the watch cache's once it has moved past that write.

import assert from "node:assert/strict";
import type { SpiderIPPool } from "../../src/api/types.ts";
import { PoolBases } from "../../src/agent/pool_io.ts";
import { ConflictError } from "../../src/kube/client.ts";

function pool(rv: number, opts: { generation?: number; uid?: string; note?: string } = {}): SpiderIPPool {
  return {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderIPPool",
    metadata: {
      name: "p",
      uid: opts.uid ?? "u1",
      generation: opts.generation ?? 1,
      resourceVersion: `${rv}`,
    },
    spec: { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] },
    status: { allocatedIPCount: rv, ...(opts.note ? { allocatedIPs: opts.note } : {}) },
  } as SpiderIPPool;
}

/** PoolBases over an API server and a cache held in variables; counts GETs and PUTs. */
function world(server: SpiderIPPool) {
  const w = {
    server,
    cache: pool(1) as SpiderIPPool | undefined,
    gets: 0,
    puts: 0,
    bases: undefined as unknown as PoolBases,
  };
  w.bases = new PoolBases({
    getPool: () => {
      w.gets++;
      return Promise.resolve(w.server);
    },
    writePoolStatus: (p) => {
      w.puts++;
      if (p.metadata?.resourceVersion !== w.server.metadata?.resourceVersion) {
        return Promise.reject(new ConflictError("PUT", "/p/status", 409, "Conflict", {}));
      }
      w.server = {
        ...p,
        metadata: { ...p.metadata, resourceVersion: `${Number(p.metadata?.resourceVersion) + 1}` },
      };
      return Promise.resolve(w.server);
    },
    cached: () => w.cache,
  });
  return w;
}

Deno.test("with no write of its own yet, the base is read from the API server", async () => {
  const w = world(pool(5));
  assert.equal((await w.bases.read("p")).metadata?.resourceVersion, "5");
  assert.equal(w.gets, 1);
});

Deno.test("after a write, the next base is the write's result: no read", async () => {
  const w = world(pool(5));
  await w.bases.writeStatus(await w.bases.read("p"));
  const next = await w.bases.read("p");
  assert.equal(next.metadata?.resourceVersion, "6");
  assert.equal(w.gets, 1);
  assert.deepEqual(w.bases.stats, { read: 1, written: 1, cache: 0 });
});

Deno.test("cache versions older than the write are ignored; after the cache shows the write, a newer one becomes the base", async () => {
  const w = world(pool(5));
  await w.bases.writeStatus(await w.bases.read("p"));
  w.bases.observe(pool(4), false); // the cache is still behind our write
  assert.equal((await w.bases.read("p")).metadata?.resourceVersion, "6");
  w.bases.observe(pool(6), false); // it shows our write
  assert.equal((await w.bases.read("p")).metadata?.resourceVersion, "6");
  const other = pool(7, { note: "another agent's records" });
  w.bases.observe(other, false); // another writer's status, newer than ours
  assert.equal(await w.bases.read("p"), other);
  assert.equal(w.bases.stats.cache, 1);
  assert.equal(w.gets, 1);
});

Deno.test("after a 409, the base is the cache's next version: no read once the cache shows the winner's write", async () => {
  const w = world(pool(5));
  await w.bases.writeStatus(await w.bases.read("p"));
  w.bases.observe(pool(6), false); // the cache shows our write
  w.server = pool(9, { note: "another agent's records" }); // someone else wrote
  await assert.rejects(w.bases.writeStatus(await w.bases.read("p")), ConflictError);
  w.bases.observe(w.server, false); // the cache shows the other write
  assert.equal(await w.bases.read("p"), w.server);
  assert.equal(w.gets, 1);
  await w.bases.writeStatus(await w.bases.read("p"));
  assert.equal(w.server.metadata?.resourceVersion, "10");
});

Deno.test("after a 409, the version the write lost with is never the base again: the API server is read until the cache moves on", async () => {
  const w = world(pool(5));
  await w.bases.writeStatus(await w.bases.read("p"));
  w.bases.observe(pool(6), false);
  w.server = pool(9);
  await assert.rejects(w.bases.writeStatus(await w.bases.read("p")), ConflictError);
  // The cache has not shown the other write yet.
  assert.equal((await w.bases.read("p")).metadata?.resourceVersion, "9");
  assert.equal(w.gets, 2);
});

Deno.test("a 409 on a base read from the API server: the cache's first version after that read is the next base", async () => {
  const w = world(pool(5));
  w.cache = pool(4);
  const read = await w.bases.read("p"); // the cache is behind the read
  w.server = pool(7);
  await assert.rejects(w.bases.writeStatus(read), ConflictError);
  w.bases.observe(pool(5), false); // the cache reaches the version read ...
  w.bases.observe(pool(7), false); // ... and then shows the other write
  assert.equal((await w.bases.read("p")).metadata?.resourceVersion, "7");
  assert.equal(w.gets, 1);
});

Deno.test("a 409 while the cache already moved past the base during the write: that newer copy is the next base", async () => {
  const w = world(pool(5));
  await w.bases.writeStatus(await w.bases.read("p"));
  w.bases.observe(pool(6), false);
  const base = await w.bases.read("p");
  w.server = pool(8);
  w.bases.observe(pool(8), false); // arrives while our write (on 6) is out
  await assert.rejects(w.bases.writeStatus(base), ConflictError);
  assert.equal((await w.bases.read("p")).metadata?.resourceVersion, "8");
  assert.equal(w.gets, 1);
});

Deno.test("a spec change (another generation or UID in the cache) is read from the API server", async () => {
  const w = world(pool(5));
  await w.bases.writeStatus(await w.bases.read("p"));
  w.cache = pool(7, { generation: 2 });
  w.server = pool(7, { generation: 2 });
  assert.equal((await w.bases.read("p")).metadata?.generation, 2);
  assert.equal(w.gets, 2);
});

Deno.test("a pool deleted (or recreated under another UID) forgets its base", async () => {
  const w = world(pool(5));
  await w.bases.writeStatus(await w.bases.read("p"));
  w.bases.observe(pool(6), true);
  await w.bases.read("p");
  assert.equal(w.gets, 2);
  await w.bases.writeStatus(await w.bases.read("p"));
  w.bases.observe(pool(8, { uid: "u2" }), false);
  w.cache = pool(8, { uid: "u2" });
  await w.bases.read("p");
  assert.equal(w.gets, 4);
});

Deno.test("a write that failed otherwise (its outcome unknown) also drops the base", async () => {
  let fail = false;
  const bases = new PoolBases({
    getPool: () => Promise.resolve(pool(6)),
    writePoolStatus: (p) => fail ? Promise.reject(new Error("timeout")) : Promise.resolve(p),
    cached: () => pool(1),
  });
  await bases.writeStatus(pool(6));
  await bases.read("p");
  fail = true;
  await assert.rejects(bases.writeStatus(pool(6)), /timeout/);
  await bases.read("p");
  assert.deepEqual(bases.stats, { read: 1, written: 1, cache: 0 });
});
