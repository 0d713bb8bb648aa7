// Local IPAM demo: a real control plane (tests/kube/harness.ts), one simulated node with its
// `dist/spiderpool agent`, a SpiderIPPool, a Pod, and a network namespace wired by Debian's bridge plugin
// delegating IPAM to `dist/cni/spiderpool`. Shows the CNI result, the address inside the namespace, the pool
// status and the SpiderEndpoint; then DEL, and everything it created is removed.
//
// Usage: deno run -A scripts/demo-ipam.ts   (after scripts/build.sh; as root: it creates network namespaces)
// Uses the control plane of $SPIDERPOOL_TEST_KUBECONFIG when set, else starts one and stops it at the end.

import { decodeAllocatedIPs } from "../src/api/allocated.ts";
import { CNI_PATH } from "../tests/e2e/cni.ts";
import { e2e, getEndpoint, readPool } from "../tests/e2e/env.ts";
import { ip, netnsPath } from "../tests/e2e/netns.ts";

const show = (title: string, body: unknown) => {
  console.log(`\n== ${title}`);
  console.log(typeof body === "string" ? body.trimEnd() : JSON.stringify(body, null, 2));
};

async function main(): Promise<number> {
  console.log("demo: starting (or joining) the control plane and one simulated node with its agent ...");
  await using env = await e2e("demo-ipam");
  const [node] = await env.startNodes(1);
  show(
    `agent for node ${node.name}`,
    `pid ${node.agent.pid}, socket ${node.agent.socketPath}, health :${node.agent.healthPort}, ` +
      `metrics :${node.agent.metricsPort}`,
  );

  const pool = await env.pool("v4", {
    subnet: "192.0.2.0/24",
    ips: ["192.0.2.10-192.0.2.20"],
    gateway: "192.0.2.1",
  });
  show(`SpiderIPPool ${pool} (spec)`, (await readPool(env.http, pool)).spec);

  const annotations = { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [pool] }) };
  const pod = await env.createPod("demo", node, { annotations });
  show(`Pod ${pod.namespace}/${pod.name}`, { uid: pod.uid, node: node.name, annotations });

  const sb = await env.sandbox(pod, node);
  const conf = env.conf(node);
  show("network configuration (bridge, IPAM delegated to spiderpool)", conf);
  show(
    "$ CNI_COMMAND=ADD ... /usr/lib/cni/bridge  (in the node's namespace)",
    `CNI_CONTAINERID=${sb.containerId}\nCNI_NETNS=${netnsPath(sb.netns)}\nCNI_IFNAME=eth0\n` +
      `CNI_PATH=${CNI_PATH}\n` +
      `CNI_ARGS=K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_UID=${pod.uid};...`,
  );
  const add = await env.add(sb);
  show(`CNI ADD result (exit ${add.code}, ${add.ms.toFixed(0)} ms)`, add.json ?? add.stdout + add.stderr);
  if (add.code !== 0) return 1;

  show(`$ ip -n ${sb.netns} addr show dev eth0`, await ip("-n", sb.netns, "addr", "show", "dev", "eth0"));
  show(`$ ip -n ${sb.netns} route`, await ip("-n", sb.netns, "route"));

  const status = (await readPool(env.http, pool)).status;
  show(`SpiderIPPool ${pool} status`, status);
  show("status.allocatedIPs, decoded", decodeAllocatedIPs(status?.allocatedIPs, pool));
  const ep = await getEndpoint(env.http, env.namespace, pod.name);
  const { managedFields: _, ...metadata } = (ep?.metadata ?? {}) as Record<string, unknown>;
  show(`SpiderEndpoint ${env.namespace}/${pod.name}`, { metadata, status: ep?.status });

  const del = await env.deletePod(sb);
  show(
    `pod deleted; CNI DEL (exit ${del.code}, ${del.ms.toFixed(0)} ms)`,
    del.stdout || "(no output: success)",
  );
  show(
    `SpiderIPPool ${pool} status after DEL`,
    (await readPool(env.http, pool)).status ?? {},
  );
  console.log("\ndemo: cleaning up (namespaces, bridge, agent process, API objects) ...");
  return 0;
}

if (import.meta.main) {
  let code = 1;
  try {
    code = await main();
    console.log("demo: done");
  } catch (err) {
    console.error(`demo-ipam: ${(err as Error).stack ?? err}`);
  }
  Deno.exit(code);
}
