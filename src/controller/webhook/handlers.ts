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
import {
  type AdmissionLedger,
  type LedgerState,
  type ListedObject,
  livePending,
  type PendingEntry,
} from "./ledger.ts";
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
  metadata?: { resourceVersion?: string };
}

/** A list served from the API server's watch cache, possibly a moment old: for reads no race depends on. */
async function cachedList<T>(http: KubeHttp, path: string): Promise<T[]> {
  return (await http.get<List<T>>(`${path}?resourceVersion=0`)).body.items ?? [];
}

/**
 * A list for a ledgered decision: at least as new as the ledger's `seen` version of `kind` (so it shows every
 * object whose entry was dropped), or a consistent read when nothing is seen yet or an entry expired (see
 * ledger.ts). `state` undefined: no race depends on it, the cache will do.
 */
async function listFor<T>(
  http: KubeHttp,
  path: string,
  kind: string,
  state: LedgerState | undefined,
): Promise<{ items: T[]; rv?: string }> {
  if (state === undefined) return { items: await cachedList<T>(http, path) };
  const now = Date.now();
  const min = state.seen[kind];
  const consistent = min === undefined || state.entries.some((e) => e.expires <= now);
  let body: List<T>;
  if (consistent) {
    body = (await http.get<List<T>>(path)).body;
  } else {
    try {
      body =
        (await http.get<List<T>>(`${path}?resourceVersion=${min}&resourceVersionMatch=NotOlderThan`)).body;
    } catch {
      // e.g. an API server whose cache cannot reach that version in time: a consistent read is always right.
      body = (await http.get<List<T>>(path)).body;
    }
  }
  return { items: body.items ?? [], rv: body.metadata?.resourceVersion };
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
  read: (
    state: LedgerState | undefined,
  ) => Promise<{ listed: ListedObject[]; listedAt: Record<string, string | undefined> }>,
  check: (pending: PendingEntry[]) => FieldError[],
): Promise<AdmissionResponse> {
  const name = obj.metadata?.name ?? req.name ?? "";
  if (old !== undefined && sameAddresses(obj, old)) {
    // No address changes: nothing can start to overlap, so no ledger and no fresh read are needed.
    await read(undefined);
    return verdict(req, kind, check([]), name);
  }
  return await ledger.admit(async (state) => {
    const { listed, listedAt } = await read(state);
    const live = livePending(state.entries, listed, Date.now());
    const errors = check(live.filter((e) => e.name !== name || e.kind !== kind));
    if (errors.length > 0) return { answer: deny(req.uid, errors, target(kind, name)) };
    const spec = addressSpec((obj as { spec?: Record<string, unknown> }).spec);
    const record = ledger.entry(
      old === undefined
        ? { kind, name, uid: obj.metadata?.uid ?? "", spec }
        : { kind, name, replaces: old.metadata?.resourceVersion ?? "", spec },
    );
    return { answer: allow(req.uid), record, live, listedAt };
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
    // The owner is looked up in the cache: a subnet created a moment ago may be missed here, and the subnet
    // controller adopts such pools later.
    const subnets = enableSpiderSubnet ? await cachedList<SpiderSubnet>(ctx.http, SUBNETS_PATH) : [];
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
    const read = async (state: LedgerState | undefined) => {
      const [p, s] = await Promise.all([
        listFor<SpiderIPPool>(ctx.http, POOLS_PATH, KIND.ippool, state),
        ctx.config.enableSpiderSubnet
          ? listFor<SpiderSubnet>(ctx.http, SUBNETS_PATH, KIND.subnet, state)
          : Promise.resolve({ items: [], rv: undefined }),
      ]);
      [pools, subnets] = [p.items, s.items];
      return {
        listed: [...listed(KIND.ippool, pools), ...listed(KIND.subnet, subnets)],
        listedAt: { [KIND.ippool]: p.rv, [KIND.subnet]: s.rv },
      };
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
    const read = async (state: LedgerState | undefined) => {
      const [p, s] = await Promise.all([
        listFor<SpiderIPPool>(ctx.http, POOLS_PATH, KIND.ippool, state),
        listFor<SpiderSubnet>(ctx.http, SUBNETS_PATH, KIND.subnet, state),
      ]);
      [pools, subnets] = [p.items, s.items];
      return {
        listed: [...listed(KIND.ippool, pools), ...listed(KIND.subnet, subnets)],
        listedAt: { [KIND.ippool]: p.rv, [KIND.subnet]: s.rv },
      };
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
    const read = async (state: LedgerState | undefined) => {
      const r = await listFor<SpiderReservedIP>(ctx.http, RESERVED_IPS_PATH, KIND.reservedIP, state);
      all = r.items;
      return { listed: listed(KIND.reservedIP, all), listedAt: { [KIND.reservedIP]: r.rv } };
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
      // From the cache: a NetworkAttachmentDefinition made a moment ago is caught by the controller's sync.
      nads = await cachedList<ExistingNAD>(ctx.http, nadsPath(ns));
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
