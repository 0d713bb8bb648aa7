// The agent's side of SpiderSubnet auto-pools (spec §4.5): an ADD for a pod whose template names
// `ipam.spidernet.io/subnet(s)` is served from its application's auto-pool. For the six native kinds the
// controller makes and sizes that pool; the agent waits for it (SPIDERPOOL_WAIT_SUBNET_POOL_MAX_RETRIES ×
// SPIDERPOOL_WAIT_SUBNET_POOL_TIME_IN_SECOND, woken early by the pool cache) until it exists with at least the
// desired number of addresses. For third-party controllers the agent makes and sizes the pool itself with the
// same rules and write order as the controller (ensureAutoPool), fixed sizes only.

import { Counter, Histogram, type Registry } from "./exposition.ts";
import { ANNOTATION, KIND, LABEL } from "../api/constants.ts";
import type { SpiderIPPool, SpiderReservedIP, SpiderSubnet } from "../api/types.ts";
import type { Family, IPRangeSet } from "../ip/mod.ts";
import {
  agentAutoPool,
  type AppObject,
  appReplicas,
  type AutoPoolConfig,
  autoPoolConfig,
  type AutoPoolWant,
  desiredIPCount,
  isNativeApp,
  isPoolOf,
  NATIVE_APPS,
  poolSize,
  reservedAddresses,
} from "../ipam/autopool.ts";
import { type AutoPoolIO, ensureAutoPool } from "../ipam/autopool_ensure.ts";
import {
  type PoolCandidates,
  PoolSelectionError,
  type SubnetCandidates,
  type TopController,
} from "../ipam/mod.ts";
import type { ResourceCache } from "../kube/cache.ts";
import { ConflictError, KubeHttpError, NotFoundError } from "../kube/client.ts";
import type { AgentConfig } from "./config.ts";
import type { AgentKube, Pod } from "./kube.ts";
import { POOLS } from "./kube.ts";
import { KeyedLock } from "./lock.ts";

/** How long an ADD waits for the controller's pool: `maxRetries` checks `intervalMs` apart. */
export interface AutoPoolWait {
  maxRetries: number;
  intervalMs: number;
}

/** Upstream's 25 × 2 s. */
export const DEFAULT_AUTO_POOL_WAIT: AutoPoolWait = { maxRetries: 25, intervalMs: 2_000 };

/**
 * Reads `SPIDERPOOL_WAIT_SUBNET_POOL_MAX_RETRIES` (a whole number ≥ 1) and
 * `SPIDERPOOL_WAIT_SUBNET_POOL_TIME_IN_SECOND` (seconds > 0, decimals allowed); unset or empty means the
 * default. A malformed value is an error naming the variable.
 */
export function autoPoolWaitFromEnv(env: (key: string) => string | undefined): AutoPoolWait {
  const read = (key: string, fallback: number, parse: (raw: string) => number | undefined, shape: string) => {
    const raw = env(key)?.trim();
    if (raw === undefined || raw === "") return fallback;
    const v = parse(raw);
    if (v === undefined) throw new Error(`${key}=${JSON.stringify(raw)} is not ${shape}`);
    return v;
  };
  return {
    maxRetries: read(
      "SPIDERPOOL_WAIT_SUBNET_POOL_MAX_RETRIES",
      DEFAULT_AUTO_POOL_WAIT.maxRetries,
      (r) => /^\d+$/.test(r) && Number(r) >= 1 ? Number(r) : undefined,
      `a whole number of retries >= 1, e.g. "25"`,
    ),
    intervalMs: read(
      "SPIDERPOOL_WAIT_SUBNET_POOL_TIME_IN_SECOND",
      DEFAULT_AUTO_POOL_WAIT.intervalMs,
      (r) => /^\d+(\.\d+)?$/.test(r) && Number(r) > 0 ? Math.round(Number(r) * 1000) : undefined,
      `a number of seconds > 0, e.g. "2"`,
    ),
  };
}

/** The application's auto-pool did not come (in time, or at all): the message names the application and subnet. */
export class AutoPoolNotReadyError extends PoolSelectionError {
  constructor(annotation: string, message: string) {
    super(annotation, message);
    this.name = "AutoPoolNotReadyError";
  }
}

export interface AutoPoolResolverOptions {
  kube: AgentKube;
  pools: ResourceCache<SpiderIPPool>;
  reservedIPs: ResourceCache<SpiderReservedIP>;
  config: AgentConfig;
  wait: AutoPoolWait;
  /** The agent's metrics registry. */
  registry: Registry;
  /** Upstream's debug counter `spiderpool_debug_auto_pool_waited_for_available_counts` (`SPIDERPOOL_ENABLED_DEBUG_METRIC`). */
  debugMetrics?: boolean;
  log: (message: string) => void;
}

const enc = encodeURIComponent;

/** Finds (native applications) or makes (third-party controllers) the auto-pools an ADD allocates from. */
export class AutoPoolResolver {
  readonly #o: AutoPoolResolverOptions;
  readonly #wakers = new Set<() => void>();
  readonly #subnets = new KeyedLock();
  readonly #waited?: Counter;
  readonly #waitSeconds: Histogram;

  constructor(opts: AutoPoolResolverOptions) {
    this.#o = opts;
    opts.pools.onChange(() => {
      for (const wake of [...this.#wakers]) wake();
    });
    if (opts.debugMetrics) {
      this.#waited = new Counter({
        name: "spiderpool_debug_auto_pool_waited_for_available_counts_total",
        help: "ADDs that had to wait for their application's auto-created SpiderIPPool",
        registers: [opts.registry],
      });
    }
    this.#waitSeconds = new Histogram({
      name: "spiderpool_agent_auto_pool_wait_seconds",
      help: "how long ADDs waited for their application's auto-created SpiderIPPool, by outcome",
      labelNames: ["outcome"],
      buckets: [0.1, 0.3, 0.5, 1, 3, 5, 7, 10, 15, 30, 60],
      registers: [opts.registry],
    });
  }

  /**
   * The pools of the NIC being set up: the application's auto-pool of each family the pod's subnet
   * annotation names. Throws AutoPoolNotReadyError (no pool in time), PoolSelectionError (a flexible size for
   * a third-party controller), AnnotationError, or an error of ensureAutoPool.
   */
  async candidates(
    pod: Pod,
    top: TopController,
    subnet: SubnetCandidates,
    cleanGateway: boolean,
    deadline: number,
  ): Promise<PoolCandidates> {
    const config = autoPoolConfig(
      pod.metadata.annotations,
      this.#o.config.clusterSubnetDefaultFlexibleIPNumber,
    );
    if (config === undefined) {
      throw new Error(`internal error: pod ${pod.metadata.name} has no subnet annotation`);
    }
    const wants: AutoPoolWant[] = [];
    if (subnet.subnet.ipv4 !== undefined) {
      wants.push({ subnet: subnet.subnet.ipv4, family: 4, ifName: subnet.subnet.interface });
    }
    if (subnet.subnet.ipv6 !== undefined) {
      wants.push({ subnet: subnet.subnet.ipv6, family: 6, ifName: subnet.subnet.interface });
    }
    const native = isNativeApp(top);
    const pools = await Promise.all(
      wants.map((want) =>
        native
          ? this.#waitForPool(top, want, config, subnet.annotation, deadline)
          : this.#thirdParty(top, want, config, subnet.annotation)
      ),
    );
    const names = (family: Family) =>
      pools.filter((_, i) => wants[i].family === family).map((p) => p.metadata.name);
    return {
      kind: "pools",
      source: "subnet",
      noNameMode: false,
      nics: [{ nic: subnet.subnet.interface, index: 0, ipv4: names(4), ipv6: names(6), cleanGateway }],
    };
  }

  /** The desired size of the application's pool now (its replicas read from the API server). */
  async #desired(top: TopController, config: AutoPoolConfig): Promise<number> {
    if (!config.ipNumber.flexible) return config.ipNumber.n;
    const { apiVersion, plural } = NATIVE_APPS[top.kind];
    const app = await this.#o.kube.getObject<AppObject>(
      `/apis/${apiVersion}/namespaces/${enc(top.namespace)}/${plural}/${enc(top.name)}`,
    );
    if (app === undefined) {
      throw new AutoPoolNotReadyError(
        ANNOTATION.subnet,
        `${top.kind} ${top.namespace}/${top.name} no longer exists; its pods get no address from its auto-pool`,
      );
    }
    return desiredIPCount(config.ipNumber, appReplicas(top.kind, app));
  }

  async #waitForPool(
    top: TopController,
    want: AutoPoolWant,
    config: AutoPoolConfig,
    annotation: string,
    deadline: number,
  ): Promise<SpiderIPPool> {
    const { maxRetries, intervalMs } = this.#o.wait;
    const started = performance.now();
    const until = Math.min(deadline, Date.now() + maxRetries * intervalMs);
    let waited = false;
    let why = "";
    let desired = -1;
    let lastTick = -Infinity;
    for (;;) {
      // Once per interval the replicas are read again (a scale meanwhile changes what to wait for) and, after
      // the first look, the API server is asked directly in case the pool cache is behind.
      const tick = performance.now() - lastTick >= intervalMs;
      if (tick) {
        desired = await this.#desired(top, config);
        lastTick = performance.now();
      }
      let pool = agentAutoPool(this.#o.pools.list(), top, want);
      if (pool === undefined && tick && waited) pool = await this.#listed(top, want);
      const have = pool === undefined ? -1n : poolSize(pool, want.family);
      // A pool larger than wanted is being shrunk (addresses still held), which does not concern this pod.
      if (pool !== undefined && have >= BigInt(desired)) {
        if (waited) {
          this.#waited?.inc();
          this.#waitSeconds.observe({ outcome: "found" }, (performance.now() - started) / 1000);
        }
        return pool;
      }
      why = pool === undefined
        ? `no auto-created IPv${want.family} ${KIND.ippool} exists for it yet`
        : `${KIND.ippool} ${JSON.stringify(pool.metadata.name)} has ${have} IPs, ${desired} wanted`;
      const left = until - Date.now();
      if (left <= 0) break;
      waited = true;
      // Until the next tick, or earlier when the pool cache changes.
      await this.#sleep(Math.max(1, Math.min(left, intervalMs - (performance.now() - lastTick))));
    }
    this.#waitSeconds.observe({ outcome: "timed_out" }, (performance.now() - started) / 1000);
    const moved = this.#o.pools.list().find((p) =>
      isPoolOf(p, top, want) && p.metadata.labels?.[LABEL.ownerSpiderSubnet] !== want.subnet
    );
    const hint = moved
      ? `; its pool ${JSON.stringify(moved.metadata.name)} belongs to ${KIND.subnet} ${
        JSON.stringify(moved.metadata.labels?.[LABEL.ownerSpiderSubnet])
      } and auto-pools do not move between subnets (see the ApplicationSubnetChanged event)`
      : "";
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    throw new AutoPoolNotReadyError(
      annotation,
      `${top.kind} ${top.namespace}/${top.name}: waited ${seconds} s (at most ${maxRetries} × ` +
        `${
          intervalMs / 1000
        } s, SPIDERPOOL_WAIT_SUBNET_POOL_*) for its auto-created IPv${want.family} pool on ` +
        `${want.ifName} from ${KIND.subnet} ${
          JSON.stringify(want.subnet)
        }, but ${why}${hint}; check that the ` +
        `subnet exists and has free IPs, that spiderpool-controller is running, and the Events of the ` +
        `${top.kind} (kubectl describe ${top.kind.toLowerCase()} -n ${top.namespace} ${top.name})`,
    );
  }

  /** The application's pool for `want` as the API server lists it (by label selector). */
  async #listed(top: TopController, want: AutoPoolWant): Promise<SpiderIPPool | undefined> {
    const sel = [
      `${LABEL.ownerApplicationNamespace}=${top.namespace}`,
      `${LABEL.ownerApplicationName}=${top.name}`,
      `${LABEL.ownerApplicationUID}=${top.uid}`,
    ].join(",");
    const list = await this.#o.kube.getObject<{ items?: SpiderIPPool[] }>(
      `${POOLS}?labelSelector=${enc(sel)}`,
    );
    return agentAutoPool(list?.items ?? [], top, want);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wakers.add(done);
    });
  }

  /** A third-party controller's pool: made and sized here, fixed sizes only (upstream's rule). */
  async #thirdParty(
    top: TopController,
    want: AutoPoolWant,
    config: AutoPoolConfig,
    annotation: string,
  ): Promise<SpiderIPPool> {
    if (config.ipNumber.flexible) {
      throw new PoolSelectionError(
        annotation,
        `${top.kind}/${top.namespace}/${top.name} only supports fixed auto-created IPPool IP Number: the agent ` +
          `cannot count the replicas of a third-party controller (${top.apiVersion}); set ` +
          `${ANNOTATION.ippoolIPNumber} to a fixed number such as "5" in its pod template`,
      );
    }
    const result = await ensureAutoPool(this.#io(), {
      app: top,
      want,
      desired: config.ipNumber.n,
      ipNumber: config.ipNumber,
      reclaim: config.reclaim,
    });
    if (result.action !== "unchanged") {
      this.#o.log(
        `${top.kind} ${top.namespace}/${top.name}: auto-created ${KIND.ippool} ${result.pool.metadata.name} ` +
          `${result.action} (${result.from} → ${result.to} IPs from ${KIND.subnet} ${want.subnet})`,
      );
    }
    return result.pool;
  }

  #io(): AutoPoolIO {
    const { kube, pools, reservedIPs } = this.#o;
    const http = kube.http;
    return {
      // Always fresh: an agent makes a pool rarely, and has no cache of subnets.
      getSubnet: (name) =>
        kube.getObject<SpiderSubnet>(`/apis/spiderpool.spidernet.io/v2beta1/spidersubnets/${enc(name)}`),
      getPool: (name) => kube.getObject<SpiderIPPool>(`${POOLS}/${enc(name)}`),
      pools: () => pools.list(),
      reserved: (family: Family): IPRangeSet => reservedAddresses(reservedIPs.list(), family),
      patchSubnetStatus: async (name, resourceVersion, status) =>
        (await http.patch(
          `/apis/spiderpool.spidernet.io/v2beta1/spidersubnets/${enc(name)}/status`,
          { metadata: { resourceVersion }, status },
          "merge",
        )).body,
      createPool: async (pool) => (await http.post<SpiderIPPool>(POOLS, pool)).body,
      patchPool: async (name, patch) =>
        (await http.patch<SpiderIPPool>(`${POOLS}/${enc(name)}`, patch, "merge")).body,
      withSubnet: (name, fn) => this.#subnets.run(name, fn),
      conflict: (err) => err instanceof ConflictError,
      staleAdmission: (err) =>
        err instanceof KubeHttpError && !(err instanceof NotFoundError) && err.status === 422 &&
        /pre-allocated/.test(err.message),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    };
  }
}
