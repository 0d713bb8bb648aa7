// Which SpiderCoordinator the agent serves on `GET /v1/coordinator/config`, and what it says when none can be.

import assert from "node:assert/strict";
import { coordinatorConfigFor, pickCoordinator } from "../../src/agent/coordinator.ts";
import type { SpiderCoordinator } from "../../src/api/types.ts";

const coord = (name: string, o: { deleting?: boolean; phase?: string } = {}): SpiderCoordinator => ({
  apiVersion: "spiderpool.spidernet.io/v2beta1",
  kind: "SpiderCoordinator",
  metadata: {
    name,
    ...(o.deleting
      ? { deletionTimestamp: "2026-01-01T00:00:00Z", finalizers: ["spiderpool.spidernet.io"] }
      : {}),
  },
  spec: {},
  status: { phase: o.phase ?? "Synced", overlayPodCIDR: [], serviceCIDR: [] },
} as SpiderCoordinator);

Deno.test("pickCoordinator: `default` first, else the first by name", () => {
  assert.equal(pickCoordinator([coord("b"), coord("default"), coord("a")])?.metadata.name, "default");
  assert.equal(pickCoordinator([coord("b"), coord("a")])?.metadata.name, "a");
  assert.equal(pickCoordinator([]), undefined);
});

Deno.test("pickCoordinator: a SpiderCoordinator being deleted is skipped, `default` included", () => {
  assert.equal(pickCoordinator([coord("default", { deleting: true }), coord("b")])?.metadata.name, "b");
  assert.equal(pickCoordinator([coord("a", { deleting: true }), coord("b")])?.metadata.name, "b");
  assert.equal(pickCoordinator([coord("default", { deleting: true })]), undefined);
});

Deno.test("coordinatorConfigFor: with only terminating coordinators the error says they are being deleted", () => {
  const list = [coord("default", { deleting: true })];
  assert.throws(
    () => coordinatorConfigFor(pickCoordinator(list), undefined, list),
    /SpiderCoordinator "default" is being deleted; create SpiderCoordinator "default" again/,
  );
  assert.throws(() => coordinatorConfigFor(undefined, undefined), /there is no SpiderCoordinator/);
});
