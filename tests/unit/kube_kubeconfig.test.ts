// Kubeconfig parsing, merging, context resolution, source choice and exec credentials
// (src/kube/kubeconfig.ts): the pure rules, one behaviour per test. Requests with each form of credentials
// against the real API server are in tests/integration/kubeconfig.test.ts.

import assert from "node:assert/strict";
import {
  chooseSource,
  ExecCredentialError,
  inClusterConfig,
  KubeconfigError,
  mergeKubeconfigs,
  parseExecCredential,
  parseKubeconfig,
  resolveKubeconfig,
  type SourceFacts,
} from "../../src/kube/kubeconfig.ts";

const FILE = "/etc/kube/config";

function config(
  user: Record<string, unknown> = { token: "t0k" },
  cluster: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster: { server: "https://192.0.2.1:6443/", ...cluster } }],
    users: [{ name: "u", user }],
    contexts: [{ name: "ctx", context: { cluster: "c", user: "u", namespace: "ns1" } }],
    "current-context": "ctx",
  });
}

const resolve = (text: string, file = FILE) => resolveKubeconfig(parseKubeconfig(text, file));

Deno.test("a token user resolves to its server (trailing slash dropped), its token and the context's namespace", () => {
  const r = resolve(config());
  assert.equal(r.server, "https://192.0.2.1:6443");
  assert.deepEqual(r.credentials, { kind: "token", token: "t0k" });
  assert.equal(r.namespace, "ns1");
  assert.equal(r.ca, undefined);
  assert.match(r.source, /\/etc\/kube\/config \(context "ctx"\)/);
});

Deno.test("YAML kubeconfigs parse like JSON ones", () => {
  const yaml = `
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://192.0.2.1:6443
    certificate-authority-data: QUJD
users:
- name: u
  user:
    client-certificate: certs/u.crt
    client-key: /abs/u.key
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
`;
  const r = resolve(yaml);
  assert.deepEqual(r.ca, { data: "QUJD" });
  assert.deepEqual(r.cert, { file: "/etc/kube/certs/u.crt" });
  assert.deepEqual(r.key, { file: "/abs/u.key" });
  assert.deepEqual(r.credentials, { kind: "none" });
});

Deno.test("relative certificate-authority, tokenFile and exec command paths are relative to the kubeconfig's directory", () => {
  const r1 = resolve(config({ tokenFile: "tok" }, { "certificate-authority": "../pki/ca.crt" }));
  assert.deepEqual(r1.ca, { file: "/etc/kube/../pki/ca.crt" });
  assert.deepEqual(r1.credentials, { kind: "token-file", path: "/etc/kube/tok", token: undefined });
  const exec = { apiVersion: "client.authentication.k8s.io/v1", command: "./bin/cred" };
  const r2 = resolve(config({ exec }));
  assert.equal(r2.credentials.kind === "exec" && r2.credentials.exec.command, "/etc/kube/./bin/cred");
  const bare = resolve(config({ exec: { ...exec, command: "kubelogin" } }));
  assert.equal(bare.credentials.kind === "exec" && bare.credentials.exec.command, "kubelogin");
});

Deno.test("client-node's token-file key is read like client-go's tokenFile", () => {
  assert.deepEqual(resolve(config({ "token-file": "/run/tok" })).credentials, {
    kind: "token-file",
    path: "/run/tok",
    token: undefined,
  });
});

Deno.test("username and password become basic auth", () => {
  assert.deepEqual(resolve(config({ username: "ann", password: "pw" })).credentials, {
    kind: "basic",
    username: "ann",
    password: "pw",
  });
});

Deno.test("impersonation: as, as-uid and one group become Impersonate-* headers", () => {
  const r = resolve(config({ token: "t", as: "bob", "as-uid": "42", "as-groups": ["devs"] }));
  assert.deepEqual(r.headers, {
    "Impersonate-User": "bob",
    "Impersonate-Uid": "42",
    "Impersonate-Group": "devs",
  });
});

Deno.test("refused, with the field and the fix: two authentication methods, half a client certificate, data and file both", () => {
  assert.throws(() => resolve(config({ token: "t", username: "a", password: "b" })), (e: Error) => {
    assert.ok(e instanceof KubeconfigError);
    assert.match(
      e.message,
      /user "u" sets more than one authentication method \(token, basic auth\); keep one/,
    );
    return true;
  });
  assert.throws(
    () => resolve(config({ "client-certificate": "/a.crt" })),
    /client certificate but no client-key/,
  );
  assert.throws(
    () => resolve(config({ "client-key-data": "QQ==", "client-key": "/k" })),
    /sets both client-key and client-key-data; keep one/,
  );
  assert.throws(
    () => resolve(config({}, { "certificate-authority": "/ca", "certificate-authority-data": "QQ==" })),
    /sets both certificate-authority and certificate-authority-data/,
  );
});

Deno.test("refused: what this client cannot do (skip TLS verification, tls-server-name, proxy-url) and legacy auth-providers", () => {
  assert.throws(
    () => resolve(config({}, { "insecure-skip-tls-verify": true })),
    /cluster "c" sets insecure-skip-tls-verify, which this client does not support; give the API server's CA/,
  );
  assert.throws(() => resolve(config({}, { "tls-server-name": "k" })), /tls-server-name "k"/);
  assert.throws(() => resolve(config({}, { "proxy-url": "http://192.0.2.9:3128" })), /proxy-url/);
  assert.throws(
    () => resolve(config({ "auth-provider": { name: "oidc", config: {} } })),
    /auth-provider "oidc", which kubectl and this client no longer support; use an exec credential plugin/,
  );
  assert.throws(() => resolve(config({ token: "t", "as-groups": ["a", "b"] })), /impersonates 2 groups/);
});

Deno.test("refused: an exec plugin that wants a terminal, or without command or apiVersion", () => {
  const exec = { apiVersion: "client.authentication.k8s.io/v1", command: "p", interactiveMode: "Always" };
  assert.throws(() => resolve(config({ exec })), /interactiveMode Always, but this process has no terminal/);
  assert.throws(() => resolve(config({ exec: { command: "p" } })), /exec\.apiVersion is missing/);
  assert.throws(() => resolve(config({ exec: { apiVersion: "v" } })), /exec\.command is missing/);
  assert.throws(
    () => resolve(config({ exec: { apiVersion: "v", command: "p", env: [{ name: "A" }] } })),
    /exec\.env must be a list of \{"name": string, "value": string\}/,
  );
});

Deno.test("wrong shapes name the file and the field", () => {
  assert.throws(
    () => parseKubeconfig("clusters: {}", FILE),
    /kubeconfig \/etc\/kube\/config: clusters must be a list/,
  );
  assert.throws(
    () => parseKubeconfig("clusters: [{name: c, cluster: {}}]", FILE),
    /clusters\[0\]\.cluster\.server is missing; set it to the API server's URL/,
  );
  assert.throws(
    () => parseKubeconfig("users: [{user: {}}]", FILE),
    /users\[0\]\.name must be a non-empty string/,
  );
  assert.throws(() => parseKubeconfig("a: [", FILE), /is not valid YAML/);
  assert.throws(
    () => parseKubeconfig("users: [{name: u, user: {token: 5}}]", FILE),
    /users\[0\]\.user\.token must be a string, got 5/,
  );
});

Deno.test("no current-context, an unknown context, cluster or user: named, with what exists", () => {
  const noCurrent = JSON.parse(config());
  delete noCurrent["current-context"];
  assert.throws(
    () => resolve(JSON.stringify(noCurrent)),
    /has no current-context; set current-context to one of its contexts \(ctx\)/,
  );
  const wrongCluster = JSON.parse(config());
  wrongCluster.contexts[0].context.cluster = "nope";
  assert.throws(
    () => resolve(JSON.stringify(wrongCluster)),
    /context "ctx" names cluster "nope", which is not defined/,
  );
  const wrongUser = JSON.parse(config());
  wrongUser.contexts[0].context.user = "nobody";
  assert.throws(() => resolve(JSON.stringify(wrongUser)), /names user "nobody", which is not defined/);
  assert.throws(
    () => resolveKubeconfig(parseKubeconfig(config(), FILE), "other"),
    /context "other" is not defined/,
  );
});

Deno.test("a bad server URL is refused", () => {
  assert.throws(
    () => resolve(config({}, { server: "192.0.2.1:6443" })),
    /must be an https:\/\/ \(or http:\/\/\) URL|is not a URL/,
  );
});

Deno.test("merging files: the first definition of a name and the first current-context win, as in client-go", () => {
  const a = parseKubeconfig(
    JSON.stringify({
      clusters: [{ name: "c", cluster: { server: "https://192.0.2.1" } }],
      "current-context": "second",
    }),
    "/a",
  );
  const b = parseKubeconfig(
    JSON.stringify({
      clusters: [{ name: "c", cluster: { server: "https://192.0.2.2" } }, {
        name: "d",
        cluster: { server: "https://192.0.2.3" },
      }],
      users: [{ name: "u", user: { token: "x" } }],
      contexts: [{ name: "second", context: { cluster: "c", user: "u" } }],
      "current-context": "ignored",
    }),
    "/b",
  );
  const merged = mergeKubeconfigs([a, b]);
  assert.equal(merged.currentContext, "second");
  assert.equal(merged.clusters.get("c")!.server, "https://192.0.2.1");
  assert.equal(merged.clusters.get("d")!.server, "https://192.0.2.3");
  const r = resolveKubeconfig(merged);
  assert.equal(r.server, "https://192.0.2.1");
  assert.deepEqual(r.credentials, { kind: "token", token: "x" });
});

const facts = (f: Partial<SourceFacts>, files: string[] = []): SourceFacts => ({
  exists: (p) => files.includes(p),
  ...f,
});

Deno.test("source order: --kubeconfig, then existing $KUBECONFIG files, then in-cluster, then ~/.kube/config", () => {
  const all = facts({
    explicitPath: "/flag",
    kubeconfigEnv: "/missing::/k1:/k2",
    kubernetesServiceHost: "198.18.128.1",
    kubernetesServicePort: "443",
    home: "/root",
  }, ["/k1", "/k2", "/root/.kube/config"]);
  assert.deepEqual(chooseSource(all), { kind: "files", files: ["/flag"] });
  assert.deepEqual(chooseSource({ ...all, explicitPath: undefined }), {
    kind: "files",
    files: ["/k1", "/k2"],
  });
  assert.deepEqual(chooseSource({ ...all, explicitPath: undefined, kubeconfigEnv: "/missing" }), {
    kind: "in-cluster",
    host: "198.18.128.1",
    port: "443",
  });
  assert.deepEqual(
    chooseSource({
      ...all,
      explicitPath: undefined,
      kubeconfigEnv: undefined,
      kubernetesServiceHost: undefined,
    }),
    { kind: "files", files: ["/root/.kube/config"] },
  );
});

Deno.test("no source at all: one message that lists what was tried and the fix", () => {
  const s = chooseSource(facts({ kubeconfigEnv: "/nope", home: "/root" }));
  assert.equal(s.kind, "none");
  assert.match(
    s.kind === "none" ? s.message : "",
    /no Kubernetes configuration found: tried \$KUBECONFIG \(\/nope: no such file\), the in-cluster service account \(KUBERNETES_SERVICE_HOST\/PORT unset\), \/root\/\.kube\/config \(no such file\); pass --kubeconfig PATH or run in a Pod/,
  );
});

Deno.test("in-cluster: the service account's CA and token file, IPv6 hosts in brackets", () => {
  const r = inClusterConfig("2001:db8::1", "6443", "/sa");
  assert.equal(r.server, "https://[2001:db8::1]:6443");
  assert.deepEqual(r.ca, { file: "/sa/ca.crt" });
  assert.deepEqual(r.credentials, { kind: "token-file", path: "/sa/token" });
  assert.equal(inClusterConfig("198.18.128.1", "443").server, "https://198.18.128.1:443");
});

const V1 = "client.authentication.k8s.io/v1";

Deno.test("an ExecCredential with a token and an expiry", () => {
  const out = JSON.stringify({
    apiVersion: V1,
    kind: "ExecCredential",
    status: { token: "abc", expirationTimestamp: "2030-01-02T03:04:05Z" },
  });
  assert.deepEqual(parseExecCredential(out, V1, "p"), {
    token: "abc",
    certPem: undefined,
    keyPem: undefined,
    expires: Date.UTC(2030, 0, 2, 3, 4, 5),
  });
});

Deno.test("ExecCredentials refused: not JSON, another apiVersion, no credential, a certificate without key", () => {
  const cred = (status: unknown, apiVersion = V1) =>
    JSON.stringify({ apiVersion, kind: "ExecCredential", status });
  assert.throws(() => parseExecCredential("nope", V1, "p"), ExecCredentialError);
  assert.throws(
    () => parseExecCredential(cred({ token: "a" }, "client.authentication.k8s.io/v1beta1"), V1, "p"),
    /answered apiVersion "client.authentication.k8s.io\/v1beta1", but the kubeconfig asks for client.authentication.k8s.io\/v1/,
  );
  assert.throws(() => parseExecCredential(cred({}), V1, "p"), /neither a token nor a client certificate/);
  assert.throws(
    () => parseExecCredential(cred({ clientCertificateData: "x" }), V1, "p"),
    /without the other/,
  );
  assert.throws(
    () => parseExecCredential(cred({ token: "a", expirationTimestamp: "soon" }), V1, "p"),
    /expirationTimestamp "soon" is not a time/,
  );
});
