// `spiderpool gc`: asks a controller replica to run the IP GC's scan-all now (`POST /v1/ipam/gc_ips` on its
// health port) and prints what it released and why. The bearer token is the in-cluster service account's, a
// token file's, or the kubeconfig user's; the controller checks it with the API server.

import { loadKubeConfig } from "../kube/client_node.ts";
import type { ScanReport } from "../controller/gc/gc.ts";
import { GC_PATH } from "../controller/gc/http.ts";
import { parseFlags } from "./flags.ts";

const SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

const USAGE = `usage: spiderpool gc [flags]

Runs the IP garbage collector's scan-all on a controller replica now and prints what it released and why.

flags:
  --controller URL    the controller's health address (default $SPIDERPOOL_CONTROLLER_ADDRESS, else in a pod
                      http://spiderpool-controller.<namespace>.svc:5720)
  --kubeconfig PATH   take the bearer token from this kubeconfig's current user
  --token-file PATH   read the bearer token from this file (default in a pod: the service account's token)
  --namespace NS      namespace of the controller Service (default $SPIDERPOOL_POD_NAMESPACE, else kube-system)
  --last              print the last report of that replica instead of running a scan
  -o, --output FMT    text (default) or json
  --timeout SECONDS   give up after this long (default 300)
  -h, --help          print this help

The caller needs RBAC verb "create" (and "get" for --last) on spiderippools/gc in spiderpool.spidernet.io.
`;

/** The bearer token to send, and where it came from (for error messages). */
async function bearerToken(
  opts: { tokenFile?: string; kubeconfig?: string },
): Promise<{ token: string; from: string }> {
  const read = async (path: string) => (await Deno.readTextFile(path)).trim();
  if (opts.tokenFile) return { token: await read(opts.tokenFile), from: opts.tokenFile };
  if (!opts.kubeconfig && Deno.env.get("KUBERNETES_SERVICE_HOST")) {
    return { token: await read(SA_TOKEN), from: SA_TOKEN };
  }
  const kc = loadKubeConfig(opts.kubeconfig);
  const headers: { headers?: Record<string, unknown> } = {};
  await kc.applyToHTTPSOptions(headers);
  const auth = String(headers.headers?.Authorization ?? headers.headers?.authorization ?? "");
  const m = /^Bearer\s+(\S+)/i.exec(auth);
  const where = opts.kubeconfig ?? "the default kubeconfig";
  if (!m) {
    throw new Error(
      `user "${
        kc.getCurrentUser()?.name ?? "?"
      }" of ${where} has no bearer token (client certificates cannot be ` +
        "forwarded); pass --token-file with a ServiceAccount token (kubectl create token NAME)",
    );
  }
  return { token: m[1], from: where };
}

/** The report as a person reads it. */
export function formatReport(r: ScanReport): string {
  const lines = [
    `scan-all on ${r.replica || "the controller"}${
      r.leader ? " (leader)" : ""
    }, ${r.trigger}, started ${r.startedAt}, ` +
    `took ${r.durationMs} ms: ${r.pools} pools, ${r.records} records; released ${r.released.length}, deferred ` +
    `${r.deferred.length}, SpiderEndpoints deleted ${r.endpointsDeleted.length}, traced ${r.traced}` +
    (r.errors.length > 0 ? `, errors ${r.errors.length}` : ""),
  ];
  for (const x of r.released) {
    lines.push(`released  ${x.ip}  pool ${x.pool}  ${x.pod} (uid ${x.podUid})  ${x.reason}: ${x.detail}`);
  }
  for (const x of r.endpointsDeleted) {
    lines.push(`endpoint  ${x.namespace}/${x.name} (uid ${x.uid}) deleted  ${x.reason}: ${x.detail}`);
  }
  for (const x of r.deferred) {
    lines.push(
      `deferred  ${x.ip}  pool ${x.pool}  ${x.pod} (uid ${x.podUid})  until ${x.until}: ${x.detail}`,
    );
  }
  for (const e of r.errors) lines.push(`error     ${e}`);
  return lines.join("\n") + "\n";
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseFlags("gc", USAGE, args, {
    controller: { type: "string" },
    kubeconfig: { type: "string" },
    "token-file": { type: "string" },
    namespace: { type: "string" },
    last: { type: "boolean" },
    output: { type: "string", short: "o" },
    timeout: { type: "string" },
  });
  if ("exit" in parsed) return parsed.exit;
  const v = parsed.values;
  const env = (k: string) => Deno.env.get(k) || undefined;
  const output = v.output ?? "text";
  if (output !== "text" && output !== "json") {
    console.error(`spiderpool gc: --output must be text or json, got ${JSON.stringify(output)}\n\n${USAGE}`);
    return 2;
  }
  const timeout = Number(v.timeout ?? "300");
  if (!Number.isFinite(timeout) || timeout <= 0) {
    console.error(
      `spiderpool gc: --timeout must be a number of seconds > 0, got ${JSON.stringify(v.timeout)}`,
    );
    return 2;
  }
  const ns = v.namespace ?? env("SPIDERPOOL_POD_NAMESPACE") ?? "kube-system";
  const base = v.controller ?? env("SPIDERPOOL_CONTROLLER_ADDRESS") ??
    (env("KUBERNETES_SERVICE_HOST") ? `http://spiderpool-controller.${ns}.svc:5720` : undefined);
  if (!base) {
    console.error(
      "spiderpool gc: no controller address; pass --controller http://<controller>:5720 (the controller's " +
        "health port) or set SPIDERPOOL_CONTROLLER_ADDRESS",
    );
    return 2;
  }
  let url: URL;
  try {
    url = new URL(GC_PATH, base);
  } catch {
    console.error(
      `spiderpool gc: --controller ${JSON.stringify(base)} is not a URL such as http://127.0.0.1:5720`,
    );
    return 2;
  }
  try {
    const { token, from } = await bearerToken({ tokenFile: v["token-file"], kubeconfig: v.kubeconfig });
    const res = await fetch(url, {
      method: v.last ? "GET" : "POST",
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(timeout * 1000),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch { /* not JSON: shown as is */ }
    if (!res.ok) {
      const hint = res.status === 401 ? ` (token from ${from})` : "";
      console.error(
        `spiderpool gc: ${url}: HTTP ${res.status}${hint}: ${typeof body === "string" ? body : text}`,
      );
      return 1;
    }
    const report = body as ScanReport;
    await Deno.stdout.write(
      new TextEncoder().encode(
        output === "json" ? JSON.stringify(report, null, 2) + "\n" : formatReport(report),
      ),
    );
    return report.errors?.length ? 1 : 0;
  } catch (err) {
    console.error(`spiderpool gc: ${url}: ${(err as Error).message}`);
    return 1;
  }
}
