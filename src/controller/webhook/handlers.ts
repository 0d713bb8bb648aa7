// The admission handlers of the five writable kinds: each mutating handler answers with the JSON Patch from
// the submitted object to its defaulted copy (src/api/defaults.ts), each validating handler runs the rules of
// src/api/validate/ against objects read fresh from the API server. Overlap-sensitive admissions (pools,
// subnets, reserved IPs) go through an AdmissionLedger so that concurrent admissions cannot both pass.

import type { SpiderpoolConfig } from "../../api/config.ts";
import { API_VERSION, GROUP, KIND, PLURAL, SINGULAR } from "../../api/constants.ts";
import {
  defaultCoordinator,
  defaultIPPool,
  defaultMultusConfig,
  defaultReservedIP,
  defaultSubnet,
} from "../../api/defaults.ts";
import type { FieldError } from "../../api/validate/common.ts";
import { validateCoordinator } from "../../api/validate/coordinator.ts";
import { validateIPPool, validateIPPoolDelete } from "../../api/validate/ippool.ts";
import { type ExistingNAD, validateMultusConfig } from "../../api/validate/multusconfig.ts";
import { validateReservedIP } from "../../api/validate/reservedip.ts";
import { validateSubnet, validateSubnetDelete } from "../../api/validate/subnet.ts";
import type {
  SpiderCoordinator,
  SpiderIPPool,
  SpiderMultusConfig,
  SpiderReservedIP,
  SpiderSubnet,
} from "../../api/types.ts";
import { type KubeHttp, NotFoundError } from "../../kube/client.ts";
import { type AdmissionLedger, type ListedObject, livePending, type PendingEntry } from "./ledger.ts";
import {
  type AdmissionRequest,
  type AdmissionResponse,
  allow,
  deny,
  jsonPatch,
  type Operation,
} from "./review.ts";

export const POOLS_PATH = `/apis/${API_VERSION}/${PLURAL.ippool}`;
export const SUBNETS_PATH = `/apis/${API_VERSION}/${PLURAL.subnet}`;
export const RESERVED_IPS_PATH = `/apis/${API_VERSION}/${PLURAL.reservedIP}`;
const nadsPath = (ns: string) => `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions`;

/** Everything a handler needs besides the request. */
export interface WebhookContext {
  config: SpiderpoolConfig;
  http: KubeHttp;
  /** Pools and subnets share one ledger: their rules read each other. */
  ipamLedger: AdmissionLedger;
  reservedIPLedger: AdmissionLedger;
}

/** One kind's pair of webhooks. */
export interface KindWebhooks {
  kind: string;
  plural: string;
  /** Operations of the mutating and validating webhook configurations (spec §1.5). */
  mutateOps: readonly Operation[];
  validateOps: readonly Operation[];
  mutate(req: AdmissionRequest, ctx: WebhookContext): Promise<AdmissionResponse>;
  validate(req: AdmissionRequest, ctx: WebhookContext): Promise<AdmissionResponse>;
}

/** `/mutate-spiderpool-spidernet-io-v2beta1-spiderippool`, the controller-runtime path pattern. */
export function webhookPath(type: "mutate" | "validate", singular: string): string {
  return `/${type}-${GROUP.replaceAll(".", "-")}-v2beta1-${singular}`;
}

interface List<T> {
  items?: T[];
}

async function list<T>(http: KubeHttp, path: string): Promise<T[]> {
  return (await http.get<List<T>>(path)).body.items ?? [];
}

function listed(
  kind: string,
  objs: readonly { metadata?: { name?: string; uid?: string; resourceVersion?: string } }[],
) {
  return objs.map((o): ListedObject => ({
    kind,
    name: o.metadata?.name ?? "",
    uid: o.metadata?.uid,
    resourceVersion: o.metadata?.resourceVersion,
  }));
}

/** A pending entry as an object the validation rules can read: name and admitted spec. */
function asObject<T>(e: PendingEntry): T {
  return { metadata: { name: e.name }, spec: e.spec } as T;
}

const target = (kind: string, name?: string) => ({ kind, group: GROUP, name });

function verdict(
  req: AdmissionRequest,
  kind: string,
  errors: readonly FieldError[],
  name?: string,
): AdmissionResponse {
  return errors.length === 0 ? allow(req.uid) : deny(req.uid, errors, target(kind, name ?? req.name));
}

/** The overlap-relevant spec fields of pools, subnets and reserved IPs. */
function addressSpec(spec: Record<string, unknown> | undefined): Record<string, unknown> {
  const s = spec ?? {};
  return { ipVersion: s.ipVersion, subnet: s.subnet, ips: s.ips, excludeIPs: s.excludeIPs };
}

function sameAddresses(a: { spec?: unknown } | undefined, b: { spec?: unknown } | undefined): boolean {
  return JSON.stringify(addressSpec(a?.spec as Record<string, unknown>)) ===
    JSON.stringify(addressSpec(b?.spec as Record<string, unknown>));
}

/**
 * Runs an overlap-sensitive validation: through `ledger` when the request can add addresses (CREATE, or an
 * UPDATE that changes them), directly against fresh lists otherwise.
 */
async function ledgered<
  T extends { metadata?: { name?: string; uid?: string; resourceVersion?: string }; spec?: unknown },
>(
  req: AdmissionRequest,
  ledger: AdmissionLedger,
  kind: string,
  obj: T,
  old: T | undefined,
  read: () => Promise<{ listed: ListedObject[] }>,
  check: (pending: PendingEntry[]) => FieldError[],
): Promise<AdmissionResponse> {
  const name = obj.metadata?.name ?? req.name ?? "";
  if (old !== undefined && sameAddresses(obj, old)) {
    await read();
    return verdict(req, kind, check([]), name);
  }
  return await ledger.admit(async (entries) => {
    const { listed } = await read();
    const live = livePending(entries, listed, Date.now());
    const errors = check(live.filter((e) => e.name !== name || e.kind !== kind));
    if (errors.length > 0) return { answer: deny(req.uid, errors, target(kind, name)) };
    const record = ledger.entry(
      old === undefined
        ? {
          kind,
          name,
          uid: obj.metadata?.uid ?? "",
          spec: addressSpec((obj as { spec?: Record<string, unknown> }).spec),
        }
        : {
          kind,
          name,
          replaces: old.metadata?.resourceVersion ?? "",
          spec: addressSpec((obj as { spec?: Record<string, unknown> }).spec),
        },
    );
    return { answer: allow(req.uid), record, live };
  }, { dryRun: req.dryRun });
}

const ippool: KindWebhooks = {
  kind: KIND.ippool,
  plural: PLURAL.ippool,
  mutateOps: ["CREATE", "UPDATE"],
  validateOps: ["CREATE", "UPDATE", "DELETE"],
  async mutate(req, ctx) {
    const pool = req.object as SpiderIPPool;
    const enableSpiderSubnet = ctx.config.enableSpiderSubnet;
    const subnets = enableSpiderSubnet ? await list<SpiderSubnet>(ctx.http, SUBNETS_PATH) : [];
    return allow(req.uid, jsonPatch(pool, defaultIPPool(pool, { enableSpiderSubnet, subnets })));
  },
  async validate(req, ctx) {
    if (req.operation === "DELETE") {
      const old = req.oldObject as SpiderIPPool;
      return verdict(
        req,
        KIND.ippool,
        validateIPPoolDelete(old, ctx.config.enableValidatingResourcesDeletedWebhook),
      );
    }
    const pool = req.object as SpiderIPPool;
    const old = req.operation === "UPDATE" ? req.oldObject as SpiderIPPool : undefined;
    let pools: SpiderIPPool[] = [];
    let subnets: SpiderSubnet[] = [];
    const read = async () => {
      [pools, subnets] = await Promise.all([
        list<SpiderIPPool>(ctx.http, POOLS_PATH),
        ctx.config.enableSpiderSubnet ? list<SpiderSubnet>(ctx.http, SUBNETS_PATH) : Promise.resolve([]),
      ]);
      return { listed: [...listed(KIND.ippool, pools), ...listed(KIND.subnet, subnets)] };
    };
    return await ledgered(
      req,
      ctx.ipamLedger,
      KIND.ippool,
      pool,
      old,
      read,
      (pending) =>
        validateIPPool(pool, old, {
          ...ctx.config,
          pools: [
            ...pools,
            ...pending.filter((e) => e.kind === KIND.ippool).map((e) => asObject<SpiderIPPool>(e)),
          ],
          // Pending subnets first: the newest spec of a subnet is the one a pool must fit.
          subnets: [
            ...pending.filter((e) => e.kind === KIND.subnet).map((e) => asObject<SpiderSubnet>(e)),
            ...subnets,
          ],
        }),
    );
  },
};

const subnet: KindWebhooks = {
  kind: KIND.subnet,
  plural: PLURAL.subnet,
  mutateOps: ["CREATE", "UPDATE"],
  validateOps: ["CREATE", "UPDATE", "DELETE"],
  mutate(req) {
    const s = req.object as SpiderSubnet;
    return Promise.resolve(allow(req.uid, jsonPatch(s, defaultSubnet(s))));
  },
  async validate(req, ctx) {
    if (req.operation === "DELETE") {
      const old = req.oldObject as SpiderSubnet;
      return verdict(
        req,
        KIND.subnet,
        validateSubnetDelete(old, ctx.config.enableValidatingResourcesDeletedWebhook),
      );
    }
    const s = req.object as SpiderSubnet;
    if (req.operation === "CREATE" && !ctx.config.enableSpiderSubnet) {
      return deny(req.uid, [{
        path: "kind",
        message: `${KIND.subnet} ${JSON.stringify(s.metadata?.name ?? "")}: the SpiderSubnet feature is ` +
          `disabled (enableSpiderSubnet: false in ConfigMap spiderpool-conf); enable it, or create ` +
          `SpiderIPPools directly`,
      }], target(KIND.subnet, s.metadata?.name));
    }
    const old = req.operation === "UPDATE" ? req.oldObject as SpiderSubnet : undefined;
    let pools: SpiderIPPool[] = [];
    let subnets: SpiderSubnet[] = [];
    const read = async () => {
      [pools, subnets] = await Promise.all([
        list<SpiderIPPool>(ctx.http, POOLS_PATH),
        list<SpiderSubnet>(ctx.http, SUBNETS_PATH),
      ]);
      return { listed: [...listed(KIND.ippool, pools), ...listed(KIND.subnet, subnets)] };
    };
    return await ledgered(
      req,
      ctx.ipamLedger,
      KIND.subnet,
      s,
      old,
      read,
      (pending) =>
        validateSubnet(s, old, {
          ...ctx.config,
          subnets: [
            ...subnets,
            ...pending.filter((e) => e.kind === KIND.subnet).map((e) => asObject<SpiderSubnet>(e)),
          ],
          pools: [
            ...pools,
            ...pending.filter((e) => e.kind === KIND.ippool).map((e) => asObject<SpiderIPPool>(e)),
          ],
        }),
    );
  },
};

const reservedIP: KindWebhooks = {
  kind: KIND.reservedIP,
  plural: PLURAL.reservedIP,
  mutateOps: ["CREATE", "UPDATE"],
  validateOps: ["CREATE", "UPDATE"],
  mutate(req) {
    const r = req.object as SpiderReservedIP;
    return Promise.resolve(allow(req.uid, jsonPatch(r, defaultReservedIP(r))));
  },
  async validate(req, ctx) {
    const r = req.object as SpiderReservedIP;
    const old = req.operation === "UPDATE" ? req.oldObject as SpiderReservedIP : undefined;
    let all: SpiderReservedIP[] = [];
    const read = async () => {
      all = await list<SpiderReservedIP>(ctx.http, RESERVED_IPS_PATH);
      return { listed: listed(KIND.reservedIP, all) };
    };
    return await ledgered(
      req,
      ctx.reservedIPLedger,
      KIND.reservedIP,
      r,
      old,
      read,
      (pending) =>
        validateReservedIP(r, old, ctx.config, {
          reservedIPs: [...all, ...pending.map((e) => asObject<SpiderReservedIP>(e))],
        }),
    );
  },
};

const coordinator: KindWebhooks = {
  kind: KIND.coordinator,
  plural: PLURAL.coordinator,
  mutateOps: ["CREATE", "UPDATE"],
  validateOps: ["CREATE", "UPDATE"],
  mutate(req) {
    const c = req.object as SpiderCoordinator;
    return Promise.resolve(allow(req.uid, jsonPatch(c, defaultCoordinator(c))));
  },
  validate(req) {
    return Promise.resolve(
      verdict(req, KIND.coordinator, validateCoordinator(req.object as SpiderCoordinator)),
    );
  },
};

const multusConfig: KindWebhooks = {
  kind: KIND.multusConfig,
  plural: PLURAL.multusConfig,
  mutateOps: ["CREATE", "UPDATE"],
  validateOps: ["CREATE", "UPDATE"],
  mutate(req) {
    const smc = req.object as SpiderMultusConfig;
    return Promise.resolve(allow(req.uid, jsonPatch(smc, defaultMultusConfig(smc))));
  },
  async validate(req, ctx) {
    const smc = req.object as SpiderMultusConfig;
    const old = req.operation === "UPDATE" ? req.oldObject as SpiderMultusConfig : undefined;
    const ns = smc.metadata?.namespace ?? req.namespace ?? "";
    let nads: ExistingNAD[] = [];
    try {
      nads = await list<ExistingNAD>(ctx.http, nadsPath(ns));
    } catch (err) {
      // Without the NetworkAttachmentDefinition CRD there is nothing to collide with.
      if (!(err instanceof NotFoundError)) throw err;
    }
    return verdict(req, KIND.multusConfig, validateMultusConfig(smc, old, { nads }));
  },
};

/** The webhooks of every kind, keyed by singular resource name. */
export const KIND_WEBHOOKS: Readonly<Record<string, KindWebhooks>> = {
  [SINGULAR.ippool]: ippool,
  [SINGULAR.subnet]: subnet,
  [SINGULAR.reservedIP]: reservedIP,
  [SINGULAR.coordinator]: coordinator,
  [SINGULAR.multusConfig]: multusConfig,
};
