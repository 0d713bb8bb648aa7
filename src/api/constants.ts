// Names and default values of the spiderpool.spidernet.io/v2beta1 API: group, kinds, annotation and label keys,
// the finalizer, and every default the webhooks, agent and plugins apply. Each fact is written here once; other
// modules import it rather than repeating the string or number.

/** API group of every Spiderpool CRD. */
export const GROUP = "spiderpool.spidernet.io";
/** The only served and stored version. */
export const VERSION = "v2beta1";
/** `apiVersion` field value of every Spiderpool object. */
export const API_VERSION = `${GROUP}/${VERSION}`;
/** Finalizer put on every object Spiderpool owns (pools, subnets, endpoints, coordinator). */
export const FINALIZER = "spiderpool.spidernet.io";

/** Kind names of the six CRDs. */
export const KIND = {
  ippool: "SpiderIPPool",
  subnet: "SpiderSubnet",
  reservedIP: "SpiderReservedIP",
  endpoint: "SpiderEndpoint",
  coordinator: "SpiderCoordinator",
  multusConfig: "SpiderMultusConfig",
} as const;
export type Kind = typeof KIND[keyof typeof KIND];

/** Resource (plural) names, as used in REST paths. */
export const PLURAL = {
  ippool: "spiderippools",
  subnet: "spidersubnets",
  reservedIP: "spiderreservedips",
  endpoint: "spiderendpoints",
  coordinator: "spidercoordinators",
  multusConfig: "spidermultusconfigs",
} as const;

/** Singular resource names. */
export const SINGULAR = {
  ippool: "spiderippool",
  subnet: "spidersubnet",
  reservedIP: "spiderreservedip",
  endpoint: "spiderendpoint",
  coordinator: "spidercoordinator",
  multusConfig: "spidermultusconfig",
} as const;

/** kubectl short names. */
export const SHORT_NAME = {
  ippool: "sp",
  subnet: "ss",
  reservedIP: "sr",
  endpoint: "se",
  coordinator: "scc",
  multusConfig: "smc",
} as const;

/** CRD category shared by all kinds (`kubectl get spiderpool`). */
export const CATEGORY = "spiderpool";

/** Annotation keys read from pods, namespaces, auto-pools and SpiderMultusConfigs. */
export const ANNOTATION = {
  // pod: pool selection
  ippool: "ipam.spidernet.io/ippool",
  ippools: "ipam.spidernet.io/ippools",
  subnet: "ipam.spidernet.io/subnet",
  subnets: "ipam.spidernet.io/subnets",
  ippoolIPNumber: "ipam.spidernet.io/ippool-ip-number",
  ippoolReclaim: "ipam.spidernet.io/ippool-reclaim",
  routes: "ipam.spidernet.io/routes",
  defaultRouteNIC: "ipam.spidernet.io/default-route-nic",
  /** Declared by upstream, never read. */
  dns: "ipam.spidernet.io/dns",
  // namespace
  defaultIPv4IPPool: "ipam.spidernet.io/default-ipv4-ippool",
  defaultIPv6IPPool: "ipam.spidernet.io/default-ipv6-ippool",
  // pod or namespace: webhook injection of SpiderMultusConfigs
  rdmaResourceInject: "cni.spidernet.io/rdma-resource-inject",
  networkResourceInject: "cni.spidernet.io/network-resource-inject",
  // Multus
  multusDefaultNetwork: "v1.multus-cni.io/default-network",
  multusNetworks: "k8s.v1.cni.cncf.io/networks",
  multusResourceName: "k8s.v1.cni.cncf.io/resourceName",
  // KubeVirt
  kubevirtMigrationJobName: "kubevirt.io/migrationJobName",
  // SpiderMultusConfig
  multusConfigCRName: "multus.spidernet.io/cr-name",
  multusConfigCNIVersion: "multus.spidernet.io/cni-version",
  cniConfigName: "cni.spidernet.io/cniconfig-name",
} as const;

/** Label keys written by Spiderpool on pools and subnets, and auto-pool podAffinity labels. */
export const LABEL = {
  ippoolCIDR: "ipam.spidernet.io/ippool-cidr",
  subnetCIDR: "ipam.spidernet.io/subnet-cidr",
  ownerSpiderSubnet: "ipam.spidernet.io/owner-spider-subnet",
  ownerApplicationGV: "ipam.spidernet.io/owner-application-gv",
  ownerApplicationKind: "ipam.spidernet.io/owner-application-kind",
  ownerApplicationNamespace: "ipam.spidernet.io/owner-application-namespace",
  ownerApplicationName: "ipam.spidernet.io/owner-application-name",
  ownerApplicationUID: "ipam.spidernet.io/owner-application-uid",
  interface: "ipam.spidernet.io/interface",
  ipVersion: "ipam.spidernet.io/ip-version",
  ippoolReclaim: "ipam.spidernet.io/ippool-reclaim",
  // auto-pool podAffinity matchLabels
  appAPIGroup: "ipam.spidernet.io/app-api-group",
  appAPIVersion: "ipam.spidernet.io/app-api-version",
  appKind: "ipam.spidernet.io/app-kind",
  appNamespace: "ipam.spidernet.io/app-namespace",
  appName: "ipam.spidernet.io/app-name",
} as const;

/** The only matchLabels keys an auto-pool's podAffinity may use. */
export const AUTO_POOL_AFFINITY_LABELS: readonly string[] = [
  LABEL.appAPIGroup,
  LABEL.appAPIVersion,
  LABEL.appKind,
  LABEL.appNamespace,
  LABEL.appName,
];

/** Values of the `ipam.spidernet.io/ip-version` label. */
export const IP_VERSION_LABEL_VALUE = { 4: "IPv4", 6: "IPv6" } as const;

/** Agent unix socket (ConfigMap `ipamUnixSocketPath`; the coordinator always uses this path). */
export const DEFAULT_SOCKET_PATH = "/var/run/spidernet/spiderpool.sock";
/** Name of the first pod NIC, used when an annotation or config names none. */
export const DEFAULT_NIC = "eth0";
/** Name of the singleton SpiderCoordinator. */
export const DEFAULT_COORDINATOR_NAME = "default";
/** Allocation records one SpiderIPPool may hold (`SPIDERPOOL_IPPOOL_MAX_ALLOCATED_IPS`). */
export const MAX_ALLOCATED_IPS = 5000;

/**
 * SpiderCoordinator spec defaults. The mutating webhook sets mode, tunePodRoutes, hostRuleTable, podRPFilter,
 * txQueueLen, vethLinkAddress and vethMTU (also the coordinator plugin's fallbacks); podCIDRType and hijackCIDR
 * are the values the installer writes into the `default` SpiderCoordinator (the webhook requires podCIDRType).
 */
export const COORDINATOR_DEFAULTS = {
  mode: "auto",
  podCIDRType: "auto",
  hijackCIDR: ["169.254.0.0/16"],
  tunePodRoutes: true,
  hostRuleTable: 500,
  podRPFilter: 0,
  txQueueLen: 0,
  vethLinkAddress: "",
  vethMTU: 1500,
  podMACPrefix: "",
  podDefaultRouteNIC: "",
} as const;

/** Accepted SpiderCoordinator `mode` values (`disable` is the plugin spelling of `disabled`). */
export const COORDINATOR_MODES: readonly string[] = ["auto", "underlay", "overlay", "disabled", "disable"];
/** Accepted `podCIDRType` values. */
export const POD_CIDR_TYPES: readonly string[] = ["auto", "cluster", "calico", "cilium", "none"];

/** SpiderMultusConfig `cniType` values; `custom` is the default. */
export const CNI_TYPES = [
  "macvlan",
  "ipvlan",
  "vlan",
  "sriov",
  "ovs",
  "ib-sriov",
  "ipoib",
  "custom",
] as const;
export type CNIType = typeof CNI_TYPES[number];
export const DEFAULT_CNI_TYPE: CNIType = "custom";

/** CNI versions accepted in `multus.spidernet.io/cni-version`, and the one used when it is absent. */
export const CNI_VERSIONS: readonly string[] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
export const DEFAULT_CNI_VERSION = "0.3.1";

/** Largest VLAN id accepted anywhere (0 means untagged). */
export const MAX_VLAN_ID = 4094;

/** Defaults of the global ConfigMap `spiderpool-conf` (`conf.yml`). */
export const CONFIG_DEFAULTS = {
  ipamUnixSocketPath: DEFAULT_SOCKET_PATH,
  enableIPv4: true,
  enableIPv6: true,
  enableStatefulSet: true,
  enableKubevirtStaticIP: true,
  enableSpiderSubnet: true,
  enableAutoPoolForApplication: true,
  enableCleanOutdatedEndpoint: false,
  enableIPConflictDetection: false,
  enableGatewayDetection: false,
  enableValidatingResourcesDeletedWebhook: false,
  /** The documented "+1" (see Decisions). */
  clusterSubnetDefaultFlexibleIPNumber: 1,
  tuneSysctlConfig: true,
} as const;

/**
 * Defaults of `podResourceInject` in `conf.yml` (upstream's chart): the pod webhook is off, and when on it never
 * sees pods of these system namespaces.
 */
export const POD_RESOURCE_INJECT_DEFAULTS = {
  enabled: false,
  namespacesExclude: ["kube-system", "spiderpool", "metallb-system", "istio-system"],
  namespacesInclude: [],
} as const;
