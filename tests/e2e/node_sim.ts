// A simulated node: a Node object in the API server, a network namespace standing in for the host (the bridge
// plugin creates its bridge there), and a real `dist/spiderpool agent` process with its own unix socket and
// its own health and metrics ports. Stop ends exactly the processes started here, by pid.

import { AgentClient } from "../../src/agentapi/client.ts";
import type { KubeHttp } from "../../src/kube/client.ts";
import { ConflictError, NotFoundError } from "../../src/kube/client.ts";
import { DIST } from "./cni.ts";
import { addNetns, delNetns } from "./netns.ts";

export const AGENT_BIN = `${DIST}/spiderpool`;

import { freePorts } from "../kube/ports.ts";

export interface AgentProcess {
  pid: number;
  socketPath: string;
  healthPort: number;
  metricsPort: number;
  logPath: string;
  /** Resolves when the process exits. */
  exited: Promise<Deno.CommandStatus>;
  /** SIGKILL, as a crash or an OOM kill would. */
  kill(): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export interface AgentStartOptions {
  node: string;
  kubeconfig: string;
  /** Directory for the socket, the log and the (absent) ConfigMap file. */
  dir: string;
  /** conf.yml content (defaults when absent), with `tuneSysctlConfig: false` added unless it sets it. */
  configYaml?: string;
  readyTimeoutMs?: number;
  env?: Record<string, string>;
}

/** Starts `dist/spiderpool agent` for `node` and waits until its socket answers `/v1/ipam/healthy`. */
export async function startAgentProcess(o: AgentStartOptions): Promise<AgentProcess> {
  const socketPath = `${o.dir}/${o.node}.sock`;
  const logPath = `${o.dir}/${o.node}.log`;
  const configPath = `${o.dir}/${o.node}-conf.yml`;
  // Test agents share this machine's network namespace: unless a test asks for it, they must not tune its
  // sysctls (tuneSysctlConfig defaults to true, as upstream).
  const yaml = o.configYaml ?? "";
  const tune = /^tuneSysctlConfig\s*:/m.test(yaml) ? "" : "tuneSysctlConfig: false\n";
  await Deno.writeTextFile(configPath, `${yaml}${yaml && !yaml.endsWith("\n") ? "\n" : ""}${tune}`);
  const [healthPort, metricsPort] = freePorts(2);
  // The shell only redirects output and execs, so the pid is the agent's own; setpriv's parent-death signal
  // ends the agent if this test process dies without stopping it.
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      'exec setpriv --pdeathsig KILL -- "$@" >>"$E2E_AGENT_LOG" 2>&1',
      "sh",
      AGENT_BIN,
      "agent",
      "--node-name",
      o.node,
      "--kubeconfig",
      o.kubeconfig,
      "--socket-path",
      socketPath,
      "--health-port",
      String(healthPort),
      "--metrics-port",
      String(metricsPort),
      "--config-path",
      configPath,
    ],
    // Metrics are off by default, as upstream; the benchmark and tests read them.
    env: { SPIDERPOOL_ENABLED_METRIC: "true", ...o.env, E2E_AGENT_LOG: logPath },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let done = false;
  const exited = child.status.then((s) => {
    done = true;
    return s;
  });
  const signal = (sig: Deno.Signal) => {
    if (done) return;
    try {
      Deno.kill(child.pid, sig);
    } catch { /* already gone */ }
  };
  const proc: AgentProcess = {
    pid: child.pid,
    socketPath,
    healthPort,
    metricsPort,
    logPath,
    exited,
    async kill() {
      signal("SIGKILL");
      await exited;
    },
    async stop(graceMs = 10_000) {
      signal("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), graceMs));
      const r = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (r === "timeout") await proc.kill();
    },
  };
  const deadline = Date.now() + (o.readyTimeoutMs ?? 60_000);
  const client = new AgentClient(socketPath, { timeoutMs: 2_000 });
  while (true) {
    if (done) {
      throw new Error(
        `agent for node ${o.node} exited during start-up; log ${logPath}:\n${await tail(logPath)}`,
      );
    }
    try {
      await client.healthy();
      return proc;
    } catch { /* not serving yet */ }
    if (Date.now() > deadline) {
      await proc.kill();
      throw new Error(
        `agent for node ${o.node} did not serve ${socketPath} in time; log:\n${await tail(logPath)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function tail(path: string, lines = 30): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Prometheus text from the agent's metrics port, as `name{labels}` → value. */
export async function scrapeMetrics(port: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`GET /metrics on port ${port}: HTTP ${res.status}: ${text.slice(0, 200)}`);
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

export interface SimNode {
  name: string;
  /** The namespace standing in for the node's host network (holds the bridge). */
  netns: string;
  /** The bridge device pods of this node attach to. */
  bridge: string;
  agent: AgentProcess;
  /** Kills the agent (SIGKILL) and starts a new one with the same socket (new ports). */
  restartAgent(): Promise<AgentProcess>;
  /** Stops the agent, deletes the node namespace (its bridge and veths) and the Node object. */
  [Symbol.asyncDispose](): Promise<void>;
}

export interface SimNodeOptions {
  http: KubeHttp;
  kubeconfig: string;
  name: string;
  dir: string;
  labels?: Record<string, string>;
  configYaml?: string;
}

/** Creates the Node object and the node namespace, then starts the node's agent. */
export async function startSimNode(o: SimNodeOptions): Promise<SimNode> {
  try {
    await o.http.post("/api/v1/nodes", {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: o.name, labels: { "kubernetes.io/hostname": o.name, ...o.labels } },
    });
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
  }
  const netns = `${o.name}-host`;
  const cleanup = async () => {
    await delNetns(netns);
    await o.http.delete(`/api/v1/nodes/${o.name}`).catch((err) => {
      if (!(err instanceof NotFoundError)) throw err;
    });
  };
  let agent: AgentProcess;
  try {
    await addNetns(netns);
    agent = await startAgentProcess({
      node: o.name,
      kubeconfig: o.kubeconfig,
      dir: o.dir,
      configYaml: o.configYaml,
    });
  } catch (err) {
    await cleanup();
    throw err;
  }
  const node: SimNode = {
    name: o.name,
    netns,
    bridge: `br${o.name.replace(/[^a-z0-9]/g, "").slice(-10)}`,
    agent,
    async restartAgent() {
      await node.agent.kill();
      node.agent = await startAgentProcess({
        node: o.name,
        kubeconfig: o.kubeconfig,
        dir: o.dir,
        configYaml: o.configYaml,
      });
      return node.agent;
    },
    async [Symbol.asyncDispose]() {
      await node.agent.stop();
      await cleanup();
    },
  };
  return node;
}
