// The coordinator's settings: the keys of its CNI configuration (the NetworkAttachmentDefinition) merged with
// the agent's answer to GET /v1/coordinator/config (the SpiderCoordinator, with the pod's default-route-NIC
// annotation applied). A value given in the CNI configuration wins; an absent one comes from the agent, then
// from the documented default. Bad values are rejected with the key, the value and the fix.

import type { CoordinatorConfig } from "../agentapi/models.ts";
import { COORDINATOR_DEFAULTS, KIND } from "../api/constants.ts";
import { hostCIDR, normaliseCoordinatorSpec } from "../api/defaults.ts";
import type { CoordinatorSpec } from "../api/types.ts";
import { checkCoordinatorSpec } from "../api/validate/coordinator.ts";
import { Problems } from "../api/validate/common.ts";
import { interfaceNameProblem } from "../api/validate/names.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { LOG_LEVELS, type LogLevel } from "../cni/log.ts";
import type { NetConf } from "../cni/types.ts";
import { type Family, formatCIDR, parseCIDR, parseIP } from "../ip/mod.ts";
import { DEFAULT_AGENT_SOCKET } from "../agentapi/models.ts";

export type Mode = "auto" | "underlay" | "overlay" | "disable";

export interface PolicyRoute {
  family: Family;
  dst: string;
  gw: string;
}

export interface LogSettings {
  level: LogLevel;
  path: string;
  maxSizeMB: number;
  maxAgeDays: number;
  maxCount: number;
}

/** Everything the planner and the plugin need, merged and checked. CIDRs are canonical. */
export interface CoordinatorSettings {
  mode: Mode;
  /** The pod's first NIC (the one the main CNI of the pod sets up); `eth0` by default. */
  podDefaultCniNic: string;
  overlayPodCIDR: string[];
  serviceCIDR: string[];
  hijackCIDR: string[];
  policyRoutes: PolicyRoute[];
  /** "" = keep the MAC; else two bytes "0a:1b". */
  podMACPrefix: string;
  tunePodRoutes: boolean;
  /** "" = keep the default route where the first NIC put it. */
  podDefaultRouteNic: string;
  hostRuleTable: number;
  /** Negative = leave the pod's rp_filter alone. */
  podRPFilter: number;
  /** 0 = leave the queue length alone. */
  txQueueLen: number;
  /** "" = no address on veth0. */
  vethLinkAddress: string;
  vethMTU: number;
  /** The agent's socket (our addition: upstream always uses the default path). */
  agentSocket: string;
  log: LogSettings;
}

/** The CNI configuration keys of the plugin as received (unknown keys are ignored, as upstream does). */
export interface CoordinatorNetConf extends NetConf {
  mode?: unknown;
  podDefaultCniNic?: unknown;
  overlayPodCIDR?: unknown;
  serviceCIDR?: unknown;
  hijackCIDR?: unknown;
  policyRoutes?: unknown;
  podMACPrefix?: unknown;
  tunePodRoutes?: unknown;
  podDefaultRouteNic?: unknown;
  hostRuleTable?: unknown;
  podRPFilter?: unknown;
  txQueueLen?: unknown;
  vethLinkAddress?: unknown;
  vethMTU?: unknown;
  ipamUnixSocketPath?: unknown;
  logOptions?: unknown;
}

export const DEFAULT_LOG_PATH = "/var/log/spidernet/coordinator.log";
const MODES: Record<string, Mode> = {
  auto: "auto",
  underlay: "underlay",
  overlay: "overlay",
  disable: "disable",
  disabled: "disable",
};

function badConf(key: string, expected: string, got: unknown): CniError {
  return new CniError(
    ErrorCode.invalidNetworkConfig,
    `invalid coordinator configuration "${key}": expected ${expected}, got ${JSON.stringify(got)}; ` +
      `fix it in the network configuration (SpiderMultusConfig or NetworkAttachmentDefinition)`,
  );
}

function badAgent(field: string, problem: string): CniError {
  return new CniError(
    ErrorCode.invalidNetworkConfig,
    `the ${KIND.coordinator} served by spiderpool-agent has an invalid ${field}: ${problem}; fix the ${KIND.coordinator}`,
  );
}

/** Reads the plugin's own keys, type-checked; absent keys stay undefined. */
export function readConf(conf: CoordinatorNetConf): Partial<CoordinatorSpec> & {
  mode?: Mode;
  podDefaultCniNic?: string;
  overlayPodCIDR?: string[];
  serviceCIDR?: string[];
  podDefaultRouteNic?: string;
  agentSocket?: string;
  log: LogSettings;
} {
  const str = (key: keyof CoordinatorNetConf): string | undefined => {
    const v = conf[key];
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v !== "string") throw badConf(String(key), "a string", v);
    return v;
  };
  const int = (key: keyof CoordinatorNetConf): number | undefined => {
    const v = conf[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v)) throw badConf(String(key), "a whole number", v);
    return v;
  };
  const list = (key: keyof CoordinatorNetConf): string[] | undefined => {
    const v = conf[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
      throw badConf(String(key), 'a list of CIDRs, e.g. ["192.0.2.0/24"]', v);
    }
    return v.length === 0 ? undefined : v.map((x) => x.trim());
  };
  const out: ReturnType<typeof readConf> = { log: readLog(conf.logOptions) };
  const mode = str("mode");
  if (mode !== undefined) {
    out.mode = MODES[mode];
    if (!out.mode) throw badConf("mode", "one of auto, underlay, overlay, disable", mode);
  }
  out.podDefaultCniNic = str("podDefaultCniNic");
  out.overlayPodCIDR = list("overlayPodCIDR");
  out.serviceCIDR = list("serviceCIDR");
  out.hijackCIDR = list("hijackCIDR");
  const routes = conf.policyRoutes;
  if (routes !== undefined && routes !== null) {
    if (
      !Array.isArray(routes) ||
      routes.some((r) =>
        typeof r !== "object" || r === null || typeof r.dst !== "string" || typeof r.gw !== "string"
      )
    ) {
      throw badConf("policyRoutes", 'a list of {"dst": CIDR, "gw": IP}', routes);
    }
    if (routes.length > 0) out.policyRoutes = routes.map((r) => ({ dst: r.dst.trim(), gw: r.gw.trim() }));
  }
  const prefix = str("podMACPrefix");
  if (prefix !== undefined) out.podMACPrefix = prefix.replace("-", ":").toLowerCase();
  const tune = conf.tunePodRoutes;
  if (tune !== undefined && tune !== null) {
    if (typeof tune !== "boolean") throw badConf("tunePodRoutes", "true or false", tune);
    out.tunePodRoutes = tune;
  }
  out.podDefaultRouteNic = str("podDefaultRouteNic");
  out.hostRuleTable = int("hostRuleTable");
  out.podRPFilter = int("podRPFilter");
  out.txQueueLen = int("txQueueLen");
  out.vethLinkAddress = str("vethLinkAddress");
  out.vethMTU = int("vethMTU");
  const socket = str("ipamUnixSocketPath");
  if (socket !== undefined && !socket.startsWith("/")) {
    throw badConf("ipamUnixSocketPath", "an absolute path", socket);
  }
  out.agentSocket = socket;
  return out;
}

function readLog(raw: unknown): LogSettings {
  const log: LogSettings = {
    level: "info",
    path: DEFAULT_LOG_PATH,
    maxSizeMB: 100,
    maxAgeDays: 30,
    maxCount: 10,
  };
  if (raw === undefined || raw === null) return log;
  if (typeof raw !== "object" || Array.isArray(raw)) throw badConf("logOptions", "an object", raw);
  const o = raw as Record<string, unknown>;
  if (o.logLevel !== undefined && o.logLevel !== "") {
    const level = typeof o.logLevel === "string" ? LOG_LEVELS[o.logLevel.toLowerCase()] : undefined;
    if (!level) {
      throw badConf("logOptions.logLevel", `one of ${Object.keys(LOG_LEVELS).join(", ")}`, o.logLevel);
    }
    log.level = level;
  }
  if (o.logFile !== undefined && o.logFile !== "") {
    if (typeof o.logFile !== "string") throw badConf("logOptions.logFile", "a path", o.logFile);
    log.path = o.logFile;
  }
  for (
    const [key, field] of [["logMaxSize", "maxSizeMB"], ["logMaxAge", "maxAgeDays"], [
      "logMaxCount",
      "maxCount",
    ]] as const
  ) {
    const v = o[key];
    if (v === undefined || v === 0) continue;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw badConf(`logOptions.${key}`, "a whole number ≥ 0", v);
    }
    log[field] = v;
  }
  return log;
}

/** Canonical CIDRs of `list`; `where` names the source in errors. */
function cidrs(list: readonly string[], where: (i: number) => string): string[] {
  return [
    ...new Set(list.map((text, i) => {
      try {
        // A bare address is one host, as the SpiderCoordinator webhook normalises it.
        return formatCIDR(parseCIDR(hostCIDR(text), { canonical: false }));
      } catch (e) {
        throw new CniError(ErrorCode.invalidNetworkConfig, `${where(i)}: ${(e as Error).message}`);
      }
    })),
  ];
}

/**
 * Merges the CNI configuration with the agent's answer (`agent` may be undefined when the agent could not be
 * asked and the configuration names every CIDR itself). Throws CniError code 7 naming the key.
 */
export function mergeSettings(
  conf: CoordinatorNetConf,
  agent: CoordinatorConfig | undefined,
): CoordinatorSettings {
  const c = readConf(conf);
  const a = agent ??
    { mode: COORDINATOR_DEFAULTS.mode, overlayPodCIDR: [], serviceCIDR: [], tunePodRoutes: true };
  const agentMode = MODES[a.mode ?? ""];
  if (!agentMode) throw badAgent("spec.mode", `${JSON.stringify(a.mode)} is not a coordinator mode`);
  const positive = (v: number | undefined) => v !== undefined && v > 0 ? v : undefined;
  const spec: CoordinatorSpec = {
    hijackCIDR: c.hijackCIDR ?? a.hijackCIDR ?? [],
    policyRoutes: c.policyRoutes ?? (a.policyRoutes ?? []).map((r) => ({ dst: r.dst ?? "", gw: r.gw ?? "" })),
    podMACPrefix: c.podMACPrefix ?? a.podMACPrefix ?? "",
    podDefaultRouteNIC: c.podDefaultRouteNic ?? a.podDefaultRouteNIC ?? "",
    hostRuleTable: c.hostRuleTable ?? positive(a.hostRuleTable) ?? COORDINATOR_DEFAULTS.hostRuleTable,
    podRPFilter: c.podRPFilter ?? a.podRPFilter ?? COORDINATOR_DEFAULTS.podRPFilter,
    txQueueLen: c.txQueueLen ?? a.txQueueLen ?? COORDINATOR_DEFAULTS.txQueueLen,
    vethLinkAddress: c.vethLinkAddress ?? a.vethLinkAddress ?? "",
    vethMTU: c.vethMTU ?? positive(a.vethMTU) ?? COORDINATOR_DEFAULTS.vethMTU,
  };
  // One set of rules for the CRD and the plugin: the webhook's defaulting and checks, with the CNI key names.
  normaliseCoordinatorSpec(spec);
  const p = new Problems("network configuration", conf.name);
  checkCoordinatorSpec(p, "coordinator", spec, false);
  if (p.errors.length > 0) {
    const msg = p.errors.map((e) =>
      e.message.replaceAll("coordinator.podDefaultRouteNIC", "podDefaultRouteNic").replaceAll(
        "coordinator.",
        "",
      )
    ).join("; ");
    throw new CniError(
      ErrorCode.invalidNetworkConfig,
      `${msg} (the value comes from the CNI configuration, else from the ${KIND.coordinator})`,
    );
  }
  if (spec.vethLinkAddress) {
    try {
      parseIP(spec.vethLinkAddress, 4);
    } catch {
      throw badConf("vethLinkAddress", "an IPv4 address (it is set as a /32 on veth0)", spec.vethLinkAddress);
    }
  }
  const firstNic = c.podDefaultCniNic ?? "eth0";
  const nicProblem = interfaceNameProblem(firstNic);
  if (nicProblem) throw badConf("podDefaultCniNic", "an interface name", firstNic);
  return {
    mode: c.mode ?? agentMode,
    podDefaultCniNic: firstNic,
    overlayPodCIDR: cidrs(c.overlayPodCIDR ?? a.overlayPodCIDR ?? [], (i) => `overlayPodCIDR[${i}]`),
    serviceCIDR: cidrs(c.serviceCIDR ?? a.serviceCIDR ?? [], (i) => `serviceCIDR[${i}]`),
    hijackCIDR: cidrs(spec.hijackCIDR!, (i) => `hijackCIDR[${i}]`),
    policyRoutes: spec.policyRoutes!.map((r) => {
      const dst = cidrs([r.dst], () => "policyRoutes dst")[0];
      return { family: dst.includes(":") ? 6 : 4, dst, gw: r.gw } as PolicyRoute;
    }),
    podMACPrefix: spec.podMACPrefix!,
    tunePodRoutes: c.tunePodRoutes ?? a.tunePodRoutes ?? COORDINATOR_DEFAULTS.tunePodRoutes,
    podDefaultRouteNic: spec.podDefaultRouteNIC!,
    hostRuleTable: spec.hostRuleTable!,
    podRPFilter: spec.podRPFilter!,
    txQueueLen: spec.txQueueLen!,
    vethLinkAddress: spec.vethLinkAddress!,
    vethMTU: spec.vethMTU!,
    agentSocket: c.agentSocket ?? DEFAULT_AGENT_SOCKET,
    log: c.log,
  };
}
