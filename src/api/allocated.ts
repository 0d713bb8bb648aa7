// The string-encoded status maps of the API: SpiderIPPool `status.allocatedIPs` (which pod holds which address)
// and SpiderSubnet `status.controlledIPPools` (which pool was given which addresses). Both are JSON objects
// serialised into one string field; encoding is deterministic and an empty map is written as "field absent".

import { parseIPv4 } from "../ip/address.ts";
import { formatIP, IPError, parseIP } from "../ip/mod.ts";
import { KIND } from "./constants.ts";

/** Who holds one allocated address. */
export interface AllocationRecord {
  /** `<namespace>/<name>` of the pod (for KubeVirt, of the VMI). */
  pod: string;
  podUid: string;
}

/** `status.allocatedIPs` decoded: canonical IP → record. */
export type AllocatedIPs = Record<string, AllocationRecord>;

/** One pool's share of a subnet. */
export interface ControlledPool {
  /** Range strings handed to the pool. */
  ips: string[];
  /** `<group>_<version>_<Kind>_<namespace>_<name>` of the owning application; auto-pools only. */
  application?: string;
}

/** `status.controlledIPPools` decoded: pool name → share. */
export type ControlledIPPools = Record<string, ControlledPool>;

/** A status string that cannot be decoded; the message names the object and the field. */
export class StatusDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StatusDecodeError";
  }
}

/**
 * Decodes SpiderIPPool `status.allocatedIPs`. Absent or empty ⇒ `{}`. Keys are returned in canonical form; an
 * older `"interface"` member of a record is accepted and dropped.
 *
 * ```ts
 * decodeAllocatedIPs('{"192.0.2.5":{"pod":"default/web-0","podUid":"u1"}}', "v4-a");
 * // { "192.0.2.5": { pod: "default/web-0", podUid: "u1" } }
 * ```
 */
export function decodeAllocatedIPs(s: string | undefined | null, poolName: string): AllocatedIPs {
  const where = `${KIND.ippool} ${JSON.stringify(poolName)}: status.allocatedIPs`;
  const obj = decodeObject(s, where, `{"<ip>":{"pod":"<namespace>/<name>","podUid":"<uid>"}}`);
  const out: AllocatedIPs = {};
  for (const [ip, rec] of Object.entries(obj)) {
    let key: string;
    try {
      key = canonicalKey(ip);
    } catch (e) {
      if (!(e instanceof IPError)) throw e;
      throw new StatusDecodeError(`${where}: key ${JSON.stringify(ip)} is not an IP address: ${e.message}`);
    }
    if (
      typeof rec !== "object" || rec === null || Array.isArray(rec) ||
      typeof (rec as AllocationRecord).pod !== "string" ||
      typeof (rec as AllocationRecord).podUid !== "string"
    ) {
      throw new StatusDecodeError(
        `${where}: the record of ${ip} is ${JSON.stringify(rec)}; expected {"pod":"<namespace>/<name>",` +
          `"podUid":"<uid>"}`,
      );
    }
    if (key in out) {
      throw new StatusDecodeError(
        `${where}: ${key} is recorded twice (as ${JSON.stringify(ip)} and another spelling)`,
      );
    }
    out[key] = { pod: (rec as AllocationRecord).pod, podUid: (rec as AllocationRecord).podUid };
  }
  return out;
}

/**
 * Encodes SpiderIPPool `status.allocatedIPs`: keys sorted by address (IPv4 before IPv6), records as
 * `{"pod","podUid"}` only. Returns undefined for an empty map, meaning the field is omitted.
 */
export function encodeAllocatedIPs(map: AllocatedIPs): string | undefined {
  const keys = Object.keys(map);
  if (keys.length === 0) return undefined;
  // Pools hold up to thousands of records and the agent encodes on every status write: IPv4 keys sort as
  // numbers, only IPv6 keys as bigints.
  const v4: { k: string; text: string; n: number }[] = [];
  const v6: { k: string; text: string; n: bigint }[] = [];
  for (const k of keys) {
    const n = ipv4Value(k);
    if (n !== undefined) v4.push({ k, text: k, n });
    else {
      const p = parseIP(k);
      if (p.family === 4) v4.push({ k, text: formatIP(4, p.value), n: Number(p.value) });
      else v6.push({ k, text: formatIP(6, p.value), n: p.value });
    }
  }
  v4.sort((a, b) => a.n - b.n);
  v6.sort((a, b) => a.n < b.n ? -1 : a.n > b.n ? 1 : 0);
  const out: Record<string, AllocationRecord> = {};
  for (const { k, text } of v4) out[text] = { pod: map[k].pod, podUid: map[k].podUid };
  for (const { k, text } of v6) out[text] = { pod: map[k].pod, podUid: map[k].podUid };
  return JSON.stringify(out);
}

/** The value of `text` when it is an IPv4 address in canonical form (the only form parseIP accepts), else undefined. */
function ipv4Value(text: string): number | undefined {
  if (text.includes(":")) return undefined;
  try {
    return parseIPv4(text);
  } catch {
    return undefined;
  }
}

/** The canonical spelling of an address key; throws IPError (parseIP's message) when it is not an address. */
function canonicalKey(text: string): string {
  // A valid IPv4 address has one spelling: no need to format it again.
  if (ipv4Value(text) !== undefined) return text;
  const p = parseIP(text);
  return formatIP(p.family, p.value);
}

/**
 * Decodes SpiderSubnet `status.controlledIPPools`. Absent or empty ⇒ `{}`.
 *
 * ```ts
 * decodeControlledIPPools('{"v4-a":{"ips":["192.0.2.10-192.0.2.20"]}}', "subnet-a");
 * // { "v4-a": { ips: ["192.0.2.10-192.0.2.20"] } }
 * ```
 */
export function decodeControlledIPPools(s: string | undefined | null, subnetName: string): ControlledIPPools {
  const where = `${KIND.subnet} ${JSON.stringify(subnetName)}: status.controlledIPPools`;
  const obj = decodeObject(s, where, `{"<pool>":{"ips":["<range>"],"application":"<app>"}}`);
  const out: ControlledIPPools = {};
  for (const [pool, v] of Object.entries(obj)) {
    const share = v as Partial<ControlledPool> | null;
    if (
      typeof share !== "object" || share === null || Array.isArray(share) ||
      (share.ips !== undefined && share.ips !== null &&
        (!Array.isArray(share.ips) || share.ips.some((x) => typeof x !== "string"))) ||
      (share.application !== undefined && typeof share.application !== "string")
    ) {
      throw new StatusDecodeError(
        `${where}: the entry of pool ${JSON.stringify(pool)} is ${JSON.stringify(v)}; expected ` +
          `{"ips":["<range>",...],"application":"<app>"}`,
      );
    }
    out[pool] = {
      ips: [...(share.ips ?? [])],
      ...(share.application ? { application: share.application } : {}),
    };
  }
  return out;
}

/**
 * Encodes SpiderSubnet `status.controlledIPPools`, pools sorted by name, `application` written only when set.
 * Returns undefined for an empty map.
 */
export function encodeControlledIPPools(map: ControlledIPPools): string | undefined {
  const names = Object.keys(map).sort();
  if (names.length === 0) return undefined;
  const out: ControlledIPPools = {};
  for (const name of names) {
    const share = map[name];
    out[name] = { ips: [...share.ips], ...(share.application ? { application: share.application } : {}) };
  }
  return JSON.stringify(out);
}

/** The parts of an auto-pool application key. */
export interface ApplicationRef {
  /** API group; "" for core kinds. */
  group: string;
  version: string;
  kind: string;
  namespace: string;
  name: string;
}

/**
 * Formats the `application` key of `status.controlledIPPools`: `<group>_<version>_<Kind>_<ns>_<name>`, or
 * `<version>_<Kind>_<ns>_<name>` for the core group.
 *
 * ```ts
 * formatApplicationKey({ group: "apps", version: "v1", kind: "Deployment", namespace: "default", name: "nginx" });
 * // "apps_v1_Deployment_default_nginx"
 * ```
 */
export function formatApplicationKey(app: ApplicationRef): string {
  const gv = app.group === "" ? app.version : `${app.group}_${app.version}`;
  return `${gv}_${app.kind}_${app.namespace}_${app.name}`;
}

/**
 * Parses an application key written by formatApplicationKey. Namespaces and Kinds cannot contain "_", and
 * API groups and names cannot either, so the split is unambiguous. Returns undefined when malformed.
 */
export function parseApplicationKey(key: string): ApplicationRef | undefined {
  const parts = key.split("_");
  if (parts.length === 5) {
    const [group, version, kind, namespace, name] = parts;
    return parts.every((p) => p !== "") ? { group, version, kind, namespace, name } : undefined;
  }
  if (parts.length === 4) {
    const [version, kind, namespace, name] = parts;
    return parts.every((p) => p !== "") ? { group: "", version, kind, namespace, name } : undefined;
  }
  return undefined;
}

function decodeObject(s: string | undefined | null, where: string, shape: string): Record<string, unknown> {
  if (s === undefined || s === null || s.trim() === "") return {};
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    throw new StatusDecodeError(`${where} is not valid JSON (${(e as Error).message}); expected ${shape}`);
  }
  if (v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) {
    throw new StatusDecodeError(`${where} is ${JSON.stringify(v)}; expected a JSON object ${shape}`);
  }
  return v as Record<string, unknown>;
}
