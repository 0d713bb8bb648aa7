// The pure parts of the watch protocol (src/kube/watch.ts) and of the cache's settings (src/kube/cache.ts):
// decoding events, cutting a byte stream into lines whatever the chunk boundaries, the queries, the server
// timeout and backoff ranges, the decision to resume or list again after each way a stream can end, and the
// settings read from the environment.

import assert from "node:assert/strict";
import {
  backoffMs,
  decodeWatchEvent,
  isGone,
  LineSplitter,
  listQuery,
  nextStep,
  SHORT_WATCH_MS,
  WatchDecodeError,
  type WatchEnd,
  WatchLineTooLongError,
  watchQuery,
  watchTimeoutSeconds,
} from "../../src/kube/watch.ts";
import { CACHE_TIMING_ENV, CacheTimingError, cacheTimingFromEnv } from "../../src/kube/cache.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

// ---------------------------------------------------------------------------------------------------------
// Event decoding

Deno.test("decodeWatchEvent: object events carry their object", () => {
  for (const type of ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"] as const) {
    const obj = { metadata: { name: "p1", resourceVersion: "42" } };
    assert.deepEqual(decodeWatchEvent(JSON.stringify({ type, object: obj })), { type, object: obj });
  }
});

Deno.test("decodeWatchEvent: an ERROR event gives its Status code, reason and message", () => {
  const line = JSON.stringify({
    type: "ERROR",
    object: {
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      message: "too old resource version: 1 (2043)",
      reason: "Expired",
      code: 410,
    },
  });
  assert.deepEqual(decodeWatchEvent(line), {
    type: "ERROR",
    status: { code: 410, reason: "Expired", message: "too old resource version: 1 (2043)" },
  });
});

Deno.test("decodeWatchEvent: an ERROR Status with fields of the wrong type keeps only the valid ones", () => {
  assert.deepEqual(decodeWatchEvent('{"type":"ERROR","object":{"code":"410","reason":5}}'), {
    type: "ERROR",
    status: { code: undefined, reason: undefined, message: undefined },
  });
});

Deno.test("decodeWatchEvent: lines that are not watch events throw WatchDecodeError saying why", () => {
  const cases: [string, RegExp][] = [
    ["{not json", /not JSON/],
    ["[1,2]", /not a JSON object/],
    ["null", /not a JSON object/],
    ['{"type":"ADDED"}', /without an object/],
    ['{"type":"ADDED","object":[1]}', /without an object/],
    ['{"type":"ADDED","object":"x"}', /without an object/],
    ['{"type":"RENAMED","object":{}}', /unknown type "RENAMED"/],
    ['{"object":{}}', /unknown type undefined/],
  ];
  for (const [line, why] of cases) {
    assert.throws(() => decodeWatchEvent(line), (err: unknown) => {
      assert.ok(err instanceof WatchDecodeError, `${line}: ${err}`);
      assert.match(err.message, why);
      assert.equal(err.line, line);
      return true;
    });
  }
});

Deno.test("decodeWatchEvent: a long bad line is cut in the message but kept whole on the error", () => {
  const line = `{"type":"X","object":{"pad":"${"a".repeat(1000)}"}}`;
  assert.throws(() => decodeWatchEvent(line), (err: unknown) => {
    assert.ok(err instanceof WatchDecodeError);
    assert.ok(err.message.length < 300, err.message);
    assert.equal(err.line, line);
    return true;
  });
});

Deno.test("isGone: code 410 or reason Expired/Gone", () => {
  assert.equal(isGone({ code: 410 }), true);
  assert.equal(isGone({ reason: "Expired" }), true);
  assert.equal(isGone({ reason: "Gone" }), true);
  assert.equal(isGone({ code: 500, reason: "InternalError" }), false);
  assert.equal(isGone({}), false);
});

// ---------------------------------------------------------------------------------------------------------
// Line splitting across reads

Deno.test("LineSplitter: one event split over many reads comes out once, whole", () => {
  const line = JSON.stringify({ type: "ADDED", object: { metadata: { name: "pool-a" } } });
  const s = new LineSplitter();
  const out: string[] = [];
  for (let i = 0; i < line.length; i += 7) out.push(...s.push(bytes(line.slice(i, i + 7))));
  assert.deepEqual(out, []);
  assert.equal(s.pendingBytes, line.length);
  assert.deepEqual(s.push(bytes("\n")), [line]);
  assert.equal(s.pendingBytes, 0);
});

Deno.test("LineSplitter: many events in one read, the last one unfinished", () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push(bytes('{"a":1}\n{"b":2}\n{"c"')), ['{"a":1}', '{"b":2}']);
  assert.deepEqual(s.push(bytes(":3}\n")), ['{"c":3}']);
});

Deno.test("LineSplitter: a read that ends exactly at a newline leaves nothing behind", () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push(bytes('{"a":1}\n')), ['{"a":1}']);
  assert.equal(s.pendingBytes, 0);
  assert.deepEqual(s.push(bytes('\n{"b":2}')), []);
  assert.deepEqual(s.push(bytes("\n")), ['{"b":2}']);
});

Deno.test("LineSplitter: a multi-byte UTF-8 character split between reads is decoded intact", () => {
  const line = JSON.stringify({ note: "Zürich → 東京 🚀" });
  const encoded = bytes(line + "\n");
  const s = new LineSplitter();
  const out: string[] = [];
  // Every single byte in its own read: each multi-byte character is cut at every possible point.
  for (const b of encoded) out.push(...s.push(Uint8Array.of(b)));
  assert.deepEqual(out, [line]);
  assert.deepEqual(JSON.parse(out[0]), { note: "Zürich → 東京 🚀" });
});

Deno.test("LineSplitter: blank lines, also of spaces, are skipped", () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push(bytes('\n\n{"a":1}\n \n')), ['{"a":1}']);
});

Deno.test("LineSplitter: a line longer than the limit throws instead of growing without bound", () => {
  const s = new LineSplitter(16);
  assert.deepEqual(s.push(bytes("0123456789")), []);
  assert.throws(() => s.push(bytes("0123456789")), WatchLineTooLongError);
  const t = new LineSplitter(16);
  assert.deepEqual(t.push(bytes("0123456789abcdef\n")), ["0123456789abcdef"]);
});

Deno.test("LineSplitter: the bytes a later read reuses do not change a held part", () => {
  const s = new LineSplitter();
  const buf = bytes('{"a":');
  s.push(buf);
  buf.fill(0x20); // a reader may hand out the same buffer again
  assert.deepEqual(s.push(bytes("1}\n")), ['{"a":1}']);
});

// ---------------------------------------------------------------------------------------------------------
// Queries

Deno.test("watchQuery: resumes from the resourceVersion with bookmarks, a server timeout and both selectors", () => {
  const q = new URLSearchParams(
    watchQuery({ fieldSelector: "spec.nodeName=n1", labelSelector: "app in (a,b),!canary" }, "1234", 417)
      .slice(1),
  );
  assert.deepEqual(Object.fromEntries(q), {
    watch: "1",
    resourceVersion: "1234",
    allowWatchBookmarks: "true",
    timeoutSeconds: "417",
    fieldSelector: "spec.nodeName=n1",
    labelSelector: "app in (a,b),!canary",
  });
});

Deno.test("watchQuery: without a resourceVersion or selectors those keys are left out", () => {
  assert.equal(watchQuery({}, "", 5), "?watch=1&allowWatchBookmarks=true&timeoutSeconds=5");
});

Deno.test("listQuery: selectors, page size and continue token; empty when there is none", () => {
  assert.equal(listQuery({}), "");
  assert.equal(listQuery({}, { limit: 0 }), "");
  const q = new URLSearchParams(
    listQuery({ labelSelector: "a=b", fieldSelector: "metadata.name=x" }, { limit: 500, continue: "tok+/=" })
      .slice(1),
  );
  assert.deepEqual(Object.fromEntries(q), {
    fieldSelector: "metadata.name=x",
    labelSelector: "a=b",
    limit: "500",
    continue: "tok+/=",
  });
});

Deno.test("watchTimeoutSeconds: uniformly in [min, 2·min), at least 1", () => {
  assert.equal(watchTimeoutSeconds(300, () => 0), 300);
  assert.equal(watchTimeoutSeconds(300, () => 0.5), 450);
  assert.equal(watchTimeoutSeconds(300, () => 0.999999), 599);
  assert.equal(watchTimeoutSeconds(0.2, () => 0), 1);
  for (let i = 0; i < 1000; i++) {
    const t = watchTimeoutSeconds(3);
    assert.ok(t >= 3 && t < 6, String(t));
  }
});

// ---------------------------------------------------------------------------------------------------------
// Backoff and the decision after each end

Deno.test("backoffMs: doubles from the initial delay up to the maximum, jittered into [½, 1) of it", () => {
  const opts = { initialMs: 100, maxMs: 1_000 };
  assert.equal(backoffMs(0, opts), 0);
  assert.deepEqual([1, 2, 3, 4, 5, 50].map((n) => backoffMs(n, opts, () => 0.999999)), [
    100,
    200,
    400,
    800,
    1000,
    1000,
  ]);
  assert.deepEqual([1, 2, 5].map((n) => backoffMs(n, opts, () => 0)), [50, 100, 500]);
  assert.equal(backoffMs(1, {}, () => 0.999999), 250);
  assert.equal(backoffMs(40, {}, () => 0.999999), 10_000);
});

const half = () => 0.5;
const step = (end: WatchEnd, failures = 0, haveRv = true) => nextStep(end, failures, haveRv, {}, half);

Deno.test("nextStep: a server timeout resumes at once from the resourceVersion and forgets failures", () => {
  assert.deepEqual(step({ kind: "closed", events: 3, durationMs: 300_000 }, 4), {
    action: "watch",
    delayMs: 0,
    failures: 0,
  });
  // A long quiet watch with no event at all is as normal.
  assert.deepEqual(step({ kind: "closed", events: 0, durationMs: SHORT_WATCH_MS }), {
    action: "watch",
    delayMs: 0,
    failures: 0,
  });
});

Deno.test("nextStep: a watch closed at once without any event counts as a failure and lists after a backoff", () => {
  assert.deepEqual(step({ kind: "closed", events: 0, durationMs: 20 }, 2), {
    action: "list",
    delayMs: backoffMs(3, {}, half),
    failures: 3,
  });
});

Deno.test("nextStep: without a resourceVersion to resume from, every end lists", () => {
  assert.equal(step({ kind: "closed", events: 2, durationMs: 9_000 }, 0, false).action, "list");
  assert.equal(step({ kind: "stalled", silentMs: 9_000 }, 0, false).action, "list");
});

Deno.test("nextStep: a stalled stream is resumed at once", () => {
  assert.deepEqual(step({ kind: "stalled", silentMs: 40_000 }, 2), {
    action: "watch",
    delayMs: 0,
    failures: 2,
  });
  assert.deepEqual(step({ kind: "stalled", silentMs: 40_000, events: 5 }, 2), {
    action: "watch",
    delayMs: 0,
    failures: 0,
  });
});

Deno.test("nextStep: 410 Gone lists afresh at once the first time and with backoff when it repeats", () => {
  assert.deepEqual(step({ kind: "gone", message: "too old" }), { action: "list", delayMs: 0, failures: 1 });
  assert.deepEqual(step({ kind: "gone", message: "too old" }, 1), {
    action: "list",
    delayMs: backoffMs(1, {}, half),
    failures: 2,
  });
  // A stream that delivered events before its history expired starts counting afresh.
  assert.deepEqual(step({ kind: "gone", message: "too old", events: 7 }, 5), {
    action: "list",
    delayMs: 0,
    failures: 1,
  });
});

Deno.test("nextStep: any other failure lists afresh after a growing backoff", () => {
  let failures = 0;
  const delays: number[] = [];
  for (let i = 0; i < 4; i++) {
    const s = step({ kind: "failed", message: "connection reset" }, failures);
    assert.equal(s.action, "list");
    delays.push(s.delayMs);
    failures = s.failures;
  }
  assert.equal(failures, 4);
  assert.deepEqual(delays, [1, 2, 3, 4].map((n) => backoffMs(n, {}, half)));
  assert.ok(delays[0] > 0 && delays[3] > delays[0]);
});

Deno.test("nextStep: a failure after a stream that delivered events backs off from the start again", () => {
  assert.deepEqual(step({ kind: "failed", message: "reset", events: 12 }, 6), {
    action: "list",
    delayMs: backoffMs(1, {}, half),
    failures: 1,
  });
});

Deno.test("nextStep: the periodic re-list lists at once and keeps the failure count", () => {
  assert.deepEqual(step({ kind: "resync" }, 2), { action: "list", delayMs: 0, failures: 2 });
});

// ---------------------------------------------------------------------------------------------------------
// Settings from the environment

const envOf = (vars: Record<string, string>) => ({ get: (k: string) => vars[k] });

Deno.test("cacheTimingFromEnv: seconds (fractions allowed) become the cache timing; unset keys stay unset", () => {
  assert.deepEqual(cacheTimingFromEnv(envOf({})), {});
  assert.deepEqual(
    cacheTimingFromEnv(envOf({
      [CACHE_TIMING_ENV.resyncMs]: "600",
      [CACHE_TIMING_ENV.watchTimeoutSeconds]: "2",
      [CACHE_TIMING_ENV.stallMarginMs]: "1.5",
    })),
    { resyncMs: 600_000, watchTimeoutSeconds: 2, stallMarginMs: 1_500 },
  );
  assert.deepEqual(cacheTimingFromEnv(envOf({ [CACHE_TIMING_ENV.watchTimeoutSeconds]: " " })), {});
});

Deno.test("cacheTimingFromEnv: a value that is not a positive number names the variable and the value", () => {
  for (const bad of ["0", "-5", "ten", "Infinity", "5s"]) {
    assert.throws(
      () => cacheTimingFromEnv(envOf({ [CACHE_TIMING_ENV.watchTimeoutSeconds]: bad })),
      (err: unknown) => {
        assert.ok(err instanceof CacheTimingError);
        assert.match(err.message, new RegExp(`SPIDERPOOL_WATCH_TIMEOUT_SECONDS="${bad}"`));
        return true;
      },
    );
  }
});
