import assert from "node:assert/strict";
import { loadAllYaml } from "@kubernetes/client-node";
import { CRDS, customResourceDefinition } from "../../src/api/crds.ts";
import { renderCrdFiles, staleCrdFiles } from "../../scripts/gen-crds.ts";

const crdsDir = new URL("../../crds", import.meta.url).pathname;

Deno.test("crds/ matches the definitions in src/api/crds.ts (run `deno task crds` when this fails)", async () => {
  assert.deepEqual(await staleCrdFiles(crdsDir, renderCrdFiles()), []);
});

/**
 * Parses YAML to plain data. The client turns documents of known kinds into its model classes, which rename
 * fields such as x-kubernetes-validations, so the kind is hidden from it; metadata still becomes a class.
 */
function parseCrdFile(text: string): unknown[] {
  const hidden = "CustomResourceDefinitionUnderTest";
  return loadAllYaml(text.replace(/^kind: CustomResourceDefinition$/m, `kind: ${hidden}`))
    .map((doc) =>
      JSON.parse(JSON.stringify(doc.kind === hidden ? { ...doc, kind: "CustomResourceDefinition" } : doc))
    );
}

Deno.test("each CRD file holds one document that parses back to its CustomResourceDefinition", () => {
  const files = renderCrdFiles();
  for (const def of CRDS) {
    const text = files.get(`spiderpool.spidernet.io_${def.plural}.yaml`);
    assert.ok(text, def.plural);
    assert.deepEqual(parseCrdFile(text), [customResourceDefinition(def)]);
  }
});

Deno.test("rendering the CRD files twice gives the same bytes", () => {
  assert.deepEqual(renderCrdFiles(), renderCrdFiles());
});

Deno.test("a stale check reports changed, missing and left-over files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = new Map([["spiderpool.spidernet.io_a.yaml", "a\n"], [
      "spiderpool.spidernet.io_b.yaml",
      "b\n",
    ]]);
    await Deno.writeTextFile(`${dir}/spiderpool.spidernet.io_a.yaml`, "old\n");
    await Deno.writeTextFile(`${dir}/spiderpool.spidernet.io_gone.yaml`, "x\n");
    await Deno.writeTextFile(`${dir}/unrelated.yaml`, "x\n");
    assert.deepEqual(await staleCrdFiles(dir, files), [
      "spiderpool.spidernet.io_a.yaml",
      "spiderpool.spidernet.io_b.yaml",
      "spiderpool.spidernet.io_gone.yaml",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gen-crds --check exits 1 and names the stale files", async () => {
  const script = new URL("../../scripts/gen-crds.ts", import.meta.url).pathname;
  const dir = await Deno.makeTempDir();
  try {
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, "--check", "--dir", dir],
    }).output();
    assert.equal(result.code, 1);
    assert.match(new TextDecoder().decode(result.stderr), /spiderpool\.spidernet\.io_spiderippools\.yaml/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
