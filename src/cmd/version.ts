// `spiderpool version`: what this binary is and which protocol versions it speaks.
import { COMPATIBLE_API, VERSION } from "../version.ts";
import { SUPPORTED_CNI_VERSIONS } from "../cni/version.ts";

export function main(args: string[]): Promise<number> {
  const json = args.includes("--json") || args.includes("-o=json");
  const info = {
    version: VERSION,
    api: COMPATIBLE_API,
    cniVersions: SUPPORTED_CNI_VERSIONS,
    deno: Deno.version.deno,
  };
  const text = json ? JSON.stringify(info) : [
    `spiderpool ${info.version}`,
    `api: ${info.api}`,
    `cni versions: ${info.cniVersions.join(", ")}`,
    `deno: ${info.deno}`,
  ].join("\n");
  console.log(text);
  return Promise.resolve(0);
}
