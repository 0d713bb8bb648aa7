// `spiderpool controller` (also started as `spiderpool-controller`): the cluster-wide controller. Its parts
// (admission webhooks, IP garbage collection, auto-pools, NAD rendering) are not in this release; the mode
// exists so that the name dispatches and says so plainly instead of printing a usage error.
import { VERSION } from "../version.ts";

export function main(_args: string[]): Promise<number> {
  console.error(
    `spiderpool controller: not available in spiderpool ${VERSION}; ` +
      "run the agent (`spiderpool agent`) on every node for IPAM",
  );
  return Promise.resolve(1);
}
