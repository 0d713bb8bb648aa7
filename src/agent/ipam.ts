// The agent's IPAM service: ADD, DEL, batch DEL, GC and workload-endpoint queries, orchestrated from the
// decisions of src/ipam (pure rules) and carried out through the caches, the per-pool group committer and
// direct API calls. No allocation rule lives here.

import type { SpiderEndpoint } from "../api/types.ts";
import type { AgentConfig } from "./config.ts";
import type { AgentCaches } from "./daemon.ts";
import type { AgentKube } from "./kube.ts";
import type { AgentMetrics } from "./metrics.ts";
import type {
  IpamAddArgs,
  IpamAddResponse,
  IpamBatchDelArgs,
  IpamDelArgs,
  IpamGcArgs,
  WorkloadEndpointStatus,
} from "./models.ts";
import type { IpamService } from "./server.ts";

export interface IpamAgentOptions {
  nodeName: string;
  namespace: string;
  config: AgentConfig;
  kube: AgentKube;
  caches: AgentCaches;
  metrics: AgentMetrics;
  requestTimeoutMs: number;
  log: (message: string) => void;
}

export class IpamAgent implements IpamService {
  readonly #o: IpamAgentOptions;

  constructor(opts: IpamAgentOptions) {
    this.#o = opts;
  }

  healthy(): void {}

  allocate(_args: IpamAddArgs): Promise<IpamAddResponse> {
    return Promise.reject(new Error("not implemented"));
  }

  release(_args: IpamDelArgs): Promise<void> {
    return Promise.reject(new Error("not implemented"));
  }

  releaseBatch(_args: IpamBatchDelArgs): Promise<void> {
    return Promise.reject(new Error("not implemented"));
  }

  gc(_args: IpamGcArgs): Promise<void> {
    return Promise.reject(new Error("not implemented"));
  }

  async workloadEndpoint(podNamespace: string, podName: string): Promise<WorkloadEndpointStatus | undefined> {
    const ep = await this.#o.kube.getEndpoint(podNamespace, podName);
    return ep && workloadEndpointStatus(ep);
  }
}

/** SpiderEndpoint → the socket API's WorkloadEndpointStatus (`mac` only if set, `vlan` only if ≠ 0). */
export function workloadEndpointStatus(ep: SpiderEndpoint): WorkloadEndpointStatus {
  const cur = ep.status.current;
  return {
    podNamespace: ep.metadata.namespace ?? "",
    podName: ep.metadata.name,
    podUID: cur.uid,
    node: cur.node,
    interfaces: (cur.ips ?? []).map((d) => ({
      interface: d.interface,
      ...(d.ipv4 ? { ipv4: d.ipv4 } : {}),
      ...(d.ipv6 ? { ipv6: d.ipv6 } : {}),
      ...(d.mac ? { mac: d.mac } : {}),
      ...(d.vlan ? { vlan: d.vlan } : {}),
      ...(d.ipv4Pool ? { ipv4Pool: d.ipv4Pool } : {}),
      ...(d.ipv6Pool ? { ipv6Pool: d.ipv6Pool } : {}),
      ...(d.ipv4Gateway ? { ipv4Gateway: d.ipv4Gateway } : {}),
      ...(d.ipv6Gateway ? { ipv6Gateway: d.ipv6Gateway } : {}),
      ...(d.routes?.length
        ? { routes: d.routes.map((r) => ({ ifName: d.interface, dst: r.dst, gw: r.gw })) }
        : {}),
    })),
  };
}
