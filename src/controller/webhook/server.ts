// The HTTPS server of the admission webhooks: `POST /mutate-…` and `/validate-…` for each registered kind,
// `GET /webhook-health-check` for the probes. It only moves AdmissionReviews between the API server and the
// handlers, and counts each answer.

import { mutatePod } from "../../multus/inject.ts";
import type { PodInjectionMetrics } from "../../multus/metrics.ts";
import { KIND_WEBHOOKS, type WebhookContext, webhookPath } from "./handlers.ts";
import type { WebhookMetrics } from "./metrics.ts";
import { POD_WEBHOOK_PATH } from "./register.ts";
import { type AdmissionResponse, BadReviewError, denyWith, parseReview, reviewOf } from "./review.ts";
import type { ServingMaterial } from "./tls.ts";

export const HEALTH_PATH = "/webhook-health-check";

export interface WebhookServer {
  port: number;
  /** Stops accepting connections and waits for the answers in flight. */
  shutdown(): Promise<void>;
}

export interface WebhookServerOptions {
  port: number;
  hostname?: string;
  tls: ServingMaterial;
  /** Singular names of the kinds served. */
  kinds: readonly string[];
  ctx: WebhookContext;
  metrics: WebhookMetrics;
  /** Serve `/mutate--v1-pod` (ConfigMap `podResourceInject.enabled`), counting its answers here too. */
  podInject?: { metrics: PodInjectionMetrics };
  log: (message: string) => void;
}

type Route = { type: "mutate" | "validate"; singular: string } | { type: "pod" };

/** Starts the HTTPS server; resolves once it listens. */
export function serveWebhooks(o: WebhookServerOptions): WebhookServer {
  const routes = new Map<string, Route>();
  for (const singular of o.kinds) {
    for (const type of ["mutate", "validate"] as const) {
      routes.set(webhookPath(type, singular), { type, singular });
    }
  }
  if (o.podInject) routes.set(POD_WEBHOOK_PATH, { type: "pod" });
  const server = Deno.serve({
    port: o.port,
    hostname: o.hostname ?? "0.0.0.0",
    cert: o.tls.certPem,
    key: o.tls.keyPem,
    onListen: () => {},
    onError: (err) => {
      o.log(`webhook server: ${(err as Error).message}`);
      return new Response("internal error", { status: 500 });
    },
  }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === HEALTH_PATH) return new Response(req.method === "GET" ? "ok" : null, { status: 200 });
    const route = routes.get(path);
    if (!route) return new Response(`no webhook at ${path}\n`, { status: 404 });
    if (req.method !== "POST") return new Response(null, { status: 405 });
    return await answer(route, await req.text(), o);
  });
  return { port: server.addr.port, shutdown: () => server.shutdown() };
}

async function answer(route: Route, body: string, o: WebhookServerOptions): Promise<Response> {
  const started = performance.now();
  let request;
  try {
    request = parseReview(body);
  } catch (err) {
    if (err instanceof BadReviewError) return new Response(`${err.message}\n`, { status: 400 });
    throw err;
  }
  if (route.type === "pod") {
    // mutatePod turns its own failures (the cluster could not be read) into a refusal naming them.
    const response: AdmissionResponse = await mutatePod(o.ctx.http, request, {
      metrics: o.podInject?.metrics,
    });
    o.metrics.observe({
      webhook: "mutating",
      kind: "Pod",
      operation: request.operation,
      verdict: response.allowed ? "allowed" : "denied",
    }, (performance.now() - started) / 1000);
    return Response.json(reviewOf(response));
  }
  const handler = KIND_WEBHOOKS[route.singular];
  let response;
  let verdict: "allowed" | "denied" | "error";
  try {
    response = route.type === "mutate"
      ? await handler.mutate(request, o.ctx)
      : await handler.validate(request, o.ctx);
    verdict = response.allowed ? "allowed" : "denied";
  } catch (err) {
    // Could not decide (the API server did not answer a list, the ledger stayed busy): refuse, say why, and
    // let the user retry; failurePolicy Fail would refuse anyway, this says it in words.
    const what = `${handler.kind} ${JSON.stringify(request.name ?? "")}`;
    o.log(`${route.type} ${request.operation} ${what}: ${(err as Error).message}`);
    response = denyWith(
      request.uid,
      500,
      "InternalError",
      `spiderpool-controller could not check ${what}: ${(err as Error).message}; retry the request`,
    );
    verdict = "error";
  }
  o.metrics.observe({
    webhook: route.type === "mutate" ? "mutating" : "validating",
    kind: handler.kind,
    operation: request.operation,
    verdict,
  }, (performance.now() - started) / 1000);
  return Response.json(reviewOf(response));
}
