// Kubernetes label selectors (`podAffinity`, `namespaceAffinity`, `nodeAffinity`): syntax validation as the API
// server does it for metav1.LabelSelector, emptiness, and matching against an object's labels.

import type { LabelSelector } from "./types.ts";
import { labelKeyProblem, labelValueProblem } from "./validate/names.ts";

/** One problem in a selector: `path` is relative to the caller's prefix, e.g. `spec.podAffinity.matchLabels`. */
export interface SelectorProblem {
  path: string;
  message: string;
}

/**
 * Validates a label selector: label keys and values in Kubernetes syntax; operators In and NotIn with at least
 * one value, Exists and DoesNotExist with none. `path` prefixes each problem's path.
 *
 * ```ts
 * validateLabelSelector({ matchExpressions: [{ key: "app", operator: "In", values: [] }] }, "spec.podAffinity");
 * // [{ path: "spec.podAffinity.matchExpressions[0].values", message: "operator In needs at least one value" }]
 * ```
 */
export function validateLabelSelector(sel: LabelSelector | undefined, path: string): SelectorProblem[] {
  const out: SelectorProblem[] = [];
  if (sel === undefined || sel === null) return out;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    const kp = labelKeyProblem(k);
    if (kp) out.push({ path: `${path}.matchLabels`, message: kp });
    const vp = typeof v === "string"
      ? labelValueProblem(v)
      : `the value of ${JSON.stringify(k)} must be a string`;
    if (vp) out.push({ path: `${path}.matchLabels[${JSON.stringify(k)}]`, message: vp });
  }
  (sel.matchExpressions ?? []).forEach((req, i) => {
    const p = `${path}.matchExpressions[${i}]`;
    const kp = labelKeyProblem(req.key ?? "");
    if (kp) out.push({ path: `${p}.key`, message: kp });
    const values = req.values ?? [];
    const op = req.operator as string;
    if (op === "In" || op === "NotIn") {
      if (values.length === 0) {
        out.push({ path: `${p}.values`, message: `operator ${op} needs at least one value` });
      }
      values.forEach((v, j) => {
        const vp = labelValueProblem(v);
        if (vp) out.push({ path: `${p}.values[${j}]`, message: vp });
      });
    } else if (op === "Exists" || op === "DoesNotExist") {
      if (values.length > 0) {
        out.push({ path: `${p}.values`, message: `operator ${op} takes no values; remove "values"` });
      }
    } else {
      out.push({
        path: `${p}.operator`,
        message: `operator ${JSON.stringify(op)} is not supported; use In, NotIn, Exists or DoesNotExist`,
      });
    }
  });
  return out;
}

/** True when the selector is absent or has neither matchLabels nor matchExpressions (it selects everything). */
export function isEmptySelector(sel: LabelSelector | undefined): boolean {
  if (sel === undefined || sel === null) return true;
  return Object.keys(sel.matchLabels ?? {}).length === 0 && (sel.matchExpressions ?? []).length === 0;
}

/**
 * Whether `labels` satisfy the selector. An absent or empty selector matches everything (a pool without
 * affinity serves every pod). The selector is assumed valid; an unknown operator matches nothing.
 *
 * ```ts
 * matchLabelSelector({ matchLabels: { app: "web" } }, { app: "web", tier: "1" }); // true
 * ```
 */
export function matchLabelSelector(
  sel: LabelSelector | undefined,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  if (sel === undefined || sel === null) return true;
  const l = labels ?? {};
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    if (!Object.hasOwn(l, k) || l[k] !== v) return false;
  }
  for (const req of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(l, req.key);
    const values = req.values ?? [];
    switch (req.operator as string) {
      case "In":
        if (!has || !values.includes(l[req.key])) return false;
        break;
      case "NotIn":
        if (has && values.includes(l[req.key])) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}
