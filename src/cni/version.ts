// CNI specification versions this project speaks, and the comparison rules used by version negotiation.
// A network configuration without `cniVersion` is 0.1.0 (as in libcni), which we do not support.

/** Every CNI version our plugins accept, oldest first. */
export const SUPPORTED_CNI_VERSIONS: readonly string[] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/** The newest version: what VERSION reports and what results are built in before conversion. */
export const CURRENT_CNI_VERSION = "1.1.0";

/** The version a configuration without `cniVersion` is taken to have. */
export const IMPLICIT_CNI_VERSION = "0.1.0";

/** Parses "major.minor.patch"; undefined when the text is not a version. */
export function parseVersion(v: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Negative, zero or positive as `a` is older than, equal to or newer than `b`; both must parse. */
export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a), y = parseVersion(b);
  if (!x || !y) throw new Error(`not a CNI version: "${!x ? a : b}" (expected major.minor.patch)`);
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
}

export function isSupportedVersion(v: string): boolean {
  return SUPPORTED_CNI_VERSIONS.includes(v);
}

/** The answer to CNI_COMMAND=VERSION. */
export function versionInfo(): { cniVersion: string; supportedVersions: string[] } {
  return { cniVersion: CURRENT_CNI_VERSION, supportedVersions: [...SUPPORTED_CNI_VERSIONS] };
}
