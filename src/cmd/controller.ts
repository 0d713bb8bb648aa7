// `spiderpool controller` (also started as `spiderpool-controller`): the cluster-wide controller. Parses flags
// and upstream's environment variables, reads the ConfigMap file, starts the controller and runs until SIGTERM
// or SIGINT, then hands the lease over, stops serving, closes its watches and exits 0.

import { hostname } from "node:os";
import { DEFAULT_CONFIG_PATH, loadConfig } from "../api/config.ts";
import { type ControllerOptions, startController, type TlsSource } from "../controller/daemon.ts";
import { GcConfigError, gcConfigFrom } from "../controller/gc/config.ts";
import { LeaderConfigError, timingsFromEnv } from "../controller/leader.ts";
import { parseFlags } from "./flags.ts";

const USAGE = `usage: spiderpool controller [flags]

Serves the admission webhooks of SpiderIPPool, SpiderSubnet, SpiderReservedIP, SpiderCoordinator and
SpiderMultusConfig over HTTPS and registers them with the API server (every replica). Replicas elect a leader
on the Lease spiderpool-controller-leases in their namespace; the leader keeps the status of SpiderIPPools and
SpiderSubnets (totalIPCount, allocatedIPCount, controlledIPPools), their finalizers and subnet adoption, makes
the auto-pools of applications annotated with a SpiderSubnet, renders SpiderMultusConfigs into Multus
NetworkAttachmentDefinitions, writes the SpiderCoordinator's pod and service CIDRs, and reports problems as
Events. The IP garbage collector scans every pool at start on every replica, and on the leader traces finished
and deleted pods and scans again every SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION; POST /v1/ipam/gc_ips on the
health port (\`spiderpool gc\`) runs a scan now for callers the API server authorises. With
podResourceInject.enabled in the ConfigMap, it also serves /mutate--v1-pod, which adds the networks and
RDMA/SR-IOV resources of labelled SpiderMultusConfigs to pods annotated cni.spidernet.io/rdma-resource-inject
or cni.spidernet.io/network-resource-inject.

flags:
  --kubeconfig PATH           kubeconfig file (default: in-cluster service account, else $KUBECONFIG)
  --config-path PATH          ConfigMap file conf.yml (default ${DEFAULT_CONFIG_PATH}; missing = defaults)
  --namespace NS              namespace the controller runs in (default $SPIDERPOOL_POD_NAMESPACE, else kube-system)
  --pod-name NAME             this replica's identity (default $SPIDERPOOL_POD_NAME, else the host name)
  --health-port PORT          probes /v1/runtime/{startup,readiness,liveness} (default $SPIDERPOOL_HEALTH_PORT or 5720)
  --metrics-port PORT         Prometheus /metrics (default $SPIDERPOOL_METRIC_HTTP_PORT or 5721; served only when
                              SPIDERPOOL_ENABLED_METRIC=true)
  --webhook-port PORT         HTTPS admission webhooks (default $SPIDERPOOL_WEBHOOK_PORT or 5722)
  --bind-address ADDR         address the three servers listen on (default 0.0.0.0)
  --tls-method METHOD         auto: generate a CA and certificate into Secret spiderpool-controller-server-certs
                              (shared by all replicas); provided: use the three files below (default auto)
  --tls-server-cert PATH      serving certificate (provided; default /etc/tls/tls.crt)
  --tls-server-key PATH       its private key (provided; default /etc/tls/tls.key)
  --tls-ca-cert PATH          the CA that signed it, put in the caBundle (provided; default /etc/tls/ca.crt)
  --service-name NAME         the controller's Service the API server calls (default spiderpool-controller)
  --webhook-url URL           call the webhooks at this https base URL instead of the Service (outside a
                              cluster, e.g. https://127.0.0.1:5722); the certificate then also names 127.0.0.1
  --webhook-config-name NAME  name of the Mutating/ValidatingWebhookConfiguration (default spiderpool-controller)
  --webhook-object-selector K=V[,K=V]
                              only objects with these labels reach the webhooks (shared test clusters)
  --reconcile-selector K=V[,K=V]
                              only pools and subnets with these labels are reconciled, and auto-pools get them
                              (default all; shared test clusters)
  --reconcile-namespace NS    only applications (auto-pools) and SpiderMultusConfigs of this namespace are
                              handled (default all; shared test clusters)
  -h, --help                  print this help

environment: SPIDERPOOL_COORDINATOR_ENABLED, SPIDERPOOL_MULTUS_CONFIG_ENABLED (default true) register the
SpiderCoordinator and SpiderMultusConfig webhooks and run their controllers (coordinator status, NADs);
SPIDERPOOL_COORDINATOR_DEAFULT_NAME (sic, default "default") the SpiderCoordinator whose status is kept; SPIDERPOOL_LEADER_DURATION, SPIDERPOOL_LEADER_RENEW_DEADLINE,
SPIDERPOOL_LEADER_RETRY_PERIOD (seconds; default 15, 10, 2) time the election; SPIDERPOOL_IPPOOL_INFORMER_WORKERS
(default 3) pool reconcile workers; SPIDERPOOL_ENABLED_DEBUG_METRIC (default false) the per-pool and per-subnet
debug gauges. SPIDERPOOL_GC_IP_ENABLED (default true) and the other SPIDERPOOL_GC_* variables of upstream set the
IP garbage collector; SPIDERPOOL_GC_UNCONFIRMED_RECORD_GRACE_DURATION (default 180 s) is how long a pool record
no SpiderEndpoint lists is left alone (its ADD may still be writing the endpoint).
`;

/** A flag or environment value that cannot be used; exit code 2 like any usage error. */
class UsageError extends Error {}

function port(what: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) {
    throw new UsageError(`${what} must be a port number 0-65535, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Go's strconv.ParseBool, which upstream uses for its boolean environment variables. */
function bool(name: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value === "") return fallback;
  if (["1", "t", "T", "true", "TRUE", "True"].includes(value)) return true;
  if (["0", "f", "F", "false", "FALSE", "False"].includes(value)) return false;
  throw new UsageError(`${name} must be true or false, got ${JSON.stringify(value)}`);
}

function labels(flag: string, value: string | undefined): Record<string, string> | undefined {
  if (value === undefined || value === "") return undefined;
  const out: Record<string, string> = {};
  for (const pair of value.split(",")) {
    const m = /^([A-Za-z0-9][-A-Za-z0-9_./]*)=([-A-Za-z0-9_.]*)$/.exec(pair);
    if (!m) {
      throw new UsageError(
        `${flag}: ${JSON.stringify(pair)} is not a label KEY=VALUE; use e.g. app=test,tier=a`,
      );
    }
    out[m[1]] = m[2];
  }
  return out;
}

function namespace(flag: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(value)) {
    throw new UsageError(`${flag} ${JSON.stringify(value)} is not a namespace name; use e.g. default`);
  }
  return value;
}

function url(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new UsageError(
      `--webhook-url ${JSON.stringify(value)} is not a URL; use e.g. https://127.0.0.1:5722`,
    );
  }
  if (u.protocol !== "https:") {
    throw new UsageError(
      `--webhook-url ${JSON.stringify(value)} must use https (the API server calls webhooks over TLS)`,
    );
  }
  return value;
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseFlags("controller", USAGE, args, {
    kubeconfig: { type: "string" },
    "config-path": { type: "string" },
    namespace: { type: "string" },
    "pod-name": { type: "string" },
    "health-port": { type: "string" },
    "metrics-port": { type: "string" },
    "webhook-port": { type: "string" },
    "bind-address": { type: "string" },
    "tls-method": { type: "string" },
    "tls-server-cert": { type: "string" },
    "tls-server-key": { type: "string" },
    "tls-ca-cert": { type: "string" },
    "service-name": { type: "string" },
    "webhook-url": { type: "string" },
    "webhook-config-name": { type: "string" },
    "webhook-object-selector": { type: "string" },
    "reconcile-selector": { type: "string" },
    "reconcile-namespace": { type: "string" },
  });
  if ("exit" in parsed) return parsed.exit;
  const { values } = parsed;
  const env = (k: string) => Deno.env.get(k) || undefined;
  let opts: ControllerOptions;
  try {
    const method = values["tls-method"] ?? "auto";
    let tls: TlsSource;
    if (method === "auto") tls = { method };
    else if (method === "provided") {
      tls = {
        method,
        certFile: values["tls-server-cert"] ?? "/etc/tls/tls.crt",
        keyFile: values["tls-server-key"] ?? "/etc/tls/tls.key",
        caFile: values["tls-ca-cert"] ?? "/etc/tls/ca.crt",
      };
    } else {
      throw new UsageError(`--tls-method must be auto or provided, got ${JSON.stringify(method)}`);
    }
    const metricsOn = bool("SPIDERPOOL_ENABLED_METRIC", env("SPIDERPOOL_ENABLED_METRIC"), false);
    opts = {
      kubeconfig: values.kubeconfig,
      namespace: values.namespace ?? env("SPIDERPOOL_POD_NAMESPACE") ?? "kube-system",
      podName: values["pod-name"] ?? env("SPIDERPOOL_POD_NAME") ?? hostname(),
      healthPort: port("--health-port", values["health-port"] ?? env("SPIDERPOOL_HEALTH_PORT"), 5720),
      metricsPort: metricsOn
        ? port("--metrics-port", values["metrics-port"] ?? env("SPIDERPOOL_METRIC_HTTP_PORT"), 5721)
        : undefined,
      webhookPort: port("--webhook-port", values["webhook-port"] ?? env("SPIDERPOOL_WEBHOOK_PORT"), 5722),
      bindAddress: values["bind-address"],
      tls,
      serviceName: values["service-name"],
      webhookURL: url(values["webhook-url"]),
      webhookConfigName: values["webhook-config-name"],
      webhookObjectSelector: labels("--webhook-object-selector", values["webhook-object-selector"]),
      reconcileSelector: labels("--reconcile-selector", values["reconcile-selector"]),
      reconcileNamespace: namespace("--reconcile-namespace", values["reconcile-namespace"]),
      debugMetrics: bool("SPIDERPOOL_ENABLED_DEBUG_METRIC", env("SPIDERPOOL_ENABLED_DEBUG_METRIC"), false),
      coordinatorEnabled: bool("SPIDERPOOL_COORDINATOR_ENABLED", env("SPIDERPOOL_COORDINATOR_ENABLED"), true),
      multusConfigEnabled: bool(
        "SPIDERPOOL_MULTUS_CONFIG_ENABLED",
        env("SPIDERPOOL_MULTUS_CONFIG_ENABLED"),
        true,
      ),
    };
    // Checked here so that a bad duration is a usage error, before anything starts.
    timingsFromEnv(env);
    gcConfigFrom(env);
  } catch (err) {
    if (
      !(err instanceof UsageError) && !(err instanceof LeaderConfigError) && !(err instanceof GcConfigError)
    ) throw err;
    console.error(`spiderpool controller: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  // Signals are caught from the start, so a SIGTERM during start-up also ends in an orderly stop.
  let signalled!: () => void;
  const terminated = new Promise<void>((r) => signalled = r);
  Deno.addSignalListener("SIGTERM", () => signalled());
  Deno.addSignalListener("SIGINT", () => signalled());
  try {
    const config = await loadConfig(values["config-path"] ?? DEFAULT_CONFIG_PATH);
    const controller = await startController({ ...opts, config });
    await terminated;
    console.error("spiderpool-controller: stopping (signal received)");
    await controller.stop();
    return 0;
  } catch (err) {
    console.error(`spiderpool controller: ${(err as Error).message}`);
    return 1;
  }
}
