import assert from "node:assert/strict";
import type { AllocatedIPs } from "../../src/api/allocated.ts";
import { decodeAllocatedIPs } from "../../src/api/allocated.ts";
import type { SpiderIPPool } from "../../src/api/types.ts";
import { formatIP, IPRangeSet, parseIP } from "../../src/ip/mod.ts";
import {
  CandidatesExhaustedError,
  chooseIP,
  chooseIPs,
  PoolExhaustedError,
  poolStatusWith,
} from "../../src/ipam/mod.ts";

const pool = (ips: string[], spec: Partial<SpiderIPPool["spec"]> = {}, name = "v4-a"): SpiderIPPool => ({
  metadata: { name },
  spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips, ...spec },
});
const none4 = IPRangeSet.empty(4);
const req = (n: number | string) => ({ pod: `default/pod-${n}`, podUid: `uid-${n}` });
const rec = (n: number | string) => ({ pod: `default/pod-${n}`, podUid: `uid-${n}` });

Deno.test("chooseIP gives the first address of spec.ips and records the pod", () => {
  const r = chooseIP(pool(["192.0.2.10-192.0.2.20"]), none4, {}, req(1));
  assert.deepEqual(r, { ip: "192.0.2.10", reused: false, records: { "192.0.2.10": rec(1) } });
});

Deno.test("chooseIP skips excludeIPs, reserved IPs and allocated IPs", () => {
  const p = pool(["192.0.2.10-192.0.2.20"], { excludeIPs: ["192.0.2.10-192.0.2.11"] });
  const reserved = IPRangeSet.parse(4, ["192.0.2.13"]);
  const records = { "192.0.2.12": rec("x"), "192.0.2.14": rec("y") };
  assert.equal(chooseIP(p, reserved, records, req(1)).ip, "192.0.2.15");
});

Deno.test("chooseIP does not modify the records it is given", () => {
  const records: AllocatedIPs = { "192.0.2.10": rec("x") };
  chooseIP(pool(["192.0.2.10-192.0.2.20"]), none4, records, req(1));
  assert.deepEqual(records, { "192.0.2.10": rec("x") });
});

Deno.test("chooseIP returns the address the pod UID already holds (idempotent), whatever is free", () => {
  const records = { "192.0.2.15": rec(1), "192.0.2.10": rec("x") };
  const r = chooseIP(pool(["192.0.2.10-192.0.2.20"]), none4, records, req(1));
  assert.deepEqual([r.ip, r.reused], ["192.0.2.15", true]);
  assert.deepEqual(r.records, records);
});

Deno.test("chooseIP on a used-up pool throws PoolExhaustedError with counts and what to do", () => {
  const records: AllocatedIPs = {};
  for (let i = 1; i <= 254; i++) records[`192.0.2.${i}`] = rec(i);
  assert.throws(() => chooseIP(pool(["192.0.2.1-192.0.2.254"]), none4, records, req("new")), (e: unknown) => {
    assert.ok(e instanceof PoolExhaustedError);
    assert.equal(e.pool, "v4-a");
    assert.equal(e.reason, "no-free-ip");
    assert.equal(
      e.message,
      'no free IP in SpiderIPPool "v4-a" (254 of 254 allocated); add ips or another pool to ' +
        "ipam.spidernet.io/ippools",
    );
    return true;
  });
});

Deno.test("exhaustion message mentions reserved addresses when they are what is missing", () => {
  const reserved = IPRangeSet.parse(4, ["192.0.2.2"]);
  assert.throws(
    () => chooseIP(pool(["192.0.2.1-192.0.2.2"]), reserved, { "192.0.2.1": rec(1) }, req(2)),
    /\(1 of 2 allocated, 1 reserved\)/,
  );
});

Deno.test("chooseIP refuses a new record once the pool holds the maximum (5000 by default)", () => {
  const records: AllocatedIPs = {};
  for (let i = 0; i < 5000; i++) records[formatIP(4, parseIP("198.18.0.0").value + BigInt(i))] = rec(i);
  const big = pool(["198.18.0.0-198.19.255.255"], { subnet: "198.18.0.0/15" }, "big");
  assert.throws(() => chooseIP(big, none4, records, req("new")), (e: unknown) => {
    assert.ok(e instanceof PoolExhaustedError);
    assert.equal(e.reason, "max-allocated");
    assert.match(e.message, /holds 5000 allocated IPs.*SPIDERPOOL_IPPOOL_MAX_ALLOCATED_IPS=5000/);
    return true;
  });
  // A pod already in the pool still gets its address back.
  assert.equal(chooseIP(big, none4, records, req(7)).ip, "198.18.0.7");
  assert.throws(
    () => chooseIP(big, none4, { "198.18.0.0": rec(0) }, req(1), { maxAllocated: 1 }),
    /holds 1 allocated/,
  );
});

Deno.test("chooseIP is quick on an IPv6 /64 pool with thousands of records", () => {
  const p: SpiderIPPool = {
    metadata: { name: "v6-a" },
    spec: { ipVersion: 6, subnet: "2001:db8::/64", ips: ["2001:db8::-2001:db8::ffff:ffff:ffff:ffff"] },
  };
  const records: AllocatedIPs = {};
  const base = parseIP("2001:db8::").value;
  for (let i = 0; i < 4000; i++) records[formatIP(6, base + BigInt(i))] = rec(i);
  const t = performance.now();
  const r = chooseIP(p, IPRangeSet.empty(6), records, req("new"));
  assert.equal(r.ip, "2001:db8::fa0");
  assert.ok(performance.now() - t < 10_000, "a /64 must not be enumerated");
});

Deno.test("chooseIP returns the address handed out by a fully formatted status (decode round trip)", () => {
  const records = decodeAllocatedIPs('{"192.0.2.10":{"pod":"default/pod-x","podUid":"uid-x"}}', "v4-a");
  assert.equal(chooseIP(pool(["192.0.2.10-192.0.2.11"]), none4, records, req(1)).ip, "192.0.2.11");
});

Deno.test("chooseIP rejects reserved IPs of the wrong family with a clear error", () => {
  assert.throws(
    () => chooseIP(pool(["192.0.2.10"]), IPRangeSet.empty(6), {}, req(1)),
    /reserved IPs are IPv6/,
  );
});

Deno.test("chooseIPs serves a batch with distinct first-fit addresses in request order", () => {
  const { outcomes, records } = chooseIPs(
    pool(["192.0.2.10-192.0.2.14"]),
    none4,
    { "192.0.2.11": rec("x") },
    [req(1), req(2), req(3)],
  );
  assert.deepEqual(outcomes.map((o) => o.ok && o.value.ip), ["192.0.2.10", "192.0.2.12", "192.0.2.13"]);
  assert.equal(Object.keys(records).length, 4);
});

Deno.test("chooseIPs: only the requests that do not fit fail, each with its own exhaustion error", () => {
  const { outcomes, records } = chooseIPs(pool(["192.0.2.10-192.0.2.11"]), none4, {}, [
    req(1),
    req(2),
    req(3),
  ]);
  assert.deepEqual(outcomes.map((o) => o.ok), [true, true, false]);
  assert.ok(!outcomes[2].ok && outcomes[2].error instanceof PoolExhaustedError);
  assert.deepEqual(Object.keys(records).sort(), ["192.0.2.10", "192.0.2.11"]);
});

Deno.test("chooseIPs: two requests of the same pod UID (two NICs, one pool) get two addresses", () => {
  const { outcomes } = chooseIPs(pool(["192.0.2.10-192.0.2.20"]), none4, {}, [req(1), req(1)]);
  assert.deepEqual(outcomes.map((o) => o.ok && o.value.ip), ["192.0.2.10", "192.0.2.11"]);
  // Retried: each gets one of the held addresses back, lowest first, still distinct.
  const held = { "192.0.2.11": rec(1), "192.0.2.10": rec(1) };
  const again = chooseIPs(pool(["192.0.2.10-192.0.2.20"]), none4, held, [req(1), req(1)]).outcomes;
  assert.deepEqual(again.map((o) => o.ok && [o.value.ip, o.value.reused]), [["192.0.2.10", true], [
    "192.0.2.11",
    true,
  ]]);
});

Deno.test("chooseIP never hands back an address the pod already got for another NIC in this ADD", () => {
  // eth0 was committed first; net1 from the same pool, in a separate update, must not reuse it.
  const records = { "192.0.2.10": rec(1) };
  const r = chooseIP(pool(["192.0.2.10-192.0.2.20"]), none4, records, {
    ...req(1),
    otherNICs: ["192.0.2.10"],
  });
  assert.deepEqual([r.ip, r.reused], ["192.0.2.11", false]);
});

/** Mulberry32: a small seeded PRNG so the randomized test is reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("chooseIPs never gives an address twice and matches a brute-force model (seeded random)", () => {
  const rnd = prng(20261124);
  const ipOf = (i: number) => `192.0.2.${i}`;
  for (let round = 0; round < 300; round++) {
    // Random pool 1..40, random excludes, reserved, allocations and requests (some by holders).
    const lo = 1 + Math.floor(rnd() * 20);
    const hi = lo + Math.floor(rnd() * 20);
    const excluded = new Set<number>();
    const reserved = new Set<number>();
    for (let i = lo; i <= hi; i++) {
      if (rnd() < 0.15) excluded.add(i);
      else if (rnd() < 0.1) reserved.add(i);
    }
    const records: AllocatedIPs = {};
    for (let i = lo; i <= hi; i++) if (rnd() < 0.4) records[ipOf(i)] = rec(`held-${i % 3}-${i}`);
    const holders = Object.values(records).map((r) => r.podUid);
    const requests = Array.from(
      { length: 1 + Math.floor(rnd() * 8) },
      (_, k) =>
        holders.length > 0 && rnd() < 0.3
          ? { pod: "default/h", podUid: holders[Math.floor(rnd() * holders.length)] }
          : req(`r${round}-${k}`),
    );
    const p = pool([`${ipOf(lo)}-${ipOf(hi)}`], { excludeIPs: [...excluded].map(ipOf) });
    const res = IPRangeSet.parse(4, [...reserved].map(ipOf));

    // Model: held addresses of a UID are handed back lowest first, one per request; the rest first-fit.
    const taken = new Set(Object.keys(records).map((k) => Number(k.split(".")[3])));
    const held = new Map<string, number[]>();
    for (const [k, r] of Object.entries(records)) {
      held.set(r.podUid, [...(held.get(r.podUid) ?? []), Number(k.split(".")[3])].sort((a, b) => a - b));
    }
    const want: (string | undefined)[] = requests.map((r) => {
      const h = held.get(r.podUid)?.shift();
      return h === undefined ? undefined : ipOf(h);
    });
    requests.forEach((_, i) => {
      if (want[i] !== undefined) return;
      for (let a = lo; a <= hi; a++) {
        if (!excluded.has(a) && !reserved.has(a) && !taken.has(a)) {
          taken.add(a);
          want[i] = ipOf(a);
          return;
        }
      }
      want[i] = "exhausted";
    });

    const { outcomes, records: out } = chooseIPs(p, res, records, requests);
    const got = outcomes.map((o) => (o.ok ? o.value.ip : "exhausted"));
    assert.deepEqual(got, want, `round ${round}`);
    const given = got.filter((g) => g !== "exhausted");
    assert.equal(new Set(given).size, given.length, `round ${round}: an address was given twice`);
    for (const ip of given) assert.ok(out[ip], `round ${round}: ${ip} not recorded`);
    assert.deepEqual(chooseIPs(p, res, records, requests).outcomes, outcomes, "deterministic");
  }
});

Deno.test("poolStatusWith encodes records, counts them and drops allocatedIPs when empty", () => {
  const p = {
    ...pool(["192.0.2.10-192.0.2.20"]),
    status: { totalIPCount: 11, allocatedIPCount: 1, allocatedIPs: "{}" },
  };
  assert.deepEqual(poolStatusWith(p, { "192.0.2.10": rec(1) }), {
    totalIPCount: 11,
    allocatedIPCount: 1,
    allocatedIPs: '{"192.0.2.10":{"pod":"default/pod-1","podUid":"uid-1"}}',
  });
  assert.deepEqual(poolStatusWith(p, {}), { totalIPCount: 11, allocatedIPCount: 0 });
});

Deno.test("CandidatesExhaustedError lists every tried pool with its own reason", () => {
  const errs = ["v4-a", "v4-b"].map((name) => {
    try {
      chooseIP(pool(["192.0.2.10"], {}, name), none4, { "192.0.2.10": rec("x") }, req(1));
    } catch (e) {
      return e as PoolExhaustedError;
    }
    throw new Error("expected exhaustion");
  });
  const e = new CandidatesExhaustedError(4, "eth0", errs);
  assert.match(
    e.message,
    /^no free IP in any IPv4 IPPool \["v4-a","v4-b"\] of eth0: no free IP in SpiderIPPool "v4-a" \(1 of 1 allocated\).*; no free IP in SpiderIPPool "v4-b"/,
  );
});

Deno.test("chooseIPs stops at the maximum in the middle of a batch; later requests get max-allocated", () => {
  const { outcomes } = chooseIPs(pool(["192.0.2.10-192.0.2.20"]), none4, { "192.0.2.10": rec("x") }, [
    req(1),
    req(2),
    req(3),
  ], { maxAllocated: 2 });
  assert.deepEqual(outcomes.map((o) => (o.ok ? o.value.ip : o.error.reason)), [
    "192.0.2.11",
    "max-allocated",
    "max-allocated",
  ]);
});

Deno.test("chooseIPs: records outside spec.ips or of the other family neither block nor get reused", () => {
  const records = {
    "192.0.2.200": rec("outside"),
    "2001:db8::10": rec(1),
    "not-an-ip": rec("junk"),
  };
  const r = chooseIP(pool(["192.0.2.10-192.0.2.20"]), none4, records, req(1));
  assert.deepEqual([r.ip, r.reused], ["192.0.2.10", false]);
  assert.ok(r.records["192.0.2.200"] && r.records["not-an-ip"], "foreign records are kept");
});

Deno.test("chooseIPs serves a batch of 500 pods in a pool with 4000 records, lowest free first", () => {
  const p = pool(["198.18.0.0-198.19.255.255"], { subnet: "198.18.0.0/15" }, "big");
  const records: AllocatedIPs = {};
  const base = parseIP("198.18.0.0").value;
  for (let i = 0; i < 8000; i += 2) records[formatIP(4, base + BigInt(i))] = rec(`old-${i}`);
  const requests = Array.from({ length: 500 }, (_, i) => req(`new-${i}`));
  const { outcomes } = chooseIPs(p, none4, records, requests);
  const ips = outcomes.map((o) => o.ok && o.value.ip);
  assert.equal(new Set(ips).size, 500);
  assert.equal(ips[0], "198.18.0.1");
  assert.equal(ips[499], "198.18.3.231");
});

Deno.test("chooseIP never hands out the gateway, addresses outside the subnet or excluded ones (issue report)", () => {
  // subnet 198.51.100.0/28, ips [198.51.100.1], gateway 198.51.100.1: nothing to hand out.
  const onlyGateway = pool(["198.51.100.1"], { subnet: "198.51.100.0/28", gateway: "198.51.100.1" });
  assert.throws(() => chooseIP(onlyGateway, none4, {}, req(1)), (e: unknown) => {
    assert.ok(e instanceof PoolExhaustedError);
    assert.equal(e.total, 0n);
    assert.match(
      e.message,
      /no free IP in SpiderIPPool "v4-a": it has no address to hand out \(spec.ips within/,
    );
    return true;
  });
  // ips reaching outside the subnet: only the part inside is handed out, in order, then the pool is full.
  const wide = pool(["198.51.100.1-198.51.100.17", "203.0.113.9"], { subnet: "198.51.100.16/28" });
  let records: AllocatedIPs = {};
  const got: string[] = [];
  for (let i = 0; i < 2; i++) {
    const r = chooseIP(wide, none4, records, req(i));
    got.push(r.ip);
    records = r.records;
  }
  assert.deepEqual(got, ["198.51.100.16", "198.51.100.17"]);
  assert.throws(() => chooseIP(wide, none4, records, req(9)), /\(2 of 2 allocated\)/);
});
