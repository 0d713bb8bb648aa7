// Parsers for the pod and namespace annotations that steer IPAM (pool and subnet selection, auto-pool size,
// extra routes) and for the two Multus network annotations. Each returns plain typed data or throws an
// AnnotationError that names the key, quotes the value and says what shape was expected.

import { familyName, formatCIDR, formatIP, parseCIDR, parseIP } from "../ip/mod.ts";
import { ANNOTATION, DEFAULT_NIC } from "./constants.ts";
import { ipMessage } from "./validate/common.ts";
import {
  interfaceNameProblem,
  isDNS1123Label,
  isDNS1123Subdomain,
  poolNameProblem,
} from "./validate/names.ts";

export { globMatch, isGlob, poolNameProblem } from "./validate/names.ts";

/** A malformed annotation value. `message` names the key, quotes the value and says what is expected. */
export class AnnotationError extends Error {
  readonly key: string;
  readonly value: string;
  constructor(key: string, value: string, problem: string) {
    super(`invalid annotation ${key}: ${quoteValue(value)}: ${problem}`);
    this.name = "AnnotationError";
    this.key = key;
    this.value = value;
  }
}

/** Pools named for one NIC, per family, in priority order; names may be globs. */
export interface PoolNames {
  ipv4: string[];
  ipv6: string[];
}

/** One item of `ipam.spidernet.io/ippools`. */
export interface NICPools extends PoolNames {
  /** The NIC, or undefined in no-name mode (item index = NIC order). */
  interface?: string;
  /** `cleangateway` of the item; undefined when absent so the CNI config's `clean_gateway` applies. */
  cleanGateway?: boolean;
}

/** Parsed `ipam.spidernet.io/ippools`. */
export interface IPPoolsAnnotation {
  /** True when every item names its interface; false in no-name mode. */
  named: boolean;
  items: NICPools[];
}

/** One auto-pool source: the SpiderSubnet to carve pools from, per family, for one NIC. */
export interface SubnetSource {
  interface: string;
  ipv4?: string;
  ipv6?: string;
}

/** Parsed `ipam.spidernet.io/ippool-ip-number`: `+N` is flexible (replicas + N), `N` is fixed. */
export interface PoolIPNumber {
  flexible: boolean;
  n: number;
}

/** One extra route from `ipam.spidernet.io/routes`. */
export interface AnnotationRoute {
  dst: string;
  gw: string;
}

/** One network requested through a Multus annotation. */
export interface MultusNetwork {
  namespace: string;
  name: string;
  /** The NIC the network is attached as: the requested one, or `net<index+1>` (`eth0` for the default network). */
  interface: string;
  /** True when the interface came from `@ifname` or the JSON `interface` field. */
  interfaceRequested: boolean;
  /** The JSON element as given (JSON syntax only), for fields such as `ips` or `mac`. */
  raw?: Record<string, unknown>;
}

const POOL_NAMES_SHAPE = `{"ipv4":["pool-a"],"ipv6":["pool-b"]}`;
const IPPOOLS_SHAPE = `[{"interface":"eth0","ipv4":["pool-a"],"ipv6":["pool-b"],"cleangateway":false}]`;
const SUBNET_SHAPE = `{"interface":"eth0","ipv4":["subnet-a"],"ipv6":["subnet-b"]}`;
const SUBNETS_SHAPE = `[{"interface":"eth0","ipv4":["subnet-a"]},{"interface":"net1","ipv4":["subnet-b"]}]`;
const ROUTES_SHAPE = `[{"dst":"198.51.100.0/24","gw":"192.0.2.1"}]`;

/**
 * Parses pod annotation `ipam.spidernet.io/ippool` (pools for whichever NIC is being set up).
 *
 * ```ts
 * parseIPPoolAnnotation('{"ipv4":["v4-a"]}'); // { ipv4: ["v4-a"], ipv6: [] }
 * ```
 */
export function parseIPPoolAnnotation(value: string): PoolNames {
  const key = ANNOTATION.ippool;
  const obj = parseJSONObject(key, value, POOL_NAMES_SHAPE);
  return {
    ipv4: poolNameList(key, value, obj.ipv4, "ipv4", POOL_NAMES_SHAPE),
    ipv6: poolNameList(key, value, obj.ipv6, "ipv6", POOL_NAMES_SHAPE),
  };
}

/**
 * Parses pod annotation `ipam.spidernet.io/ippools` (pools per NIC). Either every item names its `interface`
 * or none does (no-name mode: item i is for the i-th NIC); interfaces must be unique.
 */
export function parseIPPoolsAnnotation(value: string): IPPoolsAnnotation {
  const key = ANNOTATION.ippools;
  const list = parseJSONArray(key, value, IPPOOLS_SHAPE, true);
  const items: NICPools[] = [];
  const seen = new Set<string>();
  let named: boolean | undefined;
  list.forEach((raw, i) => {
    const where = `item [${i}]`;
    if (!isPlainObject(raw)) {
      throw new AnnotationError(key, value, `${where} is not an object; expected ${IPPOOLS_SHAPE}`);
    }
    const nic = optionalString(key, value, raw.interface, `${where}.interface`);
    const hasName = nic !== undefined && nic !== "";
    if (named === undefined) named = hasName;
    if (named !== hasName) {
      throw new AnnotationError(
        key,
        value,
        `${where} ${hasName ? "names" : "does not name"} an interface but item [0] ${
          named ? "does" : "does not"
        }; set "interface" on every item or on none`,
      );
    }
    if (hasName) {
      checkInterfaceName(key, value, nic, `${where}.interface`);
      if (seen.has(nic)) {
        throw new AnnotationError(
          key,
          value,
          `interface ${JSON.stringify(nic)} appears twice; give each NIC exactly one item`,
        );
      }
      seen.add(nic);
    }
    const cg = raw.cleangateway;
    if (cg !== undefined && cg !== null && typeof cg !== "boolean") {
      throw new AnnotationError(key, value, `${where}.cleangateway must be true or false`);
    }
    items.push({
      ...(hasName ? { interface: nic } : {}),
      ipv4: poolNameList(key, value, raw.ipv4, `${where}.ipv4`, IPPOOLS_SHAPE),
      ipv6: poolNameList(key, value, raw.ipv6, `${where}.ipv6`, IPPOOLS_SHAPE),
      ...(typeof cg === "boolean" ? { cleanGateway: cg } : {}),
    });
  });
  return { named: named === true, items };
}

/**
 * Parses pod annotation `ipam.spidernet.io/subnet` (single-NIC auto-pool source). The interface defaults to
 * `eth0`; only the first subnet of each family is used; at least one family is required; no globs.
 */
export function parseSubnetAnnotation(value: string): SubnetSource {
  const key = ANNOTATION.subnet;
  const obj = parseJSONObject(key, value, SUBNET_SHAPE);
  return subnetSource(key, value, obj, "", SUBNET_SHAPE);
}

/**
 * Parses pod annotation `ipam.spidernet.io/subnets` (multi-NIC auto-pool sources). Each item is for a unique
 * interface (`eth0` when it names none, as upstream admits such items) and names at least one family; a subnet
 * may serve only one NIC.
 */
export function parseSubnetsAnnotation(value: string): SubnetSource[] {
  const key = ANNOTATION.subnets;
  const list = parseJSONArray(key, value, SUBNETS_SHAPE, true);
  const out: SubnetSource[] = [];
  const nics = new Set<string>();
  const subnets = { 4: new Set<string>(), 6: new Set<string>() };
  list.forEach((raw, i) => {
    const where = `item [${i}]`;
    if (!isPlainObject(raw)) {
      throw new AnnotationError(key, value, `${where} is not an object; expected ${SUBNETS_SHAPE}`);
    }
    const src = subnetSource(key, value, raw, `${where}.`, SUBNETS_SHAPE);
    if (nics.has(src.interface)) {
      throw new AnnotationError(
        key,
        value,
        `interface ${JSON.stringify(src.interface)} appears twice; give each NIC exactly one item`,
      );
    }
    nics.add(src.interface);
    for (const fam of [4, 6] as const) {
      const name = fam === 4 ? src.ipv4 : src.ipv6;
      if (name === undefined) continue;
      if (subnets[fam].has(name)) {
        throw new AnnotationError(
          key,
          value,
          `SpiderSubnet ${JSON.stringify(name)} is used for more than one interface; use a different ` +
            `${familyName(fam)} subnet per NIC`,
        );
      }
      subnets[fam].add(name);
    }
    out.push(src);
  });
  return out;
}

/**
 * Parses `ipam.spidernet.io/ippool-ip-number`: `"N"` (fixed size) or `"+N"` (replicas + N), N ≥ 0.
 *
 * ```ts
 * parsePoolIPNumber("+2"); // { flexible: true, n: 2 }
 * ```
 */
export function parsePoolIPNumber(value: string): PoolIPNumber {
  // Upstream strips one "+" and reads the rest with strconv.Atoi, which also takes a "-" sign: "-0" is 0.
  const m = /^(\+?)(-?)([0-9]+)$/.exec(value);
  const n = m ? Number(m[3]) : NaN;
  if (!m || !Number.isSafeInteger(n) || (m[2] === "-" && n !== 0)) {
    throw new AnnotationError(
      ANNOTATION.ippoolIPNumber,
      value,
      `expected a whole number "N" (fixed pool size) or "+N" (replicas + N), N >= 0, e.g. "+1" or "5"`,
    );
  }
  return { flexible: m[1] === "+", n };
}

/**
 * Parses a boolean the way Go's strconv.ParseBool does (1, t, T, TRUE, true, True, 0, f, F, FALSE, false,
 * False). Returns undefined for anything else.
 */
export function parseGoBool(value: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(value)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(value)) return false;
  return undefined;
}

/** Parses `ipam.spidernet.io/ippool-reclaim` (Go boolean syntax). The caller applies the default `true`. */
export function parsePoolReclaim(value: string): boolean {
  const b = parseGoBool(value);
  if (b === undefined) {
    throw new AnnotationError(ANNOTATION.ippoolReclaim, value, `expected "true" or "false"`);
  }
  return b;
}

/**
 * Parses `ipam.spidernet.io/routes`: each `dst` a CIDR, each `gw` an address of the same family. Values are
 * returned in canonical form; a `dst` with host bits set (accepted upstream) becomes its network.
 */
export function parseRoutesAnnotation(value: string): AnnotationRoute[] {
  const key = ANNOTATION.routes;
  const list = parseJSONArray(key, value, ROUTES_SHAPE);
  return list.map((raw, i) => {
    const where = `item [${i}]`;
    if (!isPlainObject(raw)) {
      throw new AnnotationError(key, value, `${where} is not an object; expected ${ROUTES_SHAPE}`);
    }
    const dst = raw.dst;
    const gw = raw.gw;
    if (typeof dst !== "string" || dst === "" || typeof gw !== "string" || gw === "") {
      throw new AnnotationError(
        key,
        value,
        `${where} needs both "dst" and "gw" strings; expected ${ROUTES_SHAPE}`,
      );
    }
    let cidr;
    try {
      cidr = parseCIDR(dst, { canonical: false });
    } catch (e) {
      throw new AnnotationError(key, value, `${where}.dst: ${ipMessage(e)}`);
    }
    let ip;
    try {
      ip = parseIP(gw);
    } catch (e) {
      throw new AnnotationError(key, value, `${where}.gw: ${ipMessage(e)}`);
    }
    if (ip.family !== cidr.family) {
      throw new AnnotationError(
        key,
        value,
        `${where}: dst ${dst} is ${familyName(cidr.family)} but gw ${gw} is ${
          familyName(ip.family)
        }; use a gateway of the destination's family`,
      );
    }
    return { dst: formatCIDR(cidr), gw: formatIP(ip.family, ip.value) };
  });
}

/** Parses `ipam.spidernet.io/default-route-nic`: the name of the NIC that should hold the default route. */
export function parseDefaultRouteNIC(value: string): string {
  checkInterfaceName(ANNOTATION.defaultRouteNIC, value, value, "the value");
  return value;
}

/**
 * Parses namespace annotation `ipam.spidernet.io/default-ipv4-ippool` or `default-ipv6-ippool`: a JSON array
 * of pool names or globs.
 *
 * ```ts
 * parseNamespaceDefaultPools(ANNOTATION.defaultIPv4IPPool, '["v4-a","v4-*"]'); // ["v4-a", "v4-*"]
 * ```
 */
export function parseNamespaceDefaultPools(key: string, value: string): string[] {
  const shape = `["pool-a","pool-b"]`;
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    throw new AnnotationError(
      key,
      value,
      `not valid JSON; expected a JSON array of pool names like ${shape}`,
    );
  }
  return poolNameList(key, value, v, "the value", shape);
}

/**
 * Parses `k8s.v1.cni.cncf.io/networks`: a comma list of `[namespace/]name[@ifname]` or a JSON list of
 * `{"name", "namespace"?, "interface"?, ...}`. Namespace-less entries get `defaultNamespace` (the pod's);
 * entry i without an interface is attached as `net<i+1>`.
 *
 * ```ts
 * parseMultusNetworks("macvlan-a,kube-system/sriov-b@ens1", "default");
 * // [{ namespace: "default", name: "macvlan-a", interface: "net1", ... },
 * //  { namespace: "kube-system", name: "sriov-b", interface: "ens1", ... }]
 * ```
 */
export function parseMultusNetworks(value: string, defaultNamespace: string): MultusNetwork[] {
  return parseMultus(ANNOTATION.multusNetworks, value, defaultNamespace, (i) => `net${i + 1}`);
}

/**
 * Parses `v1.multus-cni.io/default-network` (one network, attached as `eth0` unless another interface is
 * requested). Namespace-less ⇒ `defaultNamespace` (the agent's namespace).
 */
export function parseMultusDefaultNetwork(value: string, defaultNamespace: string): MultusNetwork {
  const key = ANNOTATION.multusDefaultNetwork;
  const list = parseMultus(key, value, defaultNamespace, () => DEFAULT_NIC);
  if (list.length !== 1) {
    throw new AnnotationError(
      key,
      value,
      `names ${list.length} networks; expected exactly one, e.g. "kube-system/calico"`,
    );
  }
  return list[0];
}

// ---------------------------------------------------------------------------------------------------------------

const MAX_QUOTED = 120;

/** Quotes an annotation value for an error message, cutting long values. */
function quoteValue(value: string): string {
  const cut = value.length > MAX_QUOTED ? value.slice(0, MAX_QUOTED) + "…" : value;
  return JSON.stringify(cut) + (value.length > MAX_QUOTED ? ` (${value.length} characters)` : "");
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseJSONObject(key: string, value: string, shape: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    throw new AnnotationError(key, value, `not valid JSON; expected an object like ${shape}`);
  }
  if (!isPlainObject(v)) throw new AnnotationError(key, value, `expected a JSON object like ${shape}`);
  return v;
}

function parseJSONArray(key: string, value: string, shape: string, nonEmpty = false): unknown[] {
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    throw new AnnotationError(key, value, `not valid JSON; expected a list like ${shape}`);
  }
  if (!Array.isArray(v)) throw new AnnotationError(key, value, `expected a JSON list like ${shape}`);
  if (nonEmpty && v.length === 0) {
    throw new AnnotationError(key, value, `the list is empty; expected at least one item like ${shape}`);
  }
  return v;
}

function optionalString(key: string, value: string, v: unknown, where: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new AnnotationError(key, value, `${where} must be a string`);
  return v;
}

function poolNameList(key: string, value: string, v: unknown, where: string, shape: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw new AnnotationError(key, value, `${where} must be a list of pool names; expected ${shape}`);
  }
  for (const name of v as string[]) {
    const problem = poolNameProblem(name);
    if (problem) throw new AnnotationError(key, value, `${where}: ${problem}`);
  }
  return v as string[];
}

function checkInterfaceName(key: string, value: string, nic: string, where: string): void {
  const problem = interfaceNameProblem(nic);
  if (problem) throw new AnnotationError(key, value, `${where} ${problem}`);
}

function subnetSource(
  key: string,
  value: string,
  obj: Record<string, unknown>,
  prefix: string,
  shape: string,
): SubnetSource {
  const nic = optionalString(key, value, obj.interface, `${prefix}interface`) || DEFAULT_NIC;
  checkInterfaceName(key, value, nic, `${prefix}interface`);
  const src: SubnetSource = { interface: nic };
  for (const fam of ["ipv4", "ipv6"] as const) {
    const v = obj[fam];
    if (v === undefined || v === null) continue;
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
      throw new AnnotationError(
        key,
        value,
        `${prefix}${fam} must be a list of SpiderSubnet names; expected ${shape}`,
      );
    }
    if (v.length === 0) continue;
    const name = v[0] as string;
    if (!isDNS1123Subdomain(name)) {
      throw new AnnotationError(
        key,
        value,
        `${prefix}${fam}[0] ${
          JSON.stringify(name)
        } is not a SpiderSubnet name (globs are not allowed here); ` +
          `use the exact name of a SpiderSubnet`,
      );
    }
    src[fam] = name;
  }
  if (src.ipv4 === undefined && src.ipv6 === undefined) {
    throw new AnnotationError(
      key,
      value,
      `${
        prefix === "" ? "the value" : prefix.slice(0, -1)
      } names no subnet; give at least one of "ipv4" or ` +
        `"ipv6", e.g. ${shape}`,
    );
  }
  return src;
}

function parseMultus(
  key: string,
  value: string,
  defaultNamespace: string,
  defaultNIC: (index: number) => string,
): MultusNetwork[] {
  const shape = `"ns-a/net-a@net1,net-b" or [{"name":"net-a","namespace":"ns-a","interface":"net1"}]`;
  const text = value.trim();
  if (text === "") throw new AnnotationError(key, value, `the value is empty; expected ${shape}`);
  const out: MultusNetwork[] = [];
  if (text.startsWith("[")) {
    let list: unknown;
    try {
      list = JSON.parse(text);
    } catch {
      throw new AnnotationError(key, value, `not valid JSON; expected ${shape}`);
    }
    if (!Array.isArray(list)) throw new AnnotationError(key, value, `expected ${shape}`);
    list.forEach((raw, i) => {
      if (!isPlainObject(raw)) {
        throw new AnnotationError(key, value, `item [${i}] is not an object; expected ${shape}`);
      }
      const name = optionalString(key, value, raw.name, `item [${i}].name`) ?? "";
      const ns = optionalString(key, value, raw.namespace, `item [${i}].namespace`) || defaultNamespace;
      const nic = optionalString(key, value, raw.interface, `item [${i}].interface`) ?? "";
      checkMultusName(key, value, ns, name, `item [${i}]`);
      if (nic !== "") checkInterfaceName(key, value, nic, `item [${i}].interface`);
      out.push({
        namespace: ns,
        name,
        interface: nic !== "" ? nic : defaultNIC(i),
        interfaceRequested: nic !== "",
        raw,
      });
    });
    return out;
  }
  text.split(",").forEach((part, i) => {
    const item = part.trim();
    let rest = item;
    let nic = "";
    const at = rest.indexOf("@");
    if (at !== -1) {
      if (rest.indexOf("@", at + 1) !== -1) {
        throw new AnnotationError(
          key,
          value,
          `${JSON.stringify(item)} has more than one "@"; expected ${shape}`,
        );
      }
      nic = rest.slice(at + 1);
      rest = rest.slice(0, at);
      checkInterfaceName(key, value, nic, `the interface of ${JSON.stringify(item)}`);
    }
    let ns = defaultNamespace;
    const slash = rest.indexOf("/");
    if (slash !== -1) {
      if (rest.indexOf("/", slash + 1) !== -1) {
        throw new AnnotationError(
          key,
          value,
          `${JSON.stringify(item)} has more than one "/"; expected ${shape}`,
        );
      }
      ns = rest.slice(0, slash);
      rest = rest.slice(slash + 1);
    }
    checkMultusName(key, value, ns, rest, JSON.stringify(item));
    out.push({
      namespace: ns,
      name: rest,
      interface: nic !== "" ? nic : defaultNIC(i),
      interfaceRequested: nic !== "",
    });
  });
  return out;
}

function checkMultusName(key: string, value: string, ns: string, name: string, where: string): void {
  if (!isDNS1123Label(ns)) {
    throw new AnnotationError(
      key,
      value,
      `${where}: namespace ${JSON.stringify(ns)} is not a valid namespace name; use lower-case letters, ` +
        `digits and "-" (at most 63 characters)`,
    );
  }
  if (!isDNS1123Subdomain(name)) {
    throw new AnnotationError(
      key,
      value,
      `${where}: network name ${JSON.stringify(name)} is not a valid NetworkAttachmentDefinition name; use ` +
        `lower-case letters, digits, "-" and "."`,
    );
  }
}
