// The agent's unix-socket HTTP API (`/v1`, Spiderpool's swagger): routing, request-body validation and the
// wire format of answers (JSON with a trailing newline like go-swagger; errors are a JSON string). HTTP
// parsing is in http1.ts; the IPAM work itself is behind the IpamService interface.

import type {
  CoordinatorConfig,
  GcAttachment,
  GetCoordinatorArgs,
  IpamAddArgs,
  IpamAddResponse,
  IpamBatchDelArgs,
  IpamDelArgs,
  IpamGcArgs,
  IpamStatusArgs,
  ReleaseOutcome,
  WorkloadEndpointStatus,
} from "../agentapi/models.ts";
import { AgentPaths, RELEASE_DETAIL_HEADER, RELEASE_RESULT_HEADER } from "../agentapi/models.ts";
import { isDNS1123Label, isDNS1123Subdomain } from "../api/validate/names.ts";
import { containerIdProblem, ifNameProblem, networkNameProblem } from "../cni/names.ts";
import { type Http1Options, type Http1Request, type Http1Response, serveHttp1 } from "./http1.ts";

/** An error answered with a specific HTTP status (e.g. 521/522 of `DELETE /v1/ipam/ips`, 404, 400). */
export class ApiStatusError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "ApiStatusError";
  }
}

/** What the socket API calls into. */
export interface IpamService {
  /** Throws when the agent cannot serve IPAM requests (caches not synced). */
  healthy(): void;
  allocate(args: IpamAddArgs): Promise<IpamAddResponse>;
  /** What the release did, answered in headers next to upstream's empty 200. */
  release(args: IpamDelArgs): Promise<ReleaseOutcome>;
  releaseBatch(args: IpamBatchDelArgs): Promise<void>;
  gc(args: IpamGcArgs): Promise<void>;
  /**
   * Throws, naming the pools, when a pod without pool annotations could not get an address (answered from
   * the caches, like healthy).
   */
  status(args: IpamStatusArgs): void;
  coordinatorConfig(args: GetCoordinatorArgs): Promise<CoordinatorConfig>;
  /** Undefined when the pod has no SpiderEndpoint (answered 404). */
  workloadEndpoint(podNamespace: string, podName: string): Promise<WorkloadEndpointStatus | undefined>;
}

/**
 * Field rules of the request models: `*` = required string, `s` = string, `[s]` = string array, `b` = bool;
 * `ifName`, `containerID` (required) and `network` (optional) are strings that must also pass the CNI name
 * rules of src/cni/names.ts, exactly as the plugin checks CNI_IFNAME, CNI_CONTAINERID and the network name;
 * `podName` and `namespace` (required) must be names Kubernetes gives pods and namespaces.
 */
type FieldKind = "*" | "s" | "[s]" | "b" | "ifName" | "containerID" | "network" | "podName" | "namespace";

const NAME_RULES: Partial<Record<FieldKind, { check: (v: string) => string | undefined; what: string }>> = {
  ifName: { check: ifNameProblem, what: "a Linux interface name, as the runtime passes in CNI_IFNAME" },
  containerID: {
    check: containerIdProblem,
    what: "a container ID, as the runtime passes in CNI_CONTAINERID",
  },
  network: { check: networkNameProblem, what: "a CNI network name (the configuration's name)" },
  // Checked before any API request is built from them: a name no pod can have is refused here, with its value,
  // instead of reaching the API server as a path (or, at 1 MiB, failing as an invalid URL).
  podName: {
    check: (v) => isDNS1123Subdomain(v) ? undefined : "is not a valid pod name",
    what: 'a DNS-1123 subdomain: at most 253 lower-case letters, digits, "-" and "."',
  },
  namespace: {
    check: (v) => isDNS1123Label(v) ? undefined : "is not a valid namespace name",
    what: 'a DNS-1123 label: at most 63 lower-case letters, digits and "-"',
  },
};

const ADD_FIELDS: Record<string, FieldKind> = {
  containerID: "containerID",
  ifName: "ifName",
  netNamespace: "*",
  podNamespace: "namespace",
  podName: "podName",
  podUID: "*",
  defaultIPv4IPPool: "[s]",
  defaultIPv6IPPool: "[s]",
  cleanGateway: "b",
  matchMasterSubnet: "b",
  networkName: "network",
};
const DEL_FIELDS: Record<string, FieldKind> = {
  containerID: "containerID",
  ifName: "ifName",
  netNamespace: "s",
  podNamespace: "namespace",
  podName: "podName",
  podUID: "*",
};
const STATUS_FIELDS: Record<string, FieldKind> = {
  defaultIPv4IPPool: "[s]",
  defaultIPv6IPPool: "[s]",
};
const BATCH_DEL_FIELDS: Record<string, FieldKind> = {
  isReleaseConflictIPs: "b",
  containerID: "containerID",
  netNamespace: "s",
  podNamespace: "namespace",
  podName: "podName",
  podUID: "*",
};

/**
 * Checks a decoded body against a model's fields, go-swagger style: `podUID in body is required`,
 * `cleanGateway in body must be of type boolean: "yes"`. Unknown fields are ignored, as go-swagger does.
 */
export function validateBody<T>(model: string, body: unknown, fields: Record<string, FieldKind>): T {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiStatusError(500, `invalid ${model}: body must be a JSON object, got ${short(body)}`);
  }
  const obj = body as Record<string, unknown>;
  for (const [field, kind] of Object.entries(fields)) {
    const v = obj[field];
    const required = kind === "*" || kind === "ifName" || kind === "containerID" || kind === "podName" ||
      kind === "namespace";
    if (v === undefined || v === null) {
      if (required) throw new ApiStatusError(500, `${field} in body is required`);
      continue;
    }
    const bad = (type: string) =>
      new ApiStatusError(500, `${field} in body must be of type ${type}: ${short(v)}`);
    if ((required || kind === "s" || kind === "network") && typeof v !== "string") throw bad("string");
    if (required && v === "") throw new ApiStatusError(500, `${field} in body is required`);
    if (kind === "b" && typeof v !== "boolean") throw bad("boolean");
    if (kind === "[s]" && (!Array.isArray(v) || v.some((x) => typeof x !== "string"))) {
      throw bad("array of string");
    }
    const rule = NAME_RULES[kind];
    const problem = rule?.check(v as string);
    if (rule && problem) {
      throw new ApiStatusError(500, `${field} in body ${short(v)} ${problem}; expected ${rule.what}`);
    }
  }
  return obj as T;
}

function validateGc(body: unknown): IpamGcArgs {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiStatusError(500, `invalid IpamGcArgs: body must be a JSON object, got ${short(body)}`);
  }
  // The network is required: a GC that does not say which network it is for cannot be scoped to it.
  const { networkName } = validateBody<{ networkName: string }>("IpamGcArgs", body, {
    networkName: "network",
  });
  if (networkName === undefined || networkName === null || networkName === "") {
    throw new ApiStatusError(500, "networkName in body is required");
  }
  const list = (body as Record<string, unknown>).validAttachments;
  if (list === undefined || list === null) {
    throw new ApiStatusError(500, "validAttachments in body is required");
  }
  if (!Array.isArray(list)) {
    throw new ApiStatusError(500, `validAttachments in body must be of type array: ${short(list)}`);
  }
  list.forEach((a, i) =>
    validateBody<GcAttachment>(`validAttachments[${i}]`, a, { containerID: "containerID", ifName: "ifName" })
  );
  return { networkName, validAttachments: list as GcAttachment[] };
}

function short(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 100 ? `${s.slice(0, 100)}...` : s;
}

function json(status: number, value: unknown): Http1Response {
  return { status, body: JSON.stringify(value) + "\n" };
}

function empty(): Http1Response {
  return { status: 200 };
}

function errorResponse(err: unknown): Http1Response {
  if (err instanceof ApiStatusError) return json(err.status, err.message);
  return json(500, err instanceof Error ? err.message : String(err));
}

function parseJSON(text: string): unknown {
  if (text.trim() === "") throw new ApiStatusError(500, "request body is empty; expected a JSON object");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiStatusError(500, `request body is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * The path and query of a request target: origin-form (`/v1/ipam/ip`, what Go clients send) or absolute-form
 * (`http://localhost/v1/ipam/ip`, what clients that treat the socket as a proxy send).
 */
function requestURL(target: string): URL {
  const absolute = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(target);
  const path = absolute ? target.slice(absolute[0].length) : target;
  return new URL(path.startsWith("/") ? path : `/${path}`, "http://localhost");
}

/** Routes one request of the socket API to `svc`. The Host header (the socket path, for Go clients) is ignored. */
export async function handle(svc: IpamService, req: Http1Request): Promise<Http1Response> {
  const url = requestURL(req.target);
  const route = `${req.method} ${url.pathname}`;
  try {
    switch (route) {
      case `GET ${AgentPaths.healthy}`:
        svc.healthy();
        return empty();
      case `POST ${AgentPaths.ip}`:
        return json(
          200,
          await svc.allocate(validateBody<IpamAddArgs>("IpamAddArgs", parseJSON(req.body), ADD_FIELDS)),
        );
      case `DELETE ${AgentPaths.ip}`: {
        const outcome = await svc.release(
          validateBody<IpamDelArgs>("IpamDelArgs", parseJSON(req.body), DEL_FIELDS),
        );
        return {
          status: 200,
          headers: { [RELEASE_RESULT_HEADER]: outcome.result, [RELEASE_DETAIL_HEADER]: outcome.detail },
        };
      }
      case `POST ${AgentPaths.ips}`:
        return empty();
      case `DELETE ${AgentPaths.ips}`:
        await svc.releaseBatch(
          validateBody<IpamBatchDelArgs>("IpamBatchDelArgs", parseJSON(req.body), BATCH_DEL_FIELDS),
        );
        return empty();
      case `POST ${AgentPaths.gc}`:
        await svc.gc(validateGc(parseJSON(req.body)));
        return empty();
      case `POST ${AgentPaths.status}`: {
        const body = req.body.trim() === "" ? {} : parseJSON(req.body);
        svc.status(validateBody<IpamStatusArgs>("IpamStatusArgs", body, STATUS_FIELDS));
        return empty();
      }
      case `GET ${AgentPaths.coordinatorConfig}`: {
        // A GET with a JSON body, as upstream's swagger defines it.
        const body = req.body.trim() === "" ? {} : parseJSON(req.body);
        const args = validateBody<GetCoordinatorArgs>("GetCoordinatorArgs", body, {
          podName: "s",
          podNamespace: "s",
        });
        return json(200, await svc.coordinatorConfig(args));
      }
      case `GET ${AgentPaths.workloadEndpoint}`: {
        const ns = url.searchParams.get("podNamespace");
        const name = url.searchParams.get("podName");
        if (!ns) return json(400, "query parameter podNamespace is required");
        if (!name) return json(400, "query parameter podName is required");
        const status = await svc.workloadEndpoint(ns, name);
        if (!status) return json(404, `SpiderEndpoint ${ns}/${name} not found`);
        return json(200, status);
      }
    }
    const known = Object.values(AgentPaths) as string[];
    if (known.includes(url.pathname)) {
      return json(405, `method ${req.method} not allowed on ${url.pathname}`);
    }
    return json(404, `path ${url.pathname} not found`);
  } catch (err) {
    return errorResponse(err);
  }
}

/** A running socket server. */
export interface SocketServer {
  path: string;
  finished: Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Serves the API on the unix socket `path`, replacing a stale socket file left by an earlier run. `opts` sets
 * the connection limits and where accept errors are logged.
 */
export async function serveSocket(
  path: string,
  svc: IpamService,
  opts: Http1Options = {},
): Promise<SocketServer> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir) await Deno.mkdir(dir, { recursive: true });
  try {
    await Deno.remove(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new Error(`cannot remove stale socket ${path}: ${(err as Error).message}`);
    }
  }
  const log = opts.log ?? ((m: string) => console.error(`socket ${path}: ${m}`));
  const server = serveHttp1(Deno.listen({ path, transport: "unix" }), (req) => handle(svc, req), {
    ...opts,
    log,
  });
  // serveHttp1 logs accept errors itself; this keeps any other failure from becoming an unhandled rejection,
  // which would exit the agent.
  server.finished.catch((err) => log(`stopped serving: ${(err as Error).message ?? err}`));
  return {
    path,
    finished: server.finished,
    async shutdown() {
      await server.shutdown();
      await Deno.remove(path).catch(() => {});
    },
  };
}
