// Address families and the one error type of the IP engine. Every parse or validation failure is an IPError
// whose message quotes what was received and says what was expected.

/** An address family: 4 for IPv4, 6 for IPv6. */
export type Family = 4 | 6;

/** Raised for every malformed or inconsistent address, range, CIDR or set. */
export class IPError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IPError";
  }
}

/** Number of bits in an address of `family` (32 or 128). */
export function familyBits(family: Family): number {
  return family === 4 ? 32 : 128;
}

/** Largest address value of `family`: 2^32-1 or 2^128-1. */
export function maxValue(family: Family): bigint {
  return family === 4 ? MAX_V4 : MAX_V6;
}

/** "IPv4" or "IPv6", for messages. */
export function familyName(family: Family): string {
  return family === 4 ? "IPv4" : "IPv6";
}

const MAX_V4 = (1n << 32n) - 1n;
const MAX_V6 = (1n << 128n) - 1n;
