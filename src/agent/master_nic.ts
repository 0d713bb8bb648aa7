// The I/O behind `match_master_subnet`: the NIC's parent device as seen in the pod's network namespace (one
// `nsenter --net=<path> ip -details -json link show` child, so the agent's own threads never change namespace
// and its event loop keeps serving), the PF netdevs of that device in the host's sysfs, and the host's
// addresses. The decisions are src/ipam/master.ts.

import { type MasterInfo, MasterInterfaceError, masterOf, parsePodLink, vfAddress } from "../ipam/master.ts";

const LOOKUP_TIMEOUT_MS = 5_000;

const SYS_PCI = "/sys/bus/pci/devices";

/**
 * The master (PF) of `ifName` in the pod's network namespace `netns` (a path, as CNI passes it) and the PF's
 * addresses on the host. Throws MasterInterfaceError naming the NIC and the reason.
 */
export async function lookupMaster(netns: string, ifName: string): Promise<MasterInfo> {
  if (!netns.startsWith("/")) {
    throw new MasterInterfaceError(ifName, `the network namespace ${JSON.stringify(netns)} is not a path`);
  }
  const link = parsePodLink(ifName, await linkDetails(netns, ifName));
  const vf = vfAddress(link);
  const sys = SYS_PCI;
  let pf: string[] | undefined;
  try {
    await Deno.stat(`${sys}/${vf}/physfn`);
    pf = [];
    try {
      for await (const e of Deno.readDir(`${sys}/${vf}/physfn/net`)) pf.push(e.name);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new MasterInterfaceError(ifName, `cannot read ${sys}/${vf}: ${(err as Error).message}`);
    }
  }
  const host = Deno.networkInterfaces().map((i) => ({ name: i.name, cidr: i.cidr }));
  return masterOf(link, pf, host);
}

async function linkDetails(netns: string, ifName: string): Promise<string> {
  const cmd = new Deno.Command("nsenter", {
    args: [`--net=${netns}`, "--", "ip", "-details", "-json", "link", "show", "dev", ifName],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    signal: AbortSignal.timeout(LOOKUP_TIMEOUT_MS),
  });
  let out: Deno.CommandOutput;
  try {
    out = await cmd.output();
  } catch (err) {
    throw new MasterInterfaceError(ifName, `cannot run nsenter/ip: ${(err as Error).message}`);
  }
  const stderr = new TextDecoder().decode(out.stderr).trim();
  if (!out.success) {
    const why = /does not exist|Cannot find device/i.test(stderr)
      ? "no such interface in the pod's network namespace"
      : `reading it in ${netns} failed: ${stderr || `exit code ${out.code}`}`;
    throw new MasterInterfaceError(ifName, why);
  }
  return new TextDecoder().decode(out.stdout);
}
