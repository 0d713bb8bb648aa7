// Start-up benchmark of the CNI plugin: `dist/cni/spiderpool` answering CNI_COMMAND=VERSION, against a trivial
// Deno script started through the same launcher and runtime, and against Debian's Go `host-local` plugin.
// A CNI plugin is a new process per call, so its start-up is paid by every pod on every node.
// Usage: deno run -A tests/bench/startup.ts [--runs 40]   (after scripts/build.sh)
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { runs: { type: "string", default: "40" } }, strict: true });
const runs = Number(values.runs);
const root = new URL("../../", import.meta.url).pathname;
const dist = `${root}dist`;

type Target = { name: string; cmd: string; env: Record<string, string> };
const versionEnv = { CNI_COMMAND: "VERSION" };

/** A copy of dist's launcher and runtime whose program is a trivial script printing the same answer. */
async function trivialTarget(tmp: string): Promise<Target> {
  const program =
    `console.log(JSON.stringify({cniVersion:"1.1.0",supportedVersions:["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}));\n`;
  await Deno.mkdir(`${tmp}/lib`, { recursive: true });
  let launcher = await Deno.readTextFile(`${dist}/spiderpool`).catch(() => undefined);
  if (launcher?.startsWith("#!")) {
    // Bundle build: same launcher text, same runtime binary, trivial program in place of main.js.
    await Deno.writeTextFile(`${tmp}/lib/main.js`, program);
    await Deno.link(`${dist}/lib/deno`, `${tmp}/lib/deno`).catch(() =>
      Deno.copyFile(`${dist}/lib/deno`, `${tmp}/lib/deno`)
    );
  } else {
    // Compiled build: compile the trivial program the same way.
    await Deno.writeTextFile(`${tmp}/trivial.ts`, program);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["compile", "-A", "--no-check", "--output", `${tmp}/spiderpool`, `${tmp}/trivial.ts`],
    }).output();
    if (!out.success) {
      throw new Error(`compiling the trivial program failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    launcher = undefined;
  }
  if (launcher !== undefined) {
    await Deno.writeTextFile(`${tmp}/spiderpool`, launcher);
    await Deno.chmod(`${tmp}/spiderpool`, 0o755);
  }
  await Deno.mkdir(`${tmp}/cni`);
  await Deno.symlink("../spiderpool", `${tmp}/cni/spiderpool`);
  return { name: "trivial Deno script, same launcher", cmd: `${tmp}/cni/spiderpool`, env: versionEnv };
}

async function once(t: Target): Promise<number> {
  const start = performance.now();
  const out = await new Deno.Command(t.cmd, { env: t.env, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  const ms = performance.now() - start;
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success || !text.includes("supportedVersions")) {
    throw new Error(`${t.name} did not answer VERSION: ${text}${new TextDecoder().decode(out.stderr)}`);
  }
  return ms;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const tmp = await Deno.makeTempDir({ prefix: "spiderpool-bench-" });
try {
  const targets: Target[] = [
    { name: "dist/cni/spiderpool", cmd: `${dist}/cni/spiderpool`, env: versionEnv },
    await trivialTarget(tmp),
    { name: "Debian host-local (Go)", cmd: "/usr/lib/cni/host-local", env: versionEnv },
  ];
  for (const t of targets) await once(t); // warm caches (V8 code cache, page cache)
  const samples = targets.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) { // interleaved so that machine noise hits every target alike
    for (const [j, t] of targets.entries()) samples[j].push(await once(t));
  }
  const medians = samples.map((s) => quantile(s.toSorted((a, b) => a - b), 0.5));
  console.log(`start-up answering CNI_COMMAND=VERSION, ${runs} runs each (wall time per process)`);
  console.log(
    `${"target".padEnd(38)}${"median ms".padStart(11)}${"p90 ms".padStart(10)}${"vs trivial".padStart(12)}`,
  );
  for (const [j, t] of targets.entries()) {
    const sorted = samples[j].toSorted((a, b) => a - b);
    const ratio = medians[j] / medians[1];
    console.log(
      `${t.name.padEnd(38)}${medians[j].toFixed(1).padStart(11)}${
        quantile(sorted, 0.9).toFixed(1).padStart(10)
      }${(ratio.toFixed(2) + "x").padStart(12)}`,
    );
  }
  console.log(`plugin / trivial = ${(medians[0] / medians[1]).toFixed(2)} (target <= 1.50)`);
} finally {
  await Deno.remove(tmp, { recursive: true });
}
