// Randomized comparison of IPRangeSet and firstFree against a brute-force model: a set over a 64-address window
// is a boolean array. Windows sit at interesting places: an ordinary IPv4 /26, the top of each family (where
// end + 1 overflows the family), an IPv6 window crossing a group boundary, and one leaving the IPv4-mapped block.
import assert from "node:assert/strict";
import { type Family, firstFree, formatIP, IPRangeSet, parseIP, type Range } from "../../src/ip/mod.ts";
import { prng } from "./_helpers.ts";

const SEED = 20260412;
const CASES_PER_WINDOW = 1000;
const SIZE = 64;

const WINDOWS: { name: string; family: Family; base: bigint }[] = [
  { name: "IPv4 192.0.2.0/26", family: 4, base: parseIP("192.0.2.0").value },
  { name: "IPv4 top 255.255.255.192/26", family: 4, base: parseIP("255.255.255.192").value },
  { name: "IPv6 2001:db8::ffe0 +64", family: 6, base: parseIP("2001:db8::ffe0").value },
  { name: "IPv6 ::ffff:255.255.255.224 +64", family: 6, base: parseIP("::ffff:255.255.255.224").value },
  {
    name: "IPv6 top ffff:...:ffc0 +64",
    family: 6,
    base: parseIP("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffc0").value,
  },
];

type Model = boolean[];

/** Random ranges inside the window (overlapping, adjacent, duplicated, in random order) and the model they make. */
function randomSet(rand: () => number, base: bigint): { ranges: Range[]; model: Model } {
  const model: Model = new Array(SIZE).fill(false);
  const ranges: Range[] = [];
  const n = Math.floor(rand() * 6);
  for (let k = 0; k < n; k++) {
    const start = Math.floor(rand() * SIZE);
    const len = rand() < 0.3 ? 1 : 1 + Math.floor(rand() * (rand() < 0.8 ? 8 : SIZE));
    const end = Math.min(SIZE - 1, start + len - 1);
    ranges.push({ start: base + BigInt(start), end: base + BigInt(end) });
    for (let i = start; i <= end; i++) model[i] = true;
  }
  return { ranges, model };
}

/** Builds the set either from ranges or from their text, so parsing is exercised too. */
function build(rand: () => number, family: Family, ranges: Range[]): IPRangeSet {
  if (rand() < 0.5) return IPRangeSet.fromRanges(family, ranges);
  const text = ranges.map((r) => (r.start === r.end && rand() < 0.5 ? "" : `-${formatIP(family, r.end)}`))
    .map((tail, i) => formatIP(family, ranges[i].start) + tail);
  return IPRangeSet.parse(family, text);
}

function modelStrings(family: Family, base: bigint, m: Model): string[] {
  const out: string[] = [];
  for (let i = 0; i < SIZE; i++) {
    if (!m[i]) continue;
    let j = i;
    while (j + 1 < SIZE && m[j + 1]) j++;
    const a = formatIP(family, base + BigInt(i));
    out.push(i === j ? a : `${a}-${formatIP(family, base + BigInt(j))}`);
    i = j;
  }
  return out;
}

function members(base: bigint, m: Model): bigint[] {
  return m.flatMap((on, i) => (on ? [base + BigInt(i)] : []));
}

const and = (a: Model, b: Model) => a.map((x, i) => x && b[i]);
const or = (a: Model, b: Model) => a.map((x, i) => x || b[i]);
const minus = (a: Model, b: Model) => a.map((x, i) => x && !b[i]);

for (const { name, family, base } of WINDOWS) {
  Deno.test(`IPRangeSet and firstFree agree with a brute-force model over ${name}`, () => {
    const seed = SEED ^ Number(base & 0xffffn);
    const rand = prng(seed);
    for (let n = 0; n < CASES_PER_WINDOW; n++) {
      const x = randomSet(rand, base);
      const y = randomSet(rand, base);
      const a = build(rand, family, x.ranges);
      const b = build(rand, family, y.ranges);
      const ctx = `seed ${seed}, case ${n}: a = ${JSON.stringify(a.toStrings())}, b = ${
        JSON.stringify(b.toStrings())
      }`;

      assert.deepEqual(a.toStrings(), modelStrings(family, base, x.model), ctx);
      assert.deepEqual(
        a.union(b).toStrings(),
        modelStrings(family, base, or(x.model, y.model)),
        `union; ${ctx}`,
      );
      assert.deepEqual(
        a.subtract(b).toStrings(),
        modelStrings(family, base, minus(x.model, y.model)),
        `sub; ${ctx}`,
      );
      assert.deepEqual(
        a.intersect(b).toStrings(),
        modelStrings(family, base, and(x.model, y.model)),
        `and; ${ctx}`,
      );
      assert.equal(a.count(), BigInt(x.model.filter(Boolean).length), `count; ${ctx}`);
      assert.equal(a.isEmpty(), !x.model.some(Boolean), `isEmpty; ${ctx}`);
      assert.equal(a.containsSet(b), !minus(y.model, x.model).some(Boolean), `containsSet; ${ctx}`);
      assert.equal(a.overlaps(b), and(x.model, y.model).some(Boolean), `overlaps; ${ctx}`);
      assert.equal(a.equals(b), x.model.every((v, i) => v === y.model[i]), `equals; ${ctx}`);
      assert.deepEqual([...a.values()], members(base, x.model), `values; ${ctx}`);
      for (let i = 0; i < SIZE; i++) assert.equal(a.has(base + BigInt(i)), x.model[i], `has(+${i}); ${ctx}`);
      assert.equal(a.has(base - 1n), false, `has(base-1); ${ctx}`);

      // firstFree(pool = a, excluded = b, allocated = random offsets, duplicates and outsiders included).
      const allocated: bigint[] = [];
      const allocModel: Model = new Array(SIZE).fill(false);
      const k = Math.floor(rand() * (rand() < 0.5 ? 8 : 64));
      for (let i = 0; i < k; i++) {
        const off = Math.floor(rand() * SIZE);
        allocated.push(base + BigInt(off));
        allocModel[off] = true;
      }
      if (rand() < 0.2) allocated.push(base - 1n);
      const free = minus(minus(x.model, y.model), allocModel).indexOf(true);
      const expected = free === -1 ? undefined : base + BigInt(free);
      assert.equal(firstFree(a, b, allocated), expected, `firstFree(allocated ${allocated.length}); ${ctx}`);
    }
  });
}

// Wide pools take other code paths in firstFree (64-bit offsets within one /64, 64-bit offsets across /64s, and
// plain bigints beyond 2^64). Model address i is base + i * stride, and sets are built from single addresses.
const WIDE: { name: string; base: bigint; stride: bigint }[] = [
  { name: "within one /64", base: parseIP("2001:db8::").value, stride: 1n << 57n },
  { name: "across /64 boundaries", base: parseIP("2001:db8::8000:0:0:0").value, stride: 1n << 60n },
  { name: "wider than 2^64", base: parseIP("2001:db8::").value, stride: 1n << 70n },
];

for (const { name, base, stride } of WIDE) {
  Deno.test(`firstFree agrees with a brute-force model on pools ${name}`, () => {
    const seed = SEED ^ Number(stride >> 50n);
    const rand = prng(seed);
    const at = (i: number) => base + BigInt(i) * stride;
    const points = (m: Model) =>
      IPRangeSet.fromRanges(6, members(0n, m).map((i) => ({ start: at(Number(i)), end: at(Number(i)) })));
    for (let n = 0; n < CASES_PER_WINDOW; n++) {
      const pool: Model = Array.from({ length: SIZE }, () => rand() < 0.6);
      const excluded: Model = Array.from({ length: SIZE }, () => rand() < 0.2);
      const allocModel: Model = new Array(SIZE).fill(false);
      const allocated: bigint[] = [];
      for (let k = Math.floor(rand() * 64); k > 0; k--) {
        const i = Math.floor(rand() * SIZE);
        allocated.push(at(i));
        allocModel[i] = true;
      }
      allocated.push(at(0) - 1n, at(SIZE - 1) + 1n, at(3) + 1n); // near misses: never in the pool
      const free = minus(minus(pool, excluded), allocModel).indexOf(true);
      const ctx = `seed ${seed}, case ${n}: pool ${pool.map(Number).join("")}, excluded ${
        excluded.map(Number).join("")
      }`;
      assert.equal(
        firstFree(points(pool), points(excluded), allocated),
        free === -1 ? undefined : at(free),
        ctx,
      );
    }
  });
}
