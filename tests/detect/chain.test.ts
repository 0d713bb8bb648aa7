// IP-conflict and gateway detection through the real chain: Debian's `bridge` plugin delegating to
// `dist/cni/spiderpool`, a real `dist/spiderpool agent` on the real control plane with enableIPConflictDetection
// and enableGatewayDetection in its ConfigMap, and namespaces on the node's bridge that hold the pool's first
// address, hold the gateway, or keep a stale neighbour entry for the address the pod gets.

import assert from "node:assert/strict";
import { kubeTest } from "../kube/harness.ts";
import { bareIP, type E2E, e2e, getEndpoint, poolRecords, type Sandbox } from "../e2e/env.ts";
import { addNetns, delNetns, ip, netnsPath, shortId } from "../e2e/netns.ts";
import { type SimNode, startSimNode } from "../e2e/node_sim.ts";
import { type CniRun, DIST_CNI, execCni } from "../e2e/cni.ts";
import { SpiderpoolErrorCode } from "../../src/plugins/spiderpool.ts";
import { neighbour } from "./lan.ts";

const DETECTION_ON = "enableIPConflictDetection: true\nenableGatewayDetection: true\n";

/** A node whose agent has detection on (or the given ConfigMap), cleaned up with the test's world. */
async function nodeWith(env: E2E, configYaml: string): Promise<SimNode> {
  const node = await startSimNode({
    http: env.http,
    kubeconfig: env.scope.cluster.kubeconfigPath,
    name: `${env.namespace}-n${env.nodes.length + 1}`,
    dir: env.dir,
    configYaml,
  });
  env.nodes.push(node);
  // The bridge plugin reuses a bridge of its name; made now, other hosts can join it before the first ADD.
  await ip("-n", node.netns, "link", "add", node.bridge, "type", "bridge");
  await ip("-n", node.netns, "link", "set", node.bridge, "up");
  return node;
}

interface Host {
  ns: string;
  mac: string;
}

/** Another host on `node`'s bridge with these addresses; removed when the test ends. */
async function hostOn(node: SimNode, cleanup: AsyncDisposableStack, addrs: string[]): Promise<Host> {
  const ns = `dt-${shortId(8)}`;
  await addNetns(ns);
  cleanup.defer(() => delNetns(ns));
  const port = `dt${shortId(8)}`;
  await ip("-n", node.netns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns);
  await ip("-n", node.netns, "link", "set", port, "master", node.bridge, "up");
  for (const a of addrs) {
    await ip("-n", ns, "addr", "add", a, "dev", "eth0", ...(a.includes(":") ? ["nodad"] : []));
  }
  await ip("-n", ns, "link", "set", "eth0", "up");
  return { ns, mac: JSON.parse(await ip("-n", ns, "-j", "link", "show", "eth0"))[0].address };
}

const ippool = (v4: string[], v6: string[] = []) => ({
  "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: v4, ipv6: v6 }),
});

/** The CNI error of a failed ADD: `{code, msg}` as the bridge plugin passed it on. */
function cniError(run: CniRun): { code: number; msg: string } {
  assert.notEqual(run.code, 0, `ADD should have failed: ${run.stdout}`);
  return run.json as { code: number; msg: string };
}

async function podMac(sb: Sandbox): Promise<string> {
  return JSON.parse(await ip("-n", sb.netns, "-j", "link", "show", "eth0"))[0].address;
}

/** The addresses the pod's endpoint still records. */
async function endpointAddresses(env: E2E, pod: string): Promise<string[]> {
  const ep = await getEndpoint(env.http, env.namespace, pod);
  return (ep?.status.current.ips ?? []).flatMap((d) => [d.ipv4, d.ipv6]).filter((a): a is string => !!a);
}

kubeTest(
  "detect chain: an IPv4 address another host holds fails the ADD naming its MAC, and is released",
  async () => {
    await using env = await e2e("dt-conflict4");
    await using cleanup = new AsyncDisposableStack();
    const node = await nodeWith(env, DETECTION_ON);
    const holder = await hostOn(node, cleanup, ["192.0.2.10/24"]);
    const gw = await hostOn(node, cleanup, ["192.0.2.1/24"]);
    const pool = await env.pool("v4", {
      subnet: "192.0.2.0/24",
      ips: ["192.0.2.10-192.0.2.20"],
      gateway: "192.0.2.1",
    });
    const pod = await env.createPod("web", node, { annotations: ippool([pool]) });
    const sb = await env.sandbox(pod, node);

    const err = cniError(await env.add(sb));
    assert.equal(err.code, SpiderpoolErrorCode.ipConflict, err.msg);
    assert.match(err.msg, /192\.0\.2\.10 allocated to eth0 of pod .*\/web/);
    assert.ok(err.msg.includes(`in use by the host with MAC ${holder.mac}`), err.msg);
    assert.match(err.msg, /the allocation was released/);
    assert.deepEqual(await poolRecords(env.http, pool), {}, "the conflicting address went back to the pool");
    assert.deepEqual(await endpointAddresses(env, "web"), []);
    // The conflict check came first and ended detection: the gateway never cached the pod's MAC for it.
    assert.equal(await neighbour(gw.ns, "192.0.2.10"), "");
  },
);

kubeTest(
  "detect chain: an IPv6 address another host holds fails the ADD naming its MAC, and is released",
  async () => {
    await using env = await e2e("dt-conflict6");
    await using cleanup = new AsyncDisposableStack();
    const node = await nodeWith(env, DETECTION_ON);
    const holder = await hostOn(node, cleanup, ["2001:db8:61::10/64"]);
    await hostOn(node, cleanup, ["2001:db8:61::1/64"]);
    const pool = await env.pool("v6", {
      subnet: "2001:db8:61::/64",
      ips: ["2001:db8:61::10-2001:db8:61::20"],
      gateway: "2001:db8:61::1",
    });
    const pod = await env.createPod("web6", node, { annotations: ippool([], [pool]) });
    const sb = await env.sandbox(pod, node);

    const err = cniError(await env.add(sb));
    assert.equal(err.code, SpiderpoolErrorCode.ipConflict, err.msg);
    assert.ok(err.msg.includes(`2001:db8:61::10 allocated to eth0`), err.msg);
    assert.ok(err.msg.includes(`MAC ${holder.mac}`), err.msg);
    assert.deepEqual(await poolRecords(env.http, pool), {});
    assert.deepEqual(await endpointAddresses(env, "web6"), []);
  },
);

kubeTest(
  "detect chain: a gateway nobody answers for fails the ADD with the gateway error, IPv4 and IPv6",
  async () => {
    await using env = await e2e("dt-gateway");
    await using cleanup = new AsyncDisposableStack();
    const node = await nodeWith(env, DETECTION_ON);
    await hostOn(node, cleanup, ["198.51.100.1/24", "2001:db8:62::1/64"]);
    const v4 = await env.pool("v4", {
      subnet: "198.51.100.0/24",
      ips: ["198.51.100.10-198.51.100.20"],
      gateway: "198.51.100.254",
    });
    const v6 = await env.pool("v6", {
      subnet: "2001:db8:62::/64",
      ips: ["2001:db8:62::10-2001:db8:62::20"],
      gateway: "2001:db8:62::fe",
    });
    for (
      const [name, annotations, gateway, pool] of [
        ["gw4", ippool([v4]), "198.51.100.254", v4],
        ["gw6", ippool([], [v6]), "2001:db8:62::fe", v6],
      ] as const
    ) {
      const pod = await env.createPod(name, node, { annotations });
      const sb = await env.sandbox(pod, node);
      const err = cniError(await env.add(sb));
      assert.equal(err.code, SpiderpoolErrorCode.gatewayUnreachable, err.msg);
      assert.ok(err.msg.includes(`gateway ${gateway} is unreachable`), err.msg);
      assert.match(err.msg, /3 (ARP requests|neighbour solicitations) got no answer/);
      assert.deepEqual(await poolRecords(env.http, pool), {}, `${name}: released`);
    }
  },
);

kubeTest("detect chain: a free address with a present gateway passes, IPv4 and IPv6", async () => {
  await using env = await e2e("dt-pass");
  await using cleanup = new AsyncDisposableStack();
  const node = await nodeWith(env, DETECTION_ON);
  const gw = await hostOn(node, cleanup, ["203.0.113.1/24", "2001:db8:63::1/64"]);
  const v4 = await env.pool("v4", {
    subnet: "203.0.113.0/24",
    ips: ["203.0.113.10-203.0.113.20"],
    gateway: "203.0.113.1",
  });
  const v6 = await env.pool("v6", {
    subnet: "2001:db8:63::/64",
    ips: ["2001:db8:63::10-2001:db8:63::20"],
    gateway: "2001:db8:63::1",
  });
  const pod = await env.createPod("ok", node, { annotations: ippool([v4], [v6]) });
  const sb = await env.sandbox(pod, node);

  const add = await env.add(sb);
  assert.equal(add.code, 0, add.stdout + add.stderr);
  const ips = (add.json?.ips as { address: string }[]).map((i) => bareIP(i.address)).sort();
  assert.deepEqual(ips, ["2001:db8:63::10", "203.0.113.10"]);
  const log = await Deno.readTextFile(`${env.dir}/plugin.log`);
  assert.match(log, /conflict check of 203\.0\.113\.10: no other host answered/);
  assert.match(log, /conflict check of 2001:db8:63::10: no other host answered/);
  assert.ok(log.includes(`gateway 203.0.113.1 of 203.0.113.10: answered from ${gw.mac}`), log);
  assert.ok(log.includes(`gateway 2001:db8:63::1 of 2001:db8:63::10: answered from ${gw.mac}`), log);
  // The gateway check asked from the pod's address: the gateway already knows where the pod is.
  const mac = await podMac(sb);
  for (const a of ["203.0.113.10", "2001:db8:63::10"]) {
    assert.ok((await neighbour(gw.ns, a)).includes(`lladdr ${mac}`), `${a} at the gateway`);
  }
});

kubeTest(
  "detect chain: once the checks pass, neighbours caching an old MAC for the addresses learn the pod's",
  async () => {
    await using env = await e2e("dt-announce");
    await using cleanup = new AsyncDisposableStack();
    const node = await nodeWith(env, DETECTION_ON);
    await hostOn(node, cleanup, ["2001:db8:64::1/64"]);
    const peer = await hostOn(node, cleanup, ["203.0.113.2/24", "2001:db8:64::2/64"]);
    // No IPv4 gateway: its check (a broadcast request from the pod's address) would update the peer's cache
    // by itself. The IPv4 conflict probe (from 0.0.0.0) and the IPv6 checks (to other groups) do not.
    const v4 = await env.pool("v4", { subnet: "203.0.113.0/24", ips: ["203.0.113.10-203.0.113.20"] });
    const v6 = await env.pool("v6", {
      subnet: "2001:db8:64::/64",
      ips: ["2001:db8:64::10-2001:db8:64::20"],
      gateway: "2001:db8:64::1",
    });
    // The peer still caches another MAC for the addresses the pod will get (a previous pod that had them).
    for (const a of ["203.0.113.10", "2001:db8:64::10"]) {
      await ip(
        "-n",
        peer.ns,
        "neigh",
        "add",
        a,
        "lladdr",
        "02:00:5e:00:53:01",
        "dev",
        "eth0",
        "nud",
        "stale",
      );
    }
    const pod = await env.createPod("ann", node, { annotations: ippool([v4], [v6]) });
    // The IPAM plugin is called on its own, as a main plugin calls it: the bridge plugin would also send a
    // gratuitous ARP of its own after configuring the address, and this test is about the IPAM plugin's.
    const pod0 = await hostOn(node, cleanup, []);
    const run = await execCni({
      command: "ADD",
      conf: env.conf(node),
      containerId: `ann${shortId(16)}`,
      netns: netnsPath(pod0.ns),
      ifName: "eth0",
      pod,
      plugin: `${DIST_CNI}/spiderpool`,
    });
    assert.equal(run.code, 0, run.stdout + run.stderr);
    for (const a of ["203.0.113.10", "2001:db8:64::10"]) {
      const entry = await neighbour(peer.ns, a);
      assert.ok(entry.includes(`lladdr ${pod0.mac}`), `${a} at the peer: ${entry}`);
    }
  },
);

kubeTest("detect chain: with detection off (the ConfigMap default) the plugin does not probe", async () => {
  await using env = await e2e("dt-off");
  await using cleanup = new AsyncDisposableStack();
  const node = await nodeWith(env, "");
  await hostOn(node, cleanup, ["192.0.2.10/24"]);
  const pool = await env.pool("v4", {
    subnet: "192.0.2.0/24",
    ips: ["192.0.2.10-192.0.2.20"],
    gateway: "192.0.2.254",
  });
  const pod = await env.createPod("off", node, { annotations: ippool([pool]) });
  const sb = await env.sandbox(pod, node);
  const add = await env.add(sb);
  assert.equal(add.code, 0, add.stdout + add.stderr);
  assert.deepEqual(Object.keys(await poolRecords(env.http, pool)), ["192.0.2.10"]);
  const log = await Deno.readTextFile(`${env.dir}/plugin.log`);
  assert.doesNotMatch(log, /conflict check|gateway .* of/);
  assert.doesNotMatch(log, /not supported by this plugin/);
});
