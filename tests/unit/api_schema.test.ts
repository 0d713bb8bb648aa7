import assert from "node:assert/strict";
import { type Infer, s } from "../../src/api/schema.ts";

// True only when A and B are the same type; used for compile-time checks of the inferred types.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;

Deno.test("a builder without options emits only the type", () => {
  assert.deepEqual(s.string().openAPI, { type: "string" });
  assert.deepEqual(s.bool().openAPI, { type: "boolean" });
  assert.deepEqual(s.int().openAPI, { type: "integer" });
});

Deno.test("string carries enum, pattern, format and length limits", () => {
  assert.deepEqual(
    s.string({ enum: ["a", "b"], pattern: "^[ab]$", format: "hostname", minLength: 1, maxLength: 2 }).openAPI,
    { type: "string", enum: ["a", "b"], pattern: "^[ab]$", format: "hostname", minLength: 1, maxLength: 2 },
  );
});

Deno.test("int64 and int32 set their format and bounds", () => {
  assert.deepEqual(s.int64({ minimum: 0 }).openAPI, { type: "integer", format: "int64", minimum: 0 });
  assert.deepEqual(s.int32({ minimum: 0, maximum: 4094 }).openAPI, {
    type: "integer",
    format: "int32",
    minimum: 0,
    maximum: 4094,
  });
});

Deno.test("description, default and rules map onto their OpenAPI keywords", () => {
  assert.deepEqual(
    s.bool({ description: "d", default: true, rules: [{ rule: "self == oldSelf", message: "m" }] }).openAPI,
    {
      type: "boolean",
      description: "d",
      default: true,
      "x-kubernetes-validations": [{ rule: "self == oldSelf", message: "m" }],
    },
  );
});

Deno.test("array wraps the item schema and carries item limits and list type", () => {
  assert.deepEqual(s.array(s.string(), { minItems: 1, listType: "atomic" }).openAPI, {
    type: "array",
    items: { type: "string" },
    minItems: 1,
    "x-kubernetes-list-type": "atomic",
  });
});

Deno.test("map puts the value schema under additionalProperties only", () => {
  assert.deepEqual(s.map(s.string()).openAPI, { type: "object", additionalProperties: { type: "string" } });
});

Deno.test("object lists its properties and the required ones", () => {
  const schema = s.object({ a: s.string(), b: s.int() }, { required: ["a"] });
  assert.deepEqual(schema.openAPI, {
    type: "object",
    properties: { a: { type: "string" }, b: { type: "integer" } },
    required: ["a"],
  });
});

Deno.test("object without required properties has no required list", () => {
  assert.equal("required" in s.object({ a: s.string() }).openAPI, false);
});

Deno.test("properties marked present are not required from clients", () => {
  const schema = s.object({ metadata: s.objectMeta(), spec: s.object({}) }, {
    required: ["spec"],
    present: ["metadata"],
  });
  assert.deepEqual(schema.openAPI.required, ["spec"]);
});

Deno.test("object refuses a required name that is not one of its properties", () => {
  // deno-lint-ignore no-explicit-any
  assert.throws(() => s.object({ a: s.string() }, { required: ["b" as any] }), /required property "b"/);
});

Deno.test("label selector is atomic and requires key and operator in each expression", () => {
  const selector = s.labelSelector().openAPI;
  assert.equal(selector["x-kubernetes-map-type"], "atomic");
  assert.deepEqual(selector.properties?.matchLabels.additionalProperties, { type: "string" });
  assert.deepEqual(selector.properties?.matchExpressions.items?.required, ["key", "operator"]);
});

Deno.test("label selector with its own description leaves the shared schema unchanged", () => {
  const before = structuredClone(s.labelSelector().openAPI);
  assert.equal(s.labelSelector({ description: "pods" }).openAPI.description, "pods");
  assert.deepEqual(s.labelSelector().openAPI, before);
});

Deno.test("withDefault adds a default without changing the original schema", () => {
  const original = s.object({ a: s.bool({ default: true }) });
  assert.deepEqual(s.withDefault(original, {}).openAPI.default, {});
  assert.equal("default" in original.openAPI, false);
});

Deno.test("objectMeta is an untyped object, left for the API server to validate", () => {
  assert.deepEqual(s.objectMeta().openAPI, { type: "object" });
});

Deno.test("Infer makes required properties mandatory and the others optional", () => {
  const schema = s.object({
    subnet: s.string(),
    ipVersion: s.int64({ enum: [4, 6] }),
    ips: s.array(s.string()),
    labels: s.map(s.string()),
  }, { required: ["subnet"] });
  const exact: Equal<
    Infer<typeof schema>,
    { subnet: string; ipVersion?: 4 | 6; ips?: string[]; labels?: Record<string, string> }
  > = true;
  assert.equal(exact, true);
});

Deno.test("Infer narrows string enums and typed schemas to their literal unions", () => {
  const mode = s.string({ enum: ["auto", "underlay"] });
  const phase = s.typed<"Synced" | "NotReady">(s.string());
  const exact: [
    Equal<Infer<typeof mode>, "auto" | "underlay">,
    Equal<Infer<typeof phase>, "Synced" | "NotReady">,
  ] = [true, true];
  assert.deepEqual(exact, [true, true]);
  assert.deepEqual(phase.openAPI, { type: "string" });
});
