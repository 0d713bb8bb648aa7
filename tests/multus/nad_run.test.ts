// Rendered NADs run by a container runtime's CNI library: the controller renders a SpiderMultusConfig, and
// its `spec.config`, read back from the API server as Multus reads it, is executed by libcni (cnidriver) in a
// simulated node, with the spiderpool IPAM plugin asking a real agent for the address. This kernel has bridge
// and veth, so a custom SMC with Debian's bridge runs end to end; macvlan, ipvlan and vlan SMCs run with
// Debian's plugins where the kernel has the link type, and are reported as skipped, with the reason, where not.
// A macvlan SMC with its coordinator entry runs the whole chain: macvlan + spiderpool IPAM + coordinator, the
// coordinator reading the SpiderCoordinator whose status the coordinator controller wrote.
import assert from "node:assert/strict";
import { API_VERSION, PLURAL } from "../../src/api/constants.ts";
import type { SpiderCoordinator } from "../../src/api/types.ts";
import { CoordinatorController } from "../../src/controller/coordinator/controller.ts";
import { LeaderElector } from "../../src/controller/leader.ts";
import { kubeTest, poll } from "../kube/harness.ts";
import { cniToolsBin } from "../cni/tools.ts";
import { DIST_CNI, SYSTEM_CNI } from "../e2e/cni.ts";
import { bareIP, e2e, getEndpoint, poolRecords, type Sandbox } from "../e2e/env.ts";
import { addNetns, addressesIn, delNetns, ip, linksIn, netnsPath, ping, shortId } from "../e2e/netns.ts";
import { cnidriver, createSMC, libcniLoad, multusController, nadWhere, TIMINGS } from "./kit.ts";

const COORDS = `/apis/${API_VERSION}/${PLURAL.coordinator}`;

/** One libcni call as the node's runtime (in the node's network namespace, where its bridge is). */
async function runtime(
  command: "ADD" | "DEL",
  conflist: unknown,
  sb: Sandbox,
  cacheDir: string,
  ifName: string,
) {
  const answer = await cnidriver({
    command,
    conflist,
    cniPath: [DIST_CNI, SYSTEM_CNI, await cniToolsBin()],
    cacheDir,
    containerID: sb.containerId,
    netns: netnsPath(sb.netns),
    ifName,
    args: [
      ["IgnoreUnknown", "1"],
      ["K8S_POD_NAMESPACE", sb.pod.namespace],
      ["K8S_POD_NAME", sb.pod.name],
      ["K8S_POD_INFRA_CONTAINER_ID", sb.containerId],
      ["K8S_POD_UID", sb.pod.uid],
    ],
  }, sb.node.netns);
  assert.equal(answer.code, 0, `${command}: ${answer.error ?? ""} ${answer.stderr}`);
  return answer.result as { ips?: { address: string }[] } | undefined;
}

/** Whether this kernel can make a `kind` link on a veth (macvlan, ipvlan and vlan are modules some lack). */
async function kernelHas(kind: "macvlan" | "ipvlan" | "vlan"): Promise<boolean> {
  const ns = `probe-${shortId()}`;
  await addNetns(ns);
  try {
    await ip("-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1");
    const extra = kind === "vlan" ? ["id", "7"] : kind === "macvlan" ? ["mode", "bridge"] : [];
    await ip("-n", ns, "link", "add", "x0", "link", "p0", "type", kind, ...extra);
    return true;
  } catch {
    return false;
  } finally {
    await delNetns(ns);
  }
}

kubeTest(
  "nad run: a custom SMC's NAD (Debian bridge + spiderpool IPAM) gives a pod its second NIC through libcni",
  async () => {
    await using env = await e2e("smc-run");
    const [node] = await env.startNodes(1);
    const pool = await env.pool("net1", { subnet: "203.0.113.0/24", ips: ["203.0.113.40-203.0.113.49"] });
    await using _controller = await multusController(env.scope);
    const customCNI = JSON.stringify({
      cniVersion: "0.4.0",
      name: "underlay-br",
      plugins: [{
        type: "bridge",
        bridge: node.bridge,
        ipam: {
          type: "spiderpool",
          default_ipv4_ippool: [pool],
          ipam_unix_socket_path: node.agent.socketPath,
          log_file_path: `${env.dir}/plugin.log`,
        },
      }],
    });
    await createSMC(env.scope, "underlay", { cniType: "custom", customCNI });
    const nad = await nadWhere(env.scope, "underlay", "to be rendered", (n) => n.spec?.config !== undefined);
    const config = nad.spec!.config!;
    assert.equal(config, customCNI);
    assert.deepEqual((await libcniLoad(config)).plugins.map((p) => p.type), ["bridge"]);

    const pod = await env.createPod("web", node);
    const sb = await env.sandbox(pod, node);
    const cache = `${env.dir}/cni-cache`;
    const result = await runtime("ADD", JSON.parse(config), sb, cache, "net1");
    const address = result?.ips?.[0]?.address;
    assert.match(address ?? "", /^203\.0\.113\.4\d\/24$/);
    assert.deepEqual(await addressesIn(sb.netns, "net1", 4), [address]);
    const ep = await getEndpoint(env.http, env.namespace, "web");
    assert.deepEqual(ep?.status.current.ips.map((i) => [i.interface, i.ipv4, i.ipv4Pool]), [[
      "net1",
      address,
      pool,
    ]]);
    assert.deepEqual(Object.keys(await poolRecords(env.http, pool)), [bareIP(address)]);

    // As a kubelet deletes a pod: graceful delete first, then the runtime tears the sandbox down (a DEL for a
    // pod that is still alive keeps its addresses, as upstream's Release does).
    await env.http.delete(`/api/v1/namespaces/${env.namespace}/pods/web`, {
      preconditions: { uid: pod.uid },
    });
    await runtime("DEL", JSON.parse(config), sb, cache, "net1");
    assert.deepEqual((await linksIn(sb.netns)).filter((n) => n.startsWith("net1")), []);
    assert.deepEqual(Object.keys(await poolRecords(env.http, pool)), [], "the address is released");
  },
);

const LINK_CASES = [
  {
    kind: "macvlan",
    spec: (master: string, pool: string) => ({ macvlan: { master: [master], ippools: { ipv4: [pool] } } }),
  },
  {
    kind: "ipvlan",
    spec: (master: string, pool: string) => ({ ipvlan: { master: [master], ippools: { ipv4: [pool] } } }),
  },
  {
    kind: "vlan",
    spec: (master: string, pool: string) => ({
      vlan: { master: [master], vlanID: 100, ippools: { ipv4: [pool] } },
    }),
  },
] as const;

for (const c of LINK_CASES) {
  const supported = await kernelHas(c.kind);
  Deno.test({
    name: `nad run: ${
      c.kind === "ipvlan" ? "an" : "a"
    } ${c.kind} SMC's NAD runs through libcni with Debian's ${c.kind} plugin${
      supported ? "" : ` (skipped: this kernel has no ${c.kind} link type)`
    }`,
    ignore: !supported,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      await using env = await e2e(`smc-${c.kind}`);
      const [node] = await env.startNodes(1);
      const pool = await env.pool(c.kind, {
        subnet: "198.51.100.0/24",
        ips: ["198.51.100.40-198.51.100.49"],
      });
      await using _controller = await multusController(env.scope);
      const master = `m${shortId(6)}`;
      await ip("-n", node.netns, "link", "add", master, "type", "veth", "peer", "name", `${master}p`);
      await ip("-n", node.netns, "link", "set", master, "up");
      // The coordinator is left out: its routing needs the node's real host network.
      await createSMC(env.scope, c.kind, {
        cniType: c.kind,
        ...c.spec(master, pool),
        enableCoordinator: false,
      });
      const nad = await nadWhere(env.scope, c.kind, "to be rendered", (n) => n.spec?.config !== undefined);
      const conflist = JSON.parse(nad.spec!.config!);
      assert.deepEqual(conflist.plugins.map((p: { type: string }) => p.type), [c.kind]);
      // Where the plugin finds the agent: on a real node the default socket; here the simulated node's own.
      conflist.plugins[0].ipam.ipam_unix_socket_path = node.agent.socketPath;
      const pod = await env.createPod("p", node);
      const sb = await env.sandbox(pod, node);
      const result = await runtime("ADD", conflist, sb, `${env.dir}/cache`, "net1");
      const address = result?.ips?.[0]?.address;
      assert.match(address ?? "", /^198\.51\.100\.4\d\/24$/);
      assert.deepEqual(await addressesIn(sb.netns, "net1", 4), [address]);
      const [link] = JSON.parse(await ip("-n", sb.netns, "-d", "-j", "link", "show", "net1")) as {
        linkinfo?: { info_kind?: string; info_data?: { id?: number } };
      }[];
      assert.equal(link.linkinfo?.info_kind, c.kind);
      if (c.kind === "vlan") assert.equal(link.linkinfo?.info_data?.id, 100);
      await env.http.delete(`/api/v1/namespaces/${env.namespace}/pods/p`, {
        preconditions: { uid: pod.uid },
      });
      await runtime("DEL", conflist, sb, `${env.dir}/cache`, "net1");
      assert.deepEqual(Object.keys(await poolRecords(env.http, pool)), []);
    },
  });
}

const macvlan = await kernelHas("macvlan");

Deno.test({
  name:
    `nad run: a macvlan SMC with the coordinator, its SpiderCoordinator synced by the controller, runs end to end${
      macvlan ? "" : " (skipped: this kernel has no macvlan link type)"
    }`,
  ignore: !macvlan,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using env = await e2e("smc-coord");
    const { http } = env;
    const [node] = await env.startNodes(1);
    const pool = await env.pool("u", {
      subnet: "198.51.100.0/24",
      ips: ["198.51.100.40-198.51.100.49"],
      gateway: "198.51.100.1",
    });
    // The node's underlay NIC with its own address: the master of the pods' macvlan links.
    const master = `m${shortId(6)}`;
    await ip("-n", node.netns, "link", "add", master, "type", "veth", "peer", "name", `${master}p`);
    await ip("-n", node.netns, "addr", "add", "198.51.100.2/24", "dev", master);
    await ip("-n", node.netns, "link", "set", master, "up");
    await ip("-n", node.netns, "link", "set", `${master}p`, "up");

    // SpiderCoordinator "default" (the one the agent serves), its status written by the controller.
    await http.delete(`${COORDS}/default`).catch(() => {});
    await poll(
      "no SpiderCoordinator default",
      30_000,
      () => http.get(`${COORDS}/default`).then(() => undefined, () => true),
    );
    await http.post(COORDS, {
      apiVersion: API_VERSION,
      kind: "SpiderCoordinator",
      metadata: { name: "default" },
      spec: { podCIDRType: "none", mode: "auto", tunePodRoutes: true, hostRuleTable: 500, vethMTU: 1500 },
    });
    env.scope.track(`${COORDS}/default`);
    const coordinator = new CoordinatorController({
      http,
      kubeConfig: env.scope.cluster.kc,
      identity: "replica-a",
      name: "default",
      cniConfigDir: env.dir,
      log: () => {},
    });
    const elector = new LeaderElector({
      http,
      namespace: env.namespace,
      identity: "replica-a",
      leaseName: "coordinator-lease",
      timings: TIMINGS,
      work: [coordinator],
      log: () => {},
    });
    coordinator.start();
    elector.start();
    try {
      const status = await poll("the coordinator to be Synced", 30_000, async () => {
        const { body } = await http.get<SpiderCoordinator>(`${COORDS}/default`);
        return body.status?.phase === "Synced" ? body.status : undefined;
      });
      const serviceCIDR = status.serviceCIDR![0];

      await using _controller = await multusController(env.scope);
      await createSMC(env.scope, "underlay", {
        cniType: "macvlan",
        macvlan: { master: [master], ippools: { ipv4: [pool] } },
      });
      const nad = await nadWhere(
        env.scope,
        "underlay",
        "to be rendered",
        (n) => n.spec?.config !== undefined,
      );
      const conflist = JSON.parse(nad.spec!.config!);
      assert.deepEqual(conflist.plugins.map((p: { type: string }) => p.type), ["macvlan", "coordinator"]);
      // On a real node both plugins find the agent at the default socket; the simulated node's is elsewhere.
      conflist.plugins[0].ipam.ipam_unix_socket_path = node.agent.socketPath;
      conflist.plugins[1].ipamUnixSocketPath = node.agent.socketPath;
      conflist.plugins[1].logOptions = { logFile: `${env.dir}/coordinator.log`, logLevel: "debug" };

      const pod = await env.createPod("web", node);
      const sb = await env.sandbox(pod, node);
      const result = await runtime("ADD", conflist, sb, `${env.dir}/cache`, "eth0");
      const address = result?.ips?.[0]?.address ?? "";
      assert.match(address, /^198\.51\.100\.4\d\/24$/);
      const links = await linksIn(sb.netns);
      assert.ok(links.includes("eth0") && links.includes("veth0"), `pod links: ${links.join(", ")}`);
      const routes = await ip("-n", sb.netns, "route", "show");
      assert.match(
        routes,
        new RegExp(`${serviceCIDR.replaceAll(".", "\\.")} via 198\\.51\\.100\\.2 dev veth0`),
      );
      // macvlan cannot reach its own parent; the coordinator's veth pair carries pod ↔ node traffic.
      assert.ok(await ping(sb.netns, "198.51.100.2"), "the pod reaches its node through veth0");

      await http.delete(`/api/v1/namespaces/${env.namespace}/pods/web`, { preconditions: { uid: pod.uid } });
      await runtime("DEL", conflist, sb, `${env.dir}/cache`, "eth0");
      assert.deepEqual(Object.keys(await poolRecords(http, pool)), []);
    } finally {
      await elector.stop();
      await coordinator.stop();
    }
  },
});
