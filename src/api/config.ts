// The global ConfigMap `spiderpool-conf` (key `conf.yml`, mounted as a file), as both the agent and the
// controller read it: one key table with the defaults of src/api/constants.ts, one parser, one loader.
// Unknown keys are ignored (upstream's file carries keys for other components); a known key of the wrong type
// is an error naming it, so a typo in a switch never silently flips a feature.

import { load as loadYaml } from "js-yaml";
import { CONFIG_DEFAULTS, DEFAULT_SOCKET_PATH, POD_RESOURCE_INJECT_DEFAULTS } from "./constants.ts";
import { labelValueProblem } from "./validate/names.ts";

/**
 * `podResourceInject`: the controller's `/mutate--v1-pod` webhook (SpiderMultusConfig resource injection), and
 * which namespaces' pods the API server sends it (`kubernetes.io/metadata.name` NotIn the excluded, In the
 * included when any are listed).
 */
export interface PodResourceInjectConfig {
  enabled: boolean;
  namespacesExclude: string[];
  namespacesInclude: string[];
}

/** The `conf.yml` keys this project honours (yaml keys exact). */
export interface SpiderpoolConfig {
  ipamUnixSocketPath: string;
  enableIPv4: boolean;
  enableIPv6: boolean;
  enableStatefulSet: boolean;
  enableKubevirtStaticIP: boolean;
  enableSpiderSubnet: boolean;
  enableAutoPoolForApplication: boolean;
  enableCleanOutdatedEndpoint: boolean;
  enableIPConflictDetection: boolean;
  enableGatewayDetection: boolean;
  enableValidatingResourcesDeletedWebhook: boolean;
  /**
   * Default "+N" of auto-pools. Read from `clusterSubnetDefaultFlexibleIPNumber` (what the chart writes) or
   * `clusterSubnetAutoPoolDefaultRedundantIPNumber` (what upstream's code reads); the first wins when both are
   * set (see the spec's Decisions).
   */
  clusterSubnetDefaultFlexibleIPNumber: number;
  tuneSysctlConfig: boolean;
  podResourceInject: PodResourceInjectConfig;
}

/** Where the ConfigMap is mounted in upstream's manifests. */
export const DEFAULT_CONFIG_PATH = "/tmp/spiderpool/config-map/conf.yml";

/** The upstream key that means the same as `clusterSubnetDefaultFlexibleIPNumber`. */
const REDUNDANT_IP_NUMBER_ALIAS = "clusterSubnetAutoPoolDefaultRedundantIPNumber";

/** A `conf.yml` that cannot be used; the message names the file and the key. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

export function defaultConfig(): SpiderpoolConfig {
  return {
    ipamUnixSocketPath: DEFAULT_SOCKET_PATH,
    enableIPv4: CONFIG_DEFAULTS.enableIPv4,
    enableIPv6: CONFIG_DEFAULTS.enableIPv6,
    enableStatefulSet: CONFIG_DEFAULTS.enableStatefulSet,
    enableKubevirtStaticIP: CONFIG_DEFAULTS.enableKubevirtStaticIP,
    enableSpiderSubnet: CONFIG_DEFAULTS.enableSpiderSubnet,
    enableAutoPoolForApplication: CONFIG_DEFAULTS.enableAutoPoolForApplication,
    enableCleanOutdatedEndpoint: CONFIG_DEFAULTS.enableCleanOutdatedEndpoint,
    enableIPConflictDetection: CONFIG_DEFAULTS.enableIPConflictDetection,
    enableGatewayDetection: CONFIG_DEFAULTS.enableGatewayDetection,
    enableValidatingResourcesDeletedWebhook: CONFIG_DEFAULTS.enableValidatingResourcesDeletedWebhook,
    clusterSubnetDefaultFlexibleIPNumber: CONFIG_DEFAULTS.clusterSubnetDefaultFlexibleIPNumber,
    tuneSysctlConfig: CONFIG_DEFAULTS.tuneSysctlConfig,
    podResourceInject: {
      enabled: POD_RESOURCE_INJECT_DEFAULTS.enabled,
      namespacesExclude: [...POD_RESOURCE_INJECT_DEFAULTS.namespacesExclude],
      namespacesInclude: [...POD_RESOURCE_INJECT_DEFAULTS.namespacesInclude],
    },
  };
}

/** The `podResourceInject` mapping; missing keys keep their defaults, a wrong type is named. */
function parsePodResourceInject(v: unknown, where: string): PodResourceInjectConfig {
  const out = defaultConfig().podResourceInject;
  if (v === undefined || v === null) return out;
  if (typeof v !== "object" || Array.isArray(v)) {
    throw new ConfigError(
      `${where}: podResourceInject must be a mapping {enabled, namespacesExclude, namespacesInclude}, got ${
        JSON.stringify(v)
      }`,
    );
  }
  const raw = v as Record<string, unknown>;
  if (raw.enabled !== undefined && raw.enabled !== null) {
    if (typeof raw.enabled !== "boolean") {
      throw new ConfigError(
        `${where}: podResourceInject.enabled must be a boolean, got ${JSON.stringify(raw.enabled)}`,
      );
    }
    out.enabled = raw.enabled;
  }
  for (const key of ["namespacesExclude", "namespacesInclude"] as const) {
    const list = raw[key];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) {
      throw new ConfigError(
        `${where}: podResourceInject.${key} must be a list of namespace names, got ${JSON.stringify(list)}`,
      );
    }
    list.forEach((ns, i) => {
      // The names go into a label selector on kubernetes.io/metadata.name, which the API server checks.
      const problem = typeof ns === "string" ? labelValueProblem(ns) : "it is not a string";
      if (problem || ns === "") {
        throw new ConfigError(
          `${where}: podResourceInject.${key}[${i}] = ${JSON.stringify(ns)} is not a namespace name${
            problem ? ` (${problem})` : ""
          }`,
        );
      }
    });
    out[key] = [...list as string[]];
  }
  return out;
}

/**
 * Parses the text of `conf.yml`.
 *
 * ```ts
 * parseConfig("enableIPv6: false\n").enableIPv6; // false
 * ```
 */
export function parseConfig(text: string, where = "conf.yml"): SpiderpoolConfig {
  // An empty file (or only comments) means all defaults; js-yaml refuses to load it.
  if (text.split("\n").every((line) => /^\s*(#.*)?$/.test(line))) return defaultConfig();
  let doc: unknown;
  try {
    doc = loadYaml(text);
  } catch (err) {
    throw new ConfigError(`${where} is not valid YAML: ${(err as Error).message}`);
  }
  const cfg = defaultConfig();
  if (doc === null || doc === undefined) return cfg;
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError(`${where} must be a YAML mapping of ConfigMap keys, got ${JSON.stringify(doc)}`);
  }
  const raw = { ...doc as Record<string, unknown> };
  if (
    raw.clusterSubnetDefaultFlexibleIPNumber === undefined ||
    raw.clusterSubnetDefaultFlexibleIPNumber === null
  ) {
    raw.clusterSubnetDefaultFlexibleIPNumber = raw[REDUNDANT_IP_NUMBER_ALIAS];
  }
  cfg.podResourceInject = parsePodResourceInject(raw.podResourceInject, where);
  const out = cfg as unknown as Record<string, unknown>;
  for (const [key, def] of Object.entries(cfg)) {
    if (key === "podResourceInject") continue;
    const v = raw[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== typeof def) {
      throw new ConfigError(`${where}: ${key} must be a ${typeof def}, got ${JSON.stringify(v)}`);
    }
    out[key] = v;
  }
  const n = cfg.clusterSubnetDefaultFlexibleIPNumber;
  if (!Number.isInteger(n) || n < 0) {
    throw new ConfigError(
      `${where}: clusterSubnetDefaultFlexibleIPNumber must be a whole number ≥ 0, got ${JSON.stringify(n)}`,
    );
  }
  return cfg;
}

/** Reads `conf.yml` from `path`; a missing file means all defaults (both daemons may run without it). */
export async function loadConfig(path: string): Promise<SpiderpoolConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return defaultConfig();
    throw new ConfigError(`cannot read ConfigMap file ${path}: ${(err as Error).message}`);
  }
  return parseConfig(text, path);
}
