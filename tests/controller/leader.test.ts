// Leader election between real processes against the real API server: each replica is a process running the
// LeaderElector (tests/controller/elector_entry.ts) whose leader-only work creates marker ConfigMaps. The API
// server's own order of those writes (their resourceVersions, etcd revisions) shows who wrote when: exactly one
// leader, a killed leader replaced within the lease duration, a stopped leader that writes nothing once it is
// resumed after being replaced, and a graceful stop that hands over at once.
import assert from "node:assert/strict";
import { kubeTest, poll, type TestScope, testScope } from "../kube/harness.ts";

const ENTRY = new URL("./elector_entry.ts", import.meta.url).pathname;

interface Report {
  event: string;
  t: number;
  id: string;
  seq?: number;
  holder?: string;
  reason?: string;
}

interface Timings {
  leaseMs: number;
  renewMs: number;
  retryMs: number;
}

class Replica {
  readonly reports: Report[] = [];
  readonly child: Deno.ChildProcess;
  readonly done: Promise<Deno.CommandStatus>;
  #stderr = "";

  constructor(readonly id: string, scope: TestScope, lease: string, t: Timings) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        ENTRY,
        `--kubeconfig=${scope.cluster.kubeconfigPath}`,
        `--namespace=${scope.namespace}`,
        `--identity=${id}`,
        `--lease=${lease}`,
        `--lease-ms=${t.leaseMs}`,
        `--renew-ms=${t.renewMs}`,
        `--retry-ms=${t.retryMs}`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.done = this.child.status;
    void this.#read(this.child.stdout, (line) => this.reports.push(JSON.parse(line)));
    void this.#read(this.child.stderr, (line) => this.#stderr += line + "\n");
  }

  async #read(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
    let buf = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) onLine(line);
      }
    }
  }

  get log(): string {
    return this.#stderr;
  }

  events(name: string): Report[] {
    return this.reports.filter((r) => r.event === name);
  }

  /** Leading now, by its own reports. */
  leading(): boolean {
    const last = this.reports.filter((r) => r.event === "started" || r.event === "stopped").at(-1);
    return last?.event === "started";
  }

  signal(sig: Deno.Signal): void {
    try {
      Deno.kill(this.child.pid, sig);
    } catch { /* already gone */ }
  }
}

/** Starts `n` replicas; the returned disposer SIGKILLs whatever is still running (by pid). */
function startReplicas(scope: TestScope, lease: string, n: number, t: Timings) {
  const replicas = Array.from(
    { length: n },
    (_, i) => new Replica(`r${i}-${crypto.randomUUID().slice(0, 4)}`, scope, lease, t),
  );
  return {
    replicas,
    async [Symbol.asyncDispose]() {
      for (const r of replicas) {
        r.signal("SIGCONT");
        r.signal("SIGKILL");
      }
      await Promise.all(replicas.map((r) => r.done));
    },
  };
}

/** The marker writes as the API server ordered them (resourceVersion = etcd revision, increasing). */
async function writesInServerOrder(
  scope: TestScope,
  lease: string,
): Promise<{ writer: string; rv: bigint }[]> {
  const sel = encodeURIComponent(`spiderpool.spidernet.io/marker=${lease}`);
  const { body } = await scope.cluster.http.get<{
    items: { metadata: { resourceVersion: string }; data: { writer: string } }[];
  }>(`/api/v1/namespaces/${scope.namespace}/configmaps?labelSelector=${sel}`);
  return body.items
    .map((c) => ({ writer: c.data.writer, rv: BigInt(c.metadata.resourceVersion) }))
    .sort((a, b) => (a.rv < b.rv ? -1 : a.rv > b.rv ? 1 : 0));
}

/** Writers in server order with consecutive duplicates folded: ["a", "b"] means a wrote, then only b. */
function runs(writes: { writer: string }[]): string[] {
  return writes.map((w) => w.writer).filter((w, i, a) => i === 0 || a[i - 1] !== w);
}

async function waitLeader(replicas: Replica[], timeoutMs: number, exclude?: Replica): Promise<Replica> {
  return await poll("a replica to start leading and write", timeoutMs, () => {
    const l = replicas.filter((r) => r !== exclude && r.leading() && r.events("wrote").length > 0);
    return Promise.resolve(l.length === 1 ? l[0] : undefined);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

kubeTest(
  "leader election: of three replicas exactly one leads, and only its writes reach the API server",
  async () => {
    await using scope = await testScope("elect-one", { serviceAccount: false });
    const lease = scope.name("lease");
    await using group = startReplicas(scope, lease, 3, { leaseMs: 4_000, renewMs: 3_000, retryMs: 500 });
    const leader = await waitLeader(group.replicas, 60_000);
    await sleep(3_000); // several renewals and candidate rounds
    const starts = group.replicas.flatMap((r) => r.events("started"));
    assert.equal(starts.length, 1, `one term started, got ${JSON.stringify(starts)}`);
    assert.equal(group.replicas.filter((r) => r.leading()).length, 1);
    const writes = await writesInServerOrder(scope, lease);
    assert.ok(writes.length >= 5, `the leader kept writing (${writes.length})`);
    assert.deepEqual(runs(writes), [leader.id]);
    const { body } = await scope.cluster.http.get<
      { spec: { holderIdentity: string; leaseDurationSeconds: number } }
    >(
      `/apis/coordination.k8s.io/v1/namespaces/${scope.namespace}/leases/${lease}`,
    );
    assert.equal(body.spec.holderIdentity, leader.id);
    assert.equal(body.spec.leaseDurationSeconds, 4);
    for (const r of group.replicas) {
      assert.ok(r.events("leader").some((e) => e.holder === leader.id), `${r.id} observed the new leader`);
    }
  },
);

kubeTest("leader election: a SIGKILLed leader is replaced within the lease duration", async () => {
  await using scope = await testScope("elect-kill", { serviceAccount: false });
  const lease = scope.name("lease");
  const t = { leaseMs: 4_000, renewMs: 3_000, retryMs: 500 };
  await using group = startReplicas(scope, lease, 3, t);
  const old = await waitLeader(group.replicas, 60_000);
  await sleep(1_000);
  const killedAt = Date.now();
  old.signal("SIGKILL");
  await old.done;
  const next = await waitLeader(group.replicas, 30_000, old);
  const took = next.events("started")[0].t - killedAt;
  console.log(`leader killed; ${next.id} took over after ${took} ms (lease duration ${t.leaseMs} ms)`);
  // The others' expiry clocks started at the last renewal they saw (at most one retry period before the kill);
  // candidates poll every retry period (jittered ×1.2). The slack is for process scheduling on a loaded machine.
  assert.ok(took <= t.leaseMs + 1.2 * t.retryMs + 3_000, `took over after ${took} ms`);
  // While it led, its last renewal was sent less than renewDeadline before the kill, and nobody may take the
  // lease sooner than leaseDuration after that send.
  assert.ok(took >= t.leaseMs - t.renewMs - 500, `no take-over before the lease could expire (${took} ms)`);
  const order = runs(await writesInServerOrder(scope, lease));
  assert.deepEqual(order, [old.id, next.id]);
});

kubeTest(
  "leader election: a SIGSTOPped leader, resumed after being replaced, writes nothing more",
  async () => {
    await using scope = await testScope("elect-stop", { serviceAccount: false });
    const lease = scope.name("lease");
    const t = { leaseMs: 4_000, renewMs: 3_000, retryMs: 500 };
    await using group = startReplicas(scope, lease, 3, t);
    const old = await waitLeader(group.replicas, 60_000);
    // Stop it just after a write completed, i.e. between two leader-only writes, as a GC pause or a stopped
    // container would.
    const n = old.events("wrote").length;
    await poll(
      "the leader's next write",
      10_000,
      () => Promise.resolve(old.events("wrote").length > n || undefined),
    );
    old.signal("SIGSTOP");
    const stoppedAt = Date.now();
    const next = await waitLeader(group.replicas, 30_000, old);
    await poll(
      "the new leader's writes",
      10_000,
      () => Promise.resolve(next.events("wrote").length >= 3 || undefined),
    );
    old.signal("SIGCONT");
    await poll("the resumed replica to notice", 10_000, () => Promise.resolve(!old.leading() || undefined));
    await sleep(2_000); // time for any late write of the old leader to land
    const stop = old.events("stopped").at(-1)!;
    console.log(`stopped for ${stop.t - stoppedAt} ms; on resuming it stopped leading: ${stop.reason}`);
    assert.match(stop.reason!, /renew deadline|held by|409/);
    const writes = await writesInServerOrder(scope, lease);
    const firstNew = writes.findIndex((w) => w.writer === next.id);
    assert.ok(firstNew > 0);
    const late = writes.slice(firstNew).filter((w) => w.writer === old.id);
    assert.deepEqual(late, [], "no write of the old leader after the new leader's first");
    assert.deepEqual(runs(writes), [old.id, next.id]);
    assert.equal(old.events("started").length, 1, "the resumed replica did not lead again");
  },
);

kubeTest(
  "leader election: a gracefully stopped leader releases the lease and another takes over at once",
  async () => {
    await using scope = await testScope("elect-term", { serviceAccount: false });
    const lease = scope.name("lease");
    const t = { leaseMs: 10_000, renewMs: 7_000, retryMs: 500 };
    await using group = startReplicas(scope, lease, 3, t);
    const old = await waitLeader(group.replicas, 60_000);
    const termAt = Date.now();
    old.signal("SIGTERM");
    assert.equal((await old.done).code, 0, old.log);
    assert.ok(old.events("exited").length === 1);
    const next = await waitLeader(group.replicas, 30_000, old);
    const took = next.events("started")[0].t - termAt;
    console.log(`graceful stop: ${next.id} took over after ${took} ms (lease duration ${t.leaseMs} ms)`);
    assert.ok(took < t.leaseMs / 2, `handed over after ${took} ms, not after the lease expired`);
    assert.match(old.log, /released the lease/);
    assert.deepEqual(runs(await writesInServerOrder(scope, lease)), [old.id, next.id]);
  },
);
