// The Kubernetes watch protocol on Deno's fetch: the query of a watch, the decoding of its newline-delimited
// JSON events, the decision what to do after a stream ends (resume from the last resourceVersion, or list
// again, and after what backoff), and the one I/O function that reads a stream and aborts it when it stalls.

import { KubeHttpError } from "./client.ts";

/** The event types of the watch API (`metav1.WatchEvent.type`). */
export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

/** The `Status` object of an ERROR event, e.g. `{code: 410, reason: "Expired"}` when the resourceVersion is too old. */
export interface WatchStatus {
  code?: number;
  reason?: string;
  message?: string;
}

export type WatchEvent<T> =
  | { type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK"; object: T }
  | { type: "ERROR"; status: WatchStatus };

/** A line of a watch stream that is not a watch event. */
export class WatchDecodeError extends Error {
  constructor(readonly line: string, reason: string) {
    super(`watch stream sent ${reason}: ${line.length > 200 ? `${line.slice(0, 200)}…` : line}`);
    this.name = new.target.name;
  }
}

const OBJECT_EVENTS = new Set(["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]);

/**
 * Decodes one line of a watch stream (`{"type": ..., "object": ...}`).
 *
 * @example
 * ```ts
 * decodeWatchEvent('{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}');
 * // → { type: "ERROR", status: { code: 410, reason: "Expired", message: undefined } }
 * ```
 */
export function decodeWatchEvent<T>(line: string): WatchEvent<T> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new WatchDecodeError(line, "a line that is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new WatchDecodeError(line, "a line that is not a JSON object");
  }
  const { type, object } = parsed as { type?: unknown; object?: unknown };
  if (typeof object !== "object" || object === null || Array.isArray(object)) {
    throw new WatchDecodeError(line, "an event without an object");
  }
  if (type === "ERROR") {
    const s = object as { code?: unknown; reason?: unknown; message?: unknown };
    return {
      type,
      status: {
        code: typeof s.code === "number" ? s.code : undefined,
        reason: typeof s.reason === "string" ? s.reason : undefined,
        message: typeof s.message === "string" ? s.message : undefined,
      },
    };
  }
  if (typeof type !== "string" || !OBJECT_EVENTS.has(type)) {
    throw new WatchDecodeError(line, `an event of unknown type ${JSON.stringify(type)}`);
  }
  return { type: type as "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK", object: object as T };
}

/** A watch line longer than the limit of a LineSplitter. */
export class WatchLineTooLongError extends Error {
  constructor(readonly limit: number) {
    super(`watch stream sent a line longer than ${limit} bytes without a newline`);
    this.name = new.target.name;
  }
}

/**
 * Cuts a byte stream into newline-terminated lines, whatever the chunk boundaries: a line may arrive in many
 * reads and one read may hold many lines. Splitting bytes (not text) is safe for UTF-8, whose multi-byte
 * sequences never contain the newline byte; each complete line is decoded once.
 */
export class LineSplitter {
  readonly #maxLineBytes: number;
  #parts: Uint8Array[] = [];
  #partBytes = 0;
  readonly #decoder = new TextDecoder();

  /** `maxLineBytes` bounds the memory one unterminated line may take (an object is at most ~1.5 MB in etcd). */
  constructor(maxLineBytes = 64 * 1024 * 1024) {
    this.#maxLineBytes = maxLineBytes;
  }

  /** The complete, non-empty lines that `chunk` finishes, without their newline. */
  push(chunk: Uint8Array): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      this.#add(chunk.subarray(start, nl));
      const line = this.#take();
      if (line.trim() !== "") lines.push(line);
      start = nl + 1;
    }
    if (start < chunk.length) this.#add(chunk.slice(start));
    return lines;
  }

  /** Bytes held of a line whose newline has not arrived yet. */
  get pendingBytes(): number {
    return this.#partBytes;
  }

  #add(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.#partBytes + bytes.length > this.#maxLineBytes) {
      throw new WatchLineTooLongError(this.#maxLineBytes);
    }
    this.#parts.push(bytes);
    this.#partBytes += bytes.length;
  }

  #take(): string {
    let bytes: Uint8Array;
    if (this.#parts.length === 1) {
      bytes = this.#parts[0];
    } else {
      bytes = new Uint8Array(this.#partBytes);
      let at = 0;
      for (const p of this.#parts) {
        bytes.set(p, at);
        at += p.length;
      }
    }
    this.#parts = [];
    this.#partBytes = 0;
    return this.#decoder.decode(bytes);
  }
}

/** What selects the objects of a list or watch. */
export interface Selectors {
  fieldSelector?: string;
  labelSelector?: string;
}

/** The query string (with `?`) of a list: the selectors, a page size and the continue token of the next page. */
export function listQuery(sel: Selectors, page: { limit?: number; continue?: string } = {}): string {
  const q = new URLSearchParams();
  if (sel.fieldSelector) q.set("fieldSelector", sel.fieldSelector);
  if (sel.labelSelector) q.set("labelSelector", sel.labelSelector);
  if (page.limit) q.set("limit", String(page.limit));
  if (page.continue) q.set("continue", page.continue);
  const s = q.toString();
  return s ? `?${s}` : "";
}

/**
 * The query string of a watch from `resourceVersion` that the server ends after `timeoutSeconds`, with
 * bookmarks (so an idle stream still carries the newest resourceVersion and proves it is alive).
 */
export function watchQuery(sel: Selectors, resourceVersion: string, timeoutSeconds: number): string {
  const q = new URLSearchParams({ watch: "1" });
  if (resourceVersion) q.set("resourceVersion", resourceVersion);
  q.set("allowWatchBookmarks", "true");
  q.set("timeoutSeconds", String(timeoutSeconds));
  if (sel.fieldSelector) q.set("fieldSelector", sel.fieldSelector);
  if (sel.labelSelector) q.set("labelSelector", sel.labelSelector);
  return `?${q}`;
}

/**
 * The server-side timeout of one watch: uniformly in [min, 2·min) seconds like client-go's reflector, so the
 * watches of many clients started together do not all end and reopen at the same moment.
 */
export function watchTimeoutSeconds(minSeconds: number, random: () => number = Math.random): number {
  return Math.max(1, Math.floor(minSeconds * (1 + random())));
}

/**
 * How one watch stream (or the list before it) ended. `events` counts the events (bookmarks included) the
 * stream delivered before it ended: a stream that worked for a while resets the failure count.
 */
export type WatchEnd =
  /** The server ended the response: its timeoutSeconds passed, or it closed watches (e.g. shutting down). */
  | { kind: "closed"; events: number; durationMs: number }
  /** No byte arrived for longer than the stall limit; the client aborted the stream. */
  | { kind: "stalled"; silentMs: number; events?: number }
  /** 410 Gone (HTTP status or ERROR event): the resourceVersion is older than the server keeps history for. */
  | { kind: "gone"; message: string; events?: number }
  /** Any other failure: an HTTP error, an ERROR event, a network error, a line that is not an event. */
  | { kind: "failed"; message: string; events?: number }
  /** The periodic re-list is due; the client ended the stream. */
  | { kind: "resync" };

/** What a cache does next. `failures` counts consecutive failures and sizes the backoff. */
export interface NextStep {
  action: "list" | "watch";
  delayMs: number;
  failures: number;
}

export interface BackoffOptions {
  /** First delay after a failure; default 250 ms. */
  initialMs?: number;
  /** Upper bound; default 10 s. */
  maxMs?: number;
}

/**
 * The delay before retry number `failures` (1, 2, …): doubling from `initialMs` up to `maxMs`, scaled by a
 * random factor in [0.5, 1) so that many clients failing together spread their retries.
 */
export function backoffMs(
  failures: number,
  opts: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  if (failures <= 0) return 0;
  const initial = opts.initialMs ?? 250;
  const max = opts.maxMs ?? 10_000;
  const base = Math.min(max, initial * 2 ** Math.min(failures - 1, 30));
  return Math.round(base * (0.5 + random() / 2));
}

/**
 * A watch that ends this soon without delivering anything is treated as a failure, as client-go does: a server
 * that accepts and at once closes every watch would otherwise be asked again in a tight loop.
 */
export const SHORT_WATCH_MS = 1_000;

/**
 * Decides what follows a watch that ended with `end`, given the failures before it and whether a
 * resourceVersion to resume from is known.
 *
 * - A normal end or a stall resumes from the last resourceVersion at once: no event is lost, as the server
 *   replays everything after it. A failure of that resume is a failure like any other.
 * - 410 Gone lists afresh (at once the first time, with backoff when it repeats): the history is gone, only a
 *   new list can be trusted.
 * - Any other failure lists afresh after a backoff: whatever the stream delivered before it, the list
 *   replaces the cache with a consistent snapshot.
 * - The periodic re-list lists at once.
 */
export function nextStep(
  end: WatchEnd,
  failures: number,
  haveResourceVersion: boolean,
  backoff: BackoffOptions = {},
  random: () => number = Math.random,
): NextStep {
  if (end.kind !== "closed" && end.kind !== "resync" && (end.events ?? 0) > 0) failures = 0;
  const fail = (): NextStep => ({
    action: "list",
    delayMs: backoffMs(failures + 1, backoff, random),
    failures: failures + 1,
  });
  switch (end.kind) {
    case "closed":
      if (end.events === 0 && end.durationMs < SHORT_WATCH_MS) return fail();
      if (!haveResourceVersion) return { action: "list", delayMs: 0, failures: 0 };
      return { action: "watch", delayMs: 0, failures: 0 };
    case "stalled":
      if (!haveResourceVersion) return { action: "list", delayMs: 0, failures };
      return { action: "watch", delayMs: 0, failures };
    case "gone":
      return {
        action: "list",
        delayMs: failures === 0 ? 0 : backoffMs(failures, backoff, random),
        failures: failures + 1,
      };
    case "failed":
      return fail();
    case "resync":
      return { action: "list", delayMs: 0, failures };
  }
}

/** Whether an ERROR event's status means 410 Gone ("Expired" from the watch cache, "Gone" from etcd). */
export function isGone(status: WatchStatus): boolean {
  return status.code === 410 || status.reason === "Expired" || status.reason === "Gone";
}

/** The server side of a watch: opens the stream. `KubeHttp.stream` in production. */
export interface StreamOpener {
  stream(path: string, opts: { signal: AbortSignal }): Promise<Response>;
}

export interface ReadWatchOptions<T> {
  /** Collection path plus `watchQuery(...)`. */
  url: string;
  /** A stream with no byte for this long (headers included) is aborted and ends as "stalled". */
  stallMs: number;
  /** Ends the stream from outside; its `reason` is returned as the end (e.g. `{kind: "resync"}`). */
  signal: AbortSignal;
  /** Applies one object event; called in stream order, never after this function returned. */
  onEvent(event: Exclude<WatchEvent<T>, { type: "ERROR" }>): void;
  /** Called when the headers and each chunk arrive, e.g. to record that the server is alive. */
  onContact?(): void;
}

/** Ends a stream from outside (e.g. for the periodic re-list): `signal`'s reason must be a WatchEnd. */
export class WatchAbort extends Error {
  constructor(readonly end: WatchEnd) {
    super(`watch ended by the client: ${end.kind}`);
    this.name = new.target.name;
  }
}

/**
 * Opens one watch stream and applies its events in order until it ends; never throws. The events of one
 * call are the only ones applied while it runs, and none after it returned: a cache that awaits this before
 * opening the next stream never mixes two streams.
 */
export async function readWatch<T>(http: StreamOpener, opts: ReadWatchOptions<T>): Promise<WatchEnd> {
  const started = performance.now();
  const local = new AbortController();
  let lastByte = started;
  let stalled = false;
  const stallTimer = setInterval(() => {
    if (performance.now() - lastByte > opts.stallMs) {
      stalled = true;
      local.abort();
    }
  }, Math.max(50, Math.min(1_000, opts.stallMs / 4)));
  const outside = () => local.abort();
  opts.signal.addEventListener("abort", outside);
  let events = 0;
  const abortedEnd = (): WatchEnd | undefined => {
    if (opts.signal.aborted) {
      const reason = opts.signal.reason;
      return reason instanceof WatchAbort ? reason.end : { kind: "failed", message: String(reason) };
    }
    if (stalled) return { kind: "stalled", silentMs: Math.round(performance.now() - lastByte), events };
    return undefined;
  };
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  try {
    if (opts.signal.aborted) return abortedEnd()!;
    // Raced with the signal too: fetching credentials (an exec plugin) happens before fetch sees the signal.
    const res = await untilAborted(http.stream(opts.url, { signal: local.signal }), local.signal);
    lastByte = performance.now();
    opts.onContact?.();
    if (!res.body) return { kind: "closed", events: 0, durationMs: Math.round(performance.now() - started) };
    reader = res.body.getReader();
    const lines = new LineSplitter();
    while (true) {
      const { value, done } = await reader.read();
      if (done) return { kind: "closed", events, durationMs: Math.round(performance.now() - started) };
      lastByte = performance.now();
      opts.onContact?.();
      for (const line of lines.push(value)) {
        const event = decodeWatchEvent<T>(line);
        if (event.type === "ERROR") {
          const what = `watch ERROR event ${event.status.code ?? ""} ${event.status.reason ?? ""}: ` +
            (event.status.message ?? "");
          return isGone(event.status)
            ? { kind: "gone", message: what, events }
            : { kind: "failed", message: what, events };
        }
        // An abort may have come while this chunk was being read: stop applying at once.
        if (local.signal.aborted) return abortedEnd() ?? { kind: "failed", message: "aborted" };
        events++;
        opts.onEvent(event);
      }
    }
  } catch (err) {
    const ended = abortedEnd();
    if (ended) return ended;
    if (err instanceof KubeHttpError && err.status === 410) {
      return { kind: "gone", message: err.message, events };
    }
    return { kind: "failed", message: (err as Error)?.message ?? String(err), events };
  } finally {
    clearInterval(stallTimer);
    opts.signal.removeEventListener("abort", outside);
    // Releases the connection of a stream we stop reading (error event, stall, abort).
    await reader?.cancel().catch(() => {});
  }
}

/** `promise`, or a rejection as soon as `signal` aborts (a response that arrives later is cancelled). */
function untilAborted(promise: Promise<Response>, signal: AbortSignal): Promise<Response> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason ?? new DOMException("aborted", "AbortError"));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (res) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) void res.body?.cancel().catch(() => {});
        resolve(res);
      },
      (err) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
