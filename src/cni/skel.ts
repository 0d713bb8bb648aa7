// The CNI protocol, implemented once for all our plugins (like containernetworking's pkg/skel): read the
// environment and stdin, validate them, negotiate the version, call the plugin's handler for the command,
// and print the result (converted to the configuration's version) or the error JSON on stdout.
import { asCniError, CniError, ErrorCode } from "./errors.ts";
import { containerIdProblem, ifNameProblem, networkNameProblem } from "./names.ts";
import { convertResult, type NetConf, type Result } from "./types.ts";
import {
  compareVersions,
  CURRENT_CNI_VERSION,
  IMPLICIT_CNI_VERSION,
  parseVersion,
  SUPPORTED_CNI_VERSIONS,
} from "./version.ts";

export type Command = "ADD" | "DEL" | "CHECK" | "STATUS" | "GC" | "VERSION";

/** What a handler receives: the CNI_* environment and the decoded configuration. */
export interface CmdArgs {
  command: Command;
  containerId: string;
  netns: string;
  ifName: string;
  /** CNI_ARGS as received; see parseCniArgs. */
  args: string;
  /** CNI_PATH split on ":". */
  path: string[];
  /** The raw stdin text. */
  stdin: string;
  conf: NetConf;
}

/** A plugin: one handler per command. A missing handler makes that command a successful no-op. */
export interface PluginFuncs {
  add?: (args: CmdArgs) => Promise<Result>;
  del?: (args: CmdArgs) => Promise<void>;
  check?: (args: CmdArgs) => Promise<void>;
  status?: (args: CmdArgs) => Promise<void>;
  gc?: (args: CmdArgs) => Promise<void>;
  /** Versions this plugin accepts; all of SUPPORTED_CNI_VERSIONS by default. */
  version?: readonly string[];
  /** Printed on stderr when the binary is started without CNI_COMMAND, e.g. "CNI plugin spiderpool v0.1.0". */
  about?: string;
}

/** The process around the plugin; replaced in unit tests. */
export interface PluginIO {
  env: { get(key: string): string | undefined };
  readStdin(): Promise<string>;
  writeStdout(text: string): void;
  writeStderr(text: string): void;
}

const COMMANDS: readonly Command[] = ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"];

/** Which CNI_* variables each command requires (as pkg/skel; STATUS and GC need only CNI_COMMAND here). */
const REQUIRED: Record<Command, readonly string[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
  STATUS: [],
  GC: [],
  VERSION: [],
};

/** The oldest configuration version that may carry each command. */
const MIN_VERSION: Partial<Record<Command, string>> = { CHECK: "0.4.0", STATUS: "1.1.0", GC: "1.1.0" };

function writeAll(w: { writeSync(p: Uint8Array): number }, text: string): void {
  let buf = new TextEncoder().encode(text);
  while (buf.length > 0) buf = buf.subarray(w.writeSync(buf));
}

// Read synchronously: a plugin has nothing else to do meanwhile, and the asynchronous read hands the pipe to a
// thread of the runtime's blocking pool, which a short process pays to start (tests/bench/plugin.ts).
// deno-lint-ignore require-await
async function readAllStdin(): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = Deno.stdin.readSync(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  const all = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let off = 0;
  for (const c of chunks) all.set(c, off), off += c.length;
  return new TextDecoder().decode(all);
}

/** The real process: Deno.env, stdin, stdout, stderr. */
export function processIO(): PluginIO {
  return {
    env: Deno.env,
    readStdin: readAllStdin,
    writeStdout: (t) => writeAll(Deno.stdout, t),
    writeStderr: (t) => writeAll(Deno.stderr, t),
  };
}

/** Checks CNI_CONTAINERID as libcni does (code 3 when missing, 4 when invalid). */
export function validateContainerId(id: string): void {
  if (id === "") throw new CniError(ErrorCode.unknownContainer, "missing containerID (CNI_CONTAINERID)");
  const problem = containerIdProblem(id);
  if (problem) throw new CniError(ErrorCode.invalidEnvironment, `CNI_CONTAINERID "${id}" ${problem}`);
}

/** Checks CNI_IFNAME against the kernel's rules for interface names (code 4). */
export function validateIfName(name: string): void {
  const problem = ifNameProblem(name);
  if (problem) {
    throw new CniError(ErrorCode.invalidEnvironment, `interface name CNI_IFNAME="${name}" ${problem}`);
  }
}

/** Decodes stdin into a NetConf; code 6 for bad JSON, code 7 for a missing or invalid `name`. */
export function decodeConf(stdin: string): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(
      ErrorCode.decodingFailure,
      `error decoding the network configuration on stdin: ${(e as Error).message}`,
    );
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new CniError(ErrorCode.decodingFailure, "the network configuration on stdin must be a JSON object");
  }
  const conf = raw as Record<string, unknown>;
  if (conf.cniVersion !== undefined && typeof conf.cniVersion !== "string") {
    throw new CniError(
      ErrorCode.decodingFailure,
      `"cniVersion" must be a string, got ${JSON.stringify(conf.cniVersion)}`,
    );
  }
  if (conf.name !== undefined && typeof conf.name !== "string") {
    throw new CniError(
      ErrorCode.invalidNetworkConfig,
      `"name" must be a string, got ${JSON.stringify(conf.name)}`,
    );
  }
  if (typeof conf.name !== "string" || conf.name === "") {
    throw new CniError(
      ErrorCode.invalidNetworkConfig,
      `missing network name ("name" in the network configuration)`,
    );
  }
  const problem = networkNameProblem(conf.name);
  if (problem) {
    throw new CniError(ErrorCode.invalidNetworkConfig, `network name "${conf.name}" ${problem}`);
  }
  return { ...conf, cniVersion: (conf.cniVersion as string | undefined) || IMPLICIT_CNI_VERSION } as NetConf;
}

/** Rejects a configuration version the plugin does not accept, or one too old for the command (code 1). */
export function negotiateVersion(command: Command, confVersion: string, supported: readonly string[]): void {
  if (!parseVersion(confVersion)) {
    throw new CniError(
      ErrorCode.decodingFailure,
      `"cniVersion" "${confVersion}" is not a version (expected e.g. 1.0.0)`,
    );
  }
  if (!supported.includes(confVersion)) {
    throw new CniError(
      ErrorCode.incompatibleVersion,
      "incompatible CNI versions",
      `config is "${confVersion}", plugin supports [${supported.join(" ")}]`,
    );
  }
  const min = MIN_VERSION[command];
  if (min && compareVersions(confVersion, min) < 0) {
    throw new CniError(
      ErrorCode.incompatibleVersion,
      `config version does not allow ${command}`,
      `${command} needs cniVersion ${min} or newer; config is "${confVersion}"`,
    );
  }
}

/**
 * Runs one CNI invocation and returns the process exit code (0, or 1 after printing the error JSON).
 *
 * @example Deno.exit(await runPlugin({ add: cmdAdd, del: cmdDel }));
 */
export async function runPlugin(funcs: PluginFuncs, io: PluginIO = processIO()): Promise<number> {
  const supported = funcs.version ?? SUPPORTED_CNI_VERSIONS;
  let errorVersion = CURRENT_CNI_VERSION;
  try {
    const command = io.env.get("CNI_COMMAND") ?? "";
    if (command === "" && funcs.about) {
      io.writeStderr(`${funcs.about}\nCNI protocol versions supported: ${supported.join(", ")}\n`);
      return 0;
    }
    if (command === "") {
      throw new CniError(ErrorCode.invalidEnvironment, "required env variables [CNI_COMMAND] missing");
    }
    if (!COMMANDS.includes(command as Command)) {
      throw new CniError(
        ErrorCode.invalidEnvironment,
        `unknown CNI_COMMAND: ${command}`,
        `expected one of ${COMMANDS.join(", ")}`,
      );
    }
    const cmd = command as Command;
    if (cmd === "VERSION") {
      io.writeStdout(JSON.stringify({ cniVersion: CURRENT_CNI_VERSION, supportedVersions: [...supported] }));
      return 0;
    }
    const missing = REQUIRED[cmd].filter((k) => !io.env.get(k));
    if (missing.length > 0) {
      throw new CniError(
        ErrorCode.invalidEnvironment,
        `required env variables [${missing.join(",")}] missing`,
      );
    }
    const stdin = await io.readStdin().catch((e) => {
      throw new CniError(ErrorCode.ioFailure, `error reading from stdin: ${(e as Error).message}`);
    });
    const conf = decodeConf(stdin);
    if (supported.includes(conf.cniVersion)) errorVersion = conf.cniVersion;
    const args: CmdArgs = {
      command: cmd,
      containerId: io.env.get("CNI_CONTAINERID") ?? "",
      netns: io.env.get("CNI_NETNS") ?? "",
      ifName: io.env.get("CNI_IFNAME") ?? "",
      args: io.env.get("CNI_ARGS") ?? "",
      path: (io.env.get("CNI_PATH") ?? "").split(":").filter((p) => p !== ""),
      stdin,
      conf,
    };
    if (cmd === "ADD" || cmd === "DEL" || cmd === "CHECK") {
      validateContainerId(args.containerId);
      validateIfName(args.ifName);
    }
    negotiateVersion(cmd, conf.cniVersion, supported);
    switch (cmd) {
      case "ADD": {
        if (!funcs.add) throw new CniError(ErrorCode.internal, "this plugin does not implement ADD");
        const result = await funcs.add(args);
        io.writeStdout(JSON.stringify(convertResult(result, conf.cniVersion)));
        return 0;
      }
      case "DEL":
        await funcs.del?.(args);
        return 0;
      case "CHECK":
        await funcs.check?.(args);
        return 0;
      case "STATUS":
        await funcs.status?.(args);
        return 0;
      case "GC":
        await funcs.gc?.(args);
        return 0;
    }
  } catch (e) {
    io.writeStdout(JSON.stringify(asCniError(e).toJSON(errorVersion)));
    return 1;
  }
}
