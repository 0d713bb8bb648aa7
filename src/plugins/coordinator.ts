// The `coordinator` CNI plugin, chained after the main plugin (macvlan, ipvlan, SR-IOV, ...) of each network:
// ADD asks the agent for the SpiderCoordinator's settings, merges them with its own configuration, reads both
// namespaces, plans (src/coordinator/plan.ts) and applies the plan with rollback, then records how to take it
// back; DEL takes it back; CHECK verifies it is still there. The result is the previous plugin's, unchanged.

import { AgentClient, AgentRequestError } from "../agentapi/client.ts";
import type { CoordinatorConfig } from "../agentapi/models.ts";
import { parseCniArgs } from "../cni/args.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { FileLogger } from "../cni/log.ts";
import { type CmdArgs, runPlugin } from "../cni/skel.ts";
import { type Result, toCurrentResult } from "../cni/types.ts";
import { type CleanupInput, missingObjects, planCleanup } from "../coordinator/cleanup.ts";
import {
  type CoordinatorNetConf,
  type CoordinatorSettings,
  mergeSettings,
  readConf,
} from "../coordinator/config.ts";
import { hostVethName, planAdd, PlanError, randomMac } from "../coordinator/plan.ts";
import { observeHost, observePod, view } from "../coordinator/observe.ts";
import { type AddRecord, readRecord, removeRecord, withHostLock, writeRecord } from "../coordinator/state.ts";
import {
  ApplyError,
  applyPlan,
  chooseBackend,
  describeOp,
  hasRule,
  type IptablesRule,
  type Namespaces,
  NetError,
  type NetNs,
  type Op,
  openNs,
  undoAll,
} from "../net/mod.ts";
import { VERSION } from "../version.ts";

/** Plugin-specific CNI error codes. */
export const CoordinatorErrorCode = {
  /** The agent refused to serve the coordinator settings (no Synced SpiderCoordinator, pod not found). */
  agent: 100,
  /** The pod cannot be set up as configured (plan refused: wrong mode for this NIC, missing veth0, ...). */
  plan: 101,
  /** A network operation failed (the message names it; everything done before was rolled back). */
  network: 102,
  /** CHECK found that something the ADD made is gone. */
  missing: 103,
} as const;

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function podOf(args: CmdArgs): { namespace: string; name: string } {
  const a = parseCniArgs(args.args);
  if (!a.K8S_POD_NAMESPACE || !a.K8S_POD_NAME) {
    throw new CniError(
      ErrorCode.invalidEnvironment,
      "CNI_ARGS lacks K8S_POD_NAMESPACE or K8S_POD_NAME; the coordinator reads the pod's settings from " +
        "spiderpool-agent, so the runtime must pass the pod's namespace and name",
    );
  }
  return { namespace: a.K8S_POD_NAMESPACE, name: a.K8S_POD_NAME };
}

function prevResultOf(conf: CoordinatorNetConf): Result {
  if (conf.prevResult === undefined) {
    throw new CniError(
      ErrorCode.invalidNetworkConfig,
      `network "${conf.name}": the coordinator has no prevResult; it must follow the main plugin in the ` +
        `network's plugin list`,
    );
  }
  return { ...toCurrentResult(conf.prevResult), cniVersion: conf.cniVersion };
}

/**
 * The merged settings. `strict` (ADD, CHECK): the agent must answer unless the configuration itself names the
 * pod and service CIDRs, the only facts the agent adds that a pod cannot do without. DEL is never strict: it
 * must succeed with the agent down, and the ADD's record holds what it needs.
 */
async function settingsFor(args: CmdArgs, strict: boolean, log?: FileLogger): Promise<CoordinatorSettings> {
  const conf = args.conf as CoordinatorNetConf;
  const own = readConf(conf);
  if (own.mode === "disable") return mergeSettings(conf, undefined);
  let pod: { namespace: string; name: string };
  try {
    pod = podOf(args);
  } catch (e) {
    if (strict) throw e;
    log?.warn(`${describe(e)}; using the network configuration alone`);
    return mergeSettings(conf, undefined);
  }
  const agent = new AgentClient(own.agentSocket, { timeoutMs: 30_000 });
  let answer: CoordinatorConfig | undefined;
  try {
    answer = await agent.coordinatorConfig({ podName: pod.name, podNamespace: pod.namespace });
  } catch (e) {
    const selfSufficient = own.overlayPodCIDR !== undefined && own.serviceCIDR !== undefined;
    if (!strict || selfSufficient) {
      log?.warn(`no settings from spiderpool-agent (${describe(e)}); using the network configuration alone`);
    } else if (e instanceof AgentRequestError && e.kind === "http") {
      throw new CniError(
        CoordinatorErrorCode.agent,
        `spiderpool-agent cannot give the coordinator settings for pod ${pod.namespace}/${pod.name}: ${e.message}; ` +
          `fix the SpiderCoordinator, or set overlayPodCIDR and serviceCIDR in the coordinator configuration`,
      );
    } else {
      throw new CniError(
        ErrorCode.tryAgainLater,
        `spiderpool-agent at ${agent.socketPath}: ${
          describe(e)
        }; check the spiderpool-agent pod on this node`,
      );
    }
  }
  try {
    return mergeSettings(conf, answer);
  } catch (e) {
    if (strict) throw e;
    log?.warn(`${describe(e)}; cleaning up with the defaults`);
    return mergeSettings({ cniVersion: conf.cniVersion, name: conf.name, type: conf.type }, undefined);
  }
}

async function withLog<T>(args: CmdArgs, fn: (log: FileLogger) => Promise<T>): Promise<T> {
  let level: ReturnType<typeof readConf>["log"];
  try {
    level = readConf(args.conf as CoordinatorNetConf).log;
  } catch {
    level = readConf({ cniVersion: args.conf.cniVersion, name: args.conf.name, type: "coordinator" }).log;
  }
  const log = new FileLogger({
    path: level.path,
    level: level.level,
    maxSizeMB: level.maxSizeMB,
    maxAgeDays: level.maxAgeDays,
    maxCount: level.maxCount,
  }, `${args.command} ${args.containerId} ${args.ifName}`);
  try {
    return await fn(log);
  } catch (e) {
    log.error(describe(e));
    throw e;
  } finally {
    log.flush();
  }
}

function netnsExists(path: string): boolean {
  if (!path) return false;
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function openBoth(args: CmdArgs, needPod: boolean, log: FileLogger): Namespaces {
  const backend = chooseBackend();
  if (backend.reason) log.info(`network changes go through iproute2: ${backend.reason}`);
  const host = openNs(undefined, backend.kind);
  let pod: NetNs | undefined;
  if (netnsExists(args.netns)) {
    try {
      pod = openNs(args.netns, backend.kind);
    } catch (e) {
      host.close();
      throw e;
    }
  } else if (needPod) {
    host.close();
    throw new CniError(
      ErrorCode.invalidEnvironment,
      `the pod's network namespace ${JSON.stringify(args.netns)} (CNI_NETNS) does not exist`,
    );
  }
  return { host, pod };
}

function closeBoth(nets: Namespaces): void {
  nets.host?.close();
  nets.pod?.close();
}

function opLogger(log: FileLogger) {
  return (op: Op, outcome: string) =>
    log.debug(`${outcome === "done" ? "" : `(${outcome}) `}${describeOp(op)}`);
}

async function cmdAdd(args: CmdArgs): Promise<Result> {
  return await withLog(args, async (log) => {
    const conf = args.conf as CoordinatorNetConf;
    const result = prevResultOf(conf);
    const s = await settingsFor(args, true, log);
    if (s.mode === "disable") {
      log.info("mode disable: nothing to do");
      return result;
    }
    const nets = openBoth(args, true, log);
    try {
      return await withHostLock(async () => {
        const pod = await observePod(nets.pod!);
        const podAddrs = pod.addrs.filter((a) => a.scope === 0).map((a) => a.address);
        const host = await observeHost(nets.host!, s, podAddrs);
        let plan;
        try {
          plan = planAdd({
            settings: s,
            containerId: args.containerId,
            ifName: args.ifName,
            pod,
            host,
            macs: { host: randomMac(), pod: randomMac() },
          });
        } catch (e) {
          if (e instanceof PlanError) throw new CniError(CoordinatorErrorCode.plan, e.message);
          throw e;
        }
        log.info(
          `${plan.mode} mode, ${plan.firstInvoke ? "first" : "later"} NIC, table ${plan.table}, ` +
            `node addresses [${plan.nodeIPs.join(", ")}], ${plan.ops.length} operations`,
        );
        for (const n of plan.notes) log.info(n);
        const previous = await readRecord(args.containerId, args.ifName);
        let undo: Op[];
        try {
          undo = await applyPlan(nets, plan.ops, opLogger(log));
        } catch (e) {
          if (e instanceof ApplyError) throw new CniError(CoordinatorErrorCode.network, e.message);
          throw e;
        }
        const record: AddRecord = {
          version: 1,
          containerId: args.containerId,
          ifName: args.ifName,
          netns: args.netns,
          mode: plan.mode,
          table: plan.table,
          hostVeth: plan.hostVeth,
          podIPs: plan.podIPs,
          undo: [...(previous?.undo ?? []), ...undo],
        };
        try {
          await writeRecord(record);
        } catch (e) {
          await undoAll(nets, undo, opLogger(log));
          throw new CniError(ErrorCode.ioFailure, `cannot record the coordinator's changes: ${describe(e)}`);
        }
        log.info(`set up ${args.ifName} (${plan.podIPs.join(", ")})`);
        return result;
      });
    } finally {
      closeBoth(nets);
    }
  });
}

/** The NIC's addresses as the runtime's prevResult lists them (DEL and CHECK carry it from CNI 0.4.0). */
function prevResultIPs(conf: CoordinatorNetConf, ifName: string): string[] {
  if (conf.prevResult === undefined) return [];
  try {
    const r = toCurrentResult(conf.prevResult);
    const index = r.interfaces?.findIndex((i) => i.name === ifName && i.sandbox);
    return (r.ips ?? []).filter((ip) =>
      index === undefined || index < 0 || ip.interface === undefined || ip.interface === index
    )
      .map((ip) => ip.address.split("/")[0]);
  } catch {
    return [];
  }
}

async function cmdDel(args: CmdArgs): Promise<void> {
  await withLog(args, async (log) => {
    // The ADD's record says everything DEL needs; the settings (and the agent) only serve when it is missing.
    const recorded = await readRecord(args.containerId, args.ifName);
    const s = recorded ? undefined : await settingsFor(args, false, log);
    if (s?.mode === "disable") return;
    const nets = openBoth(args, false, log);
    try {
      await withHostLock(async () => {
        const record = await readRecord(args.containerId, args.ifName);
        let failures: string[];
        if (record) {
          // The pod's side went with its namespace when that is gone.
          const undo = record.undo.filter((op) => nets.pod !== undefined || op.ns === "host");
          failures = await undoAll(nets, undo, opLogger(log));
        } else {
          log.info("no record of an ADD; removing what the coordinator makes, found by name and address");
          const pod = nets.pod ? await observePod(nets.pod) : undefined;
          const link = pod?.links.find((l) => l.name === args.ifName);
          const own = link
            ? pod!.addrs.filter((a) => a.index === link.index && a.scope === 0).map((a) => a.address)
            : [];
          const podIPs = [
            ...new Set([...prevResultIPs(args.conf as CoordinatorNetConf, args.ifName), ...own]),
          ];
          const settings = s ?? await settingsFor(args, false, log);
          const host = await observeHost(nets.host!, settings, []);
          const input: CleanupInput = {
            settings,
            containerId: args.containerId,
            ifName: args.ifName,
            podIPs,
            host,
            pod,
          };
          failures = await undoAll(nets, [...planCleanup(input)].reverse(), opLogger(log));
        }
        if (failures.length > 0) {
          throw new CniError(
            CoordinatorErrorCode.network,
            `DEL could not remove everything: ${failures.join("; ")}`,
          );
        }
        await removeRecord(args.containerId, args.ifName);
        log.info(
          `removed the coordinator's changes for ${args.ifName} (host veth ${
            hostVethName(args.containerId)
          })`,
        );
      });
    } finally {
      closeBoth(nets);
    }
  });
}

async function cmdCheck(args: CmdArgs): Promise<void> {
  await withLog(args, async (log) => {
    const s = await settingsFor(args, true, log);
    if (s.mode === "disable") return;
    const record = await readRecord(args.containerId, args.ifName);
    if (!record) {
      throw new CniError(
        CoordinatorErrorCode.missing,
        `no record of a coordinator ADD for container ${args.containerId} interface ${args.ifName}`,
      );
    }
    const nets = openBoth(args, true, log);
    try {
      const present = new Map<string, boolean>();
      for (const op of record.undo) {
        if (op.kind !== "iptables.del") continue;
        present.set(JSON.stringify(op.rule), await hasRule(nets.pod!.path, op.rule));
      }
      const missing = missingObjects(record.undo, {
        host: await view(nets.host!),
        pod: await view(nets.pod!),
        iptables: (rule: IptablesRule) => present.get(JSON.stringify(rule)) ?? false,
      });
      if (missing.length > 0) {
        throw new CniError(
          CoordinatorErrorCode.missing,
          `the coordinator's set-up of ${args.ifName} is incomplete: missing ${missing.join("; ")}`,
        );
      }
    } catch (e) {
      if (e instanceof NetError) throw new CniError(CoordinatorErrorCode.network, e.message);
      throw e;
    } finally {
      closeBoth(nets);
    }
  });
}

/** Entry of the `coordinator` binary name; returns the exit code. */
export function main(): Promise<number> {
  return runPlugin({
    add: cmdAdd,
    del: cmdDel,
    check: cmdCheck,
    about: `CNI plugin coordinator v${VERSION}`,
  });
}
