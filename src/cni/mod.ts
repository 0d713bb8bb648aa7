// The CNI protocol layer in one import: dispatcher, errors, data model, CNI_ARGS, versions and the file log.
// Plugins call runPlugin with their handlers; everything that the CNI specification fixes lives here.
export { type CmdArgs, type Command, type PluginFuncs, type PluginIO, processIO, runPlugin } from "./skel.ts";
export { asCniError, CniError, ErrorCode } from "./errors.ts";
export {
  convertResult,
  type DNS,
  type Interface,
  type IPConfig,
  type NetConf,
  type Result,
  type Route,
  toCurrentResult,
} from "./types.ts";
export { type CniArgs, parseCniArgs } from "./args.ts";
export { CURRENT_CNI_VERSION, SUPPORTED_CNI_VERSIONS } from "./version.ts";
export { FileLogger, type FileLogOptions, LOG_LEVELS, type LogLevel } from "./log.ts";
