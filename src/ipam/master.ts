// `match_master_subnet` (SR-IOV): a pool serves a NIC only when its subnet holds an address of the NIC's
// master, i.e. the physical function (PF) whose virtual function (VF) the pod got. The agent reads three facts
// (the NIC's parent device in the pod's netns, the PF netdevs of that device on the host, the host's
// addresses); these functions decide from them. The filter itself is dropReason's `masterAddresses`.

/** The NIC in the pod as `ip -details -json link show` reports it. */
export interface PodLink {
  ifName: string;
  /** `linkinfo.info_kind`, e.g. `veth`; undefined for a plain device such as a VF. */
  kind?: string;
  /** `parentbus`, e.g. `pci`; undefined for a virtual link. */
  parentBus?: string;
  /** `parentdev`, e.g. `0000:3b:00.2` on PCI. */
  parentDev?: string;
}

/** The master of the NIC: the PF netdevs on the host and their addresses (`ip/prefix`). */
export interface MasterInfo {
  pf: string[];
  addresses: string[];
}

/** The master of a NIC cannot be found, so `match_master_subnet` cannot be honoured; the ADD fails. */
export class MasterInterfaceError extends Error {
  readonly ifName: string;
  constructor(ifName: string, reason: string) {
    super(
      `match_master_subnet: cannot find the master interface of ${
        JSON.stringify(ifName)
      } in the pod: ${reason}`,
    );
    this.name = "MasterInterfaceError";
    this.ifName = ifName;
  }
}

const SRIOV_ONLY =
  "match_master_subnet works with SR-IOV VFs only; remove it from this network's IPAM config";

/**
 * Reads the output of `ip -details -json link show dev <ifName>` (an array with one link). Throws
 * MasterInterfaceError when it holds no such link.
 *
 * ```ts
 * parsePodLink("eth0", '[{"ifname":"eth0","parentbus":"pci","parentdev":"0000:3b:00.2"}]');
 * // { ifName: "eth0", parentBus: "pci", parentDev: "0000:3b:00.2" }
 * ```
 */
export function parsePodLink(ifName: string, json: string): PodLink {
  let links: unknown;
  try {
    links = JSON.parse(json);
  } catch {
    throw new MasterInterfaceError(ifName, `unreadable link details ${JSON.stringify(json.slice(0, 200))}`);
  }
  const link = Array.isArray(links)
    ? links.find((l) => l && typeof l === "object" && (l as { ifname?: unknown }).ifname === ifName)
    : undefined;
  if (link === undefined) {
    throw new MasterInterfaceError(ifName, "no such interface in the pod's network namespace");
  }
  const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  const l = link as { linkinfo?: { info_kind?: unknown }; parentbus?: unknown; parentdev?: unknown };
  return {
    ifName,
    kind: str(l.linkinfo?.info_kind),
    parentBus: str(l.parentbus),
    parentDev: str(l.parentdev),
  };
}

/**
 * The PCI address of the VF behind `link`, whose PF the agent then looks up on the host. Throws
 * MasterInterfaceError for a NIC that is not on PCI (a veth, a virtio device, ...).
 */
export function vfAddress(link: PodLink): string {
  if (link.parentBus === undefined || link.parentDev === undefined) {
    const what = link.kind ? `a ${link.kind} interface` : "a virtual interface";
    throw new MasterInterfaceError(link.ifName, `it is ${what} with no PCI device; ${SRIOV_ONLY}`);
  }
  if (link.parentBus !== "pci") {
    throw new MasterInterfaceError(
      link.ifName,
      `it sits on bus ${link.parentBus} (${link.parentDev}), not PCI; ${SRIOV_ONLY}`,
    );
  }
  if (!/^[0-9a-fA-F]{4,}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$/.test(link.parentDev)) {
    throw new MasterInterfaceError(
      link.ifName,
      `its PCI address ${JSON.stringify(link.parentDev)} is malformed`,
    );
  }
  return link.parentDev;
}

/**
 * The master of `link` from what the host shows: `pfNetdevs` are the entries of
 * `/sys/bus/pci/devices/<vf>/physfn/net` (undefined when the device has no `physfn`: not a VF), `host` the
 * host's interface addresses. Throws MasterInterfaceError when there is no PF netdev.
 *
 * ```ts
 * masterOf(link, ["ens1f0"], [{ name: "ens1f0", cidr: "198.51.100.7/24" }]);
 * // { pf: ["ens1f0"], addresses: ["198.51.100.7/24"] }
 * ```
 */
export function masterOf(
  link: PodLink,
  pfNetdevs: readonly string[] | undefined,
  host: readonly { name: string; cidr: string }[],
): MasterInfo {
  const vf = vfAddress(link);
  if (pfNetdevs === undefined) {
    throw new MasterInterfaceError(
      link.ifName,
      `PCI device ${vf} is not a VF (it has no physical function); ${SRIOV_ONLY}`,
    );
  }
  if (pfNetdevs.length === 0) {
    throw new MasterInterfaceError(
      link.ifName,
      `the PF of VF ${vf} has no network interface on the host (bound to another driver?)`,
    );
  }
  const pf = [...pfNetdevs].sort();
  const addresses = host.filter((h) => pf.includes(h.name)).map((h) => h.cidr);
  return { pf, addresses: [...new Set(addresses)] };
}
