// The NAD sync plan of the SpiderMultusConfig controller: create, no-op, drift of each kind, adoption, a NAD
// controlled by another object, a terminating NAD, and a stale reference to a same-name SpiderMultusConfig.
import assert from "node:assert/strict";
import type { OwnerReference } from "../../src/api/types.ts";
import type { NetworkAttachmentDefinition } from "../../src/multus/nad.ts";
import { nadObject, type RenderedNAD } from "../../src/multus/render.ts";
import { planNAD } from "../../src/multus/sync.ts";

const OURS: OwnerReference = {
  apiVersion: "spiderpool.spidernet.io/v2beta1",
  kind: "SpiderMultusConfig",
  name: "smc-a",
  uid: "uid-a",
  controller: true,
  blockOwnerDeletion: true,
};

const desired: RenderedNAD = {
  namespace: "ns1",
  name: "net-a",
  annotations: { "k8s.v1.cni.cncf.io/resourceName": "spidernet.io/r1" },
  ownerReference: OURS,
  config: '{"cniVersion":"0.3.1","name":"net-a","plugins":[{"type":"sriov"}]}',
};

/** The stored NAD: the rendering with `patch` on its metadata and `config` (null: no spec.config). */
function existing(
  patch: Partial<NetworkAttachmentDefinition["metadata"]>,
  config: string | null = desired.config!,
) {
  const nad = nadObject(desired);
  nad.metadata = { ...nad.metadata, resourceVersion: "42", ...patch };
  nad.spec = config === null ? undefined : { config };
  return nad;
}

Deno.test("sync plan: an absent NAD is created with its owner reference, annotations and config", () => {
  const plan = planNAD(desired, undefined);
  assert.deepEqual(plan, {
    action: "create",
    nad: {
      apiVersion: "k8s.cni.cncf.io/v1",
      kind: "NetworkAttachmentDefinition",
      metadata: {
        name: "net-a",
        namespace: "ns1",
        annotations: desired.annotations,
        ownerReferences: [OURS],
      },
      spec: { config: desired.config },
    },
  });
});

Deno.test("sync plan: a NAD equal to the rendering needs nothing", () => {
  assert.deepEqual(planNAD(desired, existing({})), { action: "none" });
});

Deno.test("sync plan: drifted config and annotations are patched back, removed annotations set to null", () => {
  const plan = planNAD(
    desired,
    existing({ annotations: { "k8s.v1.cni.cncf.io/resourceName": "other", "added-by": "someone" } }, "{}"),
  );
  assert.deepEqual(plan, {
    action: "update",
    drift: ["annotations", "config"],
    adopt: false,
    patch: {
      metadata: {
        resourceVersion: "42",
        annotations: { "k8s.v1.cni.cncf.io/resourceName": "spidernet.io/r1", "added-by": null },
      },
      spec: { config: desired.config },
    },
  });
});

Deno.test("sync plan: a config that should be absent (custom, empty customCNI) is removed", () => {
  const plan = planNAD({ ...desired, config: undefined }, existing({}));
  assert.equal(plan.action, "update");
  assert.deepEqual(plan.action === "update" && plan.patch.spec, { config: null });
  assert.deepEqual(planNAD({ ...desired, config: undefined }, existing({}, null)), { action: "none" });
});

Deno.test("sync plan: an unowned NAD is adopted (owner reference added) and overwritten", () => {
  const other: OwnerReference = { apiVersion: "v1", kind: "ConfigMap", name: "keep", uid: "u9" };
  const plan = planNAD(desired, existing({ ownerReferences: [other], annotations: {} }, "old"));
  assert.deepEqual(plan, {
    action: "update",
    drift: ["annotations", "ownerReference", "config"],
    adopt: true,
    patch: {
      metadata: { resourceVersion: "42", annotations: desired.annotations, ownerReferences: [other, OURS] },
      spec: { config: desired.config },
    },
  });
});

Deno.test("sync plan: a reference to a recreated same-name SpiderMultusConfig is replaced by the new UID", () => {
  const stale = { ...OURS, uid: "uid-old" };
  const plan = planNAD(desired, existing({ ownerReferences: [stale] }));
  assert.deepEqual(plan, {
    action: "update",
    drift: ["ownerReference"],
    adopt: false,
    patch: { metadata: { resourceVersion: "42", ownerReferences: [OURS] } },
  });
});

Deno.test("sync plan: a NAD controlled by another SpiderMultusConfig or another kind is left alone", () => {
  for (const owner of [{ ...OURS, name: "smc-b", uid: "uid-b" }, { ...OURS, kind: "Deployment" }]) {
    const plan = planNAD(desired, existing({ ownerReferences: [owner] }, "{}"));
    assert.equal(plan.action, "foreign");
    assert.equal(plan.action === "foreign" && plan.owner, owner);
    assert.match(
      plan.action === "foreign" ? plan.message : "",
      /ns1\/net-a is controlled by .*annotation multus\.spidernet\.io\/cr-name/,
    );
  }
});

Deno.test("sync plan: while the old NAD terminates, nothing is written", () => {
  const plan = planNAD(desired, existing({ deletionTimestamp: "2026-01-01T00:00:00Z" }, "{}"));
  assert.equal(plan.action, "wait");
});
