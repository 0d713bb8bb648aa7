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

/** A rule as `iptables -S` prints it, with the masks iptables adds to CONNMARK targets left out. */
export function ruleLine(r: IptablesRule): string {
  return `-A ${r.chain} ${r.args.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(" ")}`;
}

function normalise(line: string): string {
  return line.replaceAll(" --nfmask 0xffffffff --ctmask 0xffffffff", "").trim();
}

async function command(
  nsPath: string | undefined,
  cmd: string,
  args: string[],
  stdin?: string,
): Promise<Deno.CommandOutput> {
  const [bin, argv] = nsPath === undefined
    ? [cmd, args]
    : ["nsenter", [`--net=${nsPath}`, "--", cmd, ...args]];
  const child = new Deno.Command(bin, {
    args: argv,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(TIMEOUT_MS),
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  return await child.output();
}

/** The rules of `table` in the namespace, as normalised `-S` lines. */
async function listed(nsPath: string | undefined, family: Family, table: string): Promise<Set<string>> {
  const cmd = family === 4 ? "iptables" : "ip6tables";
  const out = await command(nsPath, cmd, ["-w", LOCK_WAIT_S, "-t", table, "-S"]);
  if (!out.success) {
    throw new NetError(`${cmd} -t ${table} -S`, 0, new TextDecoder().decode(out.stderr).trim());
  }
  return new Set(
    new TextDecoder().decode(out.stdout).split("\n").map(normalise).filter((l) => l.startsWith("-A ")),
  );
}

/** Applies `-A`/`-D` lines to one table in one transaction (iptables-restore --noflush). */
async function restore(
  nsPath: string | undefined,
  family: Family,
  table: string,
  lines: string[],
): Promise<void> {
  const cmd = family === 4 ? "iptables-restore" : "ip6tables-restore";
  const out = await command(
    nsPath,
    cmd,
    ["--noflush", "-w", LOCK_WAIT_S],
    `*${table}\n${lines.join("\n")}\nCOMMIT\n`,
  );
  if (!out.success) {
    throw new NetError(`${cmd} (${lines.join("; ")})`, 0, new TextDecoder().decode(out.stderr).trim());
  }
}

/**
 * Adds the rules that are missing, with one listing and one transaction per family and table instead of two
 * commands per rule. Returns, for each rule, whether it was added (false: it was there).
 */
export async function ensureRules(nsPath: string | undefined, rules: IptablesRule[]): Promise<boolean[]> {
  const added = rules.map(() => false);
  for (const [family, table, idx] of groups(rules)) {
    const present = await listed(nsPath, family, table);
    const missing = idx.filter((i) => !present.has(ruleLine(rules[i])));
    if (missing.length === 0) continue;
    await restore(nsPath, family, table, missing.map((i) => ruleLine(rules[i])));
    for (const i of missing) added[i] = true;
  }
  return added;
}

/** Deletes the rules that are present, in one transaction per family and table; returns which were there. */
export async function deleteRules(nsPath: string | undefined, rules: IptablesRule[]): Promise<boolean[]> {
  const deleted = rules.map(() => false);
  for (const [family, table, idx] of groups(rules)) {
    const present = await listed(nsPath, family, table);
    const there = idx.filter((i) => present.has(ruleLine(rules[i])));
    if (there.length === 0) continue;
    await restore(nsPath, family, table, there.map((i) => ruleLine(rules[i]).replace(/^-A /, "-D ")));
    for (const i of there) deleted[i] = true;
  }
  return deleted;
}

function groups(rules: IptablesRule[]): [Family, string, number[]][] {
  const out = new Map<string, [Family, string, number[]]>();
  rules.forEach((r, i) => {
    const key = `${r.family} ${r.table}`;
    if (!out.has(key)) out.set(key, [r.family, r.table, []]);
    out.get(key)![2].push(i);
  });
  return [...out.values()];
}
