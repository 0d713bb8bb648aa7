// The size of the bad-input corpus, per surface: at least 100 malformed inputs in all, each with a distinct
// name. The cases themselves run in the other files of this folder.

import assert from "node:assert/strict";
import { annotationCases } from "./annotation_cases.ts";
import { crdCases } from "./crd_cases.ts";
import { pluginCases } from "./plugin_cases.ts";
import { socketCases } from "./socket_cases.ts";

Deno.test("bad input: the corpus holds at least 100 distinct malformed inputs", () => {
  const surfaces = {
    plugin: pluginCases(),
    socket: socketCases(),
    annotations: annotationCases(),
    crds: crdCases(),
  };
  const names = Object.values(surfaces).flat().map((c) => c.name);
  assert.equal(new Set(names).size, names.length, "case names are distinct");
  assert.ok(names.length >= 100, `${names.length} cases`);
  console.log(
    `bad-input corpus: ${names.length} cases (${
      Object.entries(surfaces).map(([k, v]) => `${k} ${v.length}`).join(", ")
    })`,
  );
});
