// The plugin side of the agent's unix-socket API: one HTTP/1.1 request per connection (`Connection: close`,
// an empty Host, as upstream's Go client sends), written and read by hand over Deno.connect so that a CNI
// plugin process loads nothing beyond this file. Every failure becomes an AgentRequestError with a kind.
import {
  AgentPaths,
  type CoordinatorConfig,
  DEFAULT_AGENT_SOCKET,
  type GetCoordinatorArgs,
  type IpamAddArgs,
  type IpamAddResponse,
  type IpamBatchDelArgs,
  type IpamDelArgs,
  type IpamGcArgs,
  type IpamStatusArgs,
  RELEASE_DETAIL_HEADER,
  RELEASE_RESULT_HEADER,
  type ReleaseOutcome,
  type ReleaseResult,
  type WorkloadEndpointStatus,
} from "./models.ts";

/**
 * Why a request failed: `unreachable` (no socket, nobody listening, or the connection reset or closed before
 * a complete answer: the agent went away, e.g. restarted mid-request), `timeout`, `http` (the agent answered
 * with a non-2xx status; `message` is its error text), `protocol` (an answer that is not HTTP).
 */
export type AgentErrorKind = "unreachable" | "timeout" | "http" | "protocol";

export class AgentRequestError extends Error {
  readonly kind: AgentErrorKind;
  /** HTTP status when kind is "http". */
  readonly status?: number;
  /**
   * False when no connection to the agent was made, so the request never reached it: nothing was decided,
   * exactly as when a health check before the request fails.
   */
  readonly connected: boolean;

  constructor(kind: AgentErrorKind, message: string, status?: number, connected = true) {
    super(message);
    this.name = "AgentRequestError";
    this.kind = kind;
    this.status = status;
    this.connected = connected;
  }
}

export interface HttpResponse {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
}

export interface RequestOptions {
  method: string;
  path: string;
  /** Serialised as JSON with Content-Type application/json. */
  body?: unknown;
  timeoutMs: number;
}

const CRLF2 = new Uint8Array([13, 10, 13, 10]);

function indexOf(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Decodes a chunked body; undefined while incomplete. */
function dechunk(data: Uint8Array): Uint8Array | undefined {
  const parts: Uint8Array[] = [];
  let pos = 0;
  for (;;) {
    const eol = indexOf(data, CRLF2.subarray(0, 2), pos);
    if (eol < 0) return undefined;
    const sizeText = new TextDecoder().decode(data.subarray(pos, eol)).split(";")[0].trim();
    const size = parseInt(sizeText, 16);
    if (!/^[0-9a-fA-F]+$/.test(sizeText) || Number.isNaN(size)) {
      throw new AgentRequestError("protocol", `bad chunk size "${sizeText}" in the agent's response`);
    }
    if (size === 0) {
      // Last chunk; trailers (ignored) end with an empty line.
      return indexOf(data, CRLF2, eol) >= 0 ? joinParts(parts) : undefined;
    }
    const start = eol + 2;
    if (data.length < start + size + 2) return undefined;
    parts.push(data.subarray(start, start + size));
    pos = start + size + 2;
  }
}

function joinParts(parts: Uint8Array[]): Uint8Array {
  let out: Uint8Array = new Uint8Array(0);
  for (const p of parts) out = concat(out, p);
  return out;
}

/** Parses a complete or partial response; undefined while more bytes are needed (`eof`: no more will come). */
export function parseResponse(data: Uint8Array, eof: boolean): HttpResponse | undefined {
  const headEnd = indexOf(data, CRLF2);
  if (headEnd < 0) {
    if (eof) {
      throw new AgentRequestError(
        "unreachable",
        data.length === 0
          ? "the agent closed the connection without answering (was it restarted?)"
          : "the agent closed the connection in the middle of its answer (was it restarted?)",
      );
    }
    return undefined;
  }
  const lines = new TextDecoder().decode(data.subarray(0, headEnd)).split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) throw new AgentRequestError("protocol", `not an HTTP response: "${lines[0].slice(0, 80)}"`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const status = Number(m[1]);
  const rest = data.subarray(headEnd + 4);
  if (status === 204 || status === 304) return { status, headers, body: new Uint8Array(0) };
  if (headers.get("transfer-encoding")?.toLowerCase().includes("chunked")) {
    const body = dechunk(rest);
    if (body) return { status, headers, body };
    if (eof) {
      throw new AgentRequestError(
        "unreachable",
        "the agent closed the connection in the middle of its answer (was it restarted?)",
      );
    }
    return undefined;
  }
  const lengthText = headers.get("content-length");
  if (lengthText !== undefined) {
    const length = Number(lengthText);
    if (!Number.isInteger(length) || length < 0) {
      throw new AgentRequestError("protocol", `bad Content-Length "${lengthText}" in the agent's response`);
    }
    if (rest.length >= length) return { status, headers, body: rest.subarray(0, length) };
    if (eof) {
      throw new AgentRequestError(
        "unreachable",
        "the agent closed the connection in the middle of its answer (was it restarted?)",
      );
    }
    return undefined;
  }
  return eof ? { status, headers, body: rest } : undefined;
}

/**
 * Sends one HTTP/1.1 request over the unix socket at `socketPath` and reads the whole response. The Host
 * header is empty, as Go's client sends it for a socket path: Go's server refuses a path there ("400 Bad
 * Request: malformed Host header"), and an empty Host is valid HTTP/1.1 (RFC 9112 §3.2).
 */
export async function requestOverSocket(socketPath: string, opts: RequestOptions): Promise<HttpResponse> {
  const payload = opts.body === undefined ? undefined : new TextEncoder().encode(JSON.stringify(opts.body));
  const head = [
    `${opts.method} ${opts.path} HTTP/1.1`,
    "Host: ",
    "Connection: close",
    "Accept: application/json",
    "User-Agent: spiderpool-cni",
    ...(payload ? ["Content-Type: application/json", `Content-Length: ${payload.length}`] : []),
    "",
    "",
  ].join("\r\n");
  const request = payload ? concat(new TextEncoder().encode(head), payload) : new TextEncoder().encode(head);

  let conn: Deno.UnixConn | undefined;
  let timedOut = false;
  // The deadline is a V8 timed wait on a private cell, which `Atomics.notify` cancels, rather than a runtime
  // timer: the global setTimeout is Node's (its first use loads about twenty modules, ≈ 5 ms of a plugin call's
  // CPU), and AbortSignal.timeout with its listener costs ≈ 0.8 ms (tests/bench/plugin.ts). A pending wait
  // keeps no process alive.
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const timeout = Promise.resolve(Atomics.waitAsync(cell, 0, 0, opts.timeoutMs).value).then((woken) => {
    if (woken !== "timed-out") return new Promise<never>(() => {});
    timedOut = true;
    try {
      conn?.close();
    } catch { /* already closed */ }
    throw new AgentRequestError(
      "timeout",
      `no answer to ${opts.method} ${opts.path} within ${opts.timeoutMs / 1000} s`,
    );
  });
  const exchange = async (): Promise<HttpResponse> => {
    try {
      conn = await Deno.connect({ transport: "unix", path: socketPath });
    } catch (e) {
      throw new AgentRequestError(
        "unreachable",
        `cannot connect to ${socketPath}: ${(e as Error).message}`,
        undefined,
        false,
      );
    }
    if (timedOut) conn.close();
    try {
      let written = 0;
      while (written < request.length) written += await conn.write(request.subarray(written));
      let data: Uint8Array = new Uint8Array(0);
      const buf = new Uint8Array(16384);
      for (;;) {
        const n = await conn.read(buf);
        if (n !== null) data = concat(data, buf.subarray(0, n));
        const res = parseResponse(data, n === null);
        if (res) return res;
      }
    } catch (e) {
      if (e instanceof AgentRequestError) throw e;
      throw new AgentRequestError(
        "unreachable",
        `${opts.method} ${opts.path} on ${socketPath} failed: ${(e as Error).message}`,
      );
    } finally {
      try {
        conn.close();
      } catch { /* closed by the timer */ }
    }
  };
  try {
    return await Promise.race([exchange(), timeout]);
  } finally {
    Atomics.notify(cell, 0);
  }
}

/** The agent's error text: the body is a JSON string; anything else is shown as received. */
export function errorText(body: Uint8Array): string {
  const text = new TextDecoder().decode(body).trim();
  try {
    const v = JSON.parse(text);
    if (typeof v === "string") return v;
    if (v && typeof v === "object" && typeof v.message === "string") return v.message;
  } catch { /* not JSON */ }
  return text;
}

export interface AgentClientOptions {
  /** For ADD/DEL and every call but the health check; upstream uses 100 s. */
  timeoutMs?: number;
  healthTimeoutMs?: number;
}

/** A client of one agent socket. */
export class AgentClient {
  readonly socketPath: string;
  readonly timeoutMs: number;
  readonly healthTimeoutMs: number;

  constructor(socketPath: string = DEFAULT_AGENT_SOCKET, opts: AgentClientOptions = {}) {
    this.socketPath = socketPath;
    this.timeoutMs = opts.timeoutMs ?? 100_000;
    this.healthTimeoutMs = opts.healthTimeoutMs ?? 2_000;
  }

  async #call(
    method: string,
    path: string,
    body: unknown,
    timeoutMs = this.timeoutMs,
  ): Promise<HttpResponse> {
    const res = await requestOverSocket(this.socketPath, { method, path, body, timeoutMs });
    if (res.status < 200 || res.status > 299) {
      const text = errorText(res.body) || "(empty body)";
      throw new AgentRequestError("http", text, res.status);
    }
    return res;
  }

  async #json<T>(method: string, path: string, body: unknown): Promise<T> {
    const raw = (await this.#call(method, path, body)).body;
    try {
      return JSON.parse(new TextDecoder().decode(raw)) as T;
    } catch (e) {
      throw new AgentRequestError(
        "protocol",
        `${method} ${path}: the agent's answer is not JSON: ${(e as Error).message}`,
      );
    }
  }

  /** `GET /v1/ipam/healthy`; throws when the agent is not ready. */
  async healthy(): Promise<void> {
    await this.#call("GET", AgentPaths.healthy, undefined, this.healthTimeoutMs);
  }

  allocate(args: IpamAddArgs): Promise<IpamAddResponse> {
    return this.#json("POST", AgentPaths.ip, args);
  }

  /**
   * `DELETE /v1/ipam/ip`: what the release did, from the agent's RELEASE_RESULT_HEADER; undefined when the
   * agent does not say (upstream's agent answers an empty 200 whatever it did).
   */
  async release(args: IpamDelArgs): Promise<ReleaseOutcome | undefined> {
    const res = await this.#call("DELETE", AgentPaths.ip, args);
    const result = res.headers.get(RELEASE_RESULT_HEADER.toLowerCase());
    if (result !== "released" && result !== "kept" && result !== "none") return undefined;
    return {
      result: result as ReleaseResult,
      detail: res.headers.get(RELEASE_DETAIL_HEADER.toLowerCase()) ?? "",
    };
  }

  async releaseAll(args: IpamBatchDelArgs): Promise<void> {
    await this.#call("DELETE", AgentPaths.ips, args);
  }

  async gc(args: IpamGcArgs): Promise<void> {
    await this.#call("POST", AgentPaths.gc, args);
  }

  /**
   * `POST /v1/ipam/status`: throws AgentRequestError kind "http" (status 500, the message names the pools)
   * when a pod without pool annotations could not get an address. Answered from the agent's caches, so it
   * has the health check's timeout.
   */
  async status(args: IpamStatusArgs): Promise<void> {
    await this.#call("POST", AgentPaths.status, args, this.healthTimeoutMs);
  }

  /** A GET with a JSON body, as upstream's API defines it. */
  coordinatorConfig(args: GetCoordinatorArgs): Promise<CoordinatorConfig> {
    return this.#json("GET", AgentPaths.coordinatorConfig, args);
  }

  workloadEndpoint(podNamespace: string, podName: string): Promise<WorkloadEndpointStatus> {
    const q = `podNamespace=${encodeURIComponent(podNamespace)}&podName=${encodeURIComponent(podName)}`;
    return this.#json("GET", `${AgentPaths.workloadEndpoint}?${q}`, undefined);
  }
}
