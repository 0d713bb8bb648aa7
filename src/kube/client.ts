// The project's Kubernetes client: KubeHttp, JSON requests and watch streams on Deno's fetch with one
// persistent connection pool, and typed errors for 404/409/timeouts. It loads no Kubernetes client library, so
// the agent (which reaches the API server only through it) carries none; credentials come from
// src/kube/kubeconfig.ts or, for callers that hold one, from a client-node KubeConfig (src/kube/client_node.ts).

import type { KubeConfig } from "@kubernetes/client-node";

/** A non-2xx answer of the API server, with the `Status` object it sent when there was one. */
export class KubeHttpError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    /** `Status.reason`, e.g. "Conflict", "AlreadyExists", "NotFound", "Invalid". */
    readonly reason: string,
    readonly body: unknown,
  ) {
    super(`${method} ${path}: HTTP ${status} ${reason}: ${statusMessage(body)}`);
    this.name = new.target.name;
  }
}

/** 409: a stale resourceVersion (reason "Conflict") or a create of an existing name ("AlreadyExists"). */
export class ConflictError extends KubeHttpError {}

/** 404: the object (or its namespace, or its resource type) does not exist. */
export class NotFoundError extends KubeHttpError {}

/**
 * The API server did not answer (headers and body) within the request's timeout. Without a deadline one hung
 * call would hold the agent's per-pod lock, and with it every later ADD and DEL of that pod, forever.
 */
export class KubeTimeoutError extends Error {
  constructor(readonly method: string, readonly path: string, readonly timeoutMs: number) {
    super(
      `${method} ${path}: no complete answer from the API server within ${timeoutMs} ms; ` +
        `check that kube-apiserver is reachable and not overloaded`,
    );
    this.name = new.target.name;
  }
}

export interface KubeResponse<T> {
  status: number;
  body: T;
}

export interface RequestOptions {
  /** Sent as JSON. */
  body?: unknown;
  /** Default application/json. */
  contentType?: string;
  /** Default application/json; e.g. `application/json;as=Table;v=v1;g=meta.k8s.io` for printer columns. */
  accept?: string;
  /**
   * Deadline for the whole exchange (headers and body), overriding the client's `timeoutMs`. `0` means none:
   * only for requests the server is meant to hold open, such as watches.
   */
  timeoutMs?: number;
  /** Aborts the request early, e.g. when its caller is shutting down. */
  signal?: AbortSignal;
}

/** The per-call options of the verb helpers (`post`, `put`, `patch`, `delete`). */
export type CallOptions = Pick<RequestOptions, "timeoutMs" | "signal">;

export type PatchType = "merge" | "json" | "strategic" | "apply";

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  strategic: "application/strategic-merge-patch+json",
  apply: "application/apply-patch+yaml",
};

export interface KubeHttpOptions {
  /** e.g. https://127.0.0.1:6443 */
  server: string;
  caPem?: string;
  certPem?: string;
  keyPem?: string;
  /** Returns the Authorization header value (e.g. "Bearer ..."), or undefined for none. */
  authorization?: () => Promise<string | undefined>;
  /**
   * Called when the server answered 401: credentials the authorization function caches (an exec plugin's
   * token) are stale. The next request calls `authorization` again either way.
   */
  unauthorized?: () => void;
  /** Sent with every request, e.g. the impersonation headers of a kubeconfig user (`Impersonate-User`). */
  headers?: Record<string, string>;
  /** Deadline for each request, headers and body; default {@linkcode DEFAULT_TIMEOUT_MS}. `0` means none. */
  timeoutMs?: number;
}

/** Default per-request deadline of KubeHttp. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Credentials from a kubeconfig are re-read this often, so rotated service-account tokens are picked up. */
const AUTH_REFRESH_MS = 60_000;

/**
 * A minimal JSON client on Deno's fetch with one persistent HTTP client: ≈ 3× the request rate of client-node
 * 2.0.1 as shipped and ≈ 1.4× that of client-node with pooled connections (tests/bench/kube_client.ts). Paths are API paths such as `/apis/spiderpool.spidernet.io/v2beta1/spiderippools/p1`.
 * 2xx answers resolve to status and parsed body; 404 and 409 throw NotFoundError and ConflictError, other
 * failures KubeHttpError. Each request must finish within a deadline (`timeoutMs`, default 30 s) or throws
 * KubeTimeoutError.
 *
 * @example
 * ```ts
 * const http = await KubeHttp.fromKubeConfig(loadKubeConfig());
 * const { body: pool } = await http.get<SpiderIPPool>(`${POOLS}/default-v4`);
 * ```
 */
export class KubeHttp {
  readonly #server: string;
  readonly #client: Deno.HttpClient;
  readonly #tls: Deno.CreateHttpClientOptions & Partial<Deno.TlsCertifiedKeyPem>;
  #streamClient?: Deno.HttpClient;
  readonly #authorization?: () => Promise<string | undefined>;
  readonly #unauthorized?: () => void;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  #auth?: { value: string | undefined; expires: number };

  constructor(opts: KubeHttpOptions) {
    this.#server = opts.server.replace(/\/+$/, "");
    const tls: Deno.CreateHttpClientOptions & Partial<Deno.TlsCertifiedKeyPem> = {
      caCerts: opts.caPem ? [opts.caPem] : undefined,
    };
    if (opts.certPem && opts.keyPem) {
      tls.cert = opts.certPem;
      tls.key = opts.keyPem;
    }
    // HTTP/1.1 only: over HTTP/2 (what ALPN picks with kube-apiserver) Deno's fetch sends a request body above
    // ~1 KB in a second TCP segment that waits for the delayed ACK, so every PUT of a pool took ≈ 45 ms instead
    // of ≈ 2 ms (measured with tests/bench/kube_client.ts).
    this.#client = Deno.createHttpClient({ ...tls, http2: false });
    this.#tls = tls;
    this.#authorization = opts.authorization;
    this.#unauthorized = opts.unauthorized;
    this.#headers = { ...opts.headers };
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Takes server, CA, client certificate and credentials (token, token file, exec plugin) from `kc`. */
  static async fromKubeConfig(
    kc: KubeConfig,
    opts: Pick<KubeHttpOptions, "timeoutMs"> = {},
  ): Promise<KubeHttp> {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster; set current-context");
    if (cluster.skipTLSVerify) {
      throw new Error(
        `cluster "${cluster.name}" sets insecure-skip-tls-verify, which KubeHttp does not support`,
      );
    }
    if (cluster.proxyUrl) {
      throw new Error(`cluster "${cluster.name}" uses a proxy, which KubeHttp does not support`);
    }
    const resolve = async () => {
      const opts: { ca?: unknown; cert?: unknown; key?: unknown; headers?: Record<string, unknown> } = {};
      await kc.applyToHTTPSOptions(opts);
      return opts;
    };
    const first = await resolve();
    const pem = (v: unknown) =>
      v === undefined || v === null ? undefined : new TextDecoder().decode(v as Uint8Array);
    return new KubeHttp({
      ...opts,
      server: cluster.server,
      caPem: pem(first.ca),
      certPem: pem(first.cert),
      keyPem: pem(first.key),
      authorization: async () => {
        const headers = (await resolve()).headers ?? {};
        const value = headers.Authorization ?? headers.authorization;
        return value === undefined ? undefined : String(value);
      },
    });
  }

  get<T>(path: string, opts: RequestOptions = {}): Promise<KubeResponse<T>> {
    return this.request<T>("GET", path, opts);
  }

  post<T>(path: string, body: unknown, opts: CallOptions = {}): Promise<KubeResponse<T>> {
    return this.request<T>("POST", path, { ...opts, body });
  }

  put<T>(path: string, body: unknown, opts: CallOptions = {}): Promise<KubeResponse<T>> {
    return this.request<T>("PUT", path, { ...opts, body });
  }

  /** For `apply`, add `?fieldManager=...` to the path; the body is still sent as JSON (valid YAML). */
  patch<T>(
    path: string,
    body: unknown,
    type: PatchType = "merge",
    opts: CallOptions = {},
  ): Promise<KubeResponse<T>> {
    return this.request<T>("PATCH", path, { ...opts, body, contentType: PATCH_CONTENT_TYPES[type] });
  }

  delete<T>(path: string, body?: unknown, opts: CallOptions = {}): Promise<KubeResponse<T>> {
    return this.request<T>("DELETE", path, { ...opts, body });
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<KubeResponse<T>> {
    const headers: Record<string, string> = { ...this.#headers, accept: opts.accept ?? "application/json" };
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    if (body !== undefined) headers["content-type"] = opts.contentType ?? "application/json";
    const authorization = await this.#currentAuthorization();
    if (authorization) headers.authorization = authorization;
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    const timeout = timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined;
    const signals = [timeout, opts.signal].filter((s) => s !== undefined);
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${this.#server}${path}`, { method, headers, body, client: this.#client, signal });
      // The deadline covers the body too: a server that sends headers and then stalls is as hung as a silent one.
      text = await res.text();
    } catch (err) {
      if (timeout?.aborted) throw new KubeTimeoutError(method, path, timeoutMs);
      throw err;
    }
    const parsed = parseBody(res, text);
    if (res.ok) return { status: res.status, body: parsed as T };
    throw this.#failure(method, path, res, parsed);
  }

  /**
   * Opens a GET the server holds open, such as a watch (`?watch=1`), and resolves once its headers arrive; the
   * caller reads the body and ends it through `signal` (there is no deadline: the caller watches for
   * stalls). Streams run on a connection pool of their own: a watch holds its HTTP/1.1 connection for
   * minutes, and on the shared pool it would take the warm keep-alive connections of the short requests,
   * which would then pay a new TLS handshake. A non-2xx answer throws as `request` does.
   */
  async stream(path: string, opts: { signal?: AbortSignal } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...this.#headers, accept: "application/json" };
    const authorization = await this.#currentAuthorization();
    if (authorization) headers.authorization = authorization;
    this.#streamClient ??= Deno.createHttpClient({ ...this.#tls, http2: false });
    const res = await fetch(`${this.#server}${path}`, {
      headers,
      client: this.#streamClient,
      signal: opts.signal,
    });
    if (res.ok) return res;
    const text = await res.text();
    throw this.#failure("GET", path, res, parseBody(res, text));
  }

  #failure(method: string, path: string, res: Response, parsed: unknown): KubeHttpError {
    // A rotated token file or expired exec credential: read the credentials again on the next request.
    if (res.status === 401) {
      this.#auth = undefined;
      this.#unauthorized?.();
    }
    const reason = (parsed as { reason?: string })?.reason ?? res.statusText;
    const ErrorType = res.status === 409 ? ConflictError : res.status === 404 ? NotFoundError : KubeHttpError;
    return new ErrorType(method, path, res.status, reason, parsed);
  }

  close(): void {
    this.#client.close();
    this.#streamClient?.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async #currentAuthorization(): Promise<string | undefined> {
    if (!this.#authorization) return undefined;
    const now = Date.now();
    if (!this.#auth || this.#auth.expires <= now) {
      this.#auth = { value: await this.#authorization(), expires: now + AUTH_REFRESH_MS };
    }
    return this.#auth.value;
  }
}

function parseBody(res: Response, text: string): unknown {
  if (text !== "" && (res.headers.get("content-type") ?? "").includes("json")) return JSON.parse(text);
  return text;
}

function statusMessage(body: unknown): string {
  if (typeof body === "string") return body.slice(0, 500) || "(empty body)";
  return (body as { message?: string })?.message ?? JSON.stringify(body).slice(0, 500);
}
