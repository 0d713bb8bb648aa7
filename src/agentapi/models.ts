// Models of the agent's unix-socket API (`/v1`, Spiderpool's swagger), shared by the plugins (client side)
// and the agent (server side). Field names are the wire names; `?` marks fields the swagger does not require.

/** Default path of the agent's socket (ConfigMap `ipamUnixSocketPath`, plugin conf `ipam_unix_socket_path`). */
export const DEFAULT_AGENT_SOCKET = "/var/run/spidernet/spiderpool.sock";

/** The paths of the socket API, relative to the socket (basePath `/v1` included). */
export const AgentPaths = {
  /** GET: 200 with an empty body when the agent is ready to serve IPAM requests. */
  healthy: "/v1/ipam/healthy",
  /** POST IpamAddArgs → IpamAddResponse; DELETE IpamDelArgs → empty. */
  ip: "/v1/ipam/ip",
  /** DELETE IpamBatchDelArgs → empty (521/522 when releasing conflicting IPs is forbidden). */
  ips: "/v1/ipam/ips",
  /** POST IpamGcArgs → empty. Our addition for CNI 1.1 GC; see IpamGcArgs. */
  gc: "/v1/ipam/gc",
  /**
   * POST IpamStatusArgs → empty, or 500 naming the pools.
   * Our addition for CNI 1.1 STATUS; see IpamStatusArgs.
   */
  status: "/v1/ipam/status",
  /** GET with a JSON body GetCoordinatorArgs → CoordinatorConfig. */
  coordinatorConfig: "/v1/coordinator/config",
  /** GET ?podNamespace=&podName= → WorkloadEndpointStatus. */
  workloadEndpoint: "/v1/workloadendpoint",
} as const;

export interface IpamAddArgs {
  containerID: string;
  ifName: string;
  netNamespace: string;
  podNamespace: string;
  podName: string;
  podUID: string;
  defaultIPv4IPPool?: string[];
  defaultIPv6IPPool?: string[];
  cleanGateway?: boolean;
  matchMasterSubnet?: boolean;
  /**
   * Not in upstream's swagger (its go-swagger server ignores fields it does not know): the CNI network (the
   * configuration's `name`) this interface is attached through. The agent records it per NIC, so that a CNI
   * GC, which names its network, releases only attachments made through that network.
   */
  networkName?: string;
}

export interface IpConfig {
  version: 4 | 6;
  /** "IP/prefix"; the prefix is the pool's `spec.subnet` mask. */
  address: string;
  ipPool?: string;
  gateway?: string;
  nic: string;
  vlan?: number;
  mac?: string;
  enableGatewayDetection?: boolean;
  enableIPConflictDetection?: boolean;
}

export interface Route {
  ifName: string;
  dst: string;
  gw: string;
}

/** Never populated by the agent; kept for wire compatibility. */
export interface DNS {
  domain?: string;
  nameservers?: string[];
  options?: string[];
  search?: string[];
}

export interface IpamAddResponse {
  ips: IpConfig[];
  routes?: Route[];
  dns?: DNS;
}

export interface IpamDelArgs {
  containerID: string;
  ifName: string;
  netNamespace?: string;
  podNamespace: string;
  podName: string;
  podUID: string;
}

/**
 * `DELETE /v1/ipam/ip` answers 200 with an empty body, as upstream's agent does; this header (not in upstream's
 * swagger, which a go-swagger client ignores) says what the release did: `released`, `kept` (the pod is alive,
 * or its StatefulSet or VM keeps its fixed IPs) or `none` (nothing held for this pod and interface).
 */
export const RELEASE_RESULT_HEADER = "X-Spiderpool-Release";
/** With RELEASE_RESULT_HEADER: the released addresses, or why nothing was released (ASCII text). */
export const RELEASE_DETAIL_HEADER = "X-Spiderpool-Release-Detail";

export type ReleaseResult = "released" | "kept" | "none";

/** What a DEL did, as the two headers carry it. */
export interface ReleaseOutcome {
  result: ReleaseResult;
  /** The released addresses (comma-separated), or the reason nothing was released. */
  detail: string;
}

export interface IpamBatchDelArgs {
  isReleaseConflictIPs?: boolean;
  containerID: string;
  netNamespace?: string;
  podNamespace: string;
  podName: string;
  podUID: string;
}

/** One attachment the runtime still uses (CNI 1.1 `cni.dev/valid-attachments`, `ifname` renamed `ifName`). */
export interface GcAttachment {
  containerID: string;
  ifName: string;
}

/**
 * Body of `POST /v1/ipam/gc` (not in upstream Spiderpool): a CNI GC for one network, with the attachments the
 * container runtime still has on it on this node. The agent releases the addresses of NICs attached through
 * `networkName` (as recorded at ADD) whose sandbox has no valid attachment on it and cannot be running any
 * more (pod gone, finished, or past its grace period). It answers 200 with an empty body, or 500 with an Error
 * string.
 */
export interface IpamGcArgs {
  networkName: string;
  validAttachments: GcAttachment[];
}

/**
 * Body of `POST /v1/ipam/status` (not in upstream Spiderpool): the CNI config's default pools, as in
 * IpamAddArgs. The agent answers 200 with an empty body when a pod without pool annotations could get an
 * address in every enabled family that has candidate pools (these, else the pools with `spec.default: true`),
 * and 500 with an Error string naming each candidate pool and why it cannot serve when not.
 */
export interface IpamStatusArgs {
  defaultIPv4IPPool?: string[];
  defaultIPv6IPPool?: string[];
}

export interface GetCoordinatorArgs {
  podName?: string;
  podNamespace?: string;
}

export interface CoordinatorConfig {
  mode: string;
  overlayPodCIDR: string[];
  serviceCIDR: string[];
  hijackCIDR?: string[];
  policyRoutes?: { dst?: string; gw?: string }[];
  podMACPrefix?: string;
  tunePodRoutes: boolean;
  podDefaultRouteNIC?: string;
  hostRuleTable?: number;
  podRPFilter?: number;
  txQueueLen?: number;
  vethLinkAddress?: string;
  vethMTU?: number;
}

export interface InterfaceDetail {
  interface: string;
  ipv4?: string;
  ipv6?: string;
  mac?: string;
  vlan?: number;
  ipv4Pool?: string;
  ipv6Pool?: string;
  ipv4Gateway?: string;
  ipv6Gateway?: string;
  routes?: Route[];
}

export interface WorkloadEndpointStatus {
  podNamespace: string;
  podName: string;
  podUID: string;
  node: string;
  interfaces: InterfaceDetail[];
}

/** Error bodies are a JSON string (swagger model `Error` is `type: string`). */
export type ApiError = string;
