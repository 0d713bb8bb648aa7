// The target pod of a KubeVirt live migration is told not to check its addresses for conflicts: the source pod
// still answers for them until the migration hands over. The rule as a function, then through a real agent on
// the real control plane, with a VirtualMachineInstanceMigration object present and absent.

import assert from "node:assert/strict";
import { detectionFlagsFor, migrationJobOf } from "../../src/ipam/detection.ts";
import { topController } from "../../src/ipam/workload.ts";
import { startAgent } from "../../src/agent/daemon.ts";
import { parseAgentConfig } from "../../src/agent/config.ts";
import { AgentClient } from "../../src/agentapi/client.ts";
import { ConflictError, NotFoundError } from "../../src/kube/client.ts";
import { kubeTest, poll, testScope } from "../kube/harness.ts";
import { API_VERSION, PLURAL } from "../../src/api/constants.ts";

const VMI_OWNER = {
  apiVersion: "kubevirt.io/v1",
  kind: "VirtualMachineInstance",
  name: "vm1",
  uid: "0b7c6b8e-6f1e-4d8e-9d2a-6a1f3c2e0001",
  controller: true,
};
const ON = {
  enableIPConflictDetection: true,
  enableGatewayDetection: true,
  enableStatefulSet: true,
  enableKubevirtStaticIP: true,
};
const launcher = (annotations?: Record<string, string>, owners = [VMI_OWNER]) => ({
  metadata: { name: "virt-launcher-vm1-abcde", namespace: "ns", annotations, ownerReferences: owners },
});

Deno.test("kubevirt: a VMI's pod naming a migration job may skip conflict detection; others may not", () => {
  const target = launcher({ "kubevirt.io/migrationJobName": "mig1" });
  assert.equal(migrationJobOf(target, topController(target), ON), "mig1");
  const plain = launcher();
  assert.equal(migrationJobOf(plain, topController(plain), ON), undefined);
  const notVm = launcher({ "kubevirt.io/migrationJobName": "mig1" }, []);
  assert.equal(migrationJobOf(notVm, topController(notVm), ON), undefined, "no VMI owner");
  const off = { ...ON, enableIPConflictDetection: false };
  assert.equal(migrationJobOf(target, topController(target), off), undefined, "nothing to skip");
  const noStatic = { ...ON, enableKubevirtStaticIP: false };
  assert.equal(migrationJobOf(target, topController(target), noStatic), undefined, "not treated as a VM");
});

Deno.test("kubevirt: a migration target keeps gateway detection and loses only the conflict check", () => {
  assert.deepEqual(detectionFlagsFor(ON, true), {
    enableIPConflictDetection: false,
    enableGatewayDetection: true,
  });
  assert.deepEqual(detectionFlagsFor(ON, false), {
    enableIPConflictDetection: true,
    enableGatewayDetection: true,
  });
  const off = { enableIPConflictDetection: false, enableGatewayDetection: false };
  assert.deepEqual(detectionFlagsFor(off, false), off);
});

const VMIM_CRD = "virtualmachineinstancemigrations.kubevirt.io";

kubeTest(
  "kubevirt: the agent turns conflict detection off for a live-migration target whose migration exists",
  async () => {
    await using scope = await testScope("dt-kubevirt");
    const { http, kc } = scope.cluster;
    const ns = scope.namespace;
    // KubeVirt is not installed in the test cluster: its migration type is, for this test.
    let createdCrd = false;
    try {
      await http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", {
        apiVersion: "apiextensions.k8s.io/v1",
        kind: "CustomResourceDefinition",
        metadata: { name: VMIM_CRD },
        spec: {
          group: "kubevirt.io",
          scope: "Namespaced",
          names: {
            kind: "VirtualMachineInstanceMigration",
            listKind: "VirtualMachineInstanceMigrationList",
            plural: "virtualmachineinstancemigrations",
            singular: "virtualmachineinstancemigration",
          },
          versions: [{
            name: "v1",
            served: true,
            storage: true,
            schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } },
          }],
        },
      });
      createdCrd = true;
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
    }
    if (createdCrd) scope.track(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${VMIM_CRD}`);
    const node = scope.name("node");
    await http.post("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: node } });
    scope.track(`/api/v1/nodes/${node}`);
    const pool = scope.name("v4");
    await http.post(`/apis/${API_VERSION}/${PLURAL.ippool}`, {
      apiVersion: API_VERSION,
      kind: "SpiderIPPool",
      metadata: { name: pool },
      spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips: ["192.0.2.30-192.0.2.39"], gateway: "192.0.2.1" },
    });
    scope.track(`/apis/${API_VERSION}/${PLURAL.ippool}/${pool}`);
    const dir = await Deno.makeTempDir({ prefix: "spiderpool-kv-" });
    const agent = await startAgent({
      nodeName: node,
      socketPath: `${dir}/agent.sock`,
      kubeConfig: kc,
      config: parseAgentConfig("enableIPConflictDetection: true\nenableGatewayDetection: true\n"),
      log: () => {},
    });
    try {
      const client = new AgentClient(agent.socketPath, { timeoutMs: 60_000 });
      const owner = { ...VMI_OWNER, uid: crypto.randomUUID() };
      const podOf = async (name: string) => {
        const { body } = await http.post<{ metadata: { uid: string } }>(`/api/v1/namespaces/${ns}/pods`, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: {
            name,
            ownerReferences: [owner],
            annotations: {
              "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [pool] }),
              "kubevirt.io/migrationJobName": "mig1",
            },
          },
          spec: { nodeName: node, containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
        });
        await http.patch(
          `/api/v1/namespaces/${ns}/pods/${name}/status`,
          { status: { phase: "Running" } },
          "merge",
        );
        return body.metadata.uid;
      };
      const add = async (name: string, uid: string) => {
        const res = await client.allocate({
          containerID: crypto.randomUUID().replaceAll("-", ""),
          ifName: "eth0",
          netNamespace: "/var/run/netns/none",
          podNamespace: ns,
          podName: name,
          podUID: uid,
        });
        return res.ips.map((i) => [i.address, i.enableIPConflictDetection, i.enableGatewayDetection]);
      };

      // The migration object does not exist (yet): the target is checked as usual.
      const first = await podOf("virt-launcher-vm1-a");
      assert.deepEqual(await add("virt-launcher-vm1-a", first), [["192.0.2.30/24", true, true]]);

      const vmims = `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstancemigrations`;
      await poll(`${VMIM_CRD} served`, 30_000, async () => {
        try {
          return await http.get(vmims);
        } catch (err) {
          if (err instanceof NotFoundError) return undefined;
          throw err;
        }
      });
      await http.post(vmims, {
        apiVersion: "kubevirt.io/v1",
        kind: "VirtualMachineInstanceMigration",
        metadata: { name: "mig1" },
        spec: { vmiName: "vm1" },
      });
      // The migration target gets the VM's fixed address, without the conflict check, with the gateway check.
      const target = await podOf("virt-launcher-vm1-b");
      assert.deepEqual(await add("virt-launcher-vm1-b", target), [["192.0.2.30/24", false, true]]);
    } finally {
      await agent.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
