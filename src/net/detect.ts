// IP-conflict and gateway detection from inside a pod's network namespace (spec §4.9), before the address is
// configured: an ARP probe (RFC 5227) or a duplicate-address-detection solicitation (RFC 4862) asks whether
// anyone holds the new address, then "who has the gateway?" asks whether the gateway answers. Every conflict
// check finishes before any gateway check starts, so the gateway never caches this pod's MAC for an address
// that turns out to be someone else's (upstream #4475). Each check is a small state machine over frames and
// times (pure, unit-tested); `detect` drives them on a raw socket of packet.ts and, when they pass, announces
// the addresses on it.

import { announcement, arpProbe, arpRequest, parseArp } from "./arp.ts";
import { ipBytes, ipText } from "./codec.ts";
import { neighbourSolicitation, parseNeighbourAdvertisement } from "./ndp.ts";
import { ETH_P_ARP, ETH_P_IPV6, type LinkIdentity, LinkSocket, type ReceivedFrame } from "./packet.ts";

export { isNoSuchLink } from "./packet.ts";

export type Family = 4 | 6;

/** What to check for one allocated address of the NIC. */
export interface DetectionTarget {
  family: Family;
  /** The allocated address, without prefix. */
  ip: string;
  /** Ask whether another host holds `ip`. */
  conflict: boolean;
  /** Ask whether this gateway answers. */
  gateway?: string;
}

/**
 * Timing of §4.9, as upstream's plugin: a probe is answered within a 100 ms window; a probe that cannot be
 * sent (or a read that fails) is tried again, 3 attempts in all. A conflict check that hears nothing in its
 * window is done (the address is free). A silent gateway is asked again, up to 3 probes, and is unreachable when
 * none is answered (upstream gives up after the first 100 ms; one lost ARP reply must not fail a pod). Caps
 * bound each check whatever the link does: 1 s for a conflict check, 500 ms for a gateway check.
 *
 * Before the first probe the link must be running: a pod's veth is set up before its host end, and until the
 * kernel has taken the carrier into use (asynchronously, later on a loaded node) it drops every frame sent on
 * it, so a probe sent then hears nothing and a held address would pass as free. The wait is bounded by
 * `linkWaitMs`; a link still not running then is probed anyway, as upstream always does.
 */
export interface DetectionPolicy {
  attempts: number;
  windowMs: number;
  conflictCapMs: number;
  gatewayCapMs: number;
  linkWaitMs: number;
}

export const DETECTION_POLICY: DetectionPolicy = {
  attempts: 3,
  windowMs: 100,
  conflictCapMs: 1_000,
  gatewayCapMs: 500,
  linkWaitMs: 2_000,
};

/** How often a link that is not running yet is looked at again. */
const LINK_POLL_MS = 5;

/** Blocks this thread for `ms` (the checks run synchronously; a runtime timer would load Node's timers). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Waits until `running()` or `limitMs` have passed; returns whether it is running and how long it waited.
 */
export function waitRunning(
  running: () => boolean,
  limitMs: number,
  now = () => performance.now(),
  sleep = pause,
): { running: boolean; waitedMs: number } {
  const start = now();
  for (;;) {
    if (running()) return { running: true, waitedMs: Math.round(now() - start) };
    const left = start + limitMs - now();
    if (left <= 0) return { running: false, waitedMs: Math.round(now() - start) };
    sleep(Math.min(LINK_POLL_MS, left));
  }
}

export type Outcome =
  /** Nobody answered for the address: it is free. */
  | { kind: "free" }
  /** A host answered for the address: it is in use there. */
  | { kind: "conflict"; mac: string }
  | { kind: "reachable"; mac: string }
  /** The gateway did not answer `probes` requests. */
  | { kind: "unreachable"; probes: number; waitedMs: number }
  /** The check could not be made (frames could not be sent or read). */
  | { kind: "failed"; reason: string };

/** One conflict or gateway check: the probe to send and what the frames that come back mean. */
export class Check {
  readonly kind: "conflict" | "gateway";
  readonly family: Family;
  /** The allocated address. */
  readonly ip: string;
  /** The address asked about: `ip` for a conflict check, the gateway's for a gateway check. */
  readonly target: string;
  readonly protocol: number;
  readonly frame: Uint8Array;
  outcome?: Outcome;
  readonly #ownMac: string;
  readonly #policy: DetectionPolicy;
  #started?: number;
  #attempts = 0;
  #probes = 0;
  #windowEnd?: number;
  #lastError = "";

  constructor(
    kind: "conflict" | "gateway",
    family: Family,
    ip: string,
    target: string,
    ownMac: string,
    policy = DETECTION_POLICY,
  ) {
    this.kind = kind;
    this.family = family;
    this.ip = canonical(ip, family);
    this.target = canonical(target, family);
    this.#ownMac = ownMac.toLowerCase();
    this.#policy = policy;
    this.protocol = family === 4 ? ETH_P_ARP : ETH_P_IPV6;
    this.frame = family === 4
      ? (kind === "conflict" ? arpProbe(ownMac, this.ip) : arpRequest(ownMac, this.ip, this.target))
      : (kind === "conflict"
        ? neighbourSolicitation(ownMac, this.ip)
        : neighbourSolicitation(ownMac, this.target, this.ip));
  }

  /** True while a probe's answer window is open. */
  get windowOpen(): boolean {
    return this.#windowEnd !== undefined;
  }

  /** True when a probe should go out now: no answer yet, no window open, attempts left. */
  wantsSend(): boolean {
    return this.outcome === undefined && this.#windowEnd === undefined &&
      this.#attempts < this.#policy.attempts;
  }

  sent(now: number): void {
    this.#started ??= now;
    this.#attempts++;
    this.#probes++;
    this.#windowEnd = now + this.#policy.windowMs;
  }

  sendFailed(reason: string, now: number): void {
    this.#started ??= now;
    this.#attempts++;
    this.#lastError = reason;
    this.#giveUpIfSpent();
  }

  /** Reading frames failed: the window is lost, the probe is tried again while attempts are left. */
  receiveFailed(reason: string): void {
    if (this.outcome) return;
    this.#lastError = reason;
    this.#windowEnd = undefined;
    this.#giveUpIfSpent();
  }

  /** Applies one received frame. */
  observe(f: ReceivedFrame): void {
    if (this.outcome || f.outgoing || f.protocol !== this.protocol) return;
    const mac = this.family === 4 ? this.#arpClaim(f.frame) : this.#naClaim(f.frame);
    if (mac === undefined || mac === this.#ownMac) return;
    this.outcome = this.kind === "conflict" ? { kind: "conflict", mac } : { kind: "reachable", mac };
  }

  /** Applies the passing of time: a window that ended, a cap that was reached. */
  tick(now: number): void {
    if (this.outcome) return;
    if (this.#windowEnd !== undefined && now >= this.#windowEnd) {
      this.#windowEnd = undefined;
      if (this.kind === "conflict") {
        this.outcome = { kind: "free" };
        return;
      }
      if (this.#attempts >= this.#policy.attempts) {
        this.outcome = this.#unreachable(now);
        return;
      }
    }
    const cap = this.kind === "conflict" ? this.#policy.conflictCapMs : this.#policy.gatewayCapMs;
    if (this.#started !== undefined && now - this.#started >= cap) {
      this.outcome = this.kind === "gateway" && this.#probes > 0 ? this.#unreachable(now) : {
        kind: "failed",
        reason: `no decision within ${cap} ms${this.#lastError ? `: ${this.#lastError}` : ""}`,
      };
    }
  }

  /** When this check next needs attention (the end of its window, else its cap); Infinity when decided. */
  wakeAt(now: number): number {
    if (this.outcome) return Infinity;
    if (this.wantsSend()) return now;
    const cap = this.kind === "conflict" ? this.#policy.conflictCapMs : this.#policy.gatewayCapMs;
    const capAt = (this.#started ?? now) + cap;
    return Math.min(this.#windowEnd ?? capAt, capAt);
  }

  #unreachable(now: number): Outcome {
    return { kind: "unreachable", probes: this.#probes, waitedMs: Math.round(now - (this.#started ?? now)) };
  }

  #giveUpIfSpent(): void {
    if (this.#attempts < this.#policy.attempts || this.#windowEnd !== undefined) return;
    const what = this.family === 4 ? "ARP" : "neighbour discovery";
    this.outcome = {
      kind: "failed",
      reason: `${this.#attempts} ${what} probes for ${this.target} failed: ${this.#lastError}`,
    };
  }

  /**
   * The MAC of a host that claims the address asked about: any ARP packet whose sender address is it (a reply,
   * or a gratuitous request; RFC 5227 2.1.1). Probes from others (sender 0.0.0.0) are no claim: switches send
   * them to track hosts, and counting them would report conflicts that do not exist.
   */
  #arpClaim(frame: Uint8Array): string | undefined {
    const arp = parseArp(frame);
    if (!arp || arp.senderIP !== this.target) return undefined;
    return arp.senderMac;
  }

  /** The MAC of a host that advertises the address asked about (its target link-layer option, else the frame's). */
  #naClaim(frame: Uint8Array): string | undefined {
    const na = parseNeighbourAdvertisement(frame);
    if (!na || na.target !== this.target) return undefined;
    return na.targetMac ?? na.frameSrc;
  }
}

function canonical(ip: string, family: Family): string {
  return ipText(ipBytes(ip, family));
}

/**
 * The checks to run, as two phases: every conflict check, then every gateway check (run only when the first
 * phase found every address free).
 */
export function planChecks(
  targets: readonly DetectionTarget[],
  ownMac: string,
  policy = DETECTION_POLICY,
): [Check[], Check[]] {
  const conflicts = targets.filter((t) => t.conflict)
    .map((t) => new Check("conflict", t.family, t.ip, t.ip, ownMac, policy));
  const gateways = targets.filter((t) => t.gateway !== undefined)
    .map((t) => new Check("gateway", t.family, t.ip, t.gateway!, ownMac, policy));
  return [conflicts, gateways];
}

/** What the checks need of a link: a link socket, or anything that sends and receives frames alike. */
export interface FrameLink {
  send(frame: Uint8Array): void;
  receive(timeoutMs: number): ReceivedFrame[];
}

/** Runs checks side by side until each has an outcome. Synchronous: the waiting is poll(2) on the sockets. */
export function runChecks(link: FrameLink, checks: readonly Check[], now = () => performance.now()): void {
  const message = (e: unknown) => e instanceof Error ? e.message : String(e);
  const observe = (frames: ReceivedFrame[]) => {
    for (const f of frames) for (const c of checks) c.observe(f);
  };
  for (;;) {
    // Frames that queued up while this process was not running (a loaded node) count before any window is
    // judged over: a holder's reply that came in time must not be missed because the plugin looked late.
    if (checks.some((c) => !c.outcome && c.windowOpen)) {
      try {
        observe(link.receive(0));
      } catch (e) {
        for (const c of checks) c.receiveFailed(message(e));
      }
    }
    for (const c of checks) {
      c.tick(now());
      if (!c.wantsSend()) continue;
      try {
        link.send(c.frame);
        c.sent(now());
      } catch (e) {
        c.sendFailed(message(e), now());
      }
    }
    const open = checks.filter((c) => !c.outcome);
    if (open.length === 0) return;
    const t = now();
    const wake = Math.min(...open.map((c) => c.wakeAt(t)));
    let frames: ReceivedFrame[];
    try {
      frames = link.receive(Math.max(0, wake - t));
    } catch (e) {
      for (const c of open) c.receiveFailed(message(e));
      continue;
    }
    observe(frames);
  }
}

/** The result of `detect`: the link as found, and every check that ran with its outcome. */
export interface DetectionReport {
  link: LinkIdentity;
  /** True when the link was down and was set up for the checks. */
  broughtUp: boolean;
  /** Whether the link was running when the first probe went out (see DetectionPolicy). */
  linkRunning: boolean;
  /** How long the checks waited for the link to run before the first probe. */
  waitedForLinkMs: number;
  checks: Check[];
  /** Addresses announced after every check passed; `announceError` when sending them failed. */
  announced: string[];
  announceError?: string;
}

/**
 * Runs the checks of `targets` on link `ifName` of the namespace at `nsPath`, setting the link up first when it
 * is down (through the netlink layer, or iproute2 when libnl cannot be loaded). When every check passes, sends a
 * gratuitous ARP or unsolicited neighbour advertisement for each of `announce` (best effort): the link is up
 * now, so the kernel will not announce the addresses when the main plugin configures them (upstream #4650).
 * Throws NetError ENODEV when the namespace has no such link.
 */
export async function detect(
  nsPath: string,
  ifName: string,
  targets: readonly DetectionTarget[],
  announce: readonly string[] = [],
  policy = DETECTION_POLICY,
): Promise<DetectionReport> {
  const socket = LinkSocket.open(nsPath, ifName, { receive: true });
  try {
    let broughtUp = false;
    if (!socket.link.up) {
      const { openNs } = await import("./mod.ts");
      const ns = openNs(nsPath);
      try {
        await ns.setLink(ifName, { up: true });
      } finally {
        ns.close();
      }
      broughtUp = true;
    }
    const link = waitRunning(() => socket.running(), policy.linkWaitMs);
    const [conflicts, gateways] = planChecks(targets, socket.link.mac, policy);
    runChecks(socket, conflicts);
    const checks = [...conflicts];
    if (conflicts.every((c) => c.outcome?.kind === "free")) {
      runChecks(socket, gateways);
      checks.push(...gateways);
    }
    const report: DetectionReport = {
      link: { ...socket.link, up: true },
      broughtUp,
      linkRunning: link.running,
      waitedForLinkMs: link.waitedMs,
      checks,
      announced: [],
    };
    if (checks.every((c) => c.outcome?.kind === "free" || c.outcome?.kind === "reachable")) {
      try {
        for (const ip of announce) {
          socket.send(announcement(socket.link.mac, ip));
          report.announced.push(ip);
        }
      } catch (e) {
        report.announceError = e instanceof Error ? e.message : String(e);
      }
    }
    return report;
  } finally {
    socket.close();
  }
}
