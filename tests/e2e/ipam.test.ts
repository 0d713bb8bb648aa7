// IPAM end to end, through the real pieces: the control plane, one `dist/spiderpool agent` process per
// simulated node, Debian's bridge plugin delegating to `dist/cni/spiderpool` in one network namespace per pod.

import assert from "node:assert/strict";
import type { KubeHttp } from "../../src/kube/client.ts";
import { kubeTest } from "../kube/harness.ts";
import { DIST_CNI, execCni, resultAddresses } from "./cni.ts";
import {
  bareIP,
  consistencyProblems,
  e2e,
  eventually,
  getEndpoint,
  listEndpoints,
  poolRecords,
} from "./env.ts";
import { addressesIn, linksIn, ping } from "./netns.ts";

/** Polls the pool every few ms (not the harness's 100–500 ms) so that a burst can be interrupted on time. */
async function untilRecords(http: KubeHttp, pool: string, atLeast: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Object.keys(await poolRecords(http, pool)).length < atLeast) {
    if (Date.now() > deadline) {
      throw new Error(`${pool} did not reach ${atLeast} records within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Polls the pool every few ms until it holds at most `atMost` records. */
async function untilRecordsAtMost(
  http: KubeHttp,
  pool: string,
  atMost: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Object.keys(await poolRecords(http, pool)).length > atMost) {
    if (Date.now() > deadline) {
      throw new Error(`${pool} did not drop to ${atMost} records within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

const ippool = (v4: string[], v6: string[] = []) => ({
  "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: v4, ipv6: v6 }),
});

kubeTest("e2e: a pod gets the pool's first free address, set on eth0 in its network namespace", async () => {
  await using env = await e2e("e2e-first");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("v4", {
    subnet: "192.0.2.0/24",
    ips: ["192.0.2.10-192.0.2.20"],
    excludeIPs: ["192.0.2.10"],
    gateway: "192.0.2.1",
  });
  const pod = await env.createPod("web", node, { annotations: ippool([pool]) });
  const sb = await env.sandbox(pod, node);

  const add = await env.add(sb);
  assert.equal(add.code, 0, add.stdout + add.stderr);
  assert.deepEqual(resultAddresses(add), ["192.0.2.11/24"]);
  assert.deepEqual(await addressesIn(sb.netns, "eth0", 4), ["192.0.2.11/24"]);
  const records = await poolRecords(env.http, pool);
  assert.deepEqual(records, { "192.0.2.11": { pod: `${env.namespace}/web`, podUid: pod.uid } });
  const ep = await getEndpoint(env.http, env.namespace, "web");
  assert.equal(ep?.status.current.uid, pod.uid);
  assert.equal(ep?.status.current.node, node.name);
  assert.deepEqual(ep?.status.current.ips?.map((d) => [d.interface, bareIP(d.ipv4), d.ipv4Pool]), [
    ["eth0", "192.0.2.11", pool],
  ]);
});

kubeTest("e2e: a dual-stack pod gets one IPv4 and one IPv6 address on eth0", async () => {
  await using env = await e2e("e2e-dual");
  const [node] = await env.startNodes(1);
  const v4 = await env.pool("v4", {
    subnet: "192.0.2.0/24",
    ips: ["192.0.2.60-192.0.2.69"],
    gateway: "192.0.2.1",
  });
  const v6 = await env.pool("v6", {
    subnet: "2001:db8:5::/64",
    ips: ["2001:db8:5::10-2001:db8:5::1f"],
    gateway: "2001:db8:5::1",
  });
  const pod = await env.createPod("dual", node, { annotations: ippool([v4], [v6]) });
  const sb = await env.sandbox(pod, node);
  const add = await env.add(sb);
  assert.equal(add.code, 0, add.stdout + add.stderr);
  assert.deepEqual(resultAddresses(add).sort(), ["192.0.2.60/24", "2001:db8:5::10/64"]);
  assert.deepEqual(await addressesIn(sb.netns, "eth0", 4), ["192.0.2.60/24"]);
  assert.deepEqual(await addressesIn(sb.netns, "eth0", 6), ["2001:db8:5::10/64"]);
  assert.deepEqual(Object.keys(await poolRecords(env.http, v6)), ["2001:db8:5::10"]);
  const ep = await getEndpoint(env.http, env.namespace, "dual");
  assert.deepEqual(ep?.status.current.ips?.map((d) => [d.interface, d.ipv4, d.ipv6]), [
    ["eth0", "192.0.2.60/24", "2001:db8:5::10/64"],
  ]);
  assert.deepEqual(await consistencyProblems(env.http, env.namespace, [v4, v6]), []);
});

kubeTest("e2e: pods on one node's bridge reach each other by their allocated addresses", async () => {
  await using env = await e2e("e2e-ping");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("v4", { subnet: "203.0.113.0/24", ips: ["203.0.113.50-203.0.113.60"] });
  const sandboxes = [];
  for (const name of ["client", "server"]) {
    const pod = await env.createPod(name, node, { annotations: ippool([pool]) });
    const sb = await env.sandbox(pod, node);
    const add = await env.add(sb);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    sandboxes.push({ sb, ip: bareIP(resultAddresses(add)[0])! });
  }
  const [a, b] = sandboxes;
  assert.notEqual(a.ip, b.ip);
  assert.ok(await ping(a.sb.netns, b.ip), `${a.sb.pod.name} (${a.ip}) cannot ping ${b.ip}`);
  assert.ok(await ping(b.sb.netns, a.ip), `${b.sb.pod.name} (${b.ip}) cannot ping ${a.ip}`);
});

kubeTest(
  "e2e: three agents allocating at once from one pool never give an address twice; records match endpoints",
  async () => {
    await using env = await e2e("e2e-race");
    const nodes = await env.startNodes(3);
    const pool = await env.pool("shared", {
      subnet: "198.51.100.0/24",
      ips: ["198.51.100.10-198.51.100.250"],
      gateway: "198.51.100.1",
    });
    const perNode = 8;
    const sandboxes = await Promise.all(
      nodes.flatMap((node, n) =>
        Array.from({ length: perNode }, async (_, i) => {
          const pod = await env.createPod(`p${n}-${i}`, node, { annotations: ippool([pool]) });
          return await env.sandbox(pod, node);
        })
      ),
    );
    // Every ADD of every node at once: the agents race on the same pool status.
    const runs = await Promise.all(sandboxes.map((sb) => env.add(sb)));
    runs.forEach((r, i) => assert.equal(r.code, 0, `${sandboxes[i].pod.name}: ${r.stdout} ${r.stderr}`));

    const given = runs.map((r) => resultAddresses(r)[0]);
    assert.equal(new Set(given).size, given.length, `an address was given twice: ${given.join(" ")}`);
    for (const [i, sb] of sandboxes.entries()) {
      assert.deepEqual(await addressesIn(sb.netns, "eth0", 4), [given[i]], sb.pod.name);
    }
    const records = await poolRecords(env.http, pool);
    assert.equal(Object.keys(records).length, sandboxes.length);
    const endpoints = await listEndpoints(env.http, env.namespace);
    assert.equal(endpoints.length, sandboxes.length);
    for (const [i, sb] of sandboxes.entries()) {
      const ep = endpoints.find((e) => e.metadata.name === sb.pod.name);
      assert.equal(ep?.status.current.uid, sb.pod.uid, sb.pod.name);
      assert.equal(ep?.status.current.node, sb.node.name, sb.pod.name);
      assert.equal(ep?.status.current.ips?.[0]?.ipv4, given[i], sb.pod.name);
      assert.deepEqual(records[bareIP(given[i])!], {
        pod: `${env.namespace}/${sb.pod.name}`,
        podUid: sb.pod.uid,
      });
    }
    assert.deepEqual(await consistencyProblems(env.http, env.namespace, [pool]), []);
  },
);

kubeTest("e2e: DEL of a deleted pod frees its address in the pool and its SpiderEndpoint", async () => {
  await using env = await e2e("e2e-del");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.30-192.0.2.39"] });
  const pod = await env.createPod("gone", node, { annotations: ippool([pool]) });
  const sb = await env.sandbox(pod, node);
  const add = await env.add(sb);
  assert.equal(add.code, 0, add.stdout + add.stderr);
  assert.equal(Object.keys(await poolRecords(env.http, pool)).length, 1);

  const del = await env.deletePod(sb);
  assert.equal(del.code, 0, del.stdout + del.stderr);
  assert.deepEqual(await poolRecords(env.http, pool), {});
  assert.equal((await linksIn(sb.netns)).includes("eth0"), false);
  // The endpoint is owned by the pod: once the pod is gone (and our finalizer dropped) it goes too.
  await eventually(
    "SpiderEndpoint of the deleted pod to be gone",
    async () => await getEndpoint(env.http, env.namespace, "gone") === undefined ? true : undefined,
  );

  // The freed address is the first free one again.
  const next = await env.createPod("next", node, { annotations: ippool([pool]) });
  const again = await env.add(await env.sandbox(next, node));
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.deepEqual(resultAddresses(again), resultAddresses(add));
});

kubeTest(
  "e2e: repeated ADD for the same pod UID returns the same address and writes no new record",
  async () => {
    await using env = await e2e("e2e-again");
    const [node] = await env.startNodes(1);
    const pool = await env.pool("v4", { subnet: "198.51.100.0/24", ips: ["198.51.100.40-198.51.100.49"] });
    const pod = await env.createPod("twice", node, { annotations: ippool([pool]) });
    const first = await env.add(await env.sandbox(pod, node));
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const recordsBefore = await poolRecords(env.http, pool);
    const epBefore = await getEndpoint(env.http, env.namespace, "twice");

    // A runtime that lost the first result retries with a new sandbox for the same pod (same UID).
    const sb2 = await env.sandbox(pod, node);
    const second = await env.add(sb2);
    assert.equal(second.code, 0, second.stdout + second.stderr);
    assert.deepEqual(resultAddresses(second), resultAddresses(first));
    assert.deepEqual(await addressesIn(sb2.netns, "eth0", 4), resultAddresses(first));
    assert.deepEqual(await poolRecords(env.http, pool), recordsBefore);
    const eps = await listEndpoints(env.http, env.namespace);
    assert.equal(eps.length, 1);
    assert.equal(eps[0].metadata.uid, epBefore?.metadata.uid, "the SpiderEndpoint was replaced");
    assert.deepEqual(eps[0].status.current, epBefore?.status.current);
  },
);

kubeTest(
  "e2e: an exhausted pool fails ADD with a CNI error naming the pool and records nothing",
  async () => {
    await using env = await e2e("e2e-full");
    const [node] = await env.startNodes(1);
    const pool = await env.pool("tiny", { subnet: "198.18.0.0/15", ips: ["198.18.5.1-198.18.5.2"] });
    for (const name of ["a", "b"]) {
      const pod = await env.createPod(name, node, { annotations: ippool([pool]) });
      const add = await env.add(await env.sandbox(pod, node));
      assert.equal(add.code, 0, add.stdout + add.stderr);
    }
    const recordsFull = await poolRecords(env.http, pool);
    const pod = await env.createPod("c", node, { annotations: ippool([pool]) });
    const sb = await env.sandbox(pod, node);
    const add = await env.add(sb);
    assert.notEqual(add.code, 0);
    assert.ok((add.json?.code as number) >= 100, add.stdout);
    assert.match(add.json?.msg as string, new RegExp(`no free IP .*"${pool}"`), add.stdout);
    assert.deepEqual(await poolRecords(env.http, pool), recordsFull);
    assert.equal(await getEndpoint(env.http, env.namespace, "c"), undefined);
    assert.deepEqual(await addressesIn(sb.netns, "eth0", 4), []);
  },
);

kubeTest("e2e: malformed pool annotations are rejected with an error naming the annotation", async () => {
  await using env = await e2e("e2e-badanno");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.40-192.0.2.49"] });
  const cases: [string, Record<string, string>, RegExp][] = [
    ["bad-ippool", { "ipam.spidernet.io/ippool": "{not json" }, /ipam\.spidernet\.io\/ippool\b/],
    ["bad-ippools", { "ipam.spidernet.io/ippools": '{"interface":"eth0"}' }, /ipam\.spidernet\.io\/ippools/],
    ["bad-routes", {
      ...ippool([pool]),
      "ipam.spidernet.io/routes": '[{"dst":"not-a-cidr","gw":"192.0.2.1"}]',
    }, /ipam\.spidernet\.io\/routes/],
  ];
  for (const [name, annotations, names] of cases) {
    const pod = await env.createPod(name, node, { annotations });
    const sb = await env.sandbox(pod, node);
    // Without the broken annotation this pod would get an address from the CNI default pool.
    const add = await env.add(sb, { conf: env.conf(node, { default_ipv4_ippool: [pool] }) });
    assert.notEqual(add.code, 0, `${name}: ${add.stdout}`);
    assert.match(add.json?.msg as string, names, `${name}: ${add.stdout}`);
    assert.deepEqual(await addressesIn(sb.netns, "eth0", 4), [], name);
  }
  assert.deepEqual(await poolRecords(env.http, pool), {});
  assert.deepEqual(await listEndpoints(env.http, env.namespace), []);
});

kubeTest("e2e: a malformed IPAM configuration is rejected with code 7 naming the key", async () => {
  await using env = await e2e("e2e-badconf");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.50-192.0.2.59"] });
  const pod = await env.createPod("p", node, { annotations: ippool([pool]) });
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ default_ipv4_ippool: pool }, /ipam\.default_ipv4_ippool: expected a list/],
    [{ clean_gateway: "yes" }, /ipam\.clean_gateway: expected true or false/],
    [{ ipam_unix_socket_path: "relative.sock" }, /ipam\.ipam_unix_socket_path: expected an absolute path/],
  ];
  for (const [ipam, message] of cases) {
    const sb = await env.sandbox(pod, node);
    const add = await env.add(sb, { conf: env.conf(node, ipam) });
    assert.equal(add.json?.code, 7, add.stdout);
    assert.match(add.json?.msg as string, message);
  }
  assert.deepEqual(await poolRecords(env.http, pool), {});
  assert.deepEqual(await listEndpoints(env.http, env.namespace), []);
});

kubeTest(
  "e2e: an agent killed mid-burst and restarted, with ADDs retried and DELs sent, leaves pools and endpoints consistent",
  async () => {
    await using env = await e2e("e2e-crash");
    const [node] = await env.startNodes(1);
    const pool = await env.pool("v4", { subnet: "198.18.0.0/15", ips: ["198.18.10.1-198.18.10.200"] });
    const count = 20;
    const pods = await Promise.all(
      Array.from(
        { length: count },
        (_, i) => env.createPod(`burst-${i}`, node, { annotations: ippool([pool]) }),
      ),
    );
    const sandboxes = await Promise.all(pods.map((p) => env.sandbox(p, node)));

    // Pods start one after another, as a runtime brings them up; the agent is SIGKILLed once a third of them
    // hold addresses, so that some ADDs are done and some may be inside the agent; the last pods start only
    // after the kill (group commit can record a whole batch in one write, so timing alone cannot promise that
    // an ADD is still to come when the kill lands).
    const late = Math.floor(count / 4);
    const early = Promise.all(
      sandboxes.slice(0, count - late).map(async (sb, i) => {
        await new Promise((r) => setTimeout(r, i * 40));
        return await env.add(sb);
      }),
    );
    await untilRecords(env.http, pool, count / 3, 60_000);
    await node.agent.kill();
    const runs = [
      ...await early,
      ...await Promise.all(sandboxes.slice(count - late).map((sb) => env.add(sb))),
    ];
    const failed = sandboxes.filter((_, i) => runs[i].code !== 0);
    for (const run of runs.slice(count - late)) {
      assert.equal(run.json?.code, 11, `an ADD while the agent is down is "try again later": ${run.stdout}`);
    }
    assert.ok(failed.length < count, "no ADD finished before the agent was killed");

    await node.restartAgent();
    // As a runtime does for a sandbox whose ADD failed: DEL it, then set up a new sandbox and ADD again.
    const live = sandboxes.filter((sb) => !failed.includes(sb));
    for (const sb of failed) {
      const del = await env.del(sb);
      assert.equal(del.code, 0, `DEL ${sb.pod.name}: ${del.stdout} ${del.stderr}`);
    }
    const retried = await Promise.all(failed.map(async (old) => {
      const sb = await env.sandbox(old.pod, node);
      const add = await env.add(sb);
      assert.equal(add.code, 0, `retry ${sb.pod.name}: ${add.stdout} ${add.stderr}`);
      return sb;
    }));
    const all = [...live, ...retried];

    assert.deepEqual(await consistencyProblems(env.http, env.namespace, [pool]), []);
    const records = await poolRecords(env.http, pool);
    assert.equal(Object.keys(records).length, count, JSON.stringify(records));
    const endpoints = await listEndpoints(env.http, env.namespace);
    assert.equal(endpoints.length, count);
    for (const sb of all) {
      const ep = endpoints.find((e) => e.metadata.name === sb.pod.name);
      assert.equal(ep?.status.current.uid, sb.pod.uid, sb.pod.name);
      assert.deepEqual(
        await addressesIn(sb.netns, "eth0", 4),
        [ep?.status.current.ips?.[0]?.ipv4],
        sb.pod.name,
      );
    }

    // Every pod goes away: nothing may be left behind.
    for (const sb of all) {
      const del = await env.deletePod(sb);
      assert.equal(del.code, 0, `DEL ${sb.pod.name}: ${del.stdout} ${del.stderr}`);
    }
    assert.deepEqual(await poolRecords(env.http, pool), {});
    await eventually(
      "every SpiderEndpoint of the deleted pods to be gone",
      async () => (await listEndpoints(env.http, env.namespace)).length === 0 ? true : undefined,
    );
  },
);

kubeTest(
  "e2e: an agent killed mid-DEL-burst and restarted, with DELs retried and a CNI GC, leaves no record or endpoint",
  async () => {
    await using env = await e2e("e2e-crashdel");
    const [node] = await env.startNodes(1);
    const pool = await env.pool("v4", { subnet: "198.18.0.0/15", ips: ["198.18.11.1-198.18.11.200"] });
    const count = 20;
    const sandboxes = await Promise.all(Array.from({ length: count }, async (_, i) => {
      const pod = await env.createPod(`gone-${i}`, node, { annotations: ippool([pool]) });
      const sb = await env.sandbox(pod, node);
      const add = await env.add(sb);
      assert.equal(add.code, 0, `${pod.name}: ${add.stdout} ${add.stderr}`);
      return sb;
    }));
    const podsPath = `/api/v1/namespaces/${env.namespace}/pods`;
    for (const sb of sandboxes) await env.http.delete(`${podsPath}/${sb.pod.name}`);

    // The kubelet tears the deleted pods down one after another; the agent dies a third of the way in.
    const burst = Promise.all(sandboxes.map(async (sb, i) => {
      await new Promise((r) => setTimeout(r, i * 40));
      return await env.del(sb);
    }));
    await untilRecordsAtMost(env.http, pool, (2 * count) / 3, 60_000);
    await node.agent.kill();
    await burst;
    await node.restartAgent();

    // A DEL that failed is retried until it succeeds; then the runtime's GC names the attachments it still has.
    for (const sb of sandboxes.filter((s) => s.attached.size > 0)) {
      const del = await env.del(sb);
      assert.equal(del.code, 0, `retried DEL ${sb.pod.name}: ${del.stdout} ${del.stderr}`);
    }
    const gc = await execCni({
      command: "GC",
      conf: { ...env.conf(node), cniVersion: "1.1.0", "cni.dev/valid-attachments": [] },
      containerId: "",
      netns: "",
      ifName: "",
      pod: { namespace: env.namespace, name: "", uid: "" },
      plugin: `${DIST_CNI}/spiderpool`,
    });
    assert.equal(gc.code, 0, gc.stdout + gc.stderr);
    for (const sb of sandboxes) {
      await env.http.delete(`${podsPath}/${sb.pod.name}`, { gracePeriodSeconds: 0 });
    }

    assert.deepEqual(await poolRecords(env.http, pool), {});
    await eventually(
      "every SpiderEndpoint of the deleted pods to be gone",
      async () => (await listEndpoints(env.http, env.namespace)).length === 0 ? true : undefined,
    );
  },
);

kubeTest("e2e: DEL arriving after the pod object is already gone still frees its address", async () => {
  await using env = await e2e("e2e-delgone");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("v4", { subnet: "203.0.113.0/24", ips: ["203.0.113.130-203.0.113.139"] });
  const pod = await env.createPod("vanished", node, { annotations: ippool([pool]) });
  const sb = await env.sandbox(pod, node);
  assert.equal((await env.add(sb)).code, 0);
  await env.http.delete(`/api/v1/namespaces/${env.namespace}/pods/vanished`, { gracePeriodSeconds: 0 });

  const del = await env.del(sb);
  assert.equal(del.code, 0, del.stdout + del.stderr);
  assert.deepEqual(await poolRecords(env.http, pool), {});
  await eventually(
    "the SpiderEndpoint of the vanished pod to be gone",
    async () => await getEndpoint(env.http, env.namespace, "vanished") === undefined ? true : undefined,
  );
});

kubeTest("e2e: CNI GC releases only the attachments the runtime no longer lists", async () => {
  await using env = await e2e("e2e-gc");
  const [node] = await env.startNodes(1);
  const pool = await env.pool("v4", { subnet: "198.51.100.0/24", ips: ["198.51.100.130-198.51.100.139"] });
  const sandboxes = [];
  for (const name of ["keep-a", "keep-b", "lost", "leaving"]) {
    const sb = await env.sandbox(await env.createPod(name, node, { annotations: ippool([pool]) }), node);
    assert.equal((await env.add(sb)).code, 0, name);
    sandboxes.push(sb);
  }
  const [a, b, , leaving] = sandboxes;
  // "lost" was deleted and its DEL never came (a runtime restart); "leaving" is terminating within its grace
  // period, so its sandbox may still run although the runtime does not list it; the runtime still has a and b.
  await env.http.delete(`/api/v1/namespaces/${env.namespace}/pods/lost`, { gracePeriodSeconds: 0 });
  await env.http.delete(`/api/v1/namespaces/${env.namespace}/pods/leaving`);
  const before = await poolRecords(env.http, pool);

  const gc = await execCni({
    command: "GC",
    conf: {
      ...env.conf(node),
      cniVersion: "1.1.0",
      "cni.dev/valid-attachments": [a, b].map((sb) => ({ containerID: sb.containerId, ifname: "eth0" })),
    },
    containerId: "",
    netns: "",
    ifName: "",
    pod: { namespace: env.namespace, name: "", uid: "" },
    plugin: `${DIST_CNI}/spiderpool`,
  });
  assert.equal(gc.code, 0, gc.stdout + gc.stderr);
  const after = await poolRecords(env.http, pool);
  const holders = Object.values(after).map((r) => r.podUid).sort();
  assert.deepEqual(holders, [a.pod.uid, b.pod.uid, leaving.pod.uid].sort());
  assert.equal(Object.keys(before).length, 4);
  assert.equal((await getEndpoint(env.http, env.namespace, "lost"))?.metadata.finalizers?.length ?? 0, 0);
});
