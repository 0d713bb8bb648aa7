// formatChaos: every figure of a chaos report reaches the printed lines, recovery per fault kind and, for the
// API server, per signal (a SIGTERM drains open watches for up to a minute, a SIGKILL does not: one mean of
// both would describe neither).

import assert from "node:assert/strict";
import { type ChaosReport, FAULTS, formatChaos } from "./world.ts";

const report: ChaosReport = {
  ops: 10004,
  adds: 5498,
  addFailures: 363,
  exhausted: 86,
  addRetries: 109,
  addFailureCodes: { "code 100": 341, "code 11": 22 },
  addFailureDuringApiOutage: "code 100: fetch failed",
  dels: 4506,
  delFailures: 40,
  pods: 5389,
  forceDeletes: 1509,
  forceDeletesInFlight: 551,
  faults: { "agent-kill": 1, "agent-stop": 1, "leader-kill": 1, "etcd-pause": 1, "apiserver-restart": 3 },
  duplicates: [],
  leaks: { records: 0, endpoints: 0, finalizers: 0, countMismatch: 0 },
  reclaimMs: 400,
  crashes: [],
  leaderTakeoverMs: [4400],
  agentRecoveryMs: [1370],
  recovery: {
    "agent-kill": [{ outageMs: 1370, firstAddMs: 1459 }],
    "agent-stop": [{ outageMs: 2044, firstAddMs: 1367 }],
    "leader-kill": [{ outageMs: 4400 }],
    "etcd-pause": [{ outageMs: 1851, firstAddMs: 484 }],
    "apiserver-restart": [
      { outageMs: 5000, firstAddMs: 700, via: "SIGKILL" },
      { outageMs: 7000, firstAddMs: 900, via: "SIGKILL" },
      { outageMs: 67520, firstAddMs: 1616, via: "SIGTERM" },
    ],
  },
  pool: { size: 10, peakRecords: 10, samples: 1044, nearFull: 38 },
  exhaustion: {
    held: 10,
    recordsAtRefusal: 10,
    message: "no free IP in SpiderIPPool",
    addAfterReleaseMs: 2069,
  },
  apiServerRestarts: { SIGKILL: 2, SIGTERM: 1 },
  durationMs: 1291700,
  recordsAtQuiescence: 0,
  agentResources: { pid: 1, warm: { rssMiB: 60.3, fds: 37 }, end: { rssMiB: 60.8, fds: 39 }, ops: 9003 },
};

Deno.test("formatChaos prints every figure, recovery per fault kind and per API server signal", () => {
  const text = formatChaos(report);
  for (
    const figure of [
      "10004 CNI calls",
      "363 failed of which 86 pool exhausted",
      "109 retried",
      "code 100: 341, code 11: 22",
      "1509 force-deleted (551 with the ADD in flight)",
      "apiserver-restart 3",
      "SIGKILL 2, SIGTERM 1",
      "peak 10 records; 38 of 1044",
      "refused with 10 pods held and 10 records",
      "next ADD ok 2069 ms",
      "duplicates     0",
      "records 0, SpiderEndpoints 0, finalizers 0",
      "after 0.4 s",
      "RSS 60.3 → 60.8 MiB, open fds 37 → 39",
    ]
  ) assert.ok(text.includes(figure), `missing "${figure}" in:\n${text}`);
  for (const f of FAULTS) assert.match(text, new RegExp(`^  ${f} +×`, "m"));
  assert.match(
    text,
    /×2: kube-apiserver SIGKILL → \/readyz ok again mean 6000 ms, max 7000 ms; then first ADD ok mean 800 ms/,
  );
  assert.match(text, /×1: kube-apiserver SIGTERM → \/readyz ok again mean 67520 ms/);
  assert.match(text, /leader-kill +×1: .* then first ADD ok - \(1 without\)/);
});
