// The `ifacer` CNI plugin, first in the plugin list of a network whose master is a VLAN sub-interface or a bond:
// ADD makes that interface exist on the host (src/ifacer/plan.ts decides, the network layer applies with
// rollback) and returns an empty result; DEL leaves it, as it is shared by every pod of the network; CHECK
// verifies it is there and up.

import { CniError, ErrorCode } from "../cni/errors.ts";
import { type CmdArgs, runPlugin } from "../cni/skel.ts";
import type { Result } from "../cni/types.ts";
import { IfacerPlanError, parseIfacerConf, planIfacer } from "../ifacer/plan.ts";
import { ApplyError, applyPlan, chooseBackend, IFF_UP, NetError, type Op, openNs } from "../net/mod.ts";
import { VERSION } from "../version.ts";

export const IfacerErrorCode = {
  /** The host cannot have the configured interfaces (a name taken by another link, the same VLAN id twice). */
  plan: 101,
  /** A network operation failed; everything done before it was rolled back. */
  network: 102,
  /** The kernel has no support for the link type (no 8021q or bonding module). */
  unsupported: 104,
  /** CHECK: a configured interface is missing or down. */
  missing: 103,
} as const;

const MODULE: Record<string, { type: string; module: string }> = {
  "link.vlan": { type: "vlan", module: "8021q" },
  "link.bond": { type: "bond", module: "bonding" },
};

/** The kernel's "not supported" answer, as an error naming the link type and the module to load. */
function unsupported(e: ApplyError): CniError | undefined {
  const m = MODULE[e.op.kind];
  if (!m || !(e.cause instanceof NetError) || e.cause.errno !== 95) return undefined;
  const name = e.op.kind === "link.vlan" ? e.op.vlan.name : e.op.kind === "link.bond" ? e.op.bond.name : "";
  return new CniError(
    IfacerErrorCode.unsupported,
    `cannot create ${m.type} interface ${name}: this kernel does not support the link type "${m.type}" ` +
      `(${e.cause.message}); load the ${m.module} kernel module on the node (modprobe ${m.module})`,
  );
}

async function cmdAdd(args: CmdArgs): Promise<Result> {
  const conf = parseIfacerConf(args.conf);
  const host = openNs(undefined, chooseBackend().kind);
  try {
    let ops: Op[];
    try {
      ops = planIfacer(conf, await host.links()).ops;
    } catch (e) {
      if (e instanceof IfacerPlanError) throw new CniError(IfacerErrorCode.plan, e.message);
      throw e;
    }
    try {
      await applyPlan({ host, pod: undefined }, ops);
    } catch (e) {
      if (e instanceof ApplyError) throw unsupported(e) ?? new CniError(IfacerErrorCode.network, e.message);
      throw e;
    }
    return { cniVersion: args.conf.cniVersion };
  } finally {
    host.close();
  }
}

async function cmdCheck(args: CmdArgs): Promise<void> {
  const conf = parseIfacerConf(args.conf);
  const host = openNs(undefined, chooseBackend().kind);
  try {
    const links = await host.links();
    const ops = planIfacer(conf, links).ops;
    // Anything left to do means something is missing or down.
    const missing = ops.filter((op) =>
      op.kind === "link.vlan" || op.kind === "link.bond" || op.kind === "link.set"
    );
    if (missing.length > 0) {
      const names = [
        ...new Set(
          missing.map((op) =>
            op.kind === "link.vlan"
              ? op.vlan.name
              : op.kind === "link.bond"
              ? op.bond.name
              : op.kind === "link.set"
              ? op.name
              : ""
          ),
        ),
      ];
      const down = names.filter((n) => links.some((l) => l.name === n && !(l.flags & IFF_UP)));
      throw new CniError(
        IfacerErrorCode.missing,
        `ifacer interfaces not ready: ${
          names.map((n) => (down.includes(n) ? `${n} is down` : `${n} is missing or not set up`)).join(", ")
        }`,
      );
    }
  } catch (e) {
    if (e instanceof IfacerPlanError) throw new CniError(IfacerErrorCode.plan, e.message);
    if (e instanceof NetError) throw new CniError(ErrorCode.ioFailure, e.message);
    throw e;
  } finally {
    host.close();
  }
}

/** Entry of the `ifacer` binary name; returns the exit code. */
export function main(): Promise<number> {
  return runPlugin({
    add: cmdAdd,
    // The interfaces serve every pod of the network; they stay until the node reboots (as upstream).
    del: () => Promise.resolve(),
    check: cmdCheck,
    about: `CNI plugin ifacer v${VERSION}`,
  });
}
