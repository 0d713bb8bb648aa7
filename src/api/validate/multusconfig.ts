// Admission validation of SpiderMultusConfig, run after defaultMultusConfig: exactly the block of the chosen
// cniType, that block's required fields and ranges, the IPAM pool names, the coordinator block, chained and
// custom CNI JSON, and the annotations that name or version the generated NetworkAttachmentDefinition.

import { ANNOTATION, CNI_TYPES, CNI_VERSIONS, DEFAULT_CNI_TYPE, KIND, MAX_VLAN_ID } from "../constants.ts";
import type {
  BondConfig,
  MultusCNIConfigSpec,
  ObjectMeta,
  SpiderMultusConfig,
  SpiderpoolPools,
} from "../types.ts";
import { type FieldError, Problems } from "./common.ts";
import { checkCoordinatorSpec } from "./coordinator.ts";
import { interfaceNameProblem, isDNS1123Subdomain, poolNameProblem } from "./names.ts";

/** The spec field holding each cniType's block. */
const BLOCK_OF: Record<string, keyof MultusCNIConfigSpec | undefined> = {
  macvlan: "macvlan",
  ipvlan: "ipvlan",
  vlan: "vlan",
  sriov: "sriov",
  "ib-sriov": "ibsriov",
  ipoib: "ipoib",
  ovs: "ovs",
  custom: undefined,
};
const BLOCKS = ["macvlan", "ipvlan", "vlan", "sriov", "ibsriov", "ipoib", "ovs"] as const;

/** A NetworkAttachmentDefinition that already exists, as far as validation needs it. */
export interface ExistingNAD {
  metadata: Pick<ObjectMeta, "name" | "namespace" | "ownerReferences">;
}

/** What SpiderMultusConfig validation needs from the cluster. */
export interface MultusConfigValidationContext {
  /** NetworkAttachmentDefinitions of the SpiderMultusConfig's namespace. */
  nads?: readonly ExistingNAD[];
}

/** The name of the NetworkAttachmentDefinition generated for `smc`: its cr-name annotation, else its own name. */
export function multusConfigNADName(smc: SpiderMultusConfig): string {
  return smc.metadata?.annotations?.[ANNOTATION.multusConfigCRName] || (smc.metadata?.name ?? "");
}

/**
 * Validates a SpiderMultusConfig on CREATE (`old` undefined) or UPDATE, after defaultMultusConfig. A NAD of
 * the same name owned by a different SpiderMultusConfig is a conflict; an unowned one will be adopted.
 */
export function validateMultusConfig(
  smc: SpiderMultusConfig,
  old?: SpiderMultusConfig,
  ctx: MultusConfigValidationContext = {},
): FieldError[] {
  const p = new Problems(KIND.multusConfig, smc.metadata?.name);
  const spec = smc.spec ?? {};
  const cniType = spec.cniType ?? DEFAULT_CNI_TYPE;
  checkAnnotations(p, smc, old, cniType);
  checkNADConflict(p, smc, ctx.nads ?? []);
  if (!(CNI_TYPES as readonly string[]).includes(cniType)) {
    p.add(
      "spec.cniType",
      `spec.cniType ${JSON.stringify(cniType)} is not supported; use one of ${CNI_TYPES.join(", ")}`,
    );
    return p.errors;
  }
  const want = BLOCK_OF[cniType];
  for (const b of BLOCKS) {
    if (b !== want && spec[b] !== undefined && spec[b] !== null) {
      p.add(
        `spec.${b}`,
        `spec.${b} is set but spec.cniType is ${
          JSON.stringify(cniType)
        }; remove spec.${b} or change spec.cniType`,
      );
    }
  }
  if (want !== undefined && (spec[want] === undefined || spec[want] === null)) {
    p.add(`spec.${want}`, `spec.${want} is required when spec.cniType is ${JSON.stringify(cniType)}`);
  }

  switch (cniType) {
    case "macvlan":
    case "ipvlan":
    case "vlan": {
      const b = spec[cniType];
      if (!b) break;
      const path = `spec.${cniType}`;
      checkMasters(p, path, b.master, b.bond);
      checkVlanID(p, `${path}.vlanID`, b.vlanID);
      checkMTU(p, `${path}.mtu`, b.mtu);
      checkPools(p, `${path}.ippools`, b.ippools, false);
      if (cniType === "vlan") {
        const v = spec.vlan!;
        const mode = v.vlanMode ?? "manual";
        if (mode !== "manual" && mode !== "auto") {
          p.add(
            `${path}.vlanMode`,
            `${path}.vlanMode ${JSON.stringify(mode)} is not supported; use manual or auto`,
          );
        } else if (mode === "manual" && (v.vlanID === undefined || v.vlanID === null)) {
          p.add(
            `${path}.vlanID`,
            `${path}.vlanID is required with vlanMode manual; set the VLAN id (1-${MAX_VLAN_ID})`,
          );
        } else if (mode === "auto" && v.vlanID !== undefined && v.vlanID !== null) {
          p.add(
            `${path}.vlanID`,
            `${path}.vlanID must not be set with vlanMode auto (the VLAN is assigned automatically); remove it or ` +
              `use vlanMode manual`,
          );
        }
      }
      break;
    }
    case "sriov": {
      const b = spec.sriov;
      if (!b) break;
      requireString(p, "spec.sriov.resourceName", b.resourceName, "the SR-IOV device plugin resource name");
      checkVlanID(p, "spec.sriov.vlanID", b.vlanID);
      checkMTU(p, "spec.sriov.mtu", b.mtu);
      for (const f of ["minTxRateMbps", "maxTxRateMbps"] as const) {
        const v = b[f];
        if (v !== undefined && v !== null && (!Number.isInteger(v) || v < 0)) {
          p.add(`spec.sriov.${f}`, `spec.sriov.${f} ${v} is negative; use 0 (no limit) or a rate in Mbps`);
        }
      }
      if ((b.maxTxRateMbps ?? 0) > 0 && (b.minTxRateMbps ?? 0) > (b.maxTxRateMbps ?? 0)) {
        p.add(
          "spec.sriov.minTxRateMbps",
          `spec.sriov.minTxRateMbps ${b.minTxRateMbps} exceeds maxTxRateMbps ${b.maxTxRateMbps}; lower it or ` +
            `raise the maximum`,
        );
      }
      checkPools(p, "spec.sriov.ippools", b.ippools, true);
      break;
    }
    case "ib-sriov": {
      const b = spec.ibsriov;
      if (!b) break;
      requireString(p, "spec.ibsriov.resourceName", b.resourceName, "the InfiniBand SR-IOV resource name");
      if (b.linkState !== undefined && !["auto", "enable", "disable"].includes(b.linkState)) {
        p.add(
          "spec.ibsriov.linkState",
          `spec.ibsriov.linkState ${
            JSON.stringify(b.linkState)
          } is not supported; use auto, enable or disable`,
        );
      }
      checkPools(p, "spec.ibsriov.ippools", b.ippools, false);
      break;
    }
    case "ipoib": {
      const b = spec.ipoib;
      if (!b) break;
      if (requireString(p, "spec.ipoib.master", b.master, "the host IPoIB interface")) {
        const problem = interfaceNameProblem(b.master!);
        if (problem) p.add("spec.ipoib.master", `spec.ipoib.master ${problem}`);
      }
      checkPools(p, "spec.ipoib.ippools", b.ippools, false);
      break;
    }
    case "ovs": {
      const b = spec.ovs;
      if (!b) break;
      requireString(p, "spec.ovs.bridge", b.bridge, "the OVS bridge name");
      checkVlanID(p, "spec.ovs.vlan", b.vlan);
      (b.trunk ?? []).forEach((t, i) => {
        const at = `spec.ovs.trunk[${i}]`;
        for (const f of ["minID", "maxID", "id"] as const) checkVlanID(p, `${at}.${f}`, t[f]);
        if (t.minID !== undefined && t.maxID !== undefined && t.minID > t.maxID) {
          p.add(`${at}`, `${at}: minID ${t.minID} is greater than maxID ${t.maxID}; swap them`);
        }
      });
      checkPools(p, "spec.ovs.ippools", b.ippools, false);
      break;
    }
    case "custom": {
      const text = spec.customCNI;
      if (text !== undefined && text !== null && text !== "") {
        let v: unknown;
        try {
          v = JSON.parse(text);
        } catch (e) {
          p.add(
            "spec.customCNI",
            `spec.customCNI is not valid JSON (${(e as Error).message}); give a CNI configuration`,
          );
          break;
        }
        if (typeof v !== "object" || v === null || Array.isArray(v)) {
          p.add("spec.customCNI", `spec.customCNI must be a JSON object (a CNI configuration or conflist)`);
        }
      }
      break;
    }
  }

  if (cniType !== "custom" && spec.coordinator !== undefined && spec.coordinator !== null) {
    checkCoordinatorSpec(p, "spec.coordinator", spec.coordinator, false);
  }
  (spec.chainCNIJsonData ?? []).forEach((text, i) => {
    const at = `spec.chainCNIJsonData[${i}]`;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      p.add(at, `${at} is not valid JSON (${(e as Error).message}); give one CNI plugin configuration`);
      return;
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      p.add(at, `${at} must be a JSON object, one CNI plugin configuration like {"type":"tuning"}`);
    } else if (
      typeof (v as Record<string, unknown>).type !== "string" || (v as Record<string, unknown>).type === ""
    ) {
      p.add(at, `${at} has no "type"; name the CNI plugin, e.g. {"type":"tuning"}`);
    }
  });
  return p.errors;
}

function checkAnnotations(
  p: Problems,
  smc: SpiderMultusConfig,
  old: SpiderMultusConfig | undefined,
  cniType: string,
): void {
  const anno = smc.metadata?.annotations ?? {};
  const crKey = ANNOTATION.multusConfigCRName;
  const crName = anno[crKey];
  const path = (k: string) => `metadata.annotations[${JSON.stringify(k)}]`;
  if (crName !== undefined && !isDNS1123Subdomain(crName)) {
    p.add(
      path(crKey),
      `annotation ${crKey} ${JSON.stringify(crName)} is not a valid NetworkAttachmentDefinition name; use ` +
        `lower-case letters, digits, "-" and "." (at most 253 characters)`,
    );
  }
  if (old !== undefined) {
    const before = old.metadata?.annotations?.[crKey];
    if (before !== crName) {
      p.add(
        path(crKey),
        before === undefined
          ? `annotation ${crKey} cannot be added after creation; delete and recreate the ${KIND.multusConfig}`
          : `annotation ${crKey} cannot change (was ${JSON.stringify(before)}); delete and recreate the ` +
            `${KIND.multusConfig} to rename its NetworkAttachmentDefinition`,
      );
    }
  }
  const version = anno[ANNOTATION.multusConfigCNIVersion];
  if (version !== undefined && !CNI_VERSIONS.includes(version)) {
    p.add(
      path(ANNOTATION.multusConfigCNIVersion),
      `annotation ${ANNOTATION.multusConfigCNIVersion} ${JSON.stringify(version)} is not a supported CNI ` +
        `version; use one of ${CNI_VERSIONS.join(", ")}`,
    );
  }
  const confName = anno[ANNOTATION.cniConfigName];
  if (confName !== undefined && confName.trim() === "") {
    p.add(
      path(ANNOTATION.cniConfigName),
      `annotation ${ANNOTATION.cniConfigName} is empty; give a CNI network name or remove the annotation`,
    );
  }
  const spec = smc.spec ?? {};
  for (const key of [ANNOTATION.rdmaResourceInject, ANNOTATION.networkResourceInject]) {
    if (anno[key] === undefined) continue;
    if (cniType === "ovs" || cniType === "custom") {
      p.add(path(key), `annotation ${key} is not supported for cniType ${cniType}; remove it`);
      continue;
    }
    const { resource, pools, field } = resourceOf(spec, cniType);
    const hasPools = (pools?.ipv4 ?? []).length + (pools?.ipv6 ?? []).length > 0;
    if (key === ANNOTATION.rdmaResourceInject) {
      if (!resource) {
        p.add(path(key), `annotation ${key} needs ${field} to be set, so pods can be given the resource`);
      }
      if (!hasPools) {
        p.add(
          path(key),
          `annotation ${key} needs at least one pool in the ippools of spec.${BLOCK_OF[cniType]}`,
        );
      }
    } else if (resource && !hasPools) {
      p.add(
        path(key),
        `annotation ${key} needs at least one pool in the ippools of spec.${BLOCK_OF[cniType]}`,
      );
    }
  }
}

function checkNADConflict(p: Problems, smc: SpiderMultusConfig, nads: readonly ExistingNAD[]): void {
  const name = multusConfigNADName(smc);
  const ns = smc.metadata?.namespace;
  for (const nad of nads) {
    if (
      nad.metadata.name !== name ||
      (ns !== undefined && nad.metadata.namespace !== undefined && nad.metadata.namespace !== ns)
    ) {
      continue;
    }
    const owner = (nad.metadata.ownerReferences ?? []).find((r) =>
      r.controller && r.kind === KIND.multusConfig
    );
    if (owner !== undefined && owner.name !== smc.metadata?.name) {
      p.add(
        "metadata.name",
        `NetworkAttachmentDefinition ${JSON.stringify(name)} already belongs to ${KIND.multusConfig} ` +
          `${
            JSON.stringify(owner.name)
          }; choose another name (or ${ANNOTATION.multusConfigCRName} annotation)`,
      );
    }
  }
}

function resourceOf(
  spec: MultusCNIConfigSpec,
  cniType: string,
): { resource: string | undefined; pools: SpiderpoolPools | undefined; field: string } {
  switch (cniType) {
    case "macvlan":
    case "ipvlan":
    case "vlan": {
      const b = spec[cniType];
      return { resource: b?.rdmaResourceName, pools: b?.ippools, field: `spec.${cniType}.rdmaResourceName` };
    }
    case "sriov":
      return {
        resource: spec.sriov?.resourceName,
        pools: spec.sriov?.ippools,
        field: "spec.sriov.resourceName",
      };
    case "ib-sriov":
      return {
        resource: spec.ibsriov?.resourceName,
        pools: spec.ibsriov?.ippools,
        field: "spec.ibsriov.resourceName",
      };
    case "ipoib":
      return { resource: spec.ipoib?.master, pools: spec.ipoib?.ippools, field: "spec.ipoib.master" };
    default:
      return { resource: undefined, pools: undefined, field: "a resource name" };
  }
}

function requireString(p: Problems, path: string, v: string | undefined, what: string): boolean {
  if (v === undefined || v === null || v.trim() === "") {
    p.add(path, `${path} is required; set ${what}`);
    return false;
  }
  return true;
}

function checkMasters(
  p: Problems,
  path: string,
  master: string[] | undefined,
  bond: BondConfig | undefined,
): void {
  const list = master ?? [];
  if (list.length === 0) {
    p.add(`${path}.master`, `${path}.master is empty; name at least one host interface, e.g. ["ens192"]`);
    return;
  }
  list.forEach((m, i) => {
    const problem = interfaceNameProblem(m);
    if (problem) p.add(`${path}.master[${i}]`, `${path}.master[${i}] ${problem}`);
  });
  if (new Set(list).size !== list.length) {
    p.add(`${path}.master`, `${path}.master lists an interface twice; list each host interface once`);
  }
  if (list.length >= 2 && (bond === undefined || bond === null || !bond.name)) {
    p.add(
      `${path}.bond`,
      `${path}.bond.name is required with ${list.length} master interfaces; name the bond to create, e.g. ` +
        `{"name":"bond0","mode":1}`,
    );
  }
  if (bond !== undefined && bond !== null) {
    if (bond.name) {
      const problem = interfaceNameProblem(bond.name);
      if (problem) p.add(`${path}.bond.name`, `${path}.bond.name ${problem}`);
    }
    if (
      bond.mode === undefined || bond.mode === null || !Number.isInteger(bond.mode) || bond.mode < 0 ||
      bond.mode > 6
    ) {
      p.add(`${path}.bond.mode`, `${path}.bond.mode ${bond.mode} is not a bonding mode; use 0 to 6`);
    }
  }
}

function checkVlanID(p: Problems, path: string, v: number | undefined): void {
  if (v === undefined || v === null) return;
  if (!Number.isInteger(v) || v < 0 || v > MAX_VLAN_ID) {
    p.add(path, `${path} ${v} is not a VLAN id; use 0 to ${MAX_VLAN_ID}`);
  }
}

function checkMTU(p: Problems, path: string, v: number | undefined): void {
  if (v === undefined || v === null) return;
  if (!Number.isInteger(v) || v < 0) {
    p.add(path, `${path} ${v} is negative; use 0 (kernel default) or an MTU`);
  }
}

function checkPools(
  p: Problems,
  path: string,
  pools: SpiderpoolPools | undefined,
  allowMatchMaster: boolean,
): void {
  if (pools === undefined || pools === null) return;
  for (const fam of ["ipv4", "ipv6"] as const) {
    (pools[fam] ?? []).forEach((name, i) => {
      const problem = poolNameProblem(name);
      if (problem) p.add(`${path}.${fam}[${i}]`, `${path}.${fam}[${i}]: ${problem}`);
    });
  }
  if (pools.matchMasterSubnet && !allowMatchMaster) {
    p.add(
      `${path}.matchMasterSubnet`,
      `${path}.matchMasterSubnet is only supported for cniType sriov; remove it`,
    );
  }
}
