// Pod resource injection (spec §9, last paragraph): a pod (or its namespace) annotated with
// `cni.spidernet.io/rdma-resource-inject` or `cni.spidernet.io/network-resource-inject` gets the networks of
// every SpiderMultusConfig labelled with the same key and value in `k8s.v1.cni.cncf.io/networks`, and the
// device-plugin resources those networks need (RDMA / SR-IOV resource names) as container limits. The rules
// are a pure plan from (pod, namespace annotations, labelled SMCs) to a JSON Patch or a refusal; the I/O
// around it (reading the namespace, listing the SMCs) and the AdmissionReview answer for `/mutate--v1-pod`
// are thin functions below it.

import { ANNOTATION, API_VERSION, KIND, PLURAL } from "../api/constants.ts";
import type { SpiderMultusConfig, SpiderpoolPools } from "../api/types.ts";
import { labelValueProblem } from "../api/validate/names.ts";
import { multusConfigNADName } from "../api/validate/multusconfig.ts";
import { type KubeHttp, NotFoundError } from "../kube/client.ts";
import { compareUTF8 } from "./gojson.ts";
import type { InjectionResult, PodInjectionMetrics } from "./metrics.ts";

/** The annotations that ask for injection, in the order they are looked for. */
export const INJECT_KEYS: readonly string[] = [
  ANNOTATION.rdmaResourceInject,
  ANNOTATION.networkResourceInject,
];
/** Extended resources of Spiderpool's network resource device plugin. */
export const MASTER_NIC_RESOURCE = (master: string) => `spidernet.io/${master}-nic`;
export const SUB_ENI_RESOURCE = "spidernet.io/sub-eni";

type Quantity = string | number;
interface Resources {
  limits?: Record<string, Quantity>;
  requests?: Record<string, Quantity>;
}

/** The parts of a Pod injection reads. */
export interface PodForInjection {
  metadata?: {
    name?: string;
    generateName?: string;
    namespace?: string;
    annotations?: Record<string, string>;
  };
  spec?: { containers?: { name?: string; resources?: Resources }[] };
}

/** Which annotation asked for injection, with which value, and where it was found. */
export interface InjectionRequest {
  key: string;
  value: string;
  source: "pod" | "namespace";
}

export interface InjectionOptions {
  /**
   * Spiderpool's network resource device plugin advertises `spidernet.io/<master>-nic` (masterNIC) and
   * `spidernet.io/sub-eni` (subENI); when enabled, injected pods request them too (limits and requests).
   */
  networkResources?: { masterNIC?: boolean; subENI?: boolean };
}

/** One RFC 6902 operation. */
export interface PatchOp {
  op: "add" | "replace";
  path: string;
  value: unknown;
}

export type InjectionPlan =
  | {
    action: "inject";
    request: InjectionRequest;
    /** The SpiderMultusConfigs used, sorted as their networks are listed. */
    configs: string[];
    /** The new `k8s.v1.cni.cncf.io/networks` value. */
    networks: string;
    /** Resources added to the first container, name → quantity (limits; device-plugin ones also requests). */
    resources: Record<string, string>;
    /** Empty when the pod already has everything. */
    patch: PatchOp[];
  }
  | { action: "refuse"; request: InjectionRequest; message: string };

/**
 * The annotation that asks for injection: the pod's rdma-resource-inject, else its network-resource-inject,
 * else the same two on its namespace (a tenant-wide default; a pod's own annotation always wins).
 */
export function injectionRequest(
  podAnnotations: Record<string, string> | undefined,
  namespaceAnnotations: Record<string, string> | undefined,
): InjectionRequest | undefined {
  for (
    const [source, annotations] of [["pod", podAnnotations], ["namespace", namespaceAnnotations]] as const
  ) {
    for (const key of INJECT_KEYS) {
      const value = annotations?.[key];
      if (value !== undefined) return { key, value, source };
    }
  }
  return undefined;
}

/** The label selector matching the SpiderMultusConfigs a request names (the SMC webhook copies the annotation
 * into this label). */
export function injectionSelector(req: InjectionRequest): string {
  return `${req.key}=${req.value}`;
}

/** Why `req.value` cannot select SpiderMultusConfigs (it is not a valid label value), or undefined. */
export function requestProblem(req: InjectionRequest): string | undefined {
  const problem = labelValueProblem(req.value);
  return problem && `${describe(req)}: ${problem}, so no ${KIND.multusConfig} can carry it`;
}

/** The device-plugin resource a pod needs for an SMC's network ("" when none) and where it is set. */
export function injectedResource(smc: SpiderMultusConfig): { resource: string; field: string } | undefined {
  const spec = smc.spec ?? {};
  switch (spec.cniType) {
    case "macvlan":
    case "ipvlan":
    case "vlan":
      return {
        resource: spec[spec.cniType]?.rdmaResourceName ?? "",
        field: `spec.${spec.cniType}.rdmaResourceName`,
      };
    case "sriov":
      return { resource: spec.sriov?.resourceName ?? "", field: "spec.sriov.resourceName" };
    case "ib-sriov":
      return { resource: spec.ibsriov?.resourceName ?? "", field: "spec.ibsriov.resourceName" };
    case "ipoib":
      // The IPoIB link is made from a host interface; there is no device-plugin resource to request.
      return { resource: "", field: "spec.ipoib.master" };
    default:
      return undefined;
  }
}

function poolsOf(smc: SpiderMultusConfig): SpiderpoolPools | undefined {
  const spec = smc.spec ?? {};
  switch (spec.cniType) {
    case "macvlan":
    case "ipvlan":
    case "vlan":
      return spec[spec.cniType]?.ippools;
    case "sriov":
      return spec.sriov?.ippools;
    case "ib-sriov":
      return spec.ibsriov?.ippools;
    case "ipoib":
      return spec.ipoib?.ippools;
  }
  return undefined;
}

/**
 * What orders the networks (the pod's NICs net1, net2, ... follow it): the master interface of
 * macvlan/ipvlan/vlan (the bond's name with several), the resource name of sriov and ib-sriov, the IPoIB
 * master; `namespace/name` breaks ties.
 */
export function nicKey(smc: SpiderMultusConfig): string {
  const spec = smc.spec ?? {};
  switch (spec.cniType) {
    case "macvlan":
    case "ipvlan":
    case "vlan": {
      const b = spec[spec.cniType];
      const master = b?.master ?? [];
      return master.length === 1 ? master[0] : b?.bond?.name ?? master.join(",");
    }
    case "sriov":
      return spec.sriov?.resourceName ?? "";
    case "ib-sriov":
      return spec.ibsriov?.resourceName ?? "";
    case "ipoib":
      return spec.ipoib?.master ?? "";
  }
  return "";
}

const nsName = (smc: SpiderMultusConfig) => `${smc.metadata?.namespace ?? ""}/${smc.metadata?.name ?? ""}`;

function describe(req: InjectionRequest): string {
  return `annotation ${req.key}=${JSON.stringify(req.value)} (on the ${req.source})`;
}

/**
 * Plans the injection for `pod` from the SpiderMultusConfigs labelled as `req` asks (from every namespace).
 * Refuses, saying why and what to do, when none matches, when one cannot be injected (cniType ovs or custom,
 * no RDMA resource for rdma-resource-inject, no pool where one is needed), or when the pod's networks
 * annotation cannot be read. Networks the pod already lists are kept first; resources a container already
 * declares are left as they are.
 */
export function planPodInjection(
  pod: PodForInjection,
  req: InjectionRequest,
  multusConfigs: readonly SpiderMultusConfig[],
  opts: InjectionOptions = {},
): InjectionPlan {
  const refuse = (message: string): InjectionPlan => ({ action: "refuse", request: req, message });
  const badValue = requestProblem(req);
  if (badValue) return refuse(badValue);
  const smcs = multusConfigs.filter((s) => !s.metadata?.deletionTimestamp);
  if (smcs.length === 0) {
    return refuse(
      `${describe(req)} asks for the networks of ${KIND.multusConfig}s labelled ${
        injectionSelector(req)
      }, but ` +
        `there is none; annotate the ${KIND.multusConfig}s to inject with ${req.key}: ${
          JSON.stringify(req.value)
        } ` +
        `(the webhook copies it into their labels), or remove the annotation`,
    );
  }
  const containers = pod.spec?.containers ?? [];
  if (containers.length === 0) return refuse(`the pod has no container to give the network resources to`);

  for (const smc of smcs) {
    const what = `${KIND.multusConfig} ${nsName(smc)}`;
    const res = injectedResource(smc);
    if (!res) {
      return refuse(
        `${what} has cniType ${smc.spec?.cniType ?? "custom"}, which resource injection does not support ` +
          `(only macvlan, ipvlan, vlan, sriov, ib-sriov and ipoib); remove its ${req.key} annotation`,
      );
    }
    const pools = poolsOf(smc);
    const hasPools = (pools?.ipv4?.length ?? 0) + (pools?.ipv6?.length ?? 0) > 0;
    const resource = smc.spec?.cniType === "ipoib" ? smc.spec.ipoib?.master ?? "" : res.resource;
    if (req.key === ANNOTATION.rdmaResourceInject) {
      if (!resource) {
        return refuse(
          `${what} has no RDMA resource in ${res.field}; set it, or remove its ${req.key} annotation`,
        );
      }
      if (!hasPools) {
        return refuse(`${what} has no ippools; give it a pool so the injected NIC gets an address`);
      }
    } else if (resource && !hasPools) {
      return refuse(`${what} has no ippools; give it a pool so the injected NIC gets an address`);
    }
  }

  const sorted = [...smcs].sort((a, b) =>
    compareUTF8(nicKey(a), nicKey(b)) || compareUTF8(nsName(a), nsName(b))
  );
  const ns = pod.metadata?.namespace ?? "";
  const annotations = pod.metadata?.annotations;
  const current = annotations?.[ANNOTATION.multusNetworks];
  let networks: string;
  try {
    networks = mergeNetworks(
      current,
      sorted.map((s) => ({ namespace: s.metadata?.namespace ?? "", name: multusConfigNADName(s) })),
      ns,
    );
  } catch (err) {
    return refuse(
      `the pod's ${ANNOTATION.multusNetworks} annotation ${JSON.stringify(current)} cannot be read ` +
        `(${(err as Error).message}); write it as "ns/name,ns/name" or as a JSON list of network selections`,
    );
  }

  const patch: PatchOp[] = [];
  if (networks !== current) {
    if (annotations === undefined) {
      patch.push({
        op: "add",
        path: "/metadata/annotations",
        value: { [ANNOTATION.multusNetworks]: networks },
      });
    } else {
      patch.push({
        op: current === undefined ? "add" : "replace",
        path: `/metadata/annotations/${escapePointer(ANNOTATION.multusNetworks)}`,
        value: networks,
      });
    }
  }

  // Resources: what the networks need, unless some container already declares it.
  const declared = (name: string) =>
    containers.some((c) =>
      c.resources?.limits?.[name] !== undefined || c.resources?.requests?.[name] !== undefined
    );
  const limits: Record<string, string> = {};
  const requests: Record<string, string> = {};
  for (const smc of sorted) {
    const r = injectedResource(smc)?.resource;
    if (r && !declared(r)) limits[r] = "1";
  }
  const devicePlugin = opts.networkResources ?? {};
  if (devicePlugin.masterNIC) {
    for (const smc of sorted) {
      const t = smc.spec?.cniType;
      if (t !== "macvlan" && t !== "ipvlan" && t !== "vlan") continue;
      for (const m of smc.spec?.[t]?.master ?? []) {
        const r = MASTER_NIC_RESOURCE(m);
        if (!declared(r)) limits[r] = requests[r] = "1";
      }
    }
  }
  if (devicePlugin.subENI) {
    const auto = sorted.filter((s) => s.spec?.cniType === "vlan" && s.spec.vlan?.vlanMode === "auto").length;
    if (auto > 0 && !declared(SUB_ENI_RESOURCE)) {
      limits[SUB_ENI_RESOURCE] = requests[SUB_ENI_RESOURCE] = String(auto);
    }
  }
  patch.push(...resourcePatch(containers[0].resources, limits, requests));

  return {
    action: "inject",
    request: req,
    configs: sorted.map(nsName),
    networks,
    resources: { ...limits },
    patch,
  };
}

/** A network selection of the pod's networks annotation. */
interface Selection {
  namespace?: string;
  name: string;
  interface?: string;
  [k: string]: unknown;
}

/**
 * The networks annotation with `add` appended after what the pod lists already (which keeps its order and
 * form: comma-separated `ns/name@if`, or a JSON list); a network listed already is not added twice.
 */
export function mergeNetworks(
  current: string | undefined,
  add: readonly { namespace: string; name: string }[],
  podNamespace: string,
): string {
  const key = (ns: string | undefined, name: string) => `${ns || podNamespace}/${name}`;
  const text = current?.trim() ?? "";
  if (text.startsWith("[") || text.startsWith("{")) {
    const parsed: unknown = JSON.parse(text);
    if (!Array.isArray(parsed)) throw new Error("a JSON value that is not a list");
    const list = parsed as Selection[];
    const have = new Set(list.map((s) => key(s.namespace, s.name)));
    for (const n of add) {
      if (!have.has(key(n.namespace, n.name))) list.push({ name: n.name, namespace: n.namespace });
      have.add(key(n.namespace, n.name));
    }
    return JSON.stringify(list);
  }
  const items = text === "" ? [] : text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const have = new Set(items.map((item) => {
    const [ref] = item.split("@");
    const slash = ref.indexOf("/");
    if (ref.indexOf("/", slash + 1) !== -1) throw new Error(`${JSON.stringify(item)} has more than one "/"`);
    return slash === -1 ? key(undefined, ref) : key(ref.slice(0, slash), ref.slice(slash + 1));
  }));
  for (const n of add) {
    if (!have.has(key(n.namespace, n.name))) items.push(`${n.namespace}/${n.name}`);
    have.add(key(n.namespace, n.name));
  }
  return items.join(",");
}

function resourcePatch(
  existing: Resources | undefined,
  limits: Record<string, string>,
  requests: Record<string, string>,
): PatchOp[] {
  const base = "/spec/containers/0/resources";
  const lists = [["limits", limits], ["requests", requests]] as const;
  if (lists.every(([, m]) => Object.keys(m).length === 0)) return [];
  if (!existing) {
    const value: Record<string, Record<string, string>> = {};
    for (const [k, m] of lists) if (Object.keys(m).length > 0) value[k] = m;
    return [{ op: "add", path: base, value }];
  }
  const ops: PatchOp[] = [];
  for (const [k, m] of lists) {
    if (Object.keys(m).length === 0) continue;
    if (!existing[k]) {
      ops.push({ op: "add", path: `${base}/${k}`, value: m });
      continue;
    }
    for (const [name, q] of Object.entries(m)) {
      ops.push({ op: "add", path: `${base}/${k}/${escapePointer(name)}`, value: q });
    }
  }
  return ops;
}

/** A JSON Pointer reference token (RFC 6901): `~` → `~0`, `/` → `~1`. */
export function escapePointer(token: string): string {
  return token.replaceAll("~", "~0").replaceAll("/", "~1");
}

// ---------------------------------------------------------------------------------------------------------
// I/O: what the webhook handler calls.

/** The outcome of one pod admission: nothing asked for, the plan, or a failure to read the cluster. */
export type PodInjectionOutcome =
  | { action: "none" }
  | InjectionPlan;

/**
 * Reads what the plan needs (the namespace's annotations only when the pod has none of the keys; the
 * SpiderMultusConfigs of every namespace labelled as asked) and plans the injection for `pod`, which is
 * created in `namespace` (the AdmissionRequest's namespace: a pod being created may carry none itself).
 */
export async function podInjection(
  http: KubeHttp,
  pod: PodForInjection,
  namespace: string,
  opts: InjectionOptions = {},
  signal?: AbortSignal,
): Promise<PodInjectionOutcome> {
  let req = injectionRequest(pod.metadata?.annotations, undefined);
  if (!req) {
    let nsAnnotations: Record<string, string> | undefined;
    try {
      const { body } = await http.get<{ metadata?: { annotations?: Record<string, string> } }>(
        `/api/v1/namespaces/${encodeURIComponent(namespace)}`,
        { signal },
      );
      nsAnnotations = body.metadata?.annotations;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    req = injectionRequest(undefined, nsAnnotations);
  }
  if (!req) return { action: "none" };
  const withNamespace: PodForInjection = { ...pod, metadata: { ...pod.metadata, namespace } };
  if (requestProblem(req)) return planPodInjection(withNamespace, req, [], opts);
  const { body } = await http.get<{ items?: SpiderMultusConfig[] }>(
    `/apis/${API_VERSION}/${PLURAL.multusConfig}?labelSelector=${encodeURIComponent(injectionSelector(req))}`,
    { signal },
  );
  return planPodInjection(withNamespace, req, body.items ?? [], opts);
}

/** The part of an admission.k8s.io/v1 AdmissionRequest the pod webhook reads. */
export interface PodAdmissionRequest {
  uid: string;
  operation: string;
  namespace?: string;
  object?: unknown;
  dryRun?: boolean;
}

/** An admission.k8s.io/v1 AdmissionResponse. */
export interface PodAdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: "JSONPatch";
  /** base64 of the JSON Patch. */
  patch?: string;
  status?: { code: number; reason: string; message: string };
}

/**
 * The `/mutate--v1-pod` webhook (podResourceInject): answers a Pod CREATE with the injection patch, refuses
 * the pod (403 Forbidden, as controller-runtime's defaulter webhooks do) when its annotation cannot be
 * honoured, and allows everything else unchanged. Errors reading the cluster are returned as refusals too,
 * since the configuration's failurePolicy is Fail.
 */
export async function mutatePod(
  http: KubeHttp,
  req: PodAdmissionRequest,
  opts: InjectionOptions & { metrics?: PodInjectionMetrics; signal?: AbortSignal } = {},
): Promise<PodAdmissionResponse> {
  const count = (annotation: string, result: InjectionResult) => opts.metrics?.admitted(annotation, result);
  if (req.operation !== "CREATE" || !req.object) {
    count("", "not_requested");
    return { uid: req.uid, allowed: true };
  }
  const pod = req.object as PodForInjection;
  const namespace = req.namespace || pod.metadata?.namespace || "default";
  let outcome: PodInjectionOutcome;
  try {
    outcome = await podInjection(http, pod, namespace, opts, opts.signal);
  } catch (err) {
    count("", "error");
    return deny(req.uid, `pod resource injection could not read the cluster: ${(err as Error).message}`);
  }
  if (outcome.action === "none") {
    count("", "not_requested");
    return { uid: req.uid, allowed: true };
  }
  if (outcome.action === "refuse") {
    count(outcome.request.key, "refused");
    const who = pod.metadata?.name || pod.metadata?.generateName || "(unnamed)";
    return deny(req.uid, `pod ${namespace}/${who}: ${outcome.message}`);
  }
  count(outcome.request.key, outcome.patch.length > 0 ? "injected" : "unchanged");
  if (outcome.patch.length === 0) return { uid: req.uid, allowed: true };
  return {
    uid: req.uid,
    allowed: true,
    patchType: "JSONPatch",
    patch: base64(JSON.stringify(outcome.patch)),
  };
}

function deny(uid: string, message: string): PodAdmissionResponse {
  return { uid, allowed: false, status: { code: 403, reason: "Forbidden", message } };
}

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}
