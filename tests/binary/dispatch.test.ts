// The built artifact (dist/, from scripts/build.sh) chooses its mode by the name it is started under, then by
// subcommand; plugin processes must not load the heavy modules of the agent and controller.
import assert from "node:assert/strict";
import { CRDS } from "../../src/api/crds.ts";
import { run } from "./run.ts";

const dist = new URL("../../dist/", import.meta.url).pathname;

Deno.test("dist/cni/spiderpool answers CNI VERSION with every supported version", async () => {
  const r = await run(`${dist}cni/spiderpool`, [], { CNI_COMMAND: "VERSION" }, '{"cniVersion":"0.4.0"}');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    cniVersion: "1.1.0",
    supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
  });
});

Deno.test("dist/cni/spiderpool rejects an unsupported requested version with CNI error code 1", async () => {
  const conf = JSON.stringify({ cniVersion: "0.2.0", name: "n", type: "spiderpool" });
  const env = {
    CNI_COMMAND: "ADD",
    CNI_CONTAINERID: "c1",
    CNI_NETNS: "/proc/self/ns/net",
    CNI_IFNAME: "eth0",
  };
  const r = await run(`${dist}cni/spiderpool`, [], { ...env, CNI_PATH: "/usr/lib/cni" }, conf);
  assert.equal(r.code, 1);
  assert.equal(JSON.parse(r.stdout).code, 1);
});

Deno.test("coordinator and ifacer names answer VERSION and run as themselves", async () => {
  const expected: Record<string, RegExp> = {
    coordinator: /the coordinator has no prevResult/,
    ifacer: /invalid ifacer configuration "interfaces"/,
  };
  for (const name of ["coordinator", "ifacer"]) {
    const v = await run(`${dist}cni/${name}`, [], { CNI_COMMAND: "VERSION" });
    assert.equal(v.code, 0);
    assert.ok(JSON.parse(v.stdout).supportedVersions.includes("1.1.0"));
    const conf = JSON.stringify({ cniVersion: "1.0.0", name: "n", type: name });
    const env = {
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "c1",
      CNI_NETNS: "/x",
      CNI_IFNAME: "eth0",
      CNI_PATH: "/x",
    };
    const add = await run(`${dist}cni/${name}`, [], env, conf);
    assert.equal(add.code, 1);
    const err = JSON.parse(add.stdout);
    assert.equal(err.code, 7);
    assert.match(err.msg, expected[name]);
  }
});

Deno.test("an unknown subcommand prints usage on stderr and exits 2", async () => {
  const r = await run(`${dist}spiderpool`, ["frobnicate"]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /unknown command "frobnicate"/);
  assert.match(r.stderr, /usage: spiderpool <command>/);
});

Deno.test("spiderpool without CNI_COMMAND is the command line, not the plugin", async () => {
  const r = await run(`${dist}cni/spiderpool`, ["version", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).api, "spiderpool.spidernet.io/v2beta1");
});

Deno.test("help lists the commands on stdout and exits 0", async () => {
  const r = await run(`${dist}spiderpool`, ["--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /version/);
  assert.match(r.stdout, /crds/);
});

Deno.test("spiderpool crds prints the six CRDs, identical to the files in crds/", async () => {
  const r = await run(`${dist}spiderpool`, ["crds"]);
  assert.equal(r.code, 0, r.stderr);
  const docs = r.stdout.split(/^---\n/m).filter((d) => d.trim() !== "");
  assert.equal(docs.length, 6);
  assert.equal(CRDS.length, 6);
  for (const def of CRDS) {
    const file = await Deno.readTextFile(
      new URL(`../../crds/spiderpool.spidernet.io_${def.plural}.yaml`, import.meta.url),
    );
    const body = file.slice(file.indexOf("---\n") + 4);
    assert.ok(docs.includes(body), `crds output has no document equal to crds/ file of ${def.plural}`);
  }
});

/**
 * Every chunk a module statically imports, transitively (what Deno must load before it runs). `plugin`: also
 * assert what keeps a plugin's start cheap (no literal dynamic import, no static node: import).
 */
async function staticClosure(lib: string, entry: string, plugin = true): Promise<Set<string>> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const name = todo.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const text = await Deno.readTextFile(`${lib}/${name}`);
    for (const m of text.matchAll(/^import\s[^;]*?from\s*"\.\/([^"]+)"|^import\s*"\.\/([^"]+)"/gm)) {
      todo.push(m[1] ?? m[2]);
    }
    if (!plugin) continue;
    assert.doesNotMatch(text, /import\("/, `${name} has a literal dynamic import that Deno would preload`);
    assert.doesNotMatch(text, /from\s*"node:/, `${name} statically imports a node: module`);
  }
  return seen;
}

Deno.test("the plugins' and the agent's chunks never contain the Kubernetes client or prom-client", async (t) => {
  const lib = `${dist}lib`;
  const names = (await Array.fromAsync(Deno.readDir(lib))).map((e) => e.name);
  if (!names.includes("main.js")) {
    // A `deno compile` build has no chunks to inspect; start-up is covered by the benchmark.
    await t.step({ name: "compiled build: no chunks", ignore: true, fn: () => {} });
    return;
  }
  const plugins = ["spiderpool", "coordinator", "ifacer"].map((p) => {
    const chunk = names.find((n) => new RegExp(`^${p}-[A-Z0-9]+\\.js$`).test(n));
    assert.ok(chunk, `no ${p} plugin chunk in ${names.join(", ")}`);
    return chunk!;
  });
  for (const entry of ["main.js", ...plugins]) {
    for (const chunk of await staticClosure(lib, entry)) {
      const text = await Deno.readTextFile(`${lib}/${chunk}`);
      assert.doesNotMatch(text, /KubeConfig|prom-client|collectDefaultMetrics/, `${entry} loads ${chunk}`);
    }
  }
  // The agent talks to the API server through KubeHttp and exposes metrics with its own writer: its code loads
  // none of client-node, undici, ws or prom-client (≈ 75 MiB of resident memory between them).
  const agent = names.find((n) => /^agent-[A-Z0-9]+\.js$/.test(n));
  assert.ok(agent, `no agent chunk in ${names.join(", ")}`);
  for (const chunk of await staticClosure(lib, agent!, false)) {
    const text = await Deno.readTextFile(`${lib}/${chunk}`);
    const heavy = text.match(/node_modules\/\.deno\/(@kubernetes\+client-node|prom-client|undici|ws)@/);
    assert.equal(heavy?.[1], undefined, `the agent loads ${heavy?.[1]} through ${chunk}`);
  }
  // The programs the launcher runs for CNI calls: each plugin's own code. None of their files holds a heavy
  // library; what a plugin imports dynamically (the spiderpool plugin's raw-socket detection) is in chunks
  // outside what every call loads.
  for (const name of (await Array.fromAsync(Deno.readDir(`${lib}/cni`))).map((e) => e.name)) {
    const text = await Deno.readTextFile(`${lib}/cni/${name}`);
    assert.doesNotMatch(text, /KubeConfig|prom-client|collectDefaultMetrics/, `lib/cni/${name}`);
  }
  for (const p of ["spiderpool", "coordinator", "ifacer"]) {
    const closure = await staticClosure(`${lib}/cni`, `${p}.js`);
    for (const chunk of closure) {
      const text = await Deno.readTextFile(`${lib}/cni/${chunk}`);
      assert.doesNotMatch(text, /^\/\/ src\/(agent|controller|kube)\//m, `lib/cni/${p}.js loads ${chunk}`);
      if (p === "spiderpool") {
        assert.doesNotMatch(text, /^\/\/ src\/net\//m, `every spiderpool call would load ${chunk}`);
      }
    }
  }
  const spiderpool = await Deno.readTextFile(`${lib}/cni/spiderpool.js`);
  const detection = spiderpool.match(/import\(\["\.\/(detect-[A-Z0-9]+\.js)"\]\[0\]\)/)?.[1];
  assert.ok(detection, "the spiderpool plugin imports its detection chunk on demand");
  assert.match(await Deno.readTextFile(`${lib}/cni/${detection}`), /^\/\/ src\/net\/detect\.ts$/m);
});

Deno.test("a CNI call under a plugin's name runs that plugin's own program; other calls run main.js", async () => {
  if (!(await Deno.stat(`${dist}lib/main.js`).catch(() => null))) return; // a compiled build has one program
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-launcher-cni-" });
  try {
    await Deno.mkdir(`${dir}/lib/cni`, { recursive: true });
    await Deno.symlink(await Deno.realPath(`${dist}lib/deno`), `${dir}/lib/deno`);
    const say = (what: string) => `console.log(${JSON.stringify(what)} + " " + Deno.env.get("CNI_COMMAND"));`;
    await Deno.writeTextFile(`${dir}/lib/main.js`, say("main.js"));
    await Deno.writeTextFile(`${dir}/lib/cni/spiderpool.js`, say("lib/cni/spiderpool.js"));
    await Deno.copyFile(`${dist}spiderpool`, `${dir}/spiderpool`);
    await Deno.chmod(`${dir}/spiderpool`, 0o755);
    await Deno.mkdir(`${dir}/cni`);
    for (const p of ["spiderpool", "ifacer"]) await Deno.symlink("../spiderpool", `${dir}/cni/${p}`);
    const cni = await run(`${dir}/cni/spiderpool`, [], { CNI_COMMAND: "VERSION" });
    assert.equal(cni.stdout.trim(), "lib/cni/spiderpool.js VERSION", cni.stderr);
    // No program of its own in this build: main.js dispatches by name, as before.
    const other = await run(`${dir}/cni/ifacer`, [], { CNI_COMMAND: "VERSION" });
    assert.equal(other.stdout.trim(), "main.js VERSION", other.stderr);
    const cli = await run(`${dir}/spiderpool`, ["version"]);
    assert.equal(cli.stdout.trim(), "main.js undefined", cli.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("started as spiderpool-agent or spiderpool-controller, the binary runs that mode", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-names-" });
  try {
    for (const name of ["spiderpool-agent", "spiderpool-controller"]) {
      await Deno.symlink(`${dist}spiderpool`, `${dir}/${name}`);
    }
    const agent = await run(`${dir}/spiderpool-agent`, ["--help"]);
    assert.equal(agent.code, 0, agent.stderr);
    assert.match(agent.stdout, /usage: spiderpool agent/);
    const controller = await run(`${dir}/spiderpool-controller`, ["--help"]);
    assert.equal(controller.code, 0, controller.stderr);
    assert.match(controller.stdout, /usage: spiderpool controller/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent flags are checked strictly: an unknown flag is a usage error with exit code 2", async () => {
  const r = await run(`${dist}spiderpool`, ["agent", "--no-such-flag"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no-such-flag/);
  assert.match(r.stderr, /usage: spiderpool agent/);
});

Deno.test("the launcher is a program, not a script, and passes every argument to the runtime unchanged", async () => {
  const head = new Uint8Array(4);
  using f = await Deno.open(`${dist}spiderpool`);
  await f.read(head);
  assert.deepEqual([...head], [0x7f, 0x45, 0x4c, 0x46], "dist/spiderpool is an ELF executable (no shell)");
  const r = await run(`${dist}spiderpool`, ["a  b", "", "c"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command "a {2}b"/);
});

Deno.test("the launcher gives the runtime the build's own cache and V8 flags the environment can replace", async () => {
  // A copy of the build with an empty cache: the first call creates and fills <build>/cache/cni.
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-launcher-" });
  try {
    await Deno.mkdir(`${dir}/lib`);
    for await (const e of Deno.readDir(`${dist}lib`)) {
      await Deno.symlink(await Deno.realPath(`${dist}lib/${e.name}`), `${dir}/lib/${e.name}`);
    }
    await Deno.copyFile(`${dist}spiderpool`, `${dir}/spiderpool`);
    await Deno.chmod(`${dir}/spiderpool`, 0o755);
    await Deno.mkdir(`${dir}/cni`);
    await Deno.symlink("../spiderpool", `${dir}/cni/spiderpool`);
    const v = await run(`${dir}/cni/spiderpool`, [], {
      CNI_COMMAND: "VERSION",
      DENO_DIR: `${dir}/elsewhere`,
    });
    assert.equal(v.code, 0, v.stderr);
    assert.ok((await Deno.stat(`${dir}/cache/cni/v8_code_cache_v2`)).isFile);
    assert.equal(await Deno.stat(`${dir}/elsewhere`).catch(() => null), null);
    const bad = await run(`${dir}/cni/spiderpool`, [], {
      CNI_COMMAND: "VERSION",
      DENO_V8_FLAGS: "--no-such-v8-flag",
    });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /no-such-v8-flag/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
