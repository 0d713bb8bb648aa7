// Entry point of the one binary. The mode is chosen first by the name it was started under (argv[0], which
// the CNI runtime sets to the plugin name through a symlink), then by the first argument. Every mode is a
// dynamic import so that a CNI plugin process never evaluates the Kubernetes client or the metrics library.

type Mode = { summary: string; load: () => Promise<{ main(args: string[]): Promise<number> }> };

/** Modes reached through a subcommand of `spiderpool`; `spiderpool-<name>` reaches the same ones by name. */
const SUBCOMMANDS: Record<string, Mode> = {
  agent: {
    summary: "run the per-node IPAM agent (unix-socket API for the plugin)",
    load: () => import("./src/cmd/agent.ts"),
  },
  controller: {
    summary: "run the cluster-wide controller (admission webhooks over HTTPS)",
    load: () => import("./src/cmd/controller.ts"),
  },
  gc: {
    summary: "run the controller's IP garbage collection now and print what it released",
    load: () => import("./src/cmd/gc.ts"),
  },
  version: {
    summary: "print the version and the supported CNI versions",
    load: () => import("./src/cmd/version.ts"),
  },
  install: {
    summary: "copy this build to the node and link it as the CNI plugins",
    load: () => import("./src/cmd/install.ts"),
  },
  crds: {
    summary: "print the six CustomResourceDefinitions as YAML",
    load: () => import("./src/cmd/crds.ts"),
  },
  init: {
    summary: "create the default coordinator, pools, subnets and Multus config (post-install job)",
    load: () => import("./src/cmd/init.ts"),
  },
};

/** Plugins reached through the name of the binary (a symlink in the CNI bin directory). */
const PLUGINS: Record<string, Mode["load"]> = {
  spiderpool: () => import("./src/plugins/spiderpool.ts"),
  coordinator: () => import("./src/plugins/coordinator.ts"),
  ifacer: () => import("./src/plugins/ifacer.ts"),
};

function usage(): string {
  const lines = [
    "usage: spiderpool <command> [flags]",
    "",
    "commands:",
    ...Object.entries(SUBCOMMANDS).map(([name, m]) => `  ${name.padEnd(12)}${m.summary}`),
    "  help        print this help",
    "",
    "As a CNI plugin, the binary is started through a symlink named after the plugin:",
    `  ${Object.keys(PLUGINS).join(", ")} (with CNI_COMMAND set in the environment).`,
  ];
  return lines.join("\n") + "\n";
}

/** Chooses the mode for a process started as `argv0` with `args`; returns the process exit code. */
export async function dispatch(argv0: string, args: string[], env: { get(k: string): string | undefined }) {
  const name = argv0.slice(argv0.lastIndexOf("/") + 1);
  const plugin = PLUGINS[name];
  // `spiderpool` is both the IPAM plugin and the command line: with CNI_COMMAND, or with no argument at all
  // (a CNI plugin run by hand prints its about text and exits 0, as the reference plugins do), it is the
  // plugin; with arguments and no CNI_COMMAND it is the command line.
  const asPlugin = name !== "spiderpool" || env.get("CNI_COMMAND") !== undefined || args.length === 0;
  if (plugin && asPlugin) return await (await plugin()).main(args);
  const byName = name.startsWith("spiderpool-") ? SUBCOMMANDS[name.slice("spiderpool-".length)] : undefined;
  if (byName) return await (await byName.load()).main(args);

  const [command, ...rest] = args;
  if (command === "help" || command === "--help" || command === "-h") {
    await Deno.stdout.write(new TextEncoder().encode(usage()));
    return 0;
  }
  const mode = command === undefined ? undefined : SUBCOMMANDS[command];
  if (!mode) {
    const what = command === undefined ? "no command given" : `unknown command "${command}"`;
    await Deno.stderr.write(new TextEncoder().encode(`spiderpool: ${what}\n\n${usage()}`));
    return 2;
  }
  return await (await mode.load()).main(rest);
}

/** The name this process was started under. Read from the kernel: `node:process` costs ≈ 10 ms to load. */
async function startName(): Promise<string> {
  try {
    return Deno.readTextFileSync("/proc/self/cmdline").split("\0")[0];
  } catch {
    return (await import("node:process")).argv0;
  }
}

if (import.meta.main) {
  Deno.exit(await dispatch(await startName(), Deno.args, Deno.env));
}
