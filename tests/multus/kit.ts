// Shared pieces of the SpiderMultusConfig tests: a controller replica led by a real Lease elector in the
// test's namespace, SpiderMultusConfig and NAD REST helpers, and libcni (tests/cnitools/cnidriver) calls.

import { API_VERSION, PLURAL } from "../../src/api/constants.ts";
import { defaultMultusConfig } from "../../src/api/defaults.ts";
import type { MultusCNIConfigSpec, SpiderMultusConfig } from "../../src/api/types.ts";
import { LeaderElector } from "../../src/controller/leader.ts";
import { ControllerMetrics } from "../../src/controller/metrics.ts";
import { NotFoundError } from "../../src/kube/client.ts";
import { MultusConfigController } from "../../src/multus/controller.ts";
import { MultusMetrics } from "../../src/multus/metrics.ts";
import { nadPath, type NetworkAttachmentDefinition } from "../../src/multus/nad.ts";
import { cniToolsBin } from "../cni/tools.ts";
import { poll, type TestScope } from "../kube/harness.ts";

export const TIMINGS = { leaseDurationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 500 };

export const smcsPath = (ns: string) => `/apis/${API_VERSION}/namespaces/${ns}/${PLURAL.multusConfig}`;

export interface ControllerReplica extends AsyncDisposable {
  controller: MultusConfigController;
  elector: LeaderElector;
  metrics: ControllerMetrics;
  multusMetrics: MultusMetrics;
}

/** One leading controller replica for the SpiderMultusConfigs of the scope's namespace. */
export async function multusController(
  scope: TestScope,
  opts: { resyncMs?: number; identity?: string; lead?: boolean } = {},
): Promise<ControllerReplica> {
  const { http, kc } = scope.cluster;
  const identity = opts.identity ?? "replica-a";
  const metrics = new ControllerMetrics();
  const multusMetrics = new MultusMetrics();
  const controller = new MultusConfigController({
    http,
    kubeConfig: kc,
    identity,
    metrics,
    multusMetrics,
    namespace: scope.namespace,
    resyncMs: opts.resyncMs,
    terminatingRetryMs: 200,
    discoveryMs: 500,
    log: () => {},
  });
  const elector = new LeaderElector({
    http,
    namespace: scope.namespace,
    identity,
    timings: TIMINGS,
    work: [controller],
    metrics,
    log: () => {},
  });
  controller.start();
  await controller.synced;
  if (opts.lead ?? true) {
    elector.start();
    await poll(`${identity} to lead`, 30_000, () => Promise.resolve(elector.isLeader() || undefined));
  }
  return {
    controller,
    elector,
    metrics,
    multusMetrics,
    async [Symbol.asyncDispose]() {
      await elector.stop();
      await controller.stop();
    },
  };
}

/** Creates a SpiderMultusConfig in the scope's namespace, defaulted as the mutating webhook would. */
export async function createSMC(
  scope: TestScope,
  name: string,
  spec: MultusCNIConfigSpec,
  annotations?: Record<string, string>,
): Promise<SpiderMultusConfig> {
  // Stored as the mutating webhook leaves it (the webhook is not part of these tests).
  const { body } = await scope.cluster.http.post<SpiderMultusConfig>(
    smcsPath(scope.namespace),
    defaultMultusConfig({
      apiVersion: API_VERSION,
      kind: "SpiderMultusConfig",
      metadata: { name, ...(annotations ? { annotations } : {}) },
      spec,
    }),
  );
  return body;
}

export async function getNAD(
  scope: TestScope,
  name: string,
): Promise<NetworkAttachmentDefinition | undefined> {
  try {
    return (await scope.cluster.http.get<NetworkAttachmentDefinition>(nadPath(scope.namespace, name))).body;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** Waits until the NAD exists and `check` holds for it. */
export function nadWhere(
  scope: TestScope,
  name: string,
  what: string,
  check: (nad: NetworkAttachmentDefinition) => boolean,
  timeoutMs = 30_000,
): Promise<NetworkAttachmentDefinition> {
  return poll(`NAD ${scope.namespace}/${name} ${what}`, timeoutMs, async () => {
    const nad = await getNAD(scope, name);
    return nad && check(nad) ? nad : undefined;
  });
}

export interface Loaded {
  form: "conf" | "conflist";
  name: string;
  cniVersion: string;
  plugins: { type: string; config: Record<string, unknown> }[];
}

/** Parses a CNI configuration with libcni (cnidriver LOAD); throws with libcni's error when it refuses it. */
export async function libcniLoad(config: string): Promise<Loaded> {
  const answer = await cnidriver({ command: "LOAD", conflist: JSON.parse(config) });
  if (answer.code !== 0) throw new Error(`libcni refused the configuration: ${answer.error}`);
  return answer.result as Loaded;
}

export interface DriverAnswer {
  code: number;
  result?: unknown;
  error?: string;
  stderr: string;
}

/** Runs cnidriver with `request` on stdin, optionally inside network namespace `netns` (ip netns exec). */
export async function cnidriver(request: Record<string, unknown>, netns?: string): Promise<DriverAnswer> {
  const bin = `${await cniToolsBin()}/cnidriver`;
  const [cmd, args] = netns ? ["ip", ["netns", "exec", netns, bin]] : [bin, []];
  const child = new Deno.Command(cmd, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(request)));
  await w.close();
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout).trim();
  let parsed: Partial<DriverAnswer> = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { error: `not JSON: ${text}` };
  }
  return { ...parsed, code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}
