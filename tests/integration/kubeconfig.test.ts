// Each form of credentials the agent's own kubeconfig loader (src/kube/kubeconfig.ts) supports, against the
// real kube-apiserver: the API server's SelfSubjectReview says who it authenticated, so every test asserts the
// identity the server saw, not only that a request went through.

import assert from "node:assert/strict";
import { KubeHttp, KubeHttpError } from "../../src/kube/client.ts";
import { ExecCredentialError, loadClusterAccess } from "../../src/kube/kubeconfig.ts";
import { kubeTest, poll, type TestScope, testScope } from "../kube/harness.ts";

interface Admin {
  server: string;
  caPem: string;
  token: string;
}

/** Server, CA and admin token of the test cluster, from its kubeconfig (JSON). */
async function admin(scope: TestScope): Promise<Admin> {
  const cfg = JSON.parse(await Deno.readTextFile(scope.cluster.kubeconfigPath));
  const cluster = cfg.clusters[0].cluster;
  const caPem = cluster["certificate-authority-data"]
    ? atob(cluster["certificate-authority-data"])
    : await Deno.readTextFile(cluster["certificate-authority"]);
  return { server: cluster.server, caPem, token: cfg.users[0].user.token };
}

/** Writes a kubeconfig with one cluster (the test cluster, CA as a file next to it) and `user`. */
async function writeKubeconfig(dir: string, a: Admin, user: Record<string, unknown>): Promise<string> {
  await Deno.writeTextFile(`${dir}/ca.crt`, a.caPem);
  const path = `${dir}/kubeconfig`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "test", cluster: { server: a.server, "certificate-authority": "ca.crt" } }],
      users: [{ name: "u", user }],
      contexts: [{ name: "t", context: { cluster: "test", user: "u" } }],
      "current-context": "t",
    }),
  );
  return path;
}

interface UserInfo {
  username: string;
  groups?: string[];
}

/** Who the API server says `http`'s credentials are. */
async function whoAmI(http: KubeHttp): Promise<UserInfo> {
  const { body } = await http.post<{ status: { userInfo: UserInfo } }>(
    "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
  );
  return body.status.userInfo;
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-kubeconfig-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function run(cmd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/**
 * A client certificate for `cn` in group `org`, signed by the cluster through the CertificateSigningRequest API
 * (kube-controller-manager's signer), as a user would get one. Returns the PEM files' paths.
 */
async function clientCertificate(scope: TestScope, dir: string, cn: string, org: string) {
  const key = `${dir}/${cn}.key`;
  const csr = `${dir}/${cn}.csr`;
  await run(
    "openssl",
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    key,
    "-out",
    csr,
    "-subj",
    `/CN=${cn}/O=${org}`,
  );
  const { http } = scope.cluster;
  const name = scope.name(`csr-${cn}`);
  const path = `/apis/certificates.k8s.io/v1/certificatesigningrequests/${name}`;
  await http.post("/apis/certificates.k8s.io/v1/certificatesigningrequests", {
    apiVersion: "certificates.k8s.io/v1",
    kind: "CertificateSigningRequest",
    metadata: { name },
    spec: {
      request: btoa(await Deno.readTextFile(csr)),
      signerName: "kubernetes.io/kube-apiserver-client",
      usages: ["client auth"],
      expirationSeconds: 3600,
    },
  });
  scope.track(path);
  const { body: current } = await http.get<Record<string, unknown>>(path);
  await http.put(`${path}/approval`, {
    ...current,
    status: {
      conditions: [{ type: "Approved", status: "True", reason: "Test", message: "kubeconfig test" }],
    },
  });
  const certB64 = await poll(`certificate of CSR ${name}`, 30_000, async () => {
    const { body } = await http.get<{ status?: { certificate?: string } }>(path);
    return body.status?.certificate;
  });
  const cert = `${dir}/${cn}.crt`;
  await Deno.writeTextFile(cert, atob(certB64));
  return { cert, key };
}

kubeTest("kubeconfig: an inline token authenticates as its user", async () => {
  await using scope = await testScope("kc-token", { serviceAccount: false });
  const a = await admin(scope);
  await withDir(async (dir) => {
    const path = await writeKubeconfig(dir, a, { token: a.token });
    using http = new KubeHttp(await loadClusterAccess(path));
    assert.equal((await whoAmI(http)).username, "admin");
  });
});

kubeTest("kubeconfig: a tokenFile is read again after a 401, so a rotated token is picked up", async () => {
  await using scope = await testScope("kc-tokenfile", { serviceAccount: false });
  const a = await admin(scope);
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/token`, "not-a-valid-token\n");
    const path = await writeKubeconfig(dir, a, { tokenFile: "token" });
    using http = new KubeHttp(await loadClusterAccess(path));
    await assert.rejects(whoAmI(http), (e: Error) => e instanceof KubeHttpError && e.status === 401);
    // The file is replaced (as the kubelet replaces a projected token); the next request reads it again.
    await Deno.writeTextFile(`${dir}/token`, `${a.token}\n`);
    assert.equal((await whoAmI(http)).username, "admin");
  });
});

kubeTest(
  "kubeconfig: a client certificate and key, as files or inline data, authenticate as the certificate's CN and O",
  async () => {
    await using scope = await testScope("kc-cert", { serviceAccount: false });
    const a = await admin(scope);
    const cn = `kc-user-${crypto.randomUUID().slice(0, 6)}`;
    await withDir(async (dir) => {
      const { cert, key } = await clientCertificate(scope, dir, cn, "kc-testers");
      const files = await writeKubeconfig(dir, a, { "client-certificate": cert, "client-key": key });
      using byFile = new KubeHttp(await loadClusterAccess(files));
      const who = await whoAmI(byFile);
      assert.equal(who.username, cn);
      assert.ok(who.groups?.includes("kc-testers"), `groups ${who.groups}`);
      const inline = await writeKubeconfig(dir, a, {
        "client-certificate-data": btoa(await Deno.readTextFile(cert)),
        "client-key-data": btoa(await Deno.readTextFile(key)),
      });
      using byData = new KubeHttp(await loadClusterAccess(inline));
      assert.equal((await whoAmI(byData)).username, cn);
    });
  },
);

/** An exec credential plugin (a shell script) that counts its runs and records KUBERNETES_EXEC_INFO. */
async function execPlugin(dir: string, body: string): Promise<string> {
  const path = `${dir}/cred-plugin.sh`;
  await Deno.writeTextFile(
    path,
    [
      "#!/bin/sh",
      `n=$(cat "${dir}/runs" 2>/dev/null || echo 0); n=$((n+1)); echo $n >"${dir}/runs"`,
      `printf '%s' "$KUBERNETES_EXEC_INFO" >"${dir}/exec-info"`,
      body,
      "",
    ].join("\n"),
  );
  await Deno.chmod(path, 0o755);
  return path;
}

kubeTest(
  "kubeconfig: an exec plugin's token is used until the server refuses it, then the plugin runs again",
  async () => {
    await using scope = await testScope("kc-exec", { serviceAccount: false });
    const a = await admin(scope);
    await withDir(async (dir) => {
      const V1 = "client.authentication.k8s.io/v1";
      // First run: a token the server refuses; later runs: the admin token.
      const plugin = await execPlugin(
        dir,
        `if [ "$n" = 1 ]; then t=wrong; else t=${a.token}; fi\n` +
          `printf '{"apiVersion":"${V1}","kind":"ExecCredential","status":{"token":"%s"}}' "$t"`,
      );
      const path = await writeKubeconfig(dir, a, {
        exec: { apiVersion: V1, command: plugin, env: [{ name: "EXTRA", value: "1" }] },
      });
      using http = new KubeHttp(await loadClusterAccess(path));
      const info = JSON.parse(await Deno.readTextFile(`${dir}/exec-info`));
      assert.deepEqual(info, { apiVersion: V1, kind: "ExecCredential", spec: { interactive: false } });
      await assert.rejects(whoAmI(http), (e: Error) => e instanceof KubeHttpError && e.status === 401);
      assert.equal((await whoAmI(http)).username, "admin");
      assert.equal((await whoAmI(http)).username, "admin");
      assert.equal(
        (await Deno.readTextFile(`${dir}/runs`)).trim(),
        "2",
        "the plugin ran once per refusal only",
      );
    });
  },
);

kubeTest("kubeconfig: an exec plugin may answer a client certificate instead of a token", async () => {
  await using scope = await testScope("kc-exec-cert", { serviceAccount: false });
  const a = await admin(scope);
  const cn = `kc-exec-${crypto.randomUUID().slice(0, 6)}`;
  await withDir(async (dir) => {
    const { cert, key } = await clientCertificate(scope, dir, cn, "kc-testers");
    const V1B1 = "client.authentication.k8s.io/v1beta1";
    const credential = JSON.stringify({
      apiVersion: V1B1,
      kind: "ExecCredential",
      status: {
        clientCertificateData: await Deno.readTextFile(cert),
        clientKeyData: await Deno.readTextFile(key),
      },
    });
    await Deno.writeTextFile(`${dir}/credential.json`, credential);
    const plugin = await execPlugin(dir, `cat "${dir}/credential.json"`);
    const path = await writeKubeconfig(dir, a, { exec: { apiVersion: V1B1, command: plugin } });
    using http = new KubeHttp(await loadClusterAccess(path));
    assert.equal((await whoAmI(http)).username, cn);
  });
});

kubeTest("kubeconfig: a failing exec plugin fails the load with its exit code and message", async () => {
  await using scope = await testScope("kc-exec-fail", { serviceAccount: false });
  const a = await admin(scope);
  await withDir(async (dir) => {
    const plugin = await execPlugin(dir, "echo 'login required: run the login command' >&2; exit 3");
    const path = await writeKubeconfig(dir, a, {
      exec: { apiVersion: "client.authentication.k8s.io/v1", command: plugin },
    });
    await assert.rejects(loadClusterAccess(path), (e: Error) => {
      assert.ok(e instanceof ExecCredentialError);
      assert.match(e.message, /exited with code 3: login required: run the login command/);
      return true;
    });
  });
});

kubeTest("in-cluster: the service account's token, CA and namespace from the mounted directory", async () => {
  await using scope = await testScope("kc-incluster");
  const a = await admin(scope);
  const { http } = scope.cluster;
  const { body } = await http.post<{ status: { token: string } }>(
    `/api/v1/namespaces/${scope.namespace}/serviceaccounts/default/token`,
    { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 600 } },
  );
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/token`, body.status.token);
    await Deno.writeTextFile(`${dir}/ca.crt`, a.caPem);
    await Deno.writeTextFile(`${dir}/namespace`, scope.namespace);
    const url = new URL(a.server);
    const env = new Map([["KUBERNETES_SERVICE_HOST", url.hostname], ["KUBERNETES_SERVICE_PORT", url.port]]);
    const access = await loadClusterAccess(undefined, { env, serviceAccountDir: dir });
    assert.equal(access.namespace, scope.namespace);
    using sa = new KubeHttp(access);
    assert.equal((await whoAmI(sa)).username, `system:serviceaccount:${scope.namespace}:default`);
  });
});

kubeTest(
  "kubeconfig: $KUBECONFIG's files are merged (the context of one file, the user of another)",
  async () => {
    await using scope = await testScope("kc-merge", { serviceAccount: false });
    const a = await admin(scope);
    await withDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/ca.crt`, a.caPem);
      await Deno.writeTextFile(
        `${dir}/one`,
        JSON.stringify({
          clusters: [{ name: "test", cluster: { server: a.server, "certificate-authority": "ca.crt" } }],
          contexts: [{ name: "t", context: { cluster: "test", user: "u" } }],
          "current-context": "t",
        }),
      );
      await Deno.writeTextFile(
        `${dir}/two`,
        JSON.stringify({ users: [{ name: "u", user: { token: a.token } }] }),
      );
      const env = new Map([["KUBECONFIG", `${dir}/one:${dir}/missing:${dir}/two`]]);
      using http = new KubeHttp(await loadClusterAccess(undefined, { env }));
      assert.equal((await whoAmI(http)).username, "admin");
    });
  },
);

kubeTest("kubeconfig: `as` impersonates another user", async () => {
  await using scope = await testScope("kc-as", { serviceAccount: false });
  const a = await admin(scope);
  await withDir(async (dir) => {
    const path = await writeKubeconfig(dir, a, { token: a.token, as: "jane", "as-groups": ["viewers"] });
    using http = new KubeHttp(await loadClusterAccess(path));
    const who = await whoAmI(http);
    assert.equal(who.username, "jane");
    assert.ok(who.groups?.includes("viewers"), `groups ${who.groups}`);
  });
});
