// startLeaderWork with the SpiderMultusConfig and SpiderCoordinator controllers switched on by upstream's
// environment variables: both run under the daemon's one elector, report on its registry, and bad values stop
// the start with a message naming the variable.
import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { API_VERSION, PLURAL } from "../../src/api/constants.ts";
import type { SpiderCoordinator } from "../../src/api/types.ts";
import { LeaderWorkConfigError, startLeaderWork } from "../../src/controller/reconcile/mod.ts";
import { nadPath } from "../../src/multus/nad.ts";
import { kubeTest, poll, testScope } from "../kube/harness.ts";
import { createSMC, getNAD } from "../multus/kit.ts";

const COORDS = `/apis/${API_VERSION}/${PLURAL.coordinator}`;

kubeTest(
  "startLeaderWork: SPIDERPOOL_MULTUS_CONFIG_ENABLED and SPIDERPOOL_COORDINATOR_ENABLED start both controllers",
  async () => {
    await using scope = await testScope("leader-work", { serviceAccount: false });
    const { http, kc } = scope.cluster;
    const coordinator = scope.name("coord");
    const cniDir = await Deno.makeTempDir({ prefix: "spiderpool-cni-conf-" });
    scope.track(`${COORDS}/${coordinator}`);
    const registry = new Registry();
    const env: Record<string, string> = {
      SPIDERPOOL_LEADER_DURATION: "4",
      SPIDERPOOL_LEADER_RENEW_DEADLINE: "3",
      SPIDERPOOL_LEADER_RETRY_PERIOD: "0.5",
      SPIDERPOOL_MULTUS_CONFIG_ENABLED: "true",
      SPIDERPOOL_COORDINATOR_ENABLED: "T",
      SPIDERPOOL_COORDINATOR_DEAFULT_NAME: coordinator,
      SPIDERPOOL_CNI_CONFIG_DIR: cniDir,
    };
    const handle = startLeaderWork({
      http,
      kubeConfig: kc,
      namespace: scope.namespace,
      identity: "pod-a",
      enableSpiderSubnet: true,
      registry,
      // Only this test's objects: no pool carries the label, applications and SMCs in its namespace alone (the
      // shared cluster's pools, records and workloads are other tests').
      matchLabels: { "spiderpool.spidernet.io/test-scope": scope.namespace },
      watchNamespace: scope.namespace,
      env: (k) => env[k],
      log: () => {},
    });
    try {
      assert.ok(handle.multusConfig && handle.coordinator);
      await http.post(COORDS, {
        apiVersion: API_VERSION,
        kind: "SpiderCoordinator",
        metadata: { name: coordinator },
        spec: { podCIDRType: "auto" },
      });
      await createSMC(scope, "net", { cniType: "ipoib", ipoib: { master: "ib0" } });
      await poll("the NAD", 30_000, () => getNAD(scope, "net"));
      const synced = await poll("the coordinator status", 30_000, async () => {
        const { body } = await http.get<SpiderCoordinator>(`${COORDS}/${coordinator}`);
        return body.status?.phase === "Synced" ? body.status : undefined;
      });
      assert.deepEqual(synced.overlayPodCIDR, [], "an empty CNI directory means podCIDRType none");
      // The gauges and counters follow the writes they count: wait until all three show.
      const wanted = [
        /spiderpool_multusconfig_nad_sync_counts_total\{result="created"\} [1-9]/,
        new RegExp(`spiderpool_coordinator_phase\\{SpiderCoordinator="${coordinator}",phase="Synced"\\} 1`),
        /spiderpool_controller_reconcile_counts_total\{kind="SpiderMultusConfig",result="written"\}/,
      ];
      let text = "";
      await poll("the controllers' metrics", 30_000, async () => {
        text = await registry.metrics();
        return wanted.every((re) => re.test(text)) || undefined;
      }).catch((err) => {
        throw new Error(`${err.message}; metrics:\n${text}`);
      });
      for (const re of wanted) assert.match(text, re);
    } finally {
      await handle.stop();
      await http.delete(nadPath(scope.namespace, "net")).catch(() => {});
      await Deno.remove(cniDir, { recursive: true });
    }
  },
);

kubeTest("startLeaderWork: a malformed switch or period stops the start, naming the variable", async () => {
  const scope = await testScope("leader-work-bad", { serviceAccount: false });
  await using _ = scope;
  for (
    const [key, value, message] of [
      ["SPIDERPOOL_MULTUS_CONFIG_ENABLED", "yes", /SPIDERPOOL_MULTUS_CONFIG_ENABLED="yes" is not a boolean/],
      ["SPIDERPOOL_COORDINATOR_INFORMER_RESYNC_PERIOD", "1m", /must be a whole number of seconds/],
      ["SPIDERPOOL_CILIUM_CONFIGMAP_NAMESPACE_NAME", "cilium-config", /must be "namespace\/name"/],
    ] as const
  ) {
    const env: Record<string, string> = { SPIDERPOOL_COORDINATOR_ENABLED: "true", [key]: value };
    assert.throws(
      () =>
        startLeaderWork({
          http: scope.cluster.http,
          kubeConfig: scope.cluster.kc,
          namespace: scope.namespace,
          identity: "pod-a",
          enableSpiderSubnet: false,
          env: (k) => env[k],
          log: () => {},
        }),
      (e: unknown) =>
        e instanceof Error && message.test(e.message) &&
        (key.includes("CILIUM") || e instanceof LeaderWorkConfigError),
      key,
    );
  }
});
