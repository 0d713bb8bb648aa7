// `spiderpool install`: puts the build this process runs from on a node and links it as the CNI plugins. The
// build is copied whole into `<lib-dir>/<version>-<content hash>/` (a temporary directory renamed into place, so
// a half-copied build is never visible), then every plugin name in the CNI bin directory becomes a symlink to
// its `spiderpool`, each swapped in with one rename so a runtime starting a plugin mid-install always finds one.
import { createHash } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { VERSION } from "../version.ts";
import { parseFlags } from "./flags.ts";

const PLUGINS = ["spiderpool", "coordinator", "ifacer"];
/** Builds kept in lib-dir besides the ones a plugin link points to. */
const KEEP = 2;
/** Leftovers of an interrupted install older than this are removed. */
const STALE_MS = 10 * 60_000;
const BUILD_DIR = /^\d+\.\d+\.\d+[^/]*-[0-9a-f]{12}$/;
/** A bundle build's runtime caches (the launcher's DENO_DIRs): written by the runtime, not part of the build. */
export const CACHE_DIR = "cache";

const USAGE = `usage: spiderpool install [flags]

Copies the build this binary belongs to into <lib-dir>/<version>-<hash>/ and makes each plugin name in the CNI
bin directory a symlink to its spiderpool. Safe to re-run; builds no link points to are removed, except the
newest ${KEEP}.

flags:
  --cni-bin-dir DIR   CNI plugin directory (default /opt/cni/bin)
  --lib-dir DIR       where builds are kept (default /opt/spiderpool)
  --plugins LIST      comma-separated plugin names to link (default ${PLUGINS.join(",")})
  --host-root DIR     the host's root as mounted here (e.g. /host in a container): links are written as host
                      paths, so they resolve on the node; lib-dir must be under it
  -h, --help          print this help
`;

class InstallError extends Error {}

/** A build on disk: its root and the files that make it up, relative to the root. */
interface Build {
  kind: "compiled binary" | "bundle";
  root: string;
  files: { rel: string; src: string }[];
}

function dirname(p: string): string {
  const i = p.replace(/\/+$/, "").lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}

function basename(p: string): string {
  const t = p.replace(/\/+$/, "");
  return t.slice(t.lastIndexOf("/") + 1);
}

function absolute(p: string): string {
  const parts: string[] = [];
  for (const seg of (p.startsWith("/") ? p : `${Deno.cwd()}/${p}`).split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return "/" + parts.join("/");
}

/** Runs a file-system step; failures become an InstallError naming the path and what to do about it. */
async function step<T>(what: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof InstallError) throw err;
    const msg = err instanceof Error ? err.message : String(err);
    let fix = "";
    if (err instanceof Deno.errors.PermissionDenied) {
      fix = "; run as root, or mount the directory writable (a hostPath volume without readOnly)";
    } else if (/read-only file system/i.test(msg)) {
      fix = "; the file system is read-only: mount the directory writable";
    } else if (/no space left/i.test(msg)) fix = "; free some space on that file system";
    throw new InstallError(`cannot ${what} ${path}: ${msg}${fix}`);
  }
}

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/** Every regular file under `dir`, as paths relative to it, sorted; `skip` names top-level entries to leave out. */
async function walk(dir: string, prefix = "", skip: string[] = []): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (prefix === "" && skip.includes(e.name)) continue;
    const rel = prefix + e.name;
    if (e.isDirectory) out.push(...await walk(`${dir}/${e.name}`, rel + "/"));
    else out.push(rel);
  }
  return out.sort();
}

/**
 * The build this process runs from. A compiled binary is `Deno.execPath()`. The bundle (scripts/build.sh without
 * denort) is the directory holding the launcher `spiderpool` and `lib/`, where this module's chunk and the Deno
 * runtime running it live. A source checkout is refused: install copies a build.
 */
export async function locateBuild(moduleUrl = import.meta.url): Promise<Build> {
  if (Deno.build.standalone) {
    const exe = Deno.execPath();
    return { kind: "compiled binary", root: dirname(exe), files: [{ rel: "spiderpool", src: exe }] };
  }
  const url = new URL(moduleUrl);
  const here = url.protocol === "file:" ? decodeURIComponent(url.pathname) : "";
  if (here.endsWith(".js") && basename(dirname(here)) === "lib") {
    const root = dirname(dirname(here));
    const runtime = `${root}/lib/deno`;
    const launcher = await lstatOrNull(`${root}/spiderpool`);
    const ours = await Deno.realPath(runtime).then(
      async (r) => r === await Deno.realPath(Deno.execPath()),
      () => false,
    );
    if (launcher?.isFile && ours) {
      const files = [
        { rel: "spiderpool", src: `${root}/spiderpool` },
        ...(await walk(`${root}/lib`)).map((f) => ({ rel: `lib/${f}`, src: `${root}/lib/${f}` })),
      ];
      return { kind: "bundle", root, files };
    }
  }
  if (here.endsWith(".ts")) {
    throw new InstallError(
      `this is a source checkout (${here}): run the built binary dist/spiderpool; install copies a build, ` +
        "not sources (scripts/build.sh makes one)",
    );
  }
  throw new InstallError(
    `cannot tell which build this process belongs to (module ${moduleUrl}, runtime ${Deno.execPath()}): ` +
      "run dist/spiderpool from a build made by scripts/build.sh",
  );
}

/** A short content hash over the files' names, executable bits and bytes. */
async function contentHash(files: { rel: string; src: string }[]): Promise<string> {
  const h = createHash("sha256");
  for (const f of [...files].sort((a, b) => a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0)) {
    const info = await Deno.stat(f.src);
    h.update(`${f.rel}\0${(info.mode ?? 0) & 0o111 ? "x" : "-"}\0${info.size}\0`);
    using file = await Deno.open(f.src);
    for await (const chunk of file.readable) h.update(chunk);
  }
  return h.digest("hex").slice(0, 12);
}

async function hashOfDir(dir: string): Promise<string> {
  return contentHash((await walk(dir, "", [CACHE_DIR])).map((rel) => ({ rel, src: `${dir}/${rel}` })));
}

function tempName(name: string, kind: string): string {
  return `.${name}.${kind}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

/** Copies the build into `<libDir>/<name>`; returns what happened. Atomic: temp dir, then rename. */
async function placeBuild(build: Build, libDir: string, name: string, hash: string): Promise<string> {
  const target = `${libDir}/${name}`;
  const existing = await step("read", target, () => lstatOrNull(target));
  if (existing?.isDirectory && await step("read", target, () => hashOfDir(target)) === hash) {
    return `already in ${target} (same content), reused`;
  }
  const tmp = `${libDir}/${tempName(name, "tmp")}`;
  const started = performance.now();
  try {
    for (const f of build.files) {
      const dest = `${tmp}/${f.rel}`;
      await step("create", dirname(dest), () => Deno.mkdir(dirname(dest), { recursive: true }));
      await step("copy to", dest, () => Deno.copyFile(f.src, dest));
      const mode = (await step("read", f.src, () => Deno.stat(f.src))).mode;
      if (mode !== null) await step("set the mode of", dest, () => Deno.chmod(dest, mode & 0o7777));
      // On disk before the rename makes the build visible, so a crash cannot leave a named build half-written.
      await step("write", dest, async () => {
        using file = await Deno.open(dest, { read: true });
        await file.syncData();
      });
    }
    if (existing) {
      // A directory of that name whose content differs from its name (damaged, or not ours): move it aside.
      const aside = `${libDir}/${tempName(name, "old")}`;
      await step("move aside", target, () => Deno.rename(target, aside));
      await step("rename into place", tmp, () => Deno.rename(tmp, target));
      await Deno.remove(aside, { recursive: true }).catch(() => {});
      return `replaced ${target}, whose content did not match its name`;
    }
    try {
      await Deno.rename(tmp, target);
    } catch (err) {
      // Another install placed the same build meanwhile: theirs is as good as ours.
      if (await lstatOrNull(target) && await hashOfDir(target) === hash) {
        return `already in ${target} (same content), reused`;
      }
      return await step("rename into place", target, () => Promise.reject(err));
    }
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    return `copied to ${target} (${secs} s)`;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/** Runs the placed build once, so a build that cannot start on this node never gets linked. */
async function smokeTest(exe: string): Promise<void> {
  const out = await step("run", exe, () =>
    new Deno.Command(exe, {
      args: ["version", "--json"],
      clearEnv: true,
      env: { PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output());
  const text = new TextDecoder().decode(out.stdout);
  let version: unknown;
  try {
    version = JSON.parse(text).version;
  } catch { /* reported below */ }
  if (!out.success || version !== VERSION) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new InstallError(
      `the copied build ${exe} does not run here (exit ${out.code}${err ? `: ${err}` : ""}); ` +
        "nothing was linked",
    );
  }
}

/**
 * Folds the SQLite write-ahead log of every database in the runtime cache directory `cache` (and its
 * subdirectories) into the database. The runtime never closes its caches, so their logs stay; the next process
 * to open a database alone replays the whole log before its first lookup. Returns warnings; never throws.
 */
export async function foldCacheLogs(cache: string): Promise<string[]> {
  const warnings: string[] = [];
  try {
    for await (const e of Deno.readDir(cache)) {
      const path = `${cache}/${e.name}`;
      if (e.isDirectory && !e.name.startsWith(".")) warnings.push(...await foldCacheLogs(path));
      if (!e.isFile || !await lstatOrNull(`${path}-wal`)) continue;
      try {
        // Opening replays the log; closing the last connection folds it into the database and removes it.
        const db = new DatabaseSync(path);
        try {
          db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
        } finally {
          db.close();
        }
      } catch (err) {
        warnings.push(`cannot fold the write-ahead log of ${path}: ${(err as Error).message}`);
      }
    }
  } catch (err) {
    warnings.push(`cannot read the runtime cache ${cache}: ${(err as Error).message}`);
  }
  return warnings;
}

/**
 * Fills a bundle build's runtime caches (`<root>/cache/cni` for CNI calls and `<root>/cache/run` for the other
 * modes: the DENO_DIRs its launcher sets) with every module the plugins and the agent load, then folds each
 * cache's SQLite write-ahead log into its database. A plugin call with cold caches costs ≈ 15 ms more CPU (every module parsed and compiled again); one that finds a non-empty
 * write-ahead log with no other process holding the database replays the whole log first (≈ 5 ms for the few
 * hundred KiB the plugin's modules leave there), and the runtime never folds it itself. Runs the plugin under
 * each name through ADD and DEL against a stand-in agent socket that refuses every request (the path of a real
 * call through the socket round trip: the runtime stores a module's code only once the process has waited on
 * I/O, so a call that fails at once to connect would leave the cache empty), and loads the agent's code through
 * `agent --help`. Returns warnings; never throws.
 */
export async function warmCache(buildRoot: string): Promise<string[]> {
  const root = absolute(buildRoot);
  const cache = `${root}/${CACHE_DIR}`;
  const warnings: string[] = [];
  let work: string;
  try {
    await Deno.mkdir(cache, { recursive: true });
    work = await Deno.makeTempDir({ dir: cache, prefix: ".warm-" });
  } catch (err) {
    return [`cannot create the runtime cache ${cache}: ${(err as Error).message}; plugins will run slower`];
  }
  const exe = `${root}/spiderpool`;
  const runs: { name: string; args?: string[]; env?: Record<string, string>; stdin?: string }[] = [];
  for (const name of PLUGINS) {
    const conf = JSON.stringify({
      cniVersion: "1.0.0",
      name: "warm-cache",
      type: name,
      ipam: { type: name, ipam_unix_socket_path: `${work}/agent.sock`, log_file_path: `${work}/plugin.log` },
    });
    const cni = {
      CNI_CONTAINERID: "warm-cache",
      CNI_NETNS: "/proc/self/ns/net",
      CNI_IFNAME: "eth0",
      CNI_PATH: work,
      CNI_ARGS: "K8S_POD_NAMESPACE=warm;K8S_POD_NAME=warm",
    };
    for (const command of ["VERSION", "ADD", "DEL"]) {
      runs.push({ name, env: { ...cni, CNI_COMMAND: command }, stdin: conf });
    }
  }
  runs.push({ name: "spiderpool", args: ["version"] }, { name: "spiderpool", args: ["agent", "--help"] });
  const agent = refusingAgent(`${work}/agent.sock`);
  try {
    for (const r of runs) {
      // The plugin name reaches the program as argv[0] through a link, as in the CNI bin directory.
      const link = `${work}/${r.name}`;
      if (!await lstatOrNull(link)) await Deno.symlink(exe, link);
      const child = new Deno.Command(link, {
        args: r.args ?? [],
        clearEnv: true,
        env: { PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...r.env },
        stdin: "piped",
        stdout: "null",
        stderr: "null",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(r.stdin ?? "")).catch(() => {});
      await writer.close().catch(() => {});
      await child.status; // failing is expected: the stand-in agent refuses every request
    }
    warnings.push(...await foldCacheLogs(cache));
  } catch (err) {
    warnings.push(
      `warming the runtime cache ${cache} failed: ${(err as Error).message}; plugins will run slower`,
    );
  } finally {
    await agent?.close();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  return warnings;
}

/**
 * A unix socket at `path` that answers every request with 503 and closes, for the cache warm-up; undefined when
 * it cannot listen there (the calls then fail to connect, and the cache is warmed less).
 */
function refusingAgent(path: string): { close(): Promise<void> } | undefined {
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ transport: "unix", path });
  } catch {
    return undefined;
  }
  const answer = new TextEncoder().encode(
    'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 26\r\nConnection: close\r\n\r\n"warming the module cache"',
  );
  const served = (async () => {
    for await (const conn of listener) {
      try {
        await conn.read(new Uint8Array(65536));
        await conn.write(answer);
      } catch { /* the caller went away */ }
      try {
        conn.close();
      } catch { /* closed */ }
    }
  })().catch(() => {});
  return {
    async close() {
      try {
        listener.close();
      } catch { /* closed */ }
      await served;
    },
  };
}

/** Makes `<binDir>/<plugin>` a symlink to `target` with one rename; returns what it replaced. */
async function link(binDir: string, plugin: string, target: string): Promise<string> {
  const path = `${binDir}/${plugin}`;
  const old = await step("read", path, () => lstatOrNull(path));
  if (old?.isDirectory) {
    throw new InstallError(`cannot link ${path}: it is a directory; remove it and re-run`);
  }
  const oldTarget = old?.isSymlink ? await Deno.readLink(path).catch(() => "?") : undefined;
  if (oldTarget === target) return `${path} -> ${target} (unchanged)`;
  const tmp = `${binDir}/.${plugin}.tmp-${Deno.pid}`;
  await Deno.remove(tmp).catch(() => {});
  await step("create", tmp, () => Deno.symlink(target, tmp));
  try {
    await step("replace", path, () => Deno.rename(tmp, path));
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  const was = !old ? "new" : oldTarget !== undefined ? `was -> ${oldTarget}` : "replaced a regular file";
  return `${path} -> ${target} (${was})`;
}

/** Removes builds no plugin link points to, keeping the newest `KEEP`, and leftovers of interrupted runs. */
async function prune(libDir: string, binDir: string, current: string): Promise<string[]> {
  const used = new Set([current]);
  for (const p of PLUGINS) {
    const dest = await Deno.readLink(`${binDir}/${p}`).catch(() => "");
    if (dest) used.add(basename(dirname(dest)));
  }
  const builds: { name: string; mtime: number }[] = [];
  const done: string[] = [];
  for await (const e of Deno.readDir(libDir)) {
    const path = `${libDir}/${e.name}`;
    const info = await Deno.lstat(path).catch(() => null);
    if (!info?.isDirectory) continue;
    const mtime = info.mtime?.getTime() ?? 0;
    if (/^\..*\.(tmp|old)-\d+-[0-9a-f]{8}$/.test(e.name)) {
      if (Date.now() - mtime > STALE_MS) {
        await Deno.remove(path, { recursive: true }).then(
          () => done.push(`removed leftover ${path}`),
          () => {},
        );
      }
    } else if (BUILD_DIR.test(e.name)) builds.push({ name: e.name, mtime });
  }
  builds.sort((a, b) => b.mtime - a.mtime);
  let kept = 0;
  for (const b of builds) {
    if (used.has(b.name) || kept < KEEP) {
      kept++;
      continue;
    }
    const path = `${libDir}/${b.name}`;
    await Deno.remove(path, { recursive: true }).then(
      () => done.push(`removed old build ${path}`),
      (err) => done.push(`warning: could not remove old build ${path}: ${err.message}`),
    );
  }
  return done;
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseFlags("install", USAGE, args, {
    "cni-bin-dir": { type: "string", default: "/opt/cni/bin" },
    "lib-dir": { type: "string", default: "/opt/spiderpool" },
    plugins: { type: "string", default: PLUGINS.join(",") },
    "host-root": { type: "string" },
  });
  if ("exit" in parsed) return parsed.exit;
  const { values } = parsed;
  const plugins = [...new Set(values.plugins.split(",").map((s) => s.trim()).filter(Boolean))];
  const unknown = plugins.filter((p) => !PLUGINS.includes(p));
  if (plugins.length === 0 || unknown.length > 0) {
    const what = plugins.length === 0 ? "no plugin named" : `unknown plugin "${unknown[0]}"`;
    console.error(`spiderpool install: --plugins: ${what}; choose from ${PLUGINS.join(", ")}\n\n${USAGE}`);
    return 2;
  }
  const binDir = absolute(values["cni-bin-dir"]);
  const libDir = absolute(values["lib-dir"]);
  const hostRoot = values["host-root"] === undefined ? undefined : absolute(values["host-root"]);
  if (hostRoot !== undefined && hostRoot !== "/" && !libDir.startsWith(hostRoot + "/")) {
    console.error(`spiderpool install: --lib-dir ${libDir} is not under --host-root ${hostRoot}\n\n${USAGE}`);
    return 2;
  }

  try {
    const build = await locateBuild();
    const hash = await step("read", build.root, () => contentHash(build.files));
    const name = `${VERSION}-${hash}`;
    let size = 0;
    for (const f of build.files) size += (await step("read", f.src, () => Deno.stat(f.src))).size;
    console.log(
      `spiderpool install: build ${name} (${build.kind}, ${build.files.length} files, ` +
        `${(size / 1e6).toFixed(1)} MB) from ${build.root}`,
    );
    await step("create", libDir, () => Deno.mkdir(libDir, { recursive: true }));
    console.log(`  ${await placeBuild(build, libDir, name, hash)}`);
    const placed = `${libDir}/${name}/spiderpool`;
    await smokeTest(placed);
    if (build.kind === "bundle") {
      const started = performance.now();
      const warnings = await warmCache(`${libDir}/${name}`);
      for (const w of warnings) console.log(`  warning: ${w}`);
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      if (warnings.length === 0) {
        console.log(`  runtime caches warmed in ${libDir}/${name}/${CACHE_DIR} (${secs} s)`);
      }
      if (hostRoot !== undefined && hostRoot !== "/") {
        // The runtime keys its caches by module path: warmed under /host/..., they do not serve the node's path.
        console.log(
          `  note: the caches were warmed for the path ${libDir}/${name} seen here; plugin calls on the node run ` +
            `${
              dirname(placed.slice(hostRoot.length))
            } and fill their own on first use (mount the lib dir at its ` +
            "node path and leave out --host-root to warm those)",
        );
      }
    }
    const now = new Date();
    await Deno.utime(`${libDir}/${name}`, now, now).catch(() => {}); // "newest" for pruning = last installed

    const target = hostRoot && hostRoot !== "/" ? placed.slice(hostRoot.length) : placed;
    await step("create", binDir, () => Deno.mkdir(binDir, { recursive: true }));
    for (const p of plugins) console.log(`  ${await link(binDir, p, target)}`);
    for (const line of await prune(libDir, binDir, name).catch((e) => [`warning: pruning: ${e.message}`])) {
      console.log(`  ${line}`);
    }
    return 0;
  } catch (err) {
    console.error(`spiderpool install: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
