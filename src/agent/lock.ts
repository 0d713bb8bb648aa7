// Per-key mutual exclusion inside the agent. The operations of one pod (ADD, DEL, batch DEL) run one at a
// time: a runtime may retry an ADD while the first is still running, and two interleaved ADDs of one pod
// would each take the other's rollback or endpoint write for their own.

/** Runs functions one at a time per key, in arrival order; different keys run concurrently. */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => release = resolve);
    const tail = before.then(() => mine);
    this.#tails.set(key, tail);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }

  /** Keys with an operation running or waiting (for tests). */
  get size(): number {
    return this.#tails.size;
  }
}
