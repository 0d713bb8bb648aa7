import assert from "node:assert/strict";
import {
  endpointNameFor,
  isPodAlive,
  ownerToResolve,
  type PodLike,
  topController,
} from "../../src/ipam/mod.ts";
import type { OwnerReference } from "../../src/api/types.ts";

const flags = { enableStatefulSet: true, enableKubevirtStaticIP: true };
const owner = (apiVersion: string, kind: string, name: string): OwnerReference => ({
  apiVersion,
  kind,
  name,
  uid: `uid-${name}`,
  controller: true,
});
const pod = (over: Partial<PodLike["metadata"]> = {}, rest: Omit<PodLike, "metadata"> = {}): PodLike => ({
  metadata: { name: "web-0", namespace: "default", uid: "pod-uid", ...over },
  ...rest,
});

Deno.test("isPodAlive: table of phases, restart policies and deletion", () => {
  const cases: [string, PodLike, boolean][] = [
    ["running", pod({}, { status: { phase: "Running" } }), true],
    ["pending", pod({}, { status: { phase: "Pending" } }), true],
    ["being deleted", pod({ deletionTimestamp: "2026-01-01T00:00:00Z" }), false],
    [
      "succeeded, restart OnFailure",
      pod({}, { spec: { restartPolicy: "OnFailure" }, status: { phase: "Succeeded" } }),
      false,
    ],
    [
      "succeeded, restart Always",
      pod({}, { spec: { restartPolicy: "Always" }, status: { phase: "Succeeded" } }),
      true,
    ],
    [
      "failed, restart Never",
      pod({}, { spec: { restartPolicy: "Never" }, status: { phase: "Failed" } }),
      false,
    ],
    [
      "failed, restart OnFailure",
      pod({}, { spec: { restartPolicy: "OnFailure" }, status: { phase: "Failed" } }),
      true,
    ],
    [
      "evicted",
      pod({}, { spec: { restartPolicy: "Always" }, status: { phase: "Failed", reason: "Evicted" } }),
      false,
    ],
  ];
  for (const [name, p, want] of cases) assert.equal(isPodAlive(p), want, name);
});

Deno.test("topController of an orphan pod is the pod itself", () => {
  assert.deepEqual(topController(pod()), {
    apiVersion: "v1",
    kind: "Pod",
    name: "web-0",
    namespace: "default",
    uid: "pod-uid",
  });
});

Deno.test("topController follows ReplicaSet to Deployment and Job to CronJob via the looked-up owner", () => {
  const rsPod = pod({ ownerReferences: [owner("apps/v1", "ReplicaSet", "web-5d8f")] });
  assert.equal(ownerToResolve(rsPod)?.name, "web-5d8f");
  assert.equal(topController(rsPod, [owner("apps/v1", "Deployment", "web")]).kind, "Deployment");
  assert.equal(topController(rsPod).kind, "ReplicaSet");
  const jobPod = pod({ ownerReferences: [owner("batch/v1", "Job", "backup-123")] });
  assert.equal(ownerToResolve(jobPod)?.kind, "Job");
  assert.equal(topController(jobPod, [owner("batch/v1", "CronJob", "backup")]).name, "backup");
});

Deno.test("topController returns StatefulSet, DaemonSet and third-party owners directly", () => {
  for (
    const [apiVersion, kind] of [["apps/v1", "StatefulSet"], ["apps/v1", "DaemonSet"], [
      "kubevirt.io/v1",
      "VirtualMachineInstance",
    ], ["argoproj.io/v1alpha1", "Rollout"]]
  ) {
    const p = pod({ ownerReferences: [owner(apiVersion, kind, "x")] });
    assert.equal(ownerToResolve(p), undefined);
    assert.deepEqual(topController(p), { apiVersion, kind, name: "x", namespace: "default", uid: "uid-x" });
  }
});

Deno.test("topController ignores owner references that are not the controller", () => {
  const p = pod({ ownerReferences: [{ ...owner("apps/v1", "StatefulSet", "db"), controller: false }] });
  assert.equal(topController(p).kind, "Pod");
});

Deno.test("endpointNameFor is the VMI name for KubeVirt pods with fixed IPs, else the pod name", () => {
  const p = pod({
    name: "virt-launcher-vm1-abcde",
    ownerReferences: [owner("kubevirt.io/v1", "VirtualMachineInstance", "vm1")],
  });
  const top = topController(p);
  assert.equal(endpointNameFor(p, top, flags), "vm1");
  assert.equal(
    endpointNameFor(p, top, { ...flags, enableKubevirtStaticIP: false }),
    "virt-launcher-vm1-abcde",
  );
  assert.equal(endpointNameFor(pod(), topController(pod()), flags), "web-0");
});
