import assert from "node:assert/strict";
import { KeyedLock } from "../../src/agent/lock.ts";

const tick = () => new Promise((r) => setTimeout(r, 1));

Deno.test("KeyedLock runs operations of one key one at a time, in arrival order", async () => {
  const lock = new KeyedLock();
  const log: string[] = [];
  const op = (name: string) =>
    lock.run("ns/pod", async () => {
      log.push(`${name} start`);
      await tick();
      log.push(`${name} end`);
      return name;
    });
  assert.deepEqual(await Promise.all([op("a"), op("b"), op("c")]), ["a", "b", "c"]);
  assert.deepEqual(log, ["a start", "a end", "b start", "b end", "c start", "c end"]);
  assert.equal(lock.size, 0);
});

Deno.test("KeyedLock lets different keys run at the same time", async () => {
  const lock = new KeyedLock();
  let running = 0, most = 0;
  const op = (key: string) =>
    lock.run(key, async () => {
      most = Math.max(most, ++running);
      await tick();
      running--;
    });
  await Promise.all([op("ns/a"), op("ns/b"), op("ns/c")]);
  assert.equal(most, 3);
});

Deno.test("KeyedLock releases the key when an operation throws", async () => {
  const lock = new KeyedLock();
  await assert.rejects(lock.run("ns/pod", () => Promise.reject(new Error("boom"))), /boom/);
  assert.equal(await lock.run("ns/pod", () => Promise.resolve(7)), 7);
  assert.equal(lock.size, 0);
});
