// The CNI name rules shared by the plugins' protocol layer and the agent's socket API (src/cni/names.ts).
import assert from "node:assert/strict";
import { containerIdProblem, ifNameProblem, networkNameProblem } from "../../src/cni/names.ts";

Deno.test("interface names: 1 to 15 bytes, not . or .., without /, : or whitespace", () => {
  for (const ok of ["eth0", "net1", "a", "x".repeat(15), "veth-1_2.3", "é".repeat(7)]) {
    assert.equal(ifNameProblem(ok), undefined, ok);
  }
  const bad: [string, RegExp][] = [
    ["", /is empty/],
    ["x".repeat(16), /16 bytes long; the kernel allows at most 15/],
    ["x".repeat(100), /100 bytes long/],
    // 8 two-byte characters: 8 characters but 16 bytes, as the kernel counts.
    ["é".repeat(8), /16 bytes long/],
    [".", /is "\."/],
    ["..", /is "\.\."/],
    ["../eth0", /contains "\/", ":" or whitespace/],
    ["eth0:1", /contains/],
    ["eth 0", /contains/],
    ["eth0\n", /contains/],
    ["eth\u00a00", /contains/],
  ];
  for (const [name, why] of bad) assert.match(ifNameProblem(name) ?? "", why, JSON.stringify(name));
});

Deno.test("container IDs and network names: a letter or digit, then letters, digits, _ . -", () => {
  for (const ok of ["c0ffee", "0123456789abcdef", "A.b_c-d", "net1"]) {
    assert.equal(containerIdProblem(ok), undefined, ok);
    assert.equal(networkNameProblem(ok), undefined, ok);
  }
  for (const bad of ["", "-a", ".a", "_a", "a/b", "a b", "a:b", "../x"]) {
    assert.ok(containerIdProblem(bad), JSON.stringify(bad));
    assert.ok(networkNameProblem(bad), JSON.stringify(bad));
  }
});
