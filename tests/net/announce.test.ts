// Address announcements on the wire: after a link's MAC changes, a gratuitous ARP and an unsolicited neighbour
// advertisement update the neighbour caches of the other hosts on the link, without any other traffic.

import assert from "node:assert/strict";
import { announce } from "../../src/net/arp.ts";
import { nsExec, scratchNamespaces } from "./helpers.ts";
import { ip } from "../e2e/netns.ts";

Deno.test("announce: neighbours replace the MAC they cached for both an IPv4 and an IPv6 address", async () => {
  await using s = await scratchNamespaces("ann", 2);
  const [pod, peer] = s.names;
  await ip("-n", pod, "link", "add", "name", "a0", "type", "veth", "peer", "name", "b0", "netns", s.paths[1]);
  for (
    const [ns, dev, v4, v6] of [[pod, "a0", "192.0.2.10/24", "2001:db8::10/64"], [
      peer,
      "b0",
      "192.0.2.1/24",
      "2001:db8::1/64",
    ]]
  ) {
    await ip("-n", ns, "addr", "add", v4, "dev", dev);
    await ip("-n", ns, "addr", "add", v6, "dev", dev, "nodad");
    await ip("-n", ns, "link", "set", dev, "up");
  }
  await nsExec(peer, "ping", "-c1", "-W2", "192.0.2.10");
  await nsExec(peer, "ping", "-6", "-c1", "-W2", "2001:db8::10");
  const old = JSON.parse(await ip("-n", pod, "-j", "link", "show", "a0"))[0].address;
  assert.match(await ip("-n", peer, "neigh", "show", "192.0.2.10"), new RegExp(old));
  // The kernel keeps a learned entry for a second before it lets an ARP packet change it.
  await new Promise((r) => setTimeout(r, 1100));
  await ip("-n", pod, "link", "set", "a0", "address", "0a:1b:c0:00:02:0a");
  assert.equal(announce(s.paths[0], "a0", ["192.0.2.10", "2001:db8::10"]), 2);
  for (const target of ["192.0.2.10", "2001:db8::10"]) {
    let shown = "";
    for (let i = 0; i < 20 && !shown.includes("0a:1b:c0:00:02:0a"); i++) {
      shown = await ip("-n", peer, "neigh", "show", target);
      if (!shown.includes("0a:1b")) await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(shown, /lladdr 0a:1b:c0:00:02:0a/, `${target}: ${shown}`);
  }
});
