// Test helpers for the network layer: scratch namespaces with unique names, and a snapshot of everything in a
// namespace the coordinator may touch (links, addresses, routes of every table, rules, static neighbours,
// mangle rules), so a test can say "exactly as before".

import type { BackendKind } from "../../src/net/backend.ts";
import { openNs } from "../../src/net/mod.ts";
import { addNetns, delNetns, ip, netnsPath, shortId } from "../e2e/netns.ts";

export const BACKENDS: BackendKind[] = ["netlink", "iproute"];

export interface Scratch extends AsyncDisposable {
  names: string[];
  paths: string[];
}

/** `count` fresh namespaces named `prefix-<random>-i`, removed on dispose. */
export async function scratchNamespaces(prefix: string, count: number): Promise<Scratch> {
  const id = shortId(6);
  const names = Array.from({ length: count }, (_, i) => `${prefix}-${id}-${i}`);
  for (const n of names) await addNetns(n);
  return {
    names,
    paths: names.map(netnsPath),
    async [Symbol.asyncDispose]() {
      for (const n of names) await delNetns(n);
    },
  };
}

/** Runs a command inside a named namespace; returns stdout (throws with stderr on failure). */
export async function nsExec(ns: string, cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("ip", {
    args: ["netns", "exec", ns, cmd, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} in ${ns}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

/**
 * Everything the coordinator may change in the namespace at `path`, as sorted text lines (kernel-made local
 * and link-local routes included: they change with links and addresses).
 */
export async function snapshot(path: string, name?: string): Promise<string[]> {
  const ns = openNs(path, "netlink");
  try {
    const links = await ns.links();
    const nameOf = (i?: number) => links.find((l) => l.index === i)?.name ?? `#${i}`;
    // IPv6 link-local addresses and the routes the kernel makes for them come and go with link state (and
    // arrive late, after duplicate address detection): they are not the coordinator's doing.
    const kernelV6 = (dst: string) => dst.startsWith("fe80:") || dst === "ff00::/8";
    const lines = [
      ...links.map((l) =>
        `link ${l.name} ${l.kind ?? ""} up=${l.flags & 1} mtu=${l.mtu} txq=${l.txqlen} mac=${l.mac}`
      ),
      ...(await ns.addrs()).filter((a) => !kernelV6(a.address)).map((a) =>
        `addr ${nameOf(a.index)} ${a.address}/${a.prefixLen} scope ${a.scope}`
      ),
      ...(await ns.routes()).filter((r) => !kernelV6(r.dst)).map((r) =>
        `route ${r.dst} table ${r.table} dev ${nameOf(r.ifindex)} gw ${r.gw ?? "-"} src ${r.src ?? "-"} ${
          (r.multipath ?? []).map((h) => `${nameOf(h.ifindex)}/${h.gw}`).join(",")
        }`
      ),
      ...(await ns.rules()).map((r) =>
        `rule ${r.family} ${r.priority} ${r.src ?? "all"} ${r.dst ?? "all"} ${r.fwmark ?? "-"} ${r.table}`
      ),
      ...(await ns.neighs()).filter((n) => n.state & 0x80).map((n) =>
        `neigh ${nameOf(n.ifindex)} ${n.dst} ${n.lladdr}`
      ),
    ];
    if (name) {
      for (const cmd of ["iptables", "ip6tables"]) {
        const rules = await nsExec(name, cmd, "-w", "5", "-t", "mangle", "-S");
        lines.push(...rules.split("\n").filter((l) => l.startsWith("-A")).map((l) => `${cmd} ${l}`));
      }
    }
    return lines.sort();
  } finally {
    ns.close();
  }
}

export { ip, netnsPath, shortId };
