// `spiderpool install` from the built artifact (dist/, from scripts/build.sh): the build lands in lib-dir under
// its version and content hash, the plugin names in the CNI bin directory become symlinks to it and still
// dispatch by name; re-running changes nothing. Also deploy/agent.yaml, the DaemonSet whose init step runs it.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { load } from "js-yaml";
import { VERSION } from "../../src/version.ts";
import { getCluster, kubeTest } from "../kube/harness.ts";
import { run } from "./run.ts";

const root = new URL("../../", import.meta.url).pathname;
const dist = `${root}dist/`;
const VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/** A temporary directory with bin/ and lib/ for one test, removed on dispose. */
async function tempDirs(): Promise<{ dir: string; bin: string; lib: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-install-" });
  return {
    dir,
    bin: `${dir}/bin`,
    lib: `${dir}/lib`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

function install(bin: string, lib: string, ...extra: string[]) {
  return run(`${dist}spiderpool`, ["install", "--cni-bin-dir", bin, "--lib-dir", lib, ...extra]);
}

async function builds(lib: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(lib)) names.push(e.name);
  return names.sort();
}

Deno.test("install links the plugins to a copy of the build that answers VERSION under each name", async () => {
  await using t = await tempDirs();
  const r = await install(t.bin, t.lib);
  assert.equal(r.code, 0, r.stderr);
  const [build, ...more] = await builds(t.lib);
  assert.deepEqual(more, []);
  assert.match(build, new RegExp(`^${VERSION.replaceAll(".", "\\.")}-[0-9a-f]{12}$`));
  const exe = `${t.lib}/${build}/spiderpool`;
  assert.ok((await Deno.stat(exe)).mode! & 0o100, "the copied binary is executable");
  for (const name of ["spiderpool", "coordinator", "ifacer"]) {
    assert.equal(await Deno.readLink(`${t.bin}/${name}`), exe);
    const v = await run(`${t.bin}/${name}`, [], { CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.0.0"}');
    assert.equal(v.code, 0, `${name}: ${v.stderr}`);
    assert.deepEqual(JSON.parse(v.stdout).supportedVersions, VERSIONS);
  }
  // The plugin name survives the link into lib-dir: coordinator still answers ADD as the coordinator.
  const conf = JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "coordinator" });
  const env = {
    CNI_COMMAND: "ADD",
    CNI_CONTAINERID: "c1",
    CNI_NETNS: "/x",
    CNI_IFNAME: "eth0",
    CNI_PATH: "/x",
  };
  const add = await run(`${t.bin}/coordinator`, [], env, conf);
  assert.match(JSON.parse(add.stdout).msg, /the coordinator has no prevResult/);
  assert.match(r.stdout, new RegExp(`copied to ${t.lib}/${build}`));
  // Nothing left behind: no temporary links or directories.
  assert.deepEqual((await builds(t.bin)).filter((n) => n.startsWith(".")), []);
});

Deno.test("a second install reuses the same build and links, and exits 0", async () => {
  await using t = await tempDirs();
  assert.equal((await install(t.bin, t.lib)).code, 0);
  const first = await builds(t.lib);
  const link = await Deno.readLink(`${t.bin}/spiderpool`);
  const r = await install(t.bin, t.lib);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await builds(t.lib), first);
  assert.equal(await Deno.readLink(`${t.bin}/spiderpool`), link);
  assert.match(r.stdout, /same content\), reused/);
  assert.match(r.stdout, /\(unchanged\)/);
});

/** How many modules a build's V8 code cache holds, and the size of its write-ahead log (0 when none). */
function codeCache(build: string): { modules: number; walBytes: number } {
  const db = new DatabaseSync(`${build}/cache/cni/v8_code_cache_v2`, { readOnly: true });
  try {
    const { n } = db.prepare("SELECT count(*) AS n FROM codecache").get() as { n: number };
    const wal = (() => {
      try {
        return Deno.statSync(`${build}/cache/cni/v8_code_cache_v2-wal`).size;
      } catch {
        return 0;
      }
    })();
    return { modules: n, walBytes: wal };
  } finally {
    db.close();
  }
}

Deno.test("install warms the placed build's runtime cache, so that a plugin call compiles nothing new", async () => {
  await using t = await tempDirs();
  const r = await install(t.bin, t.lib);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /warning/);
  const [build] = await builds(t.lib);
  const placed = `${t.lib}/${build}`;
  const warm = codeCache(placed);
  // Its own program and the runtime modules a call loads lazily, with the write-ahead log folded in.
  assert.ok(warm.modules >= 8, `only ${warm.modules} modules cached`);
  assert.equal(warm.walBytes, 0);
  const conf = JSON.stringify({
    cniVersion: "1.0.0",
    name: "n",
    type: "spiderpool",
    ipam: {
      type: "spiderpool",
      ipam_unix_socket_path: `${t.dir}/none.sock`,
      log_file_path: `${t.dir}/p.log`,
    },
  });
  const env = {
    CNI_COMMAND: "ADD",
    CNI_CONTAINERID: "c1",
    CNI_NETNS: "/proc/self/ns/net",
    CNI_IFNAME: "eth0",
    CNI_PATH: "/x",
    CNI_ARGS: "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b",
  };
  const add = await run(`${t.bin}/spiderpool`, [], env, conf);
  assert.equal(JSON.parse(add.stdout).code, 11, "no agent listens: try again later");
  const del = await run(`${t.bin}/spiderpool`, [], { ...env, CNI_COMMAND: "DEL" }, conf);
  assert.equal(JSON.parse(del.stdout).code, 11);
  assert.deepEqual(codeCache(placed), warm);
  // The cache is the runtime's, not part of the build: a second install still finds the same build.
  await Deno.writeTextFile(`${placed}/cache/written-by-the-runtime`, "x");
  const again = await install(t.bin, t.lib);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /same content\), reused/);
});

Deno.test("an existing regular file named like a plugin (e.g. upstream's binary) is replaced by the link", async () => {
  await using t = await tempDirs();
  await Deno.mkdir(t.bin);
  await Deno.writeTextFile(`${t.bin}/spiderpool`, "#!/bin/sh\nexit 1\n", { mode: 0o755 });
  const r = await install(t.bin, t.lib, "--plugins", "spiderpool");
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await Deno.lstat(`${t.bin}/spiderpool`)).isSymlink);
  assert.match(r.stdout, /replaced a regular file/);
  const v = await run(`${t.bin}/spiderpool`, [], { CNI_COMMAND: "VERSION" });
  assert.equal(v.code, 0, v.stderr);
  // --plugins limits the links.
  assert.equal(await Deno.lstat(`${t.bin}/coordinator`).catch(() => null), null);
});

Deno.test("a build whose directory content does not match its name is replaced", async () => {
  await using t = await tempDirs();
  assert.equal((await install(t.bin, t.lib)).code, 0);
  const [build] = await builds(t.lib);
  await Deno.writeTextFile(`${t.lib}/${build}/spiderpool`, "#!/bin/sh\nexit 1\n");
  const r = await install(t.bin, t.lib);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /did not match its name/);
  const v = await run(`${t.bin}/spiderpool`, [], { CNI_COMMAND: "VERSION" });
  assert.equal(v.code, 0, v.stderr);
});

Deno.test("older builds no link points to are removed, keeping the newest two", async () => {
  await using t = await tempDirs();
  await Deno.mkdir(t.lib, { recursive: true });
  const old = ["0.0.1-aaaaaaaaaaaa", "0.0.2-bbbbbbbbbbbb", "0.0.3-cccccccccccc"];
  for (const [i, name] of old.entries()) {
    await Deno.mkdir(`${t.lib}/${name}`);
    const when = new Date(Date.UTC(2020, 0, 1 + i));
    await Deno.utime(`${t.lib}/${name}`, when, when);
  }
  await Deno.mkdir(`${t.lib}/not-a-build`); // not ours: never touched
  await Deno.mkdir(t.bin);
  await Deno.symlink(`${t.lib}/0.0.1-aaaaaaaaaaaa/spiderpool`, `${t.bin}/ifacer`);
  const r = await install(t.bin, t.lib, "--plugins", "spiderpool,coordinator");
  assert.equal(r.code, 0, r.stderr);
  const left = await builds(t.lib);
  // Kept: the new build, the newest old one, the one ifacer still points to, and the foreign directory.
  assert.ok(left.includes("0.0.1-aaaaaaaaaaaa") && left.includes("0.0.3-cccccccccccc"), left.join(" "));
  assert.ok(!left.includes("0.0.2-bbbbbbbbbbbb"), left.join(" "));
  assert.ok(left.includes("not-a-build"));
  assert.equal(left.length, 4);
  assert.match(r.stdout, /removed old build .*0\.0\.2-bbbbbbbbbbbb/);
});

Deno.test("--host-root writes the links as host paths", async () => {
  await using t = await tempDirs();
  const r = await install(t.bin, t.lib, "--host-root", t.dir);
  assert.equal(r.code, 0, r.stderr);
  const [build] = await builds(t.lib);
  assert.equal(await Deno.readLink(`${t.bin}/coordinator`), `/lib/${build}/spiderpool`);
  // The runtime keys its caches by module path, so the ones warmed here do not serve the node's path: said.
  assert.match(
    r.stdout,
    new RegExp(`plugin calls on the node run /lib/${build} and fill their own on first use`),
  );
  const bad = await install(t.bin, "/elsewhere", "--host-root", t.dir);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /is not under --host-root/);
});

Deno.test("install from a source checkout is refused with exit 1", async () => {
  await using t = await tempDirs();
  const r = await run(Deno.execPath(), [
    "run",
    "-A",
    `${root}main.ts`,
    "install",
    "--cni-bin-dir",
    t.bin,
    "--lib-dir",
    t.lib,
  ]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /run the built binary dist\/spiderpool; install copies a build, not sources/);
  assert.equal(await Deno.lstat(t.lib).catch(() => null), null, "nothing was written");
});

Deno.test("usage errors exit 2: an unknown flag, a positional argument, an unknown plugin", async () => {
  for (
    const [args, message] of [
      [["--frobnicate"], /Unknown option '--frobnicate'/],
      [["extra"], /Unexpected argument 'extra'/],
      [["--plugins", "spiderpool,macvlan"], /unknown plugin "macvlan"/],
    ] as const
  ) {
    const r = await run(`${dist}spiderpool`, ["install", ...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /usage: spiderpool install/);
  }
});

Deno.test("a lib-dir that cannot be created fails with exit 1 naming the path", async () => {
  await using t = await tempDirs();
  await Deno.writeTextFile(`${t.dir}/file`, "");
  const r = await install(t.bin, `${t.dir}/file/lib`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`cannot create ${t.dir}/file/lib`));
});

// deploy/agent.yaml

interface Container {
  name: string;
  command: string[];
  env?: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  volumeMounts: { name: string; mountPath: string }[];
  ports?: { containerPort: number }[];
  [probe: string]: unknown;
}
interface DaemonSet {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
  spec: {
    template: {
      spec: {
        serviceAccountName: string;
        hostNetwork: boolean;
        priorityClassName: string;
        tolerations: { operator: string }[];
        initContainers: Container[];
        containers: Container[];
        volumes: { name: string; hostPath?: { path: string }; configMap?: { name: string } }[];
      };
    };
  };
}

async function agentManifest(): Promise<DaemonSet> {
  return load(await Deno.readTextFile(`${root}deploy/agent.yaml`)) as DaemonSet;
}

Deno.test("deploy/agent.yaml: the agent DaemonSet installs the plugins first, then runs the agent", async () => {
  const ds = await agentManifest();
  assert.equal(ds.kind, "DaemonSet");
  assert.deepEqual(ds.metadata, { ...ds.metadata, name: "spiderpool-agent", namespace: "kube-system" });
  const pod = ds.spec.template.spec;
  assert.equal(pod.serviceAccountName, "spiderpool-agent");
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.priorityClassName, "system-node-critical");
  assert.deepEqual(pod.tolerations, [{ operator: "Exists" }]);
  const hostPaths = Object.fromEntries(
    pod.volumes.map((v) => [v.name, v.hostPath?.path ?? v.configMap?.name]),
  );
  const mounts = (c: Container) =>
    Object.fromEntries(c.volumeMounts.map((m) => [m.mountPath, hostPaths[m.name]]));

  const [init] = pod.initContainers;
  assert.deepEqual(init.command.slice(0, 6), [
    "spiderpool",
    "install",
    "--cni-bin-dir",
    "/host/opt/cni/bin",
    "--lib-dir",
    "/host/opt/spiderpool",
  ]);
  assert.deepEqual(mounts(init), {
    "/host/opt/cni/bin": "/opt/cni/bin",
    "/host/opt/spiderpool": "/opt/spiderpool",
  });

  const [agent] = pod.containers;
  assert.deepEqual(agent.command, ["spiderpool", "agent"]);
  const env = Object.fromEntries((agent.env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]));
  assert.equal(env.SPIDERPOOL_NODE_NAME, "spec.nodeName");
  assert.equal(env.SPIDERPOOL_POD_NAMESPACE, "metadata.namespace");
  assert.deepEqual(mounts(agent), {
    "/tmp/spiderpool/config-map": "spiderpool-conf",
    "/var/run/spidernet": "/var/run/spidernet",
    "/var/run/netns": "/var/run/netns",
  });
  const probe = (kind: string) => {
    const p = agent[`${kind}Probe`] as {
      httpGet: { path: string; port: number };
      periodSeconds: number;
      failureThreshold: number;
    };
    return [p.httpGet.path, p.httpGet.port, p.failureThreshold, p.periodSeconds];
  };
  assert.deepEqual(probe("startup"), ["/v1/runtime/startup", 5710, 60, 2]);
  assert.deepEqual(probe("liveness"), ["/v1/runtime/liveness", 5710, 6, 10]);
  assert.deepEqual(probe("readiness"), ["/v1/runtime/readiness", 5710, 3, 10]);
  assert.deepEqual(agent.ports?.map((p) => p.containerPort), [5710, 5711]);
});

kubeTest("deploy/agent.yaml is accepted by the API server (dry run)", async () => {
  const { http } = await getCluster();
  const { body } = await http.post<DaemonSet>(
    "/apis/apps/v1/namespaces/kube-system/daemonsets?dryRun=All",
    await agentManifest(),
  );
  // Accepted as written: defaulted, not rewritten.
  assert.equal(body.kind, "DaemonSet");
  assert.equal(body.spec.template.spec.initContainers[0].name, "install-cni");
});
