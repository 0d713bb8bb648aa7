// The reconcilers' writes to the API server: every one is refused locally unless this replica is leader at the
// moment it is sent (a synchronous check, so a term that ended while the process was stopped writes nothing),
// carries the current term's abort signal, and is counted. Reads go to the API server directly.

import { API_VERSION, PLURAL } from "../../api/constants.ts";
import { ConflictError, type KubeHttp, NotFoundError } from "../../kube/client.ts";
import type { ControllerMetrics, WriteKind } from "../metrics.ts";

export const POOLS = `/apis/${API_VERSION}/${PLURAL.ippool}`;
export const SUBNETS = `/apis/${API_VERSION}/${PLURAL.subnet}`;

/** A write was not sent because this replica is not (or no longer) the leader. */
export class NotLeaderError extends Error {
  constructor(what: string) {
    super(`not sent (${what}): this controller replica is not the leader`);
    this.name = "NotLeaderError";
  }
}

/** What decides whether a write may be sent now, and the signal that aborts the current term's requests. */
export interface Leadership {
  /** Must check the lease deadline synchronously (LeaderElector.isLeader does). */
  isLeader(): boolean;
  /** Aborted when the current term ends. */
  signal?: AbortSignal;
}

export class ReconcileKube {
  constructor(
    readonly http: KubeHttp,
    readonly leadership: Leadership,
    readonly metrics: ControllerMetrics,
  ) {}

  /** Uncached GET; undefined when absent. */
  async get<T>(path: string): Promise<T | undefined> {
    try {
      return (await this.http.get<T>(path, { signal: this.leadership.signal })).body;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  /** JSON merge patch; put `metadata.resourceVersion` in `body` to make it conditional (409 when stale). */
  async mergePatch<T>(path: string, body: unknown, kind: WriteKind): Promise<T> {
    const signal = this.#guard(`${kind} ${path}`);
    this.metrics.wrote(kind);
    try {
      return (await this.http.patch<T>(path, body, "merge", { signal })).body;
    } catch (err) {
      if (err instanceof ConflictError) this.metrics.conflicted(kind);
      throw err;
    }
  }

  async post<T>(path: string, body: unknown, kind: WriteKind): Promise<T> {
    const signal = this.#guard(`${kind} ${path}`);
    this.metrics.wrote(kind);
    return (await this.http.post<T>(path, body, { signal })).body;
  }

  async delete(path: string, body: unknown, kind: WriteKind): Promise<void> {
    const signal = this.#guard(`${kind} ${path}`);
    this.metrics.wrote(kind);
    await this.http.delete(path, body, { signal });
  }

  #guard(what: string): AbortSignal | undefined {
    // isLeader() first: it may end the term (and abort its signal) right here.
    if (!this.leadership.isLeader()) throw new NotLeaderError(what);
    const signal = this.leadership.signal;
    if (signal?.aborted) throw new NotLeaderError(what);
    return signal;
  }
}
