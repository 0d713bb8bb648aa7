// The agent's TCP endpoints: probes on the health port (`/v1/runtime/{startup,readiness,liveness}`; readiness
// and liveness ask the agent's own unix socket, as upstream does) and Prometheus `/metrics` on the metrics port.

import { AgentPaths } from "../agentapi/models.ts";

export interface TcpServer {
  port: number;
  shutdown(): Promise<void>;
}

/** GET on the agent's own socket; true when `/v1/ipam/healthy` answers 200 within `timeoutMs`. */
export async function socketHealthy(socketPath: string, timeoutMs = 5_000): Promise<boolean> {
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socketPath } });
  try {
    const res = await fetch(`http://localhost${AgentPaths.healthy}`, {
      client,
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  } finally {
    client.close();
  }
}

/** Serves the three probes; `started()` is the startup flag (init finished). */
export function serveHealth(
  port: number,
  socketPath: string,
  started: () => boolean,
  hostname = "0.0.0.0",
): TcpServer {
  const server = Deno.serve({ port, hostname, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method !== "GET") return new Response(null, { status: 405 });
    switch (path) {
      case "/v1/runtime/startup":
        return new Response(null, { status: started() ? 200 : 500 });
      case "/v1/runtime/readiness":
      case "/v1/runtime/liveness":
        return new Response(null, { status: started() && await socketHealthy(socketPath) ? 200 : 500 });
    }
    return new Response(null, { status: 404 });
  });
  return { port: server.addr.port, shutdown: () => server.shutdown() };
}

/** What `/metrics` serves: the exposition text and its content type (a Registry of exposition.ts). */
export interface MetricsSource {
  contentType: string;
  metrics(): string | Promise<string>;
  /** Runs the metrics' collectors first, when the registry has them (exposition.ts). */
  scrape?(): Promise<string>;
}

/** Serves `GET /metrics` in the Prometheus text format. */
export function serveMetrics(port: number, registry: MetricsSource, hostname = "0.0.0.0"): TcpServer {
  const server = Deno.serve({ port, hostname, onListen: () => {} }, async (req) => {
    if (new URL(req.url).pathname !== "/metrics") return new Response(null, { status: 404 });
    const text = registry.scrape ? await registry.scrape() : await registry.metrics();
    return new Response(text, { headers: { "content-type": registry.contentType } });
  });
  return { port: server.addr.port, shutdown: () => server.shutdown() };
}
