// The spiderpool IPAM plugin as a real process: started the way a runtime starts it (env + stdin), talking
// to a real HTTP server on a unix socket that speaks the agent's `/v1` API; and Debian's bridge plugin
// delegating to it through CNI_PATH inside a network namespace created here.
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;
const ENTRY = `${ROOT}tests/cni/plugin_entry.ts`;

interface Seen {
  method: string;
  path: string;
  body: unknown;
}

type Answer = { status: number; body?: unknown; headers?: Record<string, string> };
type Handler = (req: Seen) => Answer | Promise<Answer>;

/** The agent side of the socket API: answers from `routes` ("METHOD /path"), records every request. */
interface Agent {
  socket: string;
  seen: Seen[];
  close(): Promise<void>;
}

async function startAgent(dir: string, routes: Record<string, Handler>): Promise<Agent> {
  const socket = `${dir}/spiderpool.sock`;
  const seen: Seen[] = [];
  const ready = Promise.withResolvers<void>();
  const server = Deno.serve({ path: socket, onListen: () => ready.resolve() }, async (req) => {
    // On a unix socket Deno builds req.url as "http+unix://" + (the Host header, or the encoded socket path
    // when Host is empty) + path.
    const host = req.headers.get("host") ?? "";
    const path = host ? req.url.slice(`http+unix://${host}`.length).split("?")[0] : new URL(req.url).pathname;
    const text = await req.text();
    const entry: Seen = { method: req.method, path, body: text === "" ? undefined : JSON.parse(text) };
    seen.push(entry);
    const handler = routes[`${req.method} ${path}`];
    if (!handler) return new Response(JSON.stringify(`no route ${req.method} ${path}`), { status: 404 });
    const out = await handler(entry);
    return new Response(out.body === undefined ? null : JSON.stringify(out.body), {
      status: out.status,
      headers: { "content-type": "application/json", ...out.headers },
    });
  });
  await ready.promise;
  return { socket, seen, close: () => server.shutdown() };
}

const HEALTHY: Record<string, Handler> = { "GET /v1/ipam/healthy": () => ({ status: 200 }) };

/** A two-NIC answer, as the agent gives for a pod with eth0 and net1. */
const TWO_NICS = {
  ips: [
    { version: 4, address: "192.0.2.10/24", ipPool: "v4-a", gateway: "192.0.2.1", nic: "eth0", vlan: 0 },
    { version: 6, address: "2001:db8:1::10/64", ipPool: "v6-a", gateway: "2001:db8:1::1", nic: "eth0" },
    { version: 4, address: "198.51.100.10/24", ipPool: "v4-b", gateway: "198.51.100.1", nic: "net1" },
  ],
  routes: [
    { ifName: "eth0", dst: "0.0.0.0/0", gw: "192.0.2.1" },
    { ifName: "eth0", dst: "::/0", gw: "2001:db8:1::1" },
    { ifName: "net1", dst: "203.0.113.0/24", gw: "198.51.100.1" },
  ],
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown> | undefined;
}

async function runPlugin(
  command: string,
  conf: unknown,
  env: Record<string, string> = {},
  launcher: string[] = [Deno.execPath(), "run", "-A", ENTRY],
  signal?: AbortSignal,
): Promise<Run> {
  const child = new Deno.Command(launcher[0], {
    args: launcher.slice(1),
    signal,
    env: {
      CNI_COMMAND: command,
      CNI_CONTAINERID: "0123456789abcdef",
      CNI_NETNS: "/var/run/netns/pod",
      CNI_IFNAME: "eth0",
      CNI_PATH: "/usr/lib/cni",
      CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=web-0;K8S_POD_UID=uid-1;" +
        "K8S_POD_INFRA_CONTAINER_ID=0123456789abcdef",
      ...env,
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(typeof conf === "string" ? conf : JSON.stringify(conf)));
  await w.close();
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout);
  let json: Record<string, unknown> | undefined;
  try {
    json = stdout === "" ? undefined : JSON.parse(stdout);
  } catch { /* asserted by the caller */ }
  return { code: out.code, stdout, stderr: new TextDecoder().decode(out.stderr), json };
}

function netConf(
  dir: string,
  agent: Agent | string,
  cniVersion = "1.0.0",
  ipam: Record<string, unknown> = {},
) {
  return {
    cniVersion,
    name: "underlay",
    type: "macvlan",
    ipam: {
      type: "spiderpool",
      log_file_path: `${dir}/log/spiderpool.log`,
      ipam_unix_socket_path: typeof agent === "string" ? agent : agent.socket,
      ...ipam,
    },
  };
}

async function withAgent(routes: Record<string, Handler>, fn: (dir: string, agent: Agent) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "sp-cni-" });
  const agent = await startAgent(dir, routes);
  try {
    await fn(dir, agent);
  } finally {
    await agent.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("ADD sends IpamAddArgs in one request (no separate health check) and prints only this interface's IPs", async () => {
  await withAgent(
    { ...HEALTHY, "POST /v1/ipam/ip": () => ({ status: 200, body: TWO_NICS }) },
    async (dir, agent) => {
      const r = await runPlugin(
        "ADD",
        netConf(dir, agent, "1.0.0", {
          default_ipv4_ippool: ["v4-a"],
          default_ipv6_ippool: ["v6-a"],
          clean_gateway: true,
          match_master_subnet: true,
        }),
      );
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual(r.json, {
        cniVersion: "1.0.0",
        ips: [
          { address: "192.0.2.10/24", gateway: "192.0.2.1" },
          { address: "2001:db8:1::10/64", gateway: "2001:db8:1::1" },
        ],
        routes: [{ dst: "0.0.0.0/0", gw: "192.0.2.1" }, { dst: "::/0", gw: "2001:db8:1::1" }],
      });
      assert.deepEqual(agent.seen.map((s) => `${s.method} ${s.path}`), ["POST /v1/ipam/ip"]);
      assert.deepEqual(agent.seen[0].body, {
        containerID: "0123456789abcdef",
        ifName: "eth0",
        netNamespace: "/var/run/netns/pod",
        podNamespace: "team-a",
        podName: "web-0",
        podUID: "uid-1",
        defaultIPv4IPPool: ["v4-a"],
        defaultIPv6IPPool: ["v6-a"],
        cleanGateway: true,
        matchMasterSubnet: true,
        networkName: "underlay",
      });
    },
  );
});

Deno.test("ADD prints the result in the configuration's CNI version", async () => {
  await withAgent(
    { ...HEALTHY, "POST /v1/ipam/ip": () => ({ status: 200, body: TWO_NICS }) },
    async (dir, agent) => {
      for (const v of ["0.3.0", "0.3.1", "0.4.0"]) {
        const r = await runPlugin("ADD", netConf(dir, agent, v), { CNI_IFNAME: "net1" });
        assert.equal(r.code, 0, r.stdout);
        assert.deepEqual(r.json, {
          cniVersion: v,
          ips: [{ address: "198.51.100.10/24", gateway: "198.51.100.1", version: "4" }],
          routes: [{ dst: "203.0.113.0/24", gw: "198.51.100.1" }],
        });
      }
      const r = await runPlugin("ADD", netConf(dir, agent, "1.1.0"), { CNI_IFNAME: "net1" });
      assert.deepEqual(r.json, {
        cniVersion: "1.1.0",
        ips: [{ address: "198.51.100.10/24", gateway: "198.51.100.1" }],
        routes: [{ dst: "203.0.113.0/24", gw: "198.51.100.1" }],
      });
    },
  );
});

Deno.test("ADD for an interface the agent gave nothing is an error naming the interface", async () => {
  await withAgent(
    { ...HEALTHY, "POST /v1/ipam/ip": () => ({ status: 200, body: TWO_NICS }) },
    async (dir, agent) => {
      const r = await runPlugin("ADD", netConf(dir, agent), { CNI_IFNAME: "net2" });
      assert.equal(r.code, 1);
      assert.equal(r.json?.msg, "no Interface net2 IP allocation found");
      assert.ok((r.json?.code as number) >= 100);
    },
  );
});

Deno.test("an agent error on ADD is a plugin error (code >= 100) carrying the agent's message", async () => {
  const message = 'no free IP in SpiderIPPool "v4-a" (254 of 254 allocated); add ips or another pool';
  await withAgent(
    { ...HEALTHY, "POST /v1/ipam/ip": () => ({ status: 500, body: message }) },
    async (dir, agent) => {
      const r = await runPlugin("ADD", netConf(dir, agent));
      assert.equal(r.code, 1);
      assert.ok((r.json?.code as number) >= 100, r.stdout);
      assert.ok((r.json?.msg as string).includes(message), r.stdout);
      assert.equal(r.json?.cniVersion, "1.0.0");
    },
  );
});

Deno.test("an agent answer that is not JSON is a plugin error, not a result", async () => {
  await withAgent(
    { ...HEALTHY, "POST /v1/ipam/ip": () => ({ status: 200, body: undefined }) },
    async (dir, agent) => {
      const r = await runPlugin("ADD", netConf(dir, agent));
      assert.equal(r.code, 1);
      assert.equal(r.json?.code, 101, r.stdout);
      assert.match(r.json?.msg as string, /not JSON/);
    },
  );
});

Deno.test("an unreachable agent is code 11 on ADD, an error on DEL and code 50 on STATUS", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sp-cni-" });
  try {
    const socket = `${dir}/nobody.sock`;
    const add = await runPlugin("ADD", netConf(dir, socket));
    assert.equal(add.json?.code, 11);
    assert.match(
      add.json?.msg as string,
      /spiderpool-agent at .*nobody\.sock is unreachable: .*check the spiderpool-agent pod/,
    );
    const del = await runPlugin("DEL", netConf(dir, socket));
    assert.equal(del.code, 1);
    assert.equal(del.json?.code, 11);
    const status = await runPlugin("STATUS", netConf(dir, socket, "1.1.0"), {
      CNI_CONTAINERID: "",
      CNI_IFNAME: "",
    });
    assert.equal(status.code, 1);
    assert.equal(status.json?.code, 50);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an unreachable agent fails ADD and DEL with the health check's code 11 and message", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sp-cni-" });
  try {
    const socket = `${dir}/nobody.sock`;
    for (const command of ["ADD", "DEL"]) {
      const r = await runPlugin(command, netConf(dir, socket));
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.json?.code, 11, r.stdout);
      assert.match(
        r.json?.msg as string,
        new RegExp(
          `^spiderpool-agent at ${socket} is unreachable: cannot connect to ${socket}: .*; ` +
            "check the spiderpool-agent pod on this node$",
        ),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a busy agent that answers after the old health check's 2 s deadline still serves ADD and DEL", async () => {
  const slow = <T>(value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), 2_500));
  await withAgent(
    {
      "GET /v1/ipam/healthy": () => slow({ status: 200 }),
      "POST /v1/ipam/ip": () => slow({ status: 200, body: TWO_NICS }),
      "DELETE /v1/ipam/ip": () => slow({ status: 200 }),
    },
    async (dir, agent) => {
      const add = await runPlugin("ADD", netConf(dir, agent));
      assert.equal(add.code, 0, add.stdout);
      assert.equal((add.json?.ips as unknown[]).length, 2);
      const del = await runPlugin("DEL", netConf(dir, agent));
      assert.equal(del.code, 0, del.stdout);
      assert.deepEqual(agent.seen.map((s) => `${s.method} ${s.path}`), [
        "POST /v1/ipam/ip",
        "DELETE /v1/ipam/ip",
      ]);
    },
  );
});

Deno.test("DEL sends IpamDelArgs and succeeds when there is nothing to release", async () => {
  await withAgent({ "DELETE /v1/ipam/ip": () => ({ status: 200 }) }, async (dir, agent) => {
    const r = await runPlugin("DEL", netConf(dir, agent), { CNI_NETNS: "" });
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stdout, "");
    assert.deepEqual(agent.seen.map((s) => s.path), ["/v1/ipam/ip"]);
    assert.deepEqual(agent.seen[0], {
      method: "DELETE",
      path: "/v1/ipam/ip",
      body: {
        containerID: "0123456789abcdef",
        ifName: "eth0",
        netNamespace: "",
        podNamespace: "team-a",
        podName: "web-0",
        podUID: "uid-1",
      },
    });
  });
});

Deno.test("an agent release error on DEL is logged and DEL succeeds", async () => {
  await withAgent(
    {
      ...HEALTHY,
      "DELETE /v1/ipam/ip": () => ({ status: 500, body: "conflict updating SpiderIPPool v4-a" }),
    },
    async (dir, agent) => {
      const r = await runPlugin("DEL", netConf(dir, agent));
      assert.equal(r.code, 0, r.stdout);
      const log = await Deno.readTextFile(`${dir}/log/spiderpool.log`);
      assert.match(
        log,
        /ERROR DEL 0123456789abcdef eth0 release .* failed .*conflict updating SpiderIPPool v4-a/,
      );
    },
  );
});

Deno.test("malformed ipam configuration is code 7 and nothing reaches the agent", async () => {
  await withAgent(HEALTHY, async (dir, agent) => {
    for (const cmd of ["ADD", "DEL"]) {
      const r = await runPlugin(cmd, netConf(dir, agent, "1.0.0", { clean_gateway: "yes" }));
      assert.equal(r.json?.code, 7, r.stdout);
      assert.match(r.json?.msg as string, /ipam\.clean_gateway: expected true or false/);
    }
    const r = await runPlugin("ADD", netConf(dir, agent, "1.0.0", { log_level: "chatty" }));
    assert.match(r.json?.msg as string, /ipam\.log_level/);
    assert.equal(agent.seen.length, 0, JSON.stringify(agent.seen));
  });
});

Deno.test("malformed or incomplete CNI_ARGS are code 4 and nothing reaches the agent", async () => {
  await withAgent(HEALTHY, async (dir, agent) => {
    const bad = await runPlugin("ADD", netConf(dir, agent), { CNI_ARGS: "K8S_POD_NAME" });
    assert.equal(bad.json?.code, 4, bad.stdout);
    const noPod = await runPlugin("ADD", netConf(dir, agent), { CNI_ARGS: "IgnoreUnknown=1" });
    assert.equal(noPod.json?.code, 4);
    assert.match(noPod.json?.msg as string, /lacks K8S_POD_NAMESPACE and K8S_POD_NAME/);
    assert.equal(agent.seen.length, 0, JSON.stringify(agent.seen));
  });
});

Deno.test("CHECK succeeds without contacting the agent", async () => {
  await withAgent(HEALTHY, async (dir, agent) => {
    const check = await runPlugin("CHECK", netConf(dir, agent, "0.4.0"));
    assert.equal(check.code, 0, check.stdout);
    assert.equal(agent.seen.length, 0, JSON.stringify(agent.seen));
  });
});

const STATUS_ENV = { CNI_CONTAINERID: "", CNI_IFNAME: "", CNI_NETNS: "", CNI_ARGS: "" };

Deno.test("STATUS sends the conf's default pools to POST /v1/ipam/status; 200 means available", async () => {
  await withAgent({ ...HEALTHY, "POST /v1/ipam/status": () => ({ status: 200 }) }, async (dir, agent) => {
    const conf = netConf(dir, agent, "1.1.0", {
      default_ipv4_ippool: ["v4-*"],
      default_ipv6_ippool: ["v6-a"],
    });
    const status = await runPlugin("STATUS", conf, STATUS_ENV);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.equal(status.stdout, "");
    assert.deepEqual(agent.seen, [
      { method: "GET", path: "/v1/ipam/healthy", body: undefined },
      {
        method: "POST",
        path: "/v1/ipam/status",
        body: { defaultIPv4IPPool: ["v4-*"], defaultIPv6IPPool: ["v6-a"] },
      },
    ]);
  });
});

Deno.test("STATUS is code 50 with the agent's message when no default pool has a free address", async () => {
  const full =
    'no free IPv4 address in the default pools (spec.default: true): "v4-a" 254 of 254 allocated, ' +
    '"v4-b" disabled (spec.disable: true); add ips or another default pool';
  await withAgent(
    { ...HEALTHY, "POST /v1/ipam/status": () => ({ status: 500, body: full }) },
    async (dir, agent) => {
      const status = await runPlugin("STATUS", netConf(dir, agent, "1.1.0"), STATUS_ENV);
      assert.equal(status.code, 1);
      assert.equal(status.json?.code, 50, status.stdout);
      assert.equal(status.json?.msg, `spiderpool-agent cannot serve ADD: ${full}`);
      assert.deepEqual(agent.seen[1], {
        method: "POST",
        path: "/v1/ipam/status",
        body: { defaultIPv4IPPool: [], defaultIPv6IPPool: [] },
      });
    },
  );
});

Deno.test("STATUS against an agent without /v1/ipam/status (404) relies on its health alone", async () => {
  await withAgent(HEALTHY, async (dir, agent) => {
    const status = await runPlugin("STATUS", netConf(dir, agent, "1.1.0"), STATUS_ENV);
    assert.equal(status.code, 0, status.stdout);
    assert.equal(status.stdout, "");
    assert.deepEqual(agent.seen.map((s) => s.path), ["/v1/ipam/healthy", "/v1/ipam/status"]);
  });
});

Deno.test("STATUS is code 50 when the agent fails its health check, and asks nothing else", async () => {
  await withAgent(
    { "GET /v1/ipam/healthy": () => ({ status: 500, body: "not ready" }) },
    async (dir, agent) => {
      const status = await runPlugin("STATUS", netConf(dir, agent, "1.1.0"), STATUS_ENV);
      assert.equal(status.json?.code, 50, status.stdout);
      assert.match(status.json?.msg as string, /is not ready: not ready/);
      assert.deepEqual(agent.seen.map((s) => s.path), ["/v1/ipam/healthy"]);
    },
  );
});

Deno.test("the built plugin, under its runtime flags, gives up on an agent that never answers: STATUS is code 50 after the health deadline", async () => {
  // dist/cni/spiderpool as a node runs it (the launcher and its V8 flags): the request deadline must fire even
  // though the socket stays open, or a runtime would wait on the plugin for ever.
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-silent-agent-" });
  const socket = `${dir}/spiderpool.sock`;
  const listener = Deno.listen({ transport: "unix", path: socket });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })().catch(() => {});
  try {
    const started = performance.now();
    const status = await runPlugin(
      "STATUS",
      netConf(dir, socket, "1.1.0"),
      STATUS_ENV,
      [`${ROOT}dist/cni/spiderpool`],
      AbortSignal.timeout(30_000),
    );
    const took = performance.now() - started;
    assert.equal(status.json?.code, 50, `${status.stdout}${status.stderr}`);
    assert.match(status.json?.msg as string, /no answer to GET \/v1\/ipam\/healthy within 2 s/);
    assert.ok(took >= 1_900 && took < 20_000, `took ${took} ms`);
    assert.equal(held.length, 1, "the plugin connected once");
  } finally {
    listener.close();
    for (const c of held) c.close();
    await accepting;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("GC sends the runtime's valid attachments to POST /v1/ipam/gc", async () => {
  let answer = { status: 200 } as { status: number; body?: unknown };
  await withAgent({ ...HEALTHY, "POST /v1/ipam/gc": () => answer }, async (dir, agent) => {
    const conf = {
      ...netConf(dir, agent, "1.1.0"),
      "cni.dev/valid-attachments": [{ containerID: "c1", ifname: "eth0" }, {
        containerID: "c2",
        ifname: "net1",
      }],
    };
    const env = { CNI_CONTAINERID: "", CNI_IFNAME: "", CNI_NETNS: "" };
    const ok = await runPlugin("GC", conf, env);
    assert.equal(ok.code, 0, ok.stdout);
    assert.deepEqual(agent.seen[1], {
      method: "POST",
      path: "/v1/ipam/gc",
      body: {
        networkName: "underlay",
        validAttachments: [{ containerID: "c1", ifName: "eth0" }, { containerID: "c2", ifName: "net1" }],
      },
    });
    answer = { status: 500, body: "cannot list SpiderEndpoints" };
    const failed = await runPlugin("GC", conf, env);
    assert.ok((failed.json?.code as number) >= 100);
    assert.match(failed.json?.msg as string, /cannot list SpiderEndpoints/);
  });
});

Deno.test("GC without cni.dev/valid-attachments (a runtime that passed no list) releases nothing", async () => {
  await withAgent({ ...HEALTHY, "POST /v1/ipam/gc": () => ({ status: 200 }) }, async (dir, agent) => {
    const env = { CNI_CONTAINERID: "", CNI_IFNAME: "", CNI_NETNS: "" };
    const r = await runPlugin("GC", netConf(dir, agent, "1.1.0"), env);
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stdout, "");
    assert.deepEqual(agent.seen.map((s) => s.path), [], "the agent was asked nothing");
    const log = await Deno.readTextFile(`${dir}/log/spiderpool.log`);
    assert.match(log, /GC of network underlay without "cni\.dev\/valid-attachments": nothing released/);
  });
});

Deno.test("DEL logs what the agent did: released, kept for a live pod, or nothing; upstream's bare 200 is not called a release", async () => {
  const cases: { headers?: Record<string, string>; log: RegExp }[] = [
    {
      headers: {
        "X-Spiderpool-Release": "released",
        "X-Spiderpool-Release-Detail": "192.0.2.10, 2001:db8::10",
      },
      log: /INFO {2}DEL \S+ eth0 released 192\.0\.2\.10, 2001:db8::10 of pod team-a\/web-0/,
    },
    {
      headers: {
        "X-Spiderpool-Release": "kept",
        "X-Spiderpool-Release-Detail": "pod is alive; its IPs are kept",
      },
      log: /INFO {2}DEL \S+ eth0 the agent kept the IPs of pod team-a\/web-0: pod is alive; its IPs are kept/,
    },
    {
      headers: { "X-Spiderpool-Release": "none", "X-Spiderpool-Release-Detail": "no SpiderEndpoint" },
      log: /INFO {2}DEL \S+ eth0 nothing to release for pod team-a\/web-0: no SpiderEndpoint/,
    },
    { log: /INFO {2}DEL \S+ eth0 the agent accepted the release for pod team-a\/web-0 \(it does not say/ },
  ];
  for (const c of cases) {
    await withAgent(
      { ...HEALTHY, "DELETE /v1/ipam/ip": () => ({ status: 200, headers: c.headers }) },
      async (dir, agent) => {
        const r = await runPlugin("DEL", netConf(dir, agent));
        assert.equal(r.code, 0, r.stdout);
        const log = await Deno.readTextFile(`${dir}/log/spiderpool.log`);
        assert.match(log, c.log);
        if (c.headers?.["X-Spiderpool-Release"] !== "released") assert.doesNotMatch(log, /released/);
      },
    );
  }
});

/** A separate agent process that answers its health check and is SIGKILLed when a request with `method` arrives. */
async function withDyingAgent(method: string, fn: (dir: string, socket: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "sp-cni-kill-" });
  const socket = `${dir}/spiderpool.sock`;
  const agent = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `Deno.serve({ path: ${JSON.stringify(socket)}, onListen: () => console.log("listening") }, (req) => {
        if (req.method === ${JSON.stringify(method)}) Deno.kill(Deno.pid, "SIGKILL");
        return new Response(null, { status: 200 });
      });`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = agent.stdout.getReader();
    assert.match(new TextDecoder().decode((await reader.read()).value), /listening/);
    reader.releaseLock();
    await fn(dir, socket);
    assert.equal((await agent.status).signal, "SIGKILL", `the agent died during the ${method}`);
  } finally {
    try {
      agent.kill("SIGKILL");
    } catch { /* already dead */ }
    await agent.stdout.cancel().catch(() => {});
    await agent.status;
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("an agent killed in the middle of an ADD is code 11 (try again later), not a plugin error", async () => {
  await withDyingAgent("POST", async (dir, socket) => {
    const r = await runPlugin("ADD", netConf(dir, socket));
    assert.equal(r.code, 1, r.stdout);
    assert.equal(r.json?.code, 11, r.stdout);
    assert.match(r.json?.msg as string, /closed the connection/);
  });
});

Deno.test("an agent killed in the middle of a DEL fails the DEL with code 11, so the runtime retries it", async () => {
  await withDyingAgent("DELETE", async (dir, socket) => {
    const r = await runPlugin("DEL", netConf(dir, socket));
    assert.equal(r.code, 1, r.stdout);
    assert.equal(r.json?.code, 11, r.stdout);
    assert.match(
      r.json?.msg as string,
      /did not answer the release for pod team-a\/web-0.*closed the connection/,
    );
  });
});

Deno.test("ADD is logged to log_file_path and stdout carries only the result", async () => {
  await withAgent(
    { ...HEALTHY, "POST /v1/ipam/ip": () => ({ status: 200, body: TWO_NICS }) },
    async (dir, agent) => {
      const r = await runPlugin("ADD", netConf(dir, agent, "1.0.0", { log_level: "debug" }));
      assert.ok(r.json, r.stdout);
      const log = await Deno.readTextFile(`${dir}/log/spiderpool.log`);
      assert.match(log, /DEBUG ADD 0123456789abcdef eth0 allocating for pod team-a\/web-0/);
      assert.match(log, /INFO {2}ADD 0123456789abcdef eth0 allocated 192\.0\.2\.10\/24, 2001:db8:1::10\/64/);
    },
  );
});

// --- Debian's bridge plugin delegating IPAM to the spiderpool plugin, in a real network namespace ---

async function ip(...args: string[]): Promise<string> {
  const out = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

Deno.test("bridge delegates IPAM to spiderpool: the agent's address is set in the netns and DEL releases it", async () => {
  const id = crypto.randomUUID().slice(0, 8);
  const netns = `sp-cni-${id}`;
  const bridge = `spbr${id.slice(0, 6)}`;
  // This machine supports network namespaces; failing here means the test environment is broken.
  await ip("netns", "add", netns);
  const dir = await Deno.makeTempDir({ prefix: "sp-cni-bridge-" });
  const agent = await startAgent(dir, {
    ...HEALTHY,
    "POST /v1/ipam/ip": (req) => {
      const ifName = (req.body as { ifName: string }).ifName;
      return {
        status: 200,
        body: {
          ips: [{
            version: 4,
            address: "203.0.113.20/24",
            gateway: "203.0.113.1",
            nic: ifName,
            ipPool: "doc-v4",
          }],
          routes: [{ ifName, dst: "198.51.100.0/24", gw: "203.0.113.1" }],
        },
      };
    },
    "DELETE /v1/ipam/ip": () => ({ status: 200 }),
  });
  try {
    const bin = `${dir}/bin`;
    await Deno.mkdir(bin);
    await Deno.writeTextFile(
      `${bin}/spiderpool`,
      `#!/bin/bash\nexec -a "$0" "${Deno.execPath()}" run -A "${ENTRY}" "$@"\n`,
      { mode: 0o755 },
    );
    const conf = {
      cniVersion: "1.0.0",
      name: "doc-bridge",
      type: "bridge",
      bridge,
      ipam: {
        type: "spiderpool",
        ipam_unix_socket_path: agent.socket,
        log_file_path: `${dir}/log/spiderpool.log`,
      },
    };
    const env = { CNI_NETNS: `/var/run/netns/${netns}`, CNI_PATH: `${bin}:/usr/lib/cni`, CNI_IFNAME: "eth0" };
    const add = await runPlugin("ADD", conf, env, ["/usr/lib/cni/bridge"]);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const result = add.json as { ips: { address: string; interface: number }[] };
    assert.equal(result.ips[0].address, "203.0.113.20/24");

    const addrs = JSON.parse(await ip("-n", netns, "-j", "addr", "show", "dev", "eth0")) as {
      addr_info: { family: string; local: string; prefixlen: number }[];
    }[];
    const v4 = addrs[0].addr_info.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`);
    assert.deepEqual(v4, ["203.0.113.20/24"]);
    const routes = JSON.parse(await ip("-n", netns, "-j", "route", "show")) as {
      dst: string;
      gateway?: string;
    }[];
    assert.ok(
      routes.some((r) => r.dst === "198.51.100.0/24" && r.gateway === "203.0.113.1"),
      JSON.stringify(routes),
    );

    const del = await runPlugin("DEL", conf, env, ["/usr/lib/cni/bridge"]);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.deepEqual(
      agent.seen.map((s) => `${s.method} ${s.path}`),
      ["POST /v1/ipam/ip", "DELETE /v1/ipam/ip"],
    );
    const after = await ip("-n", netns, "-j", "link", "show");
    assert.equal((JSON.parse(after) as { ifname: string }[]).some((l) => l.ifname === "eth0"), false);
  } finally {
    await agent.close();
    await ip("netns", "del", netns).catch(() => {});
    await ip("link", "del", bridge).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
