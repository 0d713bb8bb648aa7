// Strict flag parsing shared by the subcommands: a usage error prints the message and the usage text on stderr
// (exit code 2), `--help` prints the usage on stdout (exit code 0).
import { parseArgs, type ParseArgsConfig } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;
type Parsed<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O & { help: { type: "boolean"; short: "h" } }; strict: true }>
>["values"];

/** The flag values of `args`, or the exit code when the command should end here (usage error or help). */
export function parseFlags<const O extends Options>(
  command: string,
  usage: string,
  args: string[],
  options: O,
): { values: Parsed<O> } | { exit: number } {
  let values: Parsed<O>;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: { ...options, help: { type: "boolean", short: "h" } as const },
    }) as { values: Parsed<O> });
  } catch (err) {
    console.error(`spiderpool ${command}: ${(err as Error).message}\n\n${usage}`);
    return { exit: 2 };
  }
  if ((values as { help?: boolean }).help) {
    console.log(usage);
    return { exit: 0 };
  }
  return { values };
}
