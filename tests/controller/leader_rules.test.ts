// The election rules of src/controller/leader.ts as plain functions: observation, decision, lease contents,
// durations; then a randomised simulation of replicas with skewed and drifting clocks, slow answers and stopped
// processes, checking that no two replicas may ever act as leader at the same real moment.
import assert from "node:assert/strict";
import {
  decide,
  DEFAULT_TIMINGS,
  LeaderConfigError,
  type Lease,
  leaseSpecFor,
  microTime,
  NO_OBSERVATION,
  type Observation,
  observe,
  releasedSpec,
  termValidUntil,
  timingsFromEnv,
  validateTimings,
} from "../../src/controller/leader.ts";

const lease = (rv: string, holder: string | undefined, seconds: number | undefined = 15): Lease => ({
  metadata: { name: "spiderpool-controller-leases", resourceVersion: rv },
  spec: { holderIdentity: holder, leaseDurationSeconds: seconds, leaseTransitions: 3 },
});

Deno.test("observe: a new version held by another replica starts its expiry clock at now + its duration", () => {
  const o = observe(NO_OBSERVATION, lease("5", "a", 15), "b", 1_000, 99_000);
  assert.deepEqual(o, { resourceVersion: "5", holder: "a", othersValidUntil: 16_000 });
});

Deno.test("observe: the same version seen again does not restart the clock", () => {
  const first = observe(NO_OBSERVATION, lease("5", "a"), "b", 1_000, 15_000);
  assert.equal(observe(first, lease("5", "a"), "b", 14_000, 15_000), first);
});

Deno.test("observe: a renewal (new version) restarts the clock, never earlier than before", () => {
  const first = observe(NO_OBSERVATION, lease("5", "a", 15), "b", 1_000, 15_000);
  assert.equal(observe(first, lease("6", "a", 15), "b", 3_000, 15_000).othersValidUntil, 18_000);
  // A shorter duration in the new version cannot shorten what was promised by the previous one.
  assert.equal(observe(first, lease("6", "a", 1), "b", 3_000, 15_000).othersValidUntil, 16_000);
});

Deno.test("observe: a missing or zero leaseDurationSeconds falls back to our own duration", () => {
  const unset: Lease = { metadata: { name: "l", resourceVersion: "5" }, spec: { holderIdentity: "a" } };
  assert.equal(observe(NO_OBSERVATION, unset, "b", 0, 7_000).othersValidUntil, 7_000);
  assert.equal(observe(NO_OBSERVATION, lease("5", "a", 0), "b", 0, 7_000).othersValidUntil, 7_000);
});

Deno.test("observe: a released lease (no holder) or our own lease clears the expiry", () => {
  const held = observe(NO_OBSERVATION, lease("5", "a"), "b", 0, 15_000);
  assert.deepEqual(observe(held, lease("6", ""), "b", 1, 15_000), {
    resourceVersion: "6",
    holder: "",
    othersValidUntil: -Infinity,
  });
  assert.equal(observe(held, lease("6", undefined), "b", 1, 15_000).othersValidUntil, -Infinity);
  assert.equal(observe(held, lease("6", "b"), "b", 1, 15_000).othersValidUntil, -Infinity);
});

Deno.test("observe: a deleted lease keeps the previous holder's expiry", () => {
  const held = observe(NO_OBSERVATION, lease("5", "a"), "b", 0, 15_000);
  assert.deepEqual(observe(held, undefined, "b", 5_000, 15_000), { holder: "a", othersValidUntil: 15_000 });
  assert.deepEqual(observe(NO_OBSERVATION, undefined, "b", 5_000, 15_000), {
    holder: undefined,
    othersValidUntil: -Infinity,
  });
});

Deno.test("decide: every case of lease state × holder × expiry", () => {
  const cases: [string, Observation, Lease | undefined, number, ReturnType<typeof decide>][] = [
    ["absent, nobody seen", NO_OBSERVATION, undefined, 0, { kind: "create" }],
    ["absent, holder expired", { holder: "a", othersValidUntil: 10 }, undefined, 10, { kind: "create" }],
    [
      "absent, deleted while still valid",
      { holder: "a", othersValidUntil: 10 },
      undefined,
      9,
      { kind: "wait", holder: "a", untilMs: 10 },
    ],
    ["ours", { othersValidUntil: 0 }, lease("1", "me"), 0, { kind: "renew" }],
    ["ours, even if we saw another before", { othersValidUntil: 99 }, lease("1", "me"), 0, { kind: "renew" }],
    ["released (empty)", { othersValidUntil: 0 }, lease("1", ""), 0, { kind: "acquire", from: "" }],
    ["released (absent field)", { othersValidUntil: 0 }, lease("1", undefined), 0, {
      kind: "acquire",
      from: "",
    }],
    [
      "other, valid",
      { resourceVersion: "1", holder: "a", othersValidUntil: 10 },
      lease("1", "a"),
      9,
      { kind: "wait", holder: "a", untilMs: 10 },
    ],
    [
      "other, expired exactly now",
      { resourceVersion: "1", holder: "a", othersValidUntil: 10 },
      lease("1", "a"),
      10,
      { kind: "acquire", from: "a" },
    ],
    [
      "other, long expired",
      { resourceVersion: "1", holder: "a", othersValidUntil: 10 },
      lease("1", "a"),
      1e9,
      { kind: "acquire", from: "a" },
    ],
  ];
  for (const [what, obs, l, now, want] of cases) assert.deepEqual(decide(obs, l, "me", now), want, what);
});

Deno.test("a monotonic clock with a negative origin still lets a held lease expire", () => {
  const obs = observe(NO_OBSERVATION, lease("5", "a", 15), "b", -2_000_000, 15_000);
  assert.deepEqual(decide(obs, lease("5", "a"), "b", -1_985_001), {
    kind: "wait",
    holder: "a",
    untilMs: -1_985_000,
  });
  assert.deepEqual(decide(obs, lease("5", "a"), "b", -1_985_000), { kind: "acquire", from: "a" });
  assert.deepEqual(decide(NO_OBSERVATION, undefined, "b", -5), { kind: "create" });
});

Deno.test("decide: a replica that just started waits a whole lease duration on a lease held by another", () => {
  // Even if the lease's renewTime is hours old by our wall clock: remote timestamps are never trusted.
  const l = {
    ...lease("9", "a"),
    spec: { ...lease("9", "a").spec, renewTime: "2000-01-01T00:00:00.000000Z" },
  };
  const obs = observe(NO_OBSERVATION, l, "b", 500, 15_000);
  assert.deepEqual(decide(obs, l, "b", 500), { kind: "wait", holder: "a", untilMs: 15_500 });
  assert.deepEqual(decide(obs, l, "b", 15_499), { kind: "wait", holder: "a", untilMs: 15_500 });
  assert.deepEqual(decide(obs, l, "b", 15_500), { kind: "acquire", from: "a" });
});

Deno.test("leaseSpecFor: create, renew (same term and new term) and acquire", () => {
  const wall = new Date("2026-12-01T10:00:00.123Z");
  const now = "2026-12-01T10:00:00.123000Z";
  assert.deepEqual(leaseSpecFor({ kind: "create" }, undefined, "me", wall, 15_000, false), {
    holderIdentity: "me",
    leaseDurationSeconds: 15,
    acquireTime: now,
    renewTime: now,
    leaseTransitions: 0,
  });
  const mine = lease("1", "me");
  mine.spec!.acquireTime = "2026-12-01T09:00:00.000000Z";
  assert.equal(
    leaseSpecFor({ kind: "renew" }, mine, "me", wall, 15_000, true).acquireTime,
    mine.spec!.acquireTime,
  );
  assert.equal(leaseSpecFor({ kind: "renew" }, mine, "me", wall, 15_000, true).leaseTransitions, 3);
  assert.equal(leaseSpecFor({ kind: "renew" }, mine, "me", wall, 15_000, false).acquireTime, now);
  const taken = leaseSpecFor({ kind: "acquire", from: "a" }, lease("1", "a"), "me", wall, 2_500, false);
  assert.deepEqual(taken, {
    holderIdentity: "me",
    leaseDurationSeconds: 3,
    acquireTime: now,
    renewTime: now,
    leaseTransitions: 4,
  });
});

Deno.test("releasedSpec has no holder, so others take the lease at once", () => {
  const spec = releasedSpec(lease("1", "me"), new Date(0));
  assert.equal(spec.holderIdentity, undefined);
  assert.equal(spec.leaseTransitions, 3);
  assert.deepEqual(
    decide(
      observe(NO_OBSERVATION, { ...lease("2", ""), spec }, "b", 0, 15_000),
      { ...lease("2", ""), spec },
      "b",
      0,
    ),
    {
      kind: "acquire",
      from: "",
    },
  );
});

Deno.test("microTime writes exactly six fractional digits", () => {
  assert.equal(microTime(new Date("2026-01-02T03:04:05.007Z")), "2026-01-02T03:04:05.007000Z");
  assert.match(microTime(new Date()), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
});

Deno.test("termValidUntil: renewDeadline after the round began, none when the answer came later", () => {
  assert.equal(termValidUntil(1_000, 1_050, 10_000), 11_000);
  assert.equal(termValidUntil(1_000, 10_999, 10_000), 11_000);
  assert.equal(termValidUntil(1_000, 11_000, 10_000), undefined);
});

Deno.test("validateTimings and timingsFromEnv: defaults, parsing and every refused combination", () => {
  assert.deepEqual(timingsFromEnv(() => undefined), DEFAULT_TIMINGS);
  assert.deepEqual(timingsFromEnv(() => ""), DEFAULT_TIMINGS);
  const env: Record<string, string> = {
    SPIDERPOOL_LEADER_DURATION: "4",
    SPIDERPOOL_LEADER_RENEW_DEADLINE: "2.5s",
    SPIDERPOOL_LEADER_RETRY_PERIOD: "0.5",
  };
  assert.deepEqual(timingsFromEnv((k) => env[k]), {
    leaseDurationMs: 4_000,
    renewDeadlineMs: 2_500,
    retryPeriodMs: 500,
  });
  assert.throws(
    () => timingsFromEnv((k) => (k === "SPIDERPOOL_LEADER_DURATION" ? "15m" : undefined)),
    (e: Error) => e instanceof LeaderConfigError && /SPIDERPOOL_LEADER_DURATION="15m"/.test(e.message),
  );
  assert.throws(
    () => validateTimings({ leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }),
    /must be greater than SPIDERPOOL_LEADER_RENEW_DEADLINE/,
  );
  assert.throws(
    () => validateTimings({ leaseDurationMs: 15_000, renewDeadlineMs: 2_400, retryPeriodMs: 2_000 }),
    /greater than 1.2 × SPIDERPOOL_LEADER_RETRY_PERIOD/,
  );
  assert.throws(
    () => validateTimings({ leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 0 }),
    /> 0/,
  );
});

// ---------------------------------------------------------------------------------------------------------------
// Simulation: replicas run rounds (read, decide, write with the read resourceVersion) against a linearisable
// store, each on its own clock (any offset, rate within ±1 %), with random network delays and random stops of up
// to 30 s at the worst places (after reading, before writing). A replica may act as leader from a successful
// write's answer until its clock reaches termValidUntil, or until it sees it lost. The property: the acting
// periods of different replicas never overlap in real time.

function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface SimReplica {
  id: string;
  offset: number;
  rate: number;
  obs: Observation;
  leading: boolean;
  acting: [number, number][];
  dead: boolean;
}

interface Sim {
  lease?: Lease;
  rv: number;
  events: { t: number; run: () => void }[];
}

export function simulate(seed: number, opts: { pauses: boolean; killAt?: number }) {
  const rand = rng(seed);
  const { leaseDurationMs, renewDeadlineMs, retryPeriodMs } = DEFAULT_TIMINGS;
  const sim: Sim = { rv: 0, events: [] };
  const at = (t: number, run: () => void) => sim.events.push({ t, run });
  const delay = () => (rand() < 0.05 ? rand() * 4_000 : rand() * 30);
  const pause = () => (opts.pauses && rand() < 0.03 ? rand() * 30_000 : 0);
  const replicas: SimReplica[] = ["a", "b", "c"].map((id) => ({
    id,
    offset: (rand() - 0.5) * 1e7, // clocks hours apart
    rate: 0.99 + rand() * 0.02,
    obs: NO_OBSERVATION,
    leading: false,
    acting: [],
    dead: false,
  }));
  const local = (r: SimReplica, t: number) => r.offset + r.rate * t;
  const real = (r: SimReplica, l: number) => (l - r.offset) / r.rate;
  const lose = (r: SimReplica, t: number) => {
    r.leading = false;
    for (const iv of r.acting) iv[1] = Math.min(iv[1], t);
  };
  const round = (r: SimReplica, t0: number) => {
    if (r.dead) return;
    const sentAt = local(r, t0);
    const readAt = t0 + delay();
    at(readAt, () => {
      const read = sim.lease && structuredClone(sim.lease);
      const answered = readAt + delay() + pause();
      at(answered, () => {
        if (r.dead) return;
        const now = local(r, answered);
        r.obs = observe(r.obs, read, r.id, now, leaseDurationMs);
        const action = decide(r.obs, read, r.id, now);
        const next = answered + retryPeriodMs * (1 + rand() * 0.2);
        if (action.kind === "wait") {
          if (r.leading) lose(r, answered);
          at(next, () => round(r, next));
          return;
        }
        if (r.leading && read === undefined) lose(r, answered);
        const spec = leaseSpecFor(action, read, r.id, new Date(0), leaseDurationMs, r.leading);
        const commitAt = answered + pause() + delay();
        at(commitAt, () => {
          const ok = read === undefined
            ? sim.lease === undefined
            : sim.lease?.metadata.resourceVersion === read.metadata.resourceVersion;
          if (ok) sim.lease = { metadata: { name: "l", resourceVersion: String(++sim.rv) }, spec };
          const answeredWrite = commitAt + delay() + pause();
          at(answeredWrite, () => {
            if (r.dead) return;
            if (!ok) {
              if (r.leading) lose(r, answeredWrite);
              at(answeredWrite, () => round(r, answeredWrite));
              return;
            }
            const until = termValidUntil(sentAt, local(r, answeredWrite), renewDeadlineMs);
            if (until !== undefined) {
              r.leading = true;
              r.obs = { resourceVersion: String(sim.rv), holder: r.id, othersValidUntil: -Infinity };
              r.acting.push([answeredWrite, real(r, until)]);
            }
            const n = answeredWrite + retryPeriodMs;
            at(n, () => round(r, n));
          });
        });
      });
    });
  };
  for (const r of replicas) {
    const t = rand() * 3_000;
    at(t, () => round(r, t));
  }
  let killed: { id: string; at: number } | undefined;
  const end = 300_000;
  while (sim.events.length > 0) {
    sim.events.sort((x, y) => x.t - y.t);
    const e = sim.events.shift()!;
    if (e.t > end) break;
    if (opts.killAt !== undefined && !killed && e.t >= opts.killAt) {
      const leader = replicas.find((r) => r.leading && r.acting.some(([s, f]) => s <= e.t && e.t < f));
      if (leader) {
        leader.dead = true;
        lose(leader, e.t);
        killed = { id: leader.id, at: e.t };
      }
    }
    e.run();
  }
  return { replicas, killed };
}

Deno.test("simulation: with skewed, drifting clocks, slow answers and stopped processes, leaders never overlap", () => {
  let terms = 0;
  for (let seed = 1; seed <= 400; seed++) {
    const { replicas } = simulate(seed, { pauses: true });
    for (const a of replicas) {
      for (const b of replicas) {
        if (a === b) continue;
        for (const [s1, e1] of a.acting) {
          for (const [s2, e2] of b.acting) {
            assert.ok(
              e1 <= s2 || e2 <= s1,
              `seed ${seed}: ${a.id} acted ${s1}–${e1} while ${b.id} acted ${s2}–${e2}`,
            );
          }
        }
      }
      terms += a.acting.length;
    }
  }
  assert.ok(terms > 400, `the simulation elected leaders (${terms} renewals)`);
});

Deno.test("simulation: a killed leader is replaced within lease duration + one jittered retry period", () => {
  const { leaseDurationMs, retryPeriodMs } = DEFAULT_TIMINGS;
  for (let seed = 1; seed <= 200; seed++) {
    const { replicas, killed } = simulate(seed, { pauses: false, killAt: 60_000 });
    assert.ok(killed, `seed ${seed}: someone led at 60 s`);
    const next = Math.min(
      ...replicas.filter((r) => r.id !== killed.id).flatMap((r) =>
        r.acting.map(([s]) => s).filter((s) => s > killed.at)
      ),
    );
    // The expiry clock of the others started when they last saw a renewal, at most one retry period before the
    // kill; slow answers (up to 4 s, 5 % of requests) and clock rates (±1 %) add the rest of the bound.
    const bound = leaseDurationMs * 1.02 + retryPeriodMs * 2.4 + 4 * 4_000;
    assert.ok(
      next - killed.at <= bound,
      `seed ${seed}: replaced after ${next - killed.at} ms (bound ${bound})`,
    );
  }
});
