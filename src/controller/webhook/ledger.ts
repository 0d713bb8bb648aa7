// The admission ledger: what makes the overlap checks of SpiderIPPool, SpiderSubnet and SpiderReservedIP
// race-free across controller replicas (upstream #746, where two overlapping pools admitted at the same moment
// by two replicas were both created).
//
// Why a check against the cluster alone is not enough: while two CREATEs are being admitted, neither object
// exists yet, so each replica's fresh list shows no conflict and both say yes. The ledger closes that window.
// It is one ConfigMap per overlap domain in the controller's namespace, holding the specs admitted in the last
// moments that may not be visible yet. An admission that would allow an object:
//   1. reads the ledger (resourceVersion R),
//   2. lists the cluster, at least as new as the ledger says (see "seen" below),
//   3. drops ledger entries that are now visible in that list (or superseded, or expired), and validates the
//      object against the listed objects plus the remaining entries,
//   4. writes the ledger with its own entry added, on condition that it is still at R (optimistic concurrency);
//      on a conflict it starts again at 1. Only after the write succeeds does it answer "allowed".
// Race-freedom: the API server applies conditional writes of one object one at a time, so of two admissions A
// and B that both answered "allowed", one — say A — wrote first, and B's write succeeded only because B had
// read the ledger after A's write (B's R is A's result or later). So B saw A's entry, unless B dropped it as
// visible in B's list, taken after that read — then B saw A's object itself. Either way B validated against
// A, and two overlapping objects cannot both pass. Entries dropped as expired belong to requests that failed
// after admission (AlreadyExists, a timeout); until then they make later overlapping admissions refuse, which
// errs on the safe side.
// "seen": a list need not be a consistent read from etcd (which makes the API server wait for its watch cache
// to catch up, ≈ 100 ms when the listed kind had no recent events). What it must include is every object whose
// entry was dropped as visible; so whoever drops entries records, per kind, the resourceVersion of the list
// that showed them (`seen`), and later admissions list with resourceVersionMatch=NotOlderThan that version,
// which the watch cache already holds. Entries dropped because they expired were never confirmed visible, so
// a decision that would drop one lists with a consistent read instead.
// Dry-run requests validate the same way but write nothing (the webhooks declare
// `sideEffects: None`: the ledger is the controller's own bookkeeping and never changes what a user sees).

import { ConflictError, type KubeHttp, NotFoundError } from "../../kube/client.ts";

/** One admitted object that may not be visible yet. */
export interface PendingEntry {
  kind: string;
  name: string;
  /** CREATE: the uid the API server gave the new object; visible once a listed object has it. */
  uid?: string;
  /** UPDATE: resourceVersion of the object being replaced; superseded once the listed object differs. */
  replaces?: string;
  /** The admitted spec (only the fields the overlap rules read). */
  spec: Record<string, unknown>;
  /** Milliseconds since the epoch after which the entry is dropped regardless. */
  expires: number;
  /** The replica that admitted it (for logs). */
  by: string;
}

/** The listed state of one object, as far as pruning needs it. */
export interface ListedObject {
  kind: string;
  name: string;
  uid?: string;
  resourceVersion?: string;
}

/** Entries still relevant given a fresh list taken after the ledger was read (pure). */
export function livePending(
  entries: readonly PendingEntry[],
  listed: readonly ListedObject[],
  now: number,
): PendingEntry[] {
  const byKey = new Map(listed.map((o) => [`${o.kind}/${o.name}`, o]));
  return entries.filter((e) => {
    if (e.expires <= now) return false;
    const seen = byKey.get(`${e.kind}/${e.name}`);
    if (e.uid !== undefined) {
      // The create landed (same uid), or the name belongs to another object and the create failed.
      return seen === undefined;
    }
    // An update: the object moved on from the version it replaced (ours landed, or ours will conflict), or is gone.
    return seen !== undefined && seen.resourceVersion === e.replaces;
  });
}

/** The ledger's content: pending entries and, per kind, the list version that showed the dropped ones. */
export interface LedgerState {
  entries: PendingEntry[];
  /** kind → resourceVersion (decimal) of the newest list that justified dropping entries of that kind. */
  seen: Record<string, string>;
}

/** Encodes the state into the ConfigMap's data (pure). */
export function encodeLedger(state: LedgerState): Record<string, string> {
  return { pending: JSON.stringify(state.entries), seen: JSON.stringify(state.seen) };
}

/**
 * Decodes the ConfigMap's data. A damaged ledger reads as empty with nothing seen, which makes every list
 * a consistent read until the next write repairs it.
 */
export function decodeLedger(data: Record<string, string> | undefined): LedgerState {
  let entries: PendingEntry[] = [];
  let seen: Record<string, string> = {};
  try {
    const v = JSON.parse(data?.pending ?? "[]");
    if (Array.isArray(v)) {
      entries = v.filter((e) => typeof e?.kind === "string" && typeof e?.name === "string");
    }
  } catch { /* damaged: empty */ }
  try {
    const v = JSON.parse(data?.seen ?? "{}");
    if (v && typeof v === "object" && !Array.isArray(v)) {
      seen = Object.fromEntries(
        Object.entries(v).filter(([, rv]) => typeof rv === "string" && /^\d+$/.test(rv)),
      ) as Record<string, string>;
    }
  } catch { /* damaged: nothing seen */ }
  return { entries, seen };
}

/** `seen` raised to the list versions in `listedAt` (pure; versions compare as decimal numbers). */
export function raiseSeen(
  seen: Record<string, string>,
  listedAt: Record<string, string | undefined>,
): Record<string, string> {
  const out = { ...seen };
  for (const [kind, rv] of Object.entries(listedAt)) {
    if (rv === undefined || !/^\d+$/.test(rv)) continue;
    if (out[kind] === undefined || BigInt(rv) > BigInt(out[kind])) out[kind] = rv;
  }
  return out;
}

/** The ledger could not be written after many conflicts: too many concurrent admissions. */
export class LedgerBusyError extends Error {
  constructor(readonly ledger: string, readonly attempts: number) {
    super(
      `ConfigMap ${ledger} (the admission ledger) changed under ${attempts} consecutive attempts; too many ` +
        `concurrent admissions, retry the request`,
    );
    this.name = "LedgerBusyError";
  }
}

/**
 * What a decision step returns: a final answer, or "allowed" with the entry to record and the ledger entries
 * still live after pruning against the decision's own fresh list (the rest are dropped from the ledger).
 */
export type Decision<T> =
  | {
    answer: T;
    record: PendingEntry;
    live: readonly PendingEntry[];
    /** kind → resourceVersion of the list the decision pruned against. */
    listedAt: Record<string, string | undefined>;
  }
  | { answer: T };

interface ConfigMap {
  apiVersion: "v1";
  kind: "ConfigMap";
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
}

export interface LedgerOptions {
  http: KubeHttp;
  namespace: string;
  /** ConfigMap name. */
  name: string;
  /** This replica's identity. */
  replica: string;
  /** Lifetime of an entry; default 30 s (the API server's longest webhook timeout). */
  ttlMs?: number;
  maxAttempts?: number;
  /** Called when a write loses to a concurrent admission (metrics). */
  onConflict?: () => void;
}

/** One overlap domain's ledger (see the module comment for why it is race-free). */
export class AdmissionLedger {
  readonly #o: Required<LedgerOptions>;
  #queue: Promise<void> = Promise.resolve();

  constructor(opts: LedgerOptions) {
    this.#o = { ttlMs: 30_000, maxAttempts: 40, onConflict: () => {}, ...opts };
  }

  get name(): string {
    return `${this.#o.namespace}/${this.#o.name}`;
  }

  get ttlMs(): number {
    return this.#o.ttlMs;
  }

  get replica(): string {
    return this.#o.replica;
  }

  /**
   * Runs `decide` with the ledger's state (read before `decide` lists the cluster) until its answer can be
   * recorded: a decision without `record` (a denial) returns at once; one with `record` is written with
   * optimistic concurrency, and `decide` runs again on a conflict. `dryRun` decides without writing.
   * `decide` receives the entries unpruned; it lists at least as new as `seen` (a consistent read when an
   * entry has expired) and prunes them with livePending against that list.
   */
  admit<T>(
    decide: (state: LedgerState) => Promise<Decision<T>>,
    opts: { dryRun?: boolean } = {},
  ): Promise<T> {
    // One admission at a time per replica: admissions of one replica would otherwise mostly conflict with each
    // other at the ledger write and decide again and again; only other replicas' admissions race with this one.
    const turn = this.#queue.then(() => this.#admit(decide, opts));
    this.#queue = turn.then(() => {}, () => {});
    return turn;
  }

  async #admit<T>(
    decide: (state: LedgerState) => Promise<Decision<T>>,
    opts: { dryRun?: boolean },
  ): Promise<T> {
    const { http, namespace, name } = this.#o;
    const path = `/api/v1/namespaces/${namespace}/configmaps`;
    for (let attempt = 1; attempt <= this.#o.maxAttempts; attempt++) {
      let cm: ConfigMap | undefined;
      try {
        cm = (await http.get<ConfigMap>(`${path}/${name}`)).body;
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
      const state = decodeLedger(cm?.data);
      const decision = await decide(state);
      if (!("record" in decision) || opts.dryRun) return decision.answer;
      // Entries visible in the decision's list are dropped: any later admission lists after this write, so
      // it sees those objects themselves.
      const next: LedgerState = {
        entries: [...decision.live.filter((e) => !sameEntry(e, decision.record)), decision.record],
        seen: raiseSeen(state.seen, decision.listedAt),
      };
      try {
        if (cm === undefined) {
          await http.post(
            path,
            {
              apiVersion: "v1",
              kind: "ConfigMap",
              metadata: {
                name,
                namespace,
                labels: { "app.kubernetes.io/component": "spiderpool-controller" },
              },
              data: encodeLedger(next),
            } satisfies ConfigMap,
          );
        } else {
          await http.put(`${path}/${name}`, { ...cm, data: encodeLedger(next) });
        }
        return decision.answer;
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        this.#o.onConflict();
        // Someone else recorded an admission since our read: decide again on the newer ledger. A short random
        // pause keeps replicas from colliding in lock step.
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 * attempt)));
      }
    }
    throw new LedgerBusyError(this.name, this.#o.maxAttempts);
  }

  /** Makes an entry for `kind/name` expiring one TTL from now. */
  entry(fields: Omit<PendingEntry, "expires" | "by">): PendingEntry {
    return { ...fields, expires: Date.now() + this.#o.ttlMs, by: this.#o.replica };
  }
}

function sameEntry(a: PendingEntry, b: PendingEntry): boolean {
  return a.kind === b.kind && a.name === b.name && a.uid === b.uid && a.replaces === b.replaces;
}
