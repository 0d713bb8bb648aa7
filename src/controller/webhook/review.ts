// The admission.k8s.io/v1 AdmissionReview wire format and the pure helpers around it: reading a request,
// answering allowed / denied (as a 422 Invalid Status whose causes name each field, the way upstream's
// controller-runtime webhooks answer), and the RFC 6902 JSON Patch that turns the submitted object into its
// defaulted copy.

import type { FieldError } from "../../api/validate/common.ts";

export type Operation = "CREATE" | "UPDATE" | "DELETE" | "CONNECT";

/** The part of an AdmissionRequest the webhooks read. */
export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  resource?: { group: string; version: string; resource: string };
  subResource?: string;
  name?: string;
  namespace?: string;
  operation: Operation;
  userInfo?: { username?: string };
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
}

export interface AdmissionReview {
  apiVersion: "admission.k8s.io/v1";
  kind: "AdmissionReview";
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

/** A `metav1.Status` as a denial carries it. */
export interface DenialStatus {
  code: number;
  reason: string;
  message: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    causes: { field: string; reason: string; message: string }[];
  };
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: DenialStatus;
  /** base64 of the JSON Patch. */
  patch?: string;
  patchType?: "JSONPatch";
  warnings?: string[];
}

/** A body that is not an AdmissionReview v1 with a request; answered with HTTP 400. */
export class BadReviewError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BadReviewError";
  }
}

/** Parses the body the API server posted; throws BadReviewError naming what is wrong. */
export function parseReview(body: string): AdmissionRequest {
  let review: AdmissionReview;
  try {
    review = JSON.parse(body);
  } catch (err) {
    throw new BadReviewError(`body is not JSON: ${(err as Error).message}`);
  }
  if (review?.apiVersion !== "admission.k8s.io/v1" || review.kind !== "AdmissionReview") {
    throw new BadReviewError(
      `expected an admission.k8s.io/v1 AdmissionReview, got apiVersion ${
        JSON.stringify(review?.apiVersion)
      } kind ${JSON.stringify(review?.kind)}`,
    );
  }
  const req = review.request;
  if (!req || typeof req.uid !== "string" || typeof req.operation !== "string") {
    throw new BadReviewError("AdmissionReview has no request with uid and operation");
  }
  return req;
}

/** Wraps a response in the AdmissionReview envelope the API server expects back. */
export function reviewOf(response: AdmissionResponse): AdmissionReview {
  return { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response };
}

export function allow(uid: string, patch?: readonly PatchOp[]): AdmissionResponse {
  if (!patch || patch.length === 0) return { uid, allowed: true };
  return { uid, allowed: true, patchType: "JSONPatch", patch: base64(JSON.stringify(patch)) };
}

/**
 * Denies with a 422 Invalid Status: the message lists every field error (each already names the object, field,
 * value and fix), and `details.causes` carries them one by one for clients that print causes.
 */
export function deny(
  uid: string,
  errors: readonly FieldError[],
  target: { kind: string; group: string; name?: string },
): AdmissionResponse {
  return {
    uid,
    allowed: false,
    status: {
      code: 422,
      reason: "Invalid",
      message: errors.map((e) => e.message).join("; "),
      details: {
        name: target.name,
        group: target.group,
        kind: target.kind,
        causes: errors.map((e) => ({ field: e.path, reason: "FieldValueInvalid", message: e.message })),
      },
    },
  };
}

/** Denies with a plain Status (not about a field): e.g. the cluster could not be read. */
export function denyWith(uid: string, code: number, reason: string, message: string): AdmissionResponse {
  return { uid, allowed: false, status: { code, reason, message } };
}

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

/** One RFC 6902 operation; only the three a diff needs. */
export type PatchOp =
  | { op: "add"; path: string; value: unknown }
  | { op: "replace"; path: string; value: unknown }
  | { op: "remove"; path: string };

/**
 * The JSON Patch that turns `before` into `after`: objects are compared key by key, arrays and scalars are
 * replaced whole when they differ (the defaulted arrays — merged ranges, finalizers — are short, and a whole
 * replacement cannot misapply when the API server's copy differs in order).
 *
 * ```ts
 * jsonPatch({ spec: { a: 1 } }, { spec: { a: 1, b: 2 } }); // [{ op: "add", path: "/spec/b", value: 2 }]
 * ```
 */
export function jsonPatch(before: unknown, after: unknown, path = ""): PatchOp[] {
  if (isPlainObject(before) && isPlainObject(after)) {
    const ops: PatchOp[] = [];
    for (const k of Object.keys(before)) {
      if (!(k in after) || after[k] === undefined) {
        if (before[k] !== undefined) ops.push({ op: "remove", path: `${path}/${escape(k)}` });
      }
    }
    for (const [k, v] of Object.entries(after)) {
      if (v === undefined) continue;
      const at = `${path}/${escape(k)}`;
      if (!(k in before) || before[k] === undefined) ops.push({ op: "add", path: at, value: v });
      else ops.push(...jsonPatch(before[k], v, at));
    }
    return ops;
  }
  if (deepEqual(before, after)) return [];
  // The root itself is never replaced by defaulting; a path is always present here.
  return [{ op: "replace", path, value: after }];
}

/** Applies a patch made by jsonPatch (tests and the benchmark check the round trip with it). */
export function applyPatch(doc: unknown, ops: readonly PatchOp[]): unknown {
  const root = structuredClone(doc);
  for (const op of ops) {
    const parts = op.path.split("/").slice(1).map(unescape);
    const last = parts.pop()!;
    let parent = root as Record<string, unknown>;
    for (const p of parts) parent = parent[p] as Record<string, unknown>;
    if (op.op === "remove") delete parent[last];
    else parent[last] = structuredClone(op.value);
  }
  return root;
}

function escape(key: string): string {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}

function unescape(key: string): string {
  return key.replace(/~1/g, "/").replace(/~0/g, "~");
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}
