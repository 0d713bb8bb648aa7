// What KubeHttp needs to reach the API server (server, CA, client certificate, credentials), loaded from a
// kubeconfig or from the Pod's service account by the rules of client-go and controller-runtime (what kubectl
// and upstream's agent follow), on our own small code: the agent loads no Kubernetes client library for it.
// Parsing and choosing are pure functions; `loadClusterAccess` reads the files and runs exec plugins.

import { load as loadYaml } from "js-yaml";
import type { KubeHttpOptions } from "./client.ts";

/** Where a Pod's service account is mounted. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** A kubeconfig (or the in-cluster configuration) that cannot be used; the message names the file and field. */
export class KubeconfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** An exec credential plugin failed or answered something that is not an ExecCredential. */
export class ExecCredentialError extends Error {
  constructor(readonly command: string, message: string) {
    super(`exec credential plugin ${JSON.stringify(command)}: ${message}`);
    this.name = new.target.name;
  }
}

/** A cluster entry, with file paths made absolute against the kubeconfig's directory. */
export interface KubeconfigCluster {
  server: string;
  caFile?: string;
  /** Base64, as in the file. */
  caData?: string;
  insecureSkipTLSVerify?: boolean;
  tlsServerName?: string;
  proxyURL?: string;
}

/** `users[].user.exec` (client.authentication.k8s.io ExecConfig). */
export interface ExecConfig {
  command: string;
  args: string[];
  env: { name: string; value: string }[];
  apiVersion: string;
  provideClusterInfo: boolean;
  interactiveMode?: string;
  installHint?: string;
}

/** A user entry, with file paths made absolute against the kubeconfig's directory. */
export interface KubeconfigUser {
  token?: string;
  tokenFile?: string;
  certFile?: string;
  certData?: string;
  keyFile?: string;
  keyData?: string;
  username?: string;
  password?: string;
  impersonate?: string;
  impersonateUID?: string;
  impersonateGroups?: string[];
  impersonateExtra?: Record<string, string[]>;
  exec?: ExecConfig;
  /** The name of a legacy `auth-provider` (gcp, azure, oidc): refused, with the fix. */
  authProvider?: string;
}

export interface KubeconfigContext {
  cluster: string;
  user?: string;
  namespace?: string;
}

/** One kubeconfig file, or several merged. `origin` says which file each entry came from. */
export interface Kubeconfig {
  clusters: Map<string, KubeconfigCluster>;
  users: Map<string, KubeconfigUser>;
  contexts: Map<string, KubeconfigContext>;
  currentContext?: string;
  origin: Map<string, string>;
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

/** A path of the kubeconfig at `file`, absolute: relative paths are relative to the file's directory. */
function resolvePath(file: string, path: string): string {
  return path.startsWith("/") ? path : `${dirname(file)}/${path}`;
}

/**
 * Parses one kubeconfig file's text (YAML or JSON). Relative paths of certificates, keys, token files and exec
 * commands (those with a `/`) become relative to `file`'s directory, as client-go resolves them. Throws
 * KubeconfigError naming the file and the field for an entry of the wrong shape.
 *
 * @example parseKubeconfig("clusters: [{name: c, cluster: {server: https://k:6443}}]", "/etc/kube/config")
 */
export function parseKubeconfig(text: string, file: string): Kubeconfig {
  let doc: unknown;
  try {
    doc = loadYaml(text);
  } catch (err) {
    throw new KubeconfigError(`kubeconfig ${file} is not valid YAML: ${(err as Error).message}`);
  }
  if (doc === undefined || doc === null) doc = {};
  if (!isObj(doc)) throw new KubeconfigError(`kubeconfig ${file} must be a mapping, got ${typeName(doc)}`);
  const cfg: Kubeconfig = { clusters: new Map(), users: new Map(), contexts: new Map(), origin: new Map() };
  const bad = (field: string, expected: string, got: unknown) =>
    new KubeconfigError(
      `kubeconfig ${file}: ${field} must be ${expected}, got ${JSON.stringify(got) ?? typeName(got)}`,
    );
  const str = (o: Obj, key: string, field: string): string | undefined => {
    const v = o[key];
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v !== "string") throw bad(`${field}.${key}`, "a string", v);
    return v;
  };
  const list = (key: string): Obj[] => {
    const v = doc[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw bad(key, "a list", v);
    return v.map((e, i) => {
      if (!isObj(e)) throw bad(`${key}[${i}]`, "a mapping", e);
      return e;
    });
  };
  const named = (key: string, inner: string, each: (body: Obj, name: string, field: string) => void) => {
    list(key).forEach((e, i) => {
      const name = str(e, "name", `${key}[${i}]`);
      if (name === undefined) throw bad(`${key}[${i}].name`, "a non-empty string", e.name);
      const body = e[inner] ?? {};
      if (!isObj(body)) throw bad(`${key}[${i}].${inner}`, "a mapping", body);
      each(body, name, `${key}[${i}].${inner}`);
    });
  };

  named("clusters", "cluster", (c, name, field) => {
    const server = str(c, "server", field);
    if (server === undefined) {
      throw new KubeconfigError(
        `kubeconfig ${file}: ${field}.server is missing; set it to the API server's URL`,
      );
    }
    const skip = c["insecure-skip-tls-verify"];
    if (skip !== undefined && typeof skip !== "boolean") {
      throw bad(`${field}.insecure-skip-tls-verify`, "true or false", skip);
    }
    const caFile = str(c, "certificate-authority", field);
    cfg.clusters.set(name, {
      server: server.replace(/\/+$/, ""),
      caFile: caFile && resolvePath(file, caFile),
      caData: str(c, "certificate-authority-data", field),
      insecureSkipTLSVerify: skip === true,
      tlsServerName: str(c, "tls-server-name", field),
      proxyURL: str(c, "proxy-url", field),
    });
    cfg.origin.set(`cluster/${name}`, file);
  });

  named("users", "user", (u, name, field) => {
    const path = (key: string) => {
      const v = str(u, key, field);
      return v && resolvePath(file, v);
    };
    const groups = u["as-groups"];
    if (groups !== undefined && groups !== null && !isStringList(groups)) {
      throw bad(`${field}.as-groups`, "a list of strings", groups);
    }
    const extra = u["as-user-extra"];
    if (
      extra !== undefined && extra !== null &&
      !(isObj(extra) && Object.values(extra).every((v) => isStringList(v)))
    ) {
      throw bad(`${field}.as-user-extra`, "a mapping of lists of strings", extra);
    }
    const provider = u["auth-provider"];
    if (provider !== undefined && provider !== null && !isObj(provider)) {
      throw bad(`${field}.auth-provider`, "a mapping", provider);
    }
    cfg.users.set(name, {
      token: str(u, "token", field),
      // client-go's key is tokenFile; client-node reads token-file.
      tokenFile: path("tokenFile") ?? path("token-file"),
      certFile: path("client-certificate"),
      certData: str(u, "client-certificate-data", field),
      keyFile: path("client-key"),
      keyData: str(u, "client-key-data", field),
      username: str(u, "username", field),
      password: str(u, "password", field),
      impersonate: str(u, "as", field),
      impersonateUID: str(u, "as-uid", field),
      impersonateGroups: (groups as string[] | undefined) ?? undefined,
      impersonateExtra: (extra as Record<string, string[]> | undefined) ?? undefined,
      exec: u.exec === undefined || u.exec === null ? undefined : parseExec(u.exec, file, `${field}.exec`),
      authProvider: isObj(provider) ? String(provider.name ?? "(unnamed)") : undefined,
    });
    cfg.origin.set(`user/${name}`, file);
  });

  named("contexts", "context", (c, name, field) => {
    const cluster = str(c, "cluster", field);
    if (cluster === undefined) {
      throw new KubeconfigError(
        `kubeconfig ${file}: ${field}.cluster is missing; name a cluster of the file`,
      );
    }
    cfg.contexts.set(name, { cluster, user: str(c, "user", field), namespace: str(c, "namespace", field) });
    cfg.origin.set(`context/${name}`, file);
  });

  const current = doc["current-context"];
  if (current !== undefined && current !== null && current !== "") {
    if (typeof current !== "string") throw bad("current-context", "a string", current);
    cfg.currentContext = current;
    cfg.origin.set("current-context", file);
  }
  return cfg;
}

function parseExec(v: unknown, file: string, field: string): ExecConfig {
  const bad = (key: string, expected: string, got: unknown) =>
    new KubeconfigError(
      `kubeconfig ${file}: ${field}.${key} must be ${expected}, got ${JSON.stringify(got) ?? typeName(got)}`,
    );
  if (!isObj(v)) throw bad("", "a mapping", v);
  const command = v.command;
  if (typeof command !== "string" || command === "") {
    throw new KubeconfigError(`kubeconfig ${file}: ${field}.command is missing; name the credential plugin`);
  }
  const apiVersion = v.apiVersion;
  if (typeof apiVersion !== "string" || apiVersion === "") {
    throw new KubeconfigError(
      `kubeconfig ${file}: ${field}.apiVersion is missing; e.g. client.authentication.k8s.io/v1`,
    );
  }
  const args = v.args ?? [];
  if (!isStringList(args)) throw bad("args", "a list of strings", args);
  const env = v.env ?? [];
  if (
    !Array.isArray(env) ||
    env.some((e) => !isObj(e) || typeof e.name !== "string" || e.name === "" || typeof e.value !== "string")
  ) {
    throw bad("env", 'a list of {"name": string, "value": string}', env);
  }
  const mode = v.interactiveMode;
  if (mode !== undefined && mode !== null && !["Never", "IfAvailable", "Always"].includes(mode as string)) {
    throw bad("interactiveMode", "Never, IfAvailable or Always", mode);
  }
  return {
    // A command with a slash is a path, relative to the kubeconfig; a bare name is looked up in PATH.
    command: command.includes("/") ? resolvePath(file, command) : command,
    args: args as string[],
    env: env as { name: string; value: string }[],
    apiVersion,
    provideClusterInfo: v.provideClusterInfo === true,
    interactiveMode: typeof mode === "string" ? mode : undefined,
    installHint: typeof v.installHint === "string" ? v.installHint : undefined,
  };
}

function isStringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === "string");
}

function typeName(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "a list" : typeof v;
}

/**
 * Merges kubeconfig files as client-go merges the files of $KUBECONFIG: the first file that defines a cluster,
 * user or context name wins, and so does the first `current-context`.
 */
export function mergeKubeconfigs(files: Kubeconfig[]): Kubeconfig {
  const out: Kubeconfig = { clusters: new Map(), users: new Map(), contexts: new Map(), origin: new Map() };
  for (const f of files) {
    for (const kind of ["clusters", "users", "contexts"] as const) {
      const singular = kind.slice(0, -1);
      for (const [name, entry] of f[kind]) {
        if ((out[kind] as Map<string, unknown>).has(name)) continue;
        (out[kind] as Map<string, unknown>).set(name, entry);
        out.origin.set(`${singular}/${name}`, f.origin.get(`${singular}/${name}`) ?? "");
      }
    }
    if (out.currentContext === undefined && f.currentContext !== undefined) {
      out.currentContext = f.currentContext;
      out.origin.set("current-context", f.origin.get("current-context") ?? "");
    }
  }
  return out;
}

/** How requests authenticate, decided from a user entry. */
export type Credentials =
  | { kind: "none" }
  | { kind: "token"; token: string }
  /** Re-read periodically and after a 401 (rotated service-account tokens); `token` is the fallback. */
  | { kind: "token-file"; path: string; token?: string }
  | { kind: "basic"; username: string; password: string }
  | { kind: "exec"; exec: ExecConfig };

/** A PEM given inline (base64 in the file) or as a file to read. */
export type PemSource = { data: string } | { file: string };

/** The current context resolved: everything needed to build the client, files not yet read. */
export interface ResolvedConfig {
  /** Where it came from, for messages: the file(s) and context, or "in-cluster service account". */
  source: string;
  server: string;
  ca?: PemSource;
  cert?: PemSource;
  key?: PemSource;
  credentials: Credentials;
  /** Impersonation headers (`as`, `as-uid`, `as-groups`, `as-user-extra`). */
  headers: Record<string, string>;
  namespace?: string;
  /** The cluster entry, for exec plugins that ask for it (`provideClusterInfo`). */
  cluster: KubeconfigCluster;
}

/**
 * Picks the current context (or `context`) of a parsed kubeconfig and checks that this client can use it: one
 * authentication method per user (as client-go), a certificate with its key, and none of what Deno's fetch
 * cannot do (skipping TLS verification, another TLS server name, a proxy) or what kubectl itself dropped
 * (the in-tree `auth-provider`s).
 */
export function resolveKubeconfig(cfg: Kubeconfig, context?: string): ResolvedConfig {
  const files = [...new Set(cfg.origin.values())].filter((f) => f !== "").join(", ") || "(empty)";
  const ctxName = context ?? cfg.currentContext;
  if (ctxName === undefined) {
    throw new KubeconfigError(
      `kubeconfig ${files} has no current-context; set current-context to one of its contexts (${
        [...cfg.contexts.keys()].join(", ") || "none defined"
      })`,
    );
  }
  const ctx = cfg.contexts.get(ctxName);
  if (!ctx) {
    throw new KubeconfigError(
      `kubeconfig ${files}: context "${ctxName}" is not defined; add it under contexts`,
    );
  }
  const at = (kind: string, name: string) => `kubeconfig ${cfg.origin.get(`${kind}/${name}`) || files}`;
  const cluster = cfg.clusters.get(ctx.cluster);
  if (!cluster) {
    throw new KubeconfigError(
      `${at("context", ctxName)}: context "${ctxName}" names cluster "${ctx.cluster}", which is not defined`,
    );
  }
  const where = `${at("cluster", ctx.cluster)}: cluster "${ctx.cluster}"`;
  if (cluster.insecureSkipTLSVerify) {
    throw new KubeconfigError(
      `${where} sets insecure-skip-tls-verify, which this client does not support; give the API server's CA ` +
        `in certificate-authority or certificate-authority-data instead`,
    );
  }
  if (cluster.tlsServerName) {
    throw new KubeconfigError(
      `${where} sets tls-server-name "${cluster.tlsServerName}", which this client does not support; point ` +
        `server at a name or address the serving certificate covers`,
    );
  }
  if (cluster.proxyURL) {
    throw new KubeconfigError(
      `${where} sets proxy-url "${cluster.proxyURL}", which this client does not support; reach the API ` +
        `server directly`,
    );
  }
  let url: URL;
  try {
    url = new URL(cluster.server);
  } catch {
    throw new KubeconfigError(
      `${where}: server "${cluster.server}" is not a URL; e.g. https://10.0.0.1:6443`,
    );
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new KubeconfigError(`${where}: server "${cluster.server}" must be an https:// (or http://) URL`);
  }
  if (cluster.caFile && cluster.caData) {
    throw new KubeconfigError(
      `${where} sets both certificate-authority and certificate-authority-data; keep one`,
    );
  }
  const resolved: ResolvedConfig = {
    source: `kubeconfig ${files} (context "${ctxName}")`,
    server: cluster.server,
    ca: cluster.caData ? { data: cluster.caData } : cluster.caFile ? { file: cluster.caFile } : undefined,
    credentials: { kind: "none" },
    headers: {},
    namespace: ctx.namespace,
    cluster,
  };
  if (ctx.user === undefined) return resolved;
  const user = cfg.users.get(ctx.user);
  if (!user) {
    throw new KubeconfigError(
      `${at("context", ctxName)}: context "${ctxName}" names user "${ctx.user}", which is not defined`,
    );
  }
  const uwhere = `${at("user", ctx.user)}: user "${ctx.user}"`;
  if (user.authProvider !== undefined) {
    throw new KubeconfigError(
      `${uwhere} uses auth-provider "${user.authProvider}", which kubectl and this client no longer support; ` +
        `use an exec credential plugin (e.g. kubelogin, gke-gcloud-auth-plugin), a token or a client certificate`,
    );
  }
  const methods = [
    user.token !== undefined || user.tokenFile !== undefined ? "token" : "",
    user.username !== undefined || user.password !== undefined ? "basic auth" : "",
    user.exec !== undefined ? "exec" : "",
  ].filter((m) => m !== "");
  if (methods.length > 1) {
    throw new KubeconfigError(
      `${uwhere} sets more than one authentication method (${methods.join(", ")}); keep one`,
    );
  }
  const pem = (label: string, file?: string, data?: string): PemSource | undefined => {
    if (file && data) {
      throw new KubeconfigError(`${uwhere} sets both ${label} and ${label}-data; keep one`);
    }
    return data ? { data } : file ? { file } : undefined;
  };
  resolved.cert = pem("client-certificate", user.certFile, user.certData);
  resolved.key = pem("client-key", user.keyFile, user.keyData);
  if ((resolved.cert === undefined) !== (resolved.key === undefined)) {
    const missing = resolved.cert ? "client-key" : "client-certificate";
    throw new KubeconfigError(
      `${uwhere} has a client ${resolved.cert ? "certificate" : "key"} but no ${missing}`,
    );
  }
  if (user.exec) {
    if (user.exec.interactiveMode === "Always") {
      throw new KubeconfigError(
        `${uwhere}: exec plugin "${user.exec.command}" has interactiveMode Always, but this process has no ` +
          `terminal; use a plugin that runs non-interactively`,
      );
    }
    resolved.credentials = { kind: "exec", exec: user.exec };
  } else if (user.tokenFile) {
    resolved.credentials = { kind: "token-file", path: user.tokenFile, token: user.token };
  } else if (user.token) {
    resolved.credentials = { kind: "token", token: user.token };
  } else if (user.username !== undefined || user.password !== undefined) {
    resolved.credentials = { kind: "basic", username: user.username ?? "", password: user.password ?? "" };
  }
  if (user.impersonate) resolved.headers["Impersonate-User"] = user.impersonate;
  if (user.impersonateUID) resolved.headers["Impersonate-Uid"] = user.impersonateUID;
  // fetch sends repeated headers as one comma-joined line, which the API server takes as one value: only a
  // single group or extra value can be impersonated faithfully.
  const groups = user.impersonateGroups ?? [];
  if (groups.length > 1) {
    throw new KubeconfigError(
      `${uwhere} impersonates ${groups.length} groups (as-groups), which this client cannot send; keep one`,
    );
  }
  if (groups.length === 1) resolved.headers["Impersonate-Group"] = groups[0];
  for (const [k, v] of Object.entries(user.impersonateExtra ?? {})) {
    if (v.length > 1) {
      throw new KubeconfigError(
        `${uwhere} impersonates ${v.length} values of extra "${k}" (as-user-extra), which this client cannot ` +
          `send; keep one`,
      );
    }
    if (v.length === 1) resolved.headers[`Impersonate-Extra-${encodeURIComponent(k)}`] = v[0];
  }
  return resolved;
}

/** The in-cluster configuration (client-go's InClusterConfig), before its files are read. */
export function inClusterConfig(host: string, port: string, dir = SERVICE_ACCOUNT_DIR): ResolvedConfig {
  // An IPv6 address needs brackets in a URL.
  const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  const server = `https://${h}:${port}`;
  return {
    source: `in-cluster service account (${dir}, KUBERNETES_SERVICE_HOST=${host})`,
    server,
    ca: { file: `${dir}/ca.crt` },
    credentials: { kind: "token-file", path: `${dir}/token` },
    headers: {},
    cluster: { server, caFile: `${dir}/ca.crt` },
  };
}

/** What the process environment offers, for `chooseSource` (a plain function of these). */
export interface SourceFacts {
  /** `--kubeconfig`. */
  explicitPath?: string;
  /** `$KUBECONFIG`. */
  kubeconfigEnv?: string;
  kubernetesServiceHost?: string;
  kubernetesServicePort?: string;
  home?: string;
  exists(path: string): boolean;
}

export type Source =
  | { kind: "files"; files: string[] }
  | { kind: "in-cluster"; host: string; port: string }
  | { kind: "none"; message: string };

/**
 * Where the configuration comes from, in controller-runtime's order (upstream's agent uses it): `--kubeconfig`,
 * then the existing files of $KUBECONFIG, then the service account when running in a Pod, then
 * ~/.kube/config.
 */
export function chooseSource(f: SourceFacts): Source {
  if (f.explicitPath) return { kind: "files", files: [f.explicitPath] };
  const listed = (f.kubeconfigEnv ?? "").split(":").filter((p) => p !== "");
  const existing = listed.filter((p) => f.exists(p));
  if (existing.length > 0) return { kind: "files", files: existing };
  if (f.kubernetesServiceHost && f.kubernetesServicePort) {
    return { kind: "in-cluster", host: f.kubernetesServiceHost, port: f.kubernetesServicePort };
  }
  const home = f.home ? `${f.home}/.kube/config` : undefined;
  if (home && f.exists(home)) return { kind: "files", files: [home] };
  const tried = [
    listed.length > 0 ? `$KUBECONFIG (${listed.join(":")}: no such file)` : "$KUBECONFIG (unset)",
    "the in-cluster service account (KUBERNETES_SERVICE_HOST/PORT unset)",
    home ? `${home} (no such file)` : "~/.kube/config ($HOME unset)",
  ];
  return {
    kind: "none",
    message: `no Kubernetes configuration found: tried ${
      tried.join(", ")
    }; pass --kubeconfig PATH or run in a Pod`,
  };
}

/** KubeHttp's options plus where they came from. */
export interface ClusterAccess extends KubeHttpOptions {
  source: string;
  namespace?: string;
}

export interface LoadOptions {
  /** Default Deno.env. */
  env?: { get(name: string): string | undefined };
  /** Where the service account is mounted; default SERVICE_ACCOUNT_DIR. */
  serviceAccountDir?: string;
  /** Use this context instead of current-context. */
  context?: string;
}

/**
 * Loads the configuration to reach the API server: from `path` when given, else as {@linkcode chooseSource}
 * says. Reads the CA and client certificate once; bearer tokens from files are re-read by KubeHttp every
 * minute and after a 401 (rotated service-account tokens); an exec plugin runs once here and again when its
 * credential expires or the server answers 401.
 *
 * @example
 * ```ts
 * const http = new KubeHttp(await loadClusterAccess(flags.kubeconfig));
 * ```
 */
export async function loadClusterAccess(path?: string, opts: LoadOptions = {}): Promise<ClusterAccess> {
  const env = opts.env ?? Deno.env;
  const source = chooseSource({
    explicitPath: path,
    kubeconfigEnv: env.get("KUBECONFIG"),
    kubernetesServiceHost: env.get("KUBERNETES_SERVICE_HOST"),
    kubernetesServicePort: env.get("KUBERNETES_SERVICE_PORT"),
    home: env.get("HOME"),
    exists: (p) => {
      try {
        return Deno.statSync(p).isFile;
      } catch {
        return false;
      }
    },
  });
  let resolved: ResolvedConfig;
  if (source.kind === "none") throw new KubeconfigError(source.message);
  if (source.kind === "in-cluster") {
    resolved = inClusterConfig(source.host, source.port, opts.serviceAccountDir);
    const ns = readOptional(`${opts.serviceAccountDir ?? SERVICE_ACCOUNT_DIR}/namespace`);
    if (ns) resolved.namespace = ns.trim();
  } else {
    const parsed = source.files.map((file) => {
      let text: string;
      try {
        text = Deno.readTextFileSync(file);
      } catch (err) {
        throw new KubeconfigError(`cannot read kubeconfig ${file}: ${(err as Error).message}`);
      }
      return parseKubeconfig(text, file);
    });
    resolved = resolveKubeconfig(mergeKubeconfigs(parsed), opts.context);
  }
  return await accessFor(resolved);
}

function readOptional(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

function pemText(src: PemSource | undefined, what: string, where: string): string | undefined {
  if (src === undefined) return undefined;
  if ("file" in src) {
    try {
      return Deno.readTextFileSync(src.file);
    } catch (err) {
      throw new KubeconfigError(`${where}: cannot read the ${what} ${src.file}: ${(err as Error).message}`);
    }
  }
  try {
    return new TextDecoder().decode(
      Uint8Array.from(atob(src.data.replace(/\s+/g, "")), (c) => c.charCodeAt(0)),
    );
  } catch {
    throw new KubeconfigError(
      `${where}: the ${what} data is not base64; encode the PEM file with base64 -w0`,
    );
  }
}

function readToken(path: string, where: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    throw new KubeconfigError(`${where}: cannot read the token file ${path}: ${(err as Error).message}`);
  }
  const token = text.trim();
  if (token === "") throw new KubeconfigError(`${where}: the token file ${path} is empty`);
  return token;
}

/** Reads the files of a resolved configuration and builds KubeHttp's options (runs an exec plugin once). */
export async function accessFor(r: ResolvedConfig): Promise<ClusterAccess> {
  const access: ClusterAccess = {
    source: r.source,
    server: r.server,
    namespace: r.namespace,
    caPem: pemText(r.ca, "certificate authority", r.source),
    certPem: pemText(r.cert, "client certificate", r.source),
    keyPem: pemText(r.key, "client key", r.source),
    headers: Object.keys(r.headers).length > 0 ? r.headers : undefined,
  };
  const c = r.credentials;
  switch (c.kind) {
    case "none":
      break;
    case "token":
      access.authorization = () => Promise.resolve(`Bearer ${c.token}`);
      break;
    case "token-file": {
      // Fails now when the file is unreadable; later a failed re-read keeps the last token (the kubelet
      // replaces projected tokens atomically, so a failure is transient), as client-go does.
      let last: string;
      try {
        last = readToken(c.path, r.source);
      } catch (err) {
        // client-go falls back to the user's token when the file cannot be read.
        if (c.token === undefined) throw err;
        last = c.token;
      }
      access.authorization = () => {
        try {
          last = readToken(c.path, r.source);
        } catch { /* keep the last token */ }
        return Promise.resolve(`Bearer ${last}`);
      };
      break;
    }
    case "basic":
      access.authorization = () => Promise.resolve(`Basic ${btoa(`${c.username}:${c.password}`)}`);
      break;
    case "exec": {
      const plugin = new ExecPlugin(c.exec, r);
      const first = await plugin.credential();
      if (first.certPem !== undefined) {
        // The TLS client is made once: a later credential's certificate is not picked up (client-node and
        // this client before it did the same).
        access.certPem = first.certPem;
        access.keyPem = first.keyPem;
      }
      access.authorization = async () => {
        const token = (await plugin.credential()).token;
        return token === undefined ? undefined : `Bearer ${token}`;
      };
      access.unauthorized = () => plugin.expire();
      break;
    }
  }
  return access;
}

/** What an exec plugin returned (ExecCredential.status). */
export interface ExecCredential {
  token?: string;
  certPem?: string;
  keyPem?: string;
  /** ms since the epoch; undefined = until the server refuses it. */
  expires?: number;
}

/**
 * Checks an exec plugin's output: an ExecCredential of the apiVersion asked for, with a token or a client
 * certificate and key.
 */
export function parseExecCredential(stdout: string, apiVersion: string, command: string): ExecCredential {
  let v: unknown;
  try {
    v = JSON.parse(stdout);
  } catch (err) {
    throw new ExecCredentialError(command, `its output is not JSON: ${(err as Error).message}`);
  }
  if (!isObj(v) || v.kind !== "ExecCredential") {
    throw new ExecCredentialError(command, `its output is not an ExecCredential: ${stdout.slice(0, 200)}`);
  }
  if (v.apiVersion !== apiVersion) {
    throw new ExecCredentialError(
      command,
      `it answered apiVersion ${JSON.stringify(v.apiVersion)}, but the kubeconfig asks for ${apiVersion}`,
    );
  }
  const status = v.status;
  if (!isObj(status)) throw new ExecCredentialError(command, "its ExecCredential has no status");
  const s = (k: string) =>
    typeof status[k] === "string" && status[k] !== "" ? status[k] as string : undefined;
  const cred: ExecCredential = {
    token: s("token"),
    certPem: s("clientCertificateData"),
    keyPem: s("clientKeyData"),
  };
  if ((cred.certPem === undefined) !== (cred.keyPem === undefined)) {
    throw new ExecCredentialError(
      command,
      "its ExecCredential has a client certificate or key without the other",
    );
  }
  if (cred.token === undefined && cred.certPem === undefined) {
    throw new ExecCredentialError(command, "its ExecCredential has neither a token nor a client certificate");
  }
  const exp = s("expirationTimestamp");
  if (exp !== undefined) {
    const t = Date.parse(exp);
    if (Number.isNaN(t)) {
      throw new ExecCredentialError(command, `expirationTimestamp ${JSON.stringify(exp)} is not a time`);
    }
    cred.expires = t;
  }
  return cred;
}

/** Deadline of one run of an exec plugin. */
const EXEC_TIMEOUT_MS = 60_000;

/** An exec credential plugin: run on demand, its credential kept until it expires or the server refuses it. */
class ExecPlugin {
  #cached?: ExecCredential;
  #running?: Promise<ExecCredential>;

  constructor(readonly exec: ExecConfig, readonly config: ResolvedConfig) {}

  expire(): void {
    this.#cached = undefined;
  }

  credential(): Promise<ExecCredential> {
    const c = this.#cached;
    if (c && (c.expires === undefined || c.expires > Date.now())) return Promise.resolve(c);
    this.#running ??= this.#run().finally(() => this.#running = undefined);
    return this.#running;
  }

  async #run(): Promise<ExecCredential> {
    const { exec } = this;
    // KUBERNETES_EXEC_INFO as client-go sets it: the plugin learns the apiVersion (and, when it asks, the
    // cluster) and that nobody can answer a prompt.
    const info: Obj = { apiVersion: exec.apiVersion, kind: "ExecCredential", spec: { interactive: false } };
    if (exec.provideClusterInfo) {
      const caPem = pemText(this.config.ca, "certificate authority", this.config.source);
      (info.spec as Obj).cluster = {
        server: this.config.server,
        ...(caPem ? { "certificate-authority-data": btoa(caPem) } : {}),
      };
    }
    const env: Record<string, string> = { KUBERNETES_EXEC_INFO: JSON.stringify(info) };
    for (const e of exec.env) env[e.name] = e.value;
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command(exec.command, {
        args: exec.args,
        env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(EXEC_TIMEOUT_MS),
      }).output();
    } catch (err) {
      const hint = exec.installHint ? `; ${exec.installHint.trim()}` : "";
      throw new ExecCredentialError(exec.command, `cannot run it: ${(err as Error).message}${hint}`);
    }
    const dec = new TextDecoder();
    if (!out.success) {
      const why = out.signal ? `was killed by ${out.signal}` : `exited with code ${out.code}`;
      throw new ExecCredentialError(exec.command, `${why}: ${dec.decode(out.stderr).trim().slice(0, 500)}`);
    }
    const cred = parseExecCredential(dec.decode(out.stdout), exec.apiVersion, exec.command);
    this.#cached = cred;
    return cred;
  }
}
