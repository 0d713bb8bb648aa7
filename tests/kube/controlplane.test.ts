// restartApiServer() of the test control plane: kube-apiserver ends (SIGKILL, then SIGTERM) and comes back on the
// same address with the same etcd, CA and token, so clients keep their kubeconfig and objects survive; the
// deliberate exit is not reported as a crash, and the control plane still stops cleanly afterwards.

import assert from "node:assert/strict";
import { KubeHttp } from "../../src/kube/client.ts";
import { startControlPlane } from "./controlplane.ts";

Deno.test({
  name: "controlplane: restartApiServer() brings kube-apiserver back on the same port, etcd, PKI and token",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const cp = await startControlPlane({ controllerManager: false });
    let died: string | undefined;
    void cp.died.then((m) => died = m);
    const http = new KubeHttp({
      server: cp.server,
      caPem: cp.caPem,
      authorization: () => Promise.resolve(`Bearer ${cp.token}`),
    });
    try {
      const name = `restart-${crypto.randomUUID().slice(0, 8)}`;
      await http.post("/api/v1/namespaces/default/configmaps", {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name },
        data: { written: "before" },
      });
      const before = cp.pids["kube-apiserver"];

      const killed = await cp.restartApiServer({ downMs: 500 });
      assert.notEqual(killed.pid, before);
      assert.equal(cp.pids["kube-apiserver"], killed.pid);
      assert.ok(killed.readyMs >= killed.exitMs + 500, JSON.stringify(killed));
      // The old process is gone, the new one answers with the same CA and token, and etcd kept the object.
      assert.throws(() => Deno.kill(before, "SIGCONT"), Deno.errors.NotFound);
      const cm = await http.get<{ data: Record<string, string> }>(
        `/api/v1/namespaces/default/configmaps/${name}`,
      );
      assert.deepEqual(cm.body.data, { written: "before" });

      const termed = await cp.restartApiServer({ signal: "SIGTERM" });
      assert.notEqual(termed.pid, killed.pid);
      await http.delete(`/api/v1/namespaces/default/configmaps/${name}`);

      // Both exits were on purpose: nothing reported a dead component.
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(died, undefined);
    } finally {
      http.close();
      await cp.stop();
    }
    // stop() ended exactly the current processes.
    for (const pid of Object.values(cp.pids)) {
      assert.throws(() => Deno.kill(pid, "SIGCONT"), Deno.errors.NotFound, `pid ${pid} still running`);
    }
  },
});
