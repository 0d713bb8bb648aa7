// SpiderSubnet auto-pools (Spiderpool's application controller and subnet manager, spec §5 and §4.5) as pure
// rules: how many replicas an application has, how big its pool must be, what the pool is called and carries,
// which addresses the subnet pre-allocates to it (`status.controlledIPPools`), when a pool may shrink, and when
// a pool or a pre-allocation is left over from an application that is gone. The controller and the agent
// read objects, call these, and write what they say (src/ipam/autopool_ensure.ts orders the writes).

import {
  type AnnotationError,
  parsePoolIPNumber,
  parsePoolReclaim,
  parseSubnetAnnotation,
  parseSubnetsAnnotation,
  type PoolIPNumber,
  type SubnetSource,
} from "../api/annotations.ts";
import { decodeAllocatedIPs, formatApplicationKey, parseApplicationKey } from "../api/allocated.ts";
import { ANNOTATION, API_VERSION, FINALIZER, IP_VERSION_LABEL_VALUE, KIND, LABEL } from "../api/constants.ts";
import { cidrLabelValue, defaultReservedIP } from "../api/defaults.ts";
import type {
  LabelSelector,
  OwnerReference,
  SpiderIPPool,
  SpiderReservedIP,
  SpiderSubnet,
} from "../api/types.ts";
import { labelValueProblem } from "../api/validate/names.ts";
import { type Family, IPRangeSet, type Range } from "../ip/mod.ts";
import { controllerOf, type TopController } from "./workload.ts";

export type { AnnotationError };

/** The application kinds the controller makes pools for, with their API group version and resource. */
export const NATIVE_APPS: Readonly<Record<string, { apiVersion: string; plural: string }>> = {
  Deployment: { apiVersion: "apps/v1", plural: "deployments" },
  ReplicaSet: { apiVersion: "apps/v1", plural: "replicasets" },
  StatefulSet: { apiVersion: "apps/v1", plural: "statefulsets" },
  DaemonSet: { apiVersion: "apps/v1", plural: "daemonsets" },
  Job: { apiVersion: "batch/v1", plural: "jobs" },
  CronJob: { apiVersion: "batch/v1", plural: "cronjobs" },
};

/** True for the six kinds the controller sizes pools for; any other top controller is "third-party". */
export function isNativeApp(app: { apiVersion: string; kind: string }): boolean {
  return NATIVE_APPS[app.kind]?.apiVersion === app.apiVersion;
}

/** The parts of a Pod template auto-pools read. */
export interface PodTemplate {
  metadata?: { annotations?: Record<string, string> | null; labels?: Record<string, string> | null } | null;
  spec?: { hostNetwork?: boolean | null } | null;
}

/** The parts of a Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or CronJob auto-pools read. */
export interface AppObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    ownerReferences?: OwnerReference[];
    deletionTimestamp?: string;
  };
  spec?: {
    replicas?: number | null;
    parallelism?: number | null;
    completions?: number | null;
    template?: PodTemplate | null;
    jobTemplate?: {
      spec?:
        | { parallelism?: number | null; completions?: number | null; template?: PodTemplate | null }
        | null;
    } | null;
  } | null;
  status?: { desiredNumberScheduled?: number | null } | null;
}

/**
 * Pods a Job (or each Job of a CronJob) runs at once, as upstream counts them: only parallelism ⇒ parallelism,
 * only completions ⇒ completions, both ⇒ completions, a 0 counts as 1, neither ⇒ 1.
 *
 * ```ts
 * jobPodCount(3, undefined); // 3
 * jobPodCount(2, 5); // 5
 * ```
 */
export function jobPodCount(parallelism?: number | null, completions?: number | null): number {
  const p = parallelism ?? undefined;
  const c = completions ?? undefined;
  if (c !== undefined) return c === 0 ? 1 : c;
  if (p !== undefined) return p === 0 ? 1 : p;
  return 1;
}

/**
 * The replica count an auto-pool is sized by: `spec.replicas` (nil ⇒ 0) for Deployments, ReplicaSets and
 * StatefulSets, `status.desiredNumberScheduled` for DaemonSets, jobPodCount for Jobs and CronJobs.
 */
export function appReplicas(kind: string, app: AppObject): number {
  const spec = app.spec ?? {};
  switch (kind) {
    case "Deployment":
    case "ReplicaSet":
    case "StatefulSet":
      return spec.replicas ?? 0;
    case "DaemonSet":
      return app.status?.desiredNumberScheduled ?? 0;
    case "Job":
      return jobPodCount(spec.parallelism, spec.completions);
    case "CronJob":
      return jobPodCount(spec.jobTemplate?.spec?.parallelism, spec.jobTemplate?.spec?.completions);
    default:
      throw new Error(`internal error: ${kind} is not an application kind auto-pools are sized for`);
  }
}

/** The Pod template of an application (a CronJob's is in its jobTemplate). */
export function podTemplateOf(kind: string, app: AppObject): PodTemplate | undefined {
  const spec = app.spec ?? {};
  return (kind === "CronJob" ? spec.jobTemplate?.spec?.template : spec.template) ?? undefined;
}

/**
 * Why the controller makes no pool for `app`, or undefined when it does: hostNetwork pods need no address; a
 * ReplicaSet of a Deployment and a Job of a CronJob are sized through their owner (the pods' top controller);
 * a template without `ipam.spidernet.io/subnet(s)` uses ordinary pools.
 */
export function appSkipReason(kind: string, app: AppObject): string | undefined {
  const owner = controllerOf(app.metadata.ownerReferences);
  if (kind === "ReplicaSet" && owner?.apiVersion === "apps/v1" && owner.kind === "Deployment") {
    return `owned by Deployment ${owner.name}, whose pool it uses`;
  }
  if (kind === "Job" && owner?.apiVersion === "batch/v1" && owner.kind === "CronJob") {
    return `owned by CronJob ${owner.name}, whose pool it uses`;
  }
  const template = podTemplateOf(kind, app);
  if (template?.spec?.hostNetwork === true) return "its pods use the host network";
  const anno = template?.metadata?.annotations ?? {};
  if (!hasSubnetAnnotation(anno)) return `its pod template has no ${ANNOTATION.subnet}(s) annotation`;
  return undefined;
}

/** True when the annotations ask for auto-pools (`ipam.spidernet.io/subnets` or `…/subnet`, non-empty). */
export function hasSubnetAnnotation(annotations: Readonly<Record<string, string>>): boolean {
  return [ANNOTATION.subnets, ANNOTATION.subnet].some((k) => (annotations[k] ?? "").trim() !== "");
}

/** What an application's pod template asks of its auto-pools. */
export interface AutoPoolConfig {
  /** `ipam.spidernet.io/subnets` or `ipam.spidernet.io/subnet`: where the sources came from. */
  annotation: string;
  /** One per NIC: the subnet of each family. */
  sources: SubnetSource[];
  /** `ipam.spidernet.io/ippool-ip-number`, or the cluster default `+N` when absent. */
  ipNumber: PoolIPNumber;
  /** True unless the annotation was given: whether `ipNumber` is the cluster default. */
  defaulted: boolean;
  /** `ipam.spidernet.io/ippool-reclaim` (default true): delete the pools with the application. */
  reclaim: boolean;
}

/**
 * Reads the auto-pool annotations of a pod template (or pod); undefined when it has neither subnet annotation.
 * `clusterDefault` is the ConfigMap's `clusterSubnetDefaultFlexibleIPNumber` (src/api/config.ts reads both
 * upstream keys). Throws AnnotationError for a malformed value.
 *
 * ```ts
 * autoPoolConfig({ "ipam.spidernet.io/subnet": '{"ipv4":["s4"]}' }, 1);
 * // { annotation: "ipam.spidernet.io/subnet", sources: [{ interface: "eth0", ipv4: "s4" }],
 * //   ipNumber: { flexible: true, n: 1 }, defaulted: true, reclaim: true }
 * ```
 */
export function autoPoolConfig(
  annotations: Readonly<Record<string, string>> | null | undefined,
  clusterDefault: number,
): AutoPoolConfig | undefined {
  const anno = annotations ?? {};
  const nonEmpty = (k: string) => (anno[k] ?? "").trim() !== "";
  let annotation: string;
  let sources: SubnetSource[];
  if (nonEmpty(ANNOTATION.subnets)) {
    annotation = ANNOTATION.subnets;
    sources = parseSubnetsAnnotation(anno[annotation]);
  } else if (nonEmpty(ANNOTATION.subnet)) {
    annotation = ANNOTATION.subnet;
    sources = [parseSubnetAnnotation(anno[annotation])];
  } else {
    return undefined;
  }
  const rawNumber = anno[ANNOTATION.ippoolIPNumber];
  const given = rawNumber !== undefined;
  const ipNumber = given ? parsePoolIPNumber(rawNumber) : { flexible: true, n: clusterDefault };
  const rawReclaim = anno[ANNOTATION.ippoolReclaim];
  const reclaim = rawReclaim === undefined ? true : parsePoolReclaim(rawReclaim);
  return { annotation, sources, ipNumber, defaulted: !given, reclaim };
}

/** The pool annotation `ipam.spidernet.io/ippool-ip-number`: `+N` (flexible) or `N` (fixed). */
export function ipNumberAnnotation(n: PoolIPNumber): string {
  return n.flexible ? `+${n.n}` : String(n.n);
}

/** The size a pool must have: replicas + N when flexible, N when fixed. */
export function desiredIPCount(n: PoolIPNumber, replicas: number): number {
  return n.flexible ? replicas + n.n : n.n;
}

/** One pool an application needs: for one NIC and family, from one SpiderSubnet. */
export interface AutoPoolWant {
  subnet: string;
  family: Family;
  ifName: string;
}

/** The pools an application needs: one per NIC and enabled family its sources name, in annotation order. */
export function autoPoolWants(
  config: Pick<AutoPoolConfig, "sources">,
  flags: { enableIPv4: boolean; enableIPv6: boolean },
): AutoPoolWant[] {
  const out: AutoPoolWant[] = [];
  for (const s of config.sources) {
    if (flags.enableIPv4 && s.ipv4 !== undefined) {
      out.push({ subnet: s.ipv4, family: 4, ifName: s.interface });
    }
    if (flags.enableIPv6 && s.ipv6 !== undefined) {
      out.push({ subnet: s.ipv6, family: 6, ifName: s.interface });
    }
  }
  return out;
}

/** Longest Kubernetes object name (DNS-1123 subdomain). */
const MAX_NAME = 253;
/** Characters of the application UID a pool name carries. */
const UID_CHARS = 5;

/**
 * The name of an auto-pool: `auto{4|6}-{app}-{if}-{uid5}` in lower case, uid5 being at most the first five
 * characters of the UID's last dash-separated segment; the application name is cut so that the whole name
 * stays within 253 characters.
 *
 * ```ts
 * autoPoolName("nginx", 4, "eth0", "5c1f2a4e-0d6b-4a8e-9a2b-9a2b3c4d5e6f"); // "auto4-nginx-eth0-9a2b3"
 * ```
 */
export function autoPoolName(appName: string, family: Family, ifName: string, uid: string): string {
  const segments = uid.split("-");
  const tail = segments[segments.length - 1].slice(0, UID_CHARS);
  // "auto4-" + app + "-" + if + "-" + tail
  const room = MAX_NAME - `auto${family}-`.length - 2 - tail.length - ifName.length;
  const app = appName.length > room ? appName.slice(0, Math.max(0, room)) : appName;
  return `auto${family}-${app}-${ifName}-${tail}`.toLowerCase();
}

/** `apps/v1` → `apps_v1`, `v1` → `v1`: the `owner-application-gv` label value. */
export function applicationGV(apiVersion: string): string {
  return apiVersion.replace("/", "_");
}

/** The `status.controlledIPPools[...].application` key of an application. */
export function applicationKey(
  app: Pick<TopController, "apiVersion" | "kind" | "namespace" | "name">,
): string {
  const { group, version } = splitAPIVersion(app.apiVersion);
  return formatApplicationKey({ group, version, kind: app.kind, namespace: app.namespace, name: app.name });
}

/** An application identity (no UID) from an application key; undefined when malformed. */
export function applicationFromKey(
  key: string,
): Pick<TopController, "apiVersion" | "kind" | "namespace" | "name"> | undefined {
  const a = parseApplicationKey(key);
  if (!a) return undefined;
  return {
    apiVersion: a.group === "" ? a.version : `${a.group}/${a.version}`,
    kind: a.kind,
    namespace: a.namespace,
    name: a.name,
  };
}

/** The application an auto-pool belongs to, from its owner-application labels (undefined when incomplete). */
export function poolApplication(
  pool: SpiderIPPool,
): (Pick<TopController, "apiVersion" | "kind" | "namespace" | "name"> & { uid?: string }) | undefined {
  const l = pool.metadata?.labels ?? {};
  const gv = l[LABEL.ownerApplicationGV];
  const kind = l[LABEL.ownerApplicationKind];
  const namespace = l[LABEL.ownerApplicationNamespace];
  const name = l[LABEL.ownerApplicationName];
  if (!gv || !kind || !namespace || !name) return undefined;
  const uid = l[LABEL.ownerApplicationUID];
  return { apiVersion: gv.replace("_", "/"), kind, namespace, name, ...(uid ? { uid } : {}) };
}

function splitAPIVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf("/");
  return slash === -1
    ? { group: "", version: apiVersion }
    : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

/** The podAffinity of an auto-pool: the five `ipam.spidernet.io/app-*` labels of its application. */
export function autoPoolPodAffinity(app: Pick<TopController, "apiVersion" | "kind" | "namespace" | "name">) {
  const { group, version } = splitAPIVersion(app.apiVersion);
  return {
    matchLabels: {
      [LABEL.appAPIGroup]: group,
      [LABEL.appAPIVersion]: version,
      [LABEL.appKind]: app.kind,
      [LABEL.appNamespace]: app.namespace,
      [LABEL.appName]: app.name,
    },
  } satisfies LabelSelector;
}

/** The value of `ipam.spidernet.io/ippool-reclaim`. */
export function reclaimLabel(reclaim: boolean): string {
  return reclaim ? "true" : "false";
}

/** An application that cannot have auto-pools as named (its name does not fit a label value). */
export class AutoPoolNameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AutoPoolNameError";
  }
}

/**
 * The labels of an auto-pool (§3.3): its subnet, application (group-version, kind, namespace, name, UID), NIC,
 * family, reclaim switch and CIDR. Throws AutoPoolNameError when the application's name is not a valid label
 * value (over 63 characters).
 */
export function autoPoolLabels(input: {
  app: TopController;
  subnet: SpiderSubnet;
  want: AutoPoolWant;
  reclaim: boolean;
}): Record<string, string> {
  const { app, subnet, want } = input;
  const problem = labelValueProblem(app.name);
  if (problem !== undefined) {
    throw new AutoPoolNameError(
      `${app.kind} ${app.namespace}/${app.name}: auto-created pools carry the application name in the label ` +
        `${LABEL.ownerApplicationName}, but ${problem}; use a name of at most 63 characters, or name pools ` +
        `with ${ANNOTATION.ippool}`,
    );
  }
  return {
    [LABEL.ownerSpiderSubnet]: subnet.metadata?.name ?? want.subnet,
    [LABEL.ownerApplicationGV]: applicationGV(app.apiVersion),
    [LABEL.ownerApplicationKind]: app.kind,
    [LABEL.ownerApplicationNamespace]: app.namespace,
    [LABEL.ownerApplicationName]: app.name,
    [LABEL.ownerApplicationUID]: app.uid,
    [LABEL.interface]: want.ifName,
    [LABEL.ippoolReclaim]: reclaimLabel(input.reclaim),
    [LABEL.ipVersion]: IP_VERSION_LABEL_VALUE[want.family],
    ...(subnet.spec?.subnet ? { [LABEL.ippoolCIDR]: cidrLabelValue(subnet.spec.subnet) } : {}),
  };
}

/**
 * A new auto-pool as upstream creates it: named by autoPoolName; subnet, gateway and routes of the SpiderSubnet;
 * podAffinity on the application; the SpiderSubnet as controller owner; the finalizer; the labels of
 * autoPoolLabels and the `ippool-ip-number` annotation; `spec.ips` = the pre-allocated addresses.
 */
export function newAutoPool(input: {
  app: TopController;
  subnet: SpiderSubnet;
  want: AutoPoolWant;
  reclaim: boolean;
  ipNumber: PoolIPNumber;
  ips: readonly string[];
  /** Extra labels (e.g. a test's selector), merged under the auto-pool labels. */
  extraLabels?: Record<string, string>;
}): SpiderIPPool {
  const { app, subnet, want } = input;
  const spec = subnet.spec;
  return {
    apiVersion: API_VERSION,
    kind: KIND.ippool,
    metadata: {
      name: autoPoolName(app.name, want.family, want.ifName, app.uid),
      labels: { ...input.extraLabels, ...autoPoolLabels(input) },
      annotations: { [ANNOTATION.ippoolIPNumber]: ipNumberAnnotation(input.ipNumber) },
      finalizers: [FINALIZER],
      ownerReferences: [{
        apiVersion: API_VERSION,
        kind: KIND.subnet,
        name: subnet.metadata?.name ?? want.subnet,
        uid: subnet.metadata?.uid ?? "",
        controller: true,
        blockOwnerDeletion: true,
      }],
    },
    spec: {
      ipVersion: want.family,
      subnet: spec.subnet,
      ips: [...input.ips],
      ...(spec.gateway ? { gateway: spec.gateway } : {}),
      ...(spec.routes ? { routes: structuredClone(spec.routes) } : {}),
      podAffinity: autoPoolPodAffinity(app),
    },
  } as SpiderIPPool;
}

/** True when `pool` carries the owner-application labels of `app` (any UID) for the NIC and family of `want`. */
export function isPoolOf(
  pool: SpiderIPPool,
  app: Pick<TopController, "apiVersion" | "kind" | "namespace" | "name">,
  want?: Pick<AutoPoolWant, "family" | "ifName">,
): boolean {
  const l = pool.metadata?.labels ?? {};
  return l[LABEL.ownerApplicationGV] === applicationGV(app.apiVersion) &&
    l[LABEL.ownerApplicationKind] === app.kind &&
    l[LABEL.ownerApplicationNamespace] === app.namespace &&
    l[LABEL.ownerApplicationName] === app.name &&
    (want === undefined ||
      (l[LABEL.interface] === want.ifName && l[LABEL.ipVersion] === IP_VERSION_LABEL_VALUE[want.family]));
}

/** The application's pool for `want` is in another SpiderSubnet: auto-pools never move (ApplicationSubnetChanged). */
export class SubnetChangedError extends Error {
  readonly pool: string;
  readonly from: string;
  constructor(app: TopController, want: AutoPoolWant, pool: string, from: string) {
    super(
      `${app.kind} ${app.namespace}/${app.name} now names ${KIND.subnet} ${
        JSON.stringify(want.subnet)
      } for IPv${want.family} on ${want.ifName}, but its auto-created ${KIND.ippool} ${
        JSON.stringify(pool)
      } ` +
        `belongs to ${KIND.subnet} ${JSON.stringify(from)}; an auto-created pool cannot move to another ` +
        `subnet: set the annotation back to ${JSON.stringify(from)}, or delete the application and create ` +
        `it again (with ${ANNOTATION.ippoolReclaim} "false", also delete the pool)`,
    );
    this.name = "SubnetChangedError";
    this.pool = pool;
    this.from = from;
  }
}

/**
 * The existing pool an application uses for `want`, as the controller finds it: the non-terminating pools
 * labelled for the application, NIC and family; a pool labelled `ippool-reclaim: "true"` of another UID is
 * skipped (it belongs to a deleted application of the same name and is being removed); one of the
 * application's own UID is preferred, else a pool kept with `ippool-reclaim: "false"` is reused. Throws
 * SubnetChangedError when that pool belongs to another SpiderSubnet.
 */
export function selectAutoPool(
  pools: readonly SpiderIPPool[],
  app: TopController,
  want: AutoPoolWant,
  subnet?: SpiderSubnet,
): SpiderIPPool | undefined {
  const mine = pools.filter((p) =>
    !p.metadata?.deletionTimestamp && isPoolOf(p, app, want) &&
    !(p.metadata?.labels?.[LABEL.ippoolReclaim] === "true" &&
      p.metadata?.labels?.[LABEL.ownerApplicationUID] !== app.uid)
  ).sort((a, b) => {
    const own = (p: SpiderIPPool) => p.metadata?.labels?.[LABEL.ownerApplicationUID] === app.uid ? 0 : 1;
    return own(a) - own(b) || (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? "");
  });
  const pool = mine[0];
  if (pool === undefined) return undefined;
  const from = pool.metadata?.labels?.[LABEL.ownerSpiderSubnet] ?? "";
  const cidrMoved = subnet?.spec?.subnet !== undefined && pool.spec?.subnet !== undefined &&
    cidrLabelValue(pool.spec.subnet) !== cidrLabelValue(subnet.spec.subnet);
  if (from !== want.subnet || cidrMoved) {
    throw new SubnetChangedError(app, want, pool.metadata?.name ?? "", from || (pool.spec?.subnet ?? ""));
  }
  return pool;
}

/**
 * The pool the agent serves a native application's pod from: exactly the labels the controller writes
 * (subnet, application with UID, NIC, family), not terminating. Undefined when there is none yet; an error
 * when several match (the pool set of the application is broken and needs a person).
 */
export function agentAutoPool(
  pools: readonly SpiderIPPool[],
  app: TopController,
  want: AutoPoolWant,
): SpiderIPPool | undefined {
  const found = pools.filter((p) =>
    !p.metadata?.deletionTimestamp && isPoolOf(p, app, want) &&
    p.metadata?.labels?.[LABEL.ownerSpiderSubnet] === want.subnet &&
    p.metadata?.labels?.[LABEL.ownerApplicationUID] === app.uid
  );
  if (found.length > 1) {
    const names = found.map((p) => JSON.stringify(p.metadata?.name)).join(", ");
    throw new Error(
      `${app.kind} ${app.namespace}/${app.name} has ${found.length} auto-created IPv${want.family} pools for ` +
        `${want.ifName} in ${KIND.subnet} ${
          JSON.stringify(want.subnet)
        } (${names}); one application has one ` +
        `pool per NIC and family: delete the extra ones`,
    );
  }
  return found[0];
}

/** The size of a pool as the agent compares it with the desired number: |ips − excludeIPs|. */
export function poolSize(pool: SpiderIPPool, family: Family): bigint {
  try {
    return IPRangeSet.parse(family, pool.spec?.ips ?? [])
      .subtract(IPRangeSet.parse(family, pool.spec?.excludeIPs ?? [])).count();
  } catch {
    return -1n;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Pre-allocation from the subnet

/** The subnet cannot give the pool the addresses it needs (upstream's message, then what to do). */
export class InsufficientSubnetIPsError extends Error {
  readonly required: bigint;
  readonly left: bigint;
  constructor(subnet: string, pool: string, required: bigint, left: bigint) {
    super(
      `failed to pre-allocate IPs for auto-created ${KIND.ippool} ${
        JSON.stringify(pool)
      } from ${KIND.subnet} ` +
        `${JSON.stringify(subnet)}: insufficient subnet FreeIPs, required '${required}' but only left ` +
        `'${left}'; add addresses to the subnet's spec.ips, or lower ${ANNOTATION.ippoolIPNumber} or the ` +
        `replicas`,
    );
    this.name = "InsufficientSubnetIPsError";
    this.required = required;
    this.left = left;
  }
}

/** A shrink would give back addresses pods still hold (upstream's message, then what happens next). */
export class PoolFreeIPsNotEnoughError extends Error {
  constructor(pool: string, giveBack: bigint, free: bigint) {
    super(
      `failed to scale down IPPool ${JSON.stringify(pool)} IPs: IPPool available free IPs are not enough ` +
        `(${giveBack} to give back, ${free} not allocated); it shrinks once its pods release their IPs`,
    );
    this.name = "PoolFreeIPsNotEnoughError";
  }
}

/** A pod holds an address of the pool that the subnet has pre-allocated to another pool: a person must decide. */
export class AllocatedElsewhereError extends Error {
  constructor(pool: string, subnet: string, ips: IPRangeSet) {
    super(
      `${KIND.ippool} ${JSON.stringify(pool)} has allocated ${ips.toStrings().join(", ")}, which ` +
        `${KIND.subnet} ${
          JSON.stringify(subnet)
        } pre-allocated to another pool (status.controlledIPPools); ` +
        `delete the pods holding them or remove them from the other pool`,
    );
    this.name = "AllocatedElsewhereError";
  }
}

export interface PreAllocationInput {
  subnetName: string;
  poolName: string;
  family: Family;
  /** The subnet's addresses: spec.ips − spec.excludeIPs. */
  subnetTotal: IPRangeSet;
  /** SpiderReservedIP addresses of the family: never pre-allocated. */
  reserved: IPRangeSet;
  /**
   * Addresses other pools have: their `controlledIPPools` entries and the addresses in their specs (a pool
   * the subnet reconciler has not recorded yet, or one whose entry shrank before its spec).
   */
  others: IPRangeSet;
  /** This pool's entry in `controlledIPPools`, when there is one. */
  entry?: IPRangeSet;
  /** The pool's spec.ips − excludeIPs, when the pool exists. */
  poolIPs?: IPRangeSet;
  /** Addresses of the pool with an allocation record (pods hold them). */
  allocated: IPRangeSet;
  desired: number;
}

/** What the pool should have, and how that differs from its pre-allocation now. */
export interface PreAllocation {
  ips: IPRangeSet;
  /** Taken from the subnet's free addresses (grow). */
  added: IPRangeSet;
  /** Given back to the subnet (shrink), all of them unallocated. */
  removed: IPRangeSet;
}

/**
 * The addresses an auto-pool should have, starting from whatever state a crash or a concurrent writer left
 * (upstream's preAllocateIPsFromSubnet, made level-triggered). The pool keeps its pre-allocation (or, when the
 * entry is missing, its spec), plus any address a pod holds; addresses another pool has are dropped unless a
 * pod holds them (then AllocatedElsewhereError). Growing takes the lowest free addresses of the subnet (total
 * − every other pool − reserved); shrinking gives back the lowest unallocated ones and fails when there are
 * too few.
 *
 * ```ts
 * planPreAllocation({ ..., subnetTotal: 192.0.2.10-19, others: 192.0.2.10-11, desired: 3, allocated: ∅ }).ips;
 * // 192.0.2.12-192.0.2.14
 * ```
 */
export function planPreAllocation(input: PreAllocationInput): PreAllocation {
  const { family, allocated, others } = input;
  const empty = IPRangeSet.empty(family);
  const held = input.entry ?? input.poolIPs ?? empty;
  const taken = allocated.intersect(others).subtract(held);
  if (!taken.isEmpty()) throw new AllocatedElsewhereError(input.poolName, input.subnetName, taken);
  // Allocated addresses are never dropped; an address another pool has, and no pod of this one holds, is.
  const current = held.union(allocated).subtract(others.subtract(allocated));
  const size = current.count();
  const desired = BigInt(input.desired);
  if (size < desired) {
    const free = input.subnetTotal.subtract(others).subtract(input.reserved).subtract(current);
    const need = desired - size;
    const left = free.count();
    if (left < need) {
      throw new InsufficientSubnetIPsError(input.subnetName, input.poolName, need, left);
    }
    const added = lowest(free, need);
    return { ips: current.union(added), added, removed: held.subtract(current) };
  }
  if (size > desired) {
    const unallocated = current.subtract(allocated);
    const giveBack = size - desired;
    if (unallocated.count() < giveBack) {
      throw new PoolFreeIPsNotEnoughError(input.poolName, giveBack, unallocated.count());
    }
    const removed = lowest(unallocated, giveBack);
    const ips = current.subtract(removed);
    return { ips, added: empty, removed: held.subtract(ips) };
  }
  return { ips: current, added: current.subtract(held), removed: held.subtract(current) };
}

/**
 * The lowest `n` addresses of `set` (all of it when smaller), by ranges: the cost grows with the ranges
 * walked, not with `n`.
 */
export function lowest(set: IPRangeSet, n: bigint): IPRangeSet {
  const out: Range[] = [];
  let left = n;
  for (const r of set.ranges) {
    if (left <= 0n) break;
    const size = r.end - r.start + 1n;
    if (size <= left) {
      out.push(r);
      left -= size;
    } else {
      out.push({ start: r.start, end: r.start + left - 1n });
      left = 0n;
    }
  }
  return IPRangeSet.fromRanges(set.family, out);
}

/** Every address of `family` in the non-terminating SpiderReservedIPs (malformed ones are left out). */
export function reservedAddresses(list: readonly SpiderReservedIP[], family: Family): IPRangeSet {
  let out = IPRangeSet.empty(family);
  for (const r of list) {
    if (r.metadata?.deletionTimestamp) continue;
    const f = defaultReservedIP(r).spec?.ipVersion;
    if (f !== family) continue;
    try {
      out = out.union(IPRangeSet.parse(family, r.spec?.ips ?? []));
    } catch {
      // The webhook refuses such objects; one that got in anyway reserves nothing.
    }
  }
  return out;
}

/** A pool's addresses (ips − excludeIPs) in `family`; empty when they do not parse. */
export function specAddresses(pool: SpiderIPPool, family: Family): IPRangeSet {
  try {
    return IPRangeSet.parse(family, pool.spec?.ips ?? [])
      .subtract(IPRangeSet.parse(family, pool.spec?.excludeIPs ?? []));
  } catch {
    return IPRangeSet.empty(family);
  }
}

/** The addresses of a pool with an allocation record (undecodable status counts as none). */
export function allocatedAddresses(pool: SpiderIPPool | undefined, family: Family): IPRangeSet {
  if (!pool) return IPRangeSet.empty(family);
  try {
    const ips = Object.keys(decodeAllocatedIPs(pool.status?.allocatedIPs, pool.metadata?.name ?? ""));
    return IPRangeSet.parse(family, ips.filter((ip) => ip.includes(":") === (family === 6)));
  } catch {
    return IPRangeSet.empty(family);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Leftovers of deleted applications

/** What is known of an application: present (with its UID), absent, or unknown (cannot be looked up now). */
export type AppPresence = { exists: true; uid: string } | { exists: false } | { exists: "unknown" };

/**
 * True when an auto-pool should be deleted because of its application: it is labelled `ippool-reclaim: "true"`
 * and its application is gone or is another one of the same name (another UID). Pools kept with reclaim off
 * stay, for a same-name application to reuse. A terminating pool is already on its way.
 */
export function reclaimablePool(pool: SpiderIPPool, app: AppPresence): boolean {
  const l = pool.metadata?.labels ?? {};
  if (pool.metadata?.deletionTimestamp || l[LABEL.ippoolReclaim] !== "true") return false;
  if (app.exists === "unknown") return false;
  return app.exists === false || l[LABEL.ownerApplicationUID] !== app.uid;
}

/**
 * The `controlledIPPools` entries of `application` to drop: those whose pool is gone (as `poolExists` says)
 * and that the application does not want (`wanted`: names of the pools it needs now). The application
 * controller writes an entry before creating its pool, so an entry the application still wants is kept.
 */
export function staleEntries(
  entries: Readonly<Record<string, { application?: string }>>,
  application: string,
  poolExists: (name: string) => boolean,
  wanted: ReadonlySet<string>,
): string[] {
  return Object.entries(entries)
    .filter(([name, e]) => e.application === application && !poolExists(name) && !wanted.has(name))
    .map(([name]) => name);
}
