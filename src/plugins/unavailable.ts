// The plugin names this release answers to but does not implement yet (`coordinator`, `ifacer`). They speak
// the CNI protocol (VERSION, errors) so a runtime gets a clear CNI error instead of a usage text; DEL succeeds
// because an ADD through them never set anything up.
import { CniError, ErrorCode } from "../cni/errors.ts";
import { runPlugin } from "../cni/skel.ts";
import { VERSION } from "../version.ts";

function notAvailable(name: string): CniError {
  return new CniError(
    ErrorCode.plugin,
    `the ${name} plugin is not available in spiderpool ${VERSION}; remove "${name}" from the network's plugin list`,
  );
}

/** The `main` of a plugin that is not available in this release. */
export function unavailablePlugin(name: string): (args: string[]) => Promise<number> {
  return () =>
    runPlugin({
      add: () => Promise.reject(notAvailable(name)),
      check: () => Promise.reject(notAvailable(name)),
      status: () => Promise.reject(new CniError(ErrorCode.pluginNotAvailable, notAvailable(name).message)),
      del: () => Promise.resolve(),
      about: `CNI plugin ${name} (spiderpool ${VERSION}, not available in this release)`,
    });
}
