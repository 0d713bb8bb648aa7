// CNI GC with two networks on one node, as Multus users have them, driven through libcni (the CNI client
// library of containerd, CRI-O and Podman) by tests/cnitools/cnidriver, with the reference plugins v1.9 at
// cniVersion 1.1.0.
//
// Network A is the reference `bridge` delegating IPAM to spiderpool: pods get a real veth and address in
// their netns. The reference bridge has no GC handler, so a GC of such a network never reaches its IPAM
// plugin (libcni only DELs the attachments it has cached and are not valid). Network B therefore lists the
// spiderpool plugin itself: libcni runs its ADD, DEL and GC directly, which is how our GC handling is reached.
// The attachments a plugin GC must reclaim are the ones libcni no longer has cached (a runtime that crashed
// between the plugin's ADD and writing its cache, or lost its cache directory): those ADDs use a cache
// directory that is thrown away. Everything libcni has cached it DELs itself before the GC.

import assert from "node:assert/strict";
import { kubeTest } from "../kube/harness.ts";
import { cniToolsBin } from "../cni/tools.ts";
import { DIST_CNI } from "./cni.ts";
import { bareIP, type E2E, e2e, eventually, getEndpoint, poolRecords, type Sandbox } from "./env.ts";
import { addressesIn, netnsPath } from "./netns.ts";
import type { SimNode } from "./node_sim.ts";

interface DriverAnswer {
  code: number;
  result?: { ips?: { address: string }[] };
  error?: string;
  stderr: string;
}

interface LibcniCall {
  command: "ADD" | "DEL" | "GC";
  conflist: Record<string, unknown>;
  cacheDir: string;
  sandbox?: Sandbox;
  ifName?: string;
  /** GC only; absent = no GCArgs (libcni then sends no `cni.dev/valid-attachments`). */
  validAttachments?: { containerID: string; ifname: string }[];
}

/** Runs cnidriver in the node's namespace (where the bridge lives), as the node's container runtime. */
async function libcni(node: SimNode, c: LibcniCall): Promise<DriverAnswer> {
  const tools = await cniToolsBin();
  const sb = c.sandbox;
  const request = {
    command: c.command,
    conflist: c.conflist,
    cniPath: [tools, DIST_CNI],
    cacheDir: c.cacheDir,
    containerID: sb?.containerId ?? "",
    netns: sb ? netnsPath(sb.netns) : "",
    ifName: c.ifName ?? "eth0",
    args: sb
      ? [
        ["IgnoreUnknown", "1"],
        ["K8S_POD_NAMESPACE", sb.pod.namespace],
        ["K8S_POD_NAME", sb.pod.name],
        ["K8S_POD_INFRA_CONTAINER_ID", sb.containerId],
        ["K8S_POD_UID", sb.pod.uid],
      ]
      : [],
    ...(c.validAttachments ? { validAttachments: c.validAttachments } : {}),
  };
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", node.netns, `${tools}/cnidriver`],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(request)));
  await w.close();
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout).trim();
  const stderr = new TextDecoder().decode(out.stderr);
  let parsed: Partial<DriverAnswer> = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { error: `not JSON: ${text}` };
  }
  return { ...parsed, code: out.code, stderr };
}

function ok(a: DriverAnswer, what: string): DriverAnswer {
  assert.equal(a.code, 0, `${what}: ${a.error ?? ""} ${a.stderr}`);
  return a;
}

/** The two networks of the node: A (bridge + spiderpool IPAM) and B (the spiderpool plugin alone). */
function networks(env: E2E, node: SimNode, poolA: string, poolB: string) {
  const ipam = (pool: string) => ({
    type: "spiderpool",
    default_ipv4_ippool: [pool],
    ipam_unix_socket_path: node.agent.socketPath,
    log_file_path: `${env.dir}/plugin.log`,
  });
  const id = env.scope.name("x").slice(-8);
  return {
    a: {
      cniVersion: "1.1.0",
      name: `net-a-${id}`,
      plugins: [{ type: "bridge", bridge: node.bridge, ipam: ipam(poolA) }],
    },
    b: {
      cniVersion: "1.1.0",
      name: `net-b-${id}`,
      plugins: [{ type: "spiderpool", ipam: ipam(poolB) }],
    },
  };
}

kubeTest(
  "e2e: libcni GC of one network releases only its own stale attachments; another network's terminating pod keeps its address",
  async () => {
    await using env = await e2e("e2e-mnetgc");
    const [node] = await env.startNodes(1);
    const poolA = await env.pool("a", { subnet: "203.0.113.0/24", ips: ["203.0.113.10-203.0.113.19"] });
    const poolB = await env.pool("b", { subnet: "198.51.100.0/24", ips: ["198.51.100.10-198.51.100.19"] });
    const net = networks(env, node, poolA, poolB);
    const runtimeCache = `${env.dir}/cni-cache`;
    const lostCache = `${env.dir}/cni-cache-lost`;
    const podsPath = `/api/v1/namespaces/${env.namespace}/pods`;
    const holders = async (pool: string) =>
      Object.entries(await poolRecords(env.http, pool)).map(([ip, r]) => `${r.pod.split("/")[1]} ${ip}`)
        .sort();
    const sandbox = async (name: string) => await env.sandbox(await env.createPod(name, node), node);
    const cached: { sb: Sandbox; list: Record<string, unknown>; ifName: string }[] = [];
    const add = async (
      sb: Sandbox,
      list: Record<string, unknown>,
      ifName = "eth0",
      cacheDir = runtimeCache,
    ) => {
      const a = ok(
        await libcni(node, { command: "ADD", conflist: list, cacheDir, sandbox: sb, ifName }),
        `ADD ${sb.pod.name} ${ifName}`,
      );
      if (cacheDir === runtimeCache) cached.push({ sb, list, ifName });
      return bareIP(a.result?.ips?.[0]?.address)!;
    };
    const gcB = (validAttachments?: { containerID: string; ifname: string }[], cacheDir = runtimeCache) =>
      libcni(node, { command: "GC", conflist: net.b, cacheDir, validAttachments });

    try {
      // alpha: network A only; beta: eth0 through A and net1 through B (a Multus pod with a secondary network).
      const alpha = await sandbox("alpha");
      const alphaIP = await add(alpha, net.a);
      assert.deepEqual(await addressesIn(alpha.netns, "eth0", 4), [`${alphaIP}/24`]);
      const beta = await sandbox("beta");
      await add(beta, net.a);
      await add(beta, net.b, "net1");
      // eta, gamma and delta: network B, whose runtime lost the record of the attachment.
      const eta = await sandbox("eta");
      await add(eta, net.b, "eth0", lostCache);
      const gamma = await sandbox("gamma");
      const gammaIP = await add(gamma, net.b, "eth0", lostCache);
      const delta = await sandbox("delta");
      const deltaIP = await add(delta, net.b, "eth0", lostCache);
      await Deno.remove(lostCache, { recursive: true });

      // eta and gamma are gone; delta and alpha are terminating within their grace period (30 s): their
      // sandboxes may still run.
      await env.http.delete(`${podsPath}/eta`, { gracePeriodSeconds: 0 });
      await env.http.delete(`${podsPath}/gamma`, { gracePeriodSeconds: 0 });
      await env.http.delete(`${podsPath}/delta`);
      await env.http.delete(`${podsPath}/alpha`);
      const heldA = await holders(poolA);
      assert.equal(heldA.length, 2);

      // GC of B listing beta's net1 and (for now) eta: gamma goes. The agent decides from its cache of
      // endpoints, so a GC run before the cache caught up is simply run again, as runtimes do periodically.
      const listed = [{ containerID: beta.containerId, ifname: "net1" }, {
        containerID: eta.containerId,
        ifname: "eth0",
      }];
      await eventually("GC of network B to release gamma", async () => {
        ok(await gcB(listed), "GC B");
        return (await holders(poolB)).some((h) => h.startsWith("gamma ")) ? undefined : true;
      });
      assert.deepEqual(await holders(poolA), heldA, "network A's addresses are not network B's to release");
      assert.deepEqual(
        (await holders(poolB)).map((h) => h.split(" ")[0]),
        ["beta", "delta", "eta"],
        "delta is within its grace period; beta and eta are listed",
      );
      assert.ok(!(await holders(poolB)).includes(`gamma ${gammaIP}`));

      // A GC without a list of valid attachments releases nothing (eta is gone and no longer listed). An empty
      // libcni cache, so that only the plugin's GC acts: libcni would first DEL every cached attachment.
      ok(await gcB(undefined, `${env.dir}/cni-cache-empty`), "GC B without valid attachments");
      assert.deepEqual(
        (await holders(poolB)).map((h) => h.split(" ")[0]),
        ["beta", "delta", "eta"],
        "a GC without cni.dev/valid-attachments released something",
      );

      // The next pod of network A does not get alpha's address while alpha's sandbox holds it.
      const epsilon = await sandbox("epsilon");
      const epsilonIP = await add(epsilon, net.a);
      assert.notEqual(epsilonIP, alphaIP, "alpha's address was handed out again while its sandbox runs");
      assert.deepEqual(await addressesIn(alpha.netns, "eth0", 4), [`${alphaIP}/24`]);
      assert.deepEqual(await addressesIn(epsilon.netns, "eth0", 4), [`${epsilonIP}/24`]);

      // Once delta's grace period (shortened to 1 s) and the clock-skew allowance are over, B's GC frees it,
      // and eta, which the runtime no longer lists.
      await env.http.delete(`${podsPath}/delta`, { gracePeriodSeconds: 1 });
      await new Promise((r) => setTimeout(r, 7_000));
      ok(await gcB([{ containerID: beta.containerId, ifname: "net1" }]), "GC B after delta's grace period");
      assert.deepEqual((await holders(poolB)).map((h) => h.split(" ")[0]), ["beta"]);
      assert.ok(!(await holders(poolB)).includes(`delta ${deltaIP}`));
      assert.equal(
        (await getEndpoint(env.http, env.namespace, "delta"))?.metadata.finalizers?.length ?? 0,
        0,
      );
    } finally {
      // The runtime tears down what it set up (best effort: the assertions above may have failed midway).
      for (const c of cached.reverse()) {
        await libcni(node, {
          command: "DEL",
          conflist: c.list,
          cacheDir: runtimeCache,
          sandbox: c.sb,
          ifName: c.ifName,
        });
      }
    }
  },
);
