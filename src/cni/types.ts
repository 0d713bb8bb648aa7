// The CNI data model: network configuration as received on stdin, and the result in its current (1.x) shape
// with conversion to and from the 0.3.x/0.4.0 shape (whose `ips` carry a `version` field).
import { CniError, ErrorCode } from "./errors.ts";
import {
  compareVersions,
  CURRENT_CNI_VERSION,
  isSupportedVersion,
  SUPPORTED_CNI_VERSIONS,
} from "./version.ts";

/** The common part of a plugin's network configuration; plugin-specific keys stay on the object. */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  ipam?: Record<string, unknown>;
  prevResult?: Record<string, unknown>;
  runtimeConfig?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface IPConfig {
  /** Index into `interfaces`; omitted by IPAM plugins. */
  interface?: number;
  /** "IP/prefix" */
  address: string;
  gateway?: string;
}

export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A result in the current (1.x) format. */
export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IPConfig[];
  routes?: Route[];
  dns?: DNS;
}

/** A 0.3.x/0.4.0 result: as 1.x, but every ip says its family. */
export interface LegacyIPConfig extends IPConfig {
  version: "4" | "6";
}
export interface LegacyResult extends Omit<Result, "ips"> {
  ips?: LegacyIPConfig[];
}

const ROUTE_FIELDS_1_1 = ["mtu", "advmss", "priority", "table", "scope"] as const;
const INTERFACE_FIELDS_1_1 = ["mtu", "socketPath", "pciID"] as const;

function isEmptyDNS(dns: DNS | undefined): boolean {
  return !dns || Object.values(dns).every((v) => v === undefined || (Array.isArray(v) && v.length === 0));
}

/**
 * Converts a current result to the format of `version` (one of the supported versions): 1.x keeps the
 * shape; 0.3.x/0.4.0 adds `version` to every ip and drops the fields introduced in 1.1.0. An empty DNS is
 * omitted in every version.
 */
export function convertResult(result: Result, version: string): Result | LegacyResult {
  if (!isSupportedVersion(version)) {
    throw new CniError(ErrorCode.incompatibleVersion, `cannot convert a result to CNI version "${version}"`);
  }
  const out: Result | LegacyResult = { cniVersion: version };
  const legacy = compareVersions(version, "1.0.0") < 0;
  if (result.interfaces) {
    out.interfaces = result.interfaces.map((i) => {
      const copy = { ...i };
      if (legacy) { for (const k of INTERFACE_FIELDS_1_1) delete copy[k]; }
      return copy;
    });
  }
  if (result.ips) {
    out.ips = result.ips.map((ip) => {
      const copy = { ...ip };
      return legacy ? { ...copy, version: ip.address.includes(":") ? "6" : "4" } as LegacyIPConfig : copy;
    });
  }
  if (result.routes) {
    out.routes = result.routes.map((r) => {
      const copy = { ...r };
      if (legacy) { for (const k of ROUTE_FIELDS_1_1) delete copy[k]; }
      return copy;
    });
  }
  if (!isEmptyDNS(result.dns)) out.dns = { ...result.dns };
  return out;
}

/**
 * Reads a result of any supported version (e.g. a `prevResult`) into the current format. Throws CniError
 * code 6 when it is not a result, code 1 when its version is not supported.
 */
export function toCurrentResult(raw: unknown): Result {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new CniError(
      ErrorCode.decodingFailure,
      `a CNI result must be a JSON object, got ${JSON.stringify(raw)}`,
    );
  }
  const r = raw as Record<string, unknown>;
  const version = typeof r.cniVersion === "string" ? r.cniVersion : "";
  if (!isSupportedVersion(version)) {
    throw new CniError(
      ErrorCode.incompatibleVersion,
      `unsupported result version "${version}"`,
      `supported: ${SUPPORTED_CNI_VERSIONS.join(", ")}`,
    );
  }
  const out: Result = { cniVersion: CURRENT_CNI_VERSION };
  if (Array.isArray(r.interfaces)) out.interfaces = r.interfaces.map((i) => ({ ...i }) as Interface);
  if (Array.isArray(r.ips)) {
    out.ips = r.ips.map((ip) => {
      const { version: _family, ...rest } = ip as LegacyIPConfig;
      return rest as IPConfig;
    });
  }
  if (Array.isArray(r.routes)) out.routes = r.routes.map((x) => ({ ...x }) as Route);
  if (typeof r.dns === "object" && r.dns !== null && !isEmptyDNS(r.dns as DNS)) {
    out.dns = { ...(r.dns as DNS) };
  }
  return out;
}
