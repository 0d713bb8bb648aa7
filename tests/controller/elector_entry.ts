// A small process that runs one LeaderElector replica and, while leading, leader-only work that creates one
// marker ConfigMap every `--interval` ms (asking isLeader() right before each write, as the reconcilers do).
// It reports on stdout, one JSON object per line: {"event":"started"|"stopped"|"leader"|"wrote"|"exited", ...}.
// The election tests run several of these and kill, stop and resume them.

import { parseArgs } from "node:util";
import { LeaderElector, type LeaderView, type LeaderWork } from "../../src/controller/leader.ts";
import { KubeHttp } from "../../src/kube/client.ts";
import { closeKubeConfig, loadKubeConfig } from "../../src/kube/client_node.ts";

const { values } = parseArgs({
  options: {
    kubeconfig: { type: "string" },
    namespace: { type: "string" },
    identity: { type: "string" },
    lease: { type: "string" },
    "lease-ms": { type: "string" },
    "renew-ms": { type: "string" },
    "retry-ms": { type: "string" },
    interval: { type: "string", default: "150" },
  },
});

const report = (event: string, extra: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ event, t: Date.now(), id: values.identity, ...extra }));

const kc = loadKubeConfig(values.kubeconfig);
const http = await KubeHttp.fromKubeConfig(kc);
const ns = values.namespace!;
const interval = Number(values.interval);

class MarkerWriter implements LeaderWork {
  #loop?: Promise<void>;
  #seq = 0;

  startLeading(signal: AbortSignal, leader: LeaderView): void {
    this.#loop = (async () => {
      while (!signal.aborted) {
        if (!leader.isLeader()) break; // the check every leader-only write makes, immediately before it
        const seq = ++this.#seq;
        try {
          await http.post(`/api/v1/namespaces/${ns}/configmaps`, {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: {
              name: `w-${values.identity}-${seq}`,
              labels: { "spiderpool.spidernet.io/marker": values.lease! },
            },
            data: { writer: values.identity!, seq: String(seq) },
          }, { signal });
          report("wrote", { seq });
        } catch (err) {
          if (!signal.aborted) report("write-failed", { seq, error: (err as Error).message });
        }
        await new Promise((r) => setTimeout(r, interval));
      }
    })();
  }

  async stopLeading(): Promise<void> {
    await this.#loop;
  }
}

const elector = new LeaderElector({
  http,
  namespace: ns,
  identity: values.identity!,
  leaseName: values.lease,
  timings: {
    leaseDurationMs: Number(values["lease-ms"]),
    renewDeadlineMs: Number(values["renew-ms"]),
    retryPeriodMs: Number(values["retry-ms"]),
  },
  work: [new MarkerWriter()],
  onStartedLeading: () => report("started"),
  onStoppedLeading: (reason) => report("stopped", { reason }),
  onNewLeader: (holder) => report("leader", { holder }),
  log: (m) => console.error(`[${values.identity}] ${m}`),
});
elector.start();
report("ready");

await new Promise<void>((resolve) => {
  Deno.addSignalListener("SIGTERM", resolve);
  Deno.addSignalListener("SIGINT", resolve);
});
await elector.stop();
http.close();
await closeKubeConfig(kc);
report("exited");
Deno.exit(0);
