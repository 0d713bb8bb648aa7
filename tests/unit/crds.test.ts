import assert from "node:assert/strict";
import { COORDINATOR_MODES, POD_CIDR_TYPES } from "../../src/api/constants.ts";
import { CRDS, customResourceDefinition } from "../../src/api/crds.ts";
import type { OpenAPISchema } from "../../src/api/schema.ts";

type Crd = {
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: {
      kind: string;
      listKind: string;
      plural: string;
      singular: string;
      shortNames: string[];
      categories: string[];
    };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      schema: { openAPIV3Schema: OpenAPISchema };
      subresources?: Record<string, unknown>;
      additionalPrinterColumns?: { name: string; jsonPath: string; type: string; priority?: number }[];
    }[];
  };
};

const crds = new Map(CRDS.map((def) => [def.kind, customResourceDefinition(def) as unknown as Crd]));

function crd(kind: string): Crd {
  const found = crds.get(kind as never);
  assert.ok(found, `no CRD for ${kind}`);
  return found;
}

function rootSchema(kind: string): OpenAPISchema {
  return crd(kind).spec.versions[0].schema.openAPIV3Schema;
}

/** Every schema node with its path, e.g. `spec.routes[].dst`. */
function* walk(schema: OpenAPISchema, path = ""): Generator<[string, OpenAPISchema]> {
  yield [path, schema];
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    yield* walk(child, path ? `${path}.${name}` : name);
  }
  if (schema.items) yield* walk(schema.items, `${path}[]`);
  if (schema.additionalProperties) yield* walk(schema.additionalProperties, `${path}{}`);
}

function allNodes(): [string, OpenAPISchema][] {
  return [...crds.keys()].flatMap((kind) =>
    [...walk(rootSchema(kind))].map(([p, n]): [string, OpenAPISchema] => [`${kind}:${p}`, n])
  );
}

/**
 * The errors the API server's OpenAPI validation would report for `value` (pruning, not validation, deals
 * with unknown fields, so they are ignored). Defaults are not applied.
 */
function validate(schema: OpenAPISchema, value: unknown, path = "$"): string[] {
  const errors: string[] = [];
  const typeOk = {
    object: typeof value === "object" && value !== null && !Array.isArray(value),
    array: Array.isArray(value),
    string: typeof value === "string",
    integer: Number.isInteger(value),
    number: typeof value === "number",
    boolean: typeof value === "boolean",
  }[schema.type];
  if (!typeOk) return [`${path}: expected ${schema.type}`];
  if (schema.enum && !schema.enum.includes(value as string | number)) errors.push(`${path}: not in enum`);
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${path}: below minimum`);
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${path}: above maximum`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      errors.push(`${path}: too few items`);
    }
    value.forEach((item, i) => errors.push(...validate(schema.items!, item, `${path}[${i}]`)));
  } else if (schema.type === "object") {
    const object = value as Record<string, unknown>;
    for (const name of schema.required ?? []) {
      if (!(name in object)) errors.push(`${path}.${name}: required`);
    }
    for (const [name, child] of Object.entries(object)) {
      const sub = schema.properties?.[name] ?? schema.additionalProperties;
      if (sub) errors.push(...validate(sub, child, `${path}.${name}`));
    }
  }
  return errors;
}

function accepts(kind: string, object: unknown): boolean {
  return validate(rootSchema(kind), object).length === 0;
}

const meta = { metadata: { name: "x" } };

// ---------------------------------------------------------------------------------------------------------
// Names, scope, versions

Deno.test("each CRD has the spec's plural, short name and scope", () => {
  const expected = [
    ["SpiderIPPool", "spiderippools", "sp", "Cluster"],
    ["SpiderSubnet", "spidersubnets", "ss", "Cluster"],
    ["SpiderReservedIP", "spiderreservedips", "sr", "Cluster"],
    ["SpiderEndpoint", "spiderendpoints", "se", "Namespaced"],
    ["SpiderCoordinator", "spidercoordinators", "scc", "Cluster"],
    ["SpiderMultusConfig", "spidermultusconfigs", "smc", "Namespaced"],
  ];
  const actual = [...crds.values()].map((c) => [
    c.spec.names.kind,
    c.spec.names.plural,
    c.spec.names.shortNames.join(","),
    c.spec.scope,
  ]);
  assert.deepEqual(actual, expected);
});

Deno.test("each CRD is named <plural>.spiderpool.spidernet.io in the group spiderpool.spidernet.io", () => {
  for (const c of crds.values()) {
    assert.equal(c.metadata.name, `${c.spec.names.plural}.spiderpool.spidernet.io`);
    assert.equal(c.spec.group, "spiderpool.spidernet.io");
  }
});

Deno.test("each CRD lists as <Kind>List, has a lowercase singular and is in category spiderpool", () => {
  for (const c of crds.values()) {
    const { kind, listKind, singular, categories } = c.spec.names;
    assert.deepEqual([listKind, singular, categories], [`${kind}List`, kind.toLowerCase(), ["spiderpool"]]);
  }
});

Deno.test("v2beta1 is the only version, served and stored", () => {
  for (const c of crds.values()) {
    assert.deepEqual(
      c.spec.versions.map((v) => [v.name, v.served, v.storage]),
      [["v2beta1", true, true]],
    );
  }
});

Deno.test("only SpiderIPPool, SpiderSubnet and SpiderCoordinator have a status subresource", () => {
  const withStatus = [...crds.values()]
    .filter((c) => c.spec.versions[0].subresources?.status !== undefined)
    .map((c) => c.spec.names.kind);
  assert.deepEqual(withStatus, ["SpiderIPPool", "SpiderSubnet", "SpiderCoordinator"]);
});

// ---------------------------------------------------------------------------------------------------------
// Printer columns

function columns(kind: string): string[] {
  return (crd(kind).spec.versions[0].additionalPrinterColumns ?? []).map((c) =>
    `${c.name} ${c.jsonPath}${c.priority ? ` p${c.priority}` : ""}`
  );
}

Deno.test("SpiderIPPool shows version, subnet, counts and default, and more at priority 10", () => {
  assert.deepEqual(columns("SpiderIPPool"), [
    "VERSION .spec.ipVersion",
    "SUBNET .spec.subnet",
    "ALLOCATED-IP-COUNT .status.allocatedIPCount",
    "TOTAL-IP-COUNT .status.totalIPCount",
    "DEFAULT .spec.default",
    "DISABLE .spec.disable p10",
    "NodeName .spec.nodeName p10",
    "MultusName .spec.multusName p10",
    String.raw`APP-NAMESPACE .spec.podAffinity.matchLabels['ipam\.spidernet\.io/app\-namespace'] p10`,
  ]);
});

Deno.test("SpiderSubnet shows version, subnet and counts; SpiderReservedIP shows the version", () => {
  assert.deepEqual(columns("SpiderSubnet"), [
    "VERSION .spec.ipVersion",
    "SUBNET .spec.subnet",
    "ALLOCATED-IP-COUNT .status.allocatedIPCount",
    "TOTAL-IP-COUNT .status.totalIPCount",
  ]);
  assert.deepEqual(columns("SpiderReservedIP"), ["VERSION .spec.ipVersion"]);
});

Deno.test("SpiderEndpoint shows the first NIC's addresses and the node", () => {
  assert.deepEqual(columns("SpiderEndpoint"), [
    "INTERFACE .status.current.ips[0].interface",
    "IPV4POOL .status.current.ips[0].ipv4Pool",
    "IPV4 .status.current.ips[0].ipv4",
    "IPV6POOL .status.current.ips[0].ipv6Pool",
    "IPV6 .status.current.ips[0].ipv6",
    "NODE .status.current.node",
  ]);
});

Deno.test("SpiderCoordinator and SpiderMultusConfig have no printer columns", () => {
  assert.deepEqual([columns("SpiderCoordinator"), columns("SpiderMultusConfig")], [[], []]);
});

Deno.test("every printer column reads a field the schema declares, with a matching type", () => {
  for (const [kind, c] of crds) {
    for (const column of c.spec.versions[0].additionalPrinterColumns ?? []) {
      const path = column.jsonPath
        .replace(/\['[^']*'\]$/, "{}")
        .replace(/\[0\]/g, "[]")
        .slice(1)
        .replace(/\.(?=\{\})/, "");
      const node = [...walk(rootSchema(kind))].find(([p]) => p === path)?.[1];
      assert.ok(node, `${kind} column ${column.name}: ${column.jsonPath} is not in the schema`);
      if (column.type !== "string") assert.equal(node.type, column.type, `${kind} column ${column.name}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
// Structural schema rules the API server enforces

Deno.test("every schema node has a type", () => {
  const untyped = allNodes().filter(([, node]) => !node.type).map(([path]) => path);
  assert.deepEqual(untyped, []);
});

Deno.test("no schema node has both properties and additionalProperties", () => {
  const both = allNodes().filter(([, n]) => n.properties && n.additionalProperties).map(([path]) => path);
  assert.deepEqual(both, []);
});

Deno.test("no schema preserves unknown fields", () => {
  const preserving = allNodes().filter(([, n]) => n["x-kubernetes-preserve-unknown-fields"]).map(([p]) => p);
  assert.deepEqual(preserving, []);
});

Deno.test("every required property is declared", () => {
  for (const [path, node] of allNodes()) {
    for (const name of node.required ?? []) assert.ok(node.properties?.[name], `${path} requires ${name}`);
  }
});

Deno.test("every default is valid for the schema it belongs to", () => {
  const defaulted = allNodes().filter(([, n]) => n.default !== undefined);
  assert.ok(defaulted.length > 10);
  for (const [path, node] of defaulted) {
    assert.deepEqual(validate(node, node.default), [], path);
  }
});

Deno.test("metadata has no schema beyond being an object", () => {
  for (const kind of crds.keys()) assert.deepEqual(rootSchema(kind).properties?.metadata, { type: "object" });
});

Deno.test("the only CEL rules make subnet and ipVersion immutable, outside any list", () => {
  const ruled = allNodes()
    .filter(([, n]) => n["x-kubernetes-validations"])
    .map(([path, n]) => `${path} ${n["x-kubernetes-validations"]!.map((r) => r.rule).join(";")}`);
  assert.deepEqual(ruled, [
    "SpiderIPPool:spec.ipVersion self == oldSelf",
    "SpiderIPPool:spec.subnet self == oldSelf",
    "SpiderSubnet:spec.ipVersion self == oldSelf",
    "SpiderSubnet:spec.subnet self == oldSelf",
    "SpiderReservedIP:spec.ipVersion self == oldSelf",
  ]);
});

// ---------------------------------------------------------------------------------------------------------
// What the schemas accept and reject

Deno.test("a SpiderIPPool needs spec.subnet", () => {
  assert.equal(accepts("SpiderIPPool", { ...meta, spec: { subnet: "198.18.0.0/16" } }), true);
  assert.equal(accepts("SpiderIPPool", { ...meta, spec: { ips: ["198.18.0.1"] } }), false);
  assert.equal(accepts("SpiderIPPool", meta), false);
});

Deno.test("ipVersion accepts 4 and 6 only", () => {
  for (const ipVersion of [4, 6]) {
    assert.equal(accepts("SpiderSubnet", { spec: { subnet: "x", ipVersion } }), true);
  }
  for (const ipVersion of [0, 5, "4"]) {
    assert.equal(accepts("SpiderSubnet", { spec: { subnet: "x", ipVersion } }), false, String(ipVersion));
  }
});

Deno.test("routes need both dst and gw", () => {
  const pool = (routes: unknown) => ({ ...meta, spec: { subnet: "x", routes } });
  assert.equal(accepts("SpiderIPPool", pool([{ dst: "198.18.0.0/15", gw: "198.18.0.1" }])), true);
  assert.equal(accepts("SpiderIPPool", pool([{ dst: "198.18.0.0/15" }])), false);
  assert.equal(accepts("SpiderIPPool", pool([{ gw: "198.18.0.1" }])), false);
});

Deno.test("pool counts cannot be negative", () => {
  assert.equal(accepts("SpiderIPPool", { spec: { subnet: "x" }, status: { allocatedIPCount: -1 } }), false);
  assert.equal(accepts("SpiderSubnet", { spec: { subnet: "x" }, status: { totalIPCount: -1 } }), false);
});

Deno.test("a SpiderReservedIP needs at least one IP", () => {
  assert.equal(accepts("SpiderReservedIP", { spec: { ips: ["198.18.0.1-198.18.0.9"] } }), true);
  assert.equal(accepts("SpiderReservedIP", { spec: { ips: [] } }), false);
  assert.equal(accepts("SpiderReservedIP", { spec: {} }), false);
});

Deno.test("a SpiderEndpoint status needs the pod uid, node, ips and owner", () => {
  const status = {
    current: { uid: "u", node: "n", ips: [{ interface: "eth0", ipv4: "198.18.0.2/16", vlan: 0 }] },
    ownerControllerType: "Pod",
    ownerControllerName: "p",
  };
  assert.equal(accepts("SpiderEndpoint", { status }), true);
  const { ownerControllerName: _owner, ...noOwner } = status;
  assert.equal(accepts("SpiderEndpoint", { status: noOwner }), false);
  const { uid: _, ...noUid } = status.current;
  assert.equal(accepts("SpiderEndpoint", { status: { ...status, current: noUid } }), false);
  const noInterface = { ...status.current, ips: [{ ipv4: "198.18.0.2/16" }] };
  assert.equal(accepts("SpiderEndpoint", { status: { ...status, current: noInterface } }), false);
});

Deno.test("coordinator mode accepts both disable and disabled", () => {
  for (const mode of ["auto", "underlay", "overlay", "disabled", "disable"]) {
    assert.equal(accepts("SpiderCoordinator", { spec: { mode } }), true, mode);
  }
  assert.equal(accepts("SpiderCoordinator", { spec: { mode: "off" } }), false);
});

Deno.test("coordinator mode and podCIDRType enums are the ones the webhooks accept", () => {
  for (const kind of ["SpiderCoordinator", "SpiderMultusConfig"]) {
    const spec = rootSchema(kind).properties!.spec;
    const coordinator = kind === "SpiderCoordinator" ? spec : spec.properties!.coordinator;
    assert.deepEqual(coordinator.properties!.mode.enum, COORDINATOR_MODES, kind);
    assert.deepEqual(coordinator.properties!.podCIDRType.enum, POD_CIDR_TYPES, kind);
  }
});

Deno.test("coordinator podCIDRType, txQueueLen and vethMTU are checked", () => {
  for (const podCIDRType of ["auto", "cluster", "calico", "cilium", "none"]) {
    assert.equal(accepts("SpiderCoordinator", { spec: { podCIDRType } }), true, podCIDRType);
  }
  assert.equal(accepts("SpiderCoordinator", { spec: { podCIDRType: "flannel" } }), false);
  assert.equal(accepts("SpiderCoordinator", { spec: { txQueueLen: -1 } }), false);
  assert.equal(accepts("SpiderCoordinator", { spec: { vethMTU: 0 } }), false);
  assert.equal(accepts("SpiderCoordinator", { spec: { podRPFilter: -1 } }), true);
});

Deno.test("coordinator spec defaults to {} so that its field defaults apply", () => {
  const spec = rootSchema("SpiderCoordinator").properties!.spec;
  assert.deepEqual(spec.default, {});
  const defaults = Object.fromEntries(
    Object.entries(spec.properties!).filter(([, p]) => p.default !== undefined).map((
      [k, p],
    ) => [k, p.default]),
  );
  assert.deepEqual(defaults, {
    mode: "auto",
    tunePodRoutes: true,
    hostRuleTable: 500,
    podRPFilter: 0,
    txQueueLen: 0,
  });
});

Deno.test("multus config cniType is one of the spec's values and defaults to custom", () => {
  const cniType = rootSchema("SpiderMultusConfig").properties!.spec.properties!.cniType;
  assert.deepEqual(cniType.enum, [
    "macvlan",
    "ipvlan",
    "vlan",
    "sriov",
    "ovs",
    "ib-sriov",
    "ipoib",
    "custom",
  ]);
  assert.equal(cniType.default, "custom");
});

Deno.test("each CNI sub-config requires its master, resource name or bridge", () => {
  const cases: [string, unknown, unknown][] = [
    ["macvlan", { master: ["eth0"] }, {}],
    ["ipvlan", { master: ["eth0"] }, {}],
    ["vlan", { master: ["eth0"] }, { vlanID: 10 }],
    ["sriov", { resourceName: "r" }, {}],
    ["ibsriov", { resourceName: "r" }, {}],
    ["ipoib", { master: "ib0" }, {}],
    ["ovs", { bridge: "br1" }, {}],
  ];
  for (const [field, good, bad] of cases) {
    assert.equal(accepts("SpiderMultusConfig", { spec: { [field]: good } }), true, `${field} good`);
    assert.equal(accepts("SpiderMultusConfig", { spec: { [field]: bad } }), false, `${field} bad`);
  }
});

Deno.test("VLAN IDs range over 0 to 4094", () => {
  const at = (vlanID: number) => ({ spec: { macvlan: { master: ["eth0"], vlanID } } });
  assert.deepEqual([0, 4094, 4095, -1].map((v) => accepts("SpiderMultusConfig", at(v))), [
    true,
    true,
    false,
    false,
  ]);
  const trunk = (id: number) => ({ spec: { ovs: { bridge: "br1", trunk: [{ id }] } } });
  assert.deepEqual([4094, 4095].map((v) => accepts("SpiderMultusConfig", trunk(v))), [true, false]);
});

Deno.test("MTU cannot be negative and bond mode ranges over 0 to 6", () => {
  const macvlan = (extra: object) => ({ spec: { macvlan: { master: ["a", "b"], ...extra } } });
  assert.equal(accepts("SpiderMultusConfig", macvlan({ mtu: -1 })), false);
  assert.equal(accepts("SpiderMultusConfig", macvlan({ bond: { name: "bond0", mode: 6 } })), true);
  assert.equal(accepts("SpiderMultusConfig", macvlan({ bond: { name: "bond0", mode: 7 } })), false);
  assert.equal(accepts("SpiderMultusConfig", macvlan({ bond: { mode: 1 } })), false);
});

Deno.test("vlanMode and linkState take only their listed values", () => {
  const vlan = (vlanMode: string) => ({ spec: { vlan: { master: ["eth0"], vlanMode } } });
  assert.deepEqual(["manual", "auto", "trunk"].map((m) => accepts("SpiderMultusConfig", vlan(m))), [
    true,
    true,
    false,
  ]);
  const ib = (linkState: string) => ({ spec: { ibsriov: { resourceName: "r", linkState } } });
  assert.deepEqual(
    ["auto", "enable", "disable", "up"].map((s) => accepts("SpiderMultusConfig", ib(s))),
    [true, true, true, false],
  );
});

Deno.test("label selector expressions need a key and an operator", () => {
  const pool = (podAffinity: unknown) => ({ spec: { subnet: "x", podAffinity } });
  assert.equal(
    accepts("SpiderIPPool", pool({ matchExpressions: [{ key: "app", operator: "Exists" }] })),
    true,
  );
  assert.equal(accepts("SpiderIPPool", pool({ matchExpressions: [{ key: "app" }] })), false);
  assert.equal(accepts("SpiderIPPool", pool({ matchLabels: { app: 1 } })), false);
});
