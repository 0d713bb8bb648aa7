// `spiderpool crds`: the six CustomResourceDefinitions this binary serves, as one YAML stream, so that
// `spiderpool crds | kubectl apply -f -` installs exactly the API the binary was built with.
import { CRDS, customResourceDefinition } from "../api/crds.ts";
import { toYaml } from "../api/yaml.ts";

export function main(args: string[]): Promise<number> {
  if (args.length > 0) {
    console.error(`spiderpool crds: unexpected argument "${args[0]}"; the command takes none`);
    return Promise.resolve(2);
  }
  const text = CRDS.map((def) => "---\n" + toYaml(customResourceDefinition(def))).join("");
  const bytes = new TextEncoder().encode(text);
  for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
  return Promise.resolve(0);
}
