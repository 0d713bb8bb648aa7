// Runs a built artifact as a CNI runtime or a user would: a clean environment (PATH plus what the test passes),
// `stdin` written and closed, and stdout, stderr and the exit code collected.

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(
  cmd: string,
  args: string[] = [],
  env: Record<string, string> = {},
  stdin = "",
  cwd?: string,
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ...env },
    clearEnv: true,
    cwd,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
