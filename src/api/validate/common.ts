// What every validator shares: the FieldError shape the admission webhooks return, a collector that prefixes
// each message with the object it is about, and the subnet / range / gateway / route checks used by both
// SpiderIPPool and SpiderSubnet.

import {
  type CIDR,
  cidrContains,
  type Family,
  familyName,
  familyOf,
  formatCIDR,
  IPError,
  IPRangeSet,
  parseCIDR,
  parseIP,
  parseRange,
} from "../../ip/mod.ts";
import { decodeControlledIPPools, StatusDecodeError } from "../allocated.ts";
import { FINALIZER } from "../constants.ts";
import type { SelectorProblem } from "../selector.ts";
import type { LabelSelector, Route } from "../types.ts";
import { isEmptySelector, validateLabelSelector } from "../selector.ts";
import { isDNS1123Label, isDNS1123Subdomain } from "./names.ts";

/** One reason an object is rejected. `message` names the object, the field and what to do. */
export interface FieldError {
  /** Field path, e.g. `spec.ips[2]`. */
  path: string;
  message: string;
}

/** Feature flags of the `spiderpool-conf` ConfigMap that validation depends on. */
export interface FeatureFlags {
  enableIPv4: boolean;
  enableIPv6: boolean;
  enableSpiderSubnet: boolean;
}

/** Joins field errors into one denial message for an admission response. */
export function formatFieldErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => e.message).join("\n");
}

/** Collects field errors about one object; every message starts with `Kind "name": `. */
export class Problems {
  readonly errors: FieldError[] = [];
  readonly subject: string;

  constructor(kind: string, name: string | undefined) {
    this.subject = `${kind} ${JSON.stringify(name ?? "")}`;
  }

  /** Records `text` (which normally starts with the path) about field `path`. */
  add(path: string, text: string): void {
    this.errors.push({ path, message: `${this.subject}: ${text}` });
  }

  /** Records the problems of a label selector. */
  addSelector(problems: readonly SelectorProblem[]): void {
    for (const p of problems) this.add(p.path, `${p.path}: ${p.message}`);
  }

  get ok(): boolean {
    return this.errors.length === 0;
  }
}

/** The message of an IPError; rethrows anything else. */
export function ipMessage(e: unknown): string {
  if (e instanceof IPError) return e.message;
  throw e;
}

/** Parses `spec.subnet`: required, a CIDR in network form. Records a problem and returns undefined if not. */
export function checkSubnet(p: Problems, path: string, subnet: string | undefined): CIDR | undefined {
  if (subnet === undefined || subnet === "") {
    p.add(path, `${path} is required; set the network in CIDR form, e.g. "192.0.2.0/24"`);
    return undefined;
  }
  let c: CIDR;
  try {
    c = parseCIDR(subnet);
  } catch (e) {
    p.add(path, `${path}: ${ipMessage(e)}`);
    return undefined;
  }
  const canonical = formatCIDR(c);
  if (canonical !== subnet) {
    p.add(
      path,
      `${path} ${JSON.stringify(subnet)} is not written canonically; write it as ${
        JSON.stringify(canonical)
      }`,
    );
  }
  return c;
}

/**
 * Parses a list of range strings item by item, recording each malformed item, each item of the other family
 * and each item outside `subnet`. Returns the merged set of the good items.
 */
export function checkRanges(
  p: Problems,
  path: string,
  items: readonly string[] | undefined,
  family: Family,
  subnet: CIDR | undefined,
  subnetPath = "spec.subnet",
): IPRangeSet {
  let set = IPRangeSet.empty(family);
  (items ?? []).forEach((item, i) => {
    const at = `${path}[${i}]`;
    let r;
    try {
      r = parseRange(item);
    } catch (e) {
      p.add(at, `${at}: ${ipMessage(e)}`);
      return;
    }
    if (r.family !== family) {
      p.add(
        at,
        `${at} ${JSON.stringify(item)} is ${familyName(r.family)} but the object is ${familyName(family)}; ` +
          `use ${familyName(family)} addresses only`,
      );
      return;
    }
    const one = IPRangeSet.fromRanges(family, [r.range]);
    if (subnet !== undefined && !IPRangeSet.fromCIDR(subnet).containsSet(one)) {
      p.add(
        at,
        `${at} ${JSON.stringify(item)} is outside ${subnetPath} ${JSON.stringify(formatCIDR(subnet))}; ` +
          `use addresses inside the subnet`,
      );
      return;
    }
    set = set.union(one);
  });
  return set;
}

/** Merges range strings into canonical minimal ranges, or returns undefined if any item does not parse. */
export function mergeRanges(items: readonly string[] | undefined, family: Family): string[] | undefined {
  if (items === undefined) return undefined;
  try {
    return IPRangeSet.parse(family, items).toStrings();
  } catch (e) {
    ipMessage(e);
    return undefined;
  }
}

/** The family of a CIDR, bare IP or range string, or undefined when it parses as none of them. */
export function familyOfText(text: string): Family | undefined {
  return familyOf(text);
}

/**
 * Checks `spec.gateway`: an address of the family, inside the subnet, and not one the pool hands out
 * (`usable` = ips − excludeIPs).
 */
export function checkGateway(
  p: Problems,
  path: string,
  gateway: string | undefined,
  family: Family,
  subnet: CIDR | undefined,
  usable: IPRangeSet | undefined,
): void {
  if (gateway === undefined || gateway === null) return;
  let ip;
  try {
    ip = parseIP(gateway);
  } catch (e) {
    p.add(path, `${path}: ${ipMessage(e)}`);
    return;
  }
  if (ip.family !== family) {
    p.add(
      path,
      `${path} ${JSON.stringify(gateway)} is ${familyName(ip.family)}; use an ${familyName(family)} address`,
    );
    return;
  }
  if (subnet !== undefined && !cidrContains(subnet, ip.value)) {
    p.add(
      path,
      `${path} ${JSON.stringify(gateway)} is outside spec.subnet ${JSON.stringify(formatCIDR(subnet))}; ` +
        `use the router address of the subnet`,
    );
    return;
  }
  if (usable !== undefined && usable.has(ip.value)) {
    p.add(
      path,
      `${path} ${JSON.stringify(gateway)} is also in spec.ips and could be handed to a pod; remove it from ` +
        `spec.ips or add it to spec.excludeIPs`,
    );
  }
}

/**
 * Checks routes handed to pods: each `dst` a CIDR of the family (host bits allowed) and not the default route
 * (the gateway provides that), no `dst` twice, each `gw` an address inside the subnet.
 */
export function checkRoutes(
  p: Problems,
  path: string,
  routes: readonly Route[] | undefined,
  family: Family,
  subnet: CIDR | undefined,
): void {
  const seen = new Map<string, number>();
  (routes ?? []).forEach((r, i) => {
    const at = `${path}[${i}]`;
    if (!r || typeof r.dst !== "string" || r.dst === "") {
      p.add(`${at}.dst`, `${at}.dst is required; set the destination CIDR, e.g. "198.51.100.0/24"`);
    } else {
      try {
        // Host bits are allowed, as upstream's net.ParseCIDR allows them; the route is to the network.
        const c = parseCIDR(r.dst, { canonical: false });
        if (c.family !== family) {
          p.add(
            `${at}.dst`,
            `${at}.dst ${JSON.stringify(r.dst)} is ${familyName(c.family)}; use an ${
              familyName(family)
            } CIDR`,
          );
        } else if (c.prefix === 0) {
          p.add(
            `${at}.dst`,
            `${at}.dst ${JSON.stringify(r.dst)} is the default route, which comes from spec.gateway; set ` +
              `spec.gateway instead`,
          );
        } else {
          const key = formatCIDR(c);
          const first = seen.get(key);
          if (first !== undefined) {
            p.add(
              `${at}.dst`,
              `${at}.dst ${
                JSON.stringify(r.dst)
              } duplicates ${path}[${first}].dst; keep one route per destination`,
            );
          } else {
            seen.set(key, i);
          }
        }
      } catch (e) {
        p.add(`${at}.dst`, `${at}.dst: ${ipMessage(e)}`);
      }
    }
    if (!r || typeof r.gw !== "string" || r.gw === "") {
      p.add(`${at}.gw`, `${at}.gw is required; set a next-hop address inside spec.subnet`);
      return;
    }
    try {
      const gw = parseIP(r.gw);
      if (gw.family !== family) {
        p.add(
          `${at}.gw`,
          `${at}.gw ${JSON.stringify(r.gw)} is ${familyName(gw.family)}; use an ${
            familyName(family)
          } address`,
        );
      } else if (subnet !== undefined && !cidrContains(subnet, gw.value)) {
        p.add(
          `${at}.gw`,
          `${at}.gw ${JSON.stringify(r.gw)} is outside spec.subnet ${JSON.stringify(formatCIDR(subnet))}; ` +
            `use a next hop the pod can reach directly`,
        );
      }
    } catch (e) {
      p.add(`${at}.gw`, `${at}.gw: ${ipMessage(e)}`);
    }
  });
}

/** The address fields SpiderIPPool and SpiderSubnet share. */
export interface AddressSpec {
  ipVersion?: number;
  subnet?: string;
  ips?: string[];
  excludeIPs?: string[];
  gateway?: string;
  routes?: Route[];
}

/** The checked address part of a SpiderIPPool or SpiderSubnet. */
export interface CheckedAddresses {
  family: Family;
  /** Undefined when `spec.subnet` is missing or malformed (already recorded). */
  subnet: CIDR | undefined;
  /** ips − excludeIPs, of the items that parse. */
  usable: IPRangeSet;
}

/**
 * Checks the address part shared by SpiderIPPool and SpiderSubnet: `spec.subnet` and `spec.ipVersion` (both
 * immutable when `old` is given), ips and excludeIPs inside the subnet, the gateway outside the usable
 * addresses, and the routes. Returns undefined when the family cannot be known.
 */
export function checkAddressSpec(
  p: Problems,
  spec: AddressSpec,
  old: AddressSpec | undefined,
  flags: Pick<FeatureFlags, "enableIPv4" | "enableIPv6">,
): CheckedAddresses | undefined {
  const subnet = checkSubnet(p, "spec.subnet", spec.subnet);
  const family = checkIPVersion(p, spec.ipVersion, subnet?.family, flags, "spec.subnet");
  if (old !== undefined) {
    checkImmutable(p, "spec.ipVersion", old.ipVersion, spec.ipVersion);
    checkImmutable(p, "spec.subnet", old.subnet, spec.subnet);
  }
  if (family === undefined) return undefined;
  const ips = checkRanges(p, "spec.ips", spec.ips, family, subnet);
  const excluded = checkRanges(p, "spec.excludeIPs", spec.excludeIPs, family, subnet);
  const usable = ips.subtract(excluded);
  checkGateway(p, "spec.gateway", spec.gateway, family, subnet, usable);
  checkRoutes(p, "spec.routes", spec.routes, family, subnet);
  return { family, subnet, usable };
}

/**
 * On UPDATE of a terminating object: records `problem` while it still holds the finalizer (removing the
 * finalizer is how deletion completes, so that change alone passes). True when the object is terminating and
 * nothing else needs checking.
 */
export function checkTerminating(
  p: Problems,
  meta: { deletionTimestamp?: string; finalizers?: string[] } | undefined,
  isUpdate: boolean,
  problem: string,
): boolean {
  if (!isUpdate || !meta?.deletionTimestamp) return false;
  if ((meta.finalizers ?? []).includes(FINALIZER)) p.add("metadata.deletionTimestamp", problem);
  return true;
}

/** The subnet of another object, host bits tolerated; undefined when missing or malformed. */
export function parseOtherSubnet(text: string | undefined): CIDR | undefined {
  if (!text) return undefined;
  try {
    return parseCIDR(text, { canonical: false });
  } catch (e) {
    ipMessage(e);
    return undefined;
  }
}

/** True when both subnets are the same network. */
export function sameCIDR(a: CIDR, b: CIDR): boolean {
  return a.family === b.family && a.base === b.base && a.prefix === b.prefix;
}

/** ips − excludeIPs of a pool's or subnet's spec, or undefined when a range does not parse. */
export function usableAddresses(
  spec: Pick<AddressSpec, "ips" | "excludeIPs"> | undefined,
  family: Family,
): IPRangeSet | undefined {
  try {
    return IPRangeSet.parse(family, spec?.ips ?? []).subtract(
      IPRangeSet.parse(family, spec?.excludeIPs ?? []),
    );
  } catch (e) {
    ipMessage(e);
    return undefined;
  }
}

/**
 * The IPs a SpiderSubnet pre-allocated to each pool (`status.controlledIPPools`), parsed as `family`; a share
 * that does not parse maps to undefined. Undefined when the status cannot be decoded: there is nothing
 * trustworthy to check against, and the controller reports it.
 */
export function preAllocatedIPs(
  subnet: { metadata?: { name?: string }; status?: { controlledIPPools?: string } },
  family: Family,
): Map<string, IPRangeSet | undefined> | undefined {
  let controlled;
  try {
    controlled = decodeControlledIPPools(subnet.status?.controlledIPPools, subnet.metadata?.name ?? "");
  } catch (e) {
    if (e instanceof StatusDecodeError) return undefined;
    throw e;
  }
  const out = new Map<string, IPRangeSet | undefined>();
  for (const [pool, share] of Object.entries(controlled)) {
    try {
      out.set(pool, IPRangeSet.parse(family, share.ips));
    } catch (e) {
      ipMessage(e);
      out.set(pool, undefined);
    }
  }
  return out;
}

/**
 * The DELETE check of pools and subnets: with `enableValidatingResourcesDeletedWebhook`, an object whose
 * `status.allocatedIPCount` is above 0 may not be deleted; `problem(n)` says why and what to do.
 */
export function checkDeletable(
  kind: string,
  obj: { metadata?: { name?: string }; status?: { allocatedIPCount?: number } },
  enableValidatingResourcesDeletedWebhook: boolean,
  problem: (allocated: number) => string,
): FieldError[] {
  const p = new Problems(kind, obj.metadata?.name);
  const n = obj.status?.allocatedIPCount ?? 0;
  if (enableValidatingResourcesDeletedWebhook && n > 0) p.add("status.allocatedIPCount", problem(n));
  return p.errors;
}

/** Checks `spec.ipVersion`: 4 or 6, equal to `family` when known, and enabled in the ConfigMap. */
export function checkIPVersion(
  p: Problems,
  ipVersion: number | undefined,
  family: Family | undefined,
  flags: Pick<FeatureFlags, "enableIPv4" | "enableIPv6">,
  derivedFrom: string,
): Family | undefined {
  if (ipVersion === undefined || ipVersion === null) {
    if (family === undefined) {
      p.add(
        "spec.ipVersion",
        `spec.ipVersion is unset and cannot be derived from ${derivedFrom}; set it to 4 or 6`,
      );
      return undefined;
    }
    ipVersion = family;
  }
  if (ipVersion !== 4 && ipVersion !== 6) {
    p.add("spec.ipVersion", `spec.ipVersion ${JSON.stringify(ipVersion)} is not an IP version; use 4 or 6`);
    return undefined;
  }
  if (family !== undefined && ipVersion !== family) {
    p.add(
      "spec.ipVersion",
      `spec.ipVersion ${ipVersion} does not match ${derivedFrom}, which is ${familyName(family)}; set ` +
        `spec.ipVersion to ${family} or omit it`,
    );
    return undefined;
  }
  const enabled = ipVersion === 4 ? flags.enableIPv4 : flags.enableIPv6;
  if (!enabled) {
    p.add(
      "spec.ipVersion",
      `spec.ipVersion ${ipVersion}: ${familyName(ipVersion)} is disabled in ConfigMap spiderpool-conf ` +
        `(enableIPv${ipVersion}: false); enable it or use the other family`,
    );
  }
  return ipVersion;
}

/** Records a change of an immutable field on UPDATE. */
export function checkImmutable(
  p: Problems,
  path: string,
  oldValue: unknown,
  newValue: unknown,
): void {
  if (oldValue !== undefined && JSON.stringify(oldValue) !== JSON.stringify(newValue)) {
    p.add(
      path,
      `${path} is immutable: it was ${JSON.stringify(oldValue)} and may not become ${
        JSON.stringify(newValue)
      }; ` +
        `create a new object instead`,
    );
  }
}

/** A label selector that, when present, must be valid and, if `nonEmpty`, select something specific. */
export function checkSelector(
  p: Problems,
  path: string,
  sel: LabelSelector | undefined,
  nonEmpty: boolean,
): void {
  if (sel === undefined || sel === null) return;
  p.addSelector(validateLabelSelector(sel, path));
  if (nonEmpty && isEmptySelector(sel)) {
    p.add(
      path,
      `${path} is empty; give matchLabels or matchExpressions, or remove ${path} to let every pod use the pool`,
    );
  }
}

/** Checks a list of namespace names. */
export function checkNamespaceNames(p: Problems, path: string, names: readonly string[] | undefined): void {
  (names ?? []).forEach((n, i) => {
    if (!isDNS1123Label(n)) {
      p.add(
        `${path}[${i}]`,
        `${path}[${i}] ${JSON.stringify(n)} is not a namespace name; use lower-case letters, digits and "-"`,
      );
    }
  });
}

/** Checks a list of object names (DNS-1123 subdomains), e.g. node names. */
export function checkObjectNames(
  p: Problems,
  path: string,
  names: readonly string[] | undefined,
  what: string,
): void {
  (names ?? []).forEach((n, i) => {
    if (!isDNS1123Subdomain(n)) {
      p.add(
        `${path}[${i}]`,
        `${path}[${i}] ${
          JSON.stringify(n)
        } is not a valid ${what} name; use lower-case letters, digits, "-" and "."`,
      );
    }
  });
}

/** Checks `multusName` entries: `namespace/name` or `name`. */
export function checkMultusNames(p: Problems, path: string, names: readonly string[] | undefined): void {
  (names ?? []).forEach((n, i) => {
    const parts = n.split("/");
    const ok = parts.length === 1
      ? isDNS1123Subdomain(parts[0])
      : parts.length === 2 && isDNS1123Label(parts[0]) && isDNS1123Subdomain(parts[1]);
    if (!ok) {
      p.add(
        `${path}[${i}]`,
        `${path}[${i}] ${
          JSON.stringify(n)
        } is not a NetworkAttachmentDefinition reference; use "namespace/name" or "name"`,
      );
    }
  });
}

/** Summarises a set for messages: its first ranges, at most `max`. */
export function describeSet(set: IPRangeSet, max = 3): string {
  const s = set.toStrings();
  return s.length <= max ? s.join(", ") : `${s.slice(0, max).join(", ")} and ${s.length - max} more ranges`;
}
