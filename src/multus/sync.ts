// What the SpiderMultusConfig controller does with one NetworkAttachmentDefinition, as a pure plan: create it,
// bring its annotations, `spec.config` and controller reference back to the rendering (a merge patch guarded
// by the resourceVersion read), wait while an old one terminates, adopt one nobody controls, and leave alone
// one controlled by something else.

import { API_VERSION, GROUP, KIND } from "../api/constants.ts";
import type { OwnerReference } from "../api/types.ts";
import type { NetworkAttachmentDefinition } from "./nad.ts";
import { nadObject, type RenderedNAD } from "./render.ts";

/** The parts of a NAD that drifted from the rendering. */
export type Drift = "annotations" | "config" | "ownerReference";

export type NADPlan =
  | { action: "create"; nad: NetworkAttachmentDefinition }
  | { action: "update"; drift: Drift[]; patch: Record<string, unknown>; adopt: boolean }
  | { action: "none" }
  /** The NAD of that name is being deleted: the new one can only be created once it is gone. */
  | { action: "wait"; message: string }
  /** Another object controls the NAD of that name: it is not ours to change. */
  | { action: "foreign"; owner: OwnerReference; message: string };

/** True when `ref` points at the SpiderMultusConfig named `smcName` (any UID: a same-name SMC recreated). */
function isOurKind(ref: OwnerReference, smcName: string): boolean {
  return ref.kind === KIND.multusConfig && ref.apiVersion.split("/")[0] === GROUP && ref.name === smcName;
}

/** Plans the write that makes `existing` (undefined: absent) what `desired` describes. */
export function planNAD(desired: RenderedNAD, existing: NetworkAttachmentDefinition | undefined): NADPlan {
  if (!existing) return { action: "create", nad: nadObject(desired) };
  const where = `NetworkAttachmentDefinition ${desired.namespace}/${desired.name}`;
  const meta = existing.metadata;
  if (meta.deletionTimestamp) {
    return {
      action: "wait",
      message: `${where} is being deleted; it is created again for ${KIND.multusConfig} ` +
        `${desired.namespace}/${desired.ownerReference.name} once it is gone`,
    };
  }
  const refs = meta.ownerReferences ?? [];
  const controller = refs.find((r) => r.controller);
  const smcName = desired.ownerReference.name;
  if (controller && !isOurKind(controller, smcName)) {
    return {
      action: "foreign",
      owner: controller,
      message: `${where} is controlled by ${controller.kind} ${JSON.stringify(controller.name)}, so ` +
        `${KIND.multusConfig} ${JSON.stringify(smcName)} leaves it alone; give the ${KIND.multusConfig} ` +
        `another NAD name (annotation multus.spidernet.io/cr-name) or delete that NAD and its owner`,
    };
  }

  const drift: Drift[] = [];
  const metaPatch: Record<string, unknown> = { resourceVersion: meta.resourceVersion };
  const current = meta.annotations ?? {};
  if (!sameRecord(current, desired.annotations)) {
    drift.push("annotations");
    const annotations: Record<string, string | null> = { ...desired.annotations };
    for (const k of Object.keys(current)) if (!(k in desired.annotations)) annotations[k] = null;
    metaPatch.annotations = annotations;
  }
  const ours = desired.ownerReference;
  const ourRefs = refs.filter((r) => isOurKind(r, smcName));
  if (ourRefs.length !== 1 || !sameRef(ourRefs[0], ours)) {
    drift.push("ownerReference");
    // Other (non-controller) owners stay; stale references to this SpiderMultusConfig are replaced.
    metaPatch.ownerReferences = [...refs.filter((r) => !isOurKind(r, smcName)), ours];
  }
  const patch: Record<string, unknown> = { metadata: metaPatch };
  if ((existing.spec?.config ?? "") !== (desired.config ?? "")) {
    drift.push("config");
    patch.spec = { config: desired.config ?? null };
  }
  if (drift.length === 0) return { action: "none" };
  return { action: "update", drift, patch, adopt: controller === undefined };
}

function sameRecord(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

function sameRef(a: OwnerReference, b: OwnerReference): boolean {
  return a.apiVersion === API_VERSION && a.kind === b.kind && a.name === b.name && a.uid === b.uid &&
    a.controller === true && a.blockOwnerDeletion === b.blockOwnerDeletion;
}
