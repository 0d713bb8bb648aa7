// CNI error codes and the error a plugin prints on stdout (CNI SPEC "Error" section). A handler throws
// CniError to choose the code; anything else thrown becomes code 999 (internal) in the dispatcher.

/** Well-known error codes of the CNI specification; 100 and above are plugin specific. */
export const ErrorCode = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnvironment: 4,
  ioFailure: 5,
  decodingFailure: 6,
  invalidNetworkConfig: 7,
  tryAgainLater: 11,
  pluginNotAvailable: 50,
  limitedConnectivity: 51,
  /** First plugin-specific code; the spiderpool plugin uses it for errors reported by the agent. */
  plugin: 100,
  internal: 999,
} as const;

/** An error with a CNI code; `details` is optional longer text for the operator. */
export class CniError extends Error {
  readonly code: number;
  readonly details: string;

  constructor(code: number, msg: string, details = "") {
    super(msg);
    this.name = "CniError";
    this.code = code;
    this.details = details;
  }

  /** The JSON object printed on stdout: `{"cniVersion","code","msg","details"}` (details omitted when empty). */
  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    const out: { cniVersion: string; code: number; msg: string; details?: string } = {
      cniVersion,
      code: this.code,
      msg: this.message,
    };
    if (this.details !== "") out.details = this.details;
    return out;
  }
}

/** Wraps anything thrown by a handler: CniError passes through, other errors become code 999. */
export function asCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  if (e instanceof Error) return new CniError(ErrorCode.internal, e.message);
  return new CniError(ErrorCode.internal, String(e));
}
