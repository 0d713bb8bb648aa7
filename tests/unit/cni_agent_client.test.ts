// The plugin's HTTP/1.1-over-unix-socket client: response framing (Content-Length, chunked, close), the
// request bytes it sends, timeouts and unreachable sockets, against raw sockets written in the test.
import assert from "node:assert/strict";
import {
  AgentClient,
  AgentRequestError,
  parseResponse,
  requestOverSocket,
} from "../../src/agentapi/client.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("a Content-Length response is complete only when the whole body arrived", () => {
  const head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n";
  assert.equal(parseResponse(enc(head + '{"ips":'), false), undefined);
  const r = parseResponse(enc(head + '{"ips":[]}\n'), false)!;
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "application/json");
  assert.equal(dec(r.body), '{"ips":[]}\n');
});

Deno.test("a chunked response is decoded, trailers ignored", () => {
  const raw = "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n" +
    '6\r\n"no fr\r\nf;ext=1\r\nee IP in pool"\n\r\n0\r\nX-Trailer: 1\r\n\r\n';
  assert.equal(parseResponse(enc(raw.slice(0, raw.length - 2)), false), undefined);
  const r = parseResponse(enc(raw), false)!;
  assert.equal(r.status, 500);
  assert.equal(dec(r.body), '"no free IP in pool"\n');
});

Deno.test("a response without length ends with the connection", () => {
  const raw = enc("HTTP/1.1 200 OK\r\n\r\npartial");
  assert.equal(parseResponse(raw, false), undefined);
  assert.equal(dec(parseResponse(raw, true)!.body), "partial");
});

Deno.test("bytes that are not HTTP are protocol errors", () => {
  const isProtocol = (e: unknown) => e instanceof AgentRequestError && e.kind === "protocol";
  assert.throws(() => parseResponse(enc("SSH-2.0-OpenSSH\r\n\r\n"), false), isProtocol);
  assert.throws(() => parseResponse(enc("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), false), isProtocol);
});

Deno.test("a connection closed before the answer is complete is unreachable: the agent went away", () => {
  const isGone = (e: unknown) =>
    e instanceof AgentRequestError && e.kind === "unreachable" && /closed the connection/.test(e.message);
  assert.throws(() => parseResponse(enc(""), true), isGone);
  assert.throws(() => parseResponse(enc("HTTP/1.1 200 OK\r\n"), true), isGone);
  assert.throws(() => parseResponse(enc("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"), true), isGone);
  assert.throws(
    () => parseResponse(enc("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"), true),
    isGone,
  );
});

/** A raw unix-socket peer: records the request bytes and answers with `reply` split into small writes. */
async function withRawServer(
  reply: string | undefined,
  fn: (path: string, requests: string[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sp-client-" });
  const path = `${dir}/agent.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const requests: string[] = [];
  const conns: Deno.Conn[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      const buf = new Uint8Array(65536);
      let text = "";
      while (!text.includes("\r\n\r\n") || !requestComplete(text)) {
        const n = await conn.read(buf);
        if (n === null) break;
        text += dec(buf.subarray(0, n));
      }
      requests.push(text);
      if (reply === undefined) continue; // never answer
      for (let i = 0; i < reply.length; i += 7) await conn.write(enc(reply.slice(i, i + 7)));
      conn.close();
    }
  })();
  try {
    await fn(path, requests);
  } finally {
    listener.close();
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await serving.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

function requestComplete(text: string): boolean {
  const [head, body] = text.split("\r\n\r\n");
  const m = /content-length: (\d+)/i.exec(head);
  return !m || new TextEncoder().encode(body).length >= Number(m[1]);
}

Deno.test("the request carries method, path, an empty Host (as Go's client), Connection: close and the JSON body", async () => {
  const reply = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnull\r\n0\r\n\r\n";
  await withRawServer(reply, async (path, requests) => {
    const res = await requestOverSocket(path, {
      method: "DELETE",
      path: "/v1/ipam/ip",
      body: { containerID: "c1" },
      timeoutMs: 5000,
    });
    assert.equal(res.status, 200);
    assert.equal(dec(res.body), "null");
    const [head, body] = requests[0].split("\r\n\r\n");
    const lines = head.split("\r\n");
    assert.equal(lines[0], "DELETE /v1/ipam/ip HTTP/1.1");
    assert.ok(lines.includes("Host: "), head);
    assert.ok(lines.includes("Connection: close"));
    assert.ok(lines.includes("Content-Type: application/json"));
    assert.ok(lines.includes(`Content-Length: ${body.length}`));
    assert.equal(body, '{"containerID":"c1"}');
  });
});

Deno.test("an agent error status becomes kind http with the agent's JSON-string message", async () => {
  const body = '"no free IP in SpiderIPPool \\"v4-a\\""\n';
  const reply = `HTTP/1.1 500 Internal Server Error\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  await withRawServer(reply, async (path) => {
    await assert.rejects(
      new AgentClient(path).allocate({
        containerID: "c",
        ifName: "eth0",
        netNamespace: "/n",
        podNamespace: "ns",
        podName: "p",
        podUID: "u",
      }),
      (e) =>
        e instanceof AgentRequestError && e.kind === "http" && e.status === 500 &&
        e.message === 'no free IP in SpiderIPPool "v4-a"',
    );
  });
});

Deno.test("a peer that never answers is a timeout after the configured time", async () => {
  await withRawServer(undefined, async (path) => {
    const start = performance.now();
    await assert.rejects(
      new AgentClient(path, { healthTimeoutMs: 300 }).healthy(),
      (e) => e instanceof AgentRequestError && e.kind === "timeout" && /within 0.3 s/.test(e.message),
    );
    const took = performance.now() - start;
    assert.ok(took >= 250 && took < 3000, `took ${took} ms`);
  });
});

Deno.test("a socket path where nobody listens is unreachable, naming the path", async () => {
  const path = `/tmp/sp-no-agent-${crypto.randomUUID()}.sock`;
  await assert.rejects(
    new AgentClient(path).healthy(),
    (e) => e instanceof AgentRequestError && e.kind === "unreachable" && e.message.includes(path),
  );
});
