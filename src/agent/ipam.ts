// The agent's IPAM service: ADD, DEL, batch DEL, GC, STATUS and workload-endpoint queries, orchestrated from
// the decisions of src/ipam (pure rules) and carried out through the caches, the per-pool group committer
// and direct API calls. No allocation rule lives here.
//
// Write order and crashes: ADD writes the pool records first, then the SpiderEndpoint; if the endpoint write
// fails the records just written are released again, except those the endpoint as read back lists (a write
// can land although it looked failed), and an ADD answered from an endpoint first checks that the pools
// still record its addresses for the pod. A crash between the two leaves pool records whose pod
// UID has no endpoint; the IP GC reclaims them. Release goes the other way (endpoint decided first, then the
// records), so an endpoint never lists an address that another pod may have been given.

import { type AnnotationRoute, parseRoutesAnnotation } from "../api/annotations.ts";
import { ANNOTATION, KIND } from "../api/constants.ts";
import type { SpiderEndpoint, SpiderIPPool, SpiderReservedIP } from "../api/types.ts";
import { type Family, IPRangeSet } from "../ip/mod.ts";
import { ConflictError, KubeHttpError } from "../kube/client.ts";
import {
  adoptEndpoint,
  type AllocationRequest,
  buildEndpoint,
  byPool,
  type Candidates,
  CandidatesExhaustedError,
  decideRelease,
  decideRetrieval,
  detailFor,
  detailPoolIPs,
  type DetectionFlags,
  detectionFlagsFor,
  type DroppedPool,
  dropReason,
  endpointDetailsFor,
  endpointNameFor,
  endpointPoolIPs,
  type FilterContext,
  ipamStatus,
  isPodAlive,
  isStatefulSetPod,
  KUBEVIRT_VMI,
  type KubevirtInfo,
  migrationJobOf,
  multusNetworkFor,
  type NICAllocation,
  type NICCandidate,
  nicsToAllocate,
  NoPoolAvailableError,
  notListedBy,
  ownerToResolve,
  podKey,
  poolCandidates,
  PoolClaims,
  PoolExhaustedError,
  type PoolIP,
  PoolSelectionError,
  requireUsablePools,
  responseFromDetails,
  responseFromEndpoint,
  sortPools,
  StalePoolViewError,
  type StatefulSetInfo,
  type TopController,
  topController,
  unmatchedRoutes,
} from "../ipam/mod.ts";
import { AutoPoolResolver, type AutoPoolWait, autoPoolWaitFromEnv } from "./autopool.ts";
import {
  type Backoff,
  PoolCommitter,
  PoolNotFoundError,
  RetriesExhaustedError,
} from "../kube/pool_commit.ts";
import { PoolBases } from "./pool_io.ts";
import type { AgentConfig } from "./config.ts";
import { coordinatorConfigFor, pickCoordinator } from "./coordinator.ts";
import type { AgentCaches } from "./daemon.ts";
import { type AgentKube, type KubeObject, type OwnerRef, type Pod, POOLS } from "./kube.ts";
import type { AgentMetrics, AllocationFailure } from "./metrics.ts";
import type {
  CoordinatorConfig,
  GetCoordinatorArgs,
  IpamAddArgs,
  IpamAddResponse,
  IpamBatchDelArgs,
  IpamDelArgs,
  IpamGcArgs,
  IpamStatusArgs,
  ReleaseOutcome,
  WorkloadEndpointStatus,
} from "../agentapi/models.ts";
import { planPoolBatch, type PoolOp, type PoolOpResult } from "../ipam/pool_ops.ts";
import { EnsureError } from "../ipam/release.ts";
import { reservedAddresses, UnreadableReservedIPError } from "../ipam/reserved.ts";
import { lookupMaster } from "./master_nic.ts";
import {
  gcCandidate,
  type GcScope,
  NIC_NETWORKS_ANNOTATION,
  nicNetworks,
  recordAttachment,
  sandboxMayRun,
} from "../ipam/cni_gc.ts";
import { KeyedLock } from "./lock.ts";
import { ApiStatusError, type IpamService } from "./server.ts";

export { CONTAINER_ID_ANNOTATION, NIC_NETWORKS_ANNOTATION } from "../ipam/cni_gc.ts";

export interface IpamAgentOptions {
  nodeName: string;
  namespace: string;
  config: AgentConfig;
  kube: AgentKube;
  caches: AgentCaches;
  metrics: AgentMetrics;
  requestTimeoutMs: number;
  /** `MULTUS_CLUSTER_NETWORK` (`<ns>/<name>`), the default network of the first NIC. */
  clusterNetwork?: string;
  /** `SPIDERPOOL_ENABLED_RELEASE_CONFLICT_IPS` (default true). */
  releaseConflictIPs?: boolean;
  /** How long an ADD waits for its application's auto-pool; default from `SPIDERPOOL_WAIT_SUBNET_POOL_*`. */
  autoPoolWait?: AutoPoolWait;
  log: (message: string) => void;
}

/** One (NIC, family) of an ADD and the pools it may try, in order. */
interface Slot {
  nic: string;
  index: number;
  family: Family;
  cleanGateway: boolean;
  /** What the pools were filtered with; a pool whose spec changed meanwhile is filtered again. */
  filter: FilterContext;
  pools: SpiderIPPool[];
  next: number;
  errors: PoolExhaustedError[];
  /** Pools refused after their spec changed during this ADD. */
  dropped: DroppedPool[];
  got?: NICAllocation;
}

/** Times one request is decided again after the pool cache caught up, before the ADD gives up. */
const MAX_STALE_RETRIES = 5;
/** Longest wait for the pool cache to catch up with one read, before deciding again anyway. */
const CACHE_CATCH_UP_MS = 5_000;

/**
 * The agent's retries of a pool status write that lost to another writer (409). Agents on many nodes share
 * pools: rather than fail a CNI call after a dozen quick retries (which the runtime then retries as a whole,
 * seconds later, at the cost of a new plugin process and every read again), a batch keeps trying for about
 * half of its 60 s deadline, with delays that grow to 0.5-1 s; requests arriving meanwhile join it.
 */
const AGENT_BACKOFF: Backoff = { steps: 40, initialMs: 10, factor: 1.5, jitter: 1, maxDelayMs: 500 };

/**
 * An ADD took an endpoint's absence from the cache, and creating it found one (409 AlreadyExists): the cache
 * lagged. What the attempt recorded is given back and the ADD decides again on the endpoint as stored.
 */
class EndpointCacheMissError extends Error {
  constructor(readonly namespace: string, readonly endpoint: string) {
    super(`SpiderEndpoint ${namespace}/${endpoint} exists although the agent's cache did not list it`);
    this.name = "EndpointCacheMissError";
  }
}

/**
 * The agent's pool cache stayed behind the API server for one pool through every retry: its watch is stalled
 * or the pool keeps changing. Nothing was allocated from that pool.
 */
export class PoolCacheLagError extends Error {
  constructor(readonly pool: string, cause: StalePoolViewError) {
    super(`${cause.message}; the cache did not catch up in time, so nothing was allocated from it; retry`);
    this.name = "PoolCacheLagError";
  }
}

export class IpamAgent implements IpamService {
  readonly #o: IpamAgentOptions;
  readonly #committer: PoolCommitter<PoolOp, PoolOpResult>;
  /** ReplicaSet/Job uid → its ownerReferences (ownership of a ReplicaSet or Job never changes). */
  readonly #owners = new Map<string, OwnerRef[]>();
  /** One operation at a time per pod (namespace/name): see lock.ts. */
  readonly #podLock = new KeyedLock();
  #reserved?: Map<Family, IPRangeSet | UnreadableReservedIPError>;
  /** What each cached pool claims, remembered per pool generation (src/ipam/overlap.ts). */
  readonly #claims = new PoolClaims();
  /** Pool name → wake-ups of requests waiting for the pool cache to catch up with that pool. */
  readonly #poolWaiters = new Map<string, Set<() => void>>();
  /** Finds or makes the auto-pools of pods with SpiderSubnet annotations. */
  readonly #autoPools: AutoPoolResolver;
  /** The committer's pool reads and writes: the base of a write is the last write's result when still current. */
  readonly poolBases: PoolBases;

  constructor(opts: IpamAgentOptions) {
    this.#o = opts;
    const { metrics, kube, caches } = opts;
    this.#autoPools = new AutoPoolResolver({
      kube,
      pools: caches.pools,
      reservedIPs: caches.reservedIPs,
      config: opts.config,
      wait: opts.autoPoolWait ?? autoPoolWaitFromEnv((k) => Deno.env.get(k)),
      registry: metrics.registry,
      debugMetrics: Deno.env.get("SPIDERPOOL_ENABLED_DEBUG_METRIC")?.toLowerCase() === "true",
      log: opts.log,
    });
    caches.reservedIPs.onChange(() => this.#reserved = undefined);
    this.poolBases = new PoolBases({
      getPool: (p) => kube.getPool(p),
      writePoolStatus: (p) => kube.writePoolStatus(p),
      cached: (p) => caches.pools.get(p),
    });
    caches.pools.onChange((pool, deleted) => this.poolBases.observe(pool, deleted));
    // The cache shows an endpoint this agent wrote: from now on its absence there means it is gone.
    caches.endpoints.onChange((ep) =>
      kube.endpointsWritten.delete(`${ep.metadata.namespace}/${ep.metadata.name}`)
    );
    caches.pools.onChange((pool) => {
      const waiting = this.#poolWaiters.get(pool.metadata.name);
      if (waiting) { for (const wake of waiting) wake(); }
    });
    this.#committer = new PoolCommitter<PoolOp, PoolOpResult>(
      this.poolBases,
      (pool, ops) =>
        planPoolBatch(pool, ops, {
          reservedFor: (f) => this.#reservedSet(f),
          cachedPools: () => caches.pools.list(),
          claims: this.#claims,
        }),
      {
        backoff: AGENT_BACKOFF,
        hooks: {
          admitted: (op, ms) =>
            (op.kind === "release" ? metrics.releaseLimitDuration : metrics.allocationLimitDuration).observe(
              ms / 1000,
            ),
          conflict: (ops) => {
            if (ops.some((o) => o.kind !== "release")) metrics.allocationConflicts.inc();
            if (ops.some((o) => o.kind === "release")) metrics.releaseConflicts.inc();
          },
        },
      },
    );
  }

  /** Largest batch a pool's committer has taken (for tests and benchmarks). */
  get maxBatch(): number {
    return this.#committer.maxBatch;
  }

  healthy(): void {}

  // -------------------------------------------------------------------------------------------------------
  // ADD

  async allocate(args: IpamAddArgs): Promise<IpamAddResponse> {
    const { metrics } = this.#o;
    const started = performance.now();
    metrics.allocations.inc();
    try {
      const deadline = Date.now() + this.#o.requestTimeoutMs;
      const res = await this.#podLock.run(
        podKey(args.podNamespace, args.podName),
        () => this.#allocate(args, deadline),
      );
      metrics.allocationDuration.observe((performance.now() - started) / 1000);
      return res;
    } catch (err) {
      metrics.allocationFailed(allocationFailure(err));
      this.#o.log(
        `ADD ${args.podNamespace}/${args.podName} ${args.ifName} failed: ${(err as Error).message}`,
      );
      throw err;
    }
  }

  async #allocate(args: IpamAddArgs, deadline: number): Promise<IpamAddResponse> {
    try {
      return await this.#allocateOnce(args, deadline, true);
    } catch (err) {
      if (!(err instanceof EndpointCacheMissError)) throw err;
      return await this.#allocateOnce(args, deadline, false);
    }
  }

  /**
   * The endpoint an ADD decides on. For a new pod it is absent, and reading that from the API server is a 404
   * on every ADD: when `trustAbsence` and neither the endpoint cache lists it nor this agent wrote it lately,
   * it is taken as absent without a request. Creating it is then the proof: a 409 AlreadyExists sends the ADD
   * back to decide on the stored endpoint (EndpointCacheMissError). A listed endpoint is always read afresh.
   */
  async #endpointForAdd(
    ns: string,
    name: string,
    trustAbsence: boolean,
  ): Promise<{ endpoint: SpiderEndpoint | undefined; assumedAbsent: boolean }> {
    const { caches, kube } = this.#o;
    if (trustAbsence && !caches.endpoints.get(name, ns) && !kube.endpointsWritten.has(`${ns}/${name}`)) {
      return { endpoint: undefined, assumedAbsent: true };
    }
    return { endpoint: await kube.getEndpoint(ns, name), assumedAbsent: false };
  }

  async #allocateOnce(args: IpamAddArgs, deadline: number, trustAbsence: boolean): Promise<IpamAddResponse> {
    const { config, kube, nodeName } = this.#o;
    const { pod, cached } = await this.#podForAdd(args);
    const who = `pod ${args.podNamespace}/${args.podName}`;
    if (!isPodAlive(pod)) {
      throw new Error(`${who} is terminating or has finished; no IP is allocated to it`);
    }
    const top = await this.#topController(pod);
    const epName = endpointNameFor(pod, top, config);
    const ns = pod.metadata.namespace;
    const candidates = () => this.#candidates(pod, args, top);
    const { endpoint, assumedAbsent } = await this.#endpointForAdd(ns, epName, trustAbsence);
    const decision = decideRetrieval({
      endpoint,
      pod: { namespace: ns, uid: pod.metadata.uid },
      endpointName: epName,
      ifName: args.ifName,
      top,
      flags: config,
      candidates: endpoint && isStatefulSetPod(top, config) ? candidates() : undefined,
    });
    const detection = await this.#detectionFlags(pod, top);
    switch (decision.kind) {
      case "reuse": {
        // The endpoint may list an address its pool no longer records for this pod (an endpoint write that
        // landed although it looked failed and was rolled back, a hand edit): never answer with it unchecked.
        try {
          await this.#poolOps(
            endpointPoolIPs(endpoint!),
            (ips) => ({ kind: "ensure", ips, pod: podKey(ns, epName), podUid: pod.metadata.uid }),
            deadline,
          );
        } catch (err) {
          if (!(err instanceof PoolNotFoundError)) throw err;
          throw new EnsureError(
            `${KIND.endpoint} ${ns}/${epName} lists addresses of ${KIND.ippool} "${err.pool}", which does not ` +
              `exist; delete ${KIND.endpoint} ${ns}/${epName} and recreate the pod so it gets a new address`,
          );
        }
        const { response, endpoint: renamed } = responseFromEndpoint(endpoint!, args.ifName, detection);
        const updated = withAttachment(renamed ?? endpoint!, args);
        if (updated !== endpoint) await kube.updateEndpoint(updated);
        return response;
      }
      case "restamp": {
        // A stale cache must not hand a member's fixed IPs to the UID of a deleted pod.
        if (cached) await this.#requireLivePod(pod);
        await this.#poolOps(
          decision.ips,
          (ips) => ({ kind: "restamp", ips, pod: decision.pod, podUid: decision.uid }),
          deadline,
        );
        const moved = adoptEndpoint(endpoint!, { uid: pod.metadata.uid, node: nodeName });
        const { response, endpoint: renamed } = responseFromEndpoint(moved, args.ifName, detection);
        await kube.updateEndpoint(withAttachment(renamed ?? moved, args));
        return response;
      }
      case "replace-stale": {
        // Even a pod just read from the API server: a late ADD of a deleted pod must not throw away the
        // endpoint (and free the addresses) of the live pod of the same name (upstream #1187).
        await this.#requireLivePod(pod);
        await this.#dropEndpoint(endpoint!);
        await this.#poolOps(
          decision.release,
          (ips) => ({ kind: "release", ips, podUid: decision.staleUid }),
          deadline,
          "skip-missing",
        );
        return await this.#fresh(args, pod, top, epName, candidates(), undefined, deadline, detection);
      }
      case "pool-changed": {
        if (cached) await this.#requireLivePod(pod);
        // The endpoint stops listing the moved NICs before their addresses go back to the pools.
        let existing: SpiderEndpoint | undefined;
        if (decision.deleteEndpoint) {
          await this.#dropEndpoint(endpoint!);
        } else {
          const current = { uid: pod.metadata.uid, node: nodeName, ips: decision.keep };
          existing = await kube.updateEndpoint({ ...endpoint!, status: { ...endpoint!.status, current } });
        }
        await this.#poolOps(
          decision.release,
          (ips) => ({ kind: "release", ips, podUid: decision.releaseUid }),
          deadline,
          "skip-missing",
        );
        await this.#poolOps(
          decision.restamp,
          (ips) => ({ kind: "restamp", ips, pod: decision.pod, podUid: pod.metadata.uid }),
          deadline,
        );
        return await this.#fresh(args, pod, top, epName, candidates(), existing, deadline, detection);
      }
      case "fresh":
        // A stale cache must not give an address to the UID of a deleted pod: its late sandbox would keep it
        // after the live pod of the same name replaced the endpoint and freed the record.
        if (cached) await this.#requireLivePod(pod);
        return await this.#fresh(
          args,
          pod,
          top,
          epName,
          candidates(),
          decision.existing,
          deadline,
          detection,
          assumedAbsent,
        );
    }
  }

  /**
   * The detection flags of this pod's answer: the ConfigMap's, without the conflict check when the pod is the
   * target of a KubeVirt live migration that exists (a migration name whose object is gone checks as usual).
   */
  async #detectionFlags(pod: Pod, top: TopController): Promise<DetectionFlags> {
    const { config, kube, log } = this.#o;
    const job = migrationJobOf(pod, top, config);
    if (job === undefined) return detectionFlagsFor(config, false);
    const ns = pod.metadata.namespace;
    const vmim = await kube.getObject(
      `/apis/${KUBEVIRT_VMI.apiVersion}/namespaces/${ns}/virtualmachineinstancemigrations/${job}`,
    );
    const who = `pod ${ns}/${pod.metadata.name}`;
    if (!vmim) {
      log(
        `${who} names VirtualMachineInstanceMigration ${job}, which does not exist: IP conflict detection stays on`,
      );
      return detectionFlagsFor(config, false);
    }
    log(
      `${who} is the target of live migration ${job}: no IP conflict detection (the source pod still holds the IPs)`,
    );
    return detectionFlagsFor(config, true);
  }

  /** Standard allocation: every NIC and family of the candidates that the endpoint does not record yet. */
  async #fresh(
    args: IpamAddArgs,
    pod: Pod,
    top: TopController,
    epName: string,
    candidates: Candidates,
    existing: SpiderEndpoint | undefined,
    deadline: number,
    detection: DetectionFlags,
    assumedAbsent = false,
  ): Promise<IpamAddResponse> {
    const { config, kube, nodeName, log } = this.#o;
    // Read before anything is written: a malformed routes annotation refuses the ADD without a pool write.
    const customRoutes = this.#customRoutes(pod);
    // SpiderSubnet annotations: the application's auto-pools (src/agent/autopool.ts) are the candidates.
    const pools = candidates.kind === "subnet"
      ? await this.#autoPools.candidates(pod, top, candidates, args.cleanGateway ?? false, deadline)
      : candidates;
    const ns = pod.metadata.namespace;
    const nics = nicsToAllocate(pools, existing, args.ifName);
    const slots = await this.#slots(pod, top, nics, args);
    if (slots.length === 0) {
      throw new Error(`no IPPool available for pod ${ns}/${pod.metadata.name} on ${args.ifName}`);
    }
    const request = { pod: podKey(ns, epName), podUid: pod.metadata.uid };
    const got: NICAllocation[] = [];
    /** Addresses this ADD added to pools (not those the pod already held): what a failure gives back. */
    const taken: PoolIP[] = [];
    try {
      const held = detailPoolIPs(existing?.status.current.ips ?? []);
      await this.#fillSlots(slots, request, held, got, taken, deadline);
      const dropped = unmatchedRoutes(customRoutes, got.map((g) => g.pool));
      if (dropped.length > 0) {
        log(
          `pod ${ns}/${pod.metadata.name}: ${ANNOTATION.routes} entries ${
            JSON.stringify(dropped)
          } match no ` +
            "allocated subnet; dropped",
        );
      }
      const details = endpointDetailsFor(got, customRoutes);
      const ep = buildEndpoint({
        namespace: ns,
        name: epName,
        pod: { name: pod.metadata.name, uid: pod.metadata.uid },
        node: nodeName,
        top,
        details,
        flags: config,
        existing,
      });
      // Pool records are written; now the endpoint. If this fails, the records are given back below.
      try {
        const written = withAttachment(ep, args);
        if (existing) await kube.updateEndpoint(written);
        else await kube.createEndpoint(written);
      } catch (err) {
        if (assumedAbsent && err instanceof ConflictError && err.reason === "AlreadyExists") {
          // Refused, so nothing of this attempt is stored: the records it took go back (below).
          throw new EndpointCacheMissError(ns, epName);
        }
        const stored = await this.#storedAfterFailedWrite(err, ns, epName, taken, request.podUid);
        // A concurrent ADD of the same pod, or this very write, recorded the NIC: answer what is stored.
        if (stored?.status.current.uid !== pod.metadata.uid || !detailFor(stored, args.ifName)) throw err;
        await this.#rollback(taken.splice(0), request.podUid);
        return responseFromEndpoint(stored, args.ifName, detection).response;
      }
      return responseFromDetails(details, detection);
    } catch (err) {
      await this.#rollback(taken, request.podUid);
      throw err;
    }
  }

  /**
   * After an endpoint write failed: the endpoint as stored, with every address it lists for `podUid` removed
   * from `taken` (those must stay recorded, whatever the caller does next). A definite refusal (4xx other than
   * 408 and 409) wrote nothing: undefined. Any other error (500, reset, timeout, 409 on a write the client may
   * have sent twice) may have landed, so the endpoint is read back; when even that read fails nothing can be
   * given back safely, `taken` is emptied and the IP GC reclaims records that no endpoint lists.
   */
  async #storedAfterFailedWrite(
    err: unknown,
    ns: string,
    epName: string,
    taken: PoolIP[],
    podUid: string,
  ): Promise<SpiderEndpoint | undefined> {
    const definite = err instanceof KubeHttpError && err.status >= 400 && err.status < 500 &&
      err.status !== 408 && !(err instanceof ConflictError);
    if (definite) return undefined;
    let stored: SpiderEndpoint | undefined;
    try {
      stored = await this.#o.kube.getEndpoint(ns, epName);
    } catch (readErr) {
      this.#o.log(
        `SpiderEndpoint ${ns}/${epName}: the write failed (${(err as Error).message}) and reading it back ` +
          `failed too (${(readErr as Error).message}); keeping ${JSON.stringify(taken)} for the IP GC`,
      );
      taken.splice(0);
      throw err;
    }
    taken.splice(0, taken.length, ...notListedBy(taken, stored, podUid));
    return stored;
  }

  /**
   * One slot per NIC and family with candidate pools: the usable pools, filtered and sorted by src/ipam. With
   * `match_master_subnet` the NIC of this ADD is filtered by its master's subnet too (other NICs of a multi-NIC
   * pod are set up by later ADDs with their own network's config and are not in the pod yet).
   */
  async #slots(pod: Pod, top: TopController, nics: NICCandidate[], args: IpamAddArgs): Promise<Slot[]> {
    const { caches, nodeName } = this.#o;
    const ns = pod.metadata.namespace;
    const pools = new Map(caches.pools.list().map((p) => [p.metadata.name, p]));
    // A pool created a moment ago may not be in the cache yet: read the named ones that are missing. They are
    // only filtered with; the commit waits for the cache to hold them (see src/ipam/overlap.ts).
    const missing = [...new Set(nics.flatMap((c) => [...c.ipv4, ...c.ipv6]))].filter((n) => !pools.has(n));
    for (const name of missing) {
      const pool = await this.#o.kube.getObject<SpiderIPPool>(`${POOLS}/${encodeURIComponent(name)}`);
      if (pool) pools.set(name, pool);
    }
    const namespace = caches.namespaces.get(ns);
    const node = caches.nodes.get(nodeName);
    const master = args.matchMasterSubnet ? await lookupMaster(args.netNamespace, args.ifName) : undefined;
    const slots: Slot[] = [];
    for (const c of nics) {
      for (const family of [4, 6] as const) {
        const names = family === 4 ? c.ipv4 : c.ipv6;
        if (names.length === 0) continue;
        const nic = c.nic !== "" ? c.nic : `${c.index}`;
        const filter: FilterContext = {
          family,
          nic,
          pod: { namespace: ns, labels: pod.metadata.labels },
          namespace: { name: ns, labels: namespace?.metadata.labels },
          node: { name: nodeName, labels: node?.metadata.labels },
          multusNetwork: multusNetworkFor(nic, pod.metadata, this.#o.namespace, this.#o.clusterNetwork),
          agentNamespace: this.#o.namespace,
          top,
          masterAddresses: master !== undefined && c.nic === args.ifName ? master.addresses : undefined,
        };
        const usable = requireUsablePools(names, pools, filter);
        slots.push({
          nic: c.nic,
          index: c.index,
          family,
          cleanGateway: c.cleanGateway,
          filter,
          pools: sortPools(usable),
          next: 0,
          errors: [],
          dropped: [],
        });
      }
    }
    return slots;
  }

  /**
   * Gives every slot an address, in rounds: each slot still without one tries its next pool, and the slots
   * that are on the same pool in a round share one queued request (one status update). A pool that is
   * exhausted sends its slots on to their next pool. Addresses are pushed to `got` (and, when new, to
   * `taken`) as they arrive, so the caller can give them back whatever happens.
   */
  async #fillSlots(
    slots: Slot[],
    request: AllocationRequest,
    endpointHeld: PoolIP[],
    got: NICAllocation[],
    taken: PoolIP[],
    deadline: number,
  ): Promise<void> {
    const stale: Record<string, number> = {};
    while (true) {
      const open = slots.filter((s) => s.got === undefined);
      if (open.length === 0) return;
      const exhausted = open.find((s) => s.next >= s.pools.length);
      if (exhausted) {
        const nic = exhausted.nic || `NIC #${exhausted.index}`;
        if (exhausted.errors.length > 0) {
          throw new CandidatesExhaustedError(exhausted.family, nic, exhausted.errors);
        }
        if (exhausted.dropped.length > 0) {
          const names = exhausted.dropped.map((d) => d.pool);
          throw new NoPoolAvailableError(exhausted.family, exhausted.filter.nic, names, exhausted.dropped);
        }
        throw new Error(
          `every IPv${exhausted.family} SpiderIPPool of ${nic} was deleted while allocating; retry`,
        );
      }
      const groups = new Map<string, Slot[]>();
      for (const s of open) {
        const name = s.pools[s.next].metadata.name;
        groups.set(name, [...(groups.get(name) ?? []), s]);
        stale[name] ??= 0;
      }
      // allSettled, not all: every answer must be in `got` before a failure is thrown and rolled back.
      const results = await Promise.allSettled([...groups].map(async ([poolName, group]) => {
        const hold = [
          ...endpointHeld.filter((h) => h.pool === poolName).map((h) => h.ip),
          ...got.filter((g) => g.pool.metadata.name === poolName).map((g) => g.ip),
        ];
        const { uid = "", generation = 0 } = group[0].pools[group[0].next].metadata;
        try {
          const r = await this.#committer.submit(
            poolName,
            { kind: "allocate", requests: group.map(() => request), hold, spec: { uid, generation } },
            deadline,
          );
          if (r.kind !== "allocate") throw new Error(`internal error: allocate answered with ${r.kind}`);
          group.forEach((s, k) => {
            s.got = {
              nic: s.nic,
              index: s.index,
              ip: r.chosen[k].ip,
              pool: s.pools[s.next],
              cleanGateway: s.cleanGateway,
            };
            got.push(s.got);
            if (!r.chosen[k].reused) taken.push({ pool: poolName, ip: r.chosen[k].ip });
          });
        } catch (err) {
          if (err instanceof StalePoolViewError) {
            if (++stale[poolName] > MAX_STALE_RETRIES) throw new PoolCacheLagError(poolName, err);
            await this.#poolCaughtUp(err, deadline);
            this.#refilter(group, poolName);
            return;
          }
          if (!(err instanceof PoolExhaustedError || err instanceof PoolNotFoundError)) throw err;
          for (const s of group) {
            if (err instanceof PoolExhaustedError) s.errors.push(err);
            s.next++;
          }
        }
      }));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
    }
  }

  /**
   * After the cache caught up with a pool whose spec changed during this ADD: each slot on it keeps the pool in
   * its new form if the filter still accepts it, else moves on, remembering why.
   */
  #refilter(group: Slot[], poolName: string): void {
    const now = this.#o.caches.pools.get(poolName);
    for (const s of group) {
      const reason = dropReason(now, s.filter);
      if (reason === undefined) {
        s.pools[s.next] = now!;
      } else {
        s.dropped.push({ pool: poolName, reason });
        s.next++;
      }
    }
  }

  /**
   * Waits until the pool cache holds the pool `stale` names at its UID and at least its generation, at most
   * CACHE_CATCH_UP_MS (the caller then decides again, and counts how often).
   */
  async #poolCaughtUp(stale: StalePoolViewError, deadline: number): Promise<void> {
    const { pool, uid, generation } = stale;
    const caught = () => {
      const c = this.#o.caches.pools.get(pool);
      return c !== undefined && c.metadata.uid === uid && (c.metadata.generation ?? 0) >= generation;
    };
    const until = Math.min(deadline, Date.now() + CACHE_CATCH_UP_MS);
    let waiting = this.#poolWaiters.get(pool);
    if (waiting === undefined) this.#poolWaiters.set(pool, waiting = new Set());
    let wake = () => {};
    try {
      while (!caught() && Date.now() < until) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
          waiting.add(wake);
          timer = setTimeout(resolve, until - Date.now());
        });
        clearTimeout(timer);
        waiting.delete(wake);
      }
    } finally {
      waiting.delete(wake);
      if (waiting.size === 0) this.#poolWaiters.delete(pool);
    }
  }

  /**
   * Gives back what a failed ADD added to pools. Addresses the pod already held are kept: a concurrent ADD of
   * the same pod may be recording them. A failure here is logged; the IP GC reclaims records without endpoint.
   */
  async #rollback(ips: PoolIP[], podUid: string): Promise<void> {
    if (ips.length === 0) return;
    try {
      await this.#poolOps(
        ips,
        (list) => ({ kind: "release", ips: list, podUid }),
        Date.now() + 30_000,
        "skip-missing",
      );
    } catch (err) {
      this.#o.log(
        `could not give back ${JSON.stringify(ips)} of pod UID ${podUid}: ${(err as Error).message}`,
      );
    }
  }

  #candidates(pod: Pod, args: IpamAddArgs, top: TopController): Candidates {
    const { caches, config } = this.#o;
    const ns = pod.metadata.namespace;
    const namespace = caches.namespaces.get(ns);
    return poolCandidates({
      pod: {
        name: pod.metadata.name,
        namespace: ns,
        uid: pod.metadata.uid,
        labels: pod.metadata.labels,
        annotations: pod.metadata.annotations,
        nodeName: pod.spec?.nodeName,
      },
      namespace: {
        name: ns,
        labels: namespace?.metadata.labels,
        annotations: namespace?.metadata.annotations,
      },
      ifName: args.ifName,
      cniDefaults: {
        ipv4: args.defaultIPv4IPPool ?? [],
        ipv6: args.defaultIPv6IPPool ?? [],
        cleanGateway: args.cleanGateway ?? false,
      },
      pools: caches.pools.list(),
      flags: config,
      top,
    });
  }

  #customRoutes(pod: Pod): AnnotationRoute[] {
    const v = pod.metadata.annotations?.[ANNOTATION.routes];
    return v === undefined || v.trim() === "" ? [] : parseRoutesAnnotation(v);
  }

  /**
   * The pod from the cache, or from the API server when the cache has not seen it (or has an older UID).
   * `cached`: it came from the cache, which may lag behind a deletion.
   */
  async #podForAdd(
    args: { podNamespace: string; podName: string; podUID: string },
  ): Promise<{ pod: Pod; cached: boolean }> {
    const cached = this.#o.caches.pods.get(args.podName, args.podNamespace);
    if (cached && cached.metadata.uid === args.podUID) return { pod: cached, cached: true };
    const pod = await this.#o.kube.getPod(args.podNamespace, args.podName);
    if (!pod) throw new Error(`pod ${args.podNamespace}/${args.podName} not found`);
    if (args.podUID && pod.metadata.uid !== args.podUID) {
      throw new Error(
        `pod ${args.podNamespace}/${args.podName} has UID ${pod.metadata.uid}, but the runtime asked for UID ` +
          `${args.podUID} (a deleted pod of the same name); not allocating`,
      );
    }
    return { pod, cached: false };
  }

  /** Fails unless the API server has `pod` with its UID: the sandbox must not belong to a deleted pod. */
  async #requireLivePod(pod: Pod): Promise<void> {
    const { namespace, name, uid } = pod.metadata;
    const live = await this.#o.kube.getPod(namespace, name);
    if (live?.metadata.uid === uid) return;
    throw new Error(
      `pod ${namespace}/${name}: the sandbox belongs to pod UID ${uid}, a pod that no longer exists (the pod ` +
        `of that name ${live ? `now has UID ${live.metadata.uid}` : "is gone"}); not allocating`,
    );
  }

  async #topController(pod: Pod): Promise<TopController> {
    const owner = ownerToResolve(pod);
    if (!owner) return topController(pod);
    let owners = this.#owners.get(owner.uid);
    if (owners === undefined) {
      const [group, version] = owner.apiVersion.includes("/")
        ? owner.apiVersion.split("/")
        : ["", owner.apiVersion];
      const plural = owner.kind === "ReplicaSet" ? "replicasets" : "jobs";
      const base = group === "" ? `/api/${version}` : `/apis/${group}/${version}`;
      const obj = await this.#o.kube.getObject<KubeObject>(
        `${base}/namespaces/${pod.metadata.namespace}/${plural}/${owner.name}`,
      );
      owners = obj?.metadata.ownerReferences ?? [];
      if (obj) this.#owners.set(owner.uid, owners);
    }
    return topController(pod, owners);
  }

  /**
   * Runs one op per pool for `ips` (all pools in parallel) and waits for all of them. A deleted pool fails the
   * call, except with `skip-missing` (releases: a deleted pool holds nothing to give back).
   */
  async #poolOps(
    ips: readonly PoolIP[],
    op: (ips: string[]) => PoolOp,
    deadline: number,
    missing: "fail" | "skip-missing" = "fail",
  ): Promise<void> {
    const submit = async (pool: string, list: string[]) => {
      for (let attempt = 1;; attempt++) {
        try {
          return await this.#committer.submit(pool, op(list), deadline);
        } catch (err) {
          if (!(err instanceof StalePoolViewError)) throw err;
          if (attempt > MAX_STALE_RETRIES) throw new PoolCacheLagError(pool, err);
          await this.#poolCaughtUp(err, deadline);
        }
      }
    };
    const results = await Promise.allSettled([...byPool(ips)].map(([pool, list]) => submit(pool, list)));
    const failed = results.filter((r): r is PromiseRejectedResult =>
      r.status === "rejected" && !(missing === "skip-missing" && r.reason instanceof PoolNotFoundError)
    );
    if (failed.length > 0) throw failed[0].reason;
  }

  /** Deletes an endpoint and drops our finalizer so that it really goes away. */
  async #dropEndpoint(ep: SpiderEndpoint): Promise<void> {
    const { kube } = this.#o;
    await kube.deleteEndpoint(ep);
    const now = await kube.getEndpoint(ep.metadata.namespace ?? "", ep.metadata.name);
    if (now && now.metadata.uid === ep.metadata.uid) await kube.removeEndpointFinalizer(now);
  }

  /** Throws UnreadableReservedIPError when a SpiderReservedIP of `family` cannot be read (src/ipam/reserved.ts). */
  #reservedSet(family: Family): IPRangeSet {
    if (!this.#reserved) {
      const r = reservedAddresses(this.#o.caches.reservedIPs.list() as SpiderReservedIP[]);
      for (const s of r.skipped) this.#o.log(s);
      this.#reserved = r.byFamily;
    }
    const set = this.#reserved.get(family)!;
    if (set instanceof UnreadableReservedIPError) throw set;
    return set;
  }

  // -------------------------------------------------------------------------------------------------------
  // DEL

  async release(args: IpamDelArgs): Promise<ReleaseOutcome> {
    const { metrics } = this.#o;
    const started = performance.now();
    metrics.releases.inc();
    try {
      const deadline = Date.now() + this.#o.requestTimeoutMs;
      const outcome = await this.#podLock.run(
        podKey(args.podNamespace, args.podName),
        () => this.#release(args, deadline),
      );
      metrics.releaseDuration.observe((performance.now() - started) / 1000);
      return outcome;
    } catch (err) {
      metrics.releaseFailed(err instanceof RetriesExhaustedError ? "retries_exhausted" : "internal");
      this.#o.log(
        `DEL ${args.podNamespace}/${args.podName} ${args.ifName} failed: ${(err as Error).message}`,
      );
      throw err;
    }
  }

  async #release(args: IpamDelArgs, deadline: number): Promise<ReleaseOutcome> {
    const { kube, config } = this.#o;
    const pod = await kube.getPod(args.podNamespace, args.podName);
    const grace = pod?.metadata.deletionGracePeriodSeconds;
    if (grace !== undefined) {
      // The runtime gives up on a terminating pod after its grace period; finish (or fail) before that.
      deadline = Math.min(deadline, Date.now() + Math.max(5, grace - 5) * 1000);
    }
    let epName = args.podName;
    if (pod) epName = endpointNameFor(pod, await this.#topController(pod), config);
    const endpoint = await kube.getEndpoint(args.podNamespace, epName);
    const decision = decideRelease({
      pod,
      requestUid: args.podUID,
      ifName: args.ifName,
      endpoint,
      statefulSet: endpoint ? await this.#statefulSet(endpoint) : undefined,
      kubevirt: endpoint ? await this.#kubevirt(endpoint) : undefined,
      flags: config,
    });
    switch (decision.kind) {
      case "nothing":
        return { result: decision.kept ? "kept" : "none", detail: decision.reason };
      case "delete-endpoint":
        await this.#dropEndpoint(endpoint!);
        return { result: "none", detail: decision.reason };
      case "release":
        // A fixed-IP endpoint stops claiming its addresses before they go back to the pools, so an adoption
        // on another node in between cannot be deleted afterwards; records are released by UID either way.
        if (decision.deleteEndpoint) await this.#dropEndpoint(endpoint!);
        await this.#poolOps(
          decision.ips,
          (ips) => ({ kind: "release", ips, podUid: decision.uid }),
          deadline,
          "skip-missing",
        );
        if (!decision.deleteEndpoint) await this.#removeFinalizer(endpoint!);
        return { result: "released", detail: decision.ips.map((x) => x.ip).join(", ") };
    }
  }

  async #removeFinalizer(ep: SpiderEndpoint): Promise<void> {
    const { kube } = this.#o;
    try {
      await kube.removeEndpointFinalizer(ep);
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      const now = await kube.getEndpoint(ep.metadata.namespace ?? "", ep.metadata.name);
      if (now && now.metadata.uid === ep.metadata.uid) await kube.removeEndpointFinalizer(now);
    }
  }

  async #statefulSet(ep: SpiderEndpoint): Promise<StatefulSetInfo | undefined> {
    if (ep.status.ownerControllerType !== "StatefulSet") return undefined;
    const sts = await this.#o.kube.getObject<KubeObject>(
      `/apis/apps/v1/namespaces/${ep.metadata.namespace}/statefulsets/${ep.status.ownerControllerName}`,
    );
    if (!sts || sts.metadata.deletionTimestamp) return undefined;
    const spec = sts.spec as { replicas?: number; ordinals?: { start?: number } } | undefined;
    return { replicas: spec?.replicas ?? 1, ordinalsStart: spec?.ordinals?.start };
  }

  async #kubevirt(ep: SpiderEndpoint): Promise<KubevirtInfo | undefined> {
    if (ep.status.ownerControllerType !== KUBEVIRT_VMI.kind) return undefined;
    const ns = ep.metadata.namespace;
    const get = (plural: string, name: string) =>
      // Only NotFound means gone (getObject answers undefined); any other error fails the DEL, which the
      // runtime retries, rather than release a running VM's fixed IPs.
      this.#o.kube.getObject<KubeObject>(
        `/apis/${KUBEVIRT_VMI.apiVersion}/namespaces/${ns}/${plural}/${name}`,
      );
    const vmi = await get("virtualmachineinstances", ep.metadata.name);
    if (!vmi) return { vmiAlive: false, ownedByLiveVM: false };
    if (!vmi.metadata.deletionTimestamp) return { vmiAlive: true, ownedByLiveVM: false };
    const vmOwner = vmi.metadata.ownerReferences?.find((o) => o.kind === "VirtualMachine");
    const vm = vmOwner ? await get("virtualmachines", vmOwner.name) : undefined;
    return { vmiAlive: false, ownedByLiveVM: vm !== undefined && !vm.metadata.deletionTimestamp };
  }

  // -------------------------------------------------------------------------------------------------------
  // Batch DEL (release the IPs of a pod whose addresses conflicted)

  releaseBatch(args: IpamBatchDelArgs): Promise<void> {
    return this.#podLock.run(podKey(args.podNamespace, args.podName), () => this.#releaseBatch(args));
  }

  async #releaseBatch(args: IpamBatchDelArgs): Promise<void> {
    const { kube, config } = this.#o;
    const pod = await kube.getPod(args.podNamespace, args.podName);
    const uid = args.podUID || pod?.metadata.uid || "";
    const top = pod ? await this.#topController(pod) : undefined;
    if (args.isReleaseConflictIPs) {
      if (
        top &&
        (isStatefulSetPod(top, config) || (config.enableKubevirtStaticIP && top.kind === KUBEVIRT_VMI.kind))
      ) {
        throw new ApiStatusError(
          522,
          `forbid releasing IPs for stateful workload ${top.kind} ${top.namespace}/${top.name}: its fixed IPs ` +
            `would be lost`,
        );
      }
      if (this.#o.releaseConflictIPs === false) {
        throw new ApiStatusError(
          521,
          "forbid releasing IPs for stateless workload: SPIDERPOOL_ENABLED_RELEASE_CONFLICT_IPS is false",
        );
      }
    }
    const epName = pod && top ? endpointNameFor(pod, top, config) : args.podName;
    const ep = await kube.getEndpoint(args.podNamespace, epName);
    if (!ep || uid === "" || ep.status.current.uid !== uid) return;
    const ips = endpointPoolIPs(ep);
    if (ips.length === 0) return;
    // The endpoint stops claiming the addresses before the pools give them away.
    await kube.updateEndpoint({
      ...ep,
      status: { ...ep.status, current: { ...ep.status.current, ips: [] } },
    });
    await this.#poolOps(
      ips,
      (list) => ({ kind: "release", ips: list, podUid: uid }),
      Date.now() + this.#o.requestTimeoutMs,
      "skip-missing",
    );
  }

  // -------------------------------------------------------------------------------------------------------
  // GC (CNI 1.1): release the attachments of one network whose sandboxes the runtime no longer has

  async gc(args: IpamGcArgs): Promise<void> {
    const { caches, nodeName, log } = this.#o;
    const scope: GcScope = { network: args.networkName, valid: args.validAttachments, node: nodeName };
    const errors: string[] = [];
    const released: string[] = [];
    for (const cached of caches.endpoints.list()) {
      // Endpoints the cache shows without a stale attachment of this network are left alone; the others
      // are decided again on what the API server has now.
      if (!gcCandidate(cached, scope)) continue;
      const name = `${cached.metadata.namespace}/${cached.metadata.name}`;
      try {
        const nics = await this.#gcEndpoint(cached, scope);
        if (nics.length > 0) released.push(`${name} (${nics.join(", ")})`);
      } catch (err) {
        errors.push(`${name}: ${(err as Error).message}`);
      }
    }
    if (released.length > 0) log(`gc of network ${args.networkName}: released ${released.join("; ")}`);
    if (errors.length > 0) {
      log(`gc of network ${args.networkName}: ${errors.join("; ")}`);
      throw new Error(`gc could not release every stale SpiderEndpoint: ${errors.join("; ")}`);
    }
  }

  /**
   * Releases the NICs of one endpoint that a GC for `scope.network` may release, unless its sandbox may still
   * be running; returns the NICs released. The endpoint and the pod are read from the API server, under the
   * pod's lock, so a concurrent ADD or DEL of the same pod is not raced.
   */
  async #gcEndpoint(cached: SpiderEndpoint, scope: GcScope): Promise<string[]> {
    const ns = cached.metadata.namespace ?? "";
    const podName = this.#podNameOf(cached);
    return await this.#podLock.run(podKey(ns, podName), async () => {
      const { kube } = this.#o;
      const ep = await kube.getEndpoint(ns, cached.metadata.name);
      const candidate = ep && gcCandidate(ep, scope);
      if (!ep || !candidate) return [];
      const uid = ep.status.current.uid;
      const pod = await kube.getPod(ns, podName);
      if (sandboxMayRun(pod, uid, Date.now())) return [];
      const deadline = Date.now() + this.#o.requestTimeoutMs;
      const args: IpamDelArgs = {
        containerID: candidate.containerID,
        ifName: candidate.nics[0],
        podNamespace: ns,
        podName,
        podUID: uid,
      };
      if (candidate.whole) {
        const outcome = await this.#release(args, deadline);
        return outcome.result === "released" ? candidate.nics : [];
      }
      return await this.#releaseNICs(ep, pod, candidate.nics, args, deadline);
    });
  }

  /**
   * The name of the pod whose sandbox an endpoint records: the cached pod of the endpoint's pod UID (a KubeVirt
   * endpoint is named after its VM, not the pod), else the endpoint's own name.
   */
  #podNameOf(ep: SpiderEndpoint): string {
    const ns = ep.metadata.namespace ?? "";
    const uid = ep.status.current.uid;
    const pod = this.#o.caches.pods.list().find((p) => p.metadata.namespace === ns && p.metadata.uid === uid);
    return pod?.metadata.name ?? ep.metadata.name;
  }

  /**
   * Releases some NICs of an endpoint whose other NICs were attached through other networks (a GC only
   * speaks for its own): the endpoint stops listing them first, then their records go back to the pools.
   * Whatever keeps a DEL from releasing (a StatefulSet that wants the member, a running VM) keeps them too.
   */
  async #releaseNICs(
    ep: SpiderEndpoint,
    pod: Pod | undefined,
    nics: string[],
    args: IpamDelArgs,
    deadline: number,
  ): Promise<string[]> {
    const { kube, config } = this.#o;
    const decision = decideRelease({
      pod,
      requestUid: args.podUID,
      ifName: args.ifName,
      endpoint: ep,
      statefulSet: await this.#statefulSet(ep),
      kubevirt: await this.#kubevirt(ep),
      flags: config,
    });
    if (decision.kind !== "release") return [];
    const details = ep.status.current.ips ?? [];
    const networks = nicNetworks(ep.metadata.annotations);
    for (const nic of nics) delete networks[nic];
    await kube.updateEndpoint({
      ...ep,
      metadata: {
        ...ep.metadata,
        annotations: { ...ep.metadata.annotations, [NIC_NETWORKS_ANNOTATION]: JSON.stringify(networks) },
      },
      status: {
        ...ep.status,
        current: { ...ep.status.current, ips: details.filter((d) => !nics.includes(d.interface)) },
      },
    });
    await this.#poolOps(
      detailPoolIPs(details.filter((d) => nics.includes(d.interface))),
      (ips) => ({ kind: "release", ips, podUid: decision.uid }),
      deadline,
      "skip-missing",
    );
    return nics;
  }

  // -------------------------------------------------------------------------------------------------------
  // Queries

  /** CNI 1.1 STATUS: whether a pod without pool annotations could get an address, from the caches. */
  status(args: IpamStatusArgs): void {
    const { caches, config, nodeName } = this.#o;
    const verdict = ipamStatus({
      cniDefaults: { ipv4: args.defaultIPv4IPPool ?? [], ipv6: args.defaultIPv6IPPool ?? [] },
      pools: caches.pools.list(),
      // An unreadable SpiderReservedIP of an enabled family fails STATUS as it fails ADD, naming it.
      reserved: {
        4: config.enableIPv4 ? this.#reservedSet(4) : IPRangeSet.empty(4),
        6: config.enableIPv6 ? this.#reservedSet(6) : IPRangeSet.empty(6),
      },
      flags: config,
      node: { name: nodeName, labels: caches.nodes.get(nodeName)?.metadata.labels },
    });
    if (!verdict.available) throw new Error(verdict.message);
  }

  async coordinatorConfig(args: GetCoordinatorArgs): Promise<CoordinatorConfig> {
    const ns = args.podNamespace ?? "";
    const name = args.podName ?? "";
    const pod = this.#o.caches.pods.get(name, ns) ??
      (ns && name ? await this.#o.kube.getPod(ns, name) : undefined);
    const coords = this.#o.caches.coordinators.list();
    const coord = pickCoordinator(coords);
    if (!pod) throw new Error(`failed to get coordinator config: pod ${ns}/${name} not found`);
    return coordinatorConfigFor(coord, pod.metadata.annotations, coords);
  }

  async workloadEndpoint(podNamespace: string, podName: string): Promise<WorkloadEndpointStatus | undefined> {
    const ep = await this.#o.kube.getEndpoint(podNamespace, podName);
    return ep && workloadEndpointStatus(ep);
  }
}

/**
 * The endpoint as an ADD writes it: with the sandbox's container ID and the network of each NIC recorded in
 * annotations, so that `POST /v1/ipam/gc` can tell which attachments a GC for one network may release.
 */
function withAttachment(ep: SpiderEndpoint, args: IpamAddArgs): SpiderEndpoint {
  const annotations = recordAttachment(ep.metadata.annotations, {
    containerID: args.containerID,
    ifName: args.ifName,
    networkName: args.networkName,
    nics: (ep.status.current.ips ?? []).map((d) => d.interface),
  });
  if (annotations === ep.metadata.annotations) return ep;
  return { ...ep, metadata: { ...ep.metadata, annotations } };
}

function allocationFailure(err: unknown): AllocationFailure {
  if (err instanceof RetriesExhaustedError) return "retries_exhausted";
  if (err instanceof NoPoolAvailableError || err instanceof PoolSelectionError) return "no_available_pool";
  if (err instanceof CandidatesExhaustedError) return "ip_used_out";
  return "internal";
}

/** SpiderEndpoint → the socket API's WorkloadEndpointStatus (`mac` only if set, `vlan` only if ≠ 0). */
export function workloadEndpointStatus(ep: SpiderEndpoint): WorkloadEndpointStatus {
  const cur = ep.status.current;
  return {
    podNamespace: ep.metadata.namespace ?? "",
    podName: ep.metadata.name,
    podUID: cur.uid,
    node: cur.node,
    interfaces: (cur.ips ?? []).map((d) => ({
      interface: d.interface,
      ...(d.ipv4 ? { ipv4: d.ipv4 } : {}),
      ...(d.ipv6 ? { ipv6: d.ipv6 } : {}),
      ...(d.mac ? { mac: d.mac } : {}),
      ...(d.vlan ? { vlan: d.vlan } : {}),
      ...(d.ipv4Pool ? { ipv4Pool: d.ipv4Pool } : {}),
      ...(d.ipv6Pool ? { ipv6Pool: d.ipv6Pool } : {}),
      ...(d.ipv4Gateway ? { ipv4Gateway: d.ipv4Gateway } : {}),
      ...(d.ipv6Gateway ? { ipv6Gateway: d.ipv6Gateway } : {}),
      ...(d.routes?.length
        ? { routes: d.routes.map((r) => ({ ifName: d.interface, dst: r.dst, gw: r.gw })) }
        : {}),
    })),
  };
}
