// Golden tests of the SpiderMultusConfig → NetworkAttachmentDefinition renderer: for every cniType and option,
// the expected `spec.config` is written out by hand from spec §9 and upstream's Go structs (key order, omitted
// fields, Go's JSON escapes), not produced by the renderer.
import assert from "node:assert/strict";
import type { MultusCNIConfigSpec, SpiderMultusConfig } from "../../src/api/types.ts";
import { GoMap, goMarshal, goNumber, goString, goValueOf } from "../../src/multus/gojson.ts";
import { nadObject, RenderError, renderNAD } from "../../src/multus/render.ts";
import { stored } from "./stored.ts";

const NS = "kube-system";
const UID = "7f3a4d2e-0000-4000-8000-000000000001";

/** A SpiderMultusConfig as stored: after the mutating webhook and the API server's schema defaults. */
function smc(
  name: string,
  spec: MultusCNIConfigSpec,
  annotations?: Record<string, string>,
): SpiderMultusConfig {
  return stored(raw(name, spec, annotations));
}

function raw(
  name: string,
  spec: MultusCNIConfigSpec,
  annotations?: Record<string, string>,
): SpiderMultusConfig {
  return {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderMultusConfig",
    metadata: { name, namespace: NS, uid: UID, ...(annotations ? { annotations } : {}) },
    spec,
  };
}

/**
 * The coordinator entry of a SpiderMultusConfig without a coordinator block: the webhook adds the block, the
 * API server then fills in the CRD's defaults (txQueueLen 0 among them).
 */
const COORD = '{"txQueueLen":0,"tunePodRoutes":true,"mode":"auto","type":"coordinator","podRPFilter":0}';
const IPAM = '{"type":"spiderpool"}';

const conflist = (name: string, plugins: string[], version = "0.3.1") =>
  `{"cniVersion":"${version}","name":"${name}","plugins":[${plugins.join(",")}]}`;

Deno.test("render: macvlan with one master, IPv4 and IPv6 pools and the default coordinator", () => {
  const r = renderNAD(smc("macvlan-ens192", {
    cniType: "macvlan",
    macvlan: { master: ["ens192"], ippools: { ipv4: ["v4-a"], ipv6: ["v6-a", "v6-b"] } },
  }));
  assert.equal(
    r.config,
    conflist("macvlan-ens192", [
      '{"type":"macvlan","master":"ens192","mode":"bridge","mtu":0,' +
      '"ipam":{"type":"spiderpool","default_ipv4_ippool":["v4-a"],"default_ipv6_ippool":["v6-a","v6-b"]}}',
      COORD,
    ]),
  );
  assert.equal(r.name, "macvlan-ens192");
  assert.equal(r.namespace, NS);
  assert.deepEqual(r.annotations, {});
  assert.deepEqual(r.ownerReference, {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderMultusConfig",
    name: "macvlan-ens192",
    uid: UID,
    controller: true,
    blockOwnerDeletion: true,
  });
});

Deno.test("render: macvlan with a VLAN id gets the VLAN sub-interface as master and ifacer in front", () => {
  const r = renderNAD(smc("m100", {
    cniType: "macvlan",
    macvlan: { master: ["ens192"], vlanID: 100, mtu: 1500, ippools: { ipv4: ["vlan100"] } },
  }));
  assert.equal(
    r.config,
    conflist("m100", [
      '{"vlanID":100,"type":"ifacer","interfaces":["ens192"]}',
      '{"type":"macvlan","master":"ens192.100","mode":"bridge","mtu":1500,' +
      '"ipam":{"type":"spiderpool","default_ipv4_ippool":["vlan100"]}}',
      COORD,
    ]),
  );
});

Deno.test("render: macvlan over a bond of two masters, without and with a VLAN", () => {
  const bonded = renderNAD(smc("bond", {
    cniType: "macvlan",
    macvlan: {
      master: ["ens192", "ens224"],
      bond: { name: "bond0", mode: 1, options: "miimon=100;primary=ens192" },
    },
  }));
  assert.equal(
    bonded.config,
    conflist("bond", [
      '{"type":"ifacer","interfaces":["ens192","ens224"],' +
      '"bond":{"name":"bond0","mode":1,"options":"miimon=100;primary=ens192"}}',
      `{"type":"macvlan","master":"bond0","mode":"bridge","mtu":0,"ipam":${IPAM}}`,
      COORD,
    ]),
  );
  // The defaulted bond options ("") are a set pointer upstream: written even when empty.
  const tagged = renderNAD(smc("bond200", {
    cniType: "macvlan",
    macvlan: { master: ["ens192", "ens224"], vlanID: 200, bond: { name: "bond0", mode: 4 } },
  }));
  assert.equal(
    tagged.config,
    conflist("bond200", [
      '{"vlanID":200,"type":"ifacer","interfaces":["ens192","ens224"],"bond":{"name":"bond0","mode":4,"options":""}}',
      `{"type":"macvlan","master":"bond0.200","mode":"bridge","mtu":0,"ipam":${IPAM}}`,
      COORD,
    ]),
  );
});

Deno.test("render: ipvlan without IPAM and without coordinator is the ipvlan plugin alone", () => {
  const r = renderNAD(smc("ipvlan-eth1", {
    cniType: "ipvlan",
    ipvlan: { master: ["eth1"], mtu: 9000 },
    disableIPAM: true,
    enableCoordinator: false,
  }));
  assert.equal(r.config, conflist("ipvlan-eth1", ['{"type":"ipvlan","master":"eth1","mtu":9000}']));
});

Deno.test("render: ipvlan with a VLAN id, chained plugin and pools", () => {
  const r = renderNAD(smc("ipvlan-v", {
    cniType: "ipvlan",
    ipvlan: { master: ["eth1"], vlanID: 30, ippools: { ipv6: ["v6"] } },
    chainCNIJsonData: ['{"type":"tuning","sysctl":{"net.ipv6.conf.all.accept_ra":"0"}}'],
  }));
  assert.equal(
    r.config,
    conflist("ipvlan-v", [
      '{"vlanID":30,"type":"ifacer","interfaces":["eth1"]}',
      '{"type":"ipvlan","master":"eth1.30","mtu":0,"ipam":{"type":"spiderpool","default_ipv6_ippool":["v6"]}}',
      '{"sysctl":{"net.ipv6.conf.all.accept_ra":"0"},"type":"tuning"}',
      COORD,
    ]),
  );
});

Deno.test("render: vlan in manual mode carries its vlanId; ifacer only builds a bond", () => {
  const manual = renderNAD(smc("vlan-100", {
    cniType: "vlan",
    vlan: { master: ["eth0"], vlanID: 100, ippools: { ipv4: ["vlan100-pool"] } },
  }));
  assert.equal(
    manual.config,
    conflist("vlan-100", [
      '{"type":"vlan","master":"eth0","vlanMode":"manual","vlanId":100,"mtu":0,' +
      '"ipam":{"type":"spiderpool","default_ipv4_ippool":["vlan100-pool"]}}',
      COORD,
    ]),
  );
  const bonded = renderNAD(smc("vlan-bond", {
    cniType: "vlan",
    vlan: { master: ["eth0", "eth1"], vlanID: 200, mtu: 1500, bond: { name: "bond0", mode: 4 } },
    enableCoordinator: false,
  }));
  assert.equal(
    bonded.config,
    conflist("vlan-bond", [
      '{"type":"ifacer","interfaces":["eth0","eth1"],"bond":{"name":"bond0","mode":4,"options":""}}',
      `{"type":"vlan","master":"bond0","vlanMode":"manual","vlanId":200,"mtu":1500,"ipam":${IPAM}}`,
    ]),
  );
});

Deno.test("render: vlan in auto mode has no vlanId (it is assigned when the pod is set up)", () => {
  const r = renderNAD(smc("vlan-auto", {
    cniType: "vlan",
    vlan: { master: ["eth0"], vlanMode: "auto" },
    enableCoordinator: false,
  }));
  assert.equal(
    r.config,
    conflist("vlan-auto", [`{"type":"vlan","master":"eth0","vlanMode":"auto","mtu":0,"ipam":${IPAM}}`]),
  );
});

Deno.test("render: sriov with only a resource name writes its defaulted zero vlan and rates", () => {
  const r = renderNAD(
    smc("sriov-a", { cniType: "sriov", sriov: { resourceName: "spidernet.io/mellanoxrdma" } }),
  );
  assert.equal(
    r.config,
    conflist("sriov-a", [`{"vlan":0,"min_tx_rate":0,"max_tx_rate":0,"type":"sriov","ipam":${IPAM}}`, COORD]),
  );
  assert.deepEqual(r.annotations, { "k8s.v1.cni.cncf.io/resourceName": "spidernet.io/mellanoxrdma" });
});

Deno.test("render: sriov with RDMA isolation, MTU, rates, matchMasterSubnet and a chained plugin", () => {
  const r = renderNAD(smc("sriov-b", {
    cniType: "sriov",
    sriov: {
      resourceName: "spidernet.io/gpu1sriov",
      vlanID: 10,
      minTxRateMbps: 100,
      maxTxRateMbps: 1000,
      rdmaIsolation: true,
      mtu: 9000,
      ippools: { ipv4: ["gpu1-net"], matchMasterSubnet: true },
    },
    chainCNIJsonData: ['{"type":"bandwidth","ingressRate":1000,"ingressBurst":2000}'],
  }, { "cni.spidernet.io/rdma-resource-inject": "gpu-net" }));
  assert.equal(
    r.config,
    conflist("sriov-b", [
      '{"vlan":10,"min_tx_rate":100,"max_tx_rate":1000,"type":"sriov",' +
      '"ipam":{"type":"spiderpool","default_ipv4_ippool":["gpu1-net"],"match_master_subnet":true}}',
      '{"type":"rdma"}',
      '{"ingressBurst":2000,"ingressRate":1000,"type":"bandwidth"}',
      COORD,
      '{"type":"tuning","mtu":9000}',
    ]),
  );
  assert.deepEqual(r.annotations, {
    "cni.spidernet.io/rdma-resource-inject": "gpu-net",
    "k8s.v1.cni.cncf.io/resourceName": "spidernet.io/gpu1sriov",
  });
});

Deno.test("render: ib-sriov writes every defaulted setting and the resource name annotation", () => {
  const defaults = renderNAD(
    smc("ib-a", { cniType: "ib-sriov", ibsriov: { resourceName: "spidernet.io/ib" } }),
  );
  assert.equal(
    defaults.config,
    conflist("ib-a", [
      '{"type":"ib-sriov","pkey":"","link_state":"enable","rdmaIsolation":true,"ibKubernetesEnabled":false,' +
      `"ipam":${IPAM}}`,
      COORD,
    ]),
  );
  assert.deepEqual(defaults.annotations, { "k8s.v1.cni.cncf.io/resourceName": "spidernet.io/ib" });
  const set = renderNAD(smc("ib-b", {
    cniType: "ib-sriov",
    ibsriov: {
      resourceName: "spidernet.io/ib",
      pkey: "0x1000",
      linkState: "auto",
      rdmaIsolation: false,
      enableIbKubernetes: true,
      ippools: { ipv4: ["ib-v4"] },
    },
    enableCoordinator: false,
  }));
  assert.equal(
    set.config,
    conflist("ib-b", [
      '{"type":"ib-sriov","pkey":"0x1000","link_state":"auto","rdmaIsolation":false,"ibKubernetesEnabled":true,' +
      '"ipam":{"type":"spiderpool","default_ipv4_ippool":["ib-v4"]}}',
    ]),
  );
});

Deno.test("render: ipoib names its master", () => {
  const r = renderNAD(
    smc("ipoib", { cniType: "ipoib", ipoib: { master: "ibs5f0", ippools: { ipv4: ["ib"] } } }),
  );
  assert.equal(
    r.config,
    conflist("ipoib", [
      '{"type":"ipoib","master":"ibs5f0","ipam":{"type":"spiderpool","default_ipv4_ippool":["ib"]}}',
      COORD,
    ]),
  );
  assert.deepEqual(r.annotations, {});
});

Deno.test("render: ovs with trunks and a VF (offload) gets the bridge's resource name", () => {
  const r = renderNAD(smc("ovs-a", {
    cniType: "ovs",
    ovs: {
      bridge: "br1",
      vlan: 100,
      trunk: [{ minID: 10, maxID: 20 }, { id: 30 }],
      deviceID: "0000:af:00.1",
    },
  }));
  assert.equal(
    r.config,
    conflist("ovs-a", [
      `{"vlan":100,"type":"ovs","bridge":"br1","deviceID":"0000:af:00.1","ipam":${IPAM},` +
      '"trunk":[{"minID":10,"maxID":20},{"id":30}]}',
      COORD,
    ]),
  );
  assert.deepEqual(r.annotations, { "k8s.v1.cni.cncf.io/resourceName": "ovs-cni.network.kubevirt.io/br1" });
  const plain = renderNAD(smc("ovs-b", { cniType: "ovs", ovs: { bridge: "br0" }, disableIPAM: true }));
  assert.equal(plain.config, conflist("ovs-b", ['{"vlan":0,"type":"ovs","bridge":"br0"}', COORD]));
  assert.deepEqual(plain.annotations, {});
});

Deno.test("render: custom is customCNI verbatim, never with a coordinator; empty customCNI renders no config", () => {
  const text = '{ "cniVersion": "0.3.1", "name": "br", "plugins": [ {"type": "bridge"} ] }';
  const r = renderNAD(smc("custom", { cniType: "custom", customCNI: text, enableCoordinator: true }));
  assert.equal(r.config, text);
  const unset = renderNAD(smc("custom-empty", {}));
  assert.equal(unset.config, undefined);
  assert.equal(nadObject(unset).spec, undefined);
});

Deno.test("render: annotations name the NAD, the CNI version and the conflist name; all are copied", () => {
  const annotations = {
    "multus.spidernet.io/cr-name": "macvlan-100",
    "multus.spidernet.io/cni-version": "1.0.0",
    "cni.spidernet.io/cniconfig-name": "underlay",
    "example.com/owner": "team-a",
  };
  const r = renderNAD(smc("demo", {
    cniType: "macvlan",
    macvlan: { master: ["eth0"] },
    enableCoordinator: false,
  }, annotations));
  assert.equal(r.name, "macvlan-100");
  assert.equal(r.ownerReference.name, "demo");
  assert.deepEqual(r.annotations, annotations);
  assert.equal(
    r.config,
    conflist(
      "underlay",
      [`{"type":"macvlan","master":"eth0","mode":"bridge","mtu":0,"ipam":${IPAM}}`],
      "1.0.0",
    ),
  );
  assert.deepEqual(nadObject(r), {
    apiVersion: "k8s.cni.cncf.io/v1",
    kind: "NetworkAttachmentDefinition",
    metadata: { name: "macvlan-100", namespace: NS, annotations, ownerReferences: [r.ownerReference] },
    spec: { config: r.config },
  });
});

Deno.test("render: a coordinator block writes each setting in upstream's field order", () => {
  const r = renderNAD(smc("coord", {
    cniType: "macvlan",
    macvlan: { master: ["eth0"] },
    disableIPAM: true,
    coordinator: {
      mode: "underlay",
      podDefaultRouteNIC: "net1",
      hijackCIDR: ["169.254.0.0/16"],
      policyRoutes: [{ dst: "198.51.100.0/24", gw: "192.0.2.1" }],
      podMACPrefix: "0a:1b",
      vethLinkAddress: "169.254.100.1",
      txQueueLen: 1000,
      vethMTU: 1400,
      podRPFilter: 1,
      hostRuleTable: 600,
      podCIDRType: "cluster",
    },
  }));
  assert.equal(
    r.config,
    conflist("coord", [
      '{"type":"macvlan","master":"eth0","mode":"bridge","mtu":0}',
      '{"txQueueLen":1000,"vethLinkAddress":"169.254.100.1","vethMTU":1400,"tunePodRoutes":true,' +
      '"podMACPrefix":"0a:1b","mode":"underlay","type":"coordinator","podDefaultRouteNic":"net1","podRPFilter":1,' +
      '"hijackCIDR":["169.254.0.0/16"],"policyRoutes":[{"dst":"198.51.100.0/24","gw":"192.0.2.1"}]}',
    ]),
  );
});

Deno.test("render: an empty coordinator block defaults txQueueLen to 0; tunePodRoutes false is kept", () => {
  const r = renderNAD(smc("coord-empty", {
    cniType: "ipvlan",
    ipvlan: { master: ["eth0"] },
    disableIPAM: true,
    coordinator: { tunePodRoutes: false, mode: "disable", hijackCIDR: ["192.0.2.10"] },
  }));
  assert.equal(
    r.config,
    conflist("coord-empty", [
      '{"type":"ipvlan","master":"eth0","mtu":0}',
      '{"txQueueLen":0,"tunePodRoutes":false,"mode":"disabled","type":"coordinator","podRPFilter":0,' +
      '"hijackCIDR":["192.0.2.10/32"]}',
    ]),
  );
});

Deno.test("render: chained plugins come before the coordinator, re-marshalled as Go maps", () => {
  const r = renderNAD(smc("chain", {
    cniType: "macvlan",
    macvlan: { master: ["eth0"] },
    disableIPAM: true,
    chainCNIJsonData: [
      '{"type":"tuning","sysctl":{"b":"1","a":"2"},"mtu":1.0,"x":1e21,"y":0.0000001,"z":null,"10":true,"9":[3,1]}',
      '{"type":"sbr"}',
    ],
  }));
  assert.equal(
    r.config,
    conflist("chain", [
      '{"type":"macvlan","master":"eth0","mode":"bridge","mtu":0}',
      '{"10":true,"9":[3,1],"mtu":1,"sysctl":{"a":"2","b":"1"},"type":"tuning","x":1e+21,"y":1e-7,"z":null}',
      '{"type":"sbr"}',
      COORD,
    ]),
  );
});

Deno.test("render: strings are escaped as Go's encoder does (HTML-safe, U+2028, control characters)", () => {
  const r = renderNAD(smc("esc", {
    cniType: "ovs",
    ovs: { bridge: "br<1>&\u2028" },
    disableIPAM: true,
    enableCoordinator: false,
  }, { "cni.spidernet.io/cniconfig-name": 'a"b\\c\td\u0001\u007f' }));
  assert.equal(
    r.config,
    '{"cniVersion":"0.3.1","name":"a\\"b\\\\c\\td\\u0001\u007f","plugins":[' +
      '{"vlan":0,"type":"ovs","bridge":"br\\u003c1\\u003e\\u0026\\u2028"}]}',
  );
});

Deno.test("render: an object stored without the webhook renders what it holds", () => {
  const r = renderNAD(stored(raw("bare", { cniType: "sriov", sriov: { resourceName: "r" } }), false));
  assert.equal(
    r.config,
    conflist("bare", ['{"type":"sriov","ipam":{"type":"spiderpool"}}', '{"type":"coordinator"}']),
  );
});

Deno.test("render: an object validation would refuse fails with a RenderError naming the field", () => {
  assert.throws(
    () => renderNAD(raw("no-block", { cniType: "macvlan" })),
    (e: unknown) => e instanceof RenderError && e.field === "spec.macvlan" && /is required/.test(e.message),
  );
  assert.throws(
    () => renderNAD(raw("two", { cniType: "ipvlan", ipvlan: { master: ["a", "b"] } })),
    (e: unknown) => e instanceof RenderError && e.field === "spec.ipvlan.bond",
  );
  assert.throws(
    () => renderNAD(raw("chain", { cniType: "ipoib", ipoib: { master: "ib0" }, chainCNIJsonData: ["{x"] })),
    (e: unknown) => e instanceof RenderError && e.field === "spec.chainCNIJsonData[0]",
  );
});

Deno.test("gojson: strings, numbers and maps as Go's json.Marshal writes them", () => {
  assert.equal(goString("\u2029<>&\b\f\n\r\t\u001f"), '"\\u2029\\u003c\\u003e\\u0026\\b\\f\\n\\r\\t\\u001f"');
  assert.equal(goString("\ud83d\ude00 \ud800"), '"\ud83d\ude00 \\ufffd"');
  assert.equal(goNumber(-0), "-0");
  assert.equal(goNumber(5e-7), "5e-7");
  assert.equal(goNumber(0.000001), "0.000001");
  assert.equal(goNumber(123456789012345680000), "123456789012345680000");
  assert.throws(() => goNumber(NaN), TypeError);
  // Keys sort by UTF-8 bytes: U+FF21 (EF BC A1) before U+1F600 (F0 9F 98 80), unlike UTF-16 order.
  assert.equal(
    goMarshal(new GoMap([["\u{1F600}", 1], ["\uFF21", 2], ["B", 3]])),
    '{"B":3,"\uFF21":2,"\u{1F600}":1}',
  );
  assert.equal(goMarshal(goValueOf('{"b":{"d":[],"c":{}},"a":""}')), '{"a":"","b":{"c":{},"d":[]}}');
  assert.equal(goMarshal({ type: "x", a: undefined, b: null, c: [] }), '{"type":"x","c":[]}');
});
