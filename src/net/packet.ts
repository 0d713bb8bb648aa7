// Ethernet frames and the raw AF_PACKET sockets that carry them on one link of a network namespace, for the
// frames the kernel will not send for us: address announcements, ARP probes and neighbour solicitations. The
// sockets are opened and bound inside the namespace in one synchronous call (setns is per thread) and keep
// working there afterwards, so sending and waiting happen back in the process's own namespace. The link itself
// (index, MAC, up) is read with ioctls on the socket, which needs no netlink library: announcing after every
// ADD stays cheap.

import { macText } from "./codec.ts";
import { errno, libc } from "./ffi.ts";
import { closeFd, inNetns, openNetns } from "./netns.ts";
import { NetError } from "./types.ts";

export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
/** Every EtherType (a socket bound with it sees all frames of its link). */
const ETH_P_ALL = 0x0003;
export const BROADCAST_MAC = "ff:ff:ff:ff:ff:ff";
const MIN_FRAME = 60;

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const SIOCGIFFLAGS = 0x8913;
const SIOCGIFHWADDR = 0x8927;
const SIOCGIFINDEX = 0x8933;
const IFF_UP = 0x1;
/** Operationally up (RFC 2863 "up" or "unknown"): the kernel has taken the link's carrier into use. */
const IFF_RUNNING = 0x40;
const ARPHRD_ETHER = 1;
const PACKET_OUTGOING = 4;
const POLLIN = 0x1;
const MSG_DONTWAIT = 0x40;
const EINTR = 4;
const EAGAIN = 11;
const ENODEV = 19;
const IFNAMSIZ = 16;
/** Large enough for any ARP or neighbour discovery frame; longer frames are cut, and never match. */
const RECV_BUFFER = 2048;

/** A link as the raw socket sees it. */
export interface LinkIdentity {
  name: string;
  index: number;
  /** "aa:bb:cc:dd:ee:ff". */
  mac: string;
  up: boolean;
}

/** One frame read from a link socket. */
export interface ReceivedFrame {
  /** Its EtherType. */
  protocol: number;
  frame: Uint8Array;
  /** A copy of a frame this host sent (the kernel hands outgoing frames to packet sockets too). */
  outgoing: boolean;
}

/** An Ethernet II frame (padded with zeros to the minimum of 60 bytes). */
export function ethernet(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(Math.max(MIN_FRAME, 14 + payload.length));
  frame.set(dst, 0);
  frame.set(src, 6);
  frame[12] = type >> 8;
  frame[13] = type & 0xff;
  frame.set(payload, 14);
  return frame;
}

/** The parts of an Ethernet II frame. */
export interface EthernetFrame {
  dst: string;
  src: string;
  type: number;
  payload: Uint8Array;
}

/** Reads the Ethernet header; undefined when the frame is too short to have one. */
export function parseEthernet(frame: Uint8Array): EthernetFrame | undefined {
  if (frame.length < 14) return undefined;
  return {
    dst: macText(frame.subarray(0, 6)),
    src: macText(frame.subarray(6, 12)),
    type: (frame[12] << 8) | frame[13],
    payload: frame.subarray(14),
  };
}

function ifreq(name: string): Uint8Array {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length === 0 || bytes.length >= IFNAMSIZ) {
    throw new NetError(`look up link ${JSON.stringify(name)}`, 22, "a link name has 1 to 15 bytes");
  }
  const req = new Uint8Array(40);
  req.set(bytes, 0);
  return req;
}

function ioctl(fd: number, request: number, req: Uint8Array, what: string): void {
  if (libc().ioctl(fd, BigInt(request), req) < 0) throw new NetError(what, errno());
}

/** `struct sockaddr_ll` for link `ifindex`; `protocol` is an EtherType, written in network order here. */
function sockaddrLL(ifindex: number, protocol: number, dst?: Uint8Array): Uint8Array {
  const sa = new Uint8Array(20);
  const v = new DataView(sa.buffer);
  v.setUint16(0, AF_PACKET, true);
  v.setUint16(2, protocol); // big-endian: network order
  v.setInt32(4, ifindex, true);
  v.setUint16(8, ARPHRD_ETHER, true);
  if (dst) {
    sa[11] = dst.length;
    sa.set(dst, 12);
  }
  return sa;
}

/** The link's flags (SIOCGIFFLAGS) through `fd` (a socket of the link's namespace). */
function linkFlags(fd: number, name: string): number {
  const req = ifreq(name);
  ioctl(fd, SIOCGIFFLAGS, req, `read the flags of link ${name}`);
  return new DataView(req.buffer).getUint16(16, true);
}

/** Reads name → index, MAC and the up flag through `fd` (a socket of the link's namespace). */
function identify(fd: number, name: string): LinkIdentity {
  const what = `look up link ${name}`;
  const req = ifreq(name);
  ioctl(fd, SIOCGIFINDEX, req, what);
  const index = new DataView(req.buffer).getInt32(16, true);
  ifreq(name).forEach((b, i) => req[i] = b);
  ioctl(fd, SIOCGIFHWADDR, req, what);
  const mac = [...req.subarray(18, 24)].map((b) => b.toString(16).padStart(2, "0")).join(":");
  return { name, index, mac, up: (linkFlags(fd, name) & IFF_UP) !== 0 };
}

/**
 * A packet socket on link `ifName` of the namespace at `nsPath` (this process's own when undefined). One socket
 * for everything: closing a packet socket waits for an RCU grace period in the kernel (several ms of wall time),
 * so a caller opens one, not one per EtherType. With `receive` it takes in every frame of the link (until
 * closed), else none. Close it when done.
 *
 * ```ts
 * const s = LinkSocket.open("/var/run/netns/pod", "eth0", { receive: true });
 * try { s.send(frame); const frames = s.receive(100); } finally { s.close(); }
 * ```
 */
export class LinkSocket {
  readonly link: LinkIdentity;
  readonly #fd: number;
  readonly #receiving: boolean;
  #closed = false;

  private constructor(link: LinkIdentity, fd: number, receiving: boolean) {
    this.link = link;
    this.#fd = fd;
    this.#receiving = receiving;
  }

  /** Throws NetError (errno 19, `gone`) when the namespace has no link of that name. */
  static open(nsPath: string | undefined, ifName: string, opts: { receive: boolean }): LinkSocket {
    let fd = -1;
    const make = (): LinkSocket => {
      fd = libc().socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
      if (fd < 0) throw new NetError("open a packet socket", errno());
      const link = identify(fd, ifName);
      // Bound with ETH_P_ALL the socket receives this link's frames (only); bound with 0, none.
      const sa = sockaddrLL(link.index, opts.receive ? ETH_P_ALL : 0);
      if (libc().bind(fd, sa, sa.length) < 0) {
        throw new NetError(`bind a packet socket to ${ifName}`, errno());
      }
      return new LinkSocket(link, fd, opts.receive);
    };
    try {
      if (nsPath === undefined) return make();
      const nsFd = openNetns(nsPath);
      try {
        return inNetns(nsFd, `opening a packet socket on ${ifName}`, make);
      } finally {
        closeFd(nsFd);
      }
    } catch (e) {
      if (fd >= 0) closeFd(fd);
      throw e;
    }
  }

  /**
   * Whether the link is up and operationally up now. A link that is up but not running drops what is sent on
   * it: it has no carrier yet, or the kernel has not yet taken the carrier into use (its queue is attached only
   * then). The socket reads it in the link's own namespace.
   */
  running(): boolean {
    if (this.#closed) throw new Error("link socket used after close()");
    const flags = linkFlags(this.#fd, this.link.name);
    return (flags & IFF_UP) !== 0 && (flags & IFF_RUNNING) !== 0;
  }

  /** Sends a whole Ethernet frame (destination MAC in its first 6 bytes, EtherType at 12) out of the link. */
  send(frame: Uint8Array): void {
    if (this.#closed) throw new Error("link socket used after close()");
    const ethType = (frame[12] << 8) | frame[13];
    const sa = sockaddrLL(this.link.index, ethType, frame.subarray(0, 6));
    if (Number(libc().sendto(this.#fd, frame, BigInt(frame.length), 0, sa, sa.length)) < 0) {
      throw new NetError(`send a frame on ${this.link.name}`, errno());
    }
  }

  /**
   * Waits up to `timeoutMs` for a frame, then reads every frame already queued. Returns [] when none came in
   * time; a signal interrupting the wait (EINTR) is not an error.
   */
  receive(timeoutMs: number): ReceivedFrame[] {
    if (this.#closed) throw new Error("link socket used after close()");
    if (!this.#receiving) throw new Error("receive() on a link socket opened to send only");
    const pfd = new Uint8Array(8);
    const v = new DataView(pfd.buffer);
    v.setInt32(0, this.#fd, true);
    v.setInt16(4, POLLIN, true);
    const n = libc().poll(pfd, 1n, Math.max(0, Math.ceil(timeoutMs)));
    if (n < 0) {
      const err = errno();
      if (err === EINTR) return [];
      throw new NetError(`wait for frames on ${this.link.name}`, err);
    }
    const out: ReceivedFrame[] = [];
    if (n === 0 || (v.getInt16(6, true) & POLLIN) === 0) return out;
    const buf = new Uint8Array(RECV_BUFFER);
    const from = new Uint8Array(20);
    const fromLen = new Uint32Array(1);
    for (;;) {
      fromLen[0] = from.length;
      const got = Number(libc().recvfrom(this.#fd, buf, BigInt(buf.length), MSG_DONTWAIT, from, fromLen));
      if (got < 0) {
        const err = errno();
        if (err === EAGAIN || err === EINTR) return out;
        throw new NetError(`read a frame on ${this.link.name}`, err);
      }
      if (got < 14) continue;
      out.push({
        protocol: (buf[12] << 8) | buf[13],
        frame: buf.slice(0, got),
        outgoing: from[10] === PACKET_OUTGOING,
      });
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeFd(this.#fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** True for the error of a link that does not exist (yet) in the namespace. */
export function isNoSuchLink(e: unknown): boolean {
  return e instanceof NetError && e.errno === ENODEV;
}
