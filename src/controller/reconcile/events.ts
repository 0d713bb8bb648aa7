// Kubernetes Events (core/v1) for what a user must act on, e.g. a pool whose status.allocatedIPs no longer
// parses. A reconciler sees the same problem on every resync, so repeats are folded as client-go does: the
// first occurrence creates an Event, later ones (at most one per `repeatMs`) raise its count.

import { type KubeHttp, NotFoundError } from "../../kube/client.ts";
import type { ReconcileKube } from "./kube.ts";

/** An event a plan asks for; the reconciler attaches it to the object it planned for. */
export interface PlannedEvent {
  type: "Normal" | "Warning";
  /** UpperCamelCase, e.g. `InvalidAllocatedIPs`. */
  reason: string;
  message: string;
}

/** The object an event is about. */
export interface InvolvedObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

/** Events about cluster-scoped objects (pools, subnets) must live in "default" (API server rule). */
const CLUSTER_EVENTS_NAMESPACE = "default";
const COMPONENT = "spiderpool-controller";
/** Longest message the API server keeps in full. */
const MAX_MESSAGE = 1024;

interface Recorded {
  name: string;
  namespace: string;
  count: number;
  lastSent: number;
}

export interface EventRecorderOptions {
  /** This replica (the pod name), as `reportingInstance`. */
  instance: string;
  /** Repeats of one event within this time are not sent again; default 10 minutes. */
  repeatMs?: number;
  log?: (message: string) => void;
  now?: () => number;
}

export class EventRecorder {
  readonly #opts: Required<Omit<EventRecorderOptions, "log" | "now">> & Pick<EventRecorderOptions, "log">;
  readonly #now: () => number;
  readonly #recorded = new Map<string, Recorded>();

  constructor(opts: EventRecorderOptions) {
    this.#opts = { repeatMs: 600_000, ...opts };
    this.#now = opts.now ?? Date.now;
  }

  /** Records `ev` about `obj`; failures are logged, never thrown (an event must not fail a reconcile). */
  async emit(kube: ReconcileKube, obj: InvolvedObject, ev: PlannedEvent): Promise<void> {
    const uid = obj.metadata?.uid ?? obj.metadata?.name ?? "";
    const key = `${uid}\0${ev.type}\0${ev.reason}\0${ev.message}`;
    const seen = this.#recorded.get(key);
    const now = this.#now();
    if (seen && now - seen.lastSent < this.#opts.repeatMs) return;
    const stamp = new Date(now).toISOString().replace(/\.\d{3}Z$/, "Z");
    try {
      if (seen) {
        try {
          await kube.mergePatch(
            `/api/v1/namespaces/${seen.namespace}/events/${seen.name}`,
            { count: seen.count + 1, lastTimestamp: stamp },
            "event",
          );
          seen.count++;
          seen.lastSent = now;
          return;
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err; // expired (the API server keeps events 1 h)
        }
      }
      const namespace = obj.metadata?.namespace || CLUSTER_EVENTS_NAMESPACE;
      const name = `${obj.metadata?.name ?? "unknown"}.${randomSuffix()}`;
      await kube.post(`/api/v1/namespaces/${namespace}/events`, {
        apiVersion: "v1",
        kind: "Event",
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: obj.metadata?.name,
          namespace: obj.metadata?.namespace,
          uid: obj.metadata?.uid,
          resourceVersion: obj.metadata?.resourceVersion,
        },
        reason: ev.reason,
        message: ev.message.length > MAX_MESSAGE ? `${ev.message.slice(0, MAX_MESSAGE - 3)}...` : ev.message,
        type: ev.type,
        source: { component: COMPONENT },
        reportingComponent: COMPONENT,
        reportingInstance: this.#opts.instance,
        firstTimestamp: stamp,
        lastTimestamp: stamp,
        count: 1,
      }, "event");
      this.#recorded.set(key, { name, namespace, count: 1, lastSent: now });
      if (this.#recorded.size > 10_000) this.#recorded.delete(this.#recorded.keys().next().value!);
    } catch (err) {
      this.#opts.log?.(
        `event ${ev.reason} about ${obj.kind} ${obj.metadata?.name}: ${(err as Error).message}`,
      );
    }
  }
}

function randomSuffix(): string {
  const b = crypto.getRandomValues(new Uint8Array(8));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** The Events about one object, newest last (for tests and diagnostics). */
export async function eventsAbout(
  http: KubeHttp,
  obj: { kind: string; name: string; namespace?: string },
): Promise<{ reason: string; message: string; type: string; count?: number }[]> {
  const ns = obj.namespace || CLUSTER_EVENTS_NAMESPACE;
  const sel = `involvedObject.kind=${obj.kind},involvedObject.name=${obj.name}`;
  const { body } = await http.get<
    { items: { reason: string; message: string; type: string; count?: number }[] }
  >(
    `/api/v1/namespaces/${ns}/events?fieldSelector=${encodeURIComponent(sel)}`,
  );
  return body.items;
}
