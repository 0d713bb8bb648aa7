// The traced-pod database of mechanism A: one entry per pod (`<namespace>/<pod>`), capped at
// `SPIDERPOOL_GC_MAX_PODENTRY_DB_CAP`. An entry is replaced only when it changed, so a repeated event does not
// reset a retry count; a new pod beyond the cap is refused with an error naming the cap.

import type { TraceEntry } from "../../ipam/gc.ts";

export class TraceDbFullError extends Error {
  constructor(readonly cap: number, entry: TraceEntry) {
    super(
      `traced-pod database is full (${cap} pods, SPIDERPOOL_GC_MAX_PODENTRY_DB_CAP); not tracing pod ` +
        `${entry.namespace}/${entry.pod}; scan-all will release its addresses`,
    );
    this.name = "TraceDbFullError";
  }
}

export class TraceDb {
  readonly #entries = new Map<string, TraceEntry>();
  constructor(readonly cap: number) {}

  static key(e: { namespace: string; pod: string }): string {
    return `${e.namespace}/${e.pod}`;
  }

  /**
   * Adds or updates `entry` (an event); true when the database changed. The same pod, reason and stop time
   * again changes nothing, so its retry count stays. Throws TraceDbFullError past the cap.
   */
  apply(entry: TraceEntry): boolean {
    const key = TraceDb.key(entry);
    const old = this.#entries.get(key);
    if (old === undefined && this.#entries.size >= this.cap) throw new TraceDbFullError(this.cap, entry);
    if (
      old !== undefined && old.uid === entry.uid && old.reason === entry.reason &&
      old.stopAt === entry.stopAt &&
      old.endpoint === entry.endpoint
    ) {
      return false;
    }
    this.#entries.set(key, entry);
    return true;
  }

  /** Puts back an entry after a failed attempt (its `requeues` already counted), if the pod is still traced. */
  requeue(entry: TraceEntry): void {
    const key = TraceDb.key(entry);
    if (this.#entries.get(key)?.uid === entry.uid) this.#entries.set(key, entry);
  }

  get(namespace: string, pod: string): TraceEntry | undefined {
    return this.#entries.get(TraceDb.key({ namespace, pod }));
  }

  /** Removes the entry of that pod, only if it is still the one given (same UID). */
  delete(entry: TraceEntry): void {
    const key = TraceDb.key(entry);
    if (this.#entries.get(key)?.uid === entry.uid) this.#entries.delete(key);
  }

  /** Entries whose stop time has come, oldest first. */
  due(now: number): TraceEntry[] {
    return [...this.#entries.values()].filter((e) => e.stopAt <= now).sort((a, b) => a.stopAt - b.stopAt);
  }

  list(): TraceEntry[] {
    return [...this.#entries.values()];
  }

  get size(): number {
    return this.#entries.size;
  }

  clear(): void {
    this.#entries.clear();
  }
}
