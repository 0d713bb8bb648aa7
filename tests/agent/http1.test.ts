// The agent's HTTP/1.1 server (src/agent/http1.ts) on a real unix socket: deadlines for slow and idle
// connections, the connection cap, the head and body limits, large bodies arriving intact, and the requests
// of Go's net/http client (upstream Spiderpool's plugin is a Go program).

import assert from "node:assert/strict";
import { type Http1Options, type Http1Request, serveHttp1 } from "../../src/agent/http1.ts";
import { goHttpCall } from "../cni/tools.ts";

interface TestServer {
  path: string;
  logs: string[];
  [Symbol.asyncDispose](): Promise<void>;
}

/** A server that answers every request with its method, target and body length and a checksum of the body. */
async function startServer(opts: Http1Options = {}): Promise<TestServer> {
  const dir = await Deno.makeTempDir({ prefix: "http1-test-" });
  const path = `${dir}/agent.sock`;
  const logs: string[] = [];
  const server = serveHttp1(
    Deno.listen({ path, transport: "unix" }),
    (req: Http1Request) =>
      Promise.resolve({
        status: 200,
        body: JSON.stringify({
          method: req.method,
          target: req.target,
          host: req.headers.get("host"),
          length: req.body.length,
          sum: sum(req.body),
        }),
      }),
    { log: (m) => logs.push(m), ...opts },
  );
  return {
    path,
    logs,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function sum(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
  return h;
}

function connect(path: string): Promise<Deno.UnixConn> {
  return Deno.connect({ path, transport: "unix" });
}

async function writeAll(conn: Deno.Conn, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Everything the server sends until it closes the connection. */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  while (true) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch (err) {
      if (err instanceof Deno.errors.ConnectionReset) break;
      throw err;
    }
    if (n === null) break;
    parts.push(buf.slice(0, n));
  }
  return new TextDecoder().decode(await new Blob(parts as BlobPart[]).arrayBuffer());
}

/** Sends one `Connection: close` request on a new connection; returns status line and body. */
async function request(path: string, target = "/v1/x"): Promise<{ status: number; body: string }> {
  const conn = await connect(path);
  try {
    await writeAll(conn, `GET ${target} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n`);
    return parse(await readToEnd(conn));
  } finally {
    conn.close();
  }
}

function parse(raw: string): { status: number; body: string } {
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(raw);
  assert.ok(m, `not an HTTP response: ${JSON.stringify(raw.slice(0, 100))}`);
  return { status: Number(m[1]), body: raw.slice(raw.indexOf("\r\n\r\n") + 4) };
}

Deno.test("a connection that sends half a request head is closed after readTimeoutMs; others are served meanwhile", async () => {
  await using server = await startServer({ readTimeoutMs: 300, idleTimeoutMs: 10_000 });
  const slow = await connect(server.path);
  try {
    const started = Date.now();
    await writeAll(slow, "POST /v1/ipam/ip HTTP/1.1\r\nHost: ag");
    const served = await request(server.path, "/v1/other");
    assert.equal(served.status, 200);
    assert.equal(JSON.parse(served.body).target, "/v1/other");

    assert.equal(await readToEnd(slow), "", "the half request got an answer instead of a closed connection");
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 250 && elapsed < 3_000, `closed after ${elapsed} ms`);
  } finally {
    slow.close();
  }
});

Deno.test("a body that trickles in slower than readTimeoutMs is cut off", async () => {
  await using server = await startServer({ readTimeoutMs: 300, idleTimeoutMs: 10_000 });
  const slow = await connect(server.path);
  try {
    await writeAll(slow, "POST /v1/ipam/ip HTTP/1.1\r\nHost: agent\r\nContent-Length: 100\r\n\r\n{");
    const started = Date.now();
    assert.equal(await readToEnd(slow), "");
    assert.ok(Date.now() - started < 3_000);
  } finally {
    slow.close();
  }
});

Deno.test("a keep-alive connection with no new request is closed after idleTimeoutMs", async () => {
  await using server = await startServer({ readTimeoutMs: 5_000, idleTimeoutMs: 300 });
  const conn = await connect(server.path);
  try {
    const started = Date.now();
    await writeAll(conn, "GET /v1/a HTTP/1.1\r\nHost: agent\r\n\r\n");
    const raw = await readToEnd(conn);
    assert.equal(parse(raw).status, 200);
    assert.doesNotMatch(raw, /Connection: close/i);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 250 && elapsed < 3_000, `closed after ${elapsed} ms`);
  } finally {
    conn.close();
  }
});

Deno.test("at maxConnections, a new connection is served and the connection idle longest is closed", async () => {
  await using server = await startServer({ maxConnections: 4 });
  const idle: Deno.UnixConn[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      idle.push(await connect(server.path));
      // Distinct ages; the server registers a connection when it accepts it.
      await new Promise((r) => setTimeout(r, 30));
    }
    const served = await request(server.path, "/v1/ipam/healthy");
    assert.equal(served.status, 200, served.body);
    assert.equal(await readToEnd(idle[0]), "", "the oldest idle connection is closed without an answer");
    assert.ok(server.logs.some((l) => /limit 4.*closing the one idle longest/.test(l)), `${server.logs}`);
    // The younger idle connections are still open and can send a request.
    await writeAll(idle[3], "GET /v1/young HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n");
    assert.equal(JSON.parse(parse(await readToEnd(idle[3])).body).target, "/v1/young");
  } finally {
    for (const c of idle) c.close();
  }
});

Deno.test("1,100 idle connections do not starve requests: /v1/ipam/healthy is answered at once with the default limits", async () => {
  await using server = await startServer();
  const idle: Deno.UnixConn[] = [];
  try {
    for (let i = 0; i < 1_100; i++) idle.push(await connect(server.path));
    for (let i = 0; i < 5; i++) {
      const res = await request(server.path, "/v1/ipam/healthy");
      assert.equal(res.status, 200, `request ${i}: ${res.status} ${res.body}`);
    }
  } finally {
    for (const c of idle) c.close();
  }
});

Deno.test("when every connection is being answered, a new one is answered 503 and the server recovers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "http1-test-" });
  const path = `${dir}/agent.sock`;
  const release = Promise.withResolvers<void>();
  const logs: string[] = [];
  const server = serveHttp1(
    Deno.listen({ path, transport: "unix" }),
    async (req) => {
      if (req.target === "/v1/slow") await release.promise;
      return { status: 200, body: JSON.stringify(req.target) };
    },
    { maxConnections: 2, log: (m) => logs.push(m) },
  );
  const slow = await Promise.all([connect(path), connect(path)]);
  try {
    const answers = slow.map(async (c) => {
      await writeAll(c, "GET /v1/slow HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n");
      return parse(await readToEnd(c)).status;
    });
    await new Promise((r) => setTimeout(r, 100));
    const refused = await request(path);
    assert.equal(refused.status, 503);
    assert.match(refused.body, /more than 2 open connections/);
    assert.ok(logs.some((l) => /all being answered/.test(l)), `${logs}`);
    release.resolve();
    assert.deepEqual(await Promise.all(answers), [200, 200]);
    assert.equal((await request(path)).status, 200);
  } finally {
    release.resolve();
    for (const c of slow) c.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a new connection that sends no complete request head is closed after headerTimeoutMs", async () => {
  await using server = await startServer({
    headerTimeoutMs: 300,
    readTimeoutMs: 10_000,
    idleTimeoutMs: 10_000,
  });
  const silent = await connect(server.path);
  const trickle = await connect(server.path);
  try {
    const started = Date.now();
    await writeAll(trickle, "GET /v1/a HTTP/1.1\r\n");
    assert.equal(await readToEnd(silent), "");
    assert.equal(await readToEnd(trickle), "");
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 250 && elapsed < 5_000, `closed after ${elapsed} ms`);
  } finally {
    silent.close();
    trickle.close();
  }
});

Deno.test("a keep-alive connection is not cut by headerTimeoutMs once it has sent a request", async () => {
  await using server = await startServer({
    headerTimeoutMs: 200,
    readTimeoutMs: 10_000,
    idleTimeoutMs: 10_000,
  });
  const conn = await connect(server.path);
  try {
    await writeAll(conn, "GET /v1/a HTTP/1.1\r\nHost: \r\n\r\n");
    await new Promise((r) => setTimeout(r, 500));
    await writeAll(conn, "GET /v1/b HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n");
    const [first, second] = (await readToEnd(conn)).split(/(?=HTTP\/1\.1 )/);
    assert.equal(JSON.parse(parse(first).body).target, "/v1/a");
    assert.equal(JSON.parse(parse(second).body).target, "/v1/b");
  } finally {
    conn.close();
  }
});

Deno.test("a request head over 64 KiB is answered 431 even when it arrives in one piece", async () => {
  await using server = await startServer();
  for (const size of [70 * 1024, 64 * 1024 - 40]) {
    const conn = await connect(server.path);
    try {
      const head = `GET /v1/x HTTP/1.1\r\nHost: \r\nX-Pad: ${"a".repeat(size)}\r\nConnection: close\r\n\r\n`;
      const reading = readToEnd(conn);
      await writeAll(conn, head).catch(() => {}); // the server may close before reading it all
      const res = parse(await reading);
      if (head.length > 64 * 1024) {
        assert.equal(res.status, 431, `${head.length} bytes`);
        assert.match(res.body, /request head longer than 65536 bytes/);
      } else {
        assert.equal(res.status, 200, `${head.length} bytes: ${res.body}`);
      }
    } finally {
      conn.close();
    }
  }
});

Deno.test("Go's net/http client, set up as upstream's plugin, is served: empty Host, body intact", async () => {
  await using server = await startServer();
  const body = { containerID: "c1", ifName: "eth0", podNamespace: "ns", podName: "p", podUID: "u" };
  for (const method of ["POST", "DELETE", "GET"]) {
    const res = await goHttpCall(server.path, method, "/v1/ipam/ip", body);
    assert.equal(res.status, 200, res.body);
    const echo = JSON.parse(res.body);
    assert.equal(echo.method, method);
    assert.equal(echo.target, "/v1/ipam/ip");
    assert.equal(echo.host, "", "Go sends an empty Host for a socket path");
    assert.equal(echo.sum, sum(JSON.stringify(body)));
  }
});

Deno.test("a Content-Length over maxBodyBytes is answered 413 before the body is read", async () => {
  await using server = await startServer();
  const conn = await connect(server.path);
  try {
    await writeAll(
      conn,
      `POST /v1/ipam/ip HTTP/1.1\r\nHost: agent\r\nContent-Length: ${5 * 1024 * 1024}\r\n\r\n`,
    );
    const res = parse(await readToEnd(conn));
    assert.equal(res.status, 413);
    assert.match(res.body, /request body longer than 4194304 bytes/);
  } finally {
    conn.close();
  }
});

Deno.test("a chunked body over maxBodyBytes is answered 413", async () => {
  await using server = await startServer({ maxBodyBytes: 1000 });
  const conn = await connect(server.path);
  try {
    const chunk = "x".repeat(600);
    await writeAll(
      conn,
      `POST /v1/ipam/ip HTTP/1.1\r\nHost: agent\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`,
    );
    const res = parse(await readToEnd(conn));
    assert.equal(res.status, 413);
    assert.match(res.body, /longer than 1000 bytes/);
  } finally {
    conn.close();
  }
});

Deno.test("a 3 MB body sent in small writes arrives intact, followed by a pipelined request", async () => {
  await using server = await startServer();
  const body = Array.from({ length: 3 * 1024 * 1024 }, (_, i) => String.fromCharCode(97 + (i * 7) % 26)).join(
    "",
  );
  const conn = await connect(server.path);
  try {
    const bytes = new TextEncoder().encode(
      `POST /v1/big HTTP/1.1\r\nHost: agent\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
        `GET /v1/next HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n`,
    );
    const reading = readToEnd(conn);
    for (let off = 0; off < bytes.length; off += 7_000) {
      await writeAll(conn, bytes.subarray(off, off + 7_000));
    }
    const raw = await reading;
    const [first, second] = raw.split(/(?=HTTP\/1\.1 )/);
    const big = JSON.parse(parse(first).body);
    assert.equal(big.length, body.length);
    assert.equal(big.sum, sum(body));
    assert.equal(JSON.parse(parse(second).body).target, "/v1/next");
  } finally {
    conn.close();
  }
});

Deno.test("shutdown closes idle connections and resolves finished", async () => {
  const dir = await Deno.makeTempDir({ prefix: "http1-test-" });
  const path = `${dir}/agent.sock`;
  const server = serveHttp1(
    Deno.listen({ path, transport: "unix" }),
    () => Promise.resolve({ status: 200 }),
    { log: () => {} },
  );
  const idle = await connect(path);
  await new Promise((r) => setTimeout(r, 50));
  await server.shutdown();
  await server.finished;
  assert.equal(await readToEnd(idle), "");
  idle.close();
  await Deno.remove(dir, { recursive: true });
});
