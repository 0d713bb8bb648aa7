// Applies a plan (a list of Op) to the namespaces it names and returns what it did as the list of operations
// that take it back. An object that already exists is left alone and not taken back later; when a step fails,
// every step already applied is taken back in reverse order before the error is thrown, so a failed ADD leaves
// the namespaces as it found them.

import { announce } from "./arp.ts";
import type { NetNs } from "./backend.ts";
import { deleteRule, deleteRules, ensureRule, ensureRules } from "./iptables.ts";
import { describeOp, inverse, type NsRef, type Op } from "./ops.ts";
import { NetError } from "./types.ts";

export type Namespaces = Record<NsRef, NetNs | undefined>;

/** A step failed; `undoFailures` lists what the rollback could not take back (empty when it all went). */
export class ApplyError extends Error {
  readonly op: Op;
  override readonly cause: unknown;
  readonly undoFailures: string[];

  constructor(op: Op, cause: unknown, undoFailures: string[]) {
    const step = op.step ? `${op.step}: ` : "";
    const why = cause instanceof Error ? cause.message : String(cause);
    const left = undoFailures.length
      ? `; rolling back also failed (${undoFailures.join("; ")})`
      : "; everything done before it was rolled back";
    super(`${step}cannot ${describeOp(op)}: ${why}${left}`);
    this.name = "ApplyError";
    this.op = op;
    this.cause = cause;
    this.undoFailures = undoFailures;
  }
}

/** What happened to one operation. */
export type Outcome = "done" | "present" | "absent" | "skipped";

export interface ApplyLog {
  (op: Op, outcome: Outcome): void;
}

function nsOf(nets: Namespaces, op: Op): NetNs {
  const ns = nets[op.ns];
  if (!ns) throw new Error(`the plan needs the ${op.ns} namespace, which is not open`);
  return ns;
}

/** Applies one operation; "present"/"absent" when the kernel already had (or no longer had) the object. */
export async function applyOne(nets: Namespaces, op: Op): Promise<Outcome> {
  const ns = nsOf(nets, op);
  try {
    switch (op.kind) {
      case "link.veth": {
        const peer = nets[op.peerNs];
        if (!peer) throw new Error(`the plan needs the ${op.peerNs} namespace, which is not open`);
        await ns.addVeth(op.veth, peer);
        return "done";
      }
      case "link.set":
        await ns.setLink(op.name, op.change);
        return "done";
      case "link.del":
        await ns.delLink(op.name);
        return "done";
      case "link.vlan":
        await ns.addVlan(op.vlan);
        return "done";
      case "link.bond":
        await ns.addBond(op.bond);
        return "done";
      case "bond.activeSlave":
        await ns.setBondActiveSlave(op.bond, op.slave);
        return "done";
      case "addr.add":
        await ns.addAddr(op.dev, op.cidr, op.scope);
        return "done";
      case "addr.del":
        await ns.delAddr(op.dev, op.cidr);
        return "done";
      case "route.add":
        await ns.addRoute(op.route, op.replace);
        return "done";
      case "route.del":
        await ns.delRoute(op.route);
        return "done";
      case "rule.add":
        await ns.addRule(op.rule);
        return "done";
      case "rule.del":
        if (op.ifTableEmpty && (await ns.routes(op.rule.family, op.rule.table)).length > 0) return "skipped";
        await ns.delRule(op.rule);
        return "done";
      case "neigh.add":
        await ns.addNeigh(op.neigh);
        return "done";
      case "neigh.del":
        await ns.delNeigh(op.neigh);
        return "done";
      case "sysctl.set":
        await ns.writeSysctl(op.key, op.value);
        return "done";
      case "iptables.add":
        return await ensureRule(ns.path, op.rule) ? "done" : "present";
      case "iptables.del":
        return await deleteRule(ns.path, op.rule) ? "done" : "absent";
      case "announce": {
        // Best effort, as upstream: neighbours that miss it relearn the MAC with the next exchange.
        try {
          announce(ns.path, op.dev, op.ips);
          return "done";
        } catch {
          return "skipped";
        }
      }
    }
  } catch (e) {
    if (e instanceof NetError) {
      const adds = op.kind.endsWith(".add") || op.kind === "link.veth" || op.kind === "link.vlan" ||
        op.kind === "link.bond";
      if (adds && e.exists) return "present";
      if ((op.kind.endsWith(".del")) && e.gone) return "absent";
    }
    throw e;
  }
}

/** How many operations from `i` form one iptables batch (same kind and namespace); 0 when ops[i] is not one. */
function iptablesRun(ops: readonly Op[], i: number): number {
  const first = ops[i];
  if (first.kind !== "iptables.add" && first.kind !== "iptables.del") return 0;
  let n = 1;
  while (i + n < ops.length && ops[i + n].kind === first.kind && ops[i + n].ns === first.ns) n++;
  return n;
}

/** Applies a run of iptables operations with one listing and one transaction per family and table. */
async function applyIptables(nets: Namespaces, run: readonly Op[]): Promise<Outcome[]> {
  const ns = nsOf(nets, run[0]);
  const rules = run.map((op) =>
    (op.kind === "iptables.add" || op.kind === "iptables.del" ? op.rule : undefined)!
  );
  if (run[0].kind === "iptables.add") {
    return (await ensureRules(ns.path, rules)).map((a) => (a ? "done" : "present"));
  }
  return (await deleteRules(ns.path, rules)).map((d) => (d ? "done" : "absent"));
}

/**
 * Applies `ops` in order. Returns the undo list (in the order the operations were applied; take it back from
 * the end). On failure, takes back what was applied and throws ApplyError.
 */
export async function applyPlan(nets: Namespaces, ops: readonly Op[], log?: ApplyLog): Promise<Op[]> {
  const undo: Op[] = [];
  for (let i = 0; i < ops.length;) {
    const batch = iptablesRun(ops, i);
    const run = ops.slice(i, i + Math.max(batch, 1));
    let outcomes: Outcome[];
    try {
      outcomes = batch > 0 ? await applyIptables(nets, run) : [await applyOne(nets, run[0])];
    } catch (e) {
      const failures = await undoAll(nets, undo, log);
      throw new ApplyError(run[0], e, failures);
    }
    run.forEach((op, k) => {
      log?.(op, outcomes[k]);
      if (outcomes[k] !== "done") return;
      const back = inverse(op);
      if (back) undo.push(back);
    });
    i += run.length;
  }
  return undo;
}

/**
 * Takes back an undo list from its end. Objects already gone are fine; every other failure is collected and
 * the rest still runs. Returns the failures as text.
 */
export async function undoAll(nets: Namespaces, undo: readonly Op[], log?: ApplyLog): Promise<string[]> {
  const failures: string[] = [];
  const ops = [...undo].reverse();
  for (let i = 0; i < ops.length;) {
    const batch = iptablesRun(ops, i);
    const run = ops.slice(i, i + Math.max(batch, 1));
    i += run.length;
    try {
      const outcomes = batch > 0 ? await applyIptables(nets, run) : [await applyOne(nets, run[0])];
      run.forEach((op, k) => log?.(op, outcomes[k]));
    } catch (e) {
      if (e instanceof NetError && e.gone) continue;
      failures.push(`${run.map(describeOp).join("; ")}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return failures;
}
