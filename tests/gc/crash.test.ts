// An agent killed between writing a pool record and writing the SpiderEndpoint: a validating webhook holds the
// endpoint's CREATE while the test SIGKILLs the real agent process (`dist/spiderpool agent`), which leaves a
// record no endpoint confirms. The GC keeps it while its pod lives, defers it for the unconfirmed grace once
// the pod is gone, and releases it after.

import assert from "node:assert/strict";
import { AgentClient } from "../../src/agentapi/client.ts";
import { kubeTest } from "../kube/harness.ts";
import { startAgentProcess } from "../e2e/node_sim.ts";
import { eventually, gcWorld } from "./env.ts";

async function selfSigned(dir: string): Promise<{ cert: string; key: string }> {
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      `${dir}/key.pem`,
      "-out",
      `${dir}/cert.pem`,
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (out.code !== 0) throw new Error(`openssl: ${new TextDecoder().decode(out.stderr)}`);
  return { cert: await Deno.readTextFile(`${dir}/cert.pem`), key: await Deno.readTextFile(`${dir}/key.pem`) };
}

kubeTest(
  "gc crash: a record left by an agent killed before its endpoint is kept while the pod lives, released after grace",
  async () => {
    await using w = await gcWorld("gc-crash");
    const http = w.scope.cluster.http;
    const dir = await Deno.makeTempDir({ prefix: "spiderpool-gc-crash-" });
    let hit!: () => void;
    const held = new Promise<void>((r) => hit = r);
    let letGo!: () => void;
    const released = new Promise<void>((r) => letGo = r);
    const tls = await selfSigned(dir);
    // Holds every SpiderEndpoint CREATE of this namespace until the test lets go, then refuses it.
    const webhook = Deno.serve(
      { hostname: "127.0.0.1", port: 0, cert: tls.cert, key: tls.key, onListen: () => {} },
      async (req) => {
        const review = await req.json();
        const uid = review.request.uid;
        if (review.request.kind?.kind === "SpiderEndpoint") {
          hit();
          await released;
        }
        return Response.json({
          apiVersion: "admission.k8s.io/v1",
          kind: "AdmissionReview",
          response: { uid, allowed: false, status: { code: 403, message: "held by the test" } },
        });
      },
    );
    const name = w.scope.name("hold");
    const path = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";
    let agent: Awaited<ReturnType<typeof startAgentProcess>> | undefined;
    try {
      await http.post(path, {
        apiVersion: "admissionregistration.k8s.io/v1",
        kind: "ValidatingWebhookConfiguration",
        metadata: { name },
        webhooks: [{
          name: "hold.gc-test.spidernet.io",
          clientConfig: { url: `https://127.0.0.1:${webhook.addr.port}/hold`, caBundle: btoa(tls.cert) },
          rules: [{
            apiGroups: ["spiderpool.spidernet.io"],
            apiVersions: ["v2beta1"],
            operations: ["CREATE"],
            resources: ["spiderendpoints"],
          }],
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": w.ns } },
          failurePolicy: "Fail",
          sideEffects: "None",
          admissionReviewVersions: ["v1"],
          timeoutSeconds: 15,
        }],
      });
      w.scope.track(`${path}/${name}`);
      const node = w.scope.name("n1");
      await http.post("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: node } });
      w.scope.track(`/api/v1/nodes/${node}`);
      await w.setNodeReady(node, true);
      const pool = await w.pool("v4", ["192.0.2.10-192.0.2.20"]);
      agent = await startAgentProcess({ node, kubeconfig: w.scope.cluster.kubeconfigPath, dir });
      const pod = await w.createPod("p", node, pool);
      const add = w.add(new AgentClient(agent.socketPath, { timeoutMs: 60_000 }), pod).then(
        () => "answered",
        () => "failed",
      );
      await held;
      await agent.kill();
      letGo();
      assert.equal(await add, "failed", "the agent died before answering");
      const records = await w.records(pool);
      assert.deepEqual(Object.values(records), [{ pod: `${w.ns}/p`, podUid: pod.uid }]);
      const ip = Object.keys(records)[0];
      assert.equal(await w.endpoint("p"), undefined, "the endpoint was never written");

      const gc = w.gc({ config: { unconfirmedGraceMs: 3_000, intervalMs: 3_600_000 } });
      const alive = await gc.scanAll("request");
      assert.deepEqual([alive.released, alive.deferred], [[], []], "the pod lives: its ADD may be retried");

      await w.forceDelete(pod);
      const first = await gc.scanAll("request");
      assert.deepEqual(first.released, []);
      assert.deepEqual(first.deferred.map((d) => [d.ip, d.podUid]), [[ip, pod.uid]]);
      assert.ok((await w.records(pool))[ip], "kept during the unconfirmed grace");

      // The leader's trace loop looks again when the grace ends; no further scan is needed.
      gc.start();
      await eventually(
        "the record to be released after the grace",
        async () => (await w.records(pool))[ip] ? undefined : true,
      );
      assert.ok(
        w.logs.some((l) => l.includes("after the unconfirmed grace") || l.includes("released 1")),
        w.logs.join("\n"),
      );
    } finally {
      letGo();
      await agent?.kill();
      await webhook.shutdown();
      await http.delete(`${path}/${name}`).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
