// The CNI dispatcher: environment validation, version negotiation and the error JSON, driven through an
// in-memory process (env, stdin, stdout) so every case reads as the runtime would see it.
import assert from "node:assert/strict";
import { CniError, type PluginFuncs, type Result, runPlugin } from "../../src/cni/mod.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  called: string[];
}

const BASE_ENV = {
  CNI_CONTAINERID: "c0ffee",
  CNI_NETNS: "/var/run/netns/test",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin",
};

const RESULT: Result = {
  cniVersion: "1.1.0",
  ips: [{ address: "192.0.2.10/24", gateway: "192.0.2.1" }, { address: "2001:db8::10/64" }],
  routes: [{ dst: "0.0.0.0/0", gw: "192.0.2.1" }],
  dns: {},
};

async function run(
  env: Record<string, string>,
  stdin: unknown,
  funcs: Partial<PluginFuncs> = {},
): Promise<Run> {
  const out: Run = { code: -1, stdout: "", stderr: "", called: [] };
  const record = (name: string) => (() => {
    out.called.push(name);
    return Promise.resolve();
  });
  const plugin: PluginFuncs = {
    add: () => {
      out.called.push("add");
      return Promise.resolve(RESULT);
    },
    del: record("del"),
    check: record("check"),
    status: record("status"),
    gc: record("gc"),
    ...funcs,
  };
  out.code = await runPlugin(plugin, {
    env: { get: (k) => env[k] },
    readStdin: () => Promise.resolve(typeof stdin === "string" ? stdin : JSON.stringify(stdin)),
    writeStdout: (t) => void (out.stdout += t),
    writeStderr: (t) => void (out.stderr += t),
  });
  return out;
}

function conf(cniVersion: string | undefined, extra: Record<string, unknown> = {}) {
  return { ...(cniVersion ? { cniVersion } : {}), name: "net1", type: "test", ...extra };
}

Deno.test("VERSION prints the current version and every supported version, without reading stdin", async () => {
  const r = await run({ CNI_COMMAND: "VERSION" }, "not json");
  assert.equal(r.code, 0);
  assert.equal(
    r.stdout,
    '{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}',
  );
});

Deno.test("an unknown CNI_COMMAND is error code 4 on stdout with exit code 1", async () => {
  const r = await run({ ...BASE_ENV, CNI_COMMAND: "FROB" }, conf("1.0.0"));
  assert.equal(r.code, 1);
  const err = JSON.parse(r.stdout);
  assert.equal(err.code, 4);
  assert.match(err.msg, /unknown CNI_COMMAND: FROB/);
  assert.equal(err.cniVersion, "1.1.0");
});

Deno.test("without CNI_COMMAND the plugin prints its about text on stderr and exits 0", async () => {
  const r = await run({}, "", { about: "CNI plugin test v1" });
  assert.equal(r.code, 0);
  assert.equal(r.stdout, "");
  assert.match(
    r.stderr,
    /CNI plugin test v1\nCNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0/,
  );
});

Deno.test("ADD without the required variables names every missing one (code 4)", async () => {
  const r = await run({ CNI_COMMAND: "ADD", CNI_IFNAME: "eth0" }, conf("1.0.0"));
  assert.equal(r.code, 1);
  const err = JSON.parse(r.stdout);
  assert.equal(err.code, 4);
  assert.equal(err.msg, "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_PATH] missing");
  assert.deepEqual(r.called, []);
});

Deno.test("DEL does not require CNI_NETNS", async () => {
  const { CNI_NETNS: _, ...env } = BASE_ENV;
  const r = await run({ ...env, CNI_COMMAND: "DEL" }, conf("1.0.0"));
  assert.equal(r.code, 0);
  assert.equal(r.stdout, "");
  assert.deepEqual(r.called, ["del"]);
});

Deno.test("STATUS and GC need only CNI_COMMAND in the environment", async () => {
  for (const cmd of ["STATUS", "GC"]) {
    const r = await run({ CNI_COMMAND: cmd }, conf("1.1.0"));
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(r.called, [cmd.toLowerCase()]);
  }
});

Deno.test("an interface name longer than 15 characters is code 4", async () => {
  const r = await run({ ...BASE_ENV, CNI_COMMAND: "ADD", CNI_IFNAME: "a-very-long-ifname" }, conf("1.0.0"));
  const err = JSON.parse(r.stdout);
  assert.equal(err.code, 4);
  assert.match(err.msg, /at most 15/);
});

Deno.test("a container ID with invalid characters is code 4", async () => {
  const r = await run({ ...BASE_ENV, CNI_COMMAND: "ADD", CNI_CONTAINERID: "abc/def" }, conf("1.0.0"));
  assert.equal(JSON.parse(r.stdout).code, 4);
});

Deno.test("stdin that is not JSON is code 6", async () => {
  const r = await run({ ...BASE_ENV, CNI_COMMAND: "ADD" }, "{not json");
  const err = JSON.parse(r.stdout);
  assert.equal(err.code, 6);
  assert.match(err.msg, /error decoding the network configuration/);
});

Deno.test("a configuration without a network name is code 7", async () => {
  const r = await run({ ...BASE_ENV, CNI_COMMAND: "ADD" }, { cniVersion: "1.0.0", type: "x" });
  const err = JSON.parse(r.stdout);
  assert.equal(err.code, 7);
  assert.match(err.msg, /missing network name/);
});

Deno.test("each supported version is accepted for ADD", async () => {
  for (const v of ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
    const r = await run({ ...BASE_ENV, CNI_COMMAND: "ADD" }, conf(v));
    assert.equal(r.code, 0, `${v}: ${r.stdout}`);
    assert.equal(JSON.parse(r.stdout).cniVersion, v);
  }
});

Deno.test("unsupported versions are code 1 and the handler is not called", async () => {
  for (const v of ["0.1.0", "0.2.0", "1.2.0", "2.0.0", undefined]) {
    const r = await run({ ...BASE_ENV, CNI_COMMAND: "ADD" }, conf(v));
    const err = JSON.parse(r.stdout);
    assert.equal(err.code, 1, String(v));
    assert.equal(err.msg, "incompatible CNI versions");
    assert.match(err.details, /plugin supports \[0\.3\.0 0\.3\.1 0\.4\.0 1\.0\.0 1\.1\.0\]/);
    assert.deepEqual(r.called, []);
  }
});

Deno.test("CHECK is refused for configurations older than 0.4.0 (code 1)", async () => {
  const old = await run({ ...BASE_ENV, CNI_COMMAND: "CHECK" }, conf("0.3.1"));
  assert.equal(JSON.parse(old.stdout).code, 1);
  assert.match(JSON.parse(old.stdout).msg, /does not allow CHECK/);
  const ok = await run({ ...BASE_ENV, CNI_COMMAND: "CHECK" }, conf("0.4.0"));
  assert.equal(ok.code, 0);
  assert.deepEqual(ok.called, ["check"]);
});

Deno.test("STATUS and GC are refused for configurations older than 1.1.0 (code 1)", async () => {
  for (const cmd of ["STATUS", "GC"]) {
    const r = await run({ CNI_COMMAND: cmd }, conf("1.0.0"));
    const err = JSON.parse(r.stdout);
    assert.equal(err.code, 1);
    assert.equal(err.msg, `config version does not allow ${cmd}`);
    assert.deepEqual(r.called, []);
  }
});

Deno.test("a CniError from a handler is printed with its code, message and details in the config's version", async () => {
  const r = await run({ ...BASE_ENV, CNI_COMMAND: "ADD" }, conf("0.4.0"), {
    add: () => Promise.reject(new CniError(11, "agent unreachable", "check the agent")),
  });
  assert.equal(r.code, 1);
  assert.deepEqual(JSON.parse(r.stdout), {
    cniVersion: "0.4.0",
    code: 11,
    msg: "agent unreachable",
    details: "check the agent",
  });
});

Deno.test("any other exception from a handler is code 999 carrying its message", async () => {
  const r = await run({ ...BASE_ENV, CNI_COMMAND: "DEL" }, conf("1.0.0"), {
    del: () => Promise.reject(new Error("boom")),
  });
  assert.deepEqual(JSON.parse(r.stdout), { cniVersion: "1.0.0", code: 999, msg: "boom" });
});

Deno.test("the ADD result is printed in the configuration's version", async () => {
  const legacy = JSON.parse((await run({ ...BASE_ENV, CNI_COMMAND: "ADD" }, conf("0.3.1"))).stdout);
  assert.deepEqual(legacy.ips, [
    { address: "192.0.2.10/24", gateway: "192.0.2.1", version: "4" },
    { address: "2001:db8::10/64", version: "6" },
  ]);
  const current = JSON.parse((await run({ ...BASE_ENV, CNI_COMMAND: "ADD" }, conf("1.0.0"))).stdout);
  assert.deepEqual(current, {
    cniVersion: "1.0.0",
    ips: [{ address: "192.0.2.10/24", gateway: "192.0.2.1" }, { address: "2001:db8::10/64" }],
    routes: [{ dst: "0.0.0.0/0", gw: "192.0.2.1" }],
  });
});

Deno.test("the handler receives the environment, CNI_PATH split, and the whole configuration", async () => {
  let seen: unknown;
  await run(
    { ...BASE_ENV, CNI_COMMAND: "ADD", CNI_ARGS: "K8S_POD_NAME=p", CNI_PATH: "/a:/b" },
    conf("1.0.0", { ipam: { type: "spiderpool" }, runtimeConfig: { mac: "x" } }),
    {
      add: (a) => {
        seen = { ...a, stdin: undefined };
        return Promise.resolve(RESULT);
      },
    },
  );
  assert.deepEqual(seen, {
    command: "ADD",
    containerId: "c0ffee",
    netns: "/var/run/netns/test",
    ifName: "eth0",
    args: "K8S_POD_NAME=p",
    path: ["/a", "/b"],
    stdin: undefined,
    conf: {
      cniVersion: "1.0.0",
      name: "net1",
      type: "test",
      ipam: { type: "spiderpool" },
      runtimeConfig: { mac: "x" },
    },
  });
});
