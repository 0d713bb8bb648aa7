// The application controller against the real control plane, the real admission webhooks and
// kube-controller-manager: auto-pools follow their applications' replicas, carry upstream's labels, are
// reclaimed (or kept for reuse), refuse to move subnets, report shortages, and the subnet's accounting stays
// exact under concurrent scaling, concurrent pool-status writers and the subnet reconciler.

import assert from "node:assert/strict";
import { decodeControlledIPPools, encodeAllocatedIPs } from "../../src/api/allocated.ts";
import type { SpiderIPPool } from "../../src/api/types.ts";
import { eventsAbout } from "../../src/controller/reconcile/events.ts";
import { ConflictError, NotFoundError } from "../../src/kube/client.ts";
import { failure, randomSubnets } from "../controller/webhook_harness.ts";
import { kubeTest } from "../kube/harness.ts";
import {
  accountingProblems,
  autoPoolWorld,
  deployment,
  getPool,
  getSubnet,
  POOLS,
  poolsOf,
  scale,
  size,
  subnetAnnotation,
  SUBNETS,
  until,
} from "./world.ts";

interface App {
  metadata: { uid: string };
}

/** The single auto-pool of `name`, once it has `n` addresses. */
function poolSized(w: { http: Parameters<typeof poolsOf>[0]; namespace: string }, name: string, n: number) {
  return until(`the auto-pool of ${name} to have ${n} IPs`, async () => {
    const pools = await poolsOf(w.http, w.namespace, name);
    return pools.length === 1 && size(pools[0]) === n ? pools[0] : undefined;
  });
}

kubeTest(
  "auto-pool: a Deployment's pool is created with replicas+1 IPs and follows kubectl scale up and down",
  async () => {
    await using w = await autoPoolWorld("ap-scale");
    const subnet = await w.subnet("s", 50);
    const path = `/apis/apps/v1/namespaces/${w.namespace}/deployments`;
    const app = (await w.http.post<App>(path, deployment("web", 2, subnetAnnotation(subnet.name)))).body;

    const pool = await poolSized(w, "web", 3);
    const name = `auto4-web-eth0-${app.metadata.uid.split("-").pop()!.slice(0, 5)}`;
    assert.equal(pool.metadata.name, name);
    assert.deepEqual(pool.spec.ips, [`${subnet.prefix}10-${subnet.prefix}12`], "the lowest free addresses");
    assert.equal(pool.spec.subnet, subnet.cidr);
    assert.equal(pool.spec.gateway, `${subnet.prefix}1`, "the gateway of the subnet");
    assert.equal(pool.metadata.labels?.["ipam.spidernet.io/owner-application-uid"], app.metadata.uid);
    assert.equal(pool.metadata.labels?.["ipam.spidernet.io/owner-spider-subnet"], subnet.name);
    assert.equal(pool.metadata.annotations?.["ipam.spidernet.io/ippool-ip-number"], "+1");
    assert.deepEqual(pool.metadata.ownerReferences?.map((r) => [r.kind, r.name, r.controller]), [
      ["SpiderSubnet", subnet.name, true],
    ]);
    assert.deepEqual(pool.metadata.finalizers, ["spiderpool.spidernet.io"]);
    // Only the Deployment has a pool: its ReplicaSet (made by kube-controller-manager) is sized through it.
    await until("kube-controller-manager to make the ReplicaSet", async () => {
      const { body } = await w.http.get<{ items: unknown[] }>(
        `/apis/apps/v1/namespaces/${w.namespace}/replicasets`,
      );
      return body.items.length > 0 ? true : undefined;
    });
    await w.apps.settled();
    assert.equal((await poolsOf(w.http, w.namespace, "web")).length, 1);

    await scale(w.http, `${path}/web`, 5);
    const grown = await poolSized(w, "web", 6);
    assert.deepEqual(grown.spec.ips, [`${subnet.prefix}10-${subnet.prefix}15`]);
    await scale(w.http, `${path}/web`, 1);
    const shrunk = await poolSized(w, "web", 2);
    assert.deepEqual(
      shrunk.spec.ips,
      [`${subnet.prefix}14-${subnet.prefix}15`],
      "the lowest free ones go back",
    );
    await w.apps.settled();
    await w.reconcilers.settled();
    assert.deepEqual(await accountingProblems(w.http, subnet.name), []);
    const s = await getSubnet(w.http, subnet.name);
    assert.deepEqual(decodeControlledIPPools(s.status?.controlledIPPools, subnet.name), {
      [name]: {
        ips: [`${subnet.prefix}14-${subnet.prefix}15`],
        application: `apps_v1_Deployment_${w.namespace}_web`,
      },
    });
    assert.equal(s.status?.allocatedIPCount, 2);
    assert.equal(s.status?.totalIPCount, 50);

    const events = await eventsAbout(w.http, { kind: "Deployment", name: "web", namespace: w.namespace });
    const reasons = events.map((e) => e.reason);
    assert.ok(reasons.includes("AutoPoolCreated"), JSON.stringify(events));
    assert.ok(events.some((e) => e.reason === "AutoPoolScaled" && /grown from 3 to 6 IPs/.test(e.message)));
    assert.ok(events.some((e) => e.reason === "AutoPoolScaled" && /shrunk from 6 to 2 IPs/.test(e.message)));
    const metrics = await w.registry.metrics();
    assert.match(metrics, /spiderpool_auto_pool_changes_total\{action="created"\} 1/);
    assert.match(metrics, /spiderpool_auto_pool_changes_total\{action="grown"\} 1/);
    assert.match(metrics, /spiderpool_auto_pool_changes_total\{action="shrunk"\} 1/);
  },
);

kubeTest("auto-pool: a hostNetwork Deployment and one without subnet annotations get no pool", async () => {
  await using w = await autoPoolWorld("ap-skip");
  const subnet = await w.subnet("s", 10);
  const path = `/apis/apps/v1/namespaces/${w.namespace}/deployments`;
  await w.http.post(path, deployment("host", 1, subnetAnnotation(subnet.name), { hostNetwork: true }));
  await w.http.post(path, deployment("plain", 1, {}));
  await w.http.post(path, deployment("marker", 1, subnetAnnotation(subnet.name)));
  await poolSized(w, "marker", 2);
  await w.apps.settled();
  assert.deepEqual(await poolsOf(w.http, w.namespace, "host"), []);
  assert.deepEqual(await poolsOf(w.http, w.namespace, "plain"), []);
});

kubeTest(
  "auto-pool: fixed sizes, Jobs and CronJobs by parallelism and completions, StatefulSets by replicas",
  async () => {
    await using w = await autoPoolWorld("ap-kinds");
    const subnet = await w.subnet("s", 60);
    const ns = w.namespace;
    const template = (annotations: Record<string, string>) => ({
      metadata: { annotations },
      spec: { restartPolicy: "Never", containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
    });
    await w.http.post(`/apis/batch/v1/namespaces/${ns}/jobs`, {
      metadata: { name: "batch" },
      spec: { parallelism: 2, completions: 4, template: template(subnetAnnotation(subnet.name)) },
    });
    await w.http.post(`/apis/batch/v1/namespaces/${ns}/cronjobs`, {
      metadata: { name: "nightly" },
      spec: {
        schedule: "0 3 1 1 *",
        jobTemplate: {
          spec: {
            parallelism: 3,
            template: template(subnetAnnotation(subnet.name, { "ipam.spidernet.io/ippool-ip-number": "+2" })),
          },
        },
      },
    });
    await w.http.post(`/apis/apps/v1/namespaces/${ns}/statefulsets`, {
      metadata: { name: "db" },
      spec: {
        replicas: 3,
        serviceName: "db",
        selector: { matchLabels: { app: "db" } },
        template: {
          metadata: {
            labels: { app: "db" },
            annotations: subnetAnnotation(subnet.name, { "ipam.spidernet.io/ippool-ip-number": "7" }),
          },
          spec: { containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
        },
      },
    });
    assert.equal(size(await poolSized(w, "batch", 5)), 5, "completions 4 + 1");
    const cron = await poolSized(w, "nightly", 5);
    assert.equal(cron.metadata.labels?.["ipam.spidernet.io/owner-application-kind"], "CronJob");
    assert.equal(cron.metadata.labels?.["ipam.spidernet.io/owner-application-gv"], "batch_v1");
    assert.equal(cron.metadata.annotations?.["ipam.spidernet.io/ippool-ip-number"], "+2");
    const db = await poolSized(w, "db", 7);
    assert.equal(db.metadata.annotations?.["ipam.spidernet.io/ippool-ip-number"], "7");
    // A fixed size does not follow the replicas.
    await scale(w.http, `/apis/apps/v1/namespaces/${ns}/statefulsets/db`, 1);
    await w.apps.settled();
    assert.equal(size((await poolsOf(w.http, ns, "db"))[0]), 7);
    await w.reconcilers.settled();
    assert.deepEqual(await accountingProblems(w.http, subnet.name), []);
  },
);

kubeTest(
  "auto-pool: with ippool-reclaim the pool and its pre-allocation go with the Deployment",
  async () => {
    await using w = await autoPoolWorld("ap-reclaim");
    const subnet = await w.subnet("s", 10);
    const path = `/apis/apps/v1/namespaces/${w.namespace}/deployments`;
    await w.http.post(path, deployment("web", 1, subnetAnnotation(subnet.name)));
    const pool = await poolSized(w, "web", 2);
    await w.http.delete(`${path}/web`);
    await until(
      "the pool to be deleted",
      async () => await getPool(w.http, pool.metadata.name) ? undefined : true,
    );
    await until("the pre-allocation to be dropped", async () => {
      const s = await getSubnet(w.http, subnet.name);
      return s.status?.controlledIPPools === undefined && s.status?.allocatedIPCount === 0 ? true : undefined;
    });
    const events = await eventsAbout(w.http, { kind: "SpiderIPPool", name: pool.metadata.name });
    assert.ok(
      events.some((e) => e.reason === "AutoPoolReclaimed"),
      JSON.stringify(events),
    );
  },
);

kubeTest(
  "auto-pool: without ippool-reclaim the pool stays and a new Deployment of the same name reuses it",
  async () => {
    await using w = await autoPoolWorld("ap-keep");
    const subnet = await w.subnet("s", 10);
    const path = `/apis/apps/v1/namespaces/${w.namespace}/deployments`;
    const anno = subnetAnnotation(subnet.name, { "ipam.spidernet.io/ippool-reclaim": "false" });
    await w.http.post(path, deployment("web", 1, anno));
    const first = await poolSized(w, "web", 2);
    assert.equal(first.metadata.labels?.["ipam.spidernet.io/ippool-reclaim"], "false");
    await w.http.delete(`${path}/web`);
    await w.apps.settled();
    assert.ok(await getPool(w.http, first.metadata.name), "kept");

    const again = (await w.http.post<App>(path, deployment("web", 3, anno))).body;
    const reused = await poolSized(w, "web", 4);
    assert.equal(reused.metadata.name, first.metadata.name, "the same pool, not a new one");
    assert.equal(reused.metadata.labels?.["ipam.spidernet.io/owner-application-uid"], again.metadata.uid);
    assert.deepEqual(reused.spec.ips, [`${subnet.prefix}10-${subnet.prefix}13`]);
    await w.reconcilers.settled();
    assert.deepEqual(await accountingProblems(w.http, subnet.name), []);
  },
);

kubeTest(
  "auto-pool: switching the annotation to another subnet is refused with ApplicationSubnetChanged",
  async () => {
    await using w = await autoPoolWorld("ap-move");
    const a = await w.subnet("a", 10);
    const b = await w.subnet("b", 10);
    const path = `/apis/apps/v1/namespaces/${w.namespace}/deployments`;
    await w.http.post(path, deployment("web", 1, subnetAnnotation(a.name)));
    const pool = await poolSized(w, "web", 2);
    await w.http.patch(`${path}/web`, {
      spec: { template: { metadata: { annotations: subnetAnnotation(b.name) } }, replicas: 4 },
    }, "merge");
    const event = await until("the ApplicationSubnetChanged event", async () => {
      const events = await eventsAbout(w.http, { kind: "Deployment", name: "web", namespace: w.namespace });
      return events.find((e) => e.reason === "ApplicationSubnetChanged");
    });
    assert.equal(event.type, "Warning");
    assert.match(
      event.message,
      new RegExp(`belongs to SpiderSubnet "${a.name}"; an auto-created pool cannot move`),
    );
    // Upstream records it on the pool too (right after the application's).
    await until("the ApplicationSubnetChanged event on the pool", async () => {
      const events = await eventsAbout(w.http, { kind: "SpiderIPPool", name: pool.metadata.name });
      return events.find((e) => e.reason === "ApplicationSubnetChanged");
    });
    assert.deepEqual((await getPool(w.http, pool.metadata.name))?.spec.ips, pool.spec.ips, "unchanged");
    assert.deepEqual(await poolsOf(w.http, w.namespace, "web").then((p) => p.length), 1);
    assert.equal(
      (await getSubnet(w.http, b.name)).status?.controlledIPPools,
      undefined,
      "nothing taken from b",
    );
  },
);

kubeTest(
  "auto-pool: a subnet too small is upstream's error as an Event; more addresses let the pool through",
  async () => {
    await using w = await autoPoolWorld("ap-short");
    const subnet = await w.subnet("s", 3);
    const path = `/apis/apps/v1/namespaces/${w.namespace}/deployments`;
    await w.http.post(path, deployment("web", 5, subnetAnnotation(subnet.name)));
    const event = await until("the AutoPoolScaleFailed event", async () => {
      const events = await eventsAbout(w.http, { kind: "Deployment", name: "web", namespace: w.namespace });
      return events.find((e) => e.reason === "AutoPoolScaleFailed");
    });
    assert.match(event.message, /insufficient subnet FreeIPs, required '6' but only left '3'/);
    assert.deepEqual(await poolsOf(w.http, w.namespace, "web"), []);
    assert.equal(
      (await getSubnet(w.http, subnet.name)).status?.controlledIPPools,
      undefined,
      "nothing reserved",
    );
    // The subnet grows: the application waiting on it is reconciled again at once.
    await w.http.patch(`${SUBNETS}/${subnet.name}`, {
      spec: { ips: [`${subnet.prefix}10-${subnet.prefix}19`] },
    }, "merge");
    await poolSized(w, "web", 6);
    assert.match(
      await w.registry.metrics(),
      /spiderpool_auto_pool_failure_counts_total\{reason="insufficient_subnet_ips"\} [1-9]/,
    );
  },
);

/** Writes allocation records into a pool's status as an agent does (conditional PUT, retried on 409). */
async function allocate(http: Parameters<typeof getPool>[0], name: string, ips: string[]): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const pool = (await getPool(http, name))!;
    const records = Object.fromEntries(
      ips.map((ip, k) => [ip, { pod: `ns/p-${name}-${k}`, podUid: `u-${k}` }]),
    );
    try {
      await http.put(`${POOLS}/${name}/status`, {
        ...pool,
        status: { ...pool.status, allocatedIPs: encodeAllocatedIPs(records), allocatedIPCount: ips.length },
      });
      return;
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
    }
  }
  throw new Error(`could not write the records of ${name}`);
}

kubeTest("auto-pool: a shrink never takes an address a pod holds; it waits for the release", async () => {
  await using w = await autoPoolWorld("ap-held");
  const subnet = await w.subnet("s", 10);
  const path = `/apis/apps/v1/namespaces/${w.namespace}/deployments`;
  await w.http.post(path, deployment("web", 2, subnetAnnotation(subnet.name)));
  const pool = await poolSized(w, "web", 3);
  const p = subnet.prefix;
  await allocate(w.http, pool.metadata.name, [`${p}10`, `${p}11`]);
  await scale(w.http, `${path}/web`, 0);
  const event = await until("the shrink to be refused", async () => {
    const events = await eventsAbout(w.http, { kind: "Deployment", name: "web", namespace: w.namespace });
    return events.find((e) => e.reason === "AutoPoolScaleFailed");
  });
  assert.match(event.message, /IPPool available free IPs are not enough \(2 to give back, 1 not allocated\)/);
  assert.equal(size(await getPool(w.http, pool.metadata.name)), 3, "nothing dropped");
  await allocate(w.http, pool.metadata.name, [`${p}11`]);
  const shrunk = await poolSized(w, "web", 1);
  assert.deepEqual(shrunk.spec.ips, [`${p}11`], "the address still held stays");
});

kubeTest(
  "auto-pool: 20 Deployments scaled concurrently from one subnet, with agents writing pool status",
  async () => {
    await using w = await autoPoolWorld("ap-many");
    const subnet = await w.subnet("s", 200);
    const path = `/apis/apps/v1/namespaces/${w.namespace}/deployments`;
    const names = Array.from({ length: 20 }, (_, i) => `app${i}`);
    await Promise.all(names.map((n) => w.http.post(path, deployment(n, 1, subnetAnnotation(subnet.name)))));
    const first = await Promise.all(names.map((n) => poolSized(w, n, 2)));
    // Each pod of the first replica holds its pool's lowest address, as an agent would have recorded it.
    const held = new Map(first.map((p) => [p.metadata.name, p.spec.ips![0].split("-")[0]]));

    const sizes = names.map((_, i) => 1 + ((i * 7) % 6));
    const writers = first.map((p) => allocate(w.http, p.metadata.name, [held.get(p.metadata.name)!]));
    await Promise.all([...writers, ...names.map((n, i) => scale(w.http, `${path}/${n}`, sizes[i]))]);
    await Promise.all(names.map((n, i) => poolSized(w, n, sizes[i] + 1)));
    // And down again, all at once, to zero replicas: one address each is held, one is the +1.
    await Promise.all(names.map((n) => scale(w.http, `${path}/${n}`, 0)));
    const last = await Promise.all(names.map((n) => poolSized(w, n, 1)));
    for (const p of last) {
      assert.deepEqual(p.spec.ips, [held.get(p.metadata.name)], `${p.metadata.name} kept the held address`);
    }
    await w.apps.settled();
    await w.reconcilers.settled();
    assert.deepEqual(await accountingProblems(w.http, subnet.name), []);
    const s = await getSubnet(w.http, subnet.name);
    assert.equal(s.status?.allocatedIPCount, 20);
    assert.equal(Object.keys(decodeControlledIPPools(s.status?.controlledIPPools, subnet.name)).length, 20);
    const all = (await w.http.get<{ items: SpiderIPPool[] }>(POOLS)).body.items
      .filter((p) => p.spec.subnet === subnet.cidr);
    assert.equal(all.length, 20);
  },
);

kubeTest(
  "auto-pool: reclaimable pools left by applications deleted while no controller led are deleted",
  async () => {
    await using w = await autoPoolWorld("ap-orphan");
    const subnet = await w.subnet("s", 10);
    const path = `/apis/apps/v1/namespaces/${w.namespace}/deployments`;
    await w.http.post(path, deployment("web", 1, subnetAnnotation(subnet.name)));
    await w.http.post(
      path,
      deployment("kept", 1, subnetAnnotation(subnet.name, { "ipam.spidernet.io/ippool-reclaim": "false" })),
    );
    const pool = await poolSized(w, "web", 2);
    const kept = await poolSized(w, "kept", 2);
    await w.stopLeading();
    await w.http.delete(`${path}/web`);
    await w.http.delete(`${path}/kept`);
    await w.startLeading();
    await until(
      "the orphaned reclaimable pool to be deleted",
      async () => await getPool(w.http, pool.metadata.name) ? undefined : true,
    );
    await until("its pre-allocation to be dropped", async () => {
      const s = await getSubnet(w.http, subnet.name);
      const entries = decodeControlledIPPools(s.status?.controlledIPPools, subnet.name);
      return pool.metadata.name in entries ? undefined : entries;
    });
    await w.apps.settled();
    assert.ok(await getPool(w.http, kept.metadata.name), "a pool kept with ippool-reclaim false stays");
    assert.deepEqual(await accountingProblems(w.http, subnet.name), []);
  },
);

kubeTest(
  "auto-pool: a pre-allocation written just before a crash is used for the pool, not taken twice",
  async () => {
    await using w = await autoPoolWorld("ap-crash", { start: false });
    const subnet = await w.subnet("s", 10);
    const path = `/apis/apps/v1/namespaces/${w.namespace}/deployments`;
    const app = (await w.http.post<App>(path, deployment("web", 2, subnetAnnotation(subnet.name)))).body;
    // What a controller that died after its subnet write left behind: an entry, no pool.
    const name = `auto4-web-eth0-${app.metadata.uid.split("-").pop()!.slice(0, 5)}`;
    const p = subnet.prefix;
    // The subnet reconciler may write the new subnet's status meanwhile: re-read and retry on a conflict.
    for (let attempt = 1;; attempt++) {
      const s = await getSubnet(w.http, subnet.name);
      try {
        await w.http.patch(`${SUBNETS}/${subnet.name}/status`, {
          metadata: { resourceVersion: s.metadata.resourceVersion },
          status: {
            controlledIPPools: JSON.stringify({
              [name]: { ips: [`${p}15-${p}17`], application: `apps_v1_Deployment_${w.namespace}_web` },
            }),
            allocatedIPCount: 3,
            totalIPCount: 10,
          },
        }, "merge");
        break;
      } catch (err) {
        if (!(err instanceof ConflictError) || attempt >= 10) throw err;
      }
    }
    await w.startLeading();
    const pool = await poolSized(w, "web", 3);
    assert.equal(pool.metadata.name, name);
    assert.deepEqual(pool.spec.ips, [`${p}15-${p}17`], "the addresses already reserved for it");
    await w.reconcilers.settled();
    assert.deepEqual(await accountingProblems(w.http, subnet.name), []);
    assert.equal((await getSubnet(w.http, subnet.name)).status?.allocatedIPCount, 3);
  },
);

kubeTest(
  "auto-pool: the real webhook admits the controller's pools and refuses a hand edit of their addresses",
  async () => {
    await using w = await autoPoolWorld("ap-hand");
    const subnet = await w.subnet("s", 10);
    const path = `/apis/apps/v1/namespaces/${w.namespace}/deployments`;
    await w.http.post(path, deployment("web", 1, subnetAnnotation(subnet.name)));
    const pool = await poolSized(w, "web", 2);
    const refusal = await failure(
      w.http.patch(`${POOLS}/${pool.metadata.name}`, {
        spec: { ips: [`${subnet.prefix}10-${subnet.prefix}14`] },
      }),
    );
    assert.equal(refusal.code, 422);
    assert.match(refusal.message, /change the ippool-ip-number annotation of the application instead/);
  },
);

kubeTest("auto-pool: a DaemonSet's pool is sized by desiredNumberScheduled", async () => {
  await using w = await autoPoolWorld("ap-ds");
  const subnet = await w.subnet("s", 30);
  // A node of this test, so that the DaemonSet controller schedules at least one pod.
  const node = w.scope.name("node");
  await w.http.post("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: node } });
  w.scope.track(`/api/v1/nodes/${node}`);
  const path = `/apis/apps/v1/namespaces/${w.namespace}/daemonsets`;
  await w.http.post(path, {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: "agent" },
    spec: {
      selector: { matchLabels: { app: "agent" } },
      template: {
        metadata: { labels: { app: "agent" }, annotations: subnetAnnotation(subnet.name) },
        spec: { containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
      },
    },
  });
  const desired = await until("kube-controller-manager to count the DaemonSet's nodes", async () => {
    const { body } = await w.http.get<{ status?: { desiredNumberScheduled?: number } }>(`${path}/agent`);
    const n = body.status?.desiredNumberScheduled ?? 0;
    return n >= 1 ? n : undefined;
  });
  const pool = await until(`the DaemonSet's pool to have ${desired}+1 IPs`, async () => {
    const [p] = await poolsOf(w.http, w.namespace, "agent");
    const { body } = await w.http.get<{ status?: { desiredNumberScheduled?: number } }>(`${path}/agent`);
    return p && size(p) === (body.status?.desiredNumberScheduled ?? 0) + 1 ? p : undefined;
  });
  assert.equal(pool.metadata.labels?.["ipam.spidernet.io/owner-application-kind"], "DaemonSet");
});

kubeTest(
  "auto-pool: dual stack on two NICs (ipam.spidernet.io/subnets) gives one pool per NIC and family",
  async () => {
    await using w = await autoPoolWorld("ap-dual");
    const a4 = await w.subnet("a4", 20);
    const b4 = await w.subnet("b4", 20);
    const v6 = randomSubnets();
    const a6 = w.scope.name("a6");
    await w.set.create(SUBNETS, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderSubnet",
      metadata: { name: a6 },
      spec: { subnet: v6.v6, ips: [`${v6.v6prefix}100-${v6.v6prefix}1ff`] },
    });
    const path = `/apis/apps/v1/namespaces/${w.namespace}/deployments`;
    await w.http.post(
      path,
      deployment("multi", 2, {
        "ipam.spidernet.io/subnets": JSON.stringify([
          { interface: "eth0", ipv4: [a4.name], ipv6: [a6] },
          { interface: "net1", ipv4: [b4.name] },
        ]),
        "ipam.spidernet.io/ippool-ip-number": "+2",
      }),
    );
    const pools = await until("three pools of 4 IPs", async () => {
      const ps = await poolsOf(w.http, w.namespace, "multi");
      return ps.length === 3 && ps.every((p) => size(p) === 4) ? ps : undefined;
    });
    const shape = pools.map((p) => [
      p.metadata.name.split("-").slice(0, 3).join("-"),
      p.metadata.labels?.["ipam.spidernet.io/ip-version"],
      p.metadata.labels?.["ipam.spidernet.io/owner-spider-subnet"],
    ]).sort();
    assert.deepEqual(shape, [
      ["auto4-multi-eth0", "IPv4", a4.name],
      ["auto4-multi-net1", "IPv4", b4.name],
      ["auto6-multi-eth0", "IPv6", a6],
    ]);
    const six = pools.find((p) => p.spec.ipVersion === 6)!;
    assert.deepEqual(six.spec.ips, [`${v6.v6prefix}100-${v6.v6prefix}103`]);
    await w.reconcilers.settled();
    for (const s of [a4.name, b4.name]) assert.deepEqual(await accountingProblems(w.http, s), []);
    assert.equal((await getSubnet(w.http, a6)).status?.allocatedIPCount, 4);
  },
);

kubeTest(
  "auto-pool: a third-party kind missing from API discovery (a CRD just installed) does not get its pools deleted",
  async () => {
    await using w = await autoPoolWorld("ap-unserved");
    const subnet = await w.subnet("s", 10);
    // A pool as an agent makes it for a third-party controller whose kind discovery does not list (yet).
    const group = `${w.namespace}.example.com`;
    const name = w.scope.name("gizmo");
    await w.http.post(POOLS, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderIPPool",
      metadata: {
        name,
        labels: {
          "ipam.spidernet.io/owner-spider-subnet": subnet.name,
          "ipam.spidernet.io/owner-application-gv": `${group}_v1`,
          "ipam.spidernet.io/owner-application-kind": "Gizmo",
          "ipam.spidernet.io/owner-application-namespace": w.namespace,
          "ipam.spidernet.io/owner-application-name": "g",
          "ipam.spidernet.io/owner-application-uid": "0000-1111",
          "ipam.spidernet.io/interface": "eth0",
          "ipam.spidernet.io/ip-version": "IPv4",
          "ipam.spidernet.io/ippool-reclaim": "true",
        },
      },
      spec: { ipVersion: 4, subnet: subnet.cidr, ips: [`${subnet.prefix}10`] },
    });
    w.apps.resync();
    await w.apps.settled();
    const kept = await getPool(w.http, name);
    assert.ok(kept && !kept.metadata.deletionTimestamp, "kept while the kind may still appear in discovery");
  },
);

kubeTest(
  "auto-pool: a third-party application's pre-allocation stays while the agent is still making its pool",
  async () => {
    await using w = await autoPoolWorld("ap-inflight");
    const subnet = await w.subnet("s", 10);
    const group = `${w.namespace}.example.com`;
    await w.http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: `widgets.${group}` },
      spec: {
        group,
        scope: "Namespaced",
        names: { plural: "widgets", singular: "widget", kind: "Widget", listKind: "WidgetList" },
        versions: [{
          name: "v1",
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } },
        }],
      },
    });
    w.scope.track(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.${group}`);
    const widgets = `/apis/${group}/v1/namespaces/${w.namespace}/widgets`;
    await until("the Widget kind to be served", async () => {
      try {
        return (await w.http.post(widgets, {
          apiVersion: `${group}/v1`,
          kind: "Widget",
          metadata: { name: "gadget" },
        })).body;
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    });
    // What an agent writes first for a third-party application: the subnet's pre-allocation; the pool follows.
    const application = `${group}_v1_Widget_${w.namespace}_gadget`;
    const pool = w.scope.name("auto4-gadget-eth0");
    const preAllocate = async () => {
      const now = await getSubnet(w.http, subnet.name);
      await w.http.patch(`${SUBNETS}/${subnet.name}/status`, {
        metadata: { resourceVersion: now.metadata.resourceVersion },
        status: {
          controlledIPPools: JSON.stringify({ [pool]: { ips: [`${subnet.prefix}10`], application } }),
          allocatedIPCount: 1,
        },
      }, "merge");
    };
    await preAllocate();
    w.apps.resync();
    await w.apps.settled();
    const entries = decodeControlledIPPools(
      (await getSubnet(w.http, subnet.name)).status?.controlledIPPools,
      "s",
    );
    assert.deepEqual(
      entries[pool],
      { ips: [`${subnet.prefix}10`], application },
      "kept while the Widget lives",
    );

    // Once the application is gone, its pre-allocation without a pool is dropped.
    await w.http.delete(`${widgets}/gadget`);
    w.apps.resync();
    await until("the pre-allocation of the deleted Widget to be dropped", async () => {
      const now = decodeControlledIPPools(
        (await getSubnet(w.http, subnet.name)).status?.controlledIPPools,
        "s",
      );
      return now[pool] === undefined ? true : undefined;
    });
  },
);
