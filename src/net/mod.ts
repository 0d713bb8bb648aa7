// The network layer of the project in one import: open a namespace through netlink (libnl) or, when libnl
// cannot be loaded or SPIDERPOOL_NET_BACKEND=iproute says so, through iproute2 commands; plan operations as
// data (ops.ts) and apply them with rollback (executor.ts).

import type { BackendKind, NetNs } from "./backend.ts";
import { libnl } from "./ffi.ts";
import { IpRouteNs } from "./iproute.ts";
import { NetlinkNs } from "./netlink.ts";

export type { BackendKind, NetNs } from "./backend.ts";
export * from "./types.ts";
export { describeOp, inverse, type NsRef, type Op } from "./ops.ts";
export { ApplyError, applyOne, applyPlan, type Namespaces, type Outcome, undoAll } from "./executor.ts";
export { hasRule, type IptablesRule } from "./iptables.ts";
export { describeChange, describeRoute, describeRule } from "./describe.ts";

/** Environment variable choosing the backend: "netlink" (default) or "iproute". */
export const BACKEND_ENV = "SPIDERPOOL_NET_BACKEND";

export interface BackendChoice {
  kind: BackendKind;
  /** Why iproute2 is used, when it is. */
  reason?: string;
}

let choice: BackendChoice | undefined;

/**
 * Which backend this process uses: `want` (or $SPIDERPOOL_NET_BACKEND), falling back to iproute2 when libnl
 * cannot be loaded. Decided once per process.
 */
export function chooseBackend(want?: BackendKind): BackendChoice {
  if (want) return tryBackend(want);
  choice ??= tryBackend(readEnv());
  return choice;
}

function readEnv(): BackendKind {
  const v = Deno.env.get(BACKEND_ENV)?.trim().toLowerCase();
  if (v === undefined || v === "" || v === "netlink" || v === "libnl") return "netlink";
  if (v === "iproute" || v === "iproute2" || v === "ip") return "iproute";
  throw new Error(`${BACKEND_ENV}=${JSON.stringify(v)} is not a backend; use netlink or iproute`);
}

function tryBackend(want: BackendKind): BackendChoice {
  if (want === "iproute") return { kind: "iproute", reason: `${BACKEND_ENV}=iproute` };
  try {
    libnl();
    return { kind: "netlink" };
  } catch (e) {
    return { kind: "iproute", reason: `libnl cannot be loaded (${(e as Error).message})` };
  }
}

/** Opens the namespace at `path` (undefined: this process's own) with the chosen backend. */
export function openNs(path: string | undefined, kind: BackendKind = chooseBackend().kind): NetNs {
  return kind === "netlink" ? NetlinkNs.open(path) : new IpRouteNs(path);
}
