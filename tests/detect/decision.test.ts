// The decision logic of IP-conflict and gateway detection: which addresses the plugin checks, which frames count
// as a claim or an answer, and the timing of §4.9 (100 ms windows, 3 attempts, 1 s / 500 ms caps), all on
// synthetic frames and times.

import assert from "node:assert/strict";
import { arpProbe, arpRequest, gratuitousArp } from "../../src/net/arp.ts";
import {
  Check,
  DETECTION_POLICY,
  type FrameLink,
  type Outcome,
  planChecks,
  runChecks,
  waitRunning,
} from "../../src/net/detect.ts";
import { ETH_P_ARP, ETH_P_IPV6, ethernet, type ReceivedFrame } from "../../src/net/packet.ts";
import { neighbourSolicitation, unsolicitedNA } from "../../src/net/ndp.ts";
import { detectionTargets } from "../../src/plugins/spiderpool.ts";
import type { IpConfig } from "../../src/agentapi/models.ts";

const OWN = "0a:00:00:00:00:01";
const HOLDER = "02:00:00:00:00:11";
const GW = "02:00:00:00:00:fe";

/** An ARP reply from `mac` saying `ip` is at `mac`, to `OWN`. */
function arpReply(mac: string, ip: string): ReceivedFrame {
  const p = new Uint8Array(28);
  p.set([0, 1, 8, 0, 6, 4, 0, 2]);
  const m = mac.split(":").map((h) => parseInt(h, 16));
  p.set(m, 8);
  p.set(ip.split(".").map(Number), 14);
  const own = OWN.split(":").map((h) => parseInt(h, 16));
  return {
    protocol: ETH_P_ARP,
    outgoing: false,
    frame: ethernet(Uint8Array.from(own), Uint8Array.from(m), 0x0806, p),
  };
}

const arp = (frame: Uint8Array, outgoing = false): ReceivedFrame => ({
  protocol: ETH_P_ARP,
  frame,
  outgoing,
});
const nd = (frame: Uint8Array): ReceivedFrame => ({ protocol: ETH_P_IPV6, frame, outgoing: false });

/** The outcome, read through a call so that earlier assertions do not narrow its type. */
const outcome = (c: Check): Outcome | undefined => c.outcome;

/** Sends the check's probe at `at` (as the runner does when `wantsSend()`). */
function send(c: Check, at: number): void {
  assert.ok(c.wantsSend(), `${c.kind} ${c.target} wants to send at ${at}`);
  c.sent(at);
}

const conflict4 = () => new Check("conflict", 4, "192.0.2.11", "192.0.2.11", OWN);
const gateway4 = () => new Check("gateway", 4, "192.0.2.11", "192.0.2.1", OWN);

Deno.test("decision: an ARP reply from the allocated address is a conflict naming the holder's MAC", () => {
  const c = conflict4();
  send(c, 0);
  c.observe(arpReply("02:00:00:00:00:12", "192.0.2.12"));
  assert.equal(c.outcome, undefined, "a reply for another address changes nothing");
  c.observe(arpReply(HOLDER, "192.0.2.11"));
  assert.deepEqual(c.outcome, { kind: "conflict", mac: HOLDER });
  assert.equal(c.wantsSend(), false);
});

Deno.test("decision: a gratuitous ARP from another host for the address is a conflict too (RFC 5227)", () => {
  const c = conflict4();
  send(c, 0);
  c.observe(arp(gratuitousArp(HOLDER, "192.0.2.11")));
  assert.deepEqual(c.outcome, { kind: "conflict", mac: HOLDER });
});

Deno.test("decision: another host's probe for the address, our own frames and outgoing copies are no claim", () => {
  const c = conflict4();
  send(c, 0);
  c.observe(arp(arpProbe(HOLDER, "192.0.2.11")));
  c.observe(arp(gratuitousArp(OWN, "192.0.2.11")));
  c.observe(arp(gratuitousArp(HOLDER, "192.0.2.11"), true));
  c.observe({ ...arpReply(HOLDER, "192.0.2.11"), protocol: ETH_P_IPV6 });
  assert.equal(c.outcome, undefined);
  c.tick(DETECTION_POLICY.windowMs);
  assert.deepEqual(c.outcome, { kind: "free" });
});

Deno.test("decision: a conflict check is free once its 100 ms window passes in silence, not before", () => {
  const c = conflict4();
  send(c, 1000);
  c.tick(1099);
  assert.equal(c.outcome, undefined);
  assert.equal(c.wakeAt(1099), 1100);
  assert.equal(c.wantsSend(), false, "one probe, as upstream: silence in its window means free");
  c.tick(1100);
  assert.deepEqual(c.outcome, { kind: "free" });
  assert.equal(c.wakeAt(1100), Infinity);
});

Deno.test("decision: a probe that cannot be sent is tried 3 times in all, then the check fails", () => {
  const c = conflict4();
  c.sendFailed("send a frame on eth0: ENETDOWN", 0);
  c.sendFailed("send a frame on eth0: ENETDOWN", 1);
  assert.equal(c.outcome, undefined);
  assert.ok(c.wantsSend());
  c.sendFailed("send a frame on eth0: ENETDOWN", 2);
  assert.equal(outcome(c)?.kind, "failed");
  assert.match(
    (outcome(c) as { reason: string }).reason,
    /3 ARP probes for 192\.0\.2\.11 failed: .*ENETDOWN/,
  );
});

Deno.test("decision: two failed sends then a sent probe still decide on its window", () => {
  const c = conflict4();
  c.sendFailed("EINTR", 0);
  c.sendFailed("EINTR", 0);
  send(c, 1);
  c.tick(101);
  assert.deepEqual(c.outcome, { kind: "free" });
});

Deno.test("decision: a failed read loses the window; the probe is sent again while attempts are left", () => {
  const c = conflict4();
  send(c, 0);
  c.receiveFailed("read a frame on eth0: ENETDOWN");
  assert.ok(c.wantsSend());
  send(c, 10);
  c.receiveFailed("read a frame on eth0: ENETDOWN");
  send(c, 20);
  c.receiveFailed("read a frame on eth0: ENETDOWN");
  assert.equal(outcome(c)?.kind, "failed");
});

Deno.test("decision: a gateway answering the second request is reachable", () => {
  const c = gateway4();
  send(c, 0);
  c.tick(100);
  assert.equal(c.outcome, undefined, "a silent window asks again");
  send(c, 100);
  c.observe(arpReply(HOLDER, "192.0.2.11"));
  assert.equal(c.outcome, undefined, "an answer from another address is not the gateway's");
  c.observe(arpReply(GW, "192.0.2.1"));
  assert.deepEqual(c.outcome, { kind: "reachable", mac: GW });
});

Deno.test("decision: a gateway silent to 3 requests is unreachable after 300 ms", () => {
  const c = gateway4();
  for (const t of [0, 100, 200]) {
    c.tick(t);
    send(c, t);
  }
  c.tick(299);
  assert.equal(c.outcome, undefined);
  c.tick(300);
  assert.deepEqual(c.outcome, { kind: "unreachable", probes: 3, waitedMs: 300 });
});

Deno.test("decision: the 500 ms cap ends a gateway check whose windows run long", () => {
  const slow = { ...DETECTION_POLICY, windowMs: 200 };
  const c = new Check("gateway", 4, "192.0.2.11", "192.0.2.1", OWN, slow);
  send(c, 0);
  c.tick(200);
  send(c, 200);
  c.tick(400);
  send(c, 400);
  assert.equal(c.wakeAt(400), 500, "the cap comes before the third window ends");
  c.tick(500);
  assert.deepEqual(c.outcome, { kind: "unreachable", probes: 3, waitedMs: 500 });
});

Deno.test("decision: the 1 s cap ends a conflict check that never got a probe out", () => {
  const c = new Check("conflict", 4, "192.0.2.11", "192.0.2.11", OWN, { ...DETECTION_POLICY, attempts: 5 });
  c.sendFailed("EAGAIN", 0);
  c.tick(999);
  assert.equal(c.outcome, undefined);
  c.tick(1000);
  assert.equal(outcome(c)?.kind, "failed");
  assert.match((outcome(c) as { reason: string }).reason, /no decision within 1000 ms: EAGAIN/);
});

Deno.test("decision: IPv6 conflict: an advertisement for the address names the MAC of its option", () => {
  const c = new Check("conflict", 6, "2001:db8::11", "2001:db8::11", OWN);
  assert.deepEqual(c.frame, neighbourSolicitation(OWN, "2001:db8::11"), "the probe is the DAD form");
  send(c, 0);
  c.observe(nd(unsolicitedNA(HOLDER, "2001:db8::12")));
  assert.equal(c.outcome, undefined);
  c.observe(nd(unsolicitedNA(OWN, "2001:db8::11")));
  assert.equal(c.outcome, undefined, "our own MAC");
  c.observe(nd(unsolicitedNA(HOLDER, "2001:db8::11")));
  assert.deepEqual(c.outcome, { kind: "conflict", mac: HOLDER });
});

Deno.test("decision: IPv6 addresses are compared in canonical form", () => {
  const c = new Check("gateway", 6, "2001:DB8:0::11", "2001:0db8::1", OWN);
  assert.equal(c.target, "2001:db8::1");
  assert.deepEqual(c.frame, neighbourSolicitation(OWN, "2001:db8::1", "2001:db8::11"));
  send(c, 0);
  c.observe(nd(unsolicitedNA(GW, "2001:db8::1")));
  assert.deepEqual(c.outcome, { kind: "reachable", mac: GW });
});

Deno.test("decision: the probes are the ARP probe, the request from the pod's address, and the solicitations", () => {
  const [conflicts, gateways] = planChecks([
    { family: 4, ip: "192.0.2.11", conflict: true, gateway: "192.0.2.1" },
    { family: 6, ip: "2001:db8::11", conflict: false, gateway: "2001:db8::1" },
  ], OWN);
  assert.deepEqual(conflicts.map((c) => [c.family, c.target]), [[4, "192.0.2.11"]]);
  assert.deepEqual(gateways.map((c) => [c.family, c.target]), [[4, "192.0.2.1"], [6, "2001:db8::1"]]);
  assert.deepEqual(conflicts[0].frame, arpProbe(OWN, "192.0.2.11"));
  assert.deepEqual(gateways[0].frame, arpRequest(OWN, "192.0.2.11", "192.0.2.1"));
  assert.deepEqual(gateways[1].frame, neighbourSolicitation(OWN, "2001:db8::1", "2001:db8::11"));
});

const cfg = (o: Partial<IpConfig>): IpConfig => ({ version: 4, address: "192.0.2.11/24", nic: "eth0", ...o });

Deno.test("decision: the plugin checks only this NIC's addresses whose flags are on", () => {
  const ips = [
    cfg({ enableIPConflictDetection: true, enableGatewayDetection: true, gateway: "192.0.2.1" }),
    cfg({
      version: 6,
      address: "2001:db8::11/64",
      enableIPConflictDetection: false,
      enableGatewayDetection: true,
      gateway: "2001:db8::1",
    }),
    cfg({ nic: "net1", address: "198.51.100.5/24", enableIPConflictDetection: true }),
  ];
  assert.deepEqual(detectionTargets(ips, "eth0"), [
    { family: 4, ip: "192.0.2.11", conflict: true, gateway: "192.0.2.1" },
    { family: 6, ip: "2001:db8::11", conflict: false, gateway: "2001:db8::1" },
  ]);
  assert.deepEqual(detectionTargets(ips, "net1"), [{ family: 4, ip: "198.51.100.5", conflict: true }]);
});

Deno.test("decision: no flag, or gateway detection without a gateway, means nothing to check (no raw socket)", () => {
  assert.deepEqual(detectionTargets([cfg({})], "eth0"), []);
  assert.deepEqual(detectionTargets([cfg({ enableGatewayDetection: true })], "eth0"), []);
  assert.deepEqual(
    detectionTargets([
      cfg({ enableIPConflictDetection: false, enableGatewayDetection: false, gateway: "192.0.2.1" }),
    ], "eth0"),
    [],
  );
});

Deno.test("runner: a reply that queued up while the plugin was not running counts before the window is judged", () => {
  // The clock jumps from 10 ms to 250 ms between two looks (the process was descheduled on a loaded node); the
  // holder's reply waits in the socket. It must be read before the 100 ms window is declared silent.
  let t = 0;
  const queued: ReceivedFrame[] = [];
  const link: FrameLink = {
    send() {
      t = 10;
    },
    receive(timeoutMs: number) {
      if (timeoutMs > 0) {
        t = 250;
        queued.push(arpReply(HOLDER, "192.0.2.11"));
        return [];
      }
      return queued.splice(0);
    },
  };
  const c = conflict4();
  runChecks(link, [c], () => t);
  assert.deepEqual(outcome(c), { kind: "conflict", mac: HOLDER });
});

Deno.test("runner: a window that passes in silence is free, and the probe went out once", () => {
  let t = 0;
  let sent = 0;
  const link: FrameLink = {
    send() {
      sent++;
    },
    receive(timeoutMs: number) {
      t += Math.max(timeoutMs, 1);
      return [];
    },
  };
  const c = conflict4();
  runChecks(link, [c], () => t);
  assert.deepEqual(outcome(c), { kind: "free" });
  assert.equal(sent, 1);
});

Deno.test("waitRunning: no wait for a running link; polls a link that is not until it runs or the limit passes", () => {
  let t = 0;
  const clock = () => t;
  const sleep = (ms: number) => t += ms;
  assert.deepEqual(waitRunning(() => true, 2_000, clock, sleep), { running: true, waitedMs: 0 });
  // Runs from 42 ms on: found at the first look after that, a poll period later at most.
  t = 0;
  const r = waitRunning(() => t >= 42, 2_000, clock, sleep);
  assert.equal(r.running, true);
  assert.ok(r.waitedMs >= 42 && r.waitedMs <= 47, `${r.waitedMs}`);
  // Never runs: gives up at the limit exactly, having looked again and again.
  t = 0;
  let looks = 0;
  assert.deepEqual(waitRunning(() => (looks++, false), 200, clock, sleep), { running: false, waitedMs: 200 });
  assert.ok(looks >= 40, `${looks} looks`);
});
