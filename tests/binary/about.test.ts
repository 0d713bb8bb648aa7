// A CNI plugin started by hand, without CNI_COMMAND, prints its about text on stderr and exits 0, as the
// reference plugins' skel does; the built `spiderpool` does the same when it gets no argument either.
import assert from "node:assert/strict";
import { VERSION } from "../../src/version.ts";
import { cniToolsBin } from "../cni/tools.ts";
import { run } from "./run.ts";

const dist = new URL("../../dist/", import.meta.url).pathname;

/** skel's text: "CNI <name> plugin <version>", then the supported versions. */
const aboutText = (name: string, version: string) =>
  new RegExp(
    `^CNI ${name} plugin ${version}\\nCNI protocol versions supported: \\d+\\.\\d+\\.\\d+(, \\d+\\.\\d+\\.\\d+)*\\n$`,
  );

Deno.test("the reference bridge plugin without CNI_COMMAND: about text on stderr, exit 0 (what skel does)", async () => {
  const r = await run(`${await cniToolsBin()}/bridge`);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, aboutText("bridge", "v\\d+\\.\\d+\\.\\d+"));
});

Deno.test("spiderpool without CNI_COMMAND or arguments prints its about text like skel and exits 0", async () => {
  for (const bin of [`${dist}cni/spiderpool`, `${dist}spiderpool`]) {
    for (const env of [{}, { CNI_COMMAND: "" }] as Record<string, string>[]) {
      const r = await run(bin, [], env);
      assert.equal(r.code, 0, `${bin} ${JSON.stringify(env)}: ${r.stderr}`);
      assert.equal(r.stdout, "");
      assert.match(r.stderr, aboutText("spiderpool", `v${VERSION.replaceAll(".", "\\.")}`));
      assert.equal(
        r.stderr.split("\n")[1],
        "CNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0",
      );
    }
  }
});
