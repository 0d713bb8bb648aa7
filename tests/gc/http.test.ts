// The GC trigger on the health port against the real API server's TokenReview and SubjectAccessReview: no
// token and bad tokens are 401, a ServiceAccount without the RBAC rule is 403, one with it runs scan-all and
// gets the report; `spiderpool gc` (the built binary) prints it; the metrics count what was released.

import assert from "node:assert/strict";
import { apiServerAuthorizer, GC_PATH, gcHandler } from "../../src/controller/gc/mod.ts";
import { kubeTest } from "../kube/harness.ts";
import { gcWorld } from "./env.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** A ServiceAccount token from the TokenRequest API. */
async function saToken(w: Awaited<ReturnType<typeof gcWorld>>, name: string): Promise<string> {
  const http = w.scope.cluster.http;
  await http.post(`/api/v1/namespaces/${w.ns}/serviceaccounts`, {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name },
  });
  const { body } = await http.post<{ status: { token: string } }>(
    `/api/v1/namespaces/${w.ns}/serviceaccounts/${name}/token`,
    { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 600 } },
  );
  return body.status.token;
}

kubeTest("gc http: POST /v1/ipam/gc_ips needs a token the API server accepts and the RBAC verb", async () => {
  await using w = await gcWorld("gc-http");
  const http = w.scope.cluster.http;
  const node = await w.node("n1");
  const pool = await w.pool("v4", ["192.0.2.10-192.0.2.20"]);
  const gone = await w.runPod("gone", node, pool);
  await w.forceDelete(gone);

  const role = w.scope.name("gc-caller");
  await http.post("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: role },
    rules: [{
      apiGroups: ["spiderpool.spidernet.io"],
      resources: ["spiderippools/gc"],
      verbs: ["create", "get"],
    }],
  });
  w.scope.track(`/apis/rbac.authorization.k8s.io/v1/clusterroles/${role}`);
  await http.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: role },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
    subjects: [{ kind: "ServiceAccount", name: "caller", namespace: w.ns }],
  });
  w.scope.track(`/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${role}`);
  const allowed = await saToken(w, "caller");
  const denied = await saToken(w, "nobody");

  const gc = w.gc();
  const route = gcHandler(gc, apiServerAuthorizer(http));
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => route(req) ?? new Response(null, { status: 404 }),
  );
  try {
    const base = `http://127.0.0.1:${server.addr.port}`;
    const call = async (method: string, token?: string) => {
      const res = await fetch(`${base}${GC_PATH}`, {
        method,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
      return { status: res.status, body: await res.json(), auth: res.headers.get("www-authenticate") };
    };
    const none = await call("POST");
    assert.equal(none.status, 401);
    assert.match(none.body, /Authorization: Bearer/);
    assert.equal(none.auth, 'Bearer realm="spiderpool-controller"');
    assert.equal((await call("POST", "not-a-token")).status, 401);
    const forbidden = await call("POST", denied);
    assert.equal(forbidden.status, 403);
    assert.match(forbidden.body, new RegExp(`system:serviceaccount:${w.ns}:nobody.*create spiderippools/gc`));
    assert.deepEqual(
      await w.records(pool),
      { [gone.ip]: { pod: `${w.ns}/gone`, podUid: gone.uid } },
      "refused = no scan",
    );
    assert.equal((await call("GET", allowed)).status, 404, "no report yet");
    assert.equal((await call("PUT", allowed)).status, 405);

    const ok = await call("POST", allowed);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.trigger, "request");
    assert.deepEqual(ok.body.released.map((r: { ip: string; reason: string }) => [r.ip, r.reason]), [[
      gone.ip,
      "pod_not_found",
    ]]);
    assert.deepEqual(await w.records(pool), {});
    const last = await call("GET", allowed);
    assert.equal(last.status, 200);
    assert.equal(last.body.startedAt, ok.body.startedAt);

    const metrics = await gc.metrics.released.get();
    assert.equal(metrics.values[0]?.value, 1, "spiderpool_ip_gc_counts_total counts the release");

    // The CLI, as a user runs it: the built binary with a token file and the controller address.
    const another = await w.runPod("another", node, pool);
    await w.forceDelete(another);
    const tokenFile = await Deno.makeTempFile();
    await Deno.writeTextFile(tokenFile, allowed);
    try {
      const out = await new Deno.Command(`${ROOT}dist/spiderpool`, {
        args: ["gc", "--controller", base, "--token-file", tokenFile],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.match(stdout, /released 1, deferred 0/);
      assert.match(
        stdout,
        new RegExp(`released  ${another.ip.replaceAll(".", "\\.")}  pool ${pool}  ${w.ns}/another`),
      );
      assert.match(stdout, /pod_not_found: pod .* does not exist/);
      const bad = await new Deno.Command(`${ROOT}dist/spiderpool`, {
        args: ["gc", "--controller", base, "--token-file", "/dev/null"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(bad.code, 1);
      assert.match(new TextDecoder().decode(bad.stderr), /HTTP 401/);
    } finally {
      await Deno.remove(tokenFile);
    }
  } finally {
    await server.shutdown();
  }
});
