// A small typed builder for structural OpenAPI v3 schemas, the form Kubernetes CRDs require.
// Each builder returns the JSON schema together with a phantom TypeScript type, so `Infer<typeof x>`
// gives the type of the objects the schema accepts and the CRDs stay the one source of truth.

/** The subset of OpenAPI v3 (as restricted by apiextensions.k8s.io/v1) that the builders emit. */
export interface OpenAPISchema {
  type: "object" | "array" | "string" | "integer" | "number" | "boolean";
  description?: string;
  format?: string;
  enum?: readonly (string | number)[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  default?: unknown;
  nullable?: boolean;
  properties?: Record<string, OpenAPISchema>;
  required?: string[];
  items?: OpenAPISchema;
  additionalProperties?: OpenAPISchema;
  "x-kubernetes-validations"?: ValidationRule[];
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-map-type"?: "atomic" | "granular";
  "x-kubernetes-preserve-unknown-fields"?: boolean;
}

/** A CEL rule checked by the API server (`x-kubernetes-validations`). */
export interface ValidationRule {
  rule: string;
  message?: string;
}

declare const typeOf: unique symbol;

/** A schema node; `T` is the TypeScript type of the values it accepts (never present at runtime). */
export interface Schema<T> {
  readonly openAPI: OpenAPISchema;
  readonly [typeOf]?: T;
}

/** The TypeScript type accepted by a schema built here. */
export type Infer<S> = S extends Schema<infer T> ? T : never;

/** Options every builder takes. */
export interface CommonOptions<T> {
  description?: string;
  default?: T;
  nullable?: boolean;
  rules?: ValidationRule[];
}

export interface StringOptions<T extends string = string> extends CommonOptions<T> {
  enum?: readonly T[];
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
}

export interface IntegerOptions<T extends number = number> extends CommonOptions<T> {
  enum?: readonly T[];
  minimum?: number;
  maximum?: number;
}

export interface ArrayOptions<T> extends CommonOptions<T[]> {
  minItems?: number;
  maxItems?: number;
  listType?: "atomic" | "set";
}

export interface ObjectOptions<R extends string, A extends string>
  extends CommonOptions<Record<string, unknown>> {
  required?: readonly R[];
  /** Properties the API server always fills in (e.g. `metadata`): not required from clients, never optional to readers. */
  present?: readonly A[];
  mapType?: "atomic" | "granular";
}

type Props = Record<string, Schema<unknown>>;
type Flatten<T> = { [K in keyof T]: T[K] } & unknown;
type ObjectOf<P extends Props, R extends keyof P> = Flatten<
  & { [K in R]: Infer<P[K]> }
  & { [K in Exclude<keyof P, R>]?: Infer<P[K]> }
>;

function node<T>(openAPI: OpenAPISchema): Schema<T> {
  return { openAPI };
}

/** Copies the options that map one-to-one onto OpenAPI keywords, skipping absent ones. */
function common<T>(type: OpenAPISchema["type"], opts: CommonOptions<T> = {}): OpenAPISchema {
  const out: OpenAPISchema = { type };
  if (opts.description !== undefined) out.description = opts.description;
  if (opts.default !== undefined) out.default = opts.default;
  if (opts.nullable) out.nullable = true;
  if (opts.rules?.length) out["x-kubernetes-validations"] = opts.rules;
  return out;
}

function assign(target: OpenAPISchema, extra: Partial<OpenAPISchema>): OpenAPISchema {
  for (const [key, value] of Object.entries(extra)) {
    if (value !== undefined) (target as unknown as Record<string, unknown>)[key] = value;
  }
  return target;
}

function string<const E extends string>(opts: StringOptions<E> & { enum: readonly E[] }): Schema<E>;
function string(opts?: StringOptions): Schema<string>;
function string(opts: StringOptions = {}): Schema<string> {
  return node(assign(common("string", opts), {
    enum: opts.enum,
    pattern: opts.pattern,
    format: opts.format,
    minLength: opts.minLength,
    maxLength: opts.maxLength,
  }));
}

function integer(format: "int32" | "int64" | undefined, opts: IntegerOptions): OpenAPISchema {
  return assign(common("integer", opts), {
    enum: opts.enum,
    format,
    minimum: opts.minimum,
    maximum: opts.maximum,
  });
}

function int64<const E extends number>(opts: IntegerOptions<E> & { enum: readonly E[] }): Schema<E>;
function int64(opts?: IntegerOptions): Schema<number>;
function int64(opts: IntegerOptions = {}): Schema<number> {
  return node(integer("int64", opts));
}

function int32<const E extends number>(opts: IntegerOptions<E> & { enum: readonly E[] }): Schema<E>;
function int32(opts?: IntegerOptions): Schema<number>;
function int32(opts: IntegerOptions = {}): Schema<number> {
  return node(integer("int32", opts));
}

/** An integer without a `format`, as upstream emits for Go `int` fields. */
function int(opts: IntegerOptions = {}): Schema<number> {
  return node(integer(undefined, opts));
}

function bool(opts: CommonOptions<boolean> = {}): Schema<boolean> {
  return node(common("boolean", opts));
}

function array<T>(item: Schema<T>, opts: ArrayOptions<T> = {}): Schema<T[]> {
  return node(assign(common("array", opts), {
    items: item.openAPI,
    minItems: opts.minItems,
    maxItems: opts.maxItems,
    "x-kubernetes-list-type": opts.listType,
  }));
}

/** An object with arbitrary keys whose values all follow `value` (OpenAPI `additionalProperties`). */
function map<T>(value: Schema<T>, opts: CommonOptions<Record<string, T>> = {}): Schema<Record<string, T>> {
  return node(assign(common("object", opts), { additionalProperties: value.openAPI }));
}

function object<
  P extends Props,
  const R extends keyof P & string = never,
  const A extends keyof P & string = never,
>(properties: P, opts: ObjectOptions<R, A> = {}): Schema<ObjectOf<P, R | A>> {
  const props: Record<string, OpenAPISchema> = {};
  for (const [name, schema] of Object.entries(properties)) props[name] = schema.openAPI;
  for (const name of [...(opts.required ?? []), ...(opts.present ?? [])]) {
    if (!(name in properties)) throw new Error(`required property "${name}" is not among the properties`);
  }
  return node(assign(common("object", opts), {
    properties: props,
    required: opts.required?.length ? [...opts.required] : undefined,
    "x-kubernetes-map-type": opts.mapType,
  }));
}

/** Changes the TypeScript type of a schema without changing the schema (for fields the API server fills in). */
function typed<T>(schema: Schema<unknown>): Schema<T> {
  return node(schema.openAPI);
}

/** Gives a schema a `default` value, e.g. `{}` on an object so its own field defaults apply when it is absent. */
function withDefault<T>(schema: Schema<T>, value: unknown): Schema<T> {
  return node({ ...schema.openAPI, default: value });
}

/** Operators of a label selector requirement. */
export type LabelSelectorOperator = "In" | "NotIn" | "Exists" | "DoesNotExist";

const labelSelectorSchema = object({
  matchLabels: map(string(), {
    description:
      "matchLabels is a map of {key,value} pairs. A single {key,value} in the matchLabels map is " +
      'equivalent to an element of matchExpressions, whose key field is "key", the operator is "In", and the ' +
      'values array contains only "value". The requirements are ANDed.',
  }),
  matchExpressions: array(
    object({
      key: string({ description: "key is the label key that the selector applies to." }),
      // No enum, as in Kubernetes itself: the operator is checked when the selector is used.
      operator: typed<LabelSelectorOperator>(string({
        description: "operator represents a key's relationship to a set of values. Valid operators are In, " +
          "NotIn, Exists and DoesNotExist.",
      })),
      values: array(string(), {
        listType: "atomic",
        description:
          "values is an array of string values. If the operator is In or NotIn, the values array " +
          "must be non-empty. If the operator is Exists or DoesNotExist, the values array must be empty.",
      }),
    }, {
      required: ["key", "operator"],
      description:
        "A label selector requirement is a selector that contains values, a key, and an operator " +
        "that relates the key and values.",
    }),
    {
      listType: "atomic",
      description: "matchExpressions is a list of label selector requirements. The requirements are ANDed.",
    },
  ),
}, {
  mapType: "atomic",
  description: "A label selector is a label query over a set of resources. The result of matchLabels and " +
    "matchExpressions are ANDed. An empty label selector matches all objects. A null label selector matches " +
    "no objects.",
});

/** A Kubernetes `metav1.LabelSelector`. */
function labelSelector(opts: { description?: string } = {}): typeof labelSelectorSchema {
  if (opts.description === undefined) return labelSelectorSchema;
  return node({ ...labelSelectorSchema.openAPI, description: opts.description });
}

/** Owner reference as stored in `metadata.ownerReferences`. */
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** The part of `metav1.ObjectMeta` this project reads and writes. */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

/** `metadata` of a custom resource: the API server validates it, so the CRD schema only says "object". */
function objectMeta(): Schema<ObjectMeta> {
  return node({ type: "object" });
}

/** The schema builders. */
export const s = {
  string,
  int,
  int32,
  int64,
  bool,
  array,
  map,
  object,
  typed,
  withDefault,
  labelSelector,
  objectMeta,
};
