// The agent's view of the global ConfigMap `spiderpool-conf` (key `conf.yml`, mounted as a file): the switches
// the IPAM server honours, with the defaults from src/api/constants.ts when the file or a key is absent.

import { loadYaml } from "@kubernetes/client-node";
import { CONFIG_DEFAULTS } from "../api/constants.ts";

/** The ConfigMap keys the agent reads (yaml keys exact). */
export interface AgentConfig {
  ipamUnixSocketPath: string;
  enableIPv4: boolean;
  enableIPv6: boolean;
  enableStatefulSet: boolean;
  enableKubevirtStaticIP: boolean;
  enableSpiderSubnet: boolean;
  enableAutoPoolForApplication: boolean;
  enableIPConflictDetection: boolean;
  enableGatewayDetection: boolean;
  tuneSysctlConfig: boolean;
}

export function defaultAgentConfig(): AgentConfig {
  return {
    ipamUnixSocketPath: CONFIG_DEFAULTS.ipamUnixSocketPath,
    enableIPv4: CONFIG_DEFAULTS.enableIPv4,
    enableIPv6: CONFIG_DEFAULTS.enableIPv6,
    enableStatefulSet: CONFIG_DEFAULTS.enableStatefulSet,
    enableKubevirtStaticIP: CONFIG_DEFAULTS.enableKubevirtStaticIP,
    enableSpiderSubnet: CONFIG_DEFAULTS.enableSpiderSubnet,
    enableAutoPoolForApplication: CONFIG_DEFAULTS.enableAutoPoolForApplication,
    enableIPConflictDetection: CONFIG_DEFAULTS.enableIPConflictDetection,
    enableGatewayDetection: CONFIG_DEFAULTS.enableGatewayDetection,
    tuneSysctlConfig: CONFIG_DEFAULTS.tuneSysctlConfig,
  };
}

/** Parses the text of `conf.yml`; unknown keys are ignored, a key of the wrong type is an error naming it. */
export function parseAgentConfig(text: string, where = "conf.yml"): AgentConfig {
  let doc: unknown;
  try {
    doc = loadYaml(text);
  } catch (err) {
    throw new Error(`${where} is not valid YAML: ${(err as Error).message}`);
  }
  const cfg = defaultAgentConfig();
  if (doc === null || doc === undefined) return cfg;
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new Error(`${where} must be a YAML mapping of ConfigMap keys, got ${JSON.stringify(doc)}`);
  }
  const raw = doc as Record<string, unknown>;
  const out = cfg as unknown as Record<string, unknown>;
  for (const [key, def] of Object.entries(cfg)) {
    const v = raw[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== typeof def) {
      throw new Error(`${where}: ${key} must be a ${typeof def}, got ${JSON.stringify(v)}`);
    }
    out[key] = v;
  }
  return cfg;
}

/** Reads `conf.yml` from `path`; a missing file means all defaults (the agent may run without the ConfigMap). */
export async function loadAgentConfig(path: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return defaultAgentConfig();
    throw new Error(`cannot read ConfigMap file ${path}: ${(err as Error).message}`);
  }
  return parseAgentConfig(text, path);
}
