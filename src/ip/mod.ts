// The IP engine: strict parsing and canonical formatting of addresses, Spiderpool range strings and CIDRs;
// IPRangeSet for pool arithmetic (ips − excludeIPs − reserved, overlaps, counts); and first-fit allocation.
// Pure TypeScript on bigint; every operation scales with the number of ranges, never with the addresses.

export { type Family, familyBits, familyName, IPError, maxValue } from "./family.ts";
export { formatIP, isIP, parseIP } from "./address.ts";
export {
  type CIDR,
  cidrContains,
  cidrRange,
  cidrsOverlap,
  formatCIDR,
  hostMask,
  parseCIDR,
  parseIPPrefix,
  prefixMask,
} from "./cidr.ts";
export { familyOf, formatRange, parseRange, type Range } from "./range.ts";
export { assertWithin, IPRangeSet } from "./set.ts";
export { firstFree } from "./first_free.ts";
