// SpiderMultusConfig → NetworkAttachmentDefinition, as a pure function (spec §9): the NAD's name, owner
// reference, annotations and `spec.config`, byte for byte as upstream Spiderpool renders them. Key order is
// that of upstream's Go structs (pkg/multuscniconfig), chained plugins are re-marshalled as Go maps (sorted
// keys), and the conflist itself is a Go map: cniVersion, name, plugins.

import { ANNOTATION, API_VERSION, DEFAULT_CNI_VERSION, KIND } from "../api/constants.ts";
import type {
  BondConfig,
  CoordinatorSpec,
  OwnerReference,
  SpiderMultusConfig,
  SpiderpoolPools,
} from "../api/types.ts";
import { multusConfigNADName } from "../api/validate/multusconfig.ts";
import { GoMap, goMarshal, goValueOf } from "./gojson.ts";
import { NAD_API_VERSION, NAD_KIND, type NetworkAttachmentDefinition } from "./nad.ts";

/** The resource name annotation Multus reads to find the device a device plugin gave the pod. */
export const RESOURCE_NAME_ANNOTATION = ANNOTATION.multusResourceName;
/** Prefix of the resource ovs-cni's device plugin advertises per bridge (hardware offload). */
export const OVS_RESOURCE_PREFIX = "ovs-cni.network.kubevirt.io";

/** What a SpiderMultusConfig renders to: everything of its NAD the controller keeps in sync. */
export interface RenderedNAD {
  namespace: string;
  name: string;
  annotations: Record<string, string>;
  /** The controller reference to the SpiderMultusConfig. */
  ownerReference: OwnerReference;
  /** `spec.config`; undefined for cniType custom with an empty customCNI (a NAD without config). */
  config?: string;
}

/** The SpiderMultusConfig cannot be rendered (validation should have refused it); names the field. */
export class RenderError extends Error {
  constructor(readonly smc: string, readonly field: string, message: string) {
    super(`${KIND.multusConfig} ${smc}: ${message}`);
    this.name = "RenderError";
  }
}

/**
 * Renders the NAD of `smc` as it is stored, i.e. after the mutating webhook's defaulting (defaultMultusConfig),
 * exactly as upstream does. Defaulting is deliberately not applied again here: it is not idempotent (a
 * coordinator block it created gets `txQueueLen: 0` on a second pass, as upstream's webhook does on UPDATE), so
 * re-applying it would make the NAD differ from upstream's. An object that bypassed the webhook renders what it
 * holds (e.g. a bare `{"type":"coordinator"}`).
 *
 * @example
 * ```ts
 * renderNAD(defaultMultusConfig({ metadata: { name: "macvlan-ens192", namespace: "kube-system", uid: "u1" },
 *   spec: { cniType: "macvlan", macvlan: { master: ["ens192"] }, enableCoordinator: false } })).config;
 * // '{"cniVersion":"0.3.1","name":"macvlan-ens192","plugins":[{"type":"macvlan","master":"ens192",
 * //   "mode":"bridge","mtu":0,"ipam":{"type":"spiderpool"}}]}'
 * ```
 */
export function renderNAD(smc: SpiderMultusConfig): RenderedNAD {
  const meta = smc.metadata;
  const where = `${meta.namespace ?? ""}/${meta.name}`;
  const spec = smc.spec ?? {};
  const annotations: Record<string, string> = { ...(meta.annotations ?? {}) };
  const name = multusConfigNADName(smc);
  const rendered: RenderedNAD = {
    namespace: meta.namespace ?? "",
    name,
    annotations,
    ownerReference: {
      apiVersion: API_VERSION,
      kind: KIND.multusConfig,
      name: meta.name,
      uid: meta.uid ?? "",
      controller: true,
      blockOwnerDeletion: true,
    },
  };
  const conflist = (plugins: unknown[]) =>
    goMarshal(
      new GoMap([
        ["name", annotations[ANNOTATION.cniConfigName] || name],
        ["cniVersion", annotations[ANNOTATION.multusConfigCNIVersion] ?? DEFAULT_CNI_VERSION],
        ["plugins", plugins],
      ]),
    );

  const cniType = spec.cniType ?? "custom";
  if (cniType === "custom") {
    if (spec.customCNI) {
      try {
        JSON.parse(spec.customCNI);
      } catch (e) {
        throw new RenderError(where, "spec.customCNI", `spec.customCNI is not JSON: ${(e as Error).message}`);
      }
      rendered.config = spec.customCNI;
    }
    return rendered;
  }

  // Chained plugins, then the coordinator: the main plugin (and ifacer, rdma, tuning) go around them.
  const tail: unknown[] = (spec.chainCNIJsonData ?? []).map((text, i) => {
    try {
      return goValueOf(text);
    } catch (e) {
      throw new RenderError(
        where,
        `spec.chainCNIJsonData[${i}]`,
        `spec.chainCNIJsonData[${i}] is not JSON: ${(e as Error).message}`,
      );
    }
  });
  if (spec.enableCoordinator !== false) tail.push(coordinatorPlugin(spec.coordinator));
  const ipam = (pools: SpiderpoolPools | undefined, matchMaster = false) =>
    spec.disableIPAM ? undefined : ipamOf(pools, matchMaster);
  const block = <T>(value: T | undefined, field: string): T => {
    if (value === undefined || value === null) {
      throw new RenderError(
        where,
        `spec.${field}`,
        `spec.${field} is required when spec.cniType is ${cniType}`,
      );
    }
    return value;
  };

  switch (cniType) {
    case "macvlan":
    case "ipvlan": {
      const b = block(spec[cniType], cniType);
      const master = b.master ?? [];
      const vlanID = b.vlanID ?? 0;
      let parent = mainMaster(where, cniType, master, b.bond);
      if (vlanID !== 0) parent = `${parent}.${vlanID}`;
      const main = cniType === "macvlan"
        ? { type: "macvlan", master: parent, mode: "bridge", mtu: b.mtu, ipam: ipam(b.ippools) }
        : { type: "ipvlan", master: parent, mtu: b.mtu, ipam: ipam(b.ippools) };
      const plugins = [main, ...tail];
      if (vlanID !== 0 || master.length >= 2) plugins.unshift(ifacerPlugin(master, vlanID, b.bond));
      rendered.config = conflist(plugins);
      break;
    }
    case "vlan": {
      const b = block(spec.vlan, "vlan");
      const master = b.master ?? [];
      const mode = b.vlanMode ?? "manual";
      const main = {
        type: "vlan",
        master: mainMaster(where, "vlan", master, b.bond),
        vlanMode: mode,
        // With vlanMode auto the VLAN is assigned when the pod is set up; the id is not part of the config.
        vlanId: mode === "manual" ? b.vlanID : undefined,
        mtu: b.mtu,
        ipam: ipam(b.ippools),
      };
      const plugins = [main, ...tail];
      // The vlan plugin makes the VLAN itself; ifacer is only needed to build the bond it sits on.
      if (master.length >= 2) plugins.unshift(ifacerPlugin(master, 0, b.bond));
      rendered.config = conflist(plugins);
      break;
    }
    case "sriov": {
      const b = block(spec.sriov, "sriov");
      if (b.resourceName !== undefined) annotations[RESOURCE_NAME_ANNOTATION] = b.resourceName;
      const main = {
        vlan: b.vlanID,
        min_tx_rate: b.minTxRateMbps,
        max_tx_rate: b.maxTxRateMbps,
        type: "sriov",
        ipam: ipam(b.ippools, b.ippools?.matchMasterSubnet === true),
      };
      const plugins: unknown[] = [main, ...(b.rdmaIsolation ? [{ type: "rdma" }] : []), ...tail];
      // The sriov plugin cannot set the VF's MTU; tuning does, after the coordinator.
      if ((b.mtu ?? 0) > 0) plugins.push({ type: "tuning", mtu: b.mtu });
      rendered.config = conflist(plugins);
      break;
    }
    case "ib-sriov": {
      const b = block(spec.ibsriov, "ibsriov");
      if (b.resourceName !== undefined) annotations[RESOURCE_NAME_ANNOTATION] = b.resourceName;
      const main = {
        type: "ib-sriov",
        pkey: b.pkey,
        link_state: b.linkState,
        rdmaIsolation: b.rdmaIsolation,
        ibKubernetesEnabled: b.enableIbKubernetes,
        ipam: ipam(b.ippools),
      };
      rendered.config = conflist([main, ...tail]);
      break;
    }
    case "ipoib": {
      const b = block(spec.ipoib, "ipoib");
      rendered.config = conflist([
        { type: "ipoib", master: b.master || undefined, ipam: ipam(b.ippools) },
        ...tail,
      ]);
      break;
    }
    case "ovs": {
      const b = block(spec.ovs, "ovs");
      const trunk = (b.trunk ?? []).map((t) => ({ minID: t.minID, maxID: t.maxID, id: t.id }));
      const main = {
        vlan: b.vlan,
        type: "ovs",
        bridge: b.bridge ?? "",
        deviceID: b.deviceID || undefined,
        ipam: ipam(b.ippools),
        trunk: trunk.length > 0 ? trunk : undefined,
      };
      rendered.config = conflist([main, ...tail]);
      if (b.deviceID) annotations[RESOURCE_NAME_ANNOTATION] = `${OVS_RESOURCE_PREFIX}/${b.bridge ?? ""}`;
      break;
    }
    default:
      throw new RenderError(
        where,
        "spec.cniType",
        `spec.cniType ${JSON.stringify(cniType)} is not supported`,
      );
  }
  return rendered;
}

/** The NAD object to create from a rendering. */
export function nadObject(r: RenderedNAD): NetworkAttachmentDefinition {
  const nad: NetworkAttachmentDefinition = {
    apiVersion: NAD_API_VERSION,
    kind: NAD_KIND,
    metadata: {
      name: r.name,
      namespace: r.namespace,
      ...(Object.keys(r.annotations).length > 0 ? { annotations: r.annotations } : {}),
      ownerReferences: [r.ownerReference],
    },
  };
  if (r.config !== undefined) nad.spec = { config: r.config };
  return nad;
}

/** master[0] with one master, the bond's name with several (ifacer builds the bond from them). */
function mainMaster(where: string, block: string, master: string[], bond: BondConfig | undefined): string {
  if (master.length === 1) return master[0];
  if (!bond?.name) {
    throw new RenderError(
      where,
      `spec.${block}.bond`,
      master.length === 0
        ? `spec.${block}.master is empty`
        : `spec.${block}.bond.name is required with ${master.length} master interfaces`,
    );
  }
  return bond.name;
}

function ifacerPlugin(master: string[], vlanID: number, bond: BondConfig | undefined): unknown {
  return {
    vlanID: vlanID === 0 ? undefined : vlanID,
    type: "ifacer",
    interfaces: master.length > 0 ? master : undefined,
    bond: bond ? { name: bond.name, mode: bond.mode, options: bond.options } : undefined,
  };
}

function ipamOf(pools: SpiderpoolPools | undefined, matchMasterSubnet: boolean): unknown {
  const v4 = pools?.ipv4 ?? [];
  const v6 = pools?.ipv6 ?? [];
  return {
    type: "spiderpool",
    default_ipv4_ippool: v4.length > 0 ? v4 : undefined,
    default_ipv6_ippool: v6.length > 0 ? v6 : undefined,
    match_master_subnet: matchMasterSubnet ? true : undefined,
  };
}

/**
 * The coordinator entry: `type` plus each setting the SpiderMultusConfig gives (empty strings and lists are
 * left out, so the SpiderCoordinator's values apply). podRPFilter is always written when set (upstream writes
 * it only when podCIDRType is set; see the project's Decisions).
 */
function coordinatorPlugin(c: CoordinatorSpec | undefined): unknown {
  const nonEmpty = (s: string | undefined) => (s ? s : undefined);
  const list = <T>(l: T[] | undefined) => (l && l.length > 0 ? l : undefined);
  return {
    txQueueLen: c?.txQueueLen,
    vethLinkAddress: nonEmpty(c?.vethLinkAddress),
    vethMTU: c?.vethMTU,
    tunePodRoutes: c?.tunePodRoutes,
    podMACPrefix: nonEmpty(c?.podMACPrefix),
    mode: nonEmpty(c?.mode),
    type: "coordinator",
    podDefaultRouteNic: nonEmpty(c?.podDefaultRouteNIC),
    podRPFilter: c?.podRPFilter,
    hijackCIDR: list(c?.hijackCIDR),
    policyRoutes: list(c?.policyRoutes)?.map((r) => ({ dst: r.dst || undefined, gw: r.gw || undefined })),
  };
}
