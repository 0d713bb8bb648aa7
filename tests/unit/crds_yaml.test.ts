import assert from "node:assert/strict";
import { loadAllYaml } from "@kubernetes/client-node";
import { isPlainSafe, toYaml } from "../../src/api/yaml.ts";

function parse(text: string): unknown {
  const docs = loadAllYaml(text);
  assert.equal(docs.length, 1);
  return docs[0];
}

Deno.test("a nested mapping is written in block style with sorted keys", () => {
  assert.equal(
    toYaml({ spec: { subnet: "x", names: { plural: "p" } }, kind: "K" }),
    "kind: K\nspec:\n  names:\n    plural: p\n  subnet: x\n",
  );
});

Deno.test("a sequence under a key is not indented further", () => {
  assert.equal(toYaml({ shortNames: ["sp", "ss"] }), "shortNames:\n- sp\n- ss\n");
});

Deno.test("a mapping inside a sequence starts on the dash line", () => {
  assert.equal(
    toYaml({ versions: [{ name: "v2beta1", served: true }] }),
    "versions:\n- name: v2beta1\n  served: true\n",
  );
});

Deno.test("a sequence inside a sequence nests its dashes", () => {
  assert.equal(toYaml([[1, 2], [3]]), "- - 1\n  - 2\n- - 3\n");
});

Deno.test("empty collections are written in flow style", () => {
  assert.equal(toYaml({ a: {}, b: [], c: [{}] }), "a: {}\nb: []\nc:\n- {}\n");
});

Deno.test("keys whose value is undefined are left out and undefined array items become null", () => {
  assert.equal(toYaml({ a: undefined, b: [undefined] }), "b:\n- null\n");
});

Deno.test("key order is kept when sorting is turned off", () => {
  assert.equal(toYaml({ b: 1, a: 2 }, { sortKeys: false }), "b: 1\na: 2\n");
});

Deno.test("numbers, booleans and null are written as YAML scalars", () => {
  assert.equal(
    toYaml({ num: -1.5, int: 4094, yes: true, no: false, none: null }),
    'int: 4094\n"no": false\nnone: null\nnum: -1.5\n"yes": true\n',
  );
});

Deno.test("strings a parser would read as another type are quoted", () => {
  for (
    const text of [
      "4",
      "0x1F",
      "1e3",
      ".5",
      "-1",
      "+1",
      ".inf",
      "2001-12-14",
      "1:20",
      "yes",
      "No",
      "ON",
      "off",
    ]
  ) {
    assert.equal(toYaml(text), `"${text}"\n`, text);
  }
  for (const text of ["true", "False", "null", "~", "y", "n", "<<", "="]) {
    assert.equal(toYaml(text), `"${text}"\n`, text);
  }
});

Deno.test("strings with YAML indicators or separators are quoted", () => {
  for (
    const text of [
      "*alias",
      "&anchor",
      "!tag",
      "- item",
      "? key",
      "#comment",
      "a: b",
      "a #b",
      "key:",
      "{a}",
      "[a]",
    ]
  ) {
    assert.equal(isPlainSafe(text), false, text);
  }
  assert.equal(toYaml({ v: "a: b" }), 'v: "a: b"\n');
});

Deno.test("ordinary strings, JSON paths and label keys stay plain", () => {
  for (
    const text of [
      "v2beta1",
      ".spec.ipVersion",
      "ipam.spidernet.io/app-namespace",
      "a#b",
      "http://x",
      "ns/name",
    ]
  ) {
    assert.equal(isPlainSafe(text), true, text);
  }
});

Deno.test("empty, padded and control-character strings are quoted", () => {
  assert.equal(
    toYaml({ e: "", p: " x", q: "x ", t: "a\tb", d: "\u007f" }),
    [
      'd: "\\u007f"',
      'e: ""',
      'p: " x"',
      'q: "x "',
      't: "a\\tb"',
      "",
    ].join("\n"),
  );
});

Deno.test("multi-line strings become literal blocks with the matching chomping", () => {
  assert.equal(toYaml({ d: "line one\nline two" }), "d: |-\n  line one\n  line two\n");
  assert.equal(toYaml({ d: "line one\n\nline two\n" }), "d: |\n  line one\n\n  line two\n");
});

Deno.test("multi-line strings a literal block cannot carry are quoted", () => {
  assert.equal(toYaml({ d: " indented\nsecond" }), 'd: " indented\\nsecond"\n');
  assert.equal(toYaml({ d: "two breaks\n\n" }), 'd: "two breaks\\n\\n"\n');
  assert.equal(toYaml({ d: "a\r\nb" }), 'd: "a\\r\\nb"\n');
});

Deno.test("keys that need quoting are quoted", () => {
  assert.equal(toYaml({ "on": 1, "a b": 2, "x: y": 3, "": 4 }), '"": 4\na b: 2\n"on": 1\n"x: y": 3\n');
});

Deno.test("values that are not JSON-like are refused with their location", () => {
  assert.throws(() => toYaml({ a: [NaN] }), /\$\.a\[0\].*not finite/);
  assert.throws(() => toYaml({ when: new Date(0) }), /Date at \$\.when/);
});

Deno.test("tricky data parses back to an equal value", () => {
  const data = {
    plain: "v2beta1",
    numeric: ["4", "6", "0", "1.0", "1e3", "0o17", "0x1F", "2001-12-14", "12:30"],
    words: ["yes", "no", "on", "off", "true", "false", "null", "~", "y", "N", "<<", "="],
    indicators: [
      ":",
      "a: b",
      "#",
      "a #b",
      "*x",
      "&x",
      "!x",
      "%x",
      "@x",
      "`x",
      "|",
      ">",
      "-",
      "- x",
      "?",
      "'q'",
      '"q"',
    ],
    empty: "",
    spaces: ["  lead", "trail  ", " "],
    multi: ["a\nb", "a\n\nb\n", "a\n  indented\nb", "\nleading break", "trailing\n\n", "a\r\nb", "tab\tin"],
    "ipam.spidernet.io/app-namespace": "default",
    "key with: colon": { "#": [1, -2.5, true, null, [], {}] },
    unicode: ["naïve — ok", "\u0085", "\u2028", "emoji 😀"],
    nested: [[["deep"]], [{ a: [{ b: "c\nd" }] }]],
  };
  assert.deepEqual(parse(toYaml(data)), data);
});

Deno.test("output does not depend on the order the keys were added", () => {
  assert.equal(toYaml({ a: 1, b: { c: 2, d: 3 } }), toYaml({ b: { d: 3, c: 2 }, a: 1 }));
});
