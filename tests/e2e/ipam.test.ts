// IPAM end to end, through the real pieces: the control plane, one `dist/spiderpool agent` process per
// simulated node, Debian's bridge plugin delegating to `dist/cni/spiderpool` in one network namespace per pod.

import assert from "node:assert/strict";
import { kubeTest } from "../kube/harness.ts";
import { resultAddresses } from "./cni.ts";
import { bareIP, consistencyProblems, e2e, eventually, getEndpoint, listEndpoints, poolRecords } from "./env.ts";
import { addressesIn, linksIn, ping } from "./netns.ts";

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
