// The SpiderMultusConfig controller against the real API server, led by a real Lease elector: a NAD for every
// cniType with the expected config (each loaded by libcni), drift repaired, deleted NADs recreated, unowned NADs
// adopted, NADs of another owner left alone with a Warning Event, terminating NADs waited for, NADs garbage
// collected with their SpiderMultusConfig, invalid objects reported, and nothing written when converged or
// when not leading.
import assert from "node:assert/strict";
import type { MultusCNIConfigSpec } from "../../src/api/types.ts";
import { eventsAbout } from "../../src/controller/reconcile/events.ts";
import { nadPath } from "../../src/multus/nad.ts";
import { installCrds, MULTUS_CRD_DIR } from "../kube/crds.ts";
import { kubeTest, poll, type TestScope, testScope } from "../kube/harness.ts";
import { createSMC, getNAD, libcniLoad, multusController, nadWhere, smcsPath } from "./kit.ts";

/** The coordinator block the webhook adds, with the CRD's txQueueLen default the API server fills in. */
const COORD = '{"txQueueLen":0,"tunePodRoutes":true,"mode":"auto","type":"coordinator","podRPFilter":0}';
const IPAM = '{"type":"spiderpool"}';
const conflist = (name: string, plugins: string[], version = "0.3.1") =>
  `{"cniVersion":"${version}","name":"${name}","plugins":[${plugins.join(",")}]}`;
const BRIDGE_CONF =
  '{"cniVersion":"0.4.0","name":"custom-br","plugins":[{"type":"bridge","bridge":"cni-sp0"}]}';

interface Case {
  name: string;
  spec: MultusCNIConfigSpec;
  config: string;
  types: string[];
  annotations?: Record<string, string>;
}

const cases: Case[] = [
  {
    name: "macvlan",
    spec: { cniType: "macvlan", macvlan: { master: ["eth0"], vlanID: 100, ippools: { ipv4: ["v4"] } } },
    config: conflist("macvlan", [
      '{"vlanID":100,"type":"ifacer","interfaces":["eth0"]}',
      '{"type":"macvlan","master":"eth0.100","mode":"bridge","mtu":0,' +
      '"ipam":{"type":"spiderpool","default_ipv4_ippool":["v4"]}}',
      COORD,
    ]),
    types: ["ifacer", "macvlan", "coordinator"],
  },
  {
    name: "ipvlan",
    spec: { cniType: "ipvlan", ipvlan: { master: ["eth1"] } },
    config: conflist("ipvlan", [`{"type":"ipvlan","master":"eth1","mtu":0,"ipam":${IPAM}}`, COORD]),
    types: ["ipvlan", "coordinator"],
  },
  {
    name: "vlan",
    spec: { cniType: "vlan", vlan: { master: ["eth2"], vlanID: 20 } },
    config: conflist("vlan", [
      `{"type":"vlan","master":"eth2","vlanMode":"manual","vlanId":20,"mtu":0,"ipam":${IPAM}}`,
      COORD,
    ]),
    types: ["vlan", "coordinator"],
  },
  {
    name: "sriov",
    spec: { cniType: "sriov", sriov: { resourceName: "spidernet.io/sriov1", rdmaIsolation: true } },
    config: conflist("sriov", [
      `{"vlan":0,"min_tx_rate":0,"max_tx_rate":0,"type":"sriov","ipam":${IPAM}}`,
      '{"type":"rdma"}',
      COORD,
    ]),
    types: ["sriov", "rdma", "coordinator"],
    annotations: { "k8s.v1.cni.cncf.io/resourceName": "spidernet.io/sriov1" },
  },
  {
    name: "ib-sriov",
    spec: { cniType: "ib-sriov", ibsriov: { resourceName: "spidernet.io/ib1" } },
    config: conflist("ib-sriov", [
      '{"type":"ib-sriov","pkey":"","link_state":"enable","rdmaIsolation":true,"ibKubernetesEnabled":false,' +
      `"ipam":${IPAM}}`,
      COORD,
    ]),
    types: ["ib-sriov", "coordinator"],
    annotations: { "k8s.v1.cni.cncf.io/resourceName": "spidernet.io/ib1" },
  },
  {
    name: "ipoib",
    spec: { cniType: "ipoib", ipoib: { master: "ib0" } },
    config: conflist("ipoib", [`{"type":"ipoib","master":"ib0","ipam":${IPAM}}`, COORD]),
    types: ["ipoib", "coordinator"],
  },
  {
    name: "ovs",
    spec: { cniType: "ovs", ovs: { bridge: "br1" } },
    config: conflist("ovs", [`{"vlan":0,"type":"ovs","bridge":"br1","ipam":${IPAM}}`, COORD]),
    types: ["ovs", "coordinator"],
  },
  {
    name: "custom",
    spec: { cniType: "custom", customCNI: BRIDGE_CONF },
    config: BRIDGE_CONF,
    types: ["bridge"],
  },
];

async function smcUID(scope: TestScope, name: string): Promise<string> {
  const { body } = await scope.cluster.http.get<{ metadata: { uid: string } }>(
    `${smcsPath(scope.namespace)}/${name}`,
  );
  return body.metadata.uid;
}

function ownedBy(uid: string) {
  return (nad: { metadata: { ownerReferences?: { uid: string; controller?: boolean }[] } }) =>
    nad.metadata.ownerReferences?.some((r) => r.uid === uid && r.controller === true) === true;
}

async function eventReasons(scope: TestScope, name: string): Promise<string[]> {
  const events = await eventsAbout(scope.cluster.http, {
    kind: "SpiderMultusConfig",
    name,
    namespace: scope.namespace,
  });
  return events.map((e) => e.reason);
}

kubeTest(
  "multus controller: every cniType gets its NAD with the expected config, and libcni loads each",
  async () => {
    await using scope = await testScope("smc-types", { serviceAccount: false });
    await using _replica = await multusController(scope);
    for (const c of cases) await createSMC(scope, c.name, c.spec);
    for (const c of cases) {
      const uid = await smcUID(scope, c.name);
      const nad = await nadWhere(scope, c.name, "to be rendered", (n) => n.spec?.config !== undefined);
      assert.equal(nad.spec?.config, c.config, `${c.name}: spec.config`);
      assert.deepEqual(nad.metadata.ownerReferences, [{
        apiVersion: "spiderpool.spidernet.io/v2beta1",
        kind: "SpiderMultusConfig",
        name: c.name,
        uid,
        controller: true,
        blockOwnerDeletion: true,
      }]);
      assert.deepEqual(nad.metadata.annotations ?? {}, c.annotations ?? {});
      const loaded = await libcniLoad(nad.spec!.config!);
      assert.deepEqual(
        loaded.plugins.map((p) => p.type),
        c.types,
        `${c.name}: plugins as libcni reads them`,
      );
      assert.equal(loaded.name, c.name === "custom" ? "custom-br" : c.name);
    }
  },
);

kubeTest(
  "multus controller: drifted NADs are repaired, deleted ones recreated, SMC changes followed",
  async () => {
    await using scope = await testScope("smc-drift", { serviceAccount: false });
    await using replica = await multusController(scope);
    const { http } = scope.cluster;
    await createSMC(scope, "net", { cniType: "ipvlan", ipvlan: { master: ["eth1"] } }, {
      "example.com/team": "a",
    });
    const uid = await smcUID(scope, "net");
    const want = conflist("net", [`{"type":"ipvlan","master":"eth1","mtu":0,"ipam":${IPAM}}`, COORD]);
    await nadWhere(scope, "net", "to be created", (n) => n.spec?.config === want);

    await http.patch(nadPath(scope.namespace, "net"), {
      metadata: { annotations: { "example.com/team": "b", "example.com/extra": "x" }, ownerReferences: null },
      spec: { config: '{"cniVersion":"0.3.1","name":"net","plugins":[{"type":"bridge"}]}' },
    }, "merge");
    const repaired = await nadWhere(
      scope,
      "net",
      "to be repaired",
      (n) =>
        n.spec?.config === want && ownedBy(uid)(n) && n.metadata.annotations?.["example.com/team"] === "a",
    );
    assert.deepEqual(repaired.metadata.annotations, { "example.com/team": "a" });

    const before = repaired.metadata.uid;
    await http.delete(nadPath(scope.namespace, "net"));
    const recreated = await nadWhere(scope, "net", "to be recreated", (n) => n.metadata.uid !== before);
    assert.equal(recreated.spec?.config, want);

    await http.patch(`${smcsPath(scope.namespace)}/net`, {
      metadata: { annotations: { "multus.spidernet.io/cni-version": "1.0.0" } },
      spec: { ipvlan: { master: ["eth9"] } },
    }, "merge");
    const changed = await nadWhere(
      scope,
      "net",
      "to follow the SMC",
      (n) => n.spec?.config?.includes("eth9") === true,
    );
    assert.equal(
      changed.spec?.config,
      conflist("net", [`{"type":"ipvlan","master":"eth9","mtu":0,"ipam":${IPAM}}`, COORD], "1.0.0"),
    );
    assert.equal(changed.metadata.annotations?.["multus.spidernet.io/cni-version"], "1.0.0");
    const reasons = await eventReasons(scope, "net");
    assert.ok(reasons.includes("NetworkAttachmentDefinitionCreated"), reasons.join());
    assert.ok(reasons.includes("NetworkAttachmentDefinitionUpdated"), reasons.join());
    assert.ok(replica.metrics.writes.nad_create >= 2 && replica.metrics.writes.nad_update >= 2);
  },
);

kubeTest(
  "multus controller: an unowned NAD is adopted and overwritten; another SMC's NAD is left alone",
  async () => {
    await using scope = await testScope("smc-own", { serviceAccount: false });
    const { http } = scope.cluster;
    await http.post(nadPath(scope.namespace), {
      apiVersion: "k8s.cni.cncf.io/v1",
      kind: "NetworkAttachmentDefinition",
      metadata: { name: "adopt-me", annotations: { "made-by": "hand" } },
      spec: { config: '{"cniVersion":"0.3.1","name":"adopt-me","type":"bridge"}' },
    });
    await using _replica = await multusController(scope);
    await createSMC(scope, "adopt-me", { cniType: "ovs", ovs: { bridge: "br0" }, enableCoordinator: false });
    const uid = await smcUID(scope, "adopt-me");
    const adopted = await nadWhere(scope, "adopt-me", "to be adopted", ownedBy(uid));
    assert.equal(
      adopted.spec?.config,
      conflist("adopt-me", [`{"vlan":0,"type":"ovs","bridge":"br0","ipam":${IPAM}}`]),
    );
    assert.equal(adopted.metadata.annotations, undefined, "the hand-made annotation is overwritten");
    assert.ok((await eventReasons(scope, "adopt-me")).includes("NetworkAttachmentDefinitionAdopted"));

    const shared = { "multus.spidernet.io/cr-name": "shared" };
    await createSMC(scope, "first", { cniType: "ipoib", ipoib: { master: "ib0" } }, shared);
    const firstUID = await smcUID(scope, "first");
    const first = await nadWhere(scope, "shared", "to belong to the first SMC", ownedBy(firstUID));
    await createSMC(scope, "second", { cniType: "ipoib", ipoib: { master: "ib1" } }, shared);
    const warning = await poll("a Warning Event about the second SMC", 30_000, async () => {
      const events = await eventsAbout(http, {
        kind: "SpiderMultusConfig",
        name: "second",
        namespace: scope.namespace,
      });
      return events.find((e) => e.reason === "NetworkAttachmentDefinitionConflict");
    });
    assert.equal(warning.type, "Warning");
    assert.match(warning.message, /shared is controlled by SpiderMultusConfig "first"/);
    const after = await getNAD(scope, "shared");
    assert.equal(after?.metadata.resourceVersion, first.metadata.resourceVersion, "the NAD is not touched");
  },
);

kubeTest("multus controller: a terminating NAD is waited for, then created again", async () => {
  await using scope = await testScope("smc-term", { serviceAccount: false });
  const { http } = scope.cluster;
  await using replica = await multusController(scope);
  await createSMC(scope, "term", {
    cniType: "ipvlan",
    ipvlan: { master: ["eth1"] },
    enableCoordinator: false,
  });
  const nad = await nadWhere(scope, "term", "to be created", (n) => n.spec?.config !== undefined);
  const path = nadPath(scope.namespace, "term");
  await http.patch(path, { metadata: { finalizers: ["example.com/hold"] } }, "merge");
  await http.delete(path);
  await poll("the controller to wait for the terminating NAD", 30_000, async () => {
    const metrics = await replica.multusMetrics.registry.getSingleMetricAsString(
      "spiderpool_multusconfig_nad_sync_counts_total",
    );
    return /result="waiting"} [1-9]/.test(metrics) || undefined;
  });
  const waiting = await getNAD(scope, "term");
  assert.equal(waiting?.metadata.uid, nad.metadata.uid, "the old NAD is still there");
  assert.ok(waiting?.metadata.deletionTimestamp);
  await http.patch(path, { metadata: { finalizers: null } }, "merge");
  const again = await nadWhere(
    scope,
    "term",
    "to be created again",
    (n) => n.metadata.uid !== nad.metadata.uid,
  );
  assert.equal(again.metadata.deletionTimestamp, undefined);
});

kubeTest(
  "multus controller: deleting the SMC deletes its NAD (garbage collection through the owner)",
  async () => {
    await using scope = await testScope("smc-gc", { serviceAccount: false });
    await using _replica = await multusController(scope);
    await createSMC(scope, "gone", { cniType: "ipoib", ipoib: { master: "ib0" } });
    await nadWhere(scope, "gone", "to be created", (n) => n.spec?.config !== undefined);
    await scope.cluster.http.delete(`${smcsPath(scope.namespace)}/gone`);
    await poll(
      "the NAD to be garbage collected",
      60_000,
      async () => (await getNAD(scope, "gone")) ? undefined : true,
    );
  },
);

kubeTest("multus controller: an invalid SMC gets a Warning Event naming the field, and no NAD", async () => {
  await using scope = await testScope("smc-bad", { serviceAccount: false });
  await using replica = await multusController(scope);
  await createSMC(scope, "bad", { cniType: "macvlan", macvlan: { master: ["eth0", "eth1"] } });
  const warning = await poll("an InvalidSpec Event", 30_000, async () => {
    const events = await eventsAbout(scope.cluster.http, {
      kind: "SpiderMultusConfig",
      name: "bad",
      namespace: scope.namespace,
    });
    return events.find((e) => e.reason === "InvalidSpec");
  });
  assert.equal(warning.type, "Warning");
  assert.match(warning.message, /spec\.macvlan\.bond\.name is required with 2 master interfaces/);
  await replica.controller.settled();
  assert.equal(await getNAD(scope, "bad"), undefined);
});

kubeTest(
  "multus controller: a resync of converged SMCs writes nothing; a replica that does not lead writes nothing",
  async () => {
    await using scope = await testScope("smc-idle", { serviceAccount: false });
    {
      await using follower = await multusController(scope, { identity: "follower", lead: false });
      await createSMC(scope, "quiet", { cniType: "ipoib", ipoib: { master: "ib0" } });
      await new Promise((r) => setTimeout(r, 1_500));
      assert.equal(await getNAD(scope, "quiet"), undefined, "no leader, no NAD");
      assert.equal(follower.metrics.totalWrites(), 0);
    }
    await using replica = await multusController(scope);
    await nadWhere(scope, "quiet", "to be created by the leader", (n) => n.spec?.config !== undefined);
    await replica.controller.settled();
    const writes = replica.metrics.totalWrites();
    for (let i = 0; i < 3; i++) {
      replica.controller.resync();
      await replica.controller.settled();
    }
    assert.equal(replica.metrics.totalWrites(), writes);
    assert.match(
      await replica.multusMetrics.registry.getSingleMetricAsString(
        "spiderpool_multusconfig_nad_sync_counts_total",
      ),
      /result="unchanged"} [3-9]/,
    );
  },
);

kubeTest(
  "multus controller: without Multus a Warning Event says to install it; once its CRD is there, NADs follow",
  async () => {
    await using scope = await testScope("smc-nomultus", { serviceAccount: false });
    const { http } = scope.cluster;
    const crd =
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/network-attachment-definitions.k8s.cni.cncf.io";
    try {
      await http.delete(crd);
      await poll(
        "the NAD API to go",
        60_000,
        () => http.get("/apis/k8s.cni.cncf.io/v1").then(() => undefined, () => true),
      );
      await using replica = await multusController(scope);
      await createSMC(scope, "early", { cniType: "ipoib", ipoib: { master: "ib0" } });
      const warning = await poll("a MultusNotInstalled Event", 30_000, async () => {
        const events = await eventsAbout(http, {
          kind: "SpiderMultusConfig",
          name: "early",
          namespace: scope.namespace,
        });
        return events.find((e) => e.reason === "MultusNotInstalled");
      });
      assert.match(
        warning.message,
        /does not serve network-attachment-definitions\.k8s\.cni\.cncf\.io; install Multus/,
      );
      await installCrds(http, MULTUS_CRD_DIR);
      await nadWhere(
        scope,
        "early",
        "to be created once Multus is installed",
        (n) => n.spec?.config !== undefined,
      );
      assert.match(
        await replica.multusMetrics.registry.getSingleMetricAsString(
          "spiderpool_multusconfig_nad_sync_counts_total",
        ),
        /result="multus_missing"} [1-9]/,
      );
    } finally {
      await installCrds(http, MULTUS_CRD_DIR);
    }
  },
);
