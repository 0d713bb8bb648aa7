// IPAM allocation rules as pure functions over plain data: which pools a pod may use, in which order, which
// address it gets, what it is told (address, gateway, routes), what its SpiderEndpoint records, and what ADD
// and DEL do with an existing endpoint. No I/O, no clock, no randomness: the agent reads and writes objects.
//
// ADD: isPodAlive → topController → endpointNameFor → poolCandidates → decideRetrieval; for a fresh
// allocation nicsToAllocate → per NIC and family requireUsablePools + sortPools → per pool cacheView (other
// pools' claims, overlap.ts) and chooseIPs (first pool that answers wins; PoolExhaustedError moves on) →
// endpointDetailsFor → buildEndpoint → responseFromDetails. DEL: decideRelease → releaseIPs per pool. STATUS (CNI 1.1): ipamStatus over the
// pod-independent candidates.

export {
  controllerOf,
  endpointNameFor,
  hasStaticIP,
  isKubevirtPod,
  isPodAlive,
  isStatefulSetPod,
  KUBEVIRT_VMI,
  NATIVE_CONTROLLER_KINDS,
  ownerToResolve,
  podKey,
  type PodLike,
  type TopController,
  topController,
  type WorkloadFlags,
} from "./workload.ts";
export {
  type CandidateFlags,
  type CandidateInput,
  type Candidates,
  type CandidateSource,
  type CNIDefaults,
  defaultPoolNames,
  expandPoolNames,
  type NICCandidate,
  type PoolCandidates,
  poolCandidates,
  PoolSelectionError,
  type SubnetCandidates,
} from "./candidates.ts";
export {
  type DroppedPool,
  dropReason,
  type FilterContext,
  filterPools,
  type FilterResult,
  isAutoPool,
  multusNetworkFor,
  type NetworkRef,
  NoPoolAvailableError,
  requireUsablePools,
  sortPools,
  unusableReason,
} from "./filter.ts";
export {
  type AllocationRequest,
  CandidatesExhaustedError,
  chooseIP,
  chooseIPs,
  type ChooseOptions,
  type ChooseOutcome,
  type Chosen,
  PoolExhaustedError,
  poolStatusWith,
} from "./choose.ts";
export {
  admittedPool,
  InvalidPoolError,
  invalidSpecReason,
  type PoolAddresses,
  poolFamily,
  poolSpecProblems,
  usableAddresses,
} from "./pool.ts";
export {
  blockedBy,
  cacheView,
  type Claim,
  describeOverlaps,
  type Overlap,
  overlapsWith,
  poolClaim,
  PoolClaims,
  StalePoolViewError,
} from "./overlap.ts";
export {
  byPool,
  canonicalIP,
  decideRelease,
  detailPoolIPs,
  endpointPoolIPs,
  EnsureError,
  ensureIPs,
  type KubevirtInfo,
  kubevirtVMWanted,
  notListedBy,
  type PoolIP,
  type ReleaseDecision,
  releaseEach,
  type ReleaseInput,
  releaseIPs,
  type ReleaseResult,
  RestampError,
  restampIPs,
  type StatefulSetInfo,
  statefulSetOrdinalValid,
} from "./release.ts";
export {
  customRoutesFor,
  defaultDestination,
  type DetectionFlags,
  ipConfigFor,
  routesFor,
  storedRoutesFor,
  unmatchedRoutes,
  withDefaultRoute,
} from "./routes.ts";
export { detectionFlagsFor, migrationJobOf } from "./detection.ts";
export {
  adoptEndpoint,
  buildEndpoint,
  detailFor,
  endpointDetailsFor,
  type EndpointInput,
  type NICAllocation,
  responseFromDetails,
  responseFromEndpoint,
} from "./endpoint.ts";
export {
  decideRetrieval,
  EndpointDataError,
  EndpointOwnerError,
  nicsToAllocate,
  requireReadableEndpoint,
  requireSameStaticOwner,
  type RetrievalDecision,
  type RetrievalInput,
  statefulSetPoolChanges,
} from "./retrieval.ts";
export {
  type FamilyStatus,
  type IpamStatus,
  ipamStatus,
  type PoolAvailability,
  type StatusInput,
} from "./status.ts";
export { type ReservedAddresses, reservedAddresses, UnreadableReservedIPError } from "./reserved.ts";
