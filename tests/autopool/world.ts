// One auto-pool test's world on the real control plane: a test namespace, a real `dist/spiderpool controller`
// process serving the admission webhooks (tests/controller/webhook_harness.ts), and in-process leader work
// led by a real LeaderElector: the application controller and the pool and subnet reconcilers, limited to
// this test's namespace and objects. kube-controller-manager runs the Deployment → ReplicaSet → Pod path.

import { Registry } from "prom-client";
import { decodeControlledIPPools } from "../../src/api/allocated.ts";
import type { SpiderIPPool, SpiderSubnet } from "../../src/api/types.ts";
import { AutoPoolController } from "../../src/controller/autopool/controller.ts";
import { LeaderElector } from "../../src/controller/leader.ts";
import { ControllerMetrics } from "../../src/controller/metrics.ts";
import { Reconcilers } from "../../src/controller/reconcile/reconcilers.ts";
import { IPRangeSet } from "../../src/ip/mod.ts";
import type { KubeHttp } from "../../src/kube/client.ts";
import { NotFoundError } from "../../src/kube/client.ts";
import {
  API,
  type ControllerSet,
  forceDelete,
  randomSubnets,
  SET_LABEL,
  startControllers,
} from "../controller/webhook_harness.ts";
import { poll, type TestScope, testScope } from "../kube/harness.ts";

export const POOLS = `${API}/spiderippools`;
export const SUBNETS = `${API}/spidersubnets`;
const TIMINGS = { leaseDurationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 500 };

export interface AutoPoolWorld extends AsyncDisposable {
  scope: TestScope;
  set: ControllerSet;
  http: KubeHttp;
  namespace: string;
  registry: Registry;
  apps: AutoPoolController;
  reconcilers: Reconcilers;
  /** Creates a SpiderSubnet (through the webhooks) of `count` addresses in a random /24; returns its name. */
  subnet(
    suffix: string,
    count: number,
    opts?: { from?: number },
  ): Promise<{ name: string; prefix: string; cidr: string }>;
  /** Starts the in-process leader work (also done by `autoPoolWorld` unless `start: false`). */
  startLeading(): Promise<void>;
  /** Ends the term (caches stopped, lease released). */
  stopLeading(): Promise<void>;
}

export interface WorldOptions {
  /** The application controller's cluster default +N. */
  defaultFlexible?: number;
  start?: boolean;
  resyncMs?: number;
  /** An existing test scope (e.g. an e2e world's) to work in; it is not disposed with this world. */
  scope?: TestScope;
}

/** Starts a world; `await using` it. */
export async function autoPoolWorld(prefix: string, opts: WorldOptions = {}): Promise<AutoPoolWorld> {
  const scope = opts.scope ?? await testScope(prefix);
  const set = await startControllers(scope);
  const { http, kc } = scope.cluster;
  const namespace = scope.namespace;
  const registry = new Registry();
  const controllerMetrics = new ControllerMetrics();
  const apps = new AutoPoolController({
    http,
    kubeConfig: kc,
    identity: `apps-${set.id}`,
    config: {
      enableIPv4: true,
      enableIPv6: true,
      clusterSubnetDefaultFlexibleIPNumber: opts.defaultFlexible ?? 1,
    },
    registry,
    controllerMetrics,
    namespaces: [namespace],
    extraPoolLabels: set.labels(),
    resyncMs: opts.resyncMs,
    log: () => {},
  });
  const reconcilers = new Reconcilers({
    http,
    kubeConfig: kc,
    identity: `apps-${set.id}`,
    metrics: controllerMetrics,
    matchLabels: { [SET_LABEL]: set.id },
    log: () => {},
  });
  reconcilers.start();
  let elector: LeaderElector | undefined;
  const startLeading = async () => {
    elector = new LeaderElector({
      http,
      namespace,
      // A Lease of its own: the controller process of the set (webhooks only for applications: it handles
      // none, see --reconcile-namespace) holds spiderpool-controller-leases in this namespace.
      leaseName: `apps-${set.id}`,
      identity: `apps-${set.id}`,
      timings: TIMINGS,
      work: [reconcilers, apps],
      log: () => {},
    });
    elector.start();
    await poll(
      "the in-process controller to lead",
      30_000,
      () => Promise.resolve(elector!.isLeader() || undefined),
    );
  };
  const stopLeading = async () => {
    await elector?.stop();
    elector = undefined;
  };
  const world: AutoPoolWorld = {
    scope,
    set,
    http,
    namespace,
    registry,
    apps,
    reconcilers,
    async subnet(suffix, count, o = {}) {
      const { v4, v4prefix } = randomSubnets();
      const name = scope.name(suffix);
      const from = o.from ?? 10;
      await set.create(SUBNETS, {
        apiVersion: "spiderpool.spidernet.io/v2beta1",
        kind: "SpiderSubnet",
        metadata: { name },
        spec: {
          subnet: v4,
          ips: [`${v4prefix}${from}-${v4prefix}${from + count - 1}`],
          gateway: `${v4prefix}1`,
        },
      });
      return { name, prefix: v4prefix, cidr: v4 };
    },
    startLeading,
    stopLeading,
    async [Symbol.asyncDispose]() {
      await stopLeading();
      await apps.stop();
      await reconcilers.stop();
      // The pools the controller made carry the set's labels, those agents made for this namespace's
      // applications its name; they go before the subnets and the webhooks.
      for (
        const sel of [`${SET_LABEL}=${set.id}`, `ipam.spidernet.io/owner-application-namespace=${namespace}`]
      ) {
        const { body } = await http.get<{ items: SpiderIPPool[] }>(
          `${POOLS}?labelSelector=${encodeURIComponent(sel)}`,
        );
        for (const p of body.items) await forceDelete(http, `${POOLS}/${p.metadata.name}`);
      }
      await set.stop();
      if (!opts.scope) await scope[Symbol.asyncDispose]();
    },
  };
  if (opts.start ?? true) await startLeading();
  return world;
}

export async function getSubnet(http: KubeHttp, name: string): Promise<SpiderSubnet> {
  return (await http.get<SpiderSubnet>(`${SUBNETS}/${name}`)).body;
}

export async function getPool(http: KubeHttp, name: string): Promise<SpiderIPPool | undefined> {
  try {
    return (await http.get<SpiderIPPool>(`${POOLS}/${name}`)).body;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** The auto-pools of an application (by its owner-application labels). */
export async function poolsOf(http: KubeHttp, namespace: string, name: string): Promise<SpiderIPPool[]> {
  const sel =
    `ipam.spidernet.io/owner-application-namespace=${namespace},ipam.spidernet.io/owner-application-name=${name}`;
  return (await http.get<{ items: SpiderIPPool[] }>(`${POOLS}?labelSelector=${encodeURIComponent(sel)}`)).body
    .items;
}

/** The number of addresses in a pool's spec.ips. */
export function size(pool: SpiderIPPool | undefined): number {
  return pool ? Number(IPRangeSet.parse(pool.spec.ipVersion === 6 ? 6 : 4, pool.spec.ips ?? []).count()) : -1;
}

/**
 * Every accounting rule of one subnet, as problems (empty when exact): allocatedIPCount is the sum of the
 * pre-allocations; no address is pre-allocated to two pools; each listed pool's spec.ips equals its
 * pre-allocation; no two pools share an address.
 */
export async function accountingProblems(http: KubeHttp, subnetName: string): Promise<string[]> {
  const subnet = await getSubnet(http, subnetName);
  const entries = decodeControlledIPPools(subnet.status?.controlledIPPools, subnetName);
  const problems: string[] = [];
  let sum = 0n;
  let seen = IPRangeSet.empty(4);
  for (const [pool, share] of Object.entries(entries)) {
    const ips = IPRangeSet.parse(4, share.ips);
    sum += ips.count();
    const twice = seen.intersect(ips);
    if (!twice.isEmpty()) problems.push(`${twice.toStrings()} pre-allocated twice (again to ${pool})`);
    seen = seen.union(ips);
    const p = await getPool(http, pool);
    if (p && !IPRangeSet.parse(4, p.spec.ips ?? []).equals(ips)) {
      problems.push(`${pool}: spec.ips ${p.spec.ips} but pre-allocated ${share.ips}`);
    }
  }
  if (BigInt(subnet.status?.allocatedIPCount ?? -1) !== sum) {
    problems.push(
      `allocatedIPCount ${subnet.status?.allocatedIPCount}, but the pre-allocations sum to ${sum}`,
    );
  }
  return problems;
}

/** Waits until `check` holds (bounded); `what` names the condition. */
export function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  return poll(what, timeoutMs, check);
}

/** A Deployment (or another apps/v1 kind) whose pod template carries `annotations`. */
export function deployment(
  name: string,
  replicas: number,
  annotations: Record<string, string>,
  opts: { hostNetwork?: boolean } = {},
) {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations },
        spec: {
          containers: [{ name: "c", image: "registry.invalid/pause:1" }],
          terminationGracePeriodSeconds: 1,
          ...(opts.hostNetwork ? { hostNetwork: true } : {}),
        },
      },
    },
  };
}

export const subnetAnnotation = (subnet: string, extra: Record<string, string> = {}) => ({
  "ipam.spidernet.io/subnet": JSON.stringify({ ipv4: [subnet] }),
  ...extra,
});

/** `PATCH spec.replicas`, what `kubectl scale` does. */
export async function scale(http: KubeHttp, path: string, replicas: number): Promise<void> {
  await http.patch(path, { spec: { replicas } }, "merge");
}
