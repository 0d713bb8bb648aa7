// The agent cache's decision to apply a finished list (src/kube/cache.ts): only the newest list may replace
// the cache's contents, and replacing it emits exactly the deletions and changes.

import assert from "node:assert/strict";
import { type Meta, swapForList } from "../../src/kube/cache.ts";

const obj = (name: string, resourceVersion: string, namespace?: string): Meta => ({
  metadata: { name, namespace, resourceVersion },
});

const cacheOf = (...objs: Meta[]) =>
  new Map(objs.map((o) => [`${o.metadata?.namespace ?? ""}/${o.metadata?.name}`, o]));

Deno.test("a list that finishes after a newer re-list began is discarded", () => {
  const current = cacheOf(obj("p1", "20"));
  // Generation 1's list was slow; generation 2 already started (and may have finished) meanwhile.
  assert.equal(swapForList(current, [obj("p1", "10")], 1, 2), undefined);
});

Deno.test("the newest list replaces the cache and keys objects by namespace and name", () => {
  const swap = swapForList(cacheOf(), [obj("a", "1", "ns1"), obj("a", "2", "ns2"), obj("p", "3")], 3, 3);
  assert.ok(swap);
  assert.deepEqual([...swap.objects.keys()], ["ns1/a", "ns2/a", "/p"]);
});

Deno.test("the newest list emits objects that vanished as deleted and new or changed ones as changed", () => {
  const old = cacheOf(obj("gone", "1"), obj("same", "2"), obj("edited", "3"));
  const swap = swapForList(old, [obj("same", "2"), obj("edited", "4"), obj("new", "5")], 7, 7);
  assert.ok(swap);
  assert.deepEqual(swap.deleted.map((o) => o.metadata?.name), ["gone"]);
  assert.deepEqual(swap.changed.map((o) => o.metadata?.name), ["edited", "new"]);
});
