// How long a change takes to reach a list + watch cache after a long silence. One ResourceCache per kind the
// agent caches, with the agent's production timing, idles for --silence seconds; then one object of each
// kind changes, all at once, each timed from the start of its write to the cache's change event. The reference is a second set of the same caches started 2 s before the change (fresh
// streams). Prints each kind's delay after the silence, the reference delay, and their ratio.
//
// Usage: deno run -A tests/bench/watch_idle.ts [--silence 60] [--limit 240]
// Uses the control plane of $SPIDERPOOL_TEST_KUBECONFIG when set, else starts one (tests/kube/harness.ts).

import { parseArgs } from "node:util";
import { API_VERSION, KIND, PLURAL } from "../../src/api/constants.ts";
import { type Meta, ResourceCache } from "../../src/kube/cache.ts";
import { NotFoundError } from "../../src/kube/client.ts";
import { testScope } from "../kube/harness.ts";

const { values } = parseArgs({
  options: { silence: { type: "string", default: "60" }, limit: { type: "string", default: "240" } },
  strict: true,
});
const SILENCE_S = Number(values.silence);
const LIMIT_S = Number(values.limit);
if (!(SILENCE_S > 0) || !(LIMIT_S > 0)) throw new Error("--silence and --limit are seconds > 0");

interface Obj extends Meta {
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
}
const api = (plural: string) => `/apis/${API_VERSION}/${plural}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  await using scope = await testScope("bench-watch");
  const { http, kc } = scope.cluster;
  const label = "spiderpool.spidernet.io/bench-watch";
  const labels = { [label]: scope.namespace };
  const selector = `${label}=${scope.namespace}`;
  const ns = scope.name("kinds");
  const node = scope.name("node");
  await http.post("/api/v1/namespaces", { metadata: { name: ns, labels } });
  scope.track(`/api/v1/namespaces/${ns}`);
  await http.post("/api/v1/nodes", { metadata: { name: node, labels } });
  scope.track(`/api/v1/nodes/${node}`);

  /** Each kind: its cache's collection and selectors, the change, and whether a cache shows it. */
  interface Kind {
    name: string;
    path: string;
    fieldSelector?: string;
    labelSelector?: string;
    change(): Promise<unknown>;
    shows(c: ResourceCache<Obj>): boolean;
  }
  const reservedName = scope.name("reserved");
  const poolName = scope.name("pool");
  const coordName = scope.name("coord");
  const kinds: Kind[] = [
    {
      name: KIND.ippool,
      path: api(PLURAL.ippool),
      labelSelector: selector,
      change: () =>
        http.post(api(PLURAL.ippool), {
          apiVersion: API_VERSION,
          kind: KIND.ippool,
          metadata: { name: poolName, labels },
          spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips: ["192.0.2.10"] },
        }).then(() => scope.track(`${api(PLURAL.ippool)}/${poolName}`)),
      shows: (c) => c.get(poolName) !== undefined,
    },
    {
      name: KIND.reservedIP,
      path: api(PLURAL.reservedIP),
      labelSelector: selector,
      change: () =>
        http.post(api(PLURAL.reservedIP), {
          apiVersion: API_VERSION,
          kind: KIND.reservedIP,
          metadata: { name: reservedName, labels },
          spec: { ipVersion: 4, ips: ["192.0.2.20"] },
        }).then(() => scope.track(`${api(PLURAL.reservedIP)}/${reservedName}`)),
      shows: (c) => c.get(reservedName) !== undefined,
    },
    {
      name: KIND.endpoint,
      path: `/apis/${API_VERSION}/namespaces/${ns}/${PLURAL.endpoint}`,
      change: () =>
        http.post(`/apis/${API_VERSION}/namespaces/${ns}/${PLURAL.endpoint}`, {
          apiVersion: API_VERSION,
          kind: KIND.endpoint,
          metadata: { name: "ep" },
          status: {
            current: { uid: "u", node, ips: [{ interface: "eth0", ipv4: "192.0.2.10/24" }] },
            ownerControllerType: "Pod",
            ownerControllerName: "ep",
          },
        }),
      shows: (c) => c.get("ep", ns) !== undefined,
    },
    {
      name: "Namespace",
      path: "/api/v1/namespaces",
      labelSelector: selector,
      change: () => http.patch(`/api/v1/namespaces/${ns}`, { metadata: { annotations: { changed: "yes" } } }),
      shows: (c) =>
        (c.get(ns) as { metadata: { annotations?: Record<string, string> } })?.metadata.annotations
          ?.changed === "yes",
    },
    {
      name: "Node",
      path: "/api/v1/nodes",
      labelSelector: selector,
      change: () => http.patch(`/api/v1/nodes/${node}`, { metadata: { labels: { changed: "yes" } } }),
      shows: (c) => c.get(node)?.metadata.labels?.changed === "yes",
    },
    {
      name: "Pod",
      path: "/api/v1/pods",
      fieldSelector: `spec.nodeName=${node}`,
      change: () =>
        http.post(`/api/v1/namespaces/${ns}/pods`, {
          metadata: { name: "pod" },
          spec: { nodeName: node, containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
        }),
      shows: (c) => c.get("pod", ns) !== undefined,
    },
    {
      name: KIND.coordinator,
      path: api(PLURAL.coordinator),
      labelSelector: selector,
      change: () =>
        http.post(api(PLURAL.coordinator), {
          apiVersion: API_VERSION,
          kind: KIND.coordinator,
          metadata: { name: coordName, labels },
          spec: {},
        })
          .then(() => scope.track(`${api(PLURAL.coordinator)}/${coordName}`)),
      shows: (c) => c.get(coordName) !== undefined,
    },
  ];

  /** One cache per kind; `arrived[i]` is set (performance.now()) when cache i first shows its change. */
  const startCaches = () => {
    const arrived: number[] = kinds.map(() => Infinity);
    const caches = kinds.map((k, i) => {
      const c = new ResourceCache<Obj>(kc, http, {
        path: k.path,
        fieldSelector: k.fieldSelector,
        labelSelector: k.labelSelector,
        log: () => {},
      });
      c.onChange(() => {
        if (arrived[i] === Infinity && k.shows(c)) arrived[i] = performance.now();
      });
      c.start();
      return c;
    });
    return { caches, arrived };
  };

  try {
    const idle = startCaches();
    await Promise.all(idle.caches.map((c) => c.synced));
    console.log(`${kinds.length} caches (agent defaults) synced; silence of ${SILENCE_S} s`);
    await sleep(SILENCE_S * 1000 - 2_000);
    const fresh = startCaches();
    await Promise.all(fresh.caches.map((c) => c.synced));
    await sleep(2_000);

    // All changes at once (a cache that recovers by re-listing recovers every kind together), each timed from
    // the start of its own write; each idle cache has seen nothing since the silence began.
    const timed = await Promise.all(kinds.map(async (k, i) => {
      const t0 = performance.now();
      await k.change();
      while (performance.now() - t0 < LIMIT_S * 1000) {
        if (idle.arrived[i] !== Infinity && fresh.arrived[i] !== Infinity) break;
        await sleep(5);
      }
      return [idle.arrived[i] - t0, fresh.arrived[i] - t0];
    }));
    const afterSilence = timed.map(([a]) => a);
    const reference = timed.map(([, r]) => r);
    for (const c of [...idle.caches, ...fresh.caches]) c.stop();

    const fmt = (ms: number) => (ms === Infinity ? `> ${LIMIT_S} s` : `${ms.toFixed(1)} ms`);
    console.log(`${"kind".padEnd(20)}${"after silence".padStart(16)}${"fresh watch".padStart(14)}`);
    kinds.forEach((k, i) =>
      console.log(`${k.name.padEnd(20)}${fmt(afterSilence[i]).padStart(16)}${fmt(reference[i]).padStart(14)}`)
    );
    const worst = Math.max(...afterSilence);
    const worstRef = Math.max(...reference);
    console.log(
      `worst after ${SILENCE_S} s of silence: ${fmt(worst)}; fresh watch: ${fmt(worstRef)}; ratio ` +
        (worst === Infinity ? "∞" : (worst / worstRef).toFixed(2)),
    );
  } finally {
    await http.delete(`/api/v1/namespaces/${ns}/pods/pod`, { gracePeriodSeconds: 0 }).catch((err) => {
      if (!(err instanceof NotFoundError)) throw err;
    });
  }
}

await main();
Deno.exit(0);
