// Which pools a pod may draw from, per NIC and family (Spiderpool's `getPoolCandidates`). Sources are tried in
// priority order and the first one present wins entirely: subnet annotations (auto-pools), `ippools`,
// `ippool`, namespace defaults, CNI config defaults, then every pool with `spec.default: true`.

import {
  parseIPPoolAnnotation,
  parseIPPoolsAnnotation,
  parseNamespaceDefaultPools,
  parseSubnetAnnotation,
  parseSubnetsAnnotation,
  type SubnetSource,
} from "../api/annotations.ts";
import { globMatch } from "../api/annotations.ts";
import { ANNOTATION, DEFAULT_NIC } from "../api/constants.ts";
import type { SpiderIPPool } from "../api/types.ts";
import type { Family } from "../ip/mod.ts";
import { poolFamily } from "./pool.ts";
import type { TopController } from "./workload.ts";

/** ConfigMap switches that shape candidate selection. */
export interface CandidateFlags {
  enableIPv4: boolean;
  enableIPv6: boolean;
  enableSpiderSubnet: boolean;
  enableAutoPoolForApplication: boolean;
}

/** The CNI IPAM config's pool defaults (`default_ipv4_ippool`, `default_ipv6_ippool`, `clean_gateway`). */
export interface CNIDefaults {
  ipv4: readonly string[];
  ipv6: readonly string[];
  cleanGateway: boolean;
}

export interface CandidateInput {
  pod: {
    name: string;
    namespace: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    nodeName?: string;
  };
  namespace: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  /** The NIC being set up (`CNI_IFNAME`). */
  ifName: string;
  cniDefaults: CNIDefaults;
  /** Every SpiderIPPool (from the cache): globs and `spec.default` are resolved against them. */
  pools: readonly SpiderIPPool[];
  flags: CandidateFlags;
  /** The pod's top controller; needed only to reject orphan pods using subnet annotations. */
  top?: TopController;
}

/** Where the candidates came from, by the name a user would look for ("subnet": the application's auto-pools). */
export type CandidateSource = "ippools" | "ippool" | "namespace" | "cni" | "default" | "subnet";

/** The pools one NIC may use, per family, in the order written (globs expanded). */
export interface NICCandidate {
  /** NIC name; in no-name mode "eth0" for the first item and "" for the others (named by later ADDs). */
  nic: string;
  /** Position of the NIC in the `ippools` annotation (0 for every other source). */
  index: number;
  ipv4: string[];
  ipv6: string[];
  /** Leave out the default route through the pool's gateway. */
  cleanGateway: boolean;
}

/** Candidates from pools. `nics` has one entry per NIC to allocate now (several for a multi-NIC `ippools`). */
export interface PoolCandidates {
  kind: "pools";
  source: CandidateSource;
  /** True for an `ippools` annotation whose items name no interface. */
  noNameMode: boolean;
  nics: NICCandidate[];
}

/**
 * Candidates from SpiderSubnet annotations: the auto-pool path, which finds or creates the application's
 * pools before allocating (handled outside this module).
 */
export interface SubnetCandidates {
  kind: "subnet";
  /** `ipam.spidernet.io/subnets` or `ipam.spidernet.io/subnet`. */
  annotation: string;
  /** The source for `ifName`; disabled families already removed. */
  subnet: SubnetSource;
  /** Every NIC's source, as written. */
  all: SubnetSource[];
}

export type Candidates = PoolCandidates | SubnetCandidates;

/** The pod's pool selection cannot be satisfied as written; `source` names the annotation or config key. */
export class PoolSelectionError extends Error {
  readonly source: string;
  constructor(source: string, message: string) {
    super(message);
    this.name = "PoolSelectionError";
    this.source = source;
  }
}

/**
 * The candidate pools of a pod for the NIC `input.ifName` (and, with a multi-NIC `ippools` annotation, for
 * every listed NIC). Throws AnnotationError for a malformed annotation and PoolSelectionError when the
 * selection cannot be used.
 *
 * ```ts
 * poolCandidates({ ...input, pod: { ...pod, annotations: { "ipam.spidernet.io/ippool": '{"ipv4":["v4-a"]}' } } });
 * // { kind: "pools", source: "ippool", noNameMode: false,
 * //   nics: [{ nic: "eth0", index: 0, ipv4: ["v4-a"], ipv6: [], cleanGateway: false }] }
 * ```
 */
export function poolCandidates(input: CandidateInput): Candidates {
  const podAnno = input.pod.annotations ?? {};
  const nsAnno = input.namespace.annotations ?? {};
  const { flags, ifName } = input;

  // 1. SpiderSubnet annotations.
  const subnetKey = nonEmpty(podAnno[ANNOTATION.subnets])
    ? ANNOTATION.subnets
    : nonEmpty(podAnno[ANNOTATION.subnet])
    ? ANNOTATION.subnet
    : undefined;
  if (subnetKey !== undefined && flags.enableSpiderSubnet) {
    return subnetCandidates(input, subnetKey, podAnno[subnetKey]);
  }

  // 2. ipam.spidernet.io/ippools
  if (nonEmpty(podAnno[ANNOTATION.ippools])) {
    const parsed = parseIPPoolsAnnotation(podAnno[ANNOTATION.ippools]);
    const key = ANNOTATION.ippools;
    let nics: NICCandidate[];
    if (parsed.named) {
      if (!parsed.items.some((it) => it.interface === ifName)) {
        const listed = parsed.items.map((it) => JSON.stringify(it.interface)).join(", ");
        throw new PoolSelectionError(
          key,
          `annotation ${key} has no item for interface ${JSON.stringify(ifName)} (it lists ${listed}); ` +
            `add {"interface":${JSON.stringify(ifName)},"ipv4":[...]} or remove the NIC from the pod`,
        );
      }
      nics = parsed.items.map((it, index) =>
        nicCandidate(input, key, it.interface!, index, it.ipv4, it.ipv6, it.cleanGateway)
      );
    } else {
      nics = parsed.items.map((it, index) =>
        nicCandidate(input, key, index === 0 ? DEFAULT_NIC : "", index, it.ipv4, it.ipv6, it.cleanGateway)
      );
    }
    return { kind: "pools", source: "ippools", noNameMode: !parsed.named, nics };
  }

  // 3. ipam.spidernet.io/ippool
  if (nonEmpty(podAnno[ANNOTATION.ippool])) {
    const p = parseIPPoolAnnotation(podAnno[ANNOTATION.ippool]);
    return single("ippool", nicCandidate(input, ANNOTATION.ippool, ifName, 0, p.ipv4, p.ipv6));
  }

  // 4. Namespace defaults (used when either family is set).
  const ns4 = nonEmpty(nsAnno[ANNOTATION.defaultIPv4IPPool])
    ? parseNamespaceDefaultPools(ANNOTATION.defaultIPv4IPPool, nsAnno[ANNOTATION.defaultIPv4IPPool])
    : [];
  const ns6 = nonEmpty(nsAnno[ANNOTATION.defaultIPv6IPPool])
    ? parseNamespaceDefaultPools(ANNOTATION.defaultIPv6IPPool, nsAnno[ANNOTATION.defaultIPv6IPPool])
    : [];
  if (ns4.length > 0 || ns6.length > 0) {
    const source = `namespace ${JSON.stringify(input.namespace.name)} annotations ` +
      `${ANNOTATION.defaultIPv4IPPool}/${ANNOTATION.defaultIPv6IPPool}`;
    return single("namespace", nicCandidate(input, source, ifName, 0, ns4, ns6));
  }

  // 5. CNI IPAM config.
  const { cniDefaults } = input;
  if (cniDefaults.ipv4.length > 0 || cniDefaults.ipv6.length > 0) {
    const source = "CNI IPAM config default_ipv4_ippool/default_ipv6_ippool";
    return single("cni", nicCandidate(input, source, ifName, 0, cniDefaults.ipv4, cniDefaults.ipv6));
  }

  // 6. Cluster default pools.
  const d4 = defaultPoolNames(input.pools, 4);
  const d6 = defaultPoolNames(input.pools, 6);
  if (d4.length === 0 && d6.length === 0) {
    throw new PoolSelectionError(
      "default",
      `no IPPool available, no pool selection rules of any type are specified: pod ` +
        `${input.pod.namespace}/${input.pod.name} has no ${ANNOTATION.ippool}/${ANNOTATION.ippools} ` +
        `annotation, its namespace no ${ANNOTATION.defaultIPv4IPPool}, the CNI config no ` +
        `default_ipv4_ippool, and no SpiderIPPool has spec.default: true`,
    );
  }
  return single("default", nicCandidate(input, "SpiderIPPools with spec.default", ifName, 0, d4, d6));
}

/** The names of the pools of `family` with `spec.default: true`, sorted: the last candidate source. */
export function defaultPoolNames(pools: readonly SpiderIPPool[], family: Family): string[] {
  return pools.filter((p) => p.spec?.default === true && poolFamily(p) === family).map((p) => p.metadata.name)
    .sort();
}

function single(source: CandidateSource, nic: NICCandidate): PoolCandidates {
  return { kind: "pools", source, noNameMode: false, nics: [nic] };
}

function nonEmpty(v: string | undefined): v is string {
  return v !== undefined && v.trim() !== "";
}

/** One NIC's candidate: globs expanded, duplicates rejected, disabled families dropped. */
function nicCandidate(
  input: CandidateInput,
  source: string,
  nic: string,
  index: number,
  ipv4: readonly string[],
  ipv6: readonly string[],
  cleanGateway?: boolean,
): NICCandidate {
  const { flags } = input;
  const v4 = flags.enableIPv4 ? expandPoolNames(ipv4, 4, input.pools, source) : [];
  const v6 = flags.enableIPv6 ? expandPoolNames(ipv6, 6, input.pools, source) : [];
  const label = nic === "" ? `NIC #${index}` : `NIC ${JSON.stringify(nic)}`;
  if (v4.length === 0 && v6.length === 0) {
    const enabled = [flags.enableIPv4 ? "IPv4" : "", flags.enableIPv6 ? "IPv6" : ""].filter((x) => x);
    const patterns = [...(flags.enableIPv4 ? ipv4 : []), ...(flags.enableIPv6 ? ipv6 : [])].filter(isGlob);
    const unmatched = patterns.length > 0
      ? `; pattern ${patterns.map((p) => JSON.stringify(p)).join(", ")} matches no SpiderIPPool`
      : "";
    throw new PoolSelectionError(
      source,
      `no IPPool available for ${label}: ${source} names no pool of an enabled family (enabled: ${
        enabled.join(", ") || "none"
      })${unmatched}; add an ${enabled[0] ?? "IPv4"} pool for this NIC`,
    );
  }
  return { nic, index, ipv4: v4, ipv6: v6, cleanGateway: cleanGateway ?? input.cniDefaults.cleanGateway };
}

/**
 * Expands globs (`*`, `?`, `[...]`) against the names of pools of `family`, sorted by name, in place of the
 * pattern; a pattern matching nothing contributes nothing (as upstream). A name listed twice is an error; a
 * pool also matched by a glob is kept once, at its first place.
 *
 * ```ts
 * expandPoolNames(["v4-b", "v4-*"], 4, pools, "ipam.spidernet.io/ippool"); // ["v4-b", "v4-a", "v4-c"]
 * ```
 */
export function expandPoolNames(
  names: readonly string[],
  family: Family,
  pools: readonly SpiderIPPool[],
  source: string,
): string[] {
  const explicit = new Set<string>();
  for (const n of names) {
    if (isGlob(n)) continue;
    if (explicit.has(n)) {
      throw new PoolSelectionError(
        source,
        `${source} lists SpiderIPPool ${JSON.stringify(n)} twice for IPv${family}; list each pool once`,
      );
    }
    explicit.add(n);
  }
  const ofFamily = pools.filter((p) => poolFamily(p) === family).map((p) => p.metadata.name).sort();
  const out: string[] = [];
  const seen = new Set<string>();
  for (const n of names) {
    if (!isGlob(n)) {
      if (!seen.has(n)) out.push(n);
      seen.add(n);
      continue;
    }
    const matched = ofFamily.filter((p) => globMatch(n, p));
    for (const p of matched) {
      if (seen.has(p) || explicit.has(p)) continue;
      seen.add(p);
      out.push(p);
    }
  }
  return out;
}

function isGlob(name: string): boolean {
  return /[*?[\\]/.test(name);
}

function subnetCandidates(input: CandidateInput, key: string, value: string): SubnetCandidates {
  const { flags, ifName } = input;
  if (!flags.enableAutoPoolForApplication) {
    throw new PoolSelectionError(
      key,
      `annotation ${key} asks for an auto-created pool, but enableAutoPoolForApplication is false in ` +
        `ConfigMap spiderpool-conf; name pools with ${ANNOTATION.ippool} instead, or enable auto-pools`,
    );
  }
  if (input.top !== undefined && input.top.kind === "Pod" && input.top.apiVersion === "v1") {
    throw new PoolSelectionError(
      key,
      `annotation ${key} needs a controller (Deployment, StatefulSet, ...): auto-pools are created per ` +
        `application, and pod ${input.pod.namespace}/${input.pod.name} has none; use ${ANNOTATION.ippool}`,
    );
  }
  const all = key === ANNOTATION.subnets ? parseSubnetsAnnotation(value) : [parseSubnetAnnotation(value)];
  const mine = all.find((s) => s.interface === ifName);
  if (mine === undefined) {
    throw new PoolSelectionError(
      key,
      `annotation ${key} has no item for interface ${JSON.stringify(ifName)}; add ` +
        `{"interface":${JSON.stringify(ifName)},"ipv4":["<subnet>"]}`,
    );
  }
  const subnet: SubnetSource = { interface: mine.interface };
  if (flags.enableIPv4 && mine.ipv4 !== undefined) subnet.ipv4 = mine.ipv4;
  if (flags.enableIPv6 && mine.ipv6 !== undefined) subnet.ipv6 = mine.ipv6;
  if (subnet.ipv4 === undefined && subnet.ipv6 === undefined) {
    throw new PoolSelectionError(
      key,
      `annotation ${key} names no SpiderSubnet of an enabled family for interface ${JSON.stringify(ifName)}`,
    );
  }
  return { kind: "subnet", annotation: key, subnet, all };
}
