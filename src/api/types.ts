// TypeScript types of the six spiderpool.spidernet.io/v2beta1 kinds, inferred from the CRD schemas in
// `crds.ts`, so the types and the schemas installed in the cluster cannot drift apart.

import type { Infer, s } from "./schema.ts";
import type {
  bondConfigSchema,
  coordinatorSchema,
  coordinatorSpecSchema,
  coordinatorStatusSchema,
  endpointSchema,
  ibSriovSchema,
  ipAllocationDetailSchema,
  ipoibSchema,
  ipPoolSchema,
  ipPoolSpecSchema,
  ipPoolStatusSchema,
  ipvlanSchema,
  macvlanSchema,
  multusConfigSchema,
  multusConfigSpecSchema,
  ovsSchema,
  podIPAllocationSchema,
  reservedIPSchema,
  reservedIPSpecSchema,
  routeSchema,
  spiderpoolPoolsSchema,
  sriovSchema,
  subnetSchema,
  subnetSpecSchema,
  subnetStatusSchema,
  vlanSchema,
  workloadEndpointStatusSchema,
} from "./crds.ts";

export type { LabelSelectorOperator, ObjectMeta, OwnerReference } from "./schema.ts";
export type { Kind } from "./constants.ts";

/** A Kubernetes label selector (`matchLabels` and `matchExpressions` are ANDed). */
export type LabelSelector = Infer<ReturnType<typeof s.labelSelector>>;
/** A route handed to a pod: destination CIDR and gateway IP. */
export type Route = Infer<typeof routeSchema>;

export type SpiderIPPool = Infer<typeof ipPoolSchema>;
export type IPPoolSpec = Infer<typeof ipPoolSpecSchema>;
export type IPPoolStatus = Infer<typeof ipPoolStatusSchema>;

export type SpiderSubnet = Infer<typeof subnetSchema>;
export type SubnetSpec = Infer<typeof subnetSpecSchema>;
export type SubnetStatus = Infer<typeof subnetStatusSchema>;

export type SpiderReservedIP = Infer<typeof reservedIPSchema>;
export type ReservedIPSpec = Infer<typeof reservedIPSpecSchema>;

export type SpiderEndpoint = Infer<typeof endpointSchema>;
export type WorkloadEndpointStatus = Infer<typeof workloadEndpointStatusSchema>;
/** The IPs a pod holds: `SpiderEndpoint.status.current`. */
export type PodIPAllocation = Infer<typeof podIPAllocationSchema>;
/** The addresses of one NIC of a pod. */
export type IPAllocationDetail = Infer<typeof ipAllocationDetailSchema>;

export type SpiderCoordinator = Infer<typeof coordinatorSchema>;
export type CoordinatorSpec = Infer<typeof coordinatorSpecSchema>;
export type CoordinatorStatus = Infer<typeof coordinatorStatusSchema>;

export type SpiderMultusConfig = Infer<typeof multusConfigSchema>;
export type MultusCNIConfigSpec = Infer<typeof multusConfigSpecSchema>;
export type SpiderMacvlanCniConfig = Infer<typeof macvlanSchema>;
export type SpiderIPvlanCniConfig = Infer<typeof ipvlanSchema>;
export type SpiderVlanCniConfig = Infer<typeof vlanSchema>;
export type SpiderSRIOVCniConfig = Infer<typeof sriovSchema>;
export type SpiderIBSRIOVCniConfig = Infer<typeof ibSriovSchema>;
export type SpiderIPoIBCniConfig = Infer<typeof ipoibSchema>;
export type SpiderOvsCniConfig = Infer<typeof ovsSchema>;
export type BondConfig = Infer<typeof bondConfigSchema>;
/** Default IPv4/IPv6 pools of the spiderpool IPAM entry of a generated NetworkAttachmentDefinition. */
export type SpiderpoolPools = Infer<typeof spiderpoolPoolsSchema>;

/** IP family, as in `spec.ipVersion`. */
export type IPVersion = NonNullable<IPPoolSpec["ipVersion"]>;
/** `SpiderMultusConfig.spec.cniType`. */
export type CniType = NonNullable<MultusCNIConfigSpec["cniType"]>;
/** `CoordinatorSpec.mode` ("disable" is accepted as a synonym of "disabled"). */
export type CoordinatorMode = NonNullable<CoordinatorSpec["mode"]>;
/** `CoordinatorSpec.podCIDRType`. */
export type PodCIDRType = NonNullable<CoordinatorSpec["podCIDRType"]>;
