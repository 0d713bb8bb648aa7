// The project's CRDs as shipped in crds/: read from the YAML files and installed into a test control plane,
// waiting until the API server serves them.

// Raw YAML, not client-node's loadAllYaml: that one maps objects onto its models (`default` becomes `_default`).
import { loadAll as loadAllYaml } from "js-yaml";
import type { KubeHttp } from "../../src/kube/client.ts";
import { poll } from "./poll.ts";

/** crds/ of this repository. */
export const CRD_DIR = new URL("../../crds/", import.meta.url).pathname;
/** CRDs a cluster running Multus has (NetworkAttachmentDefinition), installed next to crds/ in test clusters. */
export const MULTUS_CRD_DIR = new URL("./multus-crds/", import.meta.url).pathname;
const CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const FIELD_MANAGER = "spiderpool-tests";

export interface CustomResourceDefinition {
  apiVersion: string;
  kind: "CustomResourceDefinition";
  metadata: { name: string; resourceVersion?: string; [k: string]: unknown };
  spec: {
    group: string;
    names: { kind: string; plural: string; singular?: string; shortNames?: string[] };
    scope: "Namespaced" | "Cluster";
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      additionalPrinterColumns?: { name: string; type: string; jsonPath: string; priority?: number }[];
      subresources?: { status?: Record<string, never> };
      schema?: { openAPIV3Schema: Record<string, unknown> };
    }[];
  };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

/** Reads every CRD in `dir` (YAML files, each holding CustomResourceDefinition documents). */
export async function readCrds(dir = CRD_DIR): Promise<CustomResourceDefinition[]> {
  const base = dir.endsWith("/") ? dir : `${dir}/`;
  const files: string[] = [];
  for await (const e of Deno.readDir(base)) {
    if (e.isFile && /\.ya?ml$/.test(e.name)) files.push(e.name);
  }
  if (files.length === 0) {
    throw new Error(`no CRD YAML files in ${base}; generate them with "deno task crds"`);
  }
  files.sort();
  const crds: CustomResourceDefinition[] = [];
  for (const f of files) {
    const docs = loadAllYaml(await Deno.readTextFile(`${base}${f}`)) as ({ kind?: unknown } | null)[];
    for (const doc of docs.filter((d) => d)) {
      if (doc?.kind !== "CustomResourceDefinition") {
        throw new Error(
          `${base}${f}: expected kind CustomResourceDefinition, got ${JSON.stringify(doc?.kind)}`,
        );
      }
      crds.push(doc as CustomResourceDefinition);
    }
  }
  return crds;
}

/** Server-side applies every CRD in `dir` and waits until each is Established. */
export async function installCrds(
  http: KubeHttp,
  dir = CRD_DIR,
  timeoutMs = 30_000,
): Promise<CustomResourceDefinition[]> {
  const crds = await readCrds(dir);
  for (const crd of crds) {
    await http.patch(
      `${CRD_API}/${crd.metadata.name}?fieldManager=${FIELD_MANAGER}&force=true`,
      crd,
      "apply",
    );
  }
  for (const crd of crds) await waitEstablished(http, crd.metadata.name, timeoutMs);
  return crds;
}

/** Waits until the CRD's Established condition is True; fails early if its names are rejected. */
export async function waitEstablished(
  http: KubeHttp,
  name: string,
  timeoutMs = 30_000,
): Promise<CustomResourceDefinition> {
  return await poll(`CRD ${name} to be Established`, timeoutMs, async () => {
    const { body } = await http.get<CustomResourceDefinition>(`${CRD_API}/${name}`);
    const conditions = body.status?.conditions ?? [];
    const names = conditions.find((c) => c.type === "NamesAccepted");
    if (names?.status === "False") throw new Error(`CRD ${name}: names not accepted: ${names.message}`);
    return conditions.some((c) => c.type === "Established" && c.status === "True") ? body : undefined;
  });
}
