// The agent's view of the global ConfigMap `spiderpool-conf`: the shared loader of src/api/config.ts under the
// names the agent has always used.

import { defaultConfig, loadConfig, parseConfig, type SpiderpoolConfig } from "../api/config.ts";

/** The ConfigMap keys the agent reads (the agent ignores the controller-only ones). */
export type AgentConfig = SpiderpoolConfig;

export const defaultAgentConfig: () => AgentConfig = defaultConfig;
export const parseAgentConfig: (text: string, where?: string) => AgentConfig = parseConfig;
export const loadAgentConfig: (path: string) => Promise<AgentConfig> = loadConfig;
