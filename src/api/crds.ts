// The six spiderpool.spidernet.io/v2beta1 CustomResourceDefinitions: one schema per kind plus names, scope
// and printer columns. `crds/` is generated from here and `types.ts` infers the TypeScript types from here,
// so a field is added or changed in exactly this file.

import {
  CATEGORY,
  CNI_TYPES,
  COORDINATOR_DEFAULTS,
  DEFAULT_CNI_TYPE,
  GROUP,
  KIND,
  LABEL,
  MAX_VLAN_ID,
  PLURAL,
  SHORT_NAME,
  VERSION,
} from "./constants.ts";
import { type OpenAPISchema, s, type Schema } from "./schema.ts";

// ---------------------------------------------------------------------------------------------------------
// Shared pieces

const immutable = (field: string) => [{ rule: "self == oldSelf", message: `${field} is immutable` }];

const ipVersion = (derivedFrom: string) =>
  s.int64({
    enum: [4, 6],
    description: `IP family of the object, 4 or 6. Derived from ${derivedFrom} when unset; immutable.`,
    rules: immutable("ipVersion"),
  });

const ipRanges = (description: string) => s.array(s.string(), { description });

export const routeSchema = s.object({
  dst: s.string({ description: "Destination CIDR of the route." }),
  gw: s.string({ description: "Gateway IP of the route." }),
}, { required: ["dst", "gw"] });

const routes = (description: string) => s.array(routeSchema, { description });

const names = (description: string) => s.array(s.string(), { description });

const count = (description: string) => s.int64({ minimum: 0, description });

const root = {
  apiVersion: s.string({
    description: "APIVersion defines the versioned schema of this representation of an object. Servers " +
      "should convert recognized schemas to the latest internal value, and may reject unrecognized values. " +
      "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
  }),
  kind: s.string({
    description:
      "Kind is a string value representing the REST resource this object represents. Servers may " +
      "infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. " +
      "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
  }),
  metadata: s.objectMeta(),
};

// ---------------------------------------------------------------------------------------------------------
// SpiderIPPool

export const ipPoolSpecSchema = s.object({
  ipVersion: ipVersion("spec.subnet"),
  subnet: s.string({
    description: "CIDR of the pool in canonical network form, e.g. 172.18.40.0/24; immutable.",
    rules: immutable("subnet"),
  }),
  ips: ipRanges(
    "IP ranges the pool allocates from: a single address (172.18.40.10) or a range " +
      "(172.18.40.10-172.18.40.20), inside subnet.",
  ),
  excludeIPs: ipRanges("IP ranges inside subnet that are never allocated."),
  gateway: s.string({
    description: "Gateway handed to pods; inherited from the owning SpiderSubnet if unset.",
  }),
  routes: routes("Routes handed to pods; inherited from the owning SpiderSubnet if unset."),
  podAffinity: s.labelSelector({ description: "Only pods whose labels match may use this pool." }),
  namespaceAffinity: s.labelSelector({
    description: "Only pods in namespaces whose labels match may use this pool.",
  }),
  namespaceName: names(
    "Only pods in these namespaces may use this pool; takes precedence over namespaceAffinity.",
  ),
  nodeAffinity: s.labelSelector({ description: "Only pods on nodes whose labels match may use this pool." }),
  nodeName: names("Only pods on these nodes may use this pool; takes precedence over nodeAffinity."),
  multusName: names(
    "Only NICs attached through these NetworkAttachmentDefinitions (ns/name, or name in Spiderpool's " +
      "namespace) may use this pool.",
  ),
  default: s.bool({ default: false, description: "Cluster default pool, used when a pod names no pool." }),
  disable: s.bool({ default: false, description: "No new allocation from this pool; release still works." }),
}, { required: ["subnet"], description: "IPPoolSpec defines the desired state of SpiderIPPool." });

export const ipPoolStatusSchema = s.object({
  allocatedIPs: s.string({
    description: 'Allocated IPs as a JSON object serialized to a string: {"<ip>":{"pod":"<ns>/<name>",' +
      '"podUid":"<uid>"}}. Absent when no IP is allocated.',
  }),
  allocatedIPCount: count("Number of allocated IPs."),
  totalIPCount: count("Number of IPs in ips minus excludeIPs."),
}, { description: "IPPoolStatus defines the observed state of SpiderIPPool." });

export const ipPoolSchema = s.object({
  ...root,
  spec: ipPoolSpecSchema,
  status: ipPoolStatusSchema,
}, { required: ["spec"], present: ["metadata"], description: "SpiderIPPool is a pool of IPs for pods." });

// ---------------------------------------------------------------------------------------------------------
// SpiderSubnet

export const subnetSpecSchema = s.object({
  ipVersion: ipVersion("spec.subnet"),
  subnet: s.string({
    description: "CIDR of the subnet in canonical network form, e.g. 172.18.40.0/24; immutable.",
    rules: immutable("subnet"),
  }),
  ips: ipRanges("IP ranges the subnet hands out to its pools, inside subnet."),
  excludeIPs: ipRanges("IP ranges inside subnet that are never handed out."),
  gateway: s.string({ description: "Gateway inherited by the subnet's pools." }),
  routes: routes("Routes inherited by the subnet's pools."),
}, { required: ["subnet"], description: "SubnetSpec defines the desired state of SpiderSubnet." });

export const subnetStatusSchema = s.object({
  controlledIPPools: s.string({
    description: 'IPs handed to pools as a JSON object serialized to a string: {"<pool>":{"ips":["a-b"],' +
      '"application":"<group>_<version>_<Kind>_<ns>_<name>"}}; application only for auto-pools.',
  }),
  totalIPCount: count("Number of IPs in ips minus excludeIPs."),
  allocatedIPCount: count("Number of IPs handed to pools."),
}, { description: "SubnetStatus defines the observed state of SpiderSubnet." });

export const subnetSchema = s.object({
  ...root,
  spec: subnetSpecSchema,
  status: subnetStatusSchema,
}, {
  required: ["spec"],
  present: ["metadata"],
  description: "SpiderSubnet is a subnet whose IPs pools draw on.",
});

// ---------------------------------------------------------------------------------------------------------
// SpiderReservedIP

export const reservedIPSpecSchema = s.object({
  ipVersion: ipVersion("spec.ips[0]"),
  ips: s.array(s.string(), {
    minItems: 1,
    description: "IP ranges that no pool allocates and no subnet hands out.",
  }),
}, { required: ["ips"], description: "ReservedIPSpec defines the desired state of SpiderReservedIP." });

export const reservedIPSchema = s.object({
  ...root,
  spec: reservedIPSpecSchema,
}, {
  required: ["spec"],
  present: ["metadata"],
  description: "SpiderReservedIP keeps IPs out of allocation.",
});

// ---------------------------------------------------------------------------------------------------------
// SpiderEndpoint

export const ipAllocationDetailSchema = s.object({
  interface: s.string({ description: "Name of the pod's NIC." }),
  ipv4: s.string({ description: "IPv4 address with prefix length, e.g. 172.18.40.10/24." }),
  ipv6: s.string({ description: "IPv6 address with prefix length." }),
  ipv4Pool: s.string({ description: "SpiderIPPool the IPv4 address came from." }),
  ipv6Pool: s.string({ description: "SpiderIPPool the IPv6 address came from." }),
  vlan: s.int64({
    default: 0,
    minimum: 0,
    maximum: MAX_VLAN_ID,
    description: "DEPRECATED: Vlan is deprecated.",
  }),
  ipv4Gateway: s.string({ description: "IPv4 gateway handed to the pod." }),
  ipv6Gateway: s.string({ description: "IPv6 gateway handed to the pod." }),
  cleanGateway: s.bool({ description: "Whether the default route through the gateway was left out." }),
  routes: routes("Routes handed to the pod for this NIC."),
  mac: s.string({ description: "MAC address of the NIC, when an IaaS provider assigned one." }),
}, { required: ["interface"] });

export const podIPAllocationSchema = s.object({
  uid: s.string({ description: "UID of the pod holding the IPs." }),
  node: s.string({ description: "Node the pod runs on." }),
  ips: s.array(ipAllocationDetailSchema, { description: "One entry per NIC." }),
}, { required: ["uid", "node", "ips"] });

export const workloadEndpointStatusSchema = s.object({
  current: podIPAllocationSchema,
  ownerControllerType: s.string({
    description: "Kind of the pod's controller, e.g. Deployment, StatefulSet, VirtualMachineInstance or Pod.",
  }),
  ownerControllerName: s.string({ description: "Name of the pod's controller." }),
}, {
  required: ["current", "ownerControllerType", "ownerControllerName"],
  description: "WorkloadEndpointStatus records the IPs a pod holds.",
});

export const endpointSchema = s.object({
  ...root,
  status: workloadEndpointStatusSchema,
}, {
  required: ["status"],
  present: ["metadata"],
  description: "SpiderEndpoint records the IPs allocated to one pod.",
});

// ---------------------------------------------------------------------------------------------------------
// SpiderCoordinator

export const coordinatorSpecSchema = s.object({
  mode: s.string({
    enum: ["auto", "underlay", "overlay", "disabled", "disable"],
    default: COORDINATOR_DEFAULTS.mode,
    description: "Mode the coordinator runs in: auto (default), underlay, overlay or disabled " +
      '("disable" is accepted as a synonym).',
  }),
  podCIDRType: s.string({
    enum: ["auto", "cluster", "calico", "cilium", "none"],
    description: "Where the pod CIDRs come from. Required on SpiderCoordinator; optional in " +
      "SpiderMultusConfig, where it is merged from the SpiderCoordinator.",
  }),
  hijackCIDR: s.array(s.string(), {
    description:
      "CIDRs routed from the pod through the host network stack, e.g. nodelocaldns 169.254.0.0/16.",
  }),
  policyRoutes: routes("Extra routes installed in the pod."),
  podMACPrefix: s.string({
    description: "Fixed two-byte MAC address prefix for pod NICs, e.g. 0a:1b; the lowest bit of the first " +
      "byte must be 0 (unicast).",
  }),
  tunePodRoutes: s.bool({
    default: COORDINATOR_DEFAULTS.tunePodRoutes,
    description: "Whether to tune the routes of pods with multiple NICs.",
  }),
  podDefaultRouteNIC: s.string({
    description: "NIC that holds the pod's default route; empty keeps it on eth0.",
  }),
  hostRuleTable: s.int({
    default: COORDINATOR_DEFAULTS.hostRuleTable,
    description: "Routing table used for communication between the pod and its node.",
  }),
  podRPFilter: s.int({
    default: COORDINATOR_DEFAULTS.podRPFilter,
    description: "rp_filter set in the pod: 0, 1 or 2; a negative number leaves it untouched.",
  }),
  txQueueLen: s.int({
    default: COORDINATOR_DEFAULTS.txQueueLen,
    minimum: 0,
    description: "tx_queue_len set on the pod's NIC; 0 leaves it untouched.",
  }),
  vethLinkAddress: s.string({
    description: "IPv4 link-local address for the pod's veth0, e.g. 169.254.100.1; empty disables it.",
  }),
  // No schema default: the webhook sets it, and a default here would also land in every SpiderMultusConfig.
  vethMTU: s.int({
    minimum: 1,
    description: `MTU of the pod's veth0; ${COORDINATOR_DEFAULTS.vethMTU} when unset.`,
  }),
}, { description: "CoordinatorSpec defines the desired state of SpiderCoordinator." });

export const coordinatorStatusSchema = s.object({
  phase: s.typed<"Synced" | "NotReady">(s.string({ description: "Synced or NotReady." })),
  reason: s.string({ description: "Why the phase is NotReady." }),
  overlayPodCIDR: s.array(s.string(), { description: "Pod CIDRs of the cluster's default CNI." }),
  serviceCIDR: s.array(s.string(), { description: "Service CIDRs of the cluster." }),
}, {
  required: ["phase"],
  description: "CoordinatorStatus defines the observed state of SpiderCoordinator.",
});

export const coordinatorSchema = s.object({
  ...root,
  // Defaulting an absent spec to {} lets the field defaults below apply to a bare object too.
  spec: s.withDefault(coordinatorSpecSchema, {}),
  status: coordinatorStatusSchema,
}, {
  required: ["spec"],
  present: ["metadata"],
  description:
    "SpiderCoordinator holds the cluster-wide coordinator settings; the singleton is named default.",
});

// ---------------------------------------------------------------------------------------------------------
// SpiderMultusConfig

export const spiderpoolPoolsSchema = s.object({
  ipv4: s.array(s.string(), { description: "Default IPv4 pools of the NIC." }),
  ipv6: s.array(s.string(), { description: "Default IPv6 pools of the NIC." }),
  // No schema default: the field may only be set for sriov, where the webhook defaults it.
  matchMasterSubnet: s.bool({
    description: "Pick the pool whose subnet matches the master interface (sriov only).",
  }),
}, { description: "SpiderpoolPools are the default IPv4 and IPv6 pools of the spiderpool IPAM entry." });

export const bondConfigSchema = s.object({
  name: s.string({ description: "Name of the bond device." }),
  mode: s.int32({ minimum: 0, maximum: 6, description: "Bond mode, 0 to 6." }),
  options: s.string({ description: 'Bond options, "k1=v1;k2=v2".' }),
}, {
  required: ["name", "mode"],
  description: "Bond created by the ifacer plugin; required when more than one master is given.",
});

const master = s.array(s.string(), {
  description: "Master interface(s); with more than one, a bond is created from them.",
});
const mtu = s.int32({ default: 0, minimum: 0, description: "MTU of the NIC; 0 leaves the kernel's choice." });
const vlanID = s.int32({ minimum: 0, maximum: MAX_VLAN_ID, description: `VLAN ID, 0 to ${MAX_VLAN_ID}.` });
const rdmaResourceName = s.string({
  description: "RDMA resource name of the NIC (e.g. from k8s-rdma-shared-dev-plugin), injected into pods.",
});
const resourceName = s.string({ description: "SR-IOV resource name, as reported by the device plugin." });

export const macvlanSchema = s.object({
  master,
  mtu,
  vlanID,
  bond: bondConfigSchema,
  rdmaResourceName,
  ippools: spiderpoolPoolsSchema,
}, { required: ["master"] });

export const ipvlanSchema = macvlanSchema;

export const vlanSchema = s.object({
  master,
  mtu,
  vlanMode: s.string({
    enum: ["manual", "auto"],
    default: "manual",
    description:
      "manual: vlanID is required; auto: the VLAN is assigned by the provider and vlanID is forbidden.",
  }),
  vlanID,
  bond: bondConfigSchema,
  rdmaResourceName,
  ippools: spiderpoolPoolsSchema,
}, { required: ["master"] });

export const sriovSchema = s.object({
  resourceName,
  vlanID,
  mtu,
  minTxRateMbps: s.int({ minimum: 0, description: "Minimum TX rate of the VF in Mbps; 0 is no limit." }),
  maxTxRateMbps: s.int({ minimum: 0, description: "Maximum TX rate of the VF in Mbps; 0 is no limit." }),
  rdmaIsolation: s.bool({ default: false, description: "Chain the rdma plugin to isolate RDMA traffic." }),
  ippools: spiderpoolPoolsSchema,
}, { required: ["resourceName"] });

export const ibSriovSchema = s.object({
  resourceName,
  pkey: s.string({ description: "InfiniBand pkey of the VF, used by ib-kubernetes." }),
  linkState: s.string({
    enum: ["auto", "enable", "disable"],
    default: "enable",
    description: "Link state enforced on the VF.",
  }),
  rdmaIsolation: s.bool({ default: true, description: "Isolate the VF's RDMA device in the pod." }),
  enableIbKubernetes: s.bool({ default: false, description: "Make ib-sriov-cni work with ib-kubernetes." }),
  ippools: spiderpoolPoolsSchema,
}, { required: ["resourceName"] });

export const ipoibSchema = s.object({
  master: s.string({ description: "Host interface the IPoIB link is created from." }),
  ippools: spiderpoolPoolsSchema,
}, { required: ["master"] });

export const ovsSchema = s.object({
  bridge: s.string({ description: "OVS bridge to attach to." }),
  vlan: s.int32({ minimum: 0, maximum: MAX_VLAN_ID, description: "VLAN tag of the port." }),
  trunk: s.array(
    s.object({
      minID: s.int({ minimum: 0, maximum: MAX_VLAN_ID }),
      maxID: s.int({ minimum: 0, maximum: MAX_VLAN_ID }),
      id: s.int({ minimum: 0, maximum: MAX_VLAN_ID }),
    }),
    { description: "Trunk VLANs of the port: single ids or minID-maxID ranges." },
  ),
  deviceID: s.string({ description: "PCI address of a VF in sysfs format, for hardware offload." }),
  ippools: spiderpoolPoolsSchema,
}, { required: ["bridge"] });

export const multusConfigSpecSchema = s.object({
  cniType: s.string({
    enum: CNI_TYPES,
    default: DEFAULT_CNI_TYPE,
    description: "Main CNI plugin of the generated NetworkAttachmentDefinition.",
  }),
  macvlan: macvlanSchema,
  ipvlan: ipvlanSchema,
  vlan: vlanSchema,
  sriov: sriovSchema,
  ibsriov: ibSriovSchema,
  ipoib: ipoibSchema,
  ovs: ovsSchema,
  enableCoordinator: s.bool({
    default: true,
    description: "Append the coordinator plugin; forced to false for cniType custom.",
  }),
  disableIPAM: s.bool({ default: false, description: "Leave the spiderpool IPAM entry out." }),
  coordinator: coordinatorSpecSchema,
  chainCNIJsonData: s.array(s.string(), {
    description: "CNI plugin configurations (JSON) chained after the main plugin.",
  }),
  customCNI: s.string({ description: "Verbatim CNI configuration (JSON) for cniType custom; may be empty." }),
}, { description: "MultusCNIConfigSpec describes the NetworkAttachmentDefinition to generate." });

export const multusConfigSchema = s.object({
  ...root,
  spec: s.withDefault(multusConfigSpecSchema, {}),
}, {
  required: ["spec"],
  present: ["metadata"],
  description: "SpiderMultusConfig generates a Multus NetworkAttachmentDefinition of the same name.",
});

// ---------------------------------------------------------------------------------------------------------
// The definitions

/** A column of `kubectl get`. */
export interface PrinterColumn {
  readonly name: string;
  readonly type: "string" | "integer" | "number" | "boolean" | "date";
  readonly jsonPath: string;
  readonly description?: string;
  readonly priority?: number;
}

/** Everything that makes up one CustomResourceDefinition. */
export interface CrdDefinition {
  readonly kind: string;
  readonly plural: string;
  readonly shortNames: readonly string[];
  readonly scope: "Cluster" | "Namespaced";
  readonly schema: Schema<unknown>;
  readonly printerColumns: readonly PrinterColumn[];
  /** Whether `status` is a subresource (written with UpdateStatus, ignored by Update). */
  readonly statusSubresource: boolean;
}

const column = (
  name: string,
  jsonPath: string,
  type: PrinterColumn["type"],
  description: string,
  priority?: number,
): PrinterColumn => (priority === undefined
  ? { name, type, jsonPath, description }
  : { name, type, jsonPath, description, priority });

const subnetColumns = [
  column("VERSION", ".spec.ipVersion", "string", "ipVersion"),
  column("SUBNET", ".spec.subnet", "string", "subnet"),
  column("ALLOCATED-IP-COUNT", ".status.allocatedIPCount", "integer", "allocatedIPCount"),
  column("TOTAL-IP-COUNT", ".status.totalIPCount", "integer", "totalIPCount"),
];

/** Escapes a map key for a bracketed kubectl JSONPath, which re-reads it as a dotted path. */
const jsonPathKey = (key: string) => key.replace(/[.\-]/g, (c) => `\\${c}`);

const endpointIP = (name: string, field: string) =>
  column(name, `.status.current.ips[0].${field}`, "string", field);

/** The six CRDs, in the order they are documented. */
export const CRDS = [
  {
    kind: KIND.ippool,
    plural: PLURAL.ippool,
    shortNames: [SHORT_NAME.ippool],
    scope: "Cluster",
    schema: ipPoolSchema,
    statusSubresource: true,
    printerColumns: [
      ...subnetColumns,
      column("DEFAULT", ".spec.default", "boolean", "default"),
      column("DISABLE", ".spec.disable", "boolean", "disable", 10),
      column("NodeName", ".spec.nodeName", "string", "nodeName", 10),
      column("MultusName", ".spec.multusName", "string", "multusName", 10),
      column(
        "APP-NAMESPACE",
        `.spec.podAffinity.matchLabels['${jsonPathKey(LABEL.appNamespace)}']`,
        "string",
        "AppNamespace",
        10,
      ),
    ],
  },
  {
    kind: KIND.subnet,
    plural: PLURAL.subnet,
    shortNames: [SHORT_NAME.subnet],
    scope: "Cluster",
    schema: subnetSchema,
    statusSubresource: true,
    printerColumns: subnetColumns,
  },
  {
    kind: KIND.reservedIP,
    plural: PLURAL.reservedIP,
    shortNames: [SHORT_NAME.reservedIP],
    scope: "Cluster",
    schema: reservedIPSchema,
    statusSubresource: false,
    printerColumns: [column("VERSION", ".spec.ipVersion", "string", "ipVersion")],
  },
  {
    kind: KIND.endpoint,
    plural: PLURAL.endpoint,
    shortNames: [SHORT_NAME.endpoint],
    scope: "Namespaced",
    schema: endpointSchema,
    statusSubresource: false,
    printerColumns: [
      endpointIP("INTERFACE", "interface"),
      endpointIP("IPV4POOL", "ipv4Pool"),
      endpointIP("IPV4", "ipv4"),
      endpointIP("IPV6POOL", "ipv6Pool"),
      endpointIP("IPV6", "ipv6"),
      column("NODE", ".status.current.node", "string", "node"),
    ],
  },
  {
    kind: KIND.coordinator,
    plural: PLURAL.coordinator,
    shortNames: [SHORT_NAME.coordinator],
    scope: "Cluster",
    schema: coordinatorSchema,
    statusSubresource: true,
    printerColumns: [],
  },
  {
    kind: KIND.multusConfig,
    plural: PLURAL.multusConfig,
    shortNames: [SHORT_NAME.multusConfig],
    scope: "Namespaced",
    schema: multusConfigSchema,
    statusSubresource: false,
    printerColumns: [],
  },
] as const satisfies readonly CrdDefinition[];

/** The apiextensions.k8s.io/v1 CustomResourceDefinition object for one definition. */
export function customResourceDefinition(def: CrdDefinition): Record<string, unknown> {
  const version: Record<string, unknown> = {
    name: VERSION,
    served: true,
    storage: true,
    schema: { openAPIV3Schema: def.schema.openAPI satisfies OpenAPISchema },
  };
  if (def.printerColumns.length > 0) version.additionalPrinterColumns = [...def.printerColumns];
  if (def.statusSubresource) version.subresources = { status: {} };
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${def.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.kind.toLowerCase(),
        shortNames: [...def.shortNames],
        categories: [CATEGORY],
      },
      scope: def.scope,
      versions: [version],
    },
  };
}
