// Start-up and shut-down of the controller, in upstream's order (spec §1.2): metrics server, Kubernetes client,
// serving certificate and the HTTPS admission webhooks (served by every replica), leader election with the
// leader-only components (reconcile/mod.ts), webhook registration, the health server, a wait until the own
// webhook answers, then the components' caches and work. Ready = webhook answering AND a leader known (AND every
// component ready). Stop runs the same steps backwards: the lease is handed over before the webhooks go.

import { connect } from "node:tls";
import type { KubeConfig } from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { defaultConfig, type SpiderpoolConfig } from "../api/config.ts";
import { SINGULAR } from "../api/constants.ts";
import { KubeHttp } from "../kube/client.ts";
import { PodInjectionMetrics } from "../multus/metrics.ts";
import { closeKubeConfig, loadKubeConfig } from "../kube/client_node.ts";
import { type ControllerComponent, type LeaderWorkHandle, startLeaderWork } from "./reconcile/mod.ts";
import type { WebhookContext } from "./webhook/handlers.ts";
import { AdmissionLedger } from "./webhook/ledger.ts";
import { WebhookMetrics } from "./webhook/metrics.ts";
import { registerWebhooks, WEBHOOK_CONFIG_NAME, type WebhookEndpoint } from "./webhook/register.ts";
import { HEALTH_PATH, serveWebhooks, type WebhookServer } from "./webhook/server.ts";
import { type CertNeeds, ensureAutoCertificate, readProvided, type ServingMaterial } from "./webhook/tls.ts";

export type TlsSource =
  | { method: "auto" }
  | { method: "provided"; certFile: string; keyFile: string; caFile: string };

export interface ControllerOptions {
  /** Path of a kubeconfig; in-cluster config (or the default rules) when absent. */
  kubeconfig?: string;
  /** An already loaded config (tests); wins over `kubeconfig`. */
  kubeConfig?: KubeConfig;
  config?: SpiderpoolConfig;
  /** Namespace the controller runs in (Secret, ledgers, Service). */
  namespace: string;
  /** This replica's identity (the pod name). */
  podName: string;
  /** Probes `/v1/runtime/{startup,readiness,liveness}`; 0 picks a free port; undefined disables. */
  healthPort?: number;
  /** Prometheus `/metrics`; undefined disables. */
  metricsPort?: number;
  /** HTTPS admission webhooks. */
  webhookPort: number;
  /** Address the servers bind; default all. */
  bindAddress?: string;
  tls: TlsSource;
  /** Name of the controller's Service (the certificate names `<service>.<namespace>.svc`). */
  serviceName?: string;
  /** Base URL the API server calls instead of the Service (outside a cluster), e.g. `https://127.0.0.1:5722`. */
  webhookURL?: string;
  /** Name of both webhook configurations; default `spiderpool-controller`. */
  webhookConfigName?: string;
  /** Only objects with these labels reach the webhooks (a test cluster shared with other suites). */
  webhookObjectSelector?: Record<string, string>;
  /**
   * Serve and register the SpiderCoordinator webhooks and run its status controller
   * (`SPIDERPOOL_COORDINATOR_ENABLED`); default true.
   */
  coordinatorEnabled?: boolean;
  /**
   * Serve and register the SpiderMultusConfig webhooks and run its NAD controller
   * (`SPIDERPOOL_MULTUS_CONFIG_ENABLED`); default true.
   */
  multusConfigEnabled?: boolean;
  /**
   * Only pools and subnets with these labels are reconciled; all when absent. For several controllers side by
   * side in one test cluster: the leader otherwise reconciles every pool and subnet of the cluster.
   */
  reconcileSelector?: Record<string, string>;
  /**
   * Only applications (auto-pools) and SpiderMultusConfigs of this namespace are handled; all when absent. For
   * several controllers side by side in one test cluster, like `reconcileSelector`.
   */
  reconcileNamespace?: string;
  /** Leader-only work besides the reconcilers and reconcile/mod.ts's COMPONENTS (embedders, tests). */
  leaderWork?: readonly ControllerComponent[];
  /** `SPIDERPOOL_ENABLED_DEBUG_METRIC`: upstream's per-pool and per-subnet debug gauges. */
  debugMetrics?: boolean;
  /** Environment of the leader election and reconcilers (SPIDERPOOL_LEADER_*, ...); default Deno.env. */
  env?: (key: string) => string | undefined;
  log?: (message: string) => void;
}

export interface RunningController {
  webhookPort: number;
  healthPort?: number;
  metricsPort?: number;
  registry: Registry;
  /** The CA the webhook configurations trust. */
  caPem: string;
  /** True while this replica holds the lease (its leader-only components run). */
  leading(): boolean;
  /** The election and the leader-only components. */
  leader: LeaderWorkHandle;
  stop(): Promise<void>;
}

/** Waits for the API server's `/readyz`, 15 tries about 2 s apart, like the agent. */
async function waitApiServer(http: KubeHttp, log: (m: string) => void): Promise<void> {
  let last: unknown;
  for (let i = 0; i < 15; i++) {
    try {
      await http.get("/readyz", { timeoutMs: 2_000 });
      return;
    } catch (err) {
      last = err;
      log(`waiting for the API server /readyz (${i + 1}/15): ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 2_000));
    }
  }
  throw new Error(`the API server is not ready after 15 tries: ${(last as Error)?.message}`);
}

/**
 * GET `/webhook-health-check` over TLS on loopback, verifying the certificate against `caPem` for
 * `serverName` (a name every serving certificate carries, whether or not it names 127.0.0.1).
 */
export function webhookHealthy(
  port: number,
  caPem: string,
  serverName: string,
  timeoutMs = 3_000,
): Promise<boolean> {
  return new Promise((resolve) => {
    let buf = "";
    const sock = connect({
      host: "127.0.0.1",
      port,
      servername: serverName,
      ca: caPem,
      ALPNProtocols: ["http/1.1"],
    }, () => {
      sock.write(`GET ${HEALTH_PATH} HTTP/1.1\r\nHost: ${serverName}\r\nConnection: close\r\n\r\n`);
    });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(false);
    }, timeoutMs);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      resolve(ok);
    };
    sock.on("data", (d) => buf += d.toString());
    sock.on("end", () => done(/^HTTP\/1\.1 200 /.test(buf)));
    sock.on("error", () => done(false));
  });
}

/** Starts a controller replica; resolves once its webhooks are registered and answering. */
export async function startController(opts: ControllerOptions): Promise<RunningController> {
  const log = opts.log ?? ((m: string) => console.error(`spiderpool-controller: ${m}`));
  const config = opts.config ?? defaultConfig();
  const bind = opts.bindAddress ?? "0.0.0.0";
  const stops: (() => Promise<void> | void)[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      for (const s of stops.reverse()) {
        try {
          await s();
        } catch (err) {
          log(`shutdown: ${(err as Error).message}`);
        }
      }
    })();

  // One registry for the whole process: the webhooks' and the leader-only components' metrics side by side
  // (prom-client refuses a second metric of the same name, so a collision fails the start-up).
  const registry = new Registry();
  let metricsServer: Deno.HttpServer<Deno.NetAddr> | undefined;
  try {
    if (opts.metricsPort !== undefined) {
      metricsServer = Deno.serve(
        { port: opts.metricsPort, hostname: bind, onListen: () => {} },
        async (req) => {
          if (new URL(req.url).pathname !== "/metrics") return new Response(null, { status: 404 });
          return new Response(await registry.metrics(), {
            headers: { "content-type": registry.contentType },
          });
        },
      );
      stops.push(() => metricsServer!.shutdown());
    }
    const ownsKubeConfig = opts.kubeConfig === undefined;
    const kc = opts.kubeConfig ?? loadKubeConfig(opts.kubeconfig);
    if (ownsKubeConfig) stops.push(() => closeKubeConfig(kc));
    const http = await KubeHttp.fromKubeConfig(kc, { timeoutMs: 10_000 });
    stops.push(() => http.close());
    await waitApiServer(http, log);

    const serviceName = opts.serviceName ?? "spiderpool-controller";
    const serviceDNS = `${serviceName}.${opts.namespace}.svc`;
    const needs: CertNeeds = {
      dnsNames: [serviceName, `${serviceName}.${opts.namespace}`, serviceDNS],
      ipAddresses: opts.webhookURL ? ["127.0.0.1"] : [],
    };
    const tls: ServingMaterial = opts.tls.method === "provided"
      ? await readProvided(opts.tls, { dnsNames: [serviceDNS], ipAddresses: needs.ipAddresses })
      : await ensureAutoCertificate(http, opts.namespace, { ...needs, ipAddresses: ["127.0.0.1"] }, log);

    const metrics = new WebhookMetrics(registry);
    const ledger = (name: string) =>
      new AdmissionLedger({
        http,
        namespace: opts.namespace,
        name,
        replica: opts.podName,
        onConflict: () => metrics.ledgerConflict(),
      });
    const ctx: WebhookContext = {
      config,
      http,
      ipamLedger: ledger("spiderpool-controller-admission-ippools"),
      reservedIPLedger: ledger("spiderpool-controller-admission-reservedips"),
    };
    const kinds = [
      SINGULAR.ippool,
      SINGULAR.subnet,
      SINGULAR.reservedIP,
      ...(opts.coordinatorEnabled ?? true ? [SINGULAR.coordinator] : []),
      ...(opts.multusConfigEnabled ?? true ? [SINGULAR.multusConfig] : []),
    ];
    const podInject = config.podResourceInject.enabled
      ? { metrics: new PodInjectionMetrics(registry) }
      : undefined;
    const webhooks: WebhookServer = serveWebhooks({
      port: opts.webhookPort,
      hostname: bind,
      tls,
      kinds,
      ctx,
      metrics,
      podInject,
      log,
    });
    stops.push(() => webhooks.shutdown());

    // The election starts now; the components' caches and work only once the own webhook answers (below).
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => openGate = resolve);
    const leader = startLeaderWork({
      http,
      kubeConfig: kc,
      namespace: opts.namespace,
      identity: opts.podName,
      enableSpiderSubnet: config.enableSpiderSubnet,
      config,
      registry,
      debugMetrics: opts.debugMetrics,
      matchLabels: opts.reconcileSelector,
      watchNamespace: opts.reconcileNamespace,
      // The same switches as the webhooks above: a SpiderMultusConfig the webhook admits gets its NAD, a
      // SpiderCoordinator the webhook admits gets its status.
      multusConfigEnabled: opts.multusConfigEnabled ?? true,
      coordinatorEnabled: opts.coordinatorEnabled ?? true,
      work: opts.leaderWork,
      after: gate,
      env: opts.env,
      log,
    });
    stops.push(async () => {
      await leader.stop();
      log("leader-only work stopped and its watches closed");
    });

    const endpoint: WebhookEndpoint = opts.webhookURL
      ? { url: opts.webhookURL }
      : { service: { namespace: opts.namespace, name: serviceName, port: webhooks.port } };
    const configName = opts.webhookConfigName ?? WEBHOOK_CONFIG_NAME;
    const done = await registerWebhooks(http, {
      endpoint,
      caPem: tls.caPem,
      kinds,
      name: configName,
      objectSelector: opts.webhookObjectSelector,
      podWebhook: podInject && config.podResourceInject,
    });
    log(
      `webhooks for ${[...kinds, ...(podInject ? ["pod resource injection"] : [])].join(", ")} ` +
        `registered in ${configName} (mutating ${done.MutatingWebhookConfiguration}, ` +
        `validating ${done.ValidatingWebhookConfiguration}; ` +
        `${"url" in endpoint ? endpoint.url : `service ${serviceDNS}:${webhooks.port}`})`,
    );

    let started = false;
    const selfCheck = () => webhookHealthy(webhooks.port, tls.caPem, serviceDNS);
    let health: Deno.HttpServer<Deno.NetAddr> | undefined;
    if (opts.healthPort !== undefined) {
      health = Deno.serve({ port: opts.healthPort, hostname: bind, onListen: () => {} }, async (req) => {
        // Components' own routes first (the IP GC's /v1/ipam/gc_ips, upstream's controller API on this port).
        for (const c of leader.components) {
          const answer = c.route?.(req);
          if (answer) return answer;
        }
        if (req.method !== "GET") return new Response(null, { status: 405 });
        switch (new URL(req.url).pathname) {
          case "/v1/runtime/startup":
            return status(started);
          case "/v1/runtime/liveness":
            return status(started && !stopping && await selfCheck());
          case "/v1/runtime/readiness": {
            if (!started || stopping) return status(false, "starting or stopping");
            const why = leader.notReady();
            if (why) return status(false, why);
            return status(await selfCheck(), "the webhook server does not answer");
          }
        }
        return new Response(null, { status: 404 });
      });
      stops.push(() => health!.shutdown());
    }

    // Upstream waits for its own webhook the same way: up to 100 tries, 1 s apart.
    for (let i = 1;; i++) {
      if (await selfCheck()) break;
      if (i === 100) {
        throw new Error(`the webhook server on port ${webhooks.port} does not answer ${HEALTH_PATH}`);
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
    started = true;
    openGate();
    log(
      `serving admission webhooks on port ${webhooks.port}; ${leader.components.length} leader-only component(s)`,
    );
    return {
      webhookPort: webhooks.port,
      healthPort: health?.addr.port,
      metricsPort: metricsServer?.addr.port,
      registry,
      caPem: tls.caPem,
      leading: () => leader.elector.isLeader(),
      leader,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function status(ok: boolean, why = ""): Response {
  return new Response(ok ? null : `${why}\n`, { status: ok ? 200 : 500 });
}
