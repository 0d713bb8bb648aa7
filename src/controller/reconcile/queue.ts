// The work queue of a reconciler, with client-go's semantics: a key is queued at most once however often it
// is added, a key being processed is never handed to a second worker (an add during processing queues it again
// once the first is done), and failed keys come back after a per-key exponential backoff.

/** Per-key exponential backoff of failed reconciles. */
export interface Backoff {
  baseMs: number;
  maxMs: number;
}

/** 10 ms doubling to 30 s: conflicts retry almost at once, a persistent error settles at one try per 30 s. */
export const DEFAULT_BACKOFF: Backoff = { baseMs: 10, maxMs: 30_000 };

/** The delay before retry number `failures` (1 = first retry). */
export function backoffDelay(failures: number, b: Backoff = DEFAULT_BACKOFF): number {
  return Math.min(b.maxMs, b.baseMs * 2 ** Math.max(0, failures - 1));
}

export class WorkQueue {
  readonly #backoff: Backoff;
  #queue: string[] = [];
  #head = 0;
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, ReturnType<typeof setTimeout>>();
  #waiters: (() => void)[] = [];
  #idleWaiters: (() => void)[] = [];
  #shutdown = false;

  constructor(backoff: Backoff = DEFAULT_BACKOFF) {
    this.#backoff = backoff;
  }

  /** Keys waiting (not counting those being processed or waiting for a backoff). */
  get length(): number {
    return this.#queue.length - this.#head;
  }

  add(key: string): void {
    if (this.#shutdown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return;
    this.#queue.push(key);
    this.#waiters.shift()?.();
  }

  /** Adds `key` after `ms`; a later call for the same key replaces an earlier pending one. */
  addAfter(key: string, ms: number): void {
    if (this.#shutdown) return;
    clearTimeout(this.#timers.get(key));
    this.#timers.set(
      key,
      setTimeout(() => {
        this.#timers.delete(key);
        this.add(key);
      }, ms),
    );
  }

  /** Adds `key` again after its backoff; each call doubles the next delay until {@linkcode forget}. */
  addRateLimited(key: string): void {
    const n = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, n);
    this.addAfter(key, backoffDelay(n, this.#backoff));
  }

  /** Resets the backoff of `key` (after it reconciled successfully). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** Retries so far of `key`. */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** The next key, marked as being processed; undefined once the queue is shut down. */
  async get(): Promise<string | undefined> {
    while (this.length === 0) {
      if (this.#shutdown) return undefined;
      await new Promise<void>((r) => this.#waiters.push(r));
    }
    const key = this.#queue[this.#head++];
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    this.#dirty.delete(key);
    this.#processing.add(key);
    return key;
  }

  /** Marks `key` as processed; if it was added meanwhile it goes back in the queue. */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.has(key) && !this.#shutdown) {
      this.#queue.push(key);
      this.#waiters.shift()?.();
    }
    if (this.idle()) { for (const w of this.#idleWaiters.splice(0)) w(); }
  }

  /** Nothing queued and nothing being processed (keys waiting for a backoff do not count). */
  idle(): boolean {
    return this.length === 0 && this.#processing.size === 0;
  }

  /** Keys waiting for their backoff or delay. */
  get delayed(): number {
    return this.#timers.size;
  }

  /** Resolves the next time the queue becomes idle (at once when it is). */
  whenIdle(): Promise<void> {
    if (this.idle()) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  /** Drops everything and wakes every waiting get() with undefined. */
  shutDown(): void {
    this.#shutdown = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    this.#queue = [];
    this.#head = 0;
    this.#dirty.clear();
    for (const w of this.#waiters.splice(0)) w();
    for (const w of this.#idleWaiters.splice(0)) w();
  }
}
