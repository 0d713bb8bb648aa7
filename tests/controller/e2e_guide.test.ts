// End to end with the controller in front: a SpiderIPPool copied from Spiderpool's own guide (no ipVersion) is
// applied through the API server and completed by the real webhook; a pod the guide's way (affinity label and
// pool annotation) gets an address from it through a real agent and Debian's `bridge` plugin delegating to
// `spiderpool` in a network namespace; the leader keeps the pool's counts while the agent allocates.
import assert from "node:assert/strict";
import { load } from "js-yaml";
import { kubeTest, poll } from "../kube/harness.ts";
import { resultAddresses } from "../e2e/cni.ts";
import { bareIP, e2e, poolRecords } from "../e2e/env.ts";
import { addressesIn } from "../e2e/netns.ts";
import { API, randomSubnets, startControllers } from "./webhook_harness.ts";

const POOLS = `${API}/spiderippools`;

// docs/usage/ippool-affinity-pod.md, as printed in Spiderpool's guide, with its addresses as placeholders that
// the test fills with a range of its own.
const GUIDE_POOL = `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: test-ippool
spec:
  subnet: SUBNET
  ips:
    - PREFIX40-PREFIX50
  podAffinity:
    matchLabels:
      app: static
`;

interface Pool {
  metadata: { name: string; finalizers?: string[] };
  spec: { ipVersion?: number; subnet: string; ips: string[] };
  status?: { totalIPCount?: number; allocatedIPCount?: number };
}

kubeTest(
  "e2e with the controller: a pool from Spiderpool's guide (no ipVersion) goes through the webhook and serves a pod through bridge → spiderpool",
  async () => {
    await using env = await e2e("ctl-e2e");
    const [node] = await env.startNodes(1);
    await using set = await startControllers(env.scope, {
      env: {
        SPIDERPOOL_LEADER_DURATION: "4",
        SPIDERPOOL_LEADER_RENEW_DEADLINE: "3",
        SPIDERPOOL_LEADER_RETRY_PERIOD: "0.5",
      },
    });
    // The guide's addresses filled with a benchmark range this test owns; nothing else changed.
    const { v4, v4prefix } = randomSubnets();
    const guide = load(GUIDE_POOL.replaceAll("SUBNET", v4).replaceAll("PREFIX", v4prefix)) as Pool;
    assert.equal(guide.spec.ipVersion, undefined);
    const name = env.scope.name(guide.metadata.name);
    const created = await set.create<Pool>(POOLS, { ...guide, metadata: { ...guide.metadata, name } });
    assert.equal(created.spec.ipVersion, 4, "the mutating webhook derived ipVersion from subnet");
    assert.deepEqual(created.metadata.finalizers, ["spiderpool.spidernet.io"]);

    // The guide's pod: the affinity label and the pool annotation.
    const podName = "static-0";
    await env.http.post(`/api/v1/namespaces/${env.namespace}/pods`, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: podName,
        labels: { app: "static" },
        annotations: { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [name] }) },
      },
      spec: { containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
    });
    const pod = await env.bindPod(podName, node);
    const sb = await env.sandbox(pod, node);
    const add = await env.add(sb);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const [address] = resultAddresses(add);
    const ip = bareIP(address)!;
    const last = Number(ip.split(".")[3]);
    assert.ok(ip.startsWith(v4prefix) && last >= 40 && last <= 50, `${address} is from the guide's range`);
    assert.deepEqual(await addressesIn(sb.netns, "eth0", 4), [address]);
    assert.deepEqual(await poolRecords(env.http, name), {
      [ip]: { pod: `${env.namespace}/${podName}`, podUid: pod.uid },
    });
    // The leader's reconciler and the agent write the same status; the counts end up right.
    await poll("the pool's counts", 30_000, async () => {
      const s = (await env.http.get<Pool>(`${POOLS}/${name}`)).body.status;
      return s?.totalIPCount === 11 && s.allocatedIPCount === 1 || undefined;
    });

    // Released by the pod's deletion; the counts follow.
    const del = await env.deletePod(sb);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.deepEqual(await poolRecords(env.http, name), {});
    await poll("the pool's allocatedIPCount back to 0", 30_000, async () => {
      const s = (await env.http.get<Pool>(`${POOLS}/${name}`)).body.status;
      return s?.allocatedIPCount === 0 || undefined;
    });
  },
);
