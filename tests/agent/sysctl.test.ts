// Host tuning by the agent (§1.3 step 2, tuneSysctlConfig): the settings per family, and the built agent tuning
// the network namespace it runs in. Every agent here runs in a namespace the test creates (`ip netns exec`);
// this machine's own namespace is never tuned, and the test checks that too.

import assert from "node:assert/strict";
import { applyHostSysctls, hostSysctls, tuneHost } from "../../src/agent/sysctl.ts";
import { openNs } from "../../src/net/mod.ts";
import { AGENT_BIN } from "../e2e/node_sim.ts";
import { addNetns, delNetns, shortId } from "../e2e/netns.ts";
import { getCluster, kubeTest, poll } from "../kube/harness.ts";

const KEYS = {
  v4: [
    "net.ipv4.neigh.default.gc_thresh3",
    "net.ipv4.conf.all.arp_notify",
    "net.ipv4.conf.all.forwarding",
  ],
  v6: ["net.ipv6.neigh.default.gc_thresh3", "net.ipv6.conf.all.forwarding"],
  any: ["net.ipv4.conf.all.rp_filter"],
};

Deno.test("sysctl: upstream's settings, per enabled family; rp_filter with either", () => {
  const keys = (enableIPv4: boolean, enableIPv6: boolean) =>
    hostSysctls({ enableIPv4, enableIPv6 }).map((s) => `${s.key}=${s.value}`);
  assert.deepEqual(keys(true, true), [
    "net.ipv4.neigh.default.gc_thresh3=28160",
    "net.ipv4.conf.all.arp_notify=1",
    "net.ipv4.conf.all.forwarding=1",
    "net.ipv6.neigh.default.gc_thresh3=28160",
    "net.ipv6.conf.all.forwarding=1",
    "net.ipv4.conf.all.rp_filter=0",
  ]);
  assert.deepEqual(keys(true, false).map((k) => k.split("=")[0]), [...KEYS.v4, ...KEYS.any]);
  assert.deepEqual(keys(false, true).map((k) => k.split("=")[0]), [...KEYS.v6, ...KEYS.any]);
  assert.deepEqual(keys(false, false), []);
  assert.ok(
    !hostSysctls({ enableIPv4: true, enableIPv6: true }).some((s) => s.key.includes("nf_conntrack")),
    "nf_conntrack_tcp_be_liberal is left to the administrator, as upstream",
  );
});

/** The values of `keys` in the namespace at `path` (undefined for a key it does not have). */
async function read(path: string | undefined, keys: string[]): Promise<Record<string, string | undefined>> {
  const ns = openNs(path);
  try {
    const out: Record<string, string | undefined> = {};
    for (const k of keys) out[k] = await ns.readSysctl(k);
    return out;
  } finally {
    ns.close();
  }
}

const ALL = [...KEYS.v4, ...KEYS.v6, ...KEYS.any];

Deno.test("sysctl: in a namespace without the neighbour table knobs they are skipped, a bad write is logged once", async () => {
  const name = `sy-${shortId(8)}`;
  const path = await addNetns(name);
  try {
    const lines: string[] = [];
    const ns = openNs(path);
    try {
      const report = await applyHostSysctls(ns, [
        ...hostSysctls({ enableIPv4: true, enableIPv6: false }),
        { key: "net.ipv4.conf.all.forwarding", value: "not-a-number", why: "a test" },
      ], (m) => lines.push(m));
      // `net.ipv4.neigh.default` exists only in the initial namespace.
      assert.deepEqual(report.absent.map((s) => s.key), ["net.ipv4.neigh.default.gc_thresh3"]);
      assert.deepEqual(report.set.map((s) => s.key), [
        "net.ipv4.conf.all.arp_notify",
        "net.ipv4.conf.all.forwarding",
        "net.ipv4.conf.all.rp_filter",
      ]);
      assert.deepEqual(report.failed.map((f) => f.setting.value), ["not-a-number"]);
    } finally {
      ns.close();
    }
    assert.equal(lines.filter((l) => l.includes("does not exist here")).length, 1);
    assert.equal(
      lines.filter((l) => l.startsWith("could not set net.ipv4.conf.all.forwarding=not-a-number")).length,
      1,
    );
    assert.deepEqual(await read(path, ["net.ipv4.conf.all.forwarding", "net.ipv4.conf.all.arp_notify"]), {
      "net.ipv4.conf.all.forwarding": "1",
      "net.ipv4.conf.all.arp_notify": "1",
    });
  } finally {
    await delNetns(name);
  }
});

Deno.test("sysctl: with IPv6 disabled the agent leaves IPv6 forwarding alone", async () => {
  const name = `sy-${shortId(8)}`;
  const path = await addNetns(name);
  try {
    await tuneHost({ enableIPv4: true, enableIPv6: false }, () => {}, path);
    const got = await read(path, ["net.ipv4.conf.all.forwarding", "net.ipv6.conf.all.forwarding"]);
    assert.deepEqual(got, { "net.ipv4.conf.all.forwarding": "1", "net.ipv6.conf.all.forwarding": "0" });
  } finally {
    await delNetns(name);
  }
});

interface AgentInNetns extends AsyncDisposable {
  ns: string;
  path: string;
  log: () => Promise<string>;
}

/**
 * The built agent (`spiderpool agent`) started in a new namespace, with `conf` as its ConfigMap file. The
 * namespace cannot reach the API server, so the agent tunes (start-up step 2) and then waits for it; it is
 * killed when the test ends. `prelude` runs in the namespace first (e.g. mounting /proc/sys read-only).
 */
async function agentInNetns(conf: string, prelude = ""): Promise<AgentInNetns> {
  const { kubeconfigPath } = await getCluster();
  const ns = `sy-${shortId(8)}`;
  const path = await addNetns(ns);
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-sysctl-" });
  await Deno.writeTextFile(`${dir}/conf.yml`, conf);
  // ip netns exec runs the command in a mount namespace of its own: a prelude's mounts stay there.
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      ns,
      "sh",
      "-c",
      `${prelude} exec setpriv --pdeathsig KILL -- "$@" >>"$LOG" 2>&1`,
      "sh",
      AGENT_BIN,
      "agent",
      "--node-name",
      ns,
      "--kubeconfig",
      kubeconfigPath,
      "--socket-path",
      `${dir}/agent.sock`,
      "--health-port",
      "0",
      "--config-path",
      `${dir}/conf.yml`,
    ],
    env: { LOG: `${dir}/agent.log` },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const log = () => Deno.readTextFile(`${dir}/agent.log`).catch(() => "");
  return {
    ns,
    path,
    log,
    async [Symbol.asyncDispose]() {
      try {
        Deno.kill(child.pid, "SIGKILL");
      } catch { /* already gone */ }
      await child.status;
      await delNetns(ns);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

kubeTest(
  "sysctl: the built agent tunes the namespace it runs in at start-up, before waiting for the API server",
  async () => {
    const host = await read(undefined, ALL);
    await using agent = await agentInNetns("enableIPv4: true\nenableIPv6: true\n");
    // Before: a new namespace forwards nothing; rp_filter is set here so that its change shows.
    const ns = openNs(agent.path);
    await ns.writeSysctl("net.ipv4.conf.all.rp_filter", "1").finally(() => ns.close());
    await poll("the agent's tuning", 30_000, async () => {
      const log = await agent.log();
      return log.includes("host sysctls: tuned") ? log : undefined;
    });
    assert.deepEqual(await read(agent.path, ALL), {
      "net.ipv4.neigh.default.gc_thresh3": undefined,
      "net.ipv4.conf.all.arp_notify": "1",
      "net.ipv4.conf.all.forwarding": "1",
      "net.ipv6.neigh.default.gc_thresh3": undefined,
      "net.ipv6.conf.all.forwarding": "1",
      "net.ipv4.conf.all.rp_filter": "0",
    });
    const log = await agent.log();
    for (const k of ["net.ipv4.neigh.default.gc_thresh3", "net.ipv6.neigh.default.gc_thresh3"]) {
      assert.equal(log.split(`sysctl ${k} does not exist here; skipped`).length - 1, 1, log);
    }
    assert.deepEqual(await read(undefined, ALL), host, "this machine's own namespace is untouched");
  },
);

kubeTest(
  "sysctl: an agent that may not write /proc/sys logs each setting once and goes on starting",
  async () => {
    await using agent = await agentInNetns(
      "",
      "mount --bind /proc/sys /proc/sys && mount -o remount,ro,bind /proc/sys &&",
    );
    const log = await poll("the agent waiting for the API server", 30_000, async () => {
      const log = await agent.log();
      return log.includes("waiting for the API server") ? log : undefined;
    });
    for (
      const k of [
        "net.ipv4.conf.all.arp_notify",
        "net.ipv4.conf.all.forwarding",
        "net.ipv6.conf.all.forwarding",
      ]
    ) {
      const lines = log.split("\n").filter((l) => l.includes(`could not set ${k}=1`));
      assert.equal(lines.length, 1, log);
      assert.match(lines[0], /Read-only file system/);
    }
    assert.doesNotMatch(log, /host sysctls: tuned/);
    assert.deepEqual(await read(agent.path, ["net.ipv4.conf.all.forwarding"]), {
      "net.ipv4.conf.all.forwarding": "0",
    });
  },
);

kubeTest("sysctl: tuneSysctlConfig: false leaves the namespace as it is", async () => {
  await using agent = await agentInNetns("tuneSysctlConfig: false\n");
  const log = await poll("the agent's start", 30_000, async () => {
    const log = await agent.log();
    return log.includes("waiting for the API server") ? log : undefined;
  });
  assert.match(log, /tuneSysctlConfig is false: the node's sysctls are left as they are/);
  assert.deepEqual(await read(agent.path, ["net.ipv4.conf.all.forwarding", "net.ipv6.conf.all.forwarding"]), {
    "net.ipv4.conf.all.forwarding": "0",
    "net.ipv6.conf.all.forwarding": "0",
  });
});
