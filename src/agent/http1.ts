// A small HTTP/1.1 server for the agent's unix socket. Deno.serve drops the body of GET requests, but
// upstream's API has one (`GET /v1/coordinator/config` carries a JSON body), so requests are parsed here:
// request line, headers, Content-Length or chunked body; keep-alive unless the client says `Connection: close`.
// Read deadlines, idle timeouts and a connection cap keep stuck clients from holding the agent's descriptors,
// and at the cap the oldest idle connection makes room, so idle clients can never starve the CNI plugin.

/** One parsed request; `target` is the request target as sent (path and query). */
export interface Http1Request {
  method: string;
  target: string;
  headers: Headers;
  body: string;
}

export interface Http1Response {
  status: number;
  body?: string;
  contentType?: string;
  /** Extra response headers (names and values must be valid HTTP tokens and ASCII text). */
  headers?: Record<string, string>;
}

/** Largest request head (request line and headers, with the blank line that ends them), as Go's default. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Defaults of {@linkcode Http1Options}. */
export const HTTP1_DEFAULTS: Required<Omit<Http1Options, "log">> = {
  readTimeoutMs: 30_000,
  headerTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  maxConnections: 1024,
  maxBodyBytes: 4 * 1024 * 1024,
};
const REASONS: Record<number, string> = {
  100: "Continue",
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Payload Too Large",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};

/** A protocol error; the connection answers 400 (or 413, 431) and closes. */
class BadRequest extends Error {
  constructor(message: string, readonly status = 400) {
    super(message);
  }
}

/**
 * Buffered reads from a connection. Bytes are read straight into one buffer that doubles when full and is
 * compacted when mostly consumed, so reading a body costs time linear in its size.
 */
class Reader {
  #buf = new Uint8Array(16 * 1024);
  #start = 0;
  #end = 0;
  #eof = false;
  /** Called after every read that returned bytes. */
  onData?: () => void;
  constructor(readonly conn: Deno.Conn) {}

  /** Bytes received and not yet consumed (a pipelined next request). */
  get buffered(): number {
    return this.#end - this.#start;
  }

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const minFree = 16 * 1024;
    if (this.#buf.length - this.#end < minFree) {
      const live = this.#end - this.#start;
      // Compact only when at most half is live, else double: either way each byte is copied O(1) times.
      if (live <= this.#buf.length / 2 && this.#buf.length - live >= minFree) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        const next = new Uint8Array(Math.max(2 * this.#buf.length, live + minFree));
        next.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = next;
      }
      this.#start = 0;
      this.#end = live;
    }
    const n = await this.conn.read(this.#buf.subarray(this.#end));
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#end += n;
    this.onData?.();
    return true;
  }

  #take(n: number): Uint8Array {
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    if (this.#start === this.#end) {
      // Nothing pending: start over, and give back the room a large body needed while the connection idles.
      this.#start = this.#end = 0;
      if (this.#buf.length > 64 * 1024) this.#buf = new Uint8Array(16 * 1024);
    }
    return out;
  }

  /**
   * Bytes up to and including `delim`, at most `max` bytes in all (else `tooLong`); undefined at a clean EOF
   * before any byte.
   */
  async until(delim: string, max: number, tooLong: () => BadRequest): Promise<string | undefined> {
    const d = new TextEncoder().encode(delim);
    let from = 0;
    while (true) {
      const live = this.#buf.subarray(this.#start, this.#end);
      // Only the first max bytes count: a delimiter further on (one large read) is still too far.
      const i = indexOf(live.subarray(0, max), d, from);
      if (i !== -1) return new TextDecoder().decode(this.#take(i + d.length));
      if (live.length >= max) throw tooLong();
      from = Math.max(0, live.length - d.length + 1);
      if (!await this.#fill()) {
        if (this.buffered === 0) return undefined;
        throw new BadRequest("connection closed in the middle of a request");
      }
    }
  }

  async exactly(n: number): Promise<Uint8Array> {
    while (this.buffered < n) {
      if (!await this.#fill()) throw new BadRequest("connection closed before the whole body arrived");
    }
    return this.#take(n);
  }
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = from; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

const headTooLong = () => new BadRequest(`request head longer than ${MAX_HEAD_BYTES} bytes`, 431);

async function readRequest(
  r: Reader,
  conn: Deno.Conn,
  maxBody: number,
  onHead: () => void,
): Promise<Http1Request | undefined> {
  const head = await r.until("\r\n\r\n", MAX_HEAD_BYTES, headTooLong);
  if (head === undefined) return undefined;
  onHead();
  const lines = head.slice(0, -4).split("\r\n");
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0]);
  if (!m) throw new BadRequest(`malformed request line ${JSON.stringify(lines[0].slice(0, 100))}`);
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new BadRequest(`malformed header line ${JSON.stringify(line.slice(0, 100))}`);
    try {
      headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    } catch {
      throw new BadRequest(`invalid header ${JSON.stringify(line.slice(0, 100))}`);
    }
  }
  if (lines[0].endsWith("HTTP/1.0") && !/keep-alive/i.test(headers.get("connection") ?? "")) {
    headers.set("connection", "close");
  }
  if (/100-continue/i.test(headers.get("expect") ?? "")) {
    await writeAll(conn, new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n"));
  }
  let body: Uint8Array = new Uint8Array(0);
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
    const parts: Uint8Array[] = [];
    let total = 0;
    while (true) {
      const sizeLine = (await r.until("\r\n", 1024, () =>
        new BadRequest("chunk size line too long")))?.trim() ??
        "";
      // Hex digits only: parseInt alone would read "2zz" as 2 and frame the body wrongly.
      const sizeText = sizeLine.split(";")[0].trim();
      if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) {
        throw new BadRequest(`malformed chunk size ${JSON.stringify(sizeLine)}`);
      }
      const size = parseInt(sizeText, 16);
      if (size === 0) {
        while ((await r.until("\r\n", MAX_HEAD_BYTES, headTooLong)) !== "\r\n") { /* skip trailers */ }
        break;
      }
      total += size;
      if (total > maxBody) throw new BadRequest(`request body longer than ${maxBody} bytes`, 413);
      parts.push(await r.exactly(size));
      const end = await r.exactly(2);
      if (end[0] !== 13 || end[1] !== 10) {
        throw new BadRequest(`chunk of ${size} bytes is not followed by CRLF; the chunk size is wrong`);
      }
    }
    body = new Uint8Array(total);
    let off = 0;
    for (const p of parts) {
      body.set(p, off);
      off += p.length;
    }
  } else if (headers.has("content-length")) {
    // Decimal digits only (RFC 9110 §8.6): Number() would also take "0x2", "1e3" or "2, 3" (two headers).
    const text = headers.get("content-length")!;
    if (!/^\d{1,15}$/.test(text)) {
      throw new BadRequest(
        `malformed Content-Length ${JSON.stringify(text)}; expected the body's length in bytes`,
      );
    }
    const n = Number(text);
    if (n > maxBody) throw new BadRequest(`request body longer than ${maxBody} bytes`, 413);
    body = await r.exactly(n);
  }
  return { method: m[1], target: m[2], headers, body: new TextDecoder().decode(body) };
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

function encodeResponse(res: Http1Response, close: boolean): Uint8Array {
  const body = new TextEncoder().encode(res.body ?? "");
  const reason = REASONS[res.status] ?? `status code ${res.status}`;
  const lines = [
    `HTTP/1.1 ${res.status} ${reason}`,
    ...(res.body !== undefined ? [`Content-Type: ${res.contentType ?? "application/json"}`] : []),
    ...Object.entries(res.headers ?? {}).map(([k, v]) => `${k}: ${v.replace(/[^\x20-\x7e]/g, "?")}`),
    `Date: ${new Date().toUTCString()}`,
    `Content-Length: ${body.length}`,
    ...(close ? ["Connection: close"] : []),
  ];
  const head = new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n");
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/**
 * Limits that keep a misbehaving local client from holding the agent's file descriptors: the socket is
 * world-reachable inside the node, and a process that hits the descriptor limit can no longer accept CNI calls.
 */
export interface Http1Options {
  /** Deadline for receiving one request's head and body, counted from its first byte (and for writing the answer). */
  readTimeoutMs?: number;
  /**
   * A new connection must have sent a complete request head this long after it was accepted: a client that
   * connects and says nothing does not hold a descriptor for the whole idle timeout.
   */
  headerTimeoutMs?: number;
  /** A keep-alive connection with no request started for this long is closed. */
  idleTimeoutMs?: number;
  /**
   * At this many open connections, a new one closes the connection that has waited longest for a request
   * (idle, else still sending one) to make room; only when every connection is being answered is the new
   * one answered 503 and closed.
   */
  maxConnections?: number;
  /** Larger request bodies are answered 413. */
  maxBodyBytes?: number;
  /** Accept errors, evicted and refused connections (rate-limited); default stderr. */
  log?: (message: string) => void;
}

export interface Http1Server {
  finished: Promise<void>;
  /** Stops accepting, lets in-flight requests finish, closes idle connections. */
  shutdown(): Promise<void>;
}

/**
 * Serves `handler` on `listener` until shutdown. `finished` resolves once the listener is closed and every
 * connection has ended; accept errors (e.g. no free file descriptor) are logged and accepting goes on.
 */
export function serveHttp1(
  listener: Deno.Listener,
  handler: (req: Http1Request) => Promise<Http1Response>,
  opts: Http1Options = {},
): Http1Server {
  const { readTimeoutMs, headerTimeoutMs, idleTimeoutMs, maxConnections, maxBodyBytes } = {
    ...HTTP1_DEFAULTS,
    ...opts,
  };
  const log = opts.log ?? ((m: string) => console.error(`http: ${m}`));
  let closing = false;
  /**
   * Every open connection: `idle` waits for a request (a new connection, or keep-alive between requests),
   * `reading` receives one, `handling` computes and writes the answer. `since`: when the phase began.
   */
  const conns = new Map<Deno.Conn, ConnState>();
  const inflight = new Set<Promise<void>>();
  const lastLog = { evicted: 0, refused: 0 };
  const logAtMostEvery10s = (what: keyof typeof lastLog, message: string) => {
    const now = Date.now();
    if (now - lastLog[what] > 10_000) {
      lastLog[what] = now;
      log(message);
    }
  };

  const close = (conn: Deno.Conn) => {
    try {
      conn.close();
    } catch { /* already closed */ }
  };

  const handleConn = async (conn: Deno.Conn) => {
    const state: ConnState = { phase: "idle", since: Date.now() };
    conns.set(conn, state);
    const enter = (phase: ConnState["phase"]) => {
      state.phase = phase;
      state.since = Date.now();
    };
    const r = new Reader(conn);
    // One timer per connection: idle while waiting for a request, then the read deadline from its first byte.
    // Closing the connection makes the pending read or write fail, which ends this loop.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => close(conn), ms);
    };
    // Until its first request head is complete, a connection also has the (short) header deadline.
    let headTimer: ReturnType<typeof setTimeout> | undefined = setTimeout(() => close(conn), headerTimeoutMs);
    const headDone = () => {
      clearTimeout(headTimer);
      headTimer = undefined;
    };
    r.onData = () => {
      if (state.phase === "idle") {
        enter("reading");
        arm(readTimeoutMs);
      }
    };
    try {
      while (!closing) {
        enter(r.buffered > 0 ? "reading" : "idle");
        arm(state.phase === "idle" ? idleTimeoutMs : readTimeoutMs);
        let req: Http1Request | undefined;
        try {
          req = await readRequest(r, conn, maxBodyBytes, headDone);
        } catch (err) {
          if (err instanceof BadRequest) {
            arm(readTimeoutMs);
            await writeAll(
              conn,
              encodeResponse({ status: err.status, body: JSON.stringify(err.message) + "\n" }, true),
            );
          }
          return;
        }
        if (req === undefined) return;
        // The handler bounds its own work (API calls have deadlines); only the socket I/O is timed here.
        enter("handling");
        clearTimeout(timer);
        let res: Http1Response;
        try {
          res = await handler(req);
        } catch (err) {
          res = { status: 500, body: JSON.stringify((err as Error).message ?? String(err)) + "\n" };
        }
        const closeAfter = closing || /close/i.test(req.headers.get("connection") ?? "");
        arm(readTimeoutMs);
        await writeAll(conn, encodeResponse(res, closeAfter));
        if (closeAfter) return;
      }
    } catch {
      // the peer went away, or a deadline closed the connection; nothing to answer
    } finally {
      clearTimeout(timer);
      headDone();
      conns.delete(conn);
      close(conn);
    }
  };

  /** Closes the connection that has waited longest for a request (else the slowest sender); false if none. */
  const evict = (): boolean => {
    let victim: [Deno.Conn, ConnState] | undefined;
    for (const entry of conns) {
      const [, st] = entry;
      if (st.phase === "handling") continue;
      const better = !victim ||
        (st.phase === "idle" && victim[1].phase !== "idle") ||
        (st.phase === victim[1].phase && st.since < victim[1].since);
      if (better) victim = entry;
    }
    if (!victim) return false;
    const [conn, st] = victim;
    logAtMostEvery10s(
      "evicted",
      `${conns.size} connections open (limit ${maxConnections}); closing the one ${st.phase} longest ` +
        `(${Date.now() - st.since} ms) to serve a new one`,
    );
    // Forget it now so the count stays exact; its handler ends when the closed socket fails its read.
    conns.delete(conn);
    close(conn);
    return true;
  };

  const refuse = (conn: Deno.Conn) => {
    logAtMostEvery10s(
      "refused",
      `${conns.size} connections open (limit ${maxConnections}), all being answered; answering new ones 503`,
    );
    // A fresh socket's send buffer is empty, so this small write does not wait on the peer.
    const res = { status: 503, body: JSON.stringify(`more than ${maxConnections} open connections`) + "\n" };
    const p = writeAll(conn, encodeResponse(res, true)).catch(() => {}).finally(() => close(conn));
    inflight.add(p);
    p.finally(() => inflight.delete(p));
  };

  const finished = (async () => {
    let backoff = 10;
    while (!closing) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
        backoff = 10;
      } catch (err) {
        if (closing || err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted) {
          break;
        }
        // e.g. EMFILE: the connections that hold descriptors will time out; try again shortly.
        log(`accept failed: ${(err as Error).message}; retrying in ${backoff} ms`);
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 1_000);
        continue;
      }
      if (closing) {
        close(conn);
        break;
      }
      if (conns.size >= maxConnections && !evict()) {
        refuse(conn);
        continue;
      }
      const p = handleConn(conn);
      inflight.add(p);
      p.finally(() => inflight.delete(p));
    }
    await Promise.allSettled([...inflight]);
  })();

  return {
    finished,
    async shutdown() {
      closing = true;
      try {
        listener.close();
      } catch { /* already closed */ }
      for (const [conn, state] of conns) {
        if (state.phase !== "handling") close(conn);
      }
      await finished;
    },
  };
}

interface ConnState {
  phase: "idle" | "reading" | "handling";
  since: number;
}
