// The `spiderpool` IPAM plugin: a thin CNI front of the spiderpool-agent on this node. ADD asks the agent
// for this interface's addresses and, when the agent says so, checks them on the wire (IP conflict, gateway)
// and announces them; DEL asks the agent to release them, STATUS reports whether it answers and has a free
// address in the default pools, GC sends the runtime's valid attachments. Allocation rules live in the agent;
// the raw-socket code is loaded only by an ADD with detection on.
import { AgentClient, AgentRequestError } from "../agentapi/client.ts";
import {
  DEFAULT_AGENT_SOCKET,
  type GcAttachment,
  type IpamAddResponse,
  type IpConfig,
} from "../agentapi/models.ts";
import { parseCniArgs } from "../cni/args.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { FileLogger, LOG_LEVELS, type LogLevel } from "../cni/log.ts";
import { type CmdArgs, runPlugin } from "../cni/skel.ts";
import type { NetConf, Result } from "../cni/types.ts";
import type { Check, DetectionTarget } from "../net/detect.ts";
import { VERSION } from "../version.ts";

/** Plugin-specific CNI error codes. */
export const SpiderpoolErrorCode = {
  /** The agent refused the request; the message is the agent's (it names the pool and the reason). */
  agent: 100,
  /** The agent's answer cannot be used for this interface. */
  badAllocation: 101,
  /** Another host answered for the allocated address (its MAC is in the message); the address was released. */
  ipConflict: 102,
  /** The gateway of an allocated address did not answer; the address was released. */
  gatewayUnreachable: 103,
  /** The checks could not be made (frames could not be sent or read); nothing was released. */
  detectionFailed: 104,
} as const;

/** The `ipam` section of the network configuration, with defaults applied. */
export interface SpiderpoolIpamConf {
  logLevel: LogLevel;
  logFilePath: string;
  logFileMaxSize: number;
  logFileMaxAge: number;
  logFileMaxCount: number;
  defaultIPv4IPPool: string[];
  defaultIPv6IPPool: string[];
  cleanGateway: boolean;
  matchMasterSubnet: boolean;
  ipamUnixSocketPath: string;
}

export const IPAM_DEFAULTS: SpiderpoolIpamConf = {
  logLevel: "info",
  logFilePath: "/var/log/spidernet/spiderpool.log",
  logFileMaxSize: 100,
  logFileMaxAge: 30,
  logFileMaxCount: 10,
  defaultIPv4IPPool: [],
  defaultIPv6IPPool: [],
  cleanGateway: false,
  matchMasterSubnet: false,
  ipamUnixSocketPath: DEFAULT_AGENT_SOCKET,
};

function badConf(key: string, expected: string, got: unknown): CniError {
  return new CniError(
    ErrorCode.invalidNetworkConfig,
    `invalid ipam.${key}: expected ${expected}, got ${
      JSON.stringify(got)
    }; fix it in the network configuration (NetworkAttachmentDefinition or CNI conf file)`,
  );
}

/**
 * Reads and checks the `ipam` section; throws CniError code 7 naming the key for a wrong type or value.
 *
 * @example parseIpamConf({ cniVersion: "1.0.0", name: "n", type: "macvlan", ipam: { type: "spiderpool" } })
 */
export function parseIpamConf(conf: NetConf): SpiderpoolIpamConf {
  const ipam = conf.ipam;
  if (ipam !== undefined && ipam !== null && (typeof ipam !== "object" || Array.isArray(ipam))) {
    throw new CniError(
      ErrorCode.invalidNetworkConfig,
      `"ipam" must be an object like {"type": "spiderpool"}, got ${JSON.stringify(ipam)}`,
    );
  }
  if (typeof ipam !== "object" || ipam === null || Array.isArray(ipam)) {
    throw new CniError(
      ErrorCode.invalidNetworkConfig,
      `missing "ipam" section; the network configuration needs "ipam": {"type": "spiderpool"}`,
    );
  }
  const out: SpiderpoolIpamConf = { ...IPAM_DEFAULTS };
  const get = (key: string): unknown => ipam[key] ?? undefined;
  const str = (key: string): string | undefined => {
    const v = get(key);
    if (v === undefined || v === "") return undefined;
    if (typeof v !== "string") throw badConf(key, "a string", v);
    return v;
  };
  const bool = (key: string): boolean | undefined => {
    const v = get(key);
    if (v === undefined) return undefined;
    if (typeof v !== "boolean") throw badConf(key, "true or false", v);
    return v;
  };
  const count = (key: string): number | undefined => {
    const v = get(key);
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw badConf(key, "a whole number ≥ 0", v);
    return v;
  };
  const names = (key: string): string[] | undefined => {
    const v = get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string" || x === "")) {
      throw badConf(key, 'a list of SpiderIPPool names, e.g. ["default-v4-ippool"]', v);
    }
    return v as string[];
  };

  const type = get("type");
  if (type !== undefined && type !== "spiderpool") throw badConf("type", '"spiderpool"', type);
  const level = str("log_level");
  if (level !== undefined) {
    const known = LOG_LEVELS[level.toLowerCase()];
    if (!known) throw badConf("log_level", `one of ${Object.keys(LOG_LEVELS).join(", ")}`, level);
    out.logLevel = known;
  }
  out.logFilePath = str("log_file_path") ?? out.logFilePath;
  out.logFileMaxSize = count("log_file_max_size") ?? out.logFileMaxSize;
  out.logFileMaxAge = count("log_file_max_age") ?? out.logFileMaxAge;
  out.logFileMaxCount = count("log_file_max_count") ?? out.logFileMaxCount;
  out.defaultIPv4IPPool = names("default_ipv4_ippool") ?? out.defaultIPv4IPPool;
  out.defaultIPv6IPPool = names("default_ipv6_ippool") ?? out.defaultIPv6IPPool;
  out.cleanGateway = bool("clean_gateway") ?? out.cleanGateway;
  out.matchMasterSubnet = bool("match_master_subnet") ?? out.matchMasterSubnet;
  const socket = str("ipam_unix_socket_path");
  if (socket !== undefined && !socket.startsWith("/")) {
    throw badConf("ipam_unix_socket_path", "an absolute path", socket);
  }
  out.ipamUnixSocketPath = socket ?? out.ipamUnixSocketPath;
  return out;
}

/** The pod identity from CNI_ARGS; code 4 when the runtime did not pass it. */
export function podIdentity(cniArgs: string): { namespace: string; name: string; uid: string } {
  const a = parseCniArgs(cniArgs);
  const missing = [
    a.K8S_POD_NAMESPACE ? "" : "K8S_POD_NAMESPACE",
    a.K8S_POD_NAME ? "" : "K8S_POD_NAME",
  ].filter((k) => k !== "");
  if (missing.length > 0) {
    throw new CniError(
      ErrorCode.invalidEnvironment,
      `CNI_ARGS lacks ${
        missing.join(" and ")
      }; spiderpool allocates per Kubernetes pod, so the runtime must pass the pod's namespace and name`,
    );
  }
  return { namespace: a.K8S_POD_NAMESPACE!, name: a.K8S_POD_NAME!, uid: a.K8S_POD_UID ?? "" };
}

/**
 * The CNI result for `ifName` out of the agent's answer: its addresses (with gateway), its routes, the DNS.
 * Throws code 101 when the answer holds nothing for `ifName` or is malformed.
 */
export function buildResult(resp: IpamAddResponse, ifName: string): Result {
  if (!resp || !Array.isArray(resp.ips)) {
    throw new CniError(
      SpiderpoolErrorCode.badAllocation,
      `the agent's answer has no "ips" list: ${JSON.stringify(resp)}`,
    );
  }
  const result: Result = { cniVersion: "1.1.0", ips: [], routes: [] };
  for (const ip of resp.ips) {
    if (ip.nic !== ifName) continue;
    if (typeof ip.address !== "string" || !/^[0-9a-fA-F.:]+\/\d{1,3}$/.test(ip.address)) {
      throw new CniError(
        SpiderpoolErrorCode.badAllocation,
        `the agent allocated an invalid address ${JSON.stringify(ip.address)} for ${ifName} (pool ${
          ip.ipPool ?? "?"
        })`,
      );
    }
    result.ips!.push(ip.gateway ? { address: ip.address, gateway: ip.gateway } : { address: ip.address });
  }
  if (result.ips!.length === 0) {
    throw new CniError(
      SpiderpoolErrorCode.badAllocation,
      `no Interface ${ifName} IP allocation found`,
      `the agent returned addresses for [${[...new Set(resp.ips.map((i) => i.nic))].join(", ")}]`,
    );
  }
  for (const r of resp.routes ?? []) {
    if (r.ifName === ifName) result.routes!.push(r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst });
  }
  const dns = resp.dns ?? {};
  result.dns = {};
  if (dns.nameservers?.length) result.dns.nameservers = [...dns.nameservers];
  if (dns.domain) result.dns.domain = dns.domain;
  if (dns.search?.length) result.dns.search = [...dns.search];
  if (dns.options?.length) result.dns.options = [...dns.options];
  return result;
}

/**
 * The on-the-wire checks the agent asked for, for the addresses of `ifName`: a conflict check per address whose
 * `enableIPConflictDetection` is set, a gateway check per address with a gateway whose `enableGatewayDetection`
 * is set. Empty (the usual case) means the plugin loads no raw-socket code.
 */
export function detectionTargets(ips: readonly IpConfig[], ifName: string): DetectionTarget[] {
  const out: DetectionTarget[] = [];
  for (const ip of ips) {
    if (ip.nic !== ifName) continue;
    const conflict = ip.enableIPConflictDetection === true;
    const gateway = ip.enableGatewayDetection === true && ip.gateway ? ip.gateway : undefined;
    if (!conflict && gateway === undefined) continue;
    const address = ip.address.split("/")[0];
    out.push({
      family: address.includes(":") ? 6 : 4,
      ip: address,
      conflict,
      ...(gateway ? { gateway } : {}),
    });
  }
  return out;
}

/**
 * The attachments listed by a CNI 1.1 GC request (`cni.dev/valid-attachments`, or the draft's
 * `cni.dev/attachments`); undefined when the request has neither key, which is what libcni sends when the
 * runtime passed no list: nothing is known to be stale then.
 */
export function validAttachments(conf: NetConf): GcAttachment[] | undefined {
  const key = conf["cni.dev/valid-attachments"] !== undefined
    ? "cni.dev/valid-attachments"
    : "cni.dev/attachments";
  const raw = conf[key];
  if (raw === undefined) return undefined;
  const bad = () =>
    new CniError(
      ErrorCode.invalidNetworkConfig,
      `invalid "${key}": expected a list of {"containerID": string, "ifname": string}, got ${
        JSON.stringify(raw)
      }`,
    );
  if (!Array.isArray(raw)) throw bad();
  return raw.map((a) => {
    if (typeof a !== "object" || a === null) throw bad();
    const { containerID, ifname } = a as Record<string, unknown>;
    if (typeof containerID !== "string" || containerID === "" || typeof ifname !== "string") throw bad();
    return { containerID, ifName: ifname };
  });
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The CNI error for a failed request to the agent: the agent's refusal is code 100 with its message; an answer
 * that is not HTTP is code 101; no answer (no agent, a timeout, or an agent that went away mid-request, e.g.
 * restarted) is code 11, try again later, with `fix` appended.
 */
function agentFailure(e: unknown, what: string, socketPath: string): CniError {
  if (e instanceof AgentRequestError && e.kind === "http") {
    return new CniError(SpiderpoolErrorCode.agent, `${what}: ${e.message}`);
  }
  const code = e instanceof AgentRequestError && e.kind === "protocol"
    ? SpiderpoolErrorCode.badAllocation
    : ErrorCode.tryAgainLater;
  return new CniError(
    code,
    `${what}: spiderpool-agent at ${socketPath}: ${describe(e)}; check the spiderpool-agent pod on this node`,
  );
}

/** The agent did not answer its health check, or (ADD, DEL) could not be connected to: code `code`. */
function notHealthy(agent: AgentClient, e: unknown, code: number): CniError {
  const state = e instanceof AgentRequestError && e.kind === "http" ? "is not ready" : "is unreachable";
  return new CniError(
    code,
    `spiderpool-agent at ${agent.socketPath} ${state}: ${
      describe(e)
    }; check the spiderpool-agent pod on this node`,
  );
}

/** STATUS and GC ask the agent's health first; otherwise the runtime should retry. */
async function requireHealthy(agent: AgentClient, code: number): Promise<void> {
  try {
    await agent.healthy();
  } catch (e) {
    throw notHealthy(agent, e, code);
  }
}

/**
 * ADD and DEL make no separate health check (upstream's plugin does): it would cost every call a second
 * connection and round trip, and under load its short deadline failed calls the agent would have served. A
 * request that cannot connect reached nothing, so it fails with the health check's code and message.
 */
function unconnected(agent: AgentClient, e: unknown): CniError | undefined {
  if (e instanceof AgentRequestError && !e.connected) return notHealthy(agent, e, ErrorCode.tryAgainLater);
  return undefined;
}

/** Runs a command with the configuration and logger set up, flushing the log whatever happens. */
async function withSetup<T>(
  args: CmdArgs,
  fn: (conf: SpiderpoolIpamConf, log: FileLogger) => Promise<T>,
): Promise<T> {
  const conf = parseIpamConf(args.conf);
  const context = args.containerId ? `${args.command} ${args.containerId} ${args.ifName}` : args.command;
  const log = new FileLogger({
    path: conf.logFilePath,
    level: conf.logLevel,
    maxSizeMB: conf.logFileMaxSize,
    maxAgeDays: conf.logFileMaxAge,
    maxCount: conf.logFileMaxCount,
  }, context);
  try {
    return await fn(conf, log);
  } catch (e) {
    log.error(describe(e));
    throw e;
  } finally {
    log.flush();
  }
}

async function cmdAdd(args: CmdArgs): Promise<Result> {
  return await withSetup(args, async (conf, log) => {
    const pod = podIdentity(args.args);
    const agent = new AgentClient(conf.ipamUnixSocketPath);
    log.debug(`allocating for pod ${pod.namespace}/${pod.name} (uid ${pod.uid || "unknown"})`);
    let resp: IpamAddResponse;
    try {
      resp = await agent.allocate({
        containerID: args.containerId,
        ifName: args.ifName,
        netNamespace: args.netns,
        podNamespace: pod.namespace,
        podName: pod.name,
        podUID: pod.uid,
        defaultIPv4IPPool: conf.defaultIPv4IPPool,
        defaultIPv6IPPool: conf.defaultIPv6IPPool,
        cleanGateway: conf.cleanGateway,
        matchMasterSubnet: conf.matchMasterSubnet,
        networkName: args.conf.name,
      });
    } catch (e) {
      const what =
        `spiderpool-agent failed to allocate an IP for ${args.ifName} of pod ${pod.namespace}/${pod.name}`;
      throw unconnected(agent, e) ?? agentFailure(e, what, agent.socketPath);
    }
    const result = buildResult(resp, args.ifName);
    const mine = resp.ips.filter((ip) => ip.nic === args.ifName);
    const targets = detectionTargets(mine, args.ifName);
    if (targets.length > 0) await checkAddresses(args, pod, agent, mine, targets, log);
    log.info(
      `allocated ${result.ips!.map((i) => i.address).join(", ")} for pod ${pod.namespace}/${pod.name}`,
    );
    return result;
  });
}

/** The pool an address came from, for messages. */
function poolOf(ips: readonly IpConfig[], ip: string): string {
  const cfg = ips.find((c) => c.address.split("/")[0] === ip);
  return cfg?.ipPool ? `SpiderIPPool ${JSON.stringify(cfg.ipPool)}` : "its pool";
}

function describeCheck(c: Check): string {
  const o = c.outcome;
  const what = c.kind === "conflict" ? `conflict check of ${c.ip}` : `gateway ${c.target} of ${c.ip}`;
  switch (o?.kind) {
    case "free":
      return `${what}: no other host answered`;
    case "conflict":
      return `${what}: in use by ${o.mac}`;
    case "reachable":
      return `${what}: answered from ${o.mac}`;
    case "unreachable":
      return `${what}: no answer to ${o.probes} requests in ${o.waitedMs} ms`;
    case "failed":
      return `${what}: could not be checked: ${o.reason}`;
    default:
      return `${what}: not decided`;
  }
}

/**
 * IP-conflict and gateway detection (§4.9) in the pod's namespace, the link set up first. A conflict or an
 * unreachable gateway gives every address of this ADD back to the pools (`DELETE /v1/ipam/ips`, as upstream)
 * and fails the ADD naming the address and the other host's MAC, or the gateway; checks that could not be made
 * fail the ADD and release nothing. When the checks pass, every address of the interface is announced
 * (gratuitous ARP / unsolicited NA; errors only logged): the link is up already, so the kernel will not announce
 * them when the main plugin configures them (upstream #4650). A link the main plugin has not created yet (some
 * plugins call IPAM first) cannot be checked: logged, not failed.
 */
async function checkAddresses(
  args: CmdArgs,
  pod: { namespace: string; name: string; uid: string },
  agent: AgentClient,
  mine: readonly IpConfig[],
  targets: DetectionTarget[],
  log: FileLogger,
): Promise<void> {
  const { detect, isNoSuchLink } = await import("../net/detect.ts");
  const who = `${args.ifName} of pod ${pod.namespace}/${pod.name}`;
  let checks: Check[];
  try {
    const ips = mine.map((c) => c.address.split("/")[0]);
    const report = await detect(args.netns, args.ifName, targets, ips);
    if (report.broughtUp) log.debug(`set ${args.ifName} up for IP conflict and gateway detection`);
    if (!report.linkRunning) {
      log.warn(
        `${args.ifName} was not running (no carrier) after ${report.waitedForLinkMs} ms; probed anyway, ` +
          `but frames sent on it may be lost`,
      );
    } else if (report.waitedForLinkMs > 0) {
      log.debug(`waited ${report.waitedForLinkMs} ms for ${args.ifName} to run before probing`);
    }
    if (report.announced.length > 0) log.debug(`announced ${report.announced.join(", ")} on ${args.ifName}`);
    if (report.announceError) {
      log.info(
        `announcing ${
          ips.join(", ")
        } on ${args.ifName} failed (neighbours learn them on first use): ${report.announceError}`,
      );
    }
    checks = report.checks;
  } catch (e) {
    if (isNoSuchLink(e)) {
      log.warn(
        `IP conflict and gateway detection skipped: ${args.ifName} does not exist in ${args.netns} yet ` +
          "(the main plugin creates it after IPAM)",
      );
      return;
    }
    throw new CniError(
      SpiderpoolErrorCode.detectionFailed,
      `IP conflict and gateway detection on ${who} failed: ${describe(e)}`,
    );
  }
  for (const c of checks) log.info(describeCheck(c));
  const conflict = checks.find((c) => c.outcome?.kind === "conflict");
  const unreachable = checks.find((c) => c.outcome?.kind === "unreachable");
  if (conflict || unreachable) {
    let released = "the allocation was released";
    try {
      await agent.releaseAll({
        isReleaseConflictIPs: false,
        containerID: args.containerId,
        netNamespace: args.netns,
        podNamespace: pod.namespace,
        podName: pod.name,
        podUID: pod.uid,
      });
    } catch (e) {
      released = `releasing the allocation failed too (left to the DEL and IP GC): ${describe(e)}`;
    }
    if (conflict) {
      const o = conflict.outcome as { mac: string };
      const pool = poolOf(mine, conflict.ip);
      throw new CniError(
        SpiderpoolErrorCode.ipConflict,
        `IP conflict: ${conflict.ip} allocated to ${who} (${pool}) is already in use by the host with MAC ` +
          `${o.mac}; ${released}. Find that host, or add ${conflict.ip} to spec.excludeIPs of ${pool}`,
      );
    }
    const c = unreachable!;
    const o = c.outcome as { probes: number; waitedMs: number };
    const pool = poolOf(mine, c.ip);
    const how = c.family === 4 ? "ARP requests" : "neighbour solicitations";
    throw new CniError(
      SpiderpoolErrorCode.gatewayUnreachable,
      `gateway ${c.target} is unreachable from ${c.ip} on ${who} (${pool}): ${o.probes} ${how} got no ` +
        `answer in ${o.waitedMs} ms; ${released}. Check the gateway of ${pool} and the network behind ` +
        `${args.ifName}, or set enableGatewayDetection: false in the spiderpool-conf ConfigMap`,
    );
  }
  const failed = checks.find((c) => c.outcome?.kind !== "free" && c.outcome?.kind !== "reachable");
  if (failed) {
    throw new CniError(
      SpiderpoolErrorCode.detectionFailed,
      `IP conflict and gateway detection on ${who}: ${describeCheck(failed)}`,
    );
  }
}

async function cmdDel(args: CmdArgs): Promise<void> {
  await withSetup(args, async (conf, log) => {
    const pod = podIdentity(args.args);
    const agent = new AgentClient(conf.ipamUnixSocketPath);
    const who = `pod ${pod.namespace}/${pod.name}`;
    try {
      const outcome = await agent.release({
        containerID: args.containerId,
        ifName: args.ifName,
        netNamespace: args.netns,
        podNamespace: pod.namespace,
        podName: pod.name,
        podUID: pod.uid,
      });
      if (outcome === undefined) {
        log.info(`the agent accepted the release for ${who} (it does not say what it did)`);
      } else if (outcome.result === "released") log.info(`released ${outcome.detail} of ${who}`);
      else if (outcome.result === "kept") log.info(`the agent kept the IPs of ${who}: ${outcome.detail}`);
      else log.info(`nothing to release for ${who}: ${outcome.detail}`);
    } catch (e) {
      // No answer (the agent went away mid-request, or timed out) decided nothing: like a failed health
      // check, the DEL fails and the runtime retries it. A release the agent refused is only logged, as
      // upstream does; the IP GC reclaims what it leaves behind.
      if (!(e instanceof AgentRequestError && e.kind === "http")) {
        throw unconnected(agent, e) ??
          agentFailure(e, `spiderpool-agent did not answer the release for ${who}`, agent.socketPath);
      }
      log.error(`release for ${who} failed (left to IP GC): ${describe(e)}`);
    }
  });
}

/**
 * Code 50 when the agent is unreachable or no candidate pool of the configuration (the CNI config's default
 * pools, else the `spec.default` pools) has a free address; the agent's message names each pool.
 */
async function cmdStatus(args: CmdArgs): Promise<void> {
  await withSetup(args, async (conf) => {
    const agent = new AgentClient(conf.ipamUnixSocketPath);
    await requireHealthy(agent, ErrorCode.pluginNotAvailable);
    try {
      await agent.status({
        defaultIPv4IPPool: conf.defaultIPv4IPPool,
        defaultIPv6IPPool: conf.defaultIPv6IPPool,
      });
    } catch (e) {
      // An agent without POST /v1/ipam/status (an older one): its health is all that is known.
      if (e instanceof AgentRequestError && e.kind === "http" && e.status === 404) return;
      if (e instanceof AgentRequestError && e.kind === "http") {
        throw new CniError(ErrorCode.pluginNotAvailable, `spiderpool-agent cannot serve ADD: ${e.message}`);
      }
      const where = `spiderpool-agent at ${agent.socketPath}`;
      const fix = "check the spiderpool-agent pod on this node";
      throw new CniError(ErrorCode.pluginNotAvailable, `${where}: ${describe(e)}; ${fix}`);
    }
  });
}

/**
 * GC for the configuration's network: the agent releases what was attached through this network by sandboxes
 * that have no valid attachment on it and cannot be running any more. Without a list of valid attachments
 * nothing is known to be stale, and nothing is released.
 */
async function cmdGc(args: CmdArgs): Promise<void> {
  await withSetup(args, async (conf, log) => {
    const attachments = validAttachments(args.conf);
    if (attachments === undefined) {
      log.info(`GC of network ${args.conf.name} without "cni.dev/valid-attachments": nothing released`);
      return;
    }
    const agent = new AgentClient(conf.ipamUnixSocketPath);
    await requireHealthy(agent, ErrorCode.tryAgainLater);
    try {
      await agent.gc({ networkName: args.conf.name, validAttachments: attachments });
    } catch (e) {
      throw agentFailure(e, `spiderpool-agent GC of network ${args.conf.name} failed`, agent.socketPath);
    }
    log.info(`GC of network ${args.conf.name} with ${attachments.length} valid attachments done`);
  });
}

/** Entry of the `spiderpool` binary name when CNI_COMMAND is set; returns the exit code. */
export function main(): Promise<number> {
  return runPlugin({
    add: cmdAdd,
    del: cmdDel,
    check: () => Promise.resolve(),
    status: cmdStatus,
    gc: cmdGc,
    // As the reference plugins' skel: "CNI <name> plugin <version>" on stderr, exit 0.
    about: `CNI spiderpool plugin v${VERSION}`,
  });
}
