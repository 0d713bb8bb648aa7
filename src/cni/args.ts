// CNI_ARGS: the runtime's "K=V;K=V" string. Kubernetes runtimes pass the pod identity here
// (K8S_POD_NAME, K8S_POD_NAMESPACE, K8S_POD_UID, K8S_POD_INFRA_CONTAINER_ID) and users may pass `IP`.
import { CniError, ErrorCode } from "./errors.ts";
import { isIP } from "../ip/address.ts";

/** The keys we read; unknown keys are ignored (Multus and runtimes add their own). */
export interface CniArgs {
  K8S_POD_NAME?: string;
  K8S_POD_NAMESPACE?: string;
  K8S_POD_UID?: string;
  K8S_POD_INFRA_CONTAINER_ID?: string;
  /** Requested address(es), comma separated as upstream tooling writes them. */
  IP?: string;
  /** `IgnoreUnknown=1|true`: recorded for completeness; unknown keys are ignored either way. */
  IgnoreUnknown?: boolean;
}

const KNOWN = new Set([
  "K8S_POD_NAME",
  "K8S_POD_NAMESPACE",
  "K8S_POD_UID",
  "K8S_POD_INFRA_CONTAINER_ID",
  "IP",
]);

function parseBool(key: string, value: string): boolean {
  if (value === "1" || value.toLowerCase() === "true") return true;
  if (value === "0" || value.toLowerCase() === "false") return false;
  throw new CniError(
    ErrorCode.invalidEnvironment,
    `CNI_ARGS: ${key}="${value}" is not a boolean; use 1, true, 0 or false`,
  );
}

/**
 * Parses CNI_ARGS. Throws CniError code 4 for a pair without "=", a bad IgnoreUnknown value or an `IP`
 * value that is not an IPv4/IPv6 address.
 *
 * @example parseCniArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0").K8S_POD_NAME // "web-0"
 */
export function parseCniArgs(text: string | undefined): CniArgs {
  const out: CniArgs = {};
  if (!text) return out;
  for (const pair of text.split(";")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) {
      throw new CniError(
        ErrorCode.invalidEnvironment,
        `CNI_ARGS: invalid pair "${pair}"; expected KEY=VALUE pairs separated by ";"`,
      );
    }
    const key = pair.slice(0, eq), value = pair.slice(eq + 1);
    if (key === "IgnoreUnknown") {
      out.IgnoreUnknown = parseBool(key, value);
    } else if (key === "IP") {
      for (const ip of value.split(",")) {
        if (!isIP(ip.trim())) {
          throw new CniError(
            ErrorCode.invalidEnvironment,
            `CNI_ARGS: IP="${value}" is not an IP address; expected e.g. IP=192.0.2.10 or IP=2001:db8::10`,
          );
        }
      }
      out.IP = value;
    } else if (KNOWN.has(key)) {
      out[key as Exclude<keyof CniArgs, "IgnoreUnknown" | "IP">] = value;
    }
  }
  return out;
}
