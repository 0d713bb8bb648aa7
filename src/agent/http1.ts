// A small HTTP/1.1 server for the agent's unix socket. Deno.serve drops the body of GET requests, but
// upstream's API has one (`GET /v1/coordinator/config` carries a JSON body), so requests are parsed here:
// request line, headers, Content-Length or chunked body; keep-alive unless the client says `Connection: close`.

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
}

const MAX_HEAD = 64 * 1024;
const MAX_BODY = 4 * 1024 * 1024;
const REASONS: Record<number, string> = {
  100: "Continue",
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Payload Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
};

/** A protocol error; the connection answers 400 (or 413) and closes. */
class BadRequest extends Error {
  constructor(message: string, readonly status = 400) {
    super(message);
  }
}

/** Buffered reads from a connection. */
class Reader {
  #buf = new Uint8Array(0);
  #eof = false;
  constructor(readonly conn: Deno.Conn) {}

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(16 * 1024);
    const n = await this.conn.read(chunk);
    if (n === null) {
      this.#eof = true;
      return false;
    }
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
    return true;
  }

  /** Bytes up to and including `delim`; undefined at a clean EOF before any byte. */
  async until(delim: string, max: number): Promise<string | undefined> {
    const d = new TextEncoder().encode(delim);
    let from = 0;
    while (true) {
      const i = indexOf(this.#buf, d, from);
      if (i !== -1) {
        const out = this.#buf.subarray(0, i + d.length);
        this.#buf = this.#buf.subarray(i + d.length);
        return new TextDecoder().decode(out);
      }
      if (this.#buf.length > max) throw new BadRequest(`request head longer than ${max} bytes`, 413);
      from = Math.max(0, this.#buf.length - d.length + 1);
      if (!await this.#fill()) {
        if (this.#buf.length === 0) return undefined;
        throw new BadRequest("connection closed in the middle of a request");
      }
    }
  }

  async exactly(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (!await this.#fill()) throw new BadRequest("connection closed before the whole body arrived");
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = from; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

async function readRequest(r: Reader, conn: Deno.Conn): Promise<Http1Request | undefined> {
  const head = await r.until("\r\n\r\n", MAX_HEAD);
  if (head === undefined) return undefined;
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
      const sizeLine = (await r.until("\r\n", 1024))?.trim() ?? "";
      const size = parseInt(sizeLine.split(";")[0], 16);
      if (!Number.isFinite(size) || size < 0) {
        throw new BadRequest(`malformed chunk size ${JSON.stringify(sizeLine)}`);
      }
      if (size === 0) {
        while ((await r.until("\r\n", MAX_HEAD)) !== "\r\n") { /* skip trailers */ }
        break;
      }
      total += size;
      if (total > MAX_BODY) throw new BadRequest(`request body longer than ${MAX_BODY} bytes`, 413);
      parts.push(await r.exactly(size));
      await r.exactly(2);
    }
    body = new Uint8Array(total);
    let off = 0;
    for (const p of parts) {
      body.set(p, off);
      off += p.length;
    }
  } else if (headers.has("content-length")) {
    const n = Number(headers.get("content-length"));
    if (!Number.isInteger(n) || n < 0) throw new BadRequest("malformed Content-Length");
    if (n > MAX_BODY) throw new BadRequest(`request body longer than ${MAX_BODY} bytes`, 413);
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

export interface Http1Server {
  finished: Promise<void>;
  /** Stops accepting, lets in-flight requests finish, closes idle connections. */
  shutdown(): Promise<void>;
}

/** Serves `handler` on `listener` until shutdown. */
export function serveHttp1(
  listener: Deno.Listener,
  handler: (req: Http1Request) => Promise<Http1Response>,
): Http1Server {
  let closing = false;
  const conns = new Map<Deno.Conn, { busy: boolean }>();
  const inflight = new Set<Promise<void>>();

  const handleConn = async (conn: Deno.Conn) => {
    const state = { busy: false };
    conns.set(conn, state);
    const r = new Reader(conn);
    try {
      while (!closing) {
        let req: Http1Request | undefined;
        try {
          req = await readRequest(r, conn);
        } catch (err) {
          if (err instanceof BadRequest) {
            await writeAll(
              conn,
              encodeResponse({ status: err.status, body: JSON.stringify(err.message) + "\n" }, true),
            );
          }
          return;
        }
        if (req === undefined) return;
        state.busy = true;
        let res: Http1Response;
        try {
          res = await handler(req);
        } catch (err) {
          res = { status: 500, body: JSON.stringify((err as Error).message ?? String(err)) + "\n" };
        }
        const close = closing || /close/i.test(req.headers.get("connection") ?? "");
        await writeAll(conn, encodeResponse(res, close));
        state.busy = false;
        if (close) return;
      }
    } catch {
      // the peer went away; nothing to answer
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  };

  const finished = (async () => {
    try {
      for await (const conn of listener) {
        const p = handleConn(conn);
        inflight.add(p);
        p.finally(() => inflight.delete(p));
      }
    } catch (err) {
      if (!closing) throw err;
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
        if (!state.busy) {
          try {
            conn.close();
          } catch { /* already closed */ }
        }
      }
      await finished;
    },
  };
}
