// Network namespaces for end-to-end runs: one per simulated node (its bridge lives there, so nothing is added
// to the machine's own namespace) and one per pod sandbox. Thin wrappers over iproute2 with bounded waits.

const decoder = new TextDecoder();
const IP_TIMEOUT_MS = 20_000;

/** Runs `ip ARGS`; throws with its stderr when it fails or takes longer than 20 s. */
export async function ip(...args: string[]): Promise<string> {
  const out = await new Deno.Command("ip", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(IP_TIMEOUT_MS),
  }).output();
  if (!out.success) throw new Error(`ip ${args.join(" ")}: ${decoder.decode(out.stderr).trim()}`);
  return decoder.decode(out.stdout);
}

/** A short random id usable in interface and namespace names. */
export function shortId(length = 6): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, length);
}

/** Path of a named namespace, as a runtime passes it in CNI_NETNS. */
export function netnsPath(name: string): string {
  return `/var/run/netns/${name}`;
}

/** Creates the named namespace with its loopback up. */
export async function addNetns(name: string): Promise<string> {
  await ip("netns", "add", name);
  await ip("-n", name, "link", "set", "lo", "up");
  return netnsPath(name);
}

/** Deletes the named namespace (and every link in it); absent is fine. */
export async function delNetns(name: string): Promise<void> {
  await ip("netns", "del", name).catch(() => {});
}

export interface Address {
  family: "inet" | "inet6";
  local: string;
  prefixlen: number;
}

/** Global addresses of `dev` inside namespace `ns` as `IP/prefix`; [] when the link does not exist. */
export async function addressesIn(ns: string, dev = "eth0", family?: 4 | 6): Promise<string[]> {
  let text: string;
  try {
    text = await ip("-n", ns, "-j", "addr", "show", "dev", dev);
  } catch (err) {
    if (/does not exist|Cannot find device/i.test((err as Error).message)) return [];
    throw err;
  }
  const links = JSON.parse(text || "[]") as { addr_info?: (Address & { scope?: string })[] }[];
  return links.flatMap((l) => l.addr_info ?? [])
    .filter((a) => a.scope !== "link" && a.scope !== "host")
    .filter((a) => family === undefined || a.family === (family === 4 ? "inet" : "inet6"))
    .map((a) => `${a.local}/${a.prefixlen}`);
}

/** Link names inside namespace `ns`. */
export async function linksIn(ns: string): Promise<string[]> {
  const links = JSON.parse(await ip("-n", ns, "-j", "link", "show") || "[]") as { ifname: string }[];
  return links.map((l) => l.ifname);
}

/**
 * One ping from inside `ns` to `target` (1 s wait); true when it was answered. Throws when `ping` is not
 * installed (Debian package iputils-ping), so that a missing tool is not mistaken for a network failure.
 */
export async function ping(ns: string, target: string): Promise<boolean> {
  const out = await new Deno.Command("ip", {
    args: ["netns", "exec", ns, "ping", target.includes(":") ? "-6" : "-4", "-c1", "-W1", target],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(10_000),
  }).output();
  const stderr = decoder.decode(out.stderr);
  if (/exec of "ping" failed/.test(stderr)) {
    throw new Error(`ping is not installed (Debian package iputils-ping): ${stderr.trim()}`);
  }
  return out.success;
}
