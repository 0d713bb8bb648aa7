// The IP GC on the controller's health port: `POST /v1/ipam/gc_ips` (upstream's path) runs scan-all now and
// answers its report; `GET /v1/ipam/gc_ips` answers the last report. Callers authenticate with a bearer token
// that the API server checks (TokenReview) and must be allowed, by a SubjectAccessReview, the verb `create`
// (POST) or `get` (GET) on the subresource `spiderippools/gc` of spiderpool.spidernet.io, which RBAC grants as:
//
//   rules: [{ apiGroups: ["spiderpool.spidernet.io"], resources: ["spiderippools/gc"], verbs: ["create", "get"] }]
//
// The controller itself needs `create` on tokenreviews and subjectaccessreviews (ClusterRole
// system:auth-delegator). Errors are a JSON string, as on the agent's socket.

import { GROUP, PLURAL } from "../../api/constants.ts";
import { type KubeHttp, KubeHttpError } from "../../kube/client.ts";
import type { IpGc, ScanReport } from "./gc.ts";

export const GC_PATH = "/v1/ipam/gc_ips";

/** The resource attributes a caller must be allowed, per HTTP method. */
export const GC_ACCESS = {
  POST: { group: GROUP, resource: PLURAL.ippool, subresource: "gc", verb: "create" },
  GET: { group: GROUP, resource: PLURAL.ippool, subresource: "gc", verb: "get" },
} as const;

export type Access = (typeof GC_ACCESS)[keyof typeof GC_ACCESS];

export interface Caller {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export type AuthResult = { ok: true; caller: Caller } | {
  ok: false;
  status: 401 | 403 | 503;
  message: string;
};

/** Checks a bearer token and an access; the real one asks the API server. */
export interface Authorizer {
  authorize(token: string, access: Access): Promise<AuthResult>;
}

/** TokenReview, then SubjectAccessReview, through the API server. */
export function apiServerAuthorizer(http: KubeHttp): Authorizer {
  return {
    async authorize(token, access) {
      let review;
      try {
        review = (await http.post<{ status?: { authenticated?: boolean; user?: Caller; error?: string } }>(
          "/apis/authentication.k8s.io/v1/tokenreviews",
          { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
        )).body;
      } catch (err) {
        return {
          ok: false,
          status: 503,
          message: `cannot review the token with the API server: ${describe(err)}`,
        };
      }
      const user = review.status?.user;
      if (!review.status?.authenticated || !user?.username) {
        const why = review.status?.error ? `: ${review.status.error}` : "";
        return { ok: false, status: 401, message: `the API server does not accept this bearer token${why}` };
      }
      let sar;
      try {
        sar = (await http.post<{ status?: { allowed?: boolean; reason?: string } }>(
          "/apis/authorization.k8s.io/v1/subjectaccessreviews",
          {
            apiVersion: "authorization.k8s.io/v1",
            kind: "SubjectAccessReview",
            spec: {
              user: user.username,
              uid: user.uid,
              groups: user.groups,
              extra: user.extra,
              resourceAttributes: access,
            },
          },
        )).body;
      } catch (err) {
        return {
          ok: false,
          status: 503,
          message: `cannot review access with the API server: ${describe(err)}`,
        };
      }
      if (!sar.status?.allowed) {
        return {
          ok: false,
          status: 403,
          message:
            `user "${user.username}" may not ${access.verb} ${access.resource}/${access.subresource} in ` +
            `${access.group}${
              sar.status?.reason ? ` (${sar.status.reason})` : ""
            }; grant it with an RBAC rule ` +
            `{apiGroups: ["${access.group}"], resources: ["${access.resource}/${access.subresource}"], verbs: ` +
            `["${access.verb}"]}`,
        };
      }
      return { ok: true, caller: user };
    },
  };
}

function describe(err: unknown): string {
  return err instanceof KubeHttpError ? `HTTP ${err.status} ${err.reason}` : (err as Error).message;
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

/**
 * The handler for GC_PATH; undefined for any other path, so the health server can chain it with its probes.
 *
 * ```ts
 * const gcRoute = gcHandler(gc, apiServerAuthorizer(http));
 * Deno.serve((req) => gcRoute(req) ?? probes(req));
 * ```
 */
export function gcHandler(
  gc: IpGc,
  authorizer: Authorizer,
  log: (m: string) => void = () => {},
): (req: Request) => Promise<Response> | undefined {
  return (req) => {
    if (new URL(req.url).pathname !== GC_PATH) return undefined;
    return handle(req);
  };

  async function handle(req: Request): Promise<Response> {
    await req.body?.cancel();
    if (req.method !== "POST" && req.method !== "GET") {
      return json(
        405,
        `${req.method} ${GC_PATH} is not supported; use POST to run scan-all or GET for the last report`,
        {
          allow: "POST, GET",
        },
      );
    }
    const auth = req.headers.get("authorization") ?? "";
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (!m) {
      return json(
        401,
        `${GC_PATH} needs "Authorization: Bearer <token>" with a token the API server accepts`,
        {
          "www-authenticate": 'Bearer realm="spiderpool-controller"',
        },
      );
    }
    const result = await authorizer.authorize(m[1], GC_ACCESS[req.method]);
    if (!result.ok) {
      log(`${req.method} ${GC_PATH} refused (${result.status}): ${result.message}`);
      const headers: Record<string, string> = result.status === 401
        ? { "www-authenticate": 'Bearer realm="spiderpool-controller"' }
        : {};
      return json(result.status, result.message, headers);
    }
    if (!gc.enabled) return json(503, "IP garbage collection is disabled (SPIDERPOOL_GC_IP_ENABLED=false)");
    if (req.method === "GET") {
      return gc.lastReport
        ? json(200, gc.lastReport)
        : json(404, "no scan-all has finished on this replica yet");
    }
    log(`scan-all requested by ${result.caller.username}`);
    let report: ScanReport;
    try {
      report = await gc.scanAll("request");
    } catch (err) {
      return json(500, `scan-all failed: ${(err as Error).message}`);
    }
    return json(200, report);
  }
}
