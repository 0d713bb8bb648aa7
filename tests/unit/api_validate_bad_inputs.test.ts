// A corpus of bad CRD objects. Each must be rejected with an error at the expected field whose message names
// the object (`Kind "name": `), the field, and what to do. Objects go through defaulting first, as in the
// webhooks.

import assert from "node:assert/strict";
import {
  defaultCoordinator,
  defaultIPPool,
  defaultMultusConfig,
  defaultReservedIP,
  defaultSubnet,
} from "../../src/api/defaults.ts";
import type {
  CoordinatorSpec,
  IPPoolSpec,
  MultusCNIConfigSpec,
  ReservedIPSpec,
  SpiderIPPool,
  SubnetSpec,
} from "../../src/api/types.ts";
import type { FieldError } from "../../src/api/validate/common.ts";
import { validateCoordinator } from "../../src/api/validate/coordinator.ts";
import { validateIPPool } from "../../src/api/validate/ippool.ts";
import { validateMultusConfig } from "../../src/api/validate/multusconfig.ts";
import { validateReservedIP } from "../../src/api/validate/reservedip.ts";
import { validateSubnet } from "../../src/api/validate/subnet.ts";

const flags = { enableIPv4: true, enableIPv6: true, enableSpiderSubnet: false };

function ippool(spec: Partial<IPPoolSpec>, pools: SpiderIPPool[] = []): FieldError[] {
  const p = defaultIPPool(
    { metadata: { name: "v4-a" }, spec: { subnet: "192.0.2.0/24", ...spec } as IPPoolSpec },
    { enableSpiderSubnet: false, subnets: [] },
  );
  return validateIPPool(p, undefined, { ...flags, pools });
}

function subnet(spec: Partial<SubnetSpec>): FieldError[] {
  const s = defaultSubnet({
    metadata: { name: "subnet-a" },
    spec: { subnet: "192.0.2.0/24", ...spec } as SubnetSpec,
  });
  return validateSubnet(s, undefined, { ...flags, subnets: [], pools: [] });
}

function reserved(spec: Partial<ReservedIPSpec>, f = flags): FieldError[] {
  return validateReservedIP(
    defaultReservedIP({ metadata: { name: "rsv" }, spec: spec as ReservedIPSpec }),
    undefined,
    f,
  );
}

function coordinator(spec: CoordinatorSpec): FieldError[] {
  return validateCoordinator(
    defaultCoordinator({ metadata: { name: "default" }, spec: { podCIDRType: "auto", ...spec } }),
  );
}

function multus(spec: MultusCNIConfigSpec, annotations?: Record<string, string>): FieldError[] {
  return validateMultusConfig(
    defaultMultusConfig({ metadata: { name: "smc-a", namespace: "kube-system", annotations }, spec }),
  );
}

const v4b: SpiderIPPool = {
  metadata: { name: "v4-b" },
  spec: { subnet: "192.0.2.0/24", ipVersion: 4, ips: ["192.0.2.50-192.0.2.60"] },
};

/** [behaviour, errors, subject, path, fragments] */
const CORPUS: [string, () => FieldError[], string, string, string[]][] = [
  // SpiderIPPool
  ["pool without subnet", () => ippool({ subnet: "" }), 'SpiderIPPool "v4-a"', "spec.subnet", [
    "spec.subnet is required",
    "CIDR form",
  ]],
  [
    "pool subnet with host bits",
    () => ippool({ subnet: "192.0.2.1/24" }),
    'SpiderIPPool "v4-a"',
    "spec.subnet",
    ["host bits", '"192.0.2.0/24"'],
  ],
  [
    "pool subnet that is not a CIDR",
    () => ippool({ subnet: "192.0.2.0" }),
    'SpiderIPPool "v4-a"',
    "spec.subnet",
    ['missing "/prefix"'],
  ],
  [
    "pool ipVersion of the other family",
    () => ippool({ ipVersion: 6 }),
    'SpiderIPPool "v4-a"',
    "spec.ipVersion",
    ["does not match spec.subnet", "set spec.ipVersion to 4"],
  ],
  [
    "pool IP outside the subnet",
    () => ippool({ ips: ["192.0.2.10", "198.51.100.5"] }),
    'SpiderIPPool "v4-a"',
    "spec.ips[1]",
    ['spec.ips[1] "198.51.100.5" is outside spec.subnet "192.0.2.0/24"', "use addresses inside the subnet"],
  ],
  [
    "pool range crossing the subnet end",
    () => ippool({ ips: ["192.0.2.250-192.0.3.5"] }),
    'SpiderIPPool "v4-a"',
    "spec.ips[0]",
    ["is outside spec.subnet"],
  ],
  [
    "pool IPv6 address in an IPv4 pool",
    () => ippool({ ips: ["2001:db8::1"] }),
    'SpiderIPPool "v4-a"',
    "spec.ips[0]",
    ["is IPv6 but the object is IPv4", "use IPv4 addresses only"],
  ],
  ["pool malformed range", () => ippool({ ips: ["192.0.2.10-"] }), 'SpiderIPPool "v4-a"', "spec.ips[0]", [
    '"192.0.2.10-"',
  ]],
  [
    "pool reversed range",
    () => ippool({ ips: ["192.0.2.20-192.0.2.10"] }),
    'SpiderIPPool "v4-a"',
    "spec.ips[0]",
    ["after end", "192.0.2.10-192.0.2.20"],
  ],
  [
    "pool range with spaces",
    () => ippool({ ips: ["192.0.2.1 - 192.0.2.5"] }),
    'SpiderIPPool "v4-a"',
    "spec.ips[0]",
    ['"192.0.2.1 - 192.0.2.5"'],
  ],
  [
    "pool excludeIPs outside the subnet",
    () => ippool({ excludeIPs: ["203.0.113.1"] }),
    'SpiderIPPool "v4-a"',
    "spec.excludeIPs[0]",
    ["is outside spec.subnet"],
  ],
  [
    "pool gateway outside the subnet",
    () => ippool({ gateway: "198.51.100.1" }),
    'SpiderIPPool "v4-a"',
    "spec.gateway",
    ['spec.gateway "198.51.100.1" is outside spec.subnet'],
  ],
  [
    "pool gateway that is not an IP",
    () => ippool({ gateway: "router" }),
    'SpiderIPPool "v4-a"',
    "spec.gateway",
    ['"router"'],
  ],
  [
    "pool gateway of the other family",
    () => ippool({ gateway: "2001:db8::1" }),
    'SpiderIPPool "v4-a"',
    "spec.gateway",
    ["is IPv6; use an IPv4 address"],
  ],
  [
    "pool gateway handed out by ips",
    () => ippool({ ips: ["192.0.2.1-192.0.2.10"], gateway: "192.0.2.1" }),
    'SpiderIPPool "v4-a"',
    "spec.gateway",
    ["also in spec.ips", "add it to spec.excludeIPs"],
  ],
  [
    "pool route to the IPv4 default",
    () => ippool({ routes: [{ dst: "0.0.0.0/0", gw: "192.0.2.1" }] }),
    'SpiderIPPool "v4-a"',
    "spec.routes[0].dst",
    ["is the default route", "set spec.gateway instead"],
  ],
  [
    "pool route of the other family",
    () => ippool({ routes: [{ dst: "2001:db8::/64", gw: "192.0.2.1" }] }),
    'SpiderIPPool "v4-a"',
    "spec.routes[0].dst",
    ["is IPv6; use an IPv4 CIDR"],
  ],
  [
    "pool route dst prefix too long",
    () => ippool({ routes: [{ dst: "198.51.100.0/33", gw: "192.0.2.1" }] }),
    'SpiderIPPool "v4-a"',
    "spec.routes[0].dst",
    ['prefix length "33" is not valid', "0-32"],
  ],
  [
    "pool duplicate route dst",
    () =>
      ippool({
        routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.1" }, { dst: "198.51.100.0/24", gw: "192.0.2.2" }],
      }),
    'SpiderIPPool "v4-a"',
    "spec.routes[1].dst",
    ["duplicates spec.routes[0].dst", "one route per destination"],
  ],
  [
    "pool route gw outside the subnet",
    () => ippool({ routes: [{ dst: "198.51.100.0/24", gw: "203.0.113.1" }] }),
    'SpiderIPPool "v4-a"',
    "spec.routes[0].gw",
    ["is outside spec.subnet", "reach directly"],
  ],
  [
    "pool route without gw",
    () => ippool({ routes: [{ dst: "198.51.100.0/24", gw: "" }] }),
    'SpiderIPPool "v4-a"',
    "spec.routes[0].gw",
    ["spec.routes[0].gw is required"],
  ],
  ["pool empty podAffinity", () => ippool({ podAffinity: {} }), 'SpiderIPPool "v4-a"', "spec.podAffinity", [
    "spec.podAffinity is empty",
    "give matchLabels or matchExpressions",
  ]],
  [
    "pool podAffinity In without values",
    () => ippool({ podAffinity: { matchExpressions: [{ key: "app", operator: "In", values: [] }] } }),
    'SpiderIPPool "v4-a"',
    "spec.podAffinity.matchExpressions[0].values",
    ["operator In needs at least one value"],
  ],
  [
    "pool nodeAffinity with a bad key",
    () => ippool({ nodeAffinity: { matchLabels: { "-bad": "x" } } }),
    'SpiderIPPool "v4-a"',
    "spec.nodeAffinity.matchLabels",
    ['label key "-bad" is invalid'],
  ],
  [
    "pool bad namespace name",
    () => ippool({ namespaceName: ["Team_A"] }),
    'SpiderIPPool "v4-a"',
    "spec.namespaceName[0]",
    ['"Team_A" is not a namespace name'],
  ],
  [
    "pool bad multusName",
    () => ippool({ multusName: ["a/b/c"] }),
    'SpiderIPPool "v4-a"',
    "spec.multusName[0]",
    ['use "namespace/name" or "name"'],
  ],
  [
    "pool ips overlapping another pool",
    () => ippool({ ips: ["192.0.2.55-192.0.2.70"] }, [v4b]),
    'SpiderIPPool "v4-a"',
    "spec.ips",
    ['overlaps SpiderIPPool "v4-b" at 192.0.2.55-192.0.2.60'],
  ],
  [
    "pool subnet not written canonically (validated without defaulting)",
    () =>
      validateIPPool(
        { metadata: { name: "v6-a" }, spec: { subnet: "2001:DB8::/64", ipVersion: 6 } },
        undefined,
        {
          ...flags,
          pools: [],
        },
      ),
    'SpiderIPPool "v6-a"',
    "spec.subnet",
    ['"2001:DB8::/64" is not written canonically; write it as "2001:db8::/64"'],
  ],
  // SpiderSubnet
  [
    "subnet with host bits",
    () => subnet({ subnet: "192.0.2.128/16" }),
    'SpiderSubnet "subnet-a"',
    "spec.subnet",
    ["host bits", '"192.0.0.0/16"'],
  ],
  [
    "subnet IP outside its CIDR",
    () => subnet({ ips: ["198.51.100.1"] }),
    'SpiderSubnet "subnet-a"',
    "spec.ips[0]",
    ["is outside spec.subnet"],
  ],
  [
    "subnet route to the IPv6 default",
    () => subnet({ subnet: "2001:db8::/64", routes: [{ dst: "::/0", gw: "2001:db8::1" }] }),
    'SpiderSubnet "subnet-a"',
    "spec.routes[0].dst",
    ["is the default route"],
  ],
  [
    "subnet gateway outside its CIDR",
    () => subnet({ gateway: "203.0.113.1" }),
    'SpiderSubnet "subnet-a"',
    "spec.gateway",
    ["is outside spec.subnet"],
  ],
  // SpiderReservedIP
  ["reserved IP without ips", () => reserved({ ips: [] }), 'SpiderReservedIP "rsv"', "spec.ips", [
    "spec.ips is empty",
    "list the addresses to reserve",
  ]],
  [
    "reserved IP mixing families",
    () => reserved({ ips: ["192.0.2.1", "2001:db8::1"] }),
    'SpiderReservedIP "rsv"',
    "spec.ips[1]",
    ["is IPv6 but the object is IPv4"],
  ],
  [
    "reserved IP with a CIDR",
    () => reserved({ ips: ["192.0.2.0/24"] }),
    'SpiderReservedIP "rsv"',
    "spec.ips[0]",
    ['"192.0.2.0/24"'],
  ],
  [
    "reserved IP ipVersion not matching ips[0]",
    () => reserved({ ipVersion: 6, ips: ["192.0.2.1"] }),
    'SpiderReservedIP "rsv"',
    "spec.ipVersion",
    ['does not match spec.ips[0] "192.0.2.1"'],
  ],
  [
    "reserved IP of a disabled family",
    () => reserved({ ips: ["192.0.2.1"] }, { ...flags, enableIPv4: false }),
    'SpiderReservedIP "rsv"',
    "spec.ipVersion",
    ["IPv4 is disabled"],
  ],
  // SpiderCoordinator
  [
    "coordinator without podCIDRType",
    () => validateCoordinator(defaultCoordinator({ metadata: { name: "default" }, spec: {} })),
    'SpiderCoordinator "default"',
    "spec.podCIDRType",
    ["spec.podCIDRType is required", "auto, cluster, calico, cilium or none"],
  ],
  [
    "coordinator unknown mode",
    () => coordinator({ mode: "bridge" as "auto" }),
    'SpiderCoordinator "default"',
    "spec.mode",
    ['"bridge" is not a coordinator mode'],
  ],
  [
    "coordinator unknown podCIDRType",
    () => coordinator({ podCIDRType: "flannel" as "auto" }),
    'SpiderCoordinator "default"',
    "spec.podCIDRType",
    ['"flannel" is not supported'],
  ],
  [
    "coordinator multicast MAC prefix",
    () => coordinator({ podMACPrefix: "01:02" }),
    'SpiderCoordinator "default"',
    "spec.podMACPrefix",
    ["multicast prefix", '"00:02"'],
  ],
  [
    "coordinator MAC prefix of three bytes",
    () => coordinator({ podMACPrefix: "0a:1b:2c" }),
    'SpiderCoordinator "default"',
    "spec.podMACPrefix",
    ['use the form "0a:1b"'],
  ],
  [
    "coordinator MAC prefix with dashes",
    () => coordinator({ podMACPrefix: "0a-1b" }),
    'SpiderCoordinator "default"',
    "spec.podMACPrefix",
    ["not two hex bytes"],
  ],
  [
    "coordinator rp_filter 3",
    () => coordinator({ podRPFilter: 3 }),
    'SpiderCoordinator "default"',
    "spec.podRPFilter",
    ["0 (off), 1 (strict), 2 (loose)"],
  ],
  [
    "coordinator negative txQueueLen",
    () => coordinator({ txQueueLen: -1 }),
    'SpiderCoordinator "default"',
    "spec.txQueueLen",
    ["out of range"],
  ],
  [
    "coordinator vethMTU 0",
    () => coordinator({ vethMTU: 0 }),
    'SpiderCoordinator "default"',
    "spec.vethMTU",
    ["an MTU from 1 to 65535"],
  ],
  [
    "coordinator vethLinkAddress not an IP",
    () => coordinator({ vethLinkAddress: "169.254.1" }),
    'SpiderCoordinator "default"',
    "spec.vethLinkAddress",
    ["or leave it empty"],
  ],
  [
    "coordinator hijackCIDR garbage",
    () => coordinator({ hijackCIDR: ["service-cidr"] }),
    'SpiderCoordinator "default"',
    "spec.hijackCIDR[0]",
    ['"service-cidr"'],
  ],
  [
    "coordinator policy route of mixed families",
    () => coordinator({ policyRoutes: [{ dst: "2001:db8::/64", gw: "192.0.2.1" }] }),
    'SpiderCoordinator "default"',
    "spec.policyRoutes[0].gw",
    ["use a gateway of the destination's family"],
  ],
  [
    "coordinator podDefaultRouteNIC invalid",
    () => coordinator({ podDefaultRouteNIC: "net 1" }),
    'SpiderCoordinator "default"',
    "spec.podDefaultRouteNIC",
    ["not a valid interface name"],
  ],
  // SpiderMultusConfig
  [
    "multus unknown cniType",
    () => multus({ cniType: "bridge" as "custom" }),
    'SpiderMultusConfig "smc-a"',
    "spec.cniType",
    ['"bridge" is not supported', "macvlan"],
  ],
  [
    "multus macvlan without its block",
    () => multus({ cniType: "macvlan" }),
    'SpiderMultusConfig "smc-a"',
    "spec.macvlan",
    ['spec.macvlan is required when spec.cniType is "macvlan"'],
  ],
  [
    "multus block of another cniType",
    () => multus({ cniType: "macvlan", macvlan: { master: ["ens192"] }, ipvlan: { master: ["ens192"] } }),
    'SpiderMultusConfig "smc-a"',
    "spec.ipvlan",
    ['spec.ipvlan is set but spec.cniType is "macvlan"', "remove spec.ipvlan or change spec.cniType"],
  ],
  [
    "multus custom with a macvlan block",
    () => multus({ macvlan: { master: ["ens192"] } }),
    'SpiderMultusConfig "smc-a"',
    "spec.macvlan",
    ['spec.cniType is "custom"'],
  ],
  [
    "multus macvlan with no master",
    () => multus({ cniType: "macvlan", macvlan: { master: [] } }),
    'SpiderMultusConfig "smc-a"',
    "spec.macvlan.master",
    ["name at least one host interface"],
  ],
  [
    "multus macvlan with an empty master name",
    () => multus({ cniType: "macvlan", macvlan: { master: [""] } }),
    'SpiderMultusConfig "smc-a"',
    "spec.macvlan.master[0]",
    ["not a valid interface name"],
  ],
  [
    "multus ipvlan with two masters and no bond",
    () => multus({ cniType: "ipvlan", ipvlan: { master: ["ens192", "ens224"] } }),
    'SpiderMultusConfig "smc-a"',
    "spec.ipvlan.bond",
    ["bond.name is required with 2 master interfaces"],
  ],
  [
    "multus bond mode 7",
    () => multus({ cniType: "macvlan", macvlan: { master: ["a", "b"], bond: { name: "bond0", mode: 7 } } }),
    'SpiderMultusConfig "smc-a"',
    "spec.macvlan.bond.mode",
    ["use 0 to 6"],
  ],
  [
    "multus macvlan vlanID 4095",
    () => multus({ cniType: "macvlan", macvlan: { master: ["ens192"], vlanID: 4095 } }),
    'SpiderMultusConfig "smc-a"',
    "spec.macvlan.vlanID",
    ["use 0 to 4094"],
  ],
  [
    "multus macvlan negative mtu",
    () => multus({ cniType: "macvlan", macvlan: { master: ["ens192"], mtu: -1 } }),
    'SpiderMultusConfig "smc-a"',
    "spec.macvlan.mtu",
    ["negative"],
  ],
  [
    "multus macvlan matchMasterSubnet",
    () =>
      multus({ cniType: "macvlan", macvlan: { master: ["ens192"], ippools: { matchMasterSubnet: true } } }),
    'SpiderMultusConfig "smc-a"',
    "spec.macvlan.ippools.matchMasterSubnet",
    ["only supported for cniType sriov"],
  ],
  [
    "multus macvlan bad pool name",
    () => multus({ cniType: "macvlan", macvlan: { master: ["ens192"], ippools: { ipv4: ["Pool_A"] } } }),
    'SpiderMultusConfig "smc-a"',
    "spec.macvlan.ippools.ipv4[0]",
    ['"Pool_A" is not a valid pool name'],
  ],
  [
    "multus vlan auto with vlanID",
    () => multus({ cniType: "vlan", vlan: { master: ["ens192"], vlanMode: "auto", vlanID: 10 } }),
    'SpiderMultusConfig "smc-a"',
    "spec.vlan.vlanID",
    ["must not be set with vlanMode auto"],
  ],
  [
    "multus sriov without resourceName",
    () => multus({ cniType: "sriov", sriov: {} as { resourceName: string } }),
    'SpiderMultusConfig "smc-a"',
    "spec.sriov.resourceName",
    ["spec.sriov.resourceName is required"],
  ],
  [
    "multus sriov min rate above max",
    () => multus({ cniType: "sriov", sriov: { resourceName: "r", minTxRateMbps: 100, maxTxRateMbps: 10 } }),
    'SpiderMultusConfig "smc-a"',
    "spec.sriov.minTxRateMbps",
    ["exceeds maxTxRateMbps 10"],
  ],
  [
    "multus ib-sriov without resourceName",
    () => multus({ cniType: "ib-sriov", ibsriov: { resourceName: "" } }),
    'SpiderMultusConfig "smc-a"',
    "spec.ibsriov.resourceName",
    ["is required"],
  ],
  [
    "multus ipoib without master",
    () => multus({ cniType: "ipoib", ipoib: {} as { master: string } }),
    'SpiderMultusConfig "smc-a"',
    "spec.ipoib.master",
    ["spec.ipoib.master is required"],
  ],
  [
    "multus ovs without bridge",
    () => multus({ cniType: "ovs", ovs: { bridge: "" } }),
    'SpiderMultusConfig "smc-a"',
    "spec.ovs.bridge",
    ["spec.ovs.bridge is required"],
  ],
  [
    "multus ovs trunk minID above maxID",
    () => multus({ cniType: "ovs", ovs: { bridge: "br1", trunk: [{ minID: 20, maxID: 10 }] } }),
    'SpiderMultusConfig "smc-a"',
    "spec.ovs.trunk[0]",
    ["minID 20 is greater than maxID 10"],
  ],
  [
    "multus ovs trunk id 4095",
    () => multus({ cniType: "ovs", ovs: { bridge: "br1", trunk: [{ id: 4095 }] } }),
    'SpiderMultusConfig "smc-a"',
    "spec.ovs.trunk[0].id",
    ["use 0 to 4094"],
  ],
  [
    "multus ovs matchMasterSubnet",
    () => multus({ cniType: "ovs", ovs: { bridge: "br1", ippools: { matchMasterSubnet: true } } }),
    'SpiderMultusConfig "smc-a"',
    "spec.ovs.ippools.matchMasterSubnet",
    ["only supported for cniType sriov"],
  ],
  [
    "multus custom CNI that is not JSON",
    () => multus({ cniType: "custom", customCNI: "{type: macvlan}" }),
    'SpiderMultusConfig "smc-a"',
    "spec.customCNI",
    ["is not valid JSON"],
  ],
  [
    "multus custom CNI that is a list",
    () => multus({ customCNI: "[]" }),
    'SpiderMultusConfig "smc-a"',
    "spec.customCNI",
    ["must be a JSON object"],
  ],
  [
    "multus chained plugin that is not JSON",
    () => multus({ cniType: "ovs", ovs: { bridge: "br1" }, chainCNIJsonData: ["tuning"] }),
    'SpiderMultusConfig "smc-a"',
    "spec.chainCNIJsonData[0]",
    ["is not valid JSON"],
  ],
  [
    "multus chained plugin without type",
    () => multus({ cniType: "ovs", ovs: { bridge: "br1" }, chainCNIJsonData: ['{"mtu":9000}'] }),
    'SpiderMultusConfig "smc-a"',
    "spec.chainCNIJsonData[0]",
    ['has no "type"'],
  ],
  [
    "multus coordinator with multicast MAC prefix",
    () =>
      multus({ cniType: "macvlan", macvlan: { master: ["ens192"] }, coordinator: { podMACPrefix: "ff:00" } }),
    'SpiderMultusConfig "smc-a"',
    "spec.coordinator.podMACPrefix",
    ["multicast prefix"],
  ],
  [
    "multus cr-name that is not a DNS name",
    () => multus({}, { "multus.spidernet.io/cr-name": "Macvlan_A" }),
    'SpiderMultusConfig "smc-a"',
    'metadata.annotations["multus.spidernet.io/cr-name"]',
    ['"Macvlan_A" is not a valid NetworkAttachmentDefinition name'],
  ],
  [
    "multus unsupported cni-version",
    () => multus({}, { "multus.spidernet.io/cni-version": "0.2.0" }),
    'SpiderMultusConfig "smc-a"',
    'metadata.annotations["multus.spidernet.io/cni-version"]',
    ['"0.2.0" is not a supported CNI version', "0.3.1"],
  ],
  [
    "multus inject annotation on custom",
    () => multus({}, { "cni.spidernet.io/rdma-resource-inject": "g" }),
    'SpiderMultusConfig "smc-a"',
    'metadata.annotations["cni.spidernet.io/rdma-resource-inject"]',
    ["not supported for cniType custom"],
  ],
  [
    "multus rdma inject without pools",
    () =>
      multus({ cniType: "sriov", sriov: { resourceName: "r" } }, {
        "cni.spidernet.io/rdma-resource-inject": "g",
      }),
    'SpiderMultusConfig "smc-a"',
    'metadata.annotations["cni.spidernet.io/rdma-resource-inject"]',
    ["needs at least one pool"],
  ],
];

for (const [behaviour, run, subject, path, fragments] of CORPUS) {
  Deno.test(`rejected object: ${behaviour}`, () => {
    const errors = run();
    const hit = errors.find((e) => e.path === path);
    assert.ok(hit, `no error at ${path}; got ${JSON.stringify(errors)}`);
    assert.ok(hit.message.startsWith(`${subject}: `), `message does not name the object: ${hit.message}`);
    for (const f of fragments) {
      assert.ok(hit.message.includes(f), `lacks ${JSON.stringify(f)}: ${hit.message}`);
    }
    for (const e of errors) assert.ok(e.message.startsWith(`${subject}: `), e.message);
  });
}
