// startLeaderWork as the daemon uses it, against the real API server: the election starts at once but the
// components (caches, reconcilers) only once the daemon opens the gate (upstream starts its informers after its
// own webhook answers); readiness says why a replica is not ready (no leader known, a component not ready);
// extra components are started, led and stopped with the reconcilers; stop hands the lease over.
import assert from "node:assert/strict";
import { FINALIZER } from "../../src/api/constants.ts";
import type { SpiderIPPool } from "../../src/api/types.ts";
import type { LeaderView } from "../../src/controller/leader.ts";
import { POOLS } from "../../src/controller/reconcile/kube.ts";
import { type ControllerComponent, startLeaderWork } from "../../src/controller/reconcile/mod.ts";
import { kubeTest, poll, testScope } from "../kube/harness.ts";
import { forceDelete } from "./webhook_harness.ts";

const SCOPE_LABEL = "spiderpool.spidernet.io/test-scope";
const ENV: Record<string, string> = {
  SPIDERPOOL_LEADER_DURATION: "4",
  SPIDERPOOL_LEADER_RENEW_DEADLINE: "3",
  SPIDERPOOL_LEADER_RETRY_PERIOD: "0.5",
};

/** A component that records what it was asked to do, and whose readiness the test sets. */
class Probe implements ControllerComponent {
  name = "probe component";
  calls: string[] = [];
  isReady = true;
  leader?: LeaderView;
  start() {
    this.calls.push("start");
  }
  stop() {
    this.calls.push("stop");
  }
  ready() {
    return this.isReady;
  }
  startLeading(signal: AbortSignal, leader: LeaderView) {
    this.calls.push(signal.aborted ? "startLeading(aborted)" : "startLeading");
    this.leader = leader;
  }
  stopLeading() {
    this.calls.push("stopLeading");
    return Promise.resolve();
  }
}

kubeTest(
  "startLeaderWork: elected at once, components start only when the gate opens; readiness names what is missing",
  async () => {
    await using scope = await testScope("lw-gate", { serviceAccount: false });
    const { http, kc } = scope.cluster;
    const name = scope.name("p");
    scope.track(`${POOLS}/${name}`);
    await http.post(POOLS, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderIPPool",
      metadata: { name, labels: { [SCOPE_LABEL]: scope.namespace }, finalizers: [FINALIZER] },
      spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.13"] },
    });
    const probe = new Probe();
    let open!: () => void;
    const gate = new Promise<void>((r) => open = r);
    const handle = startLeaderWork({
      http,
      kubeConfig: kc,
      namespace: scope.namespace,
      identity: "replica-a",
      enableSpiderSubnet: false,
      matchLabels: { [SCOPE_LABEL]: scope.namespace },
      work: [probe],
      after: gate,
      env: (k) => ENV[k],
      log: () => {},
    });
    try {
      assert.equal(handle.notReady(), "no leader is known", "before the first election round");
      await poll("replica-a to lead", 30_000, () => Promise.resolve(handle.elector.isLeader() || undefined));
      assert.equal(handle.notReady(), undefined);
      // Leading, but the gate is shut: no component started, nothing reconciled.
      await new Promise((r) => setTimeout(r, 1_500));
      assert.deepEqual(probe.calls, []);
      const before = (await http.get<SpiderIPPool>(`${POOLS}/${name}`)).body;
      assert.equal(before.status?.totalIPCount, undefined);

      open();
      await poll("the pool reconciled once the gate opened", 30_000, async () => {
        const p = (await http.get<SpiderIPPool>(`${POOLS}/${name}`)).body;
        return p.status?.totalIPCount === 4 || undefined;
      });
      assert.deepEqual(probe.calls, ["start", "startLeading"], "started, then given the running term");
      assert.equal(probe.leader?.isLeader(), true);

      probe.isReady = false;
      assert.equal(handle.notReady(), "probe component is not ready");
      probe.isReady = true;

      await handle.stop();
      assert.deepEqual(probe.calls, ["start", "startLeading", "stopLeading", "stop"]);
      const { body: lease } = await http.get<{ spec: { holderIdentity?: string } }>(
        `/apis/coordination.k8s.io/v1/namespaces/${scope.namespace}/leases/spiderpool-controller-leases`,
      );
      assert.equal(lease.spec.holderIdentity, undefined, "released on stop");
    } finally {
      await handle.stop();
      await forceDelete(http, `${POOLS}/${name}`);
    }
  },
);

kubeTest("startLeaderWork: stopped before the gate opens, no component ever starts", async () => {
  await using scope = await testScope("lw-early", { serviceAccount: false });
  const { http, kc } = scope.cluster;
  const probe = new Probe();
  let open!: () => void;
  const gate = new Promise<void>((r) => open = r);
  const handle = startLeaderWork({
    http,
    kubeConfig: kc,
    namespace: scope.namespace,
    identity: "replica-b",
    enableSpiderSubnet: false,
    matchLabels: { [SCOPE_LABEL]: scope.namespace },
    work: [probe],
    after: gate,
    env: (k) => ENV[k],
    log: () => {},
  });
  await poll("replica-b to lead", 30_000, () => Promise.resolve(handle.elector.isLeader() || undefined));
  await handle.stop();
  open();
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(probe.calls, ["stop"], "never started or led; stopped like every component");
});

kubeTest(
  "startLeaderWork: a component that never stops is left behind after the wait, and the Lease is released",
  async () => {
    await using scope = await testScope("lw-stuck", { serviceAccount: false });
    const { http, kc } = scope.cluster;
    const stuck = new Probe();
    stuck.name = "stuck component";
    stuck.stop = () => {
      stuck.calls.push("stop");
      return new Promise<void>(() => {}) as unknown as undefined;
    };
    const logs: string[] = [];
    const handle = startLeaderWork({
      http,
      kubeConfig: kc,
      namespace: scope.namespace,
      identity: "replica-c",
      enableSpiderSubnet: false,
      matchLabels: { [SCOPE_LABEL]: scope.namespace },
      work: [stuck],
      env: (k) => ENV[k],
      log: (m) => logs.push(m),
      stopWaitMs: 300,
    });
    await poll("replica-c to lead", 30_000, () => Promise.resolve(handle.elector.isLeader() || undefined));
    const started = performance.now();
    await handle.stop();
    const took = performance.now() - started;
    assert.ok(took >= 300 && took < 5_000, `stop took ${took} ms`);
    assert.deepEqual(stuck.calls, ["start", "startLeading", "stopLeading", "stop"]);
    assert.ok(
      logs.some((l) => l === "stuck component did not stop within 0.3 s; stopping without it"),
      logs.join("\n"),
    );
    const { body: lease } = await http.get<{ spec: { holderIdentity?: string } }>(
      `/apis/coordination.k8s.io/v1/namespaces/${scope.namespace}/leases/spiderpool-controller-leases`,
    );
    assert.equal(lease.spec.holderIdentity, undefined, "released before the stuck component was waited for");
  },
);
