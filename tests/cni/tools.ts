// The Go parts of the CNI tests (reference plugins at CNI 1.1.0, the libcni driver, Go's net/http on a unix
// socket): built once by scripts/cni-build.sh into a cache outside the repo. scripts/test.sh builds them
// and sets SPIDERPOOL_CNI_TOOLS_BIN; a test file run on its own builds (or finds) them here.

const ROOT = new URL("../../", import.meta.url).pathname;

let bin: Promise<string> | undefined;

/** The directory holding bridge, host-local, cnidriver and gohttp. */
export function cniToolsBin(): Promise<string> {
  bin ??= (async () => {
    const fromEnv = Deno.env.get("SPIDERPOOL_CNI_TOOLS_BIN");
    if (fromEnv) return fromEnv;
    const out = await new Deno.Command("bash", {
      args: [`${ROOT}scripts/cni-build.sh`],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    if (!out.success) throw new Error(`scripts/cni-build.sh failed (exit ${out.code})`);
    return lines[lines.length - 1];
  })();
  return bin;
}

/** A started process that answered "listening" on stdout; stopping it ends exactly that pid. */
export interface GoServer extends AsyncDisposable {
  socket: string;
}

/** Starts Go's net/http server (`gohttp serve`) on a new unix socket in `dir`. */
export async function startGoHttpServer(dir: string): Promise<GoServer> {
  const socket = `${dir}/go-agent.sock`;
  const child = new Deno.Command(`${await cniToolsBin()}/gohttp`, {
    args: ["serve", socket],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = await Promise.race([
    reader.read(),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error("gohttp serve did not start within 10 s")), 10_000)
    ),
  ]).catch(async (err) => {
    child.kill("SIGKILL");
    await child.status;
    throw err;
  });
  if (first.done || !new TextDecoder().decode(first.value).includes("listening")) {
    child.kill("SIGKILL");
    await child.status;
    throw new Error("gohttp serve exited before listening");
  }
  return {
    socket,
    async [Symbol.asyncDispose]() {
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
    },
  };
}

/** One request with Go's net/http client set up as upstream's plugin sets it up (`gohttp call`). */
export async function goHttpCall(
  socket: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: string }> {
  const args = ["call", socket, method, path, ...(body === undefined ? [] : [JSON.stringify(body)])];
  const out = await new Deno.Command(`${await cniToolsBin()}/gohttp`, {
    args,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`gohttp call failed (exit ${out.code}): ${text}${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(text);
}
