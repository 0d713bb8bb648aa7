// Our plugin against Go's own net/http server on a unix socket (upstream Spiderpool's agent is a go-swagger
// server on net/http): the plugin's requests must be ones Go accepts. The reverse direction (our agent's
// server and Go's client) is in tests/agent/http1.test.ts.
import assert from "node:assert/strict";
import { AgentClient, requestOverSocket } from "../../src/agentapi/client.ts";
import { startGoHttpServer } from "./tools.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const PLUGIN = `${ROOT}dist/cni/spiderpool`;

interface Echo {
  method: string;
  path: string;
  host: string;
  body: string;
}

async function withGoServer(fn: (socket: string, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sp-gohttp-" });
  try {
    await using server = await startGoHttpServer(dir);
    await fn(server.socket, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("Go's net/http server answers the plugin's requests (no 400 malformed Host header)", async () => {
  await withGoServer(async (socket) => {
    const args = { containerID: "c1", ifName: "eth0", podNamespace: "ns", podName: "p", podUID: "u" };
    for (
      const [method, path, body] of [["GET", "/v1/ipam/healthy"], ["DELETE", "/v1/ipam/ip", args]] as const
    ) {
      const res = await requestOverSocket(socket, { method, path, body, timeoutMs: 10_000 });
      const text = new TextDecoder().decode(res.body);
      assert.equal(res.status, 200, `${method} ${path}: ${res.status} ${text}`);
      const echo: Echo = JSON.parse(text);
      assert.deepEqual(echo, {
        method,
        path,
        host: "",
        body: body === undefined ? "" : JSON.stringify(body),
      });
    }
    // The client's own calls, as ADD/DEL/STATUS make them.
    await new AgentClient(socket).healthy();
    await new AgentClient(socket).release({ ...args, netNamespace: "" });
  });
});

Deno.test("the built plugin's STATUS is answered by a Go agent: exit 0 instead of code 50", async () => {
  await withGoServer(async (socket, dir) => {
    const conf = {
      cniVersion: "1.1.0",
      name: "underlay",
      type: "macvlan",
      ipam: { type: "spiderpool", ipam_unix_socket_path: socket, log_file_path: `${dir}/plugin.log` },
    };
    const child = new Deno.Command(PLUGIN, {
      env: { CNI_COMMAND: "STATUS", CNI_PATH: "/usr/lib/cni" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(JSON.stringify(conf)));
    await w.close();
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, `STATUS failed: ${stdout} ${new TextDecoder().decode(out.stderr)}`);
    assert.equal(stdout, "");
  });
});
