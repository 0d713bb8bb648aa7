// One-line descriptions of network objects in `ip` syntax, for logs and error messages.

import type { LinkChange, RouteSpec, RuleSpec } from "./types.ts";

export function describeRoute(r: RouteSpec): string {
  return [
    r.dst,
    r.gw ? `via ${r.gw}` : "",
    r.dev ? `dev ${r.dev}` : "",
    r.src ? `src ${r.src}` : "",
    `table ${r.table}`,
  ].filter((s) => s).join(" ");
}

export function describeRule(r: RuleSpec): string {
  const sel = r.fwmark !== undefined ? `fwmark 0x${r.fwmark.toString(16)}` : `from ${r.src ?? "all"}`;
  return `${sel}${r.dst ? ` to ${r.dst}` : ""} lookup ${r.table} pref ${r.priority}`;
}

export function describeChange(c: LinkChange): string {
  const parts: string[] = [];
  if (c.up !== undefined) parts.push(c.up ? "up" : "down");
  if (c.mtu !== undefined) parts.push(`mtu ${c.mtu}`);
  if (c.mac !== undefined) parts.push(`address ${c.mac}`);
  if (c.txqlen !== undefined) parts.push(`txqueuelen ${c.txqlen}`);
  if (c.master !== undefined) parts.push(c.master === null ? "nomaster" : `master ${c.master}`);
  return parts.join(" ");
}
