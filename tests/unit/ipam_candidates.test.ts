import assert from "node:assert/strict";
import { AnnotationError } from "../../src/api/annotations.ts";
import type { SpiderIPPool } from "../../src/api/types.ts";
import {
  type CandidateInput,
  expandPoolNames,
  type PoolCandidates,
  poolCandidates,
  PoolSelectionError,
} from "../../src/ipam/mod.ts";

const pool = (name: string, family: 4 | 6, spec: Partial<SpiderIPPool["spec"]> = {}): SpiderIPPool => ({
  metadata: { name },
  spec: { ipVersion: family, subnet: family === 4 ? "192.0.2.0/24" : "2001:db8::/64", ...spec },
});

const POOLS = [
  pool("v4-a", 4),
  pool("v4-b", 4),
  pool("v4-c", 4, { default: true }),
  pool("v6-a", 6),
  pool("v6-b", 6, { default: true }),
  pool("other", 4),
];

const ALL = {
  enableIPv4: true,
  enableIPv6: true,
  enableSpiderSubnet: true,
  enableAutoPoolForApplication: true,
};

function input(
  o: {
    pod?: Record<string, string>;
    ns?: Record<string, string>;
    cni?: [string[], string[]];
    ifName?: string;
  } = {},
): CandidateInput {
  return {
    pod: { name: "web-0", namespace: "default", uid: "u1", annotations: o.pod ?? {}, nodeName: "node-1" },
    namespace: { name: "default", annotations: o.ns ?? {} },
    ifName: o.ifName ?? "eth0",
    cniDefaults: { ipv4: o.cni?.[0] ?? [], ipv6: o.cni?.[1] ?? [], cleanGateway: false },
    pools: POOLS,
    flags: ALL,
    top: { apiVersion: "apps/v1", kind: "Deployment", name: "web", namespace: "default", uid: "d1" },
  };
}

const pools = (c: ReturnType<typeof poolCandidates>) => c as PoolCandidates;

const IPPOOLS = "ipam.spidernet.io/ippools";
const IPPOOL = "ipam.spidernet.io/ippool";
const NS4 = "ipam.spidernet.io/default-ipv4-ippool";
const NS6 = "ipam.spidernet.io/default-ipv6-ippool";
const SUBNET = "ipam.spidernet.io/subnet";
const SUBNETS = "ipam.spidernet.io/subnets";

// Each row: every source from the row's level down is present; the first must win entirely.
Deno.test("candidate sources: the first present source wins entirely over all lower ones", () => {
  const ippools = `[{"interface":"eth0","ipv4":["v4-a"]}]`;
  const ippool = `{"ipv4":["v4-b"]}`;
  const ns = { [NS4]: `["other"]` };
  const cni: [string[], string[]] = [["v4-c"], []];
  const rows: [string, ReturnType<typeof input>, string, string[], string[]][] = [
    ["ippools over ippool", input({ pod: { [IPPOOLS]: ippools, [IPPOOL]: ippool }, ns, cni }), "ippools", [
      "v4-a",
    ], []],
    ["ippool over namespace", input({ pod: { [IPPOOL]: ippool }, ns, cni }), "ippool", ["v4-b"], []],
    ["namespace over CNI config", input({ ns, cni }), "namespace", ["other"], []],
    ["CNI config over default pools", input({ cni }), "cni", ["v4-c"], []],
    ["default pools last", input(), "default", ["v4-c"], ["v6-b"]],
  ];
  for (const [name, inp, source, v4, v6] of rows) {
    const c = pools(poolCandidates(inp));
    assert.equal(c.kind, "pools", name);
    assert.equal(c.source, source, name);
    assert.deepEqual(c.nics.map((n) => [n.nic, n.ipv4, n.ipv6]), [["eth0", v4, v6]], name);
  }
});

Deno.test("candidate sources: a namespace default for one family wins even though the other family is empty", () => {
  const c = pools(poolCandidates(input({ ns: { [NS6]: `["v6-a"]` }, cni: [["v4-c"], []] })));
  assert.equal(c.source, "namespace");
  assert.deepEqual([c.nics[0].ipv4, c.nics[0].ipv6], [[], ["v6-a"]]);
});

Deno.test("candidate sources: subnet annotations win over ippools when auto-pools are enabled", () => {
  const c = poolCandidates(input({
    pod: { [SUBNET]: `{"ipv4":["subnet-a"]}`, [IPPOOLS]: `[{"interface":"eth0","ipv4":["v4-a"]}]` },
  }));
  assert.equal(c.kind, "subnet");
  if (c.kind !== "subnet") return;
  assert.equal(c.annotation, SUBNET);
  assert.deepEqual(c.subnet, { interface: "eth0", ipv4: "subnet-a" });
});

Deno.test("candidate sources: subnets wins over subnet and picks the item of the NIC", () => {
  const c = poolCandidates(input({
    ifName: "net1",
    pod: {
      [SUBNET]: `{"ipv4":["subnet-a"]}`,
      [SUBNETS]: `[{"interface":"eth0","ipv4":["subnet-a"]},{"interface":"net1","ipv6":["subnet-b"]}]`,
    },
  }));
  assert.equal(c.kind === "subnet" && c.annotation, SUBNETS);
  assert.deepEqual(c.kind === "subnet" && c.subnet, { interface: "net1", ipv6: "subnet-b" });
});

Deno.test("candidate sources: subnet annotations are an error when auto-pools are disabled", () => {
  const inp = { ...input({ pod: { [SUBNET]: `{"ipv4":["subnet-a"]}` } }) };
  inp.flags = { ...ALL, enableAutoPoolForApplication: false };
  assert.throws(() => poolCandidates(inp), (e: unknown) => {
    assert.ok(e instanceof PoolSelectionError);
    assert.equal(e.source, SUBNET);
    assert.match(e.message, /enableAutoPoolForApplication/);
    return true;
  });
});

Deno.test("candidate sources: subnet annotations are ignored when SpiderSubnet is disabled", () => {
  const inp = input({ pod: { [SUBNET]: `{"ipv4":["subnet-a"]}`, [IPPOOL]: `{"ipv4":["v4-a"]}` } });
  inp.flags = { ...ALL, enableSpiderSubnet: false };
  assert.equal(pools(poolCandidates(inp)).source, "ippool");
});

Deno.test("candidate sources: orphan pods may not use subnet annotations", () => {
  const inp = input({ pod: { [SUBNET]: `{"ipv4":["subnet-a"]}` } });
  inp.top = { apiVersion: "v1", kind: "Pod", name: "web-0", namespace: "default", uid: "u1" };
  assert.throws(() => poolCandidates(inp), /needs a controller/);
});

Deno.test("candidate sources: no source and no default pool is the upstream error", () => {
  const inp = input();
  inp.pools = POOLS.filter((p) => !p.spec.default);
  assert.throws(
    () => poolCandidates(inp),
    /^PoolSelectionError: no IPPool available, no pool selection rules of any type are specified/,
  );
});

Deno.test("ippools: every listed NIC is a candidate, with per-item cleangateway over the CNI default", () => {
  const c = pools(poolCandidates(input({
    ifName: "net1",
    pod: {
      [IPPOOLS]:
        `[{"interface":"eth0","ipv4":["v4-a"],"cleangateway":true},{"interface":"net1","ipv4":["v4-b"],"ipv6":["v6-a"]}]`,
    },
  })));
  assert.equal(c.noNameMode, false);
  assert.deepEqual(c.nics, [
    { nic: "eth0", index: 0, ipv4: ["v4-a"], ipv6: [], cleanGateway: true },
    { nic: "net1", index: 1, ipv4: ["v4-b"], ipv6: ["v6-a"], cleanGateway: false },
  ]);
});

Deno.test("ippools: the current NIC must be listed when items name interfaces", () => {
  const inp = input({ ifName: "net2", pod: { [IPPOOLS]: `[{"interface":"eth0","ipv4":["v4-a"]}]` } });
  assert.throws(() => poolCandidates(inp), (e: unknown) => {
    assert.ok(e instanceof PoolSelectionError);
    assert.equal(e.source, IPPOOLS);
    assert.match(e.message, /no item for interface "net2"/);
    return true;
  });
});

Deno.test("ippools: no-name mode orders NICs by index, the first is eth0 and the others unnamed", () => {
  const c = pools(poolCandidates(input({ pod: { [IPPOOLS]: `[{"ipv4":["v4-a"]},{"ipv4":["v4-b"]}]` } })));
  assert.equal(c.noNameMode, true);
  assert.deepEqual(c.nics.map((n) => [n.nic, n.index, n.ipv4]), [["eth0", 0, ["v4-a"]], ["", 1, ["v4-b"]]]);
});

Deno.test("ippools: a malformed annotation is an AnnotationError naming the key", () => {
  assert.throws(
    () => poolCandidates(input({ pod: { [IPPOOLS]: `{"ipv4":["v4-a"]}` } })),
    (e: unknown) => e instanceof AnnotationError && e.key === IPPOOLS,
  );
});

Deno.test("globs expand against pools of the family, sorted by name, in place of the pattern", () => {
  const c = pools(poolCandidates(input({ pod: { [IPPOOL]: `{"ipv4":["v4-*"],"ipv6":["v6-?"]}` } })));
  assert.deepEqual(c.nics[0].ipv4, ["v4-a", "v4-b", "v4-c"]);
  assert.deepEqual(c.nics[0].ipv6, ["v6-a", "v6-b"]);
});

Deno.test("globs: a pool named explicitly keeps its place and is not repeated by a glob", () => {
  assert.deepEqual(expandPoolNames(["v4-b", "v4-[a-c]", "other"], 4, POOLS, IPPOOL), [
    "v4-b",
    "v4-a",
    "v4-c",
    "other",
  ]);
});

Deno.test("globs: a pattern matching no pool contributes nothing, as upstream", () => {
  assert.deepEqual(expandPoolNames(["v6-*", "v4-a"], 4, POOLS, IPPOOL), ["v4-a"]);
});

Deno.test("globs: a NIC left with no pool because patterns match nothing is an error naming them", () => {
  assert.throws(
    () => poolCandidates(input({ pod: { [IPPOOL]: `{"ipv4":["blue-*"]}` } })),
    /pattern "blue-\*" matches no SpiderIPPool/,
  );
});

Deno.test("a pool listed twice for one family is a wrong-input error", () => {
  assert.throws(
    () => poolCandidates(input({ pod: { [IPPOOL]: `{"ipv4":["v4-a","v4-a"]}` } })),
    /lists SpiderIPPool "v4-a" twice/,
  );
});

Deno.test("disabled families are dropped silently; a NIC left with nothing is an error", () => {
  const inp = input({ pod: { [IPPOOL]: `{"ipv4":["v4-a"],"ipv6":["v6-a"]}` } });
  inp.flags = { ...ALL, enableIPv6: false };
  assert.deepEqual(pools(poolCandidates(inp)).nics[0].ipv6, []);
  const only6 = input({ pod: { [IPPOOL]: `{"ipv6":["v6-a"]}` } });
  only6.flags = { ...ALL, enableIPv6: false };
  assert.throws(() => poolCandidates(only6), /names no pool of an enabled family \(enabled: IPv4\)/);
});

Deno.test("CNI config defaults carry the config's clean_gateway", () => {
  const inp = input({ cni: [["v4-a"], []] });
  inp.cniDefaults = { ...inp.cniDefaults, cleanGateway: true };
  assert.equal(pools(poolCandidates(inp)).nics[0].cleanGateway, true);
});

Deno.test("default pools: only spec.default pools, per family, sorted by name", () => {
  const inp = input();
  inp.pools = [...POOLS, pool("v4-0", 4, { default: true })];
  const c = pools(poolCandidates(inp));
  assert.deepEqual([c.nics[0].ipv4, c.nics[0].ipv6], [["v4-0", "v4-c"], ["v6-b"]]);
});
