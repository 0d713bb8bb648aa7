import assert from "node:assert/strict";
import {
  AnnotationError,
  globMatch,
  parseDefaultRouteNIC,
  parseGoBool,
  parseIPPoolAnnotation,
  parseIPPoolsAnnotation,
  parseMultusDefaultNetwork,
  parseMultusNetworks,
  parseNamespaceDefaultPools,
  parsePoolIPNumber,
  parsePoolReclaim,
  parseRoutesAnnotation,
  parseSubnetAnnotation,
  parseSubnetsAnnotation,
  poolNameProblem,
} from "../../src/api/annotations.ts";
import { ANNOTATION } from "../../src/api/constants.ts";

Deno.test("ippool annotation gives the pools of each family", () => {
  assert.deepEqual(parseIPPoolAnnotation('{"ipv4":["v4-a","v4-b"],"ipv6":["v6-a"]}'), {
    ipv4: ["v4-a", "v4-b"],
    ipv6: ["v6-a"],
  });
});

Deno.test("ippool annotation with one family leaves the other empty", () => {
  assert.deepEqual(parseIPPoolAnnotation('{"ipv4":["v4-a"]}'), { ipv4: ["v4-a"], ipv6: [] });
});

Deno.test("ippool annotation accepts glob pool names", () => {
  assert.deepEqual(parseIPPoolAnnotation('{"ipv4":["v4-*","pool-?","rack[0-9]"]}').ipv4, [
    "v4-*",
    "pool-?",
    "rack[0-9]",
  ]);
});

Deno.test("ippool annotation ignores unknown members such as the old interface key", () => {
  assert.deepEqual(parseIPPoolAnnotation('{"interface":"eth0","ipv4":["v4-a"]}'), {
    ipv4: ["v4-a"],
    ipv6: [],
  });
});

Deno.test("ippools annotation with interfaces is in named mode", () => {
  const got = parseIPPoolsAnnotation(
    '[{"interface":"eth0","ipv4":["v4-a"]},{"interface":"net1","ipv6":["v6-b"],"cleangateway":true}]',
  );
  assert.deepEqual(got, {
    named: true,
    items: [
      { interface: "eth0", ipv4: ["v4-a"], ipv6: [] },
      { interface: "net1", ipv4: [], ipv6: ["v6-b"], cleanGateway: true },
    ],
  });
});

Deno.test("ippools annotation without interfaces is in no-name mode, in NIC order", () => {
  const got = parseIPPoolsAnnotation('[{"ipv4":["v4-a"]},{"ipv4":["v4-b"]}]');
  assert.equal(got.named, false);
  assert.deepEqual(got.items.map((i) => i.ipv4), [["v4-a"], ["v4-b"]]);
  assert.equal(got.items[0].interface, undefined);
});

Deno.test("ippools annotation leaves cleanGateway undefined when the item does not set it", () => {
  assert.equal(
    parseIPPoolsAnnotation('[{"interface":"eth0","ipv4":["a"]}]').items[0].cleanGateway,
    undefined,
  );
  assert.equal(
    parseIPPoolsAnnotation('[{"interface":"eth0","ipv4":["a"],"cleangateway":false}]').items[0].cleanGateway,
    false,
  );
});

Deno.test("subnet annotation defaults the interface to eth0 and keeps the first subnet per family", () => {
  assert.deepEqual(parseSubnetAnnotation('{"ipv4":["s4-a","s4-b"],"ipv6":["s6-a"]}'), {
    interface: "eth0",
    ipv4: "s4-a",
    ipv6: "s6-a",
  });
});

Deno.test("subnet annotation keeps a given interface", () => {
  assert.deepEqual(parseSubnetAnnotation('{"interface":"net1","ipv6":["s6-a"]}'), {
    interface: "net1",
    ipv6: "s6-a",
  });
});

Deno.test("subnets annotation gives one source per interface", () => {
  assert.deepEqual(
    parseSubnetsAnnotation('[{"interface":"eth0","ipv4":["s4-a"]},{"interface":"net1","ipv4":["s4-b"]}]'),
    [{ interface: "eth0", ipv4: "s4-a" }, { interface: "net1", ipv4: "s4-b" }],
  );
});

Deno.test("ippool-ip-number: N is a fixed size and +N is flexible", () => {
  const cases: [string, { flexible: boolean; n: number }][] = [
    ["5", { flexible: false, n: 5 }],
    ["0", { flexible: false, n: 0 }],
    ["+0", { flexible: true, n: 0 }],
    ["+2", { flexible: true, n: 2 }],
    ["05", { flexible: false, n: 5 }],
  ];
  for (const [value, want] of cases) assert.deepEqual(parsePoolIPNumber(value), want, value);
});

Deno.test("ippool-reclaim follows Go strconv.ParseBool", () => {
  for (const v of ["1", "t", "T", "TRUE", "true", "True"]) assert.equal(parsePoolReclaim(v), true, v);
  for (const v of ["0", "f", "F", "FALSE", "false", "False"]) assert.equal(parsePoolReclaim(v), false, v);
  for (const v of ["yes", "tRUE", "", " true", "2"]) assert.equal(parseGoBool(v), undefined, v);
});

Deno.test("routes annotation returns canonical dst and gw", () => {
  assert.deepEqual(
    parseRoutesAnnotation(
      '[{"dst":"198.51.100.0/24","gw":"192.0.2.1"},{"dst":"2001:db8:1:0::/64","gw":"2001:DB8::1"}]',
    ),
    [{ dst: "198.51.100.0/24", gw: "192.0.2.1" }, { dst: "2001:db8:1::/64", gw: "2001:db8::1" }],
  );
});

Deno.test("routes annotation may be an empty list", () => {
  assert.deepEqual(parseRoutesAnnotation("[]"), []);
});

Deno.test("default-route-nic is the NIC name", () => {
  assert.equal(parseDefaultRouteNIC("net1"), "net1");
});

Deno.test("namespace default pool annotations are JSON lists of names or globs", () => {
  assert.deepEqual(parseNamespaceDefaultPools(ANNOTATION.defaultIPv4IPPool, '["v4-a","v4-*"]'), [
    "v4-a",
    "v4-*",
  ]);
  assert.deepEqual(parseNamespaceDefaultPools(ANNOTATION.defaultIPv6IPPool, "[]"), []);
});

Deno.test("multus networks: comma list gets net1, net2... unless @ifname is given", () => {
  const got = parseMultusNetworks("macvlan-a, kube-system/sriov-b@ens1 ,ns-c/ipvlan-c", "team-a");
  assert.deepEqual(got.map((n) => [n.namespace, n.name, n.interface, n.interfaceRequested]), [
    ["team-a", "macvlan-a", "net1", false],
    ["kube-system", "sriov-b", "ens1", true],
    ["ns-c", "ipvlan-c", "net3", false],
  ]);
});

Deno.test("multus networks: JSON list with interface and namespace", () => {
  const got = parseMultusNetworks(
    '[{"name":"macvlan-a","interface":"eth9"},{"name":"sriov-b","namespace":"kube-system","ips":["192.0.2.9/24"]}]',
    "team-a",
  );
  assert.deepEqual(got.map((n) => [n.namespace, n.name, n.interface]), [
    ["team-a", "macvlan-a", "eth9"],
    ["kube-system", "sriov-b", "net2"],
  ]);
  assert.deepEqual(got[1].raw?.ips, ["192.0.2.9/24"]);
});

Deno.test("multus default network is eth0 and takes the given default namespace", () => {
  const got = parseMultusDefaultNetwork("calico", "spiderpool");
  assert.deepEqual([got.namespace, got.name, got.interface], ["spiderpool", "calico", "eth0"]);
  const json = parseMultusDefaultNetwork('[{"name":"macvlan-a","namespace":"kube-system"}]', "spiderpool");
  assert.deepEqual([json.namespace, json.name, json.interface], ["kube-system", "macvlan-a", "eth0"]);
});

Deno.test("globMatch follows Go path.Match", () => {
  const cases: [string, string, boolean][] = [
    ["v4-*", "v4-blue", true],
    ["v4-*", "v4-", true],
    ["v4-*", "v6-blue", false],
    ["*", "anything", true],
    ["pool-?", "pool-a", true],
    ["pool-?", "pool-ab", false],
    ["rack[0-9]", "rack7", true],
    ["rack[0-9]", "rackx", false],
    ["rack[^0-9]", "rackx", true],
    ["rack[^0-9]", "rack7", false],
    ["a\\*b", "a*b", true],
    ["a\\*b", "axb", false],
    ["*-v4-*", "blue-v4-pool", true],
    ["a*b*c", "abc", true],
    ["a*b*c", "axbyc", true],
    ["a*b*c", "axbyd", false],
    ["exact", "exact", true],
    ["exact", "exactly", false],
    ["[", "[", false],
    ["a[", "a", false],
  ];
  for (const [pattern, name, want] of cases) {
    assert.equal(globMatch(pattern, name), want, `${pattern} ~ ${name}`);
  }
});

Deno.test("pool names: Kubernetes names and valid globs are accepted", () => {
  for (const n of ["v4-a", "pool.1", "a", "v4-*", "[ab]-pool", "p?"]) {
    assert.equal(poolNameProblem(n), undefined, n);
  }
});

Deno.test("AnnotationError carries the key and the value", () => {
  assert.throws(
    () => parseIPPoolAnnotation("{"),
    (e) => e instanceof AnnotationError && e.key === ANNOTATION.ippool && e.value === "{",
  );
});
