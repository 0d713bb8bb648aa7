// RDMA metrics (§12): parsing `rdma -j` on the output shapes of iproute2 (rdma_samples.ts), the samples and
// their labels (PF/VF, pod owner), the exporter's exposition in exclusive mode with a device in a pod's
// namespace, and, for real on this machine, the tool call and a real agent on a node without RDMA.

import assert from "node:assert/strict";
import { Registry } from "../../src/agent/exposition.ts";
import {
  metricName,
  parseDevices,
  parseLinks,
  parseStats,
  parseSystem,
  podOwnerFor,
  RdmaExporter,
  RdmaOutputError,
  type RdmaRunner,
  rdmaSamples,
  readInventory,
  runRdma,
} from "../../src/agent/rdma.ts";
import { startAgent } from "../../src/agent/daemon.ts";
import type { SpiderEndpoint } from "../../src/api/types.ts";
import type { Pod } from "../../src/agent/kube.ts";
import { addNetns, delNetns, ip, shortId } from "../e2e/netns.ts";
import { scrapeMetrics } from "../e2e/node_sim.ts";
import { kubeTest, testScope } from "../kube/harness.ts";
import {
  DEV_SHOW,
  LINK_SHOW_HOST,
  LINK_SHOW_OLD,
  NO_RDMA_STDERR,
  STAT_SHOW_HOST,
  STAT_SHOW_VF,
  SYSTEM_EXCLUSIVE,
  SYSTEM_SHARED,
} from "./rdma_samples.ts";

Deno.test("rdma: devices, ports (both ifname forms), netns mode and counters are read from the JSON", () => {
  assert.deepEqual(parseDevices(DEV_SHOW).map((d) => [d.name, d.index, d.nodeGuid, d.sysImageGuid]), [
    ["mlx5_0", 0, "0c42:a103:00f5:6e7e", "0c42:a103:00f5:6e7e"],
    ["mlx5_2", 2, "0000:0000:0000:0001", "0c42:a103:00f5:6e7e"],
    ["mlx5_3", 3, "0000:0000:0000:0002", "0c42:a103:00f5:6e7e"],
  ]);
  assert.deepEqual(parseLinks(LINK_SHOW_HOST), [
    { device: "mlx5_0", port: 1, state: "ACTIVE", physicalState: "LINK_UP", netdev: "ens1f0np0" },
  ]);
  assert.deepEqual(parseLinks(LINK_SHOW_OLD).map((p) => [p.device, p.port, p.netdev]), [[
    "mlx5_2",
    1,
    "eth0",
  ]]);
  assert.equal(parseSystem(SYSTEM_SHARED), "shared");
  assert.equal(parseSystem(SYSTEM_EXCLUSIVE), "exclusive");
  const [stats] = parseStats(STAT_SHOW_HOST);
  assert.equal(stats.device, "mlx5_0");
  assert.equal(stats.port, 1);
  assert.equal(stats.counters.rx_write_requests, 2331678);
  assert.equal(stats.counters.np_cnp_sent, 7);
  assert.equal(Object.keys(stats.counters).length, 29);
  assert.equal("ifname" in stats.counters, false);
});

Deno.test("rdma: an empty list is no device; output that is not the tool's JSON is an error naming the command", () => {
  assert.deepEqual(parseDevices("[]\n"), []);
  assert.deepEqual(parseDevices(""), []);
  // Old rdma versions printed one object per line.
  assert.equal(parseDevices('{"ifindex":0,"ifname":"mlx5_0"}\n{"ifindex":1,"ifname":"mlx5_1"}\n').length, 2);
  assert.throws(() => parseStats("Failed to open"), RdmaOutputError);
  assert.throws(() => parseLinks("[1,2]"), /rdma link show printed .*expected a JSON list of objects/);
  assert.throws(() => parseSystem('[{"netns":"both"}]'), /netns" of shared or exclusive/);
});

Deno.test("rdma: metric names are rdma_ and the counter in snake case, Prometheus-safe", () => {
  assert.equal(metricName("rx_write_requests"), "rdma_rx_write_requests");
  assert.equal(metricName("rxWriteRequests"), "rdma_rx_write_requests");
  assert.equal(metricName("lifespan-ms"), "rdma_lifespan_ms");
});

const VF_OWNER = {
  podNamespace: "ai",
  podName: "trainer-0",
  ownerKind: "StatefulSet",
  ownerName: "trainer",
  ownerApiVersion: "apps/v1",
};

Deno.test("rdma: samples carry device, port, netdev, GUIDs, PF/VF and the pod owner of a device in a pod", () => {
  const samples = rdmaSamples("node-1", parseDevices(DEV_SHOW), [
    { ports: parseLinks(LINK_SHOW_HOST), stats: parseStats(STAT_SHOW_HOST) },
    { netns: "cni-1", pod: VF_OWNER, ports: parseLinks(LINK_SHOW_OLD), stats: parseStats(STAT_SHOW_VF) },
  ]);
  const writes = samples.filter((s) => s.metric === "rdma_rx_write_requests");
  assert.deepEqual(writes.map((s) => s.value), [2331678, 42]);
  assert.deepEqual(writes[0].labels, {
    node_name: "node-1",
    ifname: "mlx5_0",
    port: "1",
    net_dev_name: "ens1f0np0",
    node_guid: "0c42:a103:00f5:6e7e",
    sys_image_guid: "0c42:a103:00f5:6e7e",
    is_root: "true",
    rdma_parent_name: "ens1f0np0",
  });
  assert.deepEqual(writes[1].labels, {
    node_name: "node-1",
    ifname: "mlx5_2",
    port: "1",
    net_dev_name: "eth0",
    node_guid: "0000:0000:0000:0001",
    sys_image_guid: "0c42:a103:00f5:6e7e",
    is_root: "false",
    rdma_parent_name: "ens1f0np0",
    pod_namespace: "ai",
    pod_name: "trainer-0",
    owner_namespace: "ai",
    owner_kind: "StatefulSet",
    owner_name: "trainer",
    owner_api_version: "apps/v1",
  });
  assert.equal(samples.length, 2 * 29);
});

const endpoint = (ns: string, name: string, uid: string, ipv4: string, kind: string, owner: string) =>
  ({
    metadata: { namespace: ns, name },
    status: {
      current: { uid, node: "node-1", ips: [{ interface: "net1", ipv4 }] },
      ownerControllerType: kind,
      ownerControllerName: owner,
    },
  }) as unknown as SpiderEndpoint;

Deno.test("rdma: the pod of a device is found by its netdev's address, on the endpoints then the pods", () => {
  const eps = [
    endpoint("ai", "trainer-0", "u1", "198.51.100.7/24", "StatefulSet", "trainer"),
    endpoint("kv", "vm1", "u2", "198.51.100.8/24", "VirtualMachineInstance", "vm1"),
  ];
  const pods = [
    { metadata: { namespace: "kv", name: "virt-launcher-vm1-x", uid: "u2" } },
    {
      metadata: {
        namespace: "web",
        name: "nginx-abc",
        uid: "u3",
        ownerReferences: [{
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: "nginx-7d",
          uid: "r",
          controller: true,
        }],
      },
      status: { podIPs: [{ ip: "203.0.113.9" }] },
    },
  ] as unknown as Pod[];
  assert.deepEqual(podOwnerFor(["198.51.100.7"], eps, pods), VF_OWNER);
  assert.deepEqual(podOwnerFor(["198.51.100.8"], eps, pods), {
    podNamespace: "kv",
    podName: "virt-launcher-vm1-x",
    ownerKind: "VirtualMachineInstance",
    ownerName: "vm1",
    ownerApiVersion: "kubevirt.io/v1",
  });
  assert.deepEqual(podOwnerFor(["203.0.113.9"], eps, pods), {
    podNamespace: "web",
    podName: "nginx-abc",
    ownerKind: "ReplicaSet",
    ownerName: "nginx-7d",
    ownerApiVersion: "apps/v1",
  });
  assert.equal(podOwnerFor(["192.0.2.1"], eps, pods), undefined);
});

Deno.test("rdma: the exporter, exclusive mode: the VF in a pod's namespace is exported with the pod's labels", async () => {
  // A real namespace stands for the pod's (named, as a runtime makes them), its eth0 holding the VF's address.
  const podNs = `rdma-${shortId(8)}`;
  await addNetns(podNs);
  try {
    await ip("-n", podNs, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0");
    await ip("-n", podNs, "addr", "add", "198.51.100.7/24", "dev", "eth0");
    const recorded: RdmaRunner = (args, netns) => {
      const key = `${netns ?? "host"} ${args.join(" ")}`;
      const out: Record<string, string> = {
        "host dev show": DEV_SHOW,
        "host system show": SYSTEM_EXCLUSIVE,
        "host link show": LINK_SHOW_HOST,
        "host statistic show": STAT_SHOW_HOST,
        [`${podNs} link show`]: LINK_SHOW_OLD,
        [`${podNs} statistic show`]: STAT_SHOW_VF,
      };
      // Every other named namespace of the machine has no RDMA port.
      return Promise.resolve({ ok: true, stdout: out[key] ?? "[]", stderr: "" });
    };
    const registry = new Registry();
    const lines: string[] = [];
    const exporter = await RdmaExporter.start({
      registry,
      nodeName: "node-1",
      log: (m) => lines.push(m),
      run: recorded,
      owners: () => ({
        endpoints: [endpoint("ai", "trainer-0", "u1", "198.51.100.7/24", "StatefulSet", "trainer")],
        pods: [],
      }),
    });
    try {
      assert.ok(exporter.active);
      assert.match(lines.join("\n"), /RDMA devices mlx5_0, mlx5_2, mlx5_3 \(netns mode exclusive\)/);
      const text = await registry.scrape();
      assert.match(text, /^# TYPE rdma_rx_write_requests_total counter$/m);
      assert.match(
        text,
        /^rdma_rx_write_requests_total\{node_name="node-1",ifname="mlx5_0",port="1",net_dev_name="ens1f0np0",[^}]*is_root="true"[^}]*\} 2331678$/m,
      );
      const vf = text.split("\n").find((l) =>
        l.startsWith("rdma_rx_write_requests_total{") && l.includes("mlx5_2")
      );
      assert.ok(vf?.endsWith(" 42"), String(vf));
      for (
        const label of [
          'pod_namespace="ai"',
          'pod_name="trainer-0"',
          'owner_kind="StatefulSet"',
          'owner_name="trainer"',
        ]
      ) {
        assert.ok(vf?.includes(label), `${label} in ${vf}`);
      }
      assert.match(text, /^rdma_np_ecn_marked_roce_packets_total\{[^}]*ifname="mlx5_0"[^}]*\} 7$/m);
    } finally {
      exporter.stop();
    }
  } finally {
    await delNetns(podNs);
  }
});

Deno.test("rdma: a node whose kernel has no RDMA is 'none', with the tool's reason", async () => {
  const none: RdmaRunner = () => Promise.resolve({ ok: false, stdout: "", stderr: NO_RDMA_STDERR });
  assert.deepEqual(await readInventory(none), { kind: "none", reason: `rdma dev show: ${NO_RDMA_STDERR}` });
  const empty: RdmaRunner = () => Promise.resolve({ ok: true, stdout: "[]", stderr: "" });
  assert.deepEqual(await readInventory(empty), { kind: "none", reason: "rdma dev show lists no device" });
});

Deno.test("rdma: the real tool on this machine (Debian iproute2's rdma)", async () => {
  const version = await new Deno.Command("rdma", { args: ["-V"], stdout: "piped" }).output();
  assert.match(new TextDecoder().decode(version.stdout), /rdma utility, iproute2/);
  const inventory = await readInventory(runRdma);
  if (inventory.kind === "none") {
    // The machines of this project: no RDMA subsystem (or no device).
    assert.match(inventory.reason, /^rdma dev show: |lists no device/);
    console.log(`rdma on this machine: ${inventory.reason}`);
  } else {
    assert.ok(inventory.devices.length > 0);
    assert.ok(inventory.mode === "shared" || inventory.mode === "exclusive");
  }
});

kubeTest(
  "rdma: an agent with RDMA metrics on, on a node without RDMA, says so once and exports nothing",
  async () => {
    await using scope = await testScope("rdma-none");
    const inventory = await readInventory(runRdma);
    if (inventory.kind === "present") {
      console.log("rdma: this machine has RDMA devices; the 'none' path is covered by the unit tests only");
      return;
    }
    const { http, kc } = scope.cluster;
    const node = scope.name("node");
    await http.post("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: node } });
    scope.track(`/api/v1/nodes/${node}`);
    const dir = await Deno.makeTempDir({ prefix: "spiderpool-rdma-" });
    const lines: string[] = [];
    const agent = await startAgent({
      nodeName: node,
      socketPath: `${dir}/agent.sock`,
      kubeConfig: kc,
      metricsPort: 0,
      rdmaMetrics: true,
      log: (m) => lines.push(m),
    });
    try {
      for (let i = 0; i < 2; i++) {
        const metrics = await scrapeMetrics(agent.metricsPort!);
        assert.ok(metrics.size > 0, "the agent's own metrics are served");
        assert.deepEqual([...metrics.keys()].filter((k) => k.startsWith("rdma_")), []);
      }
      const said = lines.filter((l) => l.includes("no RDMA device on this node"));
      assert.equal(said.length, 1, lines.join("\n"));
      assert.match(
        said[0],
        /^rdma: no RDMA device on this node \(rdma dev show: .+\); RDMA metrics are not exported$/,
      );
    } finally {
      await agent.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
