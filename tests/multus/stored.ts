// A SpiderMultusConfig as the API server stores it: the mutating webhook's defaulting (defaultMultusConfig),
// then the CRD's structural schema defaults, which the API server applies after a mutating webhook patched the
// object (e.g. `txQueueLen: 0` and `hostRuleTable: 500` in a coordinator block the webhook added).

import { multusConfigSchema } from "../../src/api/crds.ts";
import { defaultMultusConfig } from "../../src/api/defaults.ts";
import type { OpenAPISchema } from "../../src/api/schema.ts";
import type { SpiderMultusConfig } from "../../src/api/types.ts";

/** Applies the `default`s of `schema` to absent fields of `value`, top-down (defaults are defaulted too). */
export function applySchemaDefaults(value: unknown, schema: OpenAPISchema): unknown {
  if (Array.isArray(value)) {
    return schema.items ? value.map((v) => applySchemaDefaults(v, schema.items!)) : value;
  }
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [key, prop] of Object.entries(schema.properties ?? {})) {
    if (out[key] === undefined && prop.default !== undefined) out[key] = structuredClone(prop.default);
    if (out[key] !== undefined) out[key] = applySchemaDefaults(out[key], prop);
  }
  if (schema.additionalProperties) {
    for (const key of Object.keys(out)) {
      if (!(key in (schema.properties ?? {}))) {
        out[key] = applySchemaDefaults(out[key], schema.additionalProperties);
      }
    }
  }
  return out;
}

/** `smc` after the webhook (when `webhook`, the default) and the API server's schema defaulting. */
export function stored(smc: SpiderMultusConfig, webhook = true): SpiderMultusConfig {
  return applySchemaDefaults(
    webhook ? defaultMultusConfig(smc) : smc,
    multusConfigSchema.openAPI,
  ) as SpiderMultusConfig;
}
