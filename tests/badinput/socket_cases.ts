// Malformed requests on the agent's unix socket, sent as raw bytes: bodies that are not JSON or not the model,
// wrong types, missing required fields, bad interface names and container IDs, unknown paths and methods,
// GET with a body, broken HTTP framing, huge heads and bodies, slow clients and many connections. Each request
// aims at a live pod, so a body let through would allocate.

import assert from "node:assert/strict";
import { type Case, containerId, lit, type Outcome, type World } from "./env.ts";

/** A raw HTTP/1.1 request with `Connection: close` and the body's Content-Length. */
export function rawRequest(method: string, path: string, body = "", headers: string[] = []): string {
  const length = new TextEncoder().encode(body).length;
  const extra = headers.map((h) => `${h}\r\n`).join("");
  const framing = body === "" && method === "GET" ? "" : `Content-Length: ${length}\r\n`;
  return `${method} ${path} HTTP/1.1\r\nHost: \r\nConnection: close\r\n${extra}${framing}\r\n${body}`;
}

/** The body of a good ADD for the victim pod. */
function addArgs(w: World): Record<string, unknown> {
  const id = containerId();
  return {
    containerID: id,
    ifName: "eth0",
    netNamespace: `/var/run/netns/${id}`,
    podNamespace: w.ns,
    podName: w.victim.name,
    podUID: w.victim.uid,
  };
}

function rawCase(name: string, code: number, says: RegExp[], bytes: (w: World) => string | Uint8Array): Case {
  return { name: `socket: ${name}`, code, says, run: (w) => w.socket(bytes(w)) };
}

/** POST /v1/ipam/ip with the good ADD body changed by `change` (undefined values remove the field). */
function addCase(
  name: string,
  says: RegExp[],
  change: Record<string, unknown>,
  method = "POST",
  path = "/v1/ipam/ip",
): Case {
  return rawCase(name, 500, says, (w) => {
    const body: Record<string, unknown> = { ...addArgs(w), ...change };
    for (const [k, v] of Object.entries(change)) if (v === undefined) delete body[k];
    return rawRequest(method, path, JSON.stringify(body));
  });
}

function customCase(name: string, code: number, says: RegExp[], run: (w: World) => Promise<Outcome>): Case {
  return { name: `socket: ${name}`, code, says, run };
}

export function socketCases(): Case[] {
  return [
    // ----- bodies that are not the model
    rawCase(
      "ADD with a body that is not JSON",
      500,
      [/request body is not valid JSON/],
      () => rawRequest("POST", "/v1/ipam/ip", "{podName: web}"),
    ),
    rawCase(
      "ADD with an empty body",
      500,
      [/request body is empty/],
      () => rawRequest("POST", "/v1/ipam/ip"),
    ),
    rawCase(
      "ADD with a JSON list",
      500,
      [/IpamAddArgs/, /must be a JSON object/, /\[\]/],
      () => rawRequest("POST", "/v1/ipam/ip", "[]"),
    ),
    rawCase(
      "ADD with JSON null",
      500,
      [/IpamAddArgs/, /must be a JSON object/, /null/],
      () => rawRequest("POST", "/v1/ipam/ip", "null"),
    ),
    rawCase(
      "ADD with a JSON number",
      500,
      [/IpamAddArgs/, /must be a JSON object/, /42/],
      () => rawRequest("POST", "/v1/ipam/ip", "42"),
    ),
    rawCase("ADD with bytes that are not UTF-8", 500, [/not valid JSON/], () => {
      const head = new TextEncoder().encode(
        "POST /v1/ipam/ip HTTP/1.1\r\nHost: \r\nConnection: close\r\nContent-Length: 6\r\n\r\n",
      );
      const out = new Uint8Array(head.length + 6);
      out.set(head);
      out.set([0x7b, 0xff, 0xfe, 0x22, 0x7d, 0x00], head.length);
      return out;
    }),
    rawCase(
      "ADD with 200,000 nested lists",
      500,
      [/IpamAddArgs/, /must be a JSON object/],
      () => rawRequest("POST", "/v1/ipam/ip", "[".repeat(200_000) + "]".repeat(200_000)),
    ),
    rawCase("ADD with a __proto__ member and no podUID", 500, [/podUID in body is required/], (w) => {
      const { podUID: _, ...rest } = addArgs(w);
      return rawRequest(
        "POST",
        "/v1/ipam/ip",
        `{"__proto__":{"podUID":"x"},${JSON.stringify(rest).slice(1)}`,
      );
    }),
    // ----- missing required fields
    addCase("ADD without podUID", [/podUID in body is required/], { podUID: undefined }),
    addCase("ADD without containerID", [/containerID in body is required/], { containerID: undefined }),
    addCase("ADD without ifName", [/ifName in body is required/], { ifName: undefined }),
    addCase("ADD without netNamespace", [/netNamespace in body is required/], { netNamespace: undefined }),
    addCase("ADD without podName", [/podName in body is required/], { podName: undefined }),
    addCase("ADD with an empty podNamespace", [/podNamespace in body is required/], { podNamespace: "" }),
    addCase("ADD with podUID null", [/podUID in body is required/], { podUID: null }),
    // ----- wrong types
    addCase("ADD with podName a number", [/podName in body must be of type string: 5/], { podName: 5 }),
    addCase("ADD with podUID a list", [/podUID in body must be of type string: \["u"\]/], { podUID: ["u"] }),
    addCase("ADD with podNamespace an object", [/podNamespace in body must be of type string/], {
      podNamespace: { name: "default" },
    }),
    addCase("ADD with cleanGateway a string", [/cleanGateway in body must be of type boolean: "yes"/], {
      cleanGateway: "yes",
    }),
    addCase("ADD with matchMasterSubnet a number", [/matchMasterSubnet in body must be of type boolean: 1/], {
      matchMasterSubnet: 1,
    }),
    addCase("ADD with defaultIPv4IPPool a string", [
      /defaultIPv4IPPool in body must be of type array of string/,
    ], {
      defaultIPv4IPPool: "pool",
    }),
    addCase("ADD with defaultIPv6IPPool holding numbers", [/defaultIPv6IPPool in body .*\[1,2\]/], {
      defaultIPv6IPPool: [1, 2],
    }),
    addCase("ADD with networkName a number", [/networkName in body must be of type string: 7/], {
      networkName: 7,
    }),
    addCase("ADD with a networkName of bad characters", [/networkName in body "net work"/, /network name/], {
      networkName: "net work",
    }),
    // ----- bad interface names and container IDs
    addCase("ADD with ifName of 16 bytes", [/ifName in body "eth0123456789abc"/, /16 bytes/], {
      ifName: "eth0123456789abc",
    }),
    addCase("ADD with ifName ../eth0", [/ifName in body "\.\.\/eth0"/], { ifName: "../eth0" }),
    addCase("ADD with ifName of whitespace", [/ifName in body "eth\\t0"/], { ifName: "eth\t0" }),
    addCase("ADD with containerID with a semicolon", [/containerID in body "abc;rm"/, /invalid characters/], {
      containerID: "abc;rm",
    }),
    addCase("ADD with containerID a number", [/containerID in body must be of type string: 12/], {
      containerID: 12,
    }),
    // ----- the other endpoints' models
    addCase("DEL without podUID", [/podUID in body is required/], { podUID: undefined }, "DELETE"),
    addCase("DEL with ifName with a colon", [/ifName in body "eth0:1"/], { ifName: "eth0:1" }, "DELETE"),
    rawCase(
      "DEL with a body that is not JSON",
      500,
      [/request body is not valid JSON/],
      () => rawRequest("DELETE", "/v1/ipam/ip", "podUID=x"),
    ),
    addCase(
      "batch DEL with isReleaseConflictIPs a string",
      [
        /isReleaseConflictIPs in body must be of type boolean: "true"/,
      ],
      { isReleaseConflictIPs: "true" },
      "DELETE",
      "/v1/ipam/ips",
    ),
    rawCase(
      "GC without networkName",
      500,
      [/networkName in body is required/],
      () => rawRequest("POST", "/v1/ipam/gc", JSON.stringify({ validAttachments: [] })),
    ),
    rawCase(
      "GC with validAttachments an object",
      500,
      [/validAttachments in body must be of type array/],
      () => rawRequest("POST", "/v1/ipam/gc", JSON.stringify({ networkName: "n", validAttachments: {} })),
    ),
    rawCase("GC with an attachment of a bad ifName", 500, [/ifName in body "a\/b"/], () =>
      rawRequest(
        "POST",
        "/v1/ipam/gc",
        JSON.stringify({ networkName: "n", validAttachments: [{ containerID: "c1", ifName: "a/b" }] }),
      )),
    rawCase("STATUS with defaultIPv4IPPool a number", 500, [
      /defaultIPv4IPPool in body must be of type array/,
    ], () => rawRequest("POST", "/v1/ipam/status", JSON.stringify({ defaultIPv4IPPool: 4 }))),
    rawCase(
      "coordinator config with a body that is not JSON",
      500,
      [/not valid JSON/],
      () => rawRequest("GET", "/v1/coordinator/config", "{"),
    ),
    rawCase(
      "coordinator config with podName a number",
      500,
      [/podName in body must be of type string: 3/],
      () => rawRequest("GET", "/v1/coordinator/config", JSON.stringify({ podName: 3 })),
    ),
    rawCase(
      "workload endpoint without podNamespace",
      400,
      [/podNamespace is required/],
      () => rawRequest("GET", "/v1/workloadendpoint?podName=x"),
    ),
    rawCase(
      "workload endpoint without podName",
      400,
      [/podName is required/],
      () => rawRequest("GET", "/v1/workloadendpoint?podNamespace=x"),
    ),
    // ----- unknown paths and methods, GET with a body
    rawCase(
      "an unknown path",
      404,
      [/path \/v1\/ipam\/nothing not found/],
      () => rawRequest("GET", "/v1/ipam/nothing"),
    ),
    rawCase(
      "another API version",
      404,
      [/path \/v2\/ipam\/ip not found/],
      (w) => rawRequest("POST", "/v2/ipam/ip", JSON.stringify(addArgs(w))),
    ),
    rawCase("a path with ..", 404, [/not found/], () => rawRequest("GET", "/v1/ipam/../../etc/passwd")),
    rawCase(
      "PUT on the ADD path",
      405,
      [/method PUT not allowed on \/v1\/ipam\/ip/],
      (w) => rawRequest("PUT", "/v1/ipam/ip", JSON.stringify(addArgs(w))),
    ),
    rawCase(
      "GET with an ADD body",
      405,
      [/method GET not allowed on \/v1\/ipam\/ip/],
      (w) => rawRequest("GET", "/v1/ipam/ip", JSON.stringify(addArgs(w))),
    ),
    rawCase(
      "PATCH on the health path",
      405,
      [/method PATCH not allowed on \/v1\/ipam\/healthy/],
      () => rawRequest("PATCH", "/v1/ipam/healthy", "{}"),
    ),
    rawCase("a method of lower-case letters", 400, [
      /malformed request line "post \/v1\/ipam\/ip HTTP\/1\.1"/,
    ], (w) => rawRequest("post", "/v1/ipam/ip", JSON.stringify(addArgs(w)))),
    // ----- broken HTTP
    rawCase(
      "a request line that is not HTTP",
      400,
      [/malformed request line "HELLO AGENT"/],
      () => "HELLO AGENT\r\n\r\n",
    ),
    rawCase(
      "the HTTP/2 preface",
      400,
      [/malformed request line "PRI \* HTTP\/2\.0"/],
      () => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ),
    rawCase(
      "a Content-Length that is not a number",
      400,
      [/Content-Length "ten"/],
      () => "POST /v1/ipam/ip HTTP/1.1\r\nHost: \r\nContent-Length: ten\r\n\r\n{}",
    ),
    rawCase(
      "two different Content-Lengths",
      400,
      [/Content-Length "2, 3"/],
      () => "POST /v1/ipam/ip HTTP/1.1\r\nHost: \r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    ),
    rawCase(
      "a chunk size that is not hex",
      400,
      [/malformed chunk size "zz"/],
      () => "POST /v1/ipam/ip HTTP/1.1\r\nHost: \r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    ),
    rawCase(
      "a Content-Length in hex",
      400,
      [/Content-Length "0x2"/],
      () => "POST /v1/ipam/ip HTTP/1.1\r\nHost: \r\nContent-Length: 0x2\r\n\r\n{}",
    ),
    rawCase(
      "a chunk size with trailing garbage",
      400,
      [/malformed chunk size "2zz"/],
      () => "POST /v1/ipam/ip HTTP/1.1\r\nHost: \r\nTransfer-Encoding: chunked\r\n\r\n2zz\r\n{}\r\n0\r\n\r\n",
    ),
    rawCase(
      "chunk data longer than its size",
      400,
      [/chunk of 1 bytes is not followed by CRLF/],
      () => "POST /v1/ipam/ip HTTP/1.1\r\nHost: \r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n",
    ),
    rawCase(
      "a header line without a colon",
      400,
      [/malformed header line "no colon here"/],
      () => "GET /v1/ipam/healthy HTTP/1.1\r\nHost: \r\nno colon here\r\n\r\n",
    ),
    rawCase(
      "a body shorter than its Content-Length, then EOF",
      400,
      [/closed before the whole body arrived/],
      (w) =>
        rawRequest("POST", "/v1/ipam/ip", JSON.stringify(addArgs(w))).replace(
          /Content-Length: \d+/,
          "Content-Length: 9999",
        ),
    ),
    // ----- huge inputs
    rawCase(
      "a body of 5 MiB",
      413,
      [/4194304|4 MiB|too large/i],
      () => rawRequest("POST", "/v1/ipam/ip", JSON.stringify({ pad: "x".repeat(5 * 1024 * 1024) })),
    ),
    rawCase(
      "a head of 100 KiB",
      431,
      [/head|header/i],
      () => rawRequest("GET", "/v1/ipam/healthy", "", [`X-Pad: ${"x".repeat(100 * 1024)}`]),
    ),
    addCase("ADD with a pod name of 1 MiB", [/podName in body "p{50}p*\.\.\. is not a valid pod name/], {
      podName: "p".repeat(1024 * 1024),
    }),
    addCase("ADD with a namespace with a slash", [
      /podNamespace in body "a\/b" is not a valid namespace name/,
    ], {
      podNamespace: "a/b",
    }),
    addCase("ADD with 10,000 default pools", [/defaultIPv4IPPool in body must be of type array of string/], {
      defaultIPv4IPPool: [...Array.from({ length: 10_000 }, (_, i) => `pool-${i}`), 1],
    }),
    // ----- slow and many clients
    customCase(
      "a client that sends its head one byte a second is cut off; others are served meanwhile",
      200,
      [
        /^$/,
      ],
      async (w) => {
        const slow = await Deno.connect({ path: w.node.agent.socketPath, transport: "unix" });
        try {
          await slow.write(new TextEncoder().encode("GET /v1/ipam/healthy HTTP/1.1\r\n"));
          let served = 0;
          for (let i = 0; i < 3; i++) {
            await slow.write(new TextEncoder().encode("X"));
            const health = await w.socket(rawRequest("GET", "/v1/ipam/healthy"), 5_000);
            if (health.code === 200) served++;
            await new Promise((r) => setTimeout(r, 1_000));
          }
          assert.equal(served, 3, "healthy answered while a slow client held a connection");
          // The head deadline (5 s) ends the slow request with 408/400 or by closing the connection.
          const buf = new Uint8Array(1024);
          const n = await Promise.race([
            slow.read(buf).catch(() => null),
            new Promise<"hung">((r) => setTimeout(() => r("hung"), 15_000)),
          ]);
          assert.notEqual(n, "hung", "the agent must not wait forever for a slow client's head");
          return await w.socket(rawRequest("GET", "/v1/ipam/healthy"));
        } finally {
          slow.close();
        }
      },
    ),
    customCase("1,100 idle connections do not keep a new client out", 200, [/^$/], async (w) => {
      const conns: Deno.UnixConn[] = [];
      try {
        for (let i = 0; i < 1_100; i++) {
          for (let tries = 0;; tries++) {
            try {
              conns.push(await Deno.connect({ path: w.node.agent.socketPath, transport: "unix" }));
              break;
            } catch (err) {
              // The listen backlog is full for a moment: the agent accepts more slowly than this loop connects.
              if (!(err instanceof Deno.errors.WouldBlock) || tries > 500) throw err;
              await new Promise((r) => setTimeout(r, 10));
            }
          }
        }
        return await w.socket(rawRequest("GET", "/v1/ipam/healthy"), 10_000);
      } finally {
        for (const c of conns) {
          try {
            c.close();
          } catch { /* closed by the agent */ }
        }
      }
    }),
    customCase("200 bad ADDs at once are each refused", 500, [/podUID in body is required/], async (w) => {
      const all = await Promise.all(Array.from({ length: 200 }, () => {
        const { podUID: _, ...body } = addArgs(w);
        return w.socket(rawRequest("POST", "/v1/ipam/ip", JSON.stringify(body)));
      }));
      const other = all.find((o) => o.code !== 500 || !/podUID in body is required/.test(o.message));
      return other ?? all[0];
    }),
    customCase("a client that closes before reading its answer", 200, [/^$/], async (w) => {
      for (let i = 0; i < 20; i++) {
        const c = await Deno.connect({ path: w.node.agent.socketPath, transport: "unix" });
        const { podUID: _, ...body } = addArgs(w);
        await c.write(new TextEncoder().encode(rawRequest("POST", "/v1/ipam/ip", JSON.stringify(body))));
        c.close();
      }
      return await w.socket(rawRequest("GET", "/v1/ipam/healthy"));
    }),
    customCase("a bad request pipelined after a good one on one connection", 500, [
      lit("podUID in body is required"),
    ], async (w) => {
      const { podUID: _, ...bad } = addArgs(w);
      const first = rawRequest("GET", "/v1/ipam/healthy").replace("Connection: close\r\n", "");
      const conn = await Deno.connect({ path: w.node.agent.socketPath, transport: "unix" });
      try {
        await conn.write(
          new TextEncoder().encode(first + rawRequest("POST", "/v1/ipam/ip", JSON.stringify(bad))),
        );
        await conn.closeWrite();
        const chunks: Uint8Array[] = [];
        const buf = new Uint8Array(64 * 1024);
        for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) chunks.push(buf.slice(0, n));
        const text = new TextDecoder().decode(await new Blob(chunks as BlobPart[]).arrayBuffer());
        const answers = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
        assert.deepEqual(answers, [200, 500], `two answers on one connection: ${text}`);
        return { code: 500, message: text.slice(text.lastIndexOf("\r\n\r\n") + 4) };
      } finally {
        conn.close();
      }
    }),
  ];
}
