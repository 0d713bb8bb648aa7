import assert from "node:assert/strict";
import { isEmptySelector, matchLabelSelector, validateLabelSelector } from "../../src/api/selector.ts";
import type { LabelSelector } from "../../src/api/types.ts";

Deno.test("a selector with valid keys, values and operators has no problems", () => {
  const sel: LabelSelector = {
    matchLabels: { "app.kubernetes.io/name": "web", tier: "" },
    matchExpressions: [
      { key: "zone", operator: "In", values: ["a", "b"] },
      { key: "gpu", operator: "Exists" },
      { key: "example.com/legacy", operator: "DoesNotExist", values: [] },
      { key: "env", operator: "NotIn", values: ["dev"] },
    ],
  };
  assert.deepEqual(validateLabelSelector(sel, "spec.podAffinity"), []);
});

const BAD: [string, LabelSelector, string, string][] = [
  [
    "In without values",
    { matchExpressions: [{ key: "a", operator: "In", values: [] }] },
    ".matchExpressions[0].values",
    "operator In needs at least one value",
  ],
  [
    "NotIn without values",
    { matchExpressions: [{ key: "a", operator: "NotIn" }] },
    ".matchExpressions[0].values",
    "operator NotIn needs at least one value",
  ],
  [
    "Exists with values",
    { matchExpressions: [{ key: "a", operator: "Exists", values: ["x"] }] },
    ".matchExpressions[0].values",
    "operator Exists takes no values",
  ],
  [
    "DoesNotExist with values",
    { matchExpressions: [{ key: "a", operator: "DoesNotExist", values: ["x"] }] },
    ".matchExpressions[0].values",
    "takes no values",
  ],
  [
    "an unknown operator",
    { matchExpressions: [{ key: "a", operator: "Gt" as "In", values: ["1"] }] },
    ".matchExpressions[0].operator",
    'operator "Gt" is not supported',
  ],
  [
    "a key with spaces",
    { matchLabels: { "bad key": "x" } },
    ".matchLabels",
    'label key "bad key" is invalid',
  ],
  ["a key with a bad prefix", { matchLabels: { "Example_COM/app": "x" } }, ".matchLabels", "invalid prefix"],
  ["a key longer than 63", { matchLabels: { ["k".repeat(64)]: "x" } }, ".matchLabels", "at most 63"],
  [
    "a value with a slash",
    { matchLabels: { app: "a/b" } },
    '.matchLabels["app"]',
    'label value "a/b" is invalid',
  ],
  [
    "an expression value too long",
    { matchExpressions: [{ key: "a", operator: "In", values: ["v".repeat(64)] }] },
    ".matchExpressions[0].values[0]",
    "at most 63",
  ],
  [
    "an empty expression key",
    { matchExpressions: [{ key: "", operator: "Exists" }] },
    ".matchExpressions[0].key",
    'label key "" is invalid',
  ],
];
for (const [behaviour, sel, path, fragment] of BAD) {
  Deno.test(`a selector with ${behaviour} is invalid`, () => {
    const problems = validateLabelSelector(sel, "spec.podAffinity");
    assert.equal(problems.length, 1, JSON.stringify(problems));
    assert.equal(problems[0].path, `spec.podAffinity${path}`);
    assert.ok(problems[0].message.includes(fragment), problems[0].message);
  });
}

Deno.test("an absent selector and one with no terms are empty", () => {
  assert.equal(isEmptySelector(undefined), true);
  assert.equal(isEmptySelector({}), true);
  assert.equal(isEmptySelector({ matchLabels: {}, matchExpressions: [] }), true);
  assert.equal(isEmptySelector({ matchLabels: { a: "b" } }), false);
  assert.equal(isEmptySelector({ matchExpressions: [{ key: "a", operator: "Exists" }] }), false);
});

Deno.test("matching: matchLabels and every expression must hold", () => {
  const sel: LabelSelector = {
    matchLabels: { app: "web" },
    matchExpressions: [
      { key: "zone", operator: "In", values: ["a", "b"] },
      { key: "env", operator: "NotIn", values: ["dev"] },
      { key: "gpu", operator: "DoesNotExist" },
      { key: "rack", operator: "Exists" },
    ],
  };
  assert.equal(matchLabelSelector(sel, { app: "web", zone: "a", rack: "1" }), true);
  assert.equal(matchLabelSelector(sel, { app: "web", zone: "a", rack: "1", env: "prod" }), true);
  assert.equal(matchLabelSelector(sel, { app: "db", zone: "a", rack: "1" }), false);
  assert.equal(matchLabelSelector(sel, { app: "web", zone: "c", rack: "1" }), false);
  assert.equal(matchLabelSelector(sel, { app: "web", zone: "a", rack: "1", env: "dev" }), false);
  assert.equal(matchLabelSelector(sel, { app: "web", zone: "a", rack: "1", gpu: "" }), false);
  assert.equal(matchLabelSelector(sel, { app: "web", zone: "a" }), false);
});

Deno.test("matching: an absent or empty selector matches everything", () => {
  assert.equal(matchLabelSelector(undefined, { a: "b" }), true);
  assert.equal(matchLabelSelector({}, undefined), true);
});

Deno.test("matching: a label inherited from Object.prototype is not a label", () => {
  assert.equal(
    matchLabelSelector({ matchExpressions: [{ key: "toString", operator: "Exists" }] }, {}),
    false,
  );
});
