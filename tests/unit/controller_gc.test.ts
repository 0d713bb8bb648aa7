// The IP GC's settings (every switch of spec §6 by its environment name, with upstream's defaults) and its
// traced-pod database (cap, idempotent updates, retries).

import assert from "node:assert/strict";
import { defaultGcConfig, GC_ENV, GcConfigError, gcConfigFrom } from "../../src/controller/gc/config.ts";
import { verifyByList } from "../../src/controller/gc/gc.ts";
import { TraceDb, TraceDbFullError } from "../../src/controller/gc/trace_db.ts";
import type { TraceEntry } from "../../src/ipam/gc.ts";

Deno.test("gc config: upstream's defaults when nothing is set", () => {
  const c = defaultGcConfig();
  assert.deepEqual(
    {
      enabled: c.enabled,
      ready: c.terminatingOnReadyNode,
      notReady: c.terminatingOnNotReadyNode,
      runningNoIPs: c.runningOnEmptyPodIPs,
      interval: c.intervalMs,
      delay: c.additionalGraceDelayMs,
      gap: c.traceGapMs,
      workers: c.workers,
      buffer: c.channelBuffer,
      cap: c.maxTraced,
      retries: c.maxRetries,
      signal: c.signalTimeoutMs,
      requestGap: c.requestGapMs,
      unconfirmed: c.unconfirmedGraceMs,
      sts: c.enableStatefulSet,
      kubevirt: c.enableKubevirtStaticIP,
      outdated: c.cleanOutdatedEndpoint,
    },
    {
      enabled: true,
      ready: true,
      notReady: true,
      runningNoIPs: false,
      interval: 600_000,
      delay: 0,
      gap: 5_000,
      workers: 3,
      buffer: 5_000,
      cap: 100_000,
      retries: 5,
      signal: 3_000,
      requestGap: 1_000,
      unconfirmed: 180_000,
      sts: true,
      kubevirt: true,
      outdated: false,
    },
  );
});

Deno.test("gc config: every variable is read under its upstream name; ConfigMap flags pass through", () => {
  const env: Record<string, string> = {
    SPIDERPOOL_GC_IP_ENABLED: "false",
    SPIDERPOOL_GC_STATELESS_TERMINATING_POD_ON_READY_NODE_ENABLED: "F",
    SPIDERPOOL_GC_STATELESS_TERMINATING_POD_ON_NOT_READY_NODE_ENABLED: "0",
    SPIDERPOOL_GC_ENABLE_STATELESS_RUNNING_POD_ON_EMPTY_POD_STATUS_IPS: "true",
    SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION: "60",
    SPIDERPOOL_GC_ADDITIONAL_GRACE_DELAY: "5",
    SPIDERPOOL_GC_TRACE_POD_GAP_DURATION: "0.5",
    SPIDERPOOL_GC_IP_WORKER_NUM: "7",
    SPIDERPOOL_GC_CHANNEL_BUFFER: "10",
    SPIDERPOOL_GC_MAX_PODENTRY_DB_CAP: "20",
    SPIDERPOOL_GC_PODENTRY_MAX_RETRIES: "0",
    SPIDERPOOL_GC_SIGNAL_TIMEOUT_DURATION: "1",
    SPIDERPOOL_GC_HTTP_REQUEST_TIME_GAP: "2",
    SPIDERPOOL_GC_UNCONFIRMED_RECORD_GRACE_DURATION: "30",
  };
  assert.equal(Object.keys(env).length, GC_ENV.length, "one variable per setting");
  const c = gcConfigFrom((k) => env[k], { enableStatefulSet: false, enableCleanOutdatedEndpoint: true });
  assert.equal(c.enabled, false);
  assert.equal(c.terminatingOnReadyNode, false);
  assert.equal(c.terminatingOnNotReadyNode, false);
  assert.equal(c.runningOnEmptyPodIPs, true);
  assert.equal(c.intervalMs, 60_000);
  assert.equal(c.additionalGraceDelayMs, 5_000);
  assert.equal(c.traceGapMs, 500);
  assert.equal(c.workers, 7);
  assert.equal(c.channelBuffer, 10);
  assert.equal(c.maxTraced, 20);
  assert.equal(c.maxRetries, 0);
  assert.equal(c.signalTimeoutMs, 1_000);
  assert.equal(c.requestGapMs, 2_000);
  assert.equal(c.unconfirmedGraceMs, 30_000);
  assert.equal(c.enableStatefulSet, false);
  assert.equal(c.enableKubevirtStaticIP, true);
  assert.equal(c.cleanOutdatedEndpoint, true);
});

Deno.test("gc config: a malformed value names the variable, the value and what is accepted", () => {
  const bad: [string, string, RegExp][] = [
    ["SPIDERPOOL_GC_IP_ENABLED", "yes", /SPIDERPOOL_GC_IP_ENABLED must be true or false, got "yes"/],
    ["SPIDERPOOL_GC_IP_WORKER_NUM", "0", /SPIDERPOOL_GC_IP_WORKER_NUM must be a whole number ≥ 1, got "0"/],
    ["SPIDERPOOL_GC_IP_WORKER_NUM", "2.5", /whole number/],
    [
      "SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION",
      "10m",
      /number of seconds ≥ 1, got "10m"; unset it for the default 600/,
    ],
    [
      "SPIDERPOOL_GC_ADDITIONAL_GRACE_DELAY",
      "-1",
      /SPIDERPOOL_GC_ADDITIONAL_GRACE_DELAY must be a number of seconds/,
    ],
  ];
  for (const [k, v, re] of bad) {
    assert.throws(() => gcConfigFrom((name) => (name === k ? v : undefined)), (e: Error) => {
      assert.ok(e instanceof GcConfigError);
      assert.match(e.message, re);
      return true;
    });
  }
  assert.equal(
    gcConfigFrom((k) => (k === "SPIDERPOOL_GC_IP_WORKER_NUM" ? " " : undefined)).workers,
    3,
    "blank = default",
  );
});

const entry = (pod: string, o: Partial<TraceEntry> = {}): TraceEntry => ({
  namespace: "ns",
  pod,
  endpoint: pod,
  uid: `u-${pod}`,
  node: "n1",
  reason: "Deleted",
  stopAt: 1_000,
  requeues: 0,
  ...o,
});

Deno.test("gc trace db: capped; the same event twice keeps the retry count; due entries oldest first", () => {
  const db = new TraceDb(2);
  assert.equal(db.apply(entry("a", { stopAt: 2_000 })), true);
  assert.equal(db.apply(entry("b")), true);
  assert.throws(() => db.apply(entry("c")), TraceDbFullError);
  db.requeue(entry("b", { requeues: 3 }));
  assert.equal(db.apply(entry("b")), false, "a repeated event changes nothing");
  assert.equal(db.get("ns", "b")?.requeues, 3);
  assert.equal(
    db.apply(entry("b", { reason: "Terminating", stopAt: 500 })),
    true,
    "a new stop time replaces it",
  );
  assert.deepEqual(db.due(1_500).map((e) => e.pod), ["b"]);
  assert.deepEqual(db.due(2_000).map((e) => e.pod), ["b", "a"]);
  db.delete(entry("a", { uid: "other" }));
  assert.equal(db.size, 2, "an entry of another pod UID is not removed");
  db.delete(entry("a", { stopAt: 2_000 }));
  assert.equal(db.size, 1);
});

Deno.test("gc: scan-all verifies many candidates of a small namespace by LIST, a few or a crowded one by GET", () => {
  assert.equal(verifyByList(2_500, 0), true, "every pod gone: two small LISTs replace 5,000 GETs");
  assert.equal(verifyByList(100, 4_000), true);
  assert.equal(verifyByList(100, 4_001), false, "a namespace of many live pods: GETs move less");
  assert.equal(verifyByList(7, 0), false, "a few candidates: GETs");
  assert.equal(verifyByList(8, 0), true);
});
