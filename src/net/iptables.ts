// iptables rules in a network namespace, through the iptables commands (netlink has no call for them): the
// command runs via `nsenter --net=PATH` for another namespace, waits for the xtables lock, and `ensure` adds a
// rule only when `-C` does not find it, so a repeated ADD never duplicates one.

import type { Family } from "./types.ts";
import { NetError } from "./types.ts";

const TIMEOUT_MS = 20_000;
const LOCK_WAIT_S = "5";
const ABSENT = /Bad rule|does a matching rule exist|No chain\/target\/match by that name/;

/** One rule: table, chain and the match/target arguments (as after `-A CHAIN`). */
export interface IptablesRule {
  family: Family;
  table: string;
  chain: string;
  args: string[];
}

export function describeIptables(r: IptablesRule): string {
  return `${r.family === 4 ? "iptables" : "ip6tables"} -t ${r.table} -A ${r.chain} ${r.args.join(" ")}`;
}

async function run(nsPath: string | undefined, r: IptablesRule, op: string): Promise<Deno.CommandOutput> {
  const cmd = r.family === 4 ? "iptables" : "ip6tables";
  const args = ["-w", LOCK_WAIT_S, "-t", r.table, op, r.chain, ...r.args];
  const [bin, argv] = nsPath === undefined
    ? [cmd, args]
    : ["nsenter", [`--net=${nsPath}`, "--", cmd, ...args]];
  try {
    return await new Deno.Command(bin, {
      args: argv,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    }).output();
  } catch (e) {
    throw new NetError(`${describeIptables(r)}`, 0, `cannot run ${bin}: ${(e as Error).message}`);
  }
}

function failure(r: IptablesRule, op: string, out: Deno.CommandOutput): NetError {
  const stderr = new TextDecoder().decode(out.stderr).trim();
  return new NetError(
    `${describeIptables(r).replace(" -A ", ` ${op} `)}`,
    0,
    stderr || `exit status ${out.code}`,
  );
}

/** True when the rule is present in the namespace. */
export async function hasRule(nsPath: string | undefined, r: IptablesRule): Promise<boolean> {
  const out = await run(nsPath, r, "-C");
  if (out.success) return true;
  if (out.code === 1 && ABSENT.test(new TextDecoder().decode(out.stderr))) return false;
  throw failure(r, "-C", out);
}

/** Appends the rule unless present; returns whether it was added. */
export async function ensureRule(nsPath: string | undefined, r: IptablesRule): Promise<boolean> {
  if (await hasRule(nsPath, r)) return false;
  const out = await run(nsPath, r, "-A");
  if (!out.success) throw failure(r, "-A", out);
  return true;
}

/** Deletes the rule if present; returns whether it was there. */
export async function deleteRule(nsPath: string | undefined, r: IptablesRule): Promise<boolean> {
  const out = await run(nsPath, r, "-D");
  if (out.success) return true;
  if (out.code === 1 && ABSENT.test(new TextDecoder().decode(out.stderr))) return false;
  throw failure(r, "-D", out);
}
