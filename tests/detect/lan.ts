// A small Ethernet segment for detection tests: a bridge in a namespace of its own and member namespaces, each
// with an `eth0` on the bridge, all with unique names and removed on dispose.

import { addNetns, delNetns, ip, netnsPath, shortId } from "../e2e/netns.ts";

export interface Lan extends AsyncDisposable {
  /** The namespace holding the bridge. */
  hub: string;
  /**
   * Adds a member namespace whose `eth0` is on the bridge (up unless `down`), with these addresses. With
   * `portDown` the bridge's end of the cable stays down: `eth0` has no carrier until `port` is set up.
   */
  member(role: string, addrs?: string[], opts?: { down?: boolean; portDown?: boolean }): Promise<Member>;
}

export interface Member {
  ns: string;
  path: string;
  mac: string;
  /** The bridge's end of the member's cable, in the hub namespace. */
  port: string;
}

export async function lan(prefix: string): Promise<Lan> {
  const id = shortId(6);
  const hub = `${prefix}-${id}-hub`;
  const names: string[] = [hub];
  await addNetns(hub);
  await ip("-n", hub, "link", "add", "br0", "type", "bridge");
  await ip("-n", hub, "link", "set", "br0", "up");
  let n = 0;
  return {
    hub,
    async member(role, addrs = [], opts = {}) {
      const ns = `${prefix}-${id}-${role}`;
      await addNetns(ns);
      names.push(ns);
      const port = `p${n++}`;
      await ip("-n", hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns);
      await ip("-n", hub, "link", "set", port, "master", "br0", ...(opts.portDown ? [] : ["up"]));
      for (const a of addrs) {
        // No duplicate address detection: an address still tentative would not answer (and would take our
        // probe for a competing claim).
        await ip("-n", ns, "addr", "add", a, "dev", "eth0", ...(a.includes(":") ? ["nodad"] : []));
      }
      if (!opts.down) await ip("-n", ns, "link", "set", "eth0", "up");
      const mac = JSON.parse(await ip("-n", ns, "-j", "link", "show", "eth0"))[0].address as string;
      return { ns, path: netnsPath(ns), mac, port };
    },
    async [Symbol.asyncDispose]() {
      for (const name of names.reverse()) await delNetns(name);
    },
  };
}

/** The neighbour entry for `addr` in namespace `ns` (`ip neigh show`), "" when there is none. */
export async function neighbour(ns: string, addr: string): Promise<string> {
  return (await ip("-n", ns, "neigh", "show", addr)).trim();
}
