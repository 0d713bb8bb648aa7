// The IP GC's settings: every switch of spec §6 under its upstream environment name and default, the
// ConfigMap flags it honours, and the grace for records no SpiderEndpoint confirms yet. A malformed value is a
// start-up error naming the variable, the value and what is accepted.

import { parseGoBool } from "../../api/annotations.ts";
import { CONFIG_DEFAULTS } from "../../api/constants.ts";
import type { GcSwitches } from "../../ipam/gc.ts";

export interface GcConfig extends GcSwitches {
  /** `SPIDERPOOL_GC_IP_ENABLED`: master switch. */
  enabled: boolean;
  /** `SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION`: scan-all period on the leader. */
  intervalMs: number;
  /** `SPIDERPOOL_GC_TRACE_POD_GAP_DURATION`: sleep of the trace loop. */
  traceGapMs: number;
  /** `SPIDERPOOL_GC_IP_WORKER_NUM`: release workers of the trace loop. */
  workers: number;
  /** `SPIDERPOOL_GC_CHANNEL_BUFFER`: traced entries waiting for a worker. */
  channelBuffer: number;
  /** `SPIDERPOOL_GC_MAX_PODENTRY_DB_CAP`: traced pods at most. */
  maxTraced: number;
  /** `SPIDERPOOL_GC_PODENTRY_MAX_RETRIES`: requeues of a traced pod whose release failed. */
  maxRetries: number;
  /** `SPIDERPOOL_GC_SIGNAL_TIMEOUT_DURATION`: how long the trace loop waits for room in the worker queue. */
  signalTimeoutMs: number;
  /** `SPIDERPOOL_GC_HTTP_REQUEST_TIME_GAP`: pause after a scan-all requested over HTTP. */
  requestGapMs: number;
  /**
   * `SPIDERPOOL_GC_UNCONFIRMED_RECORD_GRACE_DURATION` (this project): how long a pool record that no
   * SpiderEndpoint lists must stay unconfirmed before the GC may release it. An ADD writes its records first
   * and its endpoint after; the agent gives an ADD 60 s and each API request 30 s, so the endpoint write of a
   * live ADD starts at most ≈ 90 s after its records; 180 s is twice that.
   */
  unconfirmedGraceMs: number;
  /** ConfigMap `enableCleanOutdatedEndpoint`. */
  cleanOutdatedEndpoint: boolean;
}

/** A GC setting that cannot be used. */
export class GcConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GcConfigError";
  }
}

type Spec =
  | { key: keyof GcConfig; env: string; kind: "bool"; def: boolean }
  | { key: keyof GcConfig; env: string; kind: "seconds" | "count"; def: number; min: number };

/** Upstream's environment variables, their defaults (upstream code / Helm) and where they land. */
export const GC_ENV: readonly Spec[] = [
  { key: "enabled", env: "SPIDERPOOL_GC_IP_ENABLED", kind: "bool", def: true },
  {
    key: "terminatingOnReadyNode",
    env: "SPIDERPOOL_GC_STATELESS_TERMINATING_POD_ON_READY_NODE_ENABLED",
    kind: "bool",
    def: true,
  },
  {
    key: "terminatingOnNotReadyNode",
    env: "SPIDERPOOL_GC_STATELESS_TERMINATING_POD_ON_NOT_READY_NODE_ENABLED",
    kind: "bool",
    def: true,
  },
  {
    key: "runningOnEmptyPodIPs",
    env: "SPIDERPOOL_GC_ENABLE_STATELESS_RUNNING_POD_ON_EMPTY_POD_STATUS_IPS",
    kind: "bool",
    def: false,
  },
  { key: "intervalMs", env: "SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION", kind: "seconds", def: 600, min: 1 },
  {
    key: "additionalGraceDelayMs",
    env: "SPIDERPOOL_GC_ADDITIONAL_GRACE_DELAY",
    kind: "seconds",
    def: 0,
    min: 0,
  },
  { key: "traceGapMs", env: "SPIDERPOOL_GC_TRACE_POD_GAP_DURATION", kind: "seconds", def: 5, min: 0.01 },
  { key: "workers", env: "SPIDERPOOL_GC_IP_WORKER_NUM", kind: "count", def: 3, min: 1 },
  { key: "channelBuffer", env: "SPIDERPOOL_GC_CHANNEL_BUFFER", kind: "count", def: 5000, min: 1 },
  { key: "maxTraced", env: "SPIDERPOOL_GC_MAX_PODENTRY_DB_CAP", kind: "count", def: 100_000, min: 1 },
  { key: "maxRetries", env: "SPIDERPOOL_GC_PODENTRY_MAX_RETRIES", kind: "count", def: 5, min: 0 },
  { key: "signalTimeoutMs", env: "SPIDERPOOL_GC_SIGNAL_TIMEOUT_DURATION", kind: "seconds", def: 3, min: 0 },
  { key: "requestGapMs", env: "SPIDERPOOL_GC_HTTP_REQUEST_TIME_GAP", kind: "seconds", def: 1, min: 0 },
  {
    key: "unconfirmedGraceMs",
    env: "SPIDERPOOL_GC_UNCONFIRMED_RECORD_GRACE_DURATION",
    kind: "seconds",
    def: 180,
    min: 0,
  },
];

/** The ConfigMap flags the GC reads (spiderpool-conf `conf.yml`). */
export interface GcConfigMapFlags {
  enableStatefulSet?: boolean;
  enableKubevirtStaticIP?: boolean;
  enableCleanOutdatedEndpoint?: boolean;
}

/**
 * The GC settings from the environment (`env(name)`; unset or empty = default) and the ConfigMap flags.
 * Durations are whole or decimal seconds, as upstream's integers and a little more.
 *
 * ```ts
 * gcConfigFrom((k) => Deno.env.get(k), { enableCleanOutdatedEndpoint: true }).intervalMs; // 600000
 * ```
 */
export function gcConfigFrom(
  env: (name: string) => string | undefined,
  flags: GcConfigMapFlags = {},
): GcConfig {
  const out: Record<string, unknown> = {
    enableStatefulSet: flags.enableStatefulSet ?? CONFIG_DEFAULTS.enableStatefulSet,
    enableKubevirtStaticIP: flags.enableKubevirtStaticIP ?? CONFIG_DEFAULTS.enableKubevirtStaticIP,
    cleanOutdatedEndpoint: flags.enableCleanOutdatedEndpoint ?? CONFIG_DEFAULTS.enableCleanOutdatedEndpoint,
  };
  for (const spec of GC_ENV) {
    const raw = env(spec.env);
    if (raw === undefined || raw.trim() === "") {
      out[spec.key] = spec.kind === "seconds" ? spec.def * 1000 : spec.def;
      continue;
    }
    const value = raw.trim();
    if (spec.kind === "bool") {
      const b = parseGoBool(value);
      if (b === undefined) {
        throw new GcConfigError(`${spec.env} must be true or false, got ${JSON.stringify(raw)}`);
      }
      out[spec.key] = b;
      continue;
    }
    const n = Number(value);
    const whole = spec.kind === "count";
    if (
      !/^[0-9]+(\.[0-9]+)?$/.test(value) || !Number.isFinite(n) || n < spec.min ||
      (whole && !Number.isInteger(n))
    ) {
      const what = whole ? `a whole number ≥ ${spec.min}` : `a number of seconds ≥ ${spec.min}`;
      throw new GcConfigError(
        `${spec.env} must be ${what}, got ${JSON.stringify(raw)}; unset it for the default ${spec.def}`,
      );
    }
    out[spec.key] = spec.kind === "seconds" ? Math.round(n * 1000) : n;
  }
  return out as unknown as GcConfig;
}

/** The defaults (no environment, default ConfigMap). */
export function defaultGcConfig(): GcConfig {
  return gcConfigFrom(() => undefined);
}
