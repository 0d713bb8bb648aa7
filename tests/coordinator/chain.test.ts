// The coordinator end to end: the real control plane, a real `spiderpool agent` per simulated node serving the
// SpiderCoordinator (its status written here as the controller would), Debian's `bridge` (standing in for
// macvlan, which this kernel lacks) with `spiderpool` as IPAM, then `coordinator`, as a runtime chains them.
// Around the node: a router on both pod networks (strict reverse-path filtering, as underlay routers do) and
// a client network behind it. Traffic proves each behaviour; DEL must leave nothing behind.

import assert from "node:assert/strict";
import { AgentClient } from "../../src/agentapi/client.ts";
import { API_VERSION, PLURAL } from "../../src/api/constants.ts";
import type { CoordinatorSpec } from "../../src/api/types.ts";
import { NotFoundError } from "../../src/kube/client.ts";
import { kubeTest } from "../kube/harness.ts";
import { type CniRun, execCni, expectOk, type PodRef, spiderpoolBridgeConf } from "../e2e/cni.ts";
import { type E2E, e2e, eventually, type Sandbox } from "../e2e/env.ts";
import { addNetns, delNetns, ip, netnsPath, shortId } from "../e2e/netns.ts";
import type { SimNode } from "../e2e/node_sim.ts";
import { snapshot } from "../net/helpers.ts";
import { COORDINATOR, coordinatorConf, counters, pingFrom } from "./harness.ts";

const NODE_IP = "203.0.113.2";
const SERVICE_IP = "198.18.0.10";
const CLIENT_IP = "198.19.5.2";
const COORDS = `/apis/${API_VERSION}/${PLURAL.coordinator}`;

/** The SpiderCoordinator `default`, with the status its controller would write. */
async function coordinator(
  env: E2E,
  spec: CoordinatorSpec,
  status: {
    phase: "Synced" | "NotReady";
    reason?: string;
    overlayPodCIDR?: string[];
    serviceCIDR?: string[];
  },
): Promise<void> {
  const { http } = env;
  await http.delete(`${COORDS}/default`).catch((e) => {
    if (!(e instanceof NotFoundError)) throw e;
  });
  await eventually("an earlier SpiderCoordinator default to go", async () => {
    try {
      await http.get(`${COORDS}/default`);
      return undefined;
    } catch (e) {
      if (e instanceof NotFoundError) return true;
      throw e;
    }
  });
  const { body } = await http.post<{ metadata: { resourceVersion: string } }>(COORDS, {
    apiVersion: API_VERSION,
    kind: "SpiderCoordinator",
    metadata: { name: "default" },
    spec: { podCIDRType: "cluster", ...spec },
  });
  env.scope.track(`${COORDS}/default`);
  await http.put(`${COORDS}/default/status`, {
    apiVersion: API_VERSION,
    kind: "SpiderCoordinator",
    metadata: { name: "default", resourceVersion: body.metadata.resourceVersion },
    status,
  });
}

/** Waits until the node's agent answers for `pod` as the SpiderCoordinator now says. */
async function agentServes(
  node: SimNode,
  pod: PodRef,
  check: (ok: boolean, text: string) => boolean,
): Promise<void> {
  const agent = new AgentClient(node.agent.socketPath, { timeoutMs: 5_000 });
  await eventually("the agent to serve the SpiderCoordinator", async () => {
    try {
      const cfg = await agent.coordinatorConfig({ podName: pod.name, podNamespace: pod.namespace });
      return check(true, JSON.stringify(cfg)) || undefined;
    } catch (e) {
      return check(false, (e as Error).message) || undefined;
    }
  });
}

/**
 * The node's surroundings: an uplink to a router (the node's address 203.0.113.2), the two pod networks as
 * bridges in the node namespace with the router on each (192.0.2.1, 198.51.100.1), a client network behind
 * the router (198.19.5.0/24), and a "service" address on the node's lo.
 */
async function surroundings(
  node: SimNode,
): Promise<{ router: string; client: string; bridge2: string } & AsyncDisposable> {
  const id = shortId(6);
  const router = `rt-${id}`;
  const client = `cl-${id}`;
  const bridge2 = `b2${id}`;
  await addNetns(router);
  await addNetns(client);
  const n = node.netns;
  const veth = async (a: string, aNs: string, b: string, bNs: string) => {
    await ip("-n", aNs, "link", "add", "name", a, "type", "veth", "peer", "name", b, "netns", netnsPath(bNs));
    await ip("-n", aNs, "link", "set", a, "up");
    await ip("-n", bNs, "link", "set", b, "up");
  };
  await ip(
    "netns",
    "exec",
    router,
    "sysctl",
    "-qw",
    "net.ipv4.ip_forward=1",
    "net.ipv4.conf.all.rp_filter=1",
    "net.ipv4.conf.default.rp_filter=1",
  );
  await veth("ens0", n, "n0", router);
  await ip("-n", n, "addr", "add", `${NODE_IP}/24`, "dev", "ens0");
  await ip("-n", n, "route", "add", "default", "via", "203.0.113.1");
  await ip("-n", router, "addr", "add", "203.0.113.1/24", "dev", "n0");
  for (
    const [bridge, leg, rleg, gw] of [[node.bridge, "l1", "b1", "192.0.2.1/24"], [
      bridge2,
      "l2",
      "b2",
      "198.51.100.1/24",
    ]]
  ) {
    await ip("-n", n, "link", "add", "name", bridge, "type", "bridge");
    await ip("-n", n, "link", "set", bridge, "up");
    await veth(leg, n, rleg, router);
    await ip("-n", n, "link", "set", leg, "master", bridge);
    await ip("-n", router, "addr", "add", gw, "dev", rleg);
  }
  await veth("c0", router, "eth0", client);
  await ip("-n", router, "addr", "add", "198.19.5.1/24", "dev", "c0");
  await ip("-n", client, "addr", "add", `${CLIENT_IP}/24`, "dev", "eth0");
  await ip("-n", client, "route", "add", "default", "via", "198.19.5.1");
  await ip("-n", n, "addr", "add", `${SERVICE_IP}/32`, "dev", "lo");
  return {
    router,
    client,
    bridge2,
    async [Symbol.asyncDispose]() {
      await delNetns(client);
      await delNetns(router);
    },
  };
}

interface Network {
  ifName: string;
  bridge: string;
  coordinator: Record<string, unknown>;
}

/** Runs ADD for one network as a runtime would: bridge (IPAM spiderpool), then coordinator with prevResult. */
async function chainAdd(
  env: E2E,
  sb: Sandbox,
  net: Network,
): Promise<{ bridge: CniRun; coordinator: CniRun }> {
  const base = {
    containerId: sb.containerId,
    netns: netnsPath(sb.netns),
    ifName: net.ifName,
    pod: sb.pod,
    nodeNetns: sb.node.netns,
  };
  const bridgeConf = spiderpoolBridgeConf({
    name: `net-${net.ifName}`,
    bridge: net.bridge,
    ipam: { ipam_unix_socket_path: sb.node.agent.socketPath, log_file_path: `${env.dir}/plugin.log` },
  });
  const bridge = expectOk(
    await execCni({ command: "ADD", conf: bridgeConf, ...base }),
    `bridge ADD ${net.ifName}`,
  );
  sb.attached.set(net.ifName, bridgeConf);
  const conf = coordinatorConf({
    name: `net-${net.ifName}`,
    prevResult: bridge.json,
    keys: net.coordinator,
    dir: env.dir,
    socket: sb.node.agent.socketPath,
  });
  const coordinator = await execCni({ command: "ADD", conf, plugin: COORDINATOR, ...base });
  return { bridge, coordinator };
}

/** DEL for one network, in the runtime's order: coordinator first, then bridge. */
async function chainDel(env: E2E, sb: Sandbox, net: Network, prevResult: unknown): Promise<void> {
  const base = {
    containerId: sb.containerId,
    netns: netnsPath(sb.netns),
    ifName: net.ifName,
    pod: sb.pod,
    nodeNetns: sb.node.netns,
  };
  const conf = coordinatorConf({
    name: `net-${net.ifName}`,
    prevResult,
    keys: net.coordinator,
    dir: env.dir,
    socket: sb.node.agent.socketPath,
  });
  expectOk(
    await execCni({ command: "DEL", conf, plugin: COORDINATOR, ...base }),
    `coordinator DEL ${net.ifName}`,
  );
  expectOk(await env.del(sb, { ifName: net.ifName }), `bridge DEL ${net.ifName}`);
}

/** A result as the protocol layer prints it: an empty `dns` is left out (it says nothing). */
function printed(result: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!result) return result;
  const { dns, ...rest } = result;
  return dns && Object.keys(dns).length > 0 ? result : rest;
}

const address = (run: CniRun) => ((run.json?.ips ?? []) as { address: string }[])[0].address.split("/")[0];

kubeTest(
  "coordinator e2e: an underlay pod with two NICs reaches the node, a service and clients on both networks, " +
    "answers the node through veth0, and DEL leaves nothing behind",
  async () => {
    await using env = await e2e("coord-underlay");
    const [node] = await env.startNodes(1);
    await using around = await surroundings(node);
    const pool1 = await env.pool("eth0", {
      subnet: "192.0.2.0/24",
      ips: ["192.0.2.10-192.0.2.20"],
      gateway: "192.0.2.1",
    });
    const pool2 = await env.pool("net1", {
      subnet: "198.51.100.0/24",
      ips: ["198.51.100.10-198.51.100.20"],
      gateway: "198.51.100.1",
      routes: [{ dst: "198.19.5.0/24", gw: "198.51.100.1" }],
    });
    const pod = await env.createPod("web", node, {
      annotations: {
        "ipam.spidernet.io/ippools": JSON.stringify([
          { interface: "eth0", ipv4: [pool1] },
          { interface: "net1", ipv4: [pool2], cleangateway: true },
        ]),
      },
    });
    await coordinator(env, {
      mode: "auto",
      hijackCIDR: ["169.254.0.0/16"],
      podMACPrefix: "0a:1b",
      podRPFilter: 2,
      txQueueLen: 2000,
    }, {
      phase: "Synced",
      overlayPodCIDR: ["198.18.128.0/24"],
      serviceCIDR: ["198.18.0.0/24"],
    });
    await agentServes(node, pod, (ok, text) => ok && text.includes("198.18.0.0/24"));
    const sb = await env.sandbox(pod, node);
    const nodeBefore = await snapshot(netnsPath(node.netns), node.netns);
    const podBefore = await snapshot(netnsPath(sb.netns), sb.netns);

    const eth0: Network = { ifName: "eth0", bridge: node.bridge, coordinator: {} };
    const net1: Network = { ifName: "net1", bridge: around.bridge2, coordinator: {} };
    // The router learns the pod's first MAC before the coordinator changes it; the announcement must update it.
    const first = await chainAdd(env, sb, { ...eth0, coordinator: { mode: "disable" } });
    const ip0 = address(first.bridge);
    assert.ok(await pingFrom(around.router, ip0), "the router reaches the pod on the first network");
    await new Promise((r) => setTimeout(r, 1100)); // the kernel ignores ARP updates within 1 s of the last one
    const add0 = await execCni({
      command: "ADD",
      conf: coordinatorConf({
        name: "net-eth0",
        prevResult: first.bridge.json,
        keys: {},
        dir: env.dir,
        socket: node.agent.socketPath,
      }),
      plugin: COORDINATOR,
      containerId: sb.containerId,
      netns: netnsPath(sb.netns),
      ifName: "eth0",
      pod,
      nodeNetns: node.netns,
    });
    assert.equal(add0.code, 0, add0.stdout + add0.stderr);
    assert.deepEqual(
      add0.json,
      printed(first.bridge.json),
      "the coordinator prints its prevResult unchanged",
    );
    const add1 = await chainAdd(env, sb, net1);
    assert.equal(add1.coordinator.code, 0, add1.coordinator.stdout + add1.coordinator.stderr);
    const ip1 = address(add1.bridge);

    // MAC prefix + the pod's address, announced: the router's cache has the new MAC without new traffic.
    const mac = `0a:1b:${ip0.split(".").map((b) => Number(b).toString(16).padStart(2, "0")).join(":")}`;
    assert.equal(JSON.parse(await ip("-n", sb.netns, "-j", "link", "show", "eth0"))[0].address, mac);
    assert.match(await ip("-n", around.router, "neigh", "show", ip0), new RegExp(`lladdr ${mac}`));
    // Sysctls and queue length read back.
    assert.equal(
      (await ip("netns", "exec", sb.netns, "cat", "/proc/sys/net/ipv4/conf/all/rp_filter")).trim(),
      "2",
    );
    assert.equal(JSON.parse(await ip("-n", sb.netns, "-j", "link", "show", "eth0"))[0].txqlen, 2000);

    // The node's address and a service address go through veth0.
    for (const target of [NODE_IP, SERVICE_IP]) {
      const c0 = await counters(sb.netns, "veth0");
      assert.ok(await pingFrom(sb.netns, target), `the pod reaches ${target}`);
      const c1 = await counters(sb.netns, "veth0");
      assert.ok(c1.tx > c0.tx && c1.rx > c0.rx, `${target} through veth0: ${JSON.stringify([c0, c1])}`);
    }

    // A client on another network reaches both NICs; each reply leaves by the NIC its request came in on
    // (the router drops anything else: strict reverse-path filtering).
    for (const [target, dev] of [[ip0, "eth0"], [ip1, "net1"]]) {
      const c0 = await counters(sb.netns, dev);
      assert.ok(await pingFrom(around.client, target), `the client reaches ${target} (${dev})`);
      const c1 = await counters(sb.netns, dev);
      assert.ok(c1.tx > c0.tx, `the reply to the client leaves by ${dev}: ${JSON.stringify([c0, c1])}`);
    }
    // What a user sees in the pod (the README shows this output).
    const rules = await ip("-n", sb.netns, "rule", "show");
    console.log(`pod ${pod.name}: ip rule\n${rules}`);
    for (const table of ["main", "100", "101"]) {
      console.log(
        `ip route show table ${table}\n${await ip("-n", sb.netns, "route", "show", "table", table)}`,
      );
    }
    assert.match(rules, new RegExp(`1001:\\s+from ${ip1.replaceAll(".", "\\.")} lookup 101`));
    assert.match(
      await ip("-n", sb.netns, "route", "show", "table", "101"),
      /198\.19\.5\.0\/24 via 198\.51\.100\.1 dev net1/,
    );

    // A connection the node opens from an address the pod has no route for (added after the ADD) is answered
    // through veth0, thanks to the conntrack mark; without the mark rules the answer would go out eth0.
    await ip("-n", node.netns, "addr", "add", "198.19.9.1/32", "dev", "lo");
    const c0 = await counters(sb.netns, "veth0");
    assert.ok(await pingFrom(node.netns, ip0, "198.19.9.1"), "the node reaches the pod from a new address");
    const c1 = await counters(sb.netns, "veth0");
    assert.ok(c1.tx > c0.tx, `the reply goes back through veth0: ${JSON.stringify([c0, c1])}`);
    const restore = ["mangle", "OUTPUT", "-j", "CONNMARK", "--restore-mark"];
    await ip("netns", "exec", sb.netns, "iptables", "-t", restore[0], "-D", ...restore.slice(1));
    assert.equal(
      await pingFrom(node.netns, ip0, "198.19.9.1"),
      false,
      "without the mark rules the reply is lost",
    );
    await ip("netns", "exec", sb.netns, "iptables", "-t", restore[0], "-A", ...restore.slice(1));
    await ip("-n", node.netns, "addr", "del", "198.19.9.1/32", "dev", "lo");

    // CHECK with prevResult, as a runtime sends it.
    const check = await execCni({
      command: "CHECK",
      conf: coordinatorConf({
        name: "net-net1",
        prevResult: add1.bridge.json,
        keys: {},
        dir: env.dir,
        socket: node.agent.socketPath,
      }),
      plugin: COORDINATOR,
      containerId: sb.containerId,
      netns: netnsPath(sb.netns),
      ifName: "net1",
      pod,
      nodeNetns: node.netns,
    });
    assert.equal(check.code, 0, check.stdout);

    await chainDel(env, sb, net1, add1.bridge.json);
    await chainDel(env, sb, eth0, first.bridge.json);
    assert.deepEqual(
      await snapshot(netnsPath(sb.netns), sb.netns),
      podBefore,
      "the pod namespace is as before",
    );
    const nodeAfter = await snapshot(netnsPath(node.netns), node.netns);
    assert.deepEqual(
      nodeAfter.filter((l) => !l.includes(around.bridge2) && !l.includes(node.bridge)),
      nodeBefore.filter((l) => !l.includes(around.bridge2) && !l.includes(node.bridge)),
      "the node namespace is as before",
    );
  },
);

kubeTest(
  "coordinator e2e: overlay mode for a second NIC, with podDefaultRouteNIC from the pod's annotation",
  async () => {
    await using env = await e2e("coord-overlay");
    const [node] = await env.startNodes(1);
    await using around = await surroundings(node);
    const pool2 = await env.pool("net1", {
      subnet: "198.51.100.0/24",
      ips: ["198.51.100.10-198.51.100.20"],
      gateway: "198.51.100.1",
    });
    const pod = await env.createPod("db", node, {
      annotations: {
        "ipam.spidernet.io/ippools": JSON.stringify([{ interface: "net1", ipv4: [pool2] }]),
        "ipam.spidernet.io/default-route-nic": "net1",
      },
    });
    await coordinator(env, { mode: "auto" }, {
      phase: "Synced",
      overlayPodCIDR: ["198.18.128.0/24"],
      serviceCIDR: ["198.18.0.0/24"],
    });
    await agentServes(node, pod, (ok, text) => ok && text.includes('"podDefaultRouteNIC":"net1"'));
    const sb = await env.sandbox(pod, node);
    // eth0 from an overlay CNI (as Calico does it): a veth to the node, a /32, the default via 169.254.1.1.
    const hostSide = `cali${shortId(8)}`;
    await ip(
      "-n",
      node.netns,
      "link",
      "add",
      "name",
      hostSide,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      netnsPath(sb.netns),
    );
    await ip("-n", node.netns, "link", "set", hostSide, "up");
    await ip("-n", sb.netns, "addr", "add", "198.18.128.5/32", "dev", "eth0");
    await ip("-n", sb.netns, "link", "set", "eth0", "up");
    await ip("-n", sb.netns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link");
    await ip("-n", sb.netns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0");
    await ip("-n", node.netns, "route", "add", "198.18.128.5/32", "dev", hostSide);
    const podBefore = await snapshot(netnsPath(sb.netns), sb.netns);
    const nodeBefore = await snapshot(netnsPath(node.netns), node.netns);

    const net1: Network = { ifName: "net1", bridge: around.bridge2, coordinator: {} };
    const add = await chainAdd(env, sb, net1);
    assert.equal(add.coordinator.code, 0, add.coordinator.stdout + add.coordinator.stderr);
    const ip1 = address(add.bridge);
    const log = await Deno.readTextFile(`${env.dir}/coordinator.log`);
    assert.match(log, /overlay mode, first NIC, table 101/);
    // net1 takes the default route (the annotation); eth0's routes move to table 101, chosen by eth0's address,
    // so what comes in through the overlay is answered through it (#3683).
    assert.match(
      await ip("-n", sb.netns, "route", "show", "default"),
      /default via 198\.51\.100\.1 dev net1/,
    );
    assert.match(
      await ip("-n", sb.netns, "route", "show", "table", "101"),
      /default via 169\.254\.1\.1 dev eth0/,
    );
    assert.match(await ip("-n", sb.netns, "rule", "show"), /from 198\.18\.128\.5 lookup 101/);
    // The node reaches net1's address through the overlay veth (its rule table), and services go through eth0.
    assert.match(
      await ip("-n", node.netns, "route", "show", "table", "500"),
      new RegExp(`${ip1.replaceAll(".", "\\.")} dev ${hostSide}`),
    );
    assert.match(
      await ip("-n", sb.netns, "route", "show", "198.18.0.0/24"),
      new RegExp(`via ${NODE_IP} dev eth0`),
    );
    const c0 = await counters(sb.netns, "eth0");
    assert.ok(await pingFrom(sb.netns, SERVICE_IP), "the pod reaches the service address");
    assert.ok((await counters(sb.netns, "eth0")).tx > c0.tx, "through the overlay NIC");

    await chainDel(env, sb, net1, add.bridge.json);
    assert.deepEqual(await snapshot(netnsPath(sb.netns), sb.netns), podBefore);
    const strip = (lines: string[]) => lines.filter((l) => !l.includes(around.bridge2));
    assert.deepEqual(strip(await snapshot(netnsPath(node.netns), node.netns)), strip(nodeBefore));
  },
);

kubeTest(
  "coordinator e2e: a SpiderCoordinator that is not Synced fails ADD with its reason; mode disable does not care",
  async () => {
    await using env = await e2e("coord-notready");
    const [node] = await env.startNodes(1);
    const pool = await env.pool("eth0", {
      subnet: "192.0.2.0/24",
      ips: ["192.0.2.10-192.0.2.20"],
      gateway: "192.0.2.1",
    });
    const pod = await env.createPod("api", node, {
      annotations: { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [pool] }) },
    });
    await coordinator(env, { mode: "auto" }, {
      phase: "NotReady",
      reason: "no kubeadm-config and no kube-controller-manager pod",
    });
    await agentServes(node, pod, (ok, text) => !ok && text.includes("NotReady"));
    const sb = await env.sandbox(pod, node);
    await ip("-n", node.netns, "link", "add", "name", node.bridge, "type", "bridge");
    const run = await chainAdd(env, sb, { ifName: "eth0", bridge: node.bridge, coordinator: {} });
    assert.equal(run.coordinator.code, 1);
    assert.equal(run.coordinator.json?.code, 100);
    assert.match(
      String(run.coordinator.json?.msg),
      /cannot give the coordinator settings for pod .*\/api: SpiderCoordinator "default" is not ready \(phase NotReady\): no kubeadm-config.*; fix the SpiderCoordinator, or set overlayPodCIDR and serviceCIDR/,
    );
    const disabled = await execCni({
      command: "ADD",
      conf: coordinatorConf({
        prevResult: run.bridge.json,
        keys: { mode: "disable" },
        dir: env.dir,
        socket: node.agent.socketPath,
      }),
      plugin: COORDINATOR,
      containerId: sb.containerId,
      netns: netnsPath(sb.netns),
      pod,
      nodeNetns: node.netns,
    });
    assert.equal(disabled.code, 0, disabled.stdout);
    assert.deepEqual(disabled.json, printed(run.bridge.json));
    // Naming the CIDRs in the network configuration makes the ADD independent of the SpiderCoordinator (#4307).
    const selfSufficient = await execCni({
      command: "ADD",
      conf: coordinatorConf({
        prevResult: run.bridge.json,
        keys: { overlayPodCIDR: ["198.18.128.0/24"], serviceCIDR: ["198.18.0.0/24"] },
        dir: env.dir,
        socket: node.agent.socketPath,
      }),
      plugin: COORDINATOR,
      containerId: sb.containerId,
      netns: netnsPath(sb.netns),
      pod,
      nodeNetns: node.netns,
    });
    assert.equal(selfSufficient.code, 0, selfSufficient.stdout);
    await execCni({
      command: "DEL",
      conf: coordinatorConf({
        prevResult: run.bridge.json,
        keys: {},
        dir: env.dir,
        socket: node.agent.socketPath,
      }),
      plugin: COORDINATOR,
      containerId: sb.containerId,
      netns: netnsPath(sb.netns),
      pod,
      nodeNetns: node.netns,
    });
  },
);
