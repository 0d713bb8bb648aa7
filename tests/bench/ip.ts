// Benchmark of the IP range engine: first-fit allocation (firstFree) on small and huge pools against two naive
// references timed in the same run, and parsing/merging/formatting of 5,000 ranges.
// Naive A is what upstream did before issue #3541: list every pool address, subtract excluded and allocated, take
// the first. Naive B probes pool addresses in order against Sets of excluded and allocated addresses. Both stop
// after CAP addresses; a capped row shows a lower bound (">=").
// Usage: deno run -A tests/bench/ip.ts [--min-ms 300]
import { parseArgs } from "node:util";
import { type Family, firstFree, formatIP, IPRangeSet, parseCIDR, parseIP } from "../../src/ip/mod.ts";
import { prng } from "../unit/_helpers.ts";

const { values } = parseArgs({ options: { "min-ms": { type: "string", default: "300" } }, strict: true });
const MIN_MS = Number(values["min-ms"]);
const CAP = 1 << 20;

/** Mean time of `fn` in µs over as many runs as fit in MIN_MS (at least 3, after one warm-up run). */
function time(fn: () => unknown): number {
  fn();
  let runs = 0;
  const started = performance.now();
  do {
    fn();
    runs++;
  } while (runs < 3 || performance.now() - started < MIN_MS);
  return ((performance.now() - started) * 1000) / runs;
}

const rand = prng(3541);

function shuffled<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

/** Naive A: materialize the pool (up to CAP addresses), drop excluded and allocated, return the first left. */
function naiveMaterialize(
  pool: IPRangeSet,
  excluded: IPRangeSet,
  allocated: bigint[],
): { ip?: bigint; capped: boolean } {
  const all = [...pool.values(CAP)];
  const taken = new Set(allocated);
  const left = all.filter((a) => !excluded.has(a) && !taken.has(a));
  return { ip: left[0], capped: all.length === CAP && left.length === 0 };
}

/** Naive B: probe pool addresses in order (up to CAP) against Sets of excluded and allocated addresses. */
function naiveProbe(
  pool: IPRangeSet,
  excluded: IPRangeSet,
  allocated: bigint[],
): { ip?: bigint; capped: boolean } {
  const taken = new Set(allocated);
  const skip = new Set(excluded.values(CAP));
  let visited = 0;
  for (const a of pool.values(CAP)) {
    visited++;
    if (!skip.has(a) && !taken.has(a)) return { ip: a, capped: false };
  }
  return { capped: visited === CAP };
}

type Scenario = { name: string; family: Family; pool: IPRangeSet; excluded: IPRangeSet; allocated: bigint[] };

function scenario(
  name: string,
  cidr: string,
  exclude: string[],
  firstAllocated: string,
  count: number,
): Scenario {
  const c = parseCIDR(cidr);
  const from = parseIP(firstAllocated).value;
  return {
    name,
    family: c.family,
    pool: IPRangeSet.fromCIDR(c),
    excluded: IPRangeSet.parse(c.family, exclude),
    allocated: shuffled(Array.from({ length: count }, (_, i) => from + BigInt(i))),
  };
}

const scenarios: Scenario[] = [
  scenario(
    "/24, 253 of 254 usable allocated",
    "192.0.2.0/24",
    ["192.0.2.0", "192.0.2.255"],
    "192.0.2.1",
    253,
  ),
  scenario("/19, 5000 allocated", "198.18.0.0/19", ["198.18.0.0", "198.18.31.255"], "198.18.0.1", 5000),
  scenario("/16, 5000 allocated", "198.18.0.0/16", ["198.18.0.0", "198.18.255.255"], "198.18.0.1", 5000),
  scenario(
    "/8-sized (IPv6 /104, 2^24 addresses), 5000 allocated",
    "2001:db8::/104",
    ["2001:db8::", "2001:db8::ff:ffff"],
    "2001:db8::1",
    5000,
  ),
  scenario(
    "/8-sized (IPv6 /104, 2^24 addresses), lower half excluded, 5000 allocated",
    "2001:db8::/104",
    ["2001:db8::-2001:db8::7f:ffff"],
    "2001:db8::80:0",
    5000,
  ),
  scenario("IPv6 /64, 5000 allocated", "2001:db8::/64", ["2001:db8::"], "2001:db8::1", 5000),
];

const fmt = (us: number) => (us >= 100 ? us.toFixed(0) : us.toFixed(1));
const rows: string[][] = [];
for (const s of scenarios) {
  const got = firstFree(s.pool, s.excluded, s.allocated);
  const a = naiveMaterialize(s.pool, s.excluded, s.allocated);
  const b = naiveProbe(s.pool, s.excluded, s.allocated);
  for (const ref of [a, b]) {
    if (!ref.capped && ref.ip !== got) {
      throw new Error(`${s.name}: naive answer ${ref.ip} differs from ${got}`);
    }
  }
  const tEngine = time(() => firstFree(s.pool, s.excluded, s.allocated));
  const tA = time(() => naiveMaterialize(s.pool, s.excluded, s.allocated));
  const tB = time(() => naiveProbe(s.pool, s.excluded, s.allocated));
  const mark = (r: { capped: boolean }) => (r.capped ? ">=" : "");
  rows.push([
    s.name,
    formatIP(s.family, got!),
    fmt(tEngine),
    mark(a) + fmt(tA),
    mark(a) + (tA / tEngine).toFixed(1) + "x",
    mark(b) + fmt(tB),
    mark(b) + (tB / tEngine).toFixed(1) + "x",
  ]);
}

function table(head: string[], body: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  console.log(line(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of body) console.log(line(r));
}

console.log(
  `firstFree (µs per call; allocated given as bigints in random order; naive runs stop after ${CAP} addresses)`,
);
table(["pool", "first free", "firstFree", "naive A", "A/engine", "naive B", "B/engine"], rows);

// Parsing and merging: 5,000 overlapping range strings per family, as in a large spec.ips or reserved-IP list.
function rangeTexts(family: Family, base: bigint, span: number): string[] {
  return Array.from({ length: 5000 }, () => {
    const start = base + BigInt(Math.floor(rand() * span));
    const len = BigInt(Math.floor(rand() * 16));
    return len === 0n
      ? formatIP(family, start)
      : `${formatIP(family, start)}-${formatIP(family, start + len)}`;
  });
}
const v4Texts = rangeTexts(4, parseIP("198.18.0.0").value, 65536);
const v6Texts = rangeTexts(6, parseIP("2001:db8::").value, 65536 * 4);
const v4Set = IPRangeSet.parse(4, v4Texts);
const v6Set = IPRangeSet.parse(6, v6Texts);
const v4Canonical = v4Set.toStrings();
const v4Other = IPRangeSet.parse(4, rangeTexts(4, parseIP("198.18.0.0").value, 65536));
const v4Keys = shuffled([...IPRangeSet.fromCIDR(parseCIDR("198.18.0.0/16")).values(5000)]).map((v) =>
  formatIP(4, v)
);
const v6Keys = shuffled([...IPRangeSet.fromCIDR(parseCIDR("2001:db8::/64")).values(5000)]).map((v) =>
  formatIP(6, v)
);

const ops: [string, () => unknown][] = [
  [
    `IPRangeSet.parse, 5000 IPv4 ranges (-> ${v4Set.ranges.length} merged)`,
    () => IPRangeSet.parse(4, v4Texts),
  ],
  [
    `IPRangeSet.parse, 5000 IPv6 ranges (-> ${v6Set.ranges.length} merged)`,
    () => IPRangeSet.parse(6, v6Texts),
  ],
  [
    `IPRangeSet.parse, ${v4Set.ranges.length} canonical IPv4 ranges (already merged)`,
    () => IPRangeSet.parse(4, v4Canonical),
  ],
  ["toStrings, IPv4 set above", () => v4Set.toStrings()],
  ["toStrings, IPv6 set above", () => v6Set.toStrings()],
  [
    `union of two IPv4 sets of ${v4Set.ranges.length} and ${v4Other.ranges.length} ranges`,
    () => v4Set.union(v4Other),
  ],
  [
    `subtract of two IPv4 sets of ${v4Set.ranges.length} and ${v4Other.ranges.length} ranges`,
    () => v4Set.subtract(v4Other),
  ],
  ["parseIP x5000 IPv4 (allocatedIPs keys)", () => v4Keys.map((k) => parseIP(k, 4).value)],
  ["parseIP x5000 IPv6 (allocatedIPs keys)", () => v6Keys.map((k) => parseIP(k, 6).value)],
  [
    "parse 5000 IPv6 keys + firstFree on a /64",
    () => firstFree(scenarios[5].pool, scenarios[5].excluded, v6Keys.map((k) => parseIP(k, 6).value)),
  ],
];
console.log("\nparsing, merging, formatting (µs per call)");
table(["operation", "µs"], ops.map(([name, fn]) => [name, fmt(time(fn))]));
