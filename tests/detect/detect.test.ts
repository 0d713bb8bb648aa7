// Detection on the wire, against the kernel's own ARP and neighbour discovery: a namespace holding the address
// answers the probe, a namespace holding the gateway answers the request, and nobody answers for an address or
// a gateway that does not exist. No agent: `detect` is called directly on a bridge of scratch namespaces.

import assert from "node:assert/strict";
import { detect, DETECTION_POLICY } from "../../src/net/detect.ts";
import { isNoSuchLink } from "../../src/net/packet.ts";
import { ip } from "../e2e/netns.ts";
import { lan, neighbour } from "./lan.ts";

const outcomes = (r: Awaited<ReturnType<typeof detect>>) =>
  r.checks.map((c) => [c.kind, c.target, c.outcome?.kind, (c.outcome as { mac?: string }).mac]);

Deno.test("detect: a host holding the address answers the probe, IPv4 and IPv6; the gateway is not asked", async () => {
  await using net = await lan("dta");
  const pod = await net.member("pod");
  const holder = await net.member("hold", ["192.0.2.11/24", "2001:db8:7::11/64"]);
  const gw = await net.member("gw", ["192.0.2.1/24", "2001:db8:7::1/64"]);
  const report = await detect(pod.path, "eth0", [
    { family: 4, ip: "192.0.2.11", conflict: true, gateway: "192.0.2.1" },
    { family: 6, ip: "2001:db8:7::11", conflict: true, gateway: "2001:db8:7::1" },
  ]);
  assert.deepEqual(outcomes(report), [
    ["conflict", "192.0.2.11", "conflict", holder.mac],
    ["conflict", "2001:db8:7::11", "conflict", holder.mac],
  ]);
  // Conflict checks come first and a conflict ends detection: the gateway never cached the pod's MAC for an
  // address that belongs to someone else (upstream #4475).
  assert.equal(await neighbour(gw.ns, "192.0.2.11"), "");
  assert.equal(await neighbour(gw.ns, "2001:db8:7::11"), "");
});

Deno.test("detect: a free address and a present gateway pass, IPv4 and IPv6", async () => {
  await using net = await lan("dtb");
  const pod = await net.member("pod");
  await net.member("hold", ["192.0.2.11/24", "2001:db8:7::11/64"]);
  const gw = await net.member("gw", ["192.0.2.1/24", "2001:db8:7::1/64"]);
  const report = await detect(pod.path, "eth0", [
    { family: 4, ip: "192.0.2.12", conflict: true, gateway: "192.0.2.1" },
    { family: 6, ip: "2001:db8:7::12", conflict: true, gateway: "2001:db8:7::1" },
  ]);
  assert.deepEqual(outcomes(report), [
    ["conflict", "192.0.2.12", "free", undefined],
    ["conflict", "2001:db8:7::12", "free", undefined],
    ["gateway", "192.0.2.1", "reachable", gw.mac],
    ["gateway", "2001:db8:7::1", "reachable", gw.mac],
  ]);
  assert.equal(report.broughtUp, false);
  // The gateway learnt the pod's address from the request, as it would from the pod's first packet.
  assert.match(await neighbour(gw.ns, "192.0.2.12"), new RegExp(report.link.mac));
});

Deno.test("detect: a gateway nobody holds is unreachable after 3 requests, IPv4 and IPv6", async () => {
  await using net = await lan("dtc");
  const pod = await net.member("pod");
  await net.member("peer", ["192.0.2.1/24", "2001:db8:7::1/64"]);
  const report = await detect(pod.path, "eth0", [
    { family: 4, ip: "192.0.2.12", conflict: false, gateway: "192.0.2.254" },
    { family: 6, ip: "2001:db8:7::12", conflict: false, gateway: "2001:db8:7::fe" },
  ]);
  for (const c of report.checks) {
    assert.equal(c.outcome?.kind, "unreachable", `${c.target}: ${JSON.stringify(c.outcome)}`);
    assert.equal((c.outcome as { probes: number }).probes, 3);
  }
});

Deno.test("detect: a link that is down is set up first, then checked", async () => {
  await using net = await lan("dtd");
  const pod = await net.member("pod", [], { down: true });
  const gw = await net.member("gw", ["198.51.100.1/24"]);
  const report = await detect(pod.path, "eth0", [
    { family: 4, ip: "198.51.100.7", conflict: true, gateway: "198.51.100.1" },
  ]);
  assert.equal(report.broughtUp, true);
  assert.deepEqual(outcomes(report), [
    ["conflict", "198.51.100.7", "free", undefined],
    ["gateway", "198.51.100.1", "reachable", gw.mac],
  ]);
  assert.match(await ip("-n", pod.ns, "link", "show", "eth0"), /[<,]UP[,>]/);
});

Deno.test("detect: a namespace without the link says so (ENODEV), for the plugin to skip detection", async () => {
  await using net = await lan("dte");
  const pod = await net.member("pod");
  await assert.rejects(
    () => detect(pod.path, "net1", [{ family: 4, ip: "192.0.2.5", conflict: true }]),
    (e) => isNoSuchLink(e) && /look up link net1/.test((e as Error).message),
  );
});

Deno.test("detect: probes wait until the link carries frames; one sent before its carrier came up would be lost", async () => {
  await using net = await lan("dte");
  // The pod's eth0 is up but its cable is not yet plugged in: the kernel drops frames sent on it until the
  // carrier comes up and the link is running, as for a pod veth whose host end is set up a moment later.
  const pod = await net.member("pod", [], { portDown: true });
  const holder = await net.member("hold", ["192.0.2.21/24"]);
  const plug = new Deno.Command("sh", {
    args: ["-c", `sleep 0.3; ip -n ${net.hub} link set ${pod.port} up`],
  }).spawn();
  try {
    const started = performance.now();
    const report = await detect(pod.path, "eth0", [{ family: 4, ip: "192.0.2.21", conflict: true }]);
    assert.deepEqual(outcomes(report), [["conflict", "192.0.2.21", "conflict", holder.mac]]);
    assert.ok(report.waitedForLinkMs >= 200, `waited ${report.waitedForLinkMs} ms for the link`);
    assert.ok(performance.now() - started >= 250);
  } finally {
    assert.ok((await plug.status).success);
  }
});

Deno.test("detect: a link that never gets a carrier is still probed after the wait, as before", async () => {
  await using net = await lan("dtf");
  const pod = await net.member("pod", [], { portDown: true });
  const report = await detect(pod.path, "eth0", [{ family: 4, ip: "192.0.2.22", conflict: true }], [], {
    ...DETECTION_POLICY,
    linkWaitMs: 200,
  });
  assert.deepEqual(outcomes(report), [["conflict", "192.0.2.22", "free", undefined]]);
  assert.ok(report.waitedForLinkMs >= 200 && report.waitedForLinkMs < 1_000, `${report.waitedForLinkMs} ms`);
  assert.equal(report.linkRunning, false);
});
