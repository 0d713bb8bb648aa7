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

Deno.test("coordinator and ifacer names answer VERSION and refuse ADD with a CNI error naming the plugin", async () => {
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
    assert.equal(err.code, 100);
    assert.match(err.msg, new RegExp(`the ${name} plugin is not available`));
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

/** Every chunk a module statically imports, transitively (what Deno must load before it runs). */
async function staticClosure(lib: string, entry: string): Promise<Set<string>> {
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
    assert.doesNotMatch(text, /import\("/, `${name} has a literal dynamic import that Deno would preload`);
    assert.doesNotMatch(text, /from\s*"node:/, `${name} statically imports a node: module`);
  }
  return seen;
}

Deno.test("the plugin's chunks never contain the Kubernetes client or prom-client", async (t) => {
  const lib = `${dist}lib`;
  const names = (await Array.fromAsync(Deno.readDir(lib))).map((e) => e.name);
  if (!names.includes("main.js")) {
    // A `deno compile` build has no chunks to inspect; start-up is covered by the benchmark.
    await t.step({ name: "compiled build: no chunks", ignore: true, fn: () => {} });
    return;
  }
  const plugin = names.find((n) => /^spiderpool-[A-Z0-9]+\.js$/.test(n));
  assert.ok(plugin, `no spiderpool plugin chunk in ${names.join(", ")}`);
  for (const entry of ["main.js", plugin]) {
    for (const chunk of await staticClosure(lib, entry)) {
      const text = await Deno.readTextFile(`${lib}/${chunk}`);
      assert.doesNotMatch(text, /KubeConfig|prom-client|collectDefaultMetrics/, `${entry} loads ${chunk}`);
    }
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
