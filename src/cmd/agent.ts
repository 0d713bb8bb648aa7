// `spiderpool agent` (also started as `spiderpool-agent`): the per-node IPAM daemon. Parses flags, reads the
// ConfigMap file, starts the agent and runs until SIGTERM or SIGINT.

import { hostname } from "node:os";
import { parseGoBool } from "../api/annotations.ts";
import { loadAgentConfig } from "../agent/config.ts";
import { startAgent } from "../agent/daemon.ts";
import { parseFlags } from "./flags.ts";

const USAGE = `usage: spiderpool agent [flags]

flags:
  --node-name NAME      node this agent serves (default $SPIDERPOOL_NODE_NAME, else the host name)
  --kubeconfig PATH     kubeconfig file (default: in-cluster service account, else $KUBECONFIG)
  --socket-path PATH    unix socket of the IPAM API (default: ConfigMap ipamUnixSocketPath,
                        else /var/run/spidernet/spiderpool.sock)
  --config-path PATH    ConfigMap file conf.yml (default /tmp/spiderpool/config-map/conf.yml; missing = defaults)
  --health-port PORT    probes /v1/runtime/{startup,readiness,liveness} (default $SPIDERPOOL_HEALTH_PORT or 5710)
  --metrics-port PORT   Prometheus /metrics (default $SPIDERPOOL_METRIC_HTTP_PORT or 5711); served only
                        when SPIDERPOOL_ENABLED_METRIC=true (off by default, as upstream), with rdma_*
                        counters when SPIDERPOOL_ENABLED_RDMA_METRIC=true
  --namespace NS        namespace Spiderpool runs in (default $SPIDERPOOL_POD_NAMESPACE, else kube-system)
  -h, --help            print this help
`;

/**
 * `SPIDERPOOL_ENABLED_METRIC`: Go boolean syntax, as upstream reads it; unset means off. Anything else is a
 * start-up error rather than a silent default.
 */
export function metricsEnabled(value: string | undefined, name = "SPIDERPOOL_ENABLED_METRIC"): boolean {
  if (value === undefined || value === "") return false;
  const b = parseGoBool(value);
  if (b === undefined) {
    throw new Error(`${name} must be true or false, got ${JSON.stringify(value)}`);
  }
  return b;
}

function port(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new Error(`${flag} must be a port number 0-65535, got ${JSON.stringify(value)}`);
  }
  return n;
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseFlags("agent", USAGE, args, {
    "node-name": { type: "string" },
    kubeconfig: { type: "string" },
    "socket-path": { type: "string" },
    "config-path": { type: "string" },
    "health-port": { type: "string" },
    "metrics-port": { type: "string" },
    namespace: { type: "string" },
  });
  if ("exit" in parsed) return parsed.exit;
  const { values } = parsed;
  const env = (k: string) => Deno.env.get(k) || undefined;
  try {
    const config = await loadAgentConfig(values["config-path"] ?? "/tmp/spiderpool/config-map/conf.yml");
    const healthPort = port("--health-port", values["health-port"] ?? env("SPIDERPOOL_HEALTH_PORT"), 5710);
    const metricsOn = metricsEnabled(env("SPIDERPOOL_ENABLED_METRIC"));
    const metricsPort = port(
      "--metrics-port",
      values["metrics-port"] ?? env("SPIDERPOOL_METRIC_HTTP_PORT"),
      5711,
    );
    const agent = await startAgent({
      nodeName: values["node-name"] ?? env("SPIDERPOOL_NODE_NAME") ?? hostname(),
      kubeconfig: values.kubeconfig,
      socketPath: values["socket-path"] ?? config.ipamUnixSocketPath,
      config,
      healthPort,
      metricsPort: metricsOn ? metricsPort : undefined,
      namespace: values.namespace ?? env("SPIDERPOOL_POD_NAMESPACE") ?? "kube-system",
      tuneHost: true,
      rdmaMetrics: metricsEnabled(env("SPIDERPOOL_ENABLED_RDMA_METRIC"), "SPIDERPOOL_ENABLED_RDMA_METRIC"),
    });
    await new Promise<void>((resolve) => {
      const done = () => resolve();
      Deno.addSignalListener("SIGTERM", done);
      Deno.addSignalListener("SIGINT", done);
    });
    await agent.stop();
    return 0;
  } catch (err) {
    console.error(`spiderpool agent: ${(err as Error).message}`);
    return 1;
  }
}
