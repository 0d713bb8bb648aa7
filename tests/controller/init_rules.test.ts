// `spiderpool init`'s reading of upstream's SPIDERPOOL_INIT_* environment (src/cmd/init.ts): the objects it
// builds from the chart's values, and a clear refusal naming the variable for each kind of bad value.
import assert from "node:assert/strict";
import {
  cniNameAndType,
  defaultCNIFile,
  defaultNetworkConfig,
  InitConfigError,
  initConfigFromEnv,
  listValue,
} from "../../src/cmd/init.ts";

/** The environment upstream's chart renders (values quoted and lists as JSON, as Helm's toJson | quote does). */
const CHART: Record<string, string> = {
  SPIDERPOOL_NAMESPACE: "kube-system",
  SPIDERPOOL_CONTROLLER_NAME: "spiderpool-controller",
  SPIDERPOOL_AGENT_NAME: "spiderpool-agent",
  SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME: "default",
  SPIDERPOOL_INIT_DEFAULT_COORDINATOR_MODE: "auto",
  SPIDERPOOL_INIT_DEFAULT_COORDINATOR_POD_CIDR_TYPE: "auto",
  SPIDERPOOL_INIT_DEFAULT_COORDINATOR_DETECT_GATEWAY: "false",
  SPIDERPOOL_INIT_DEFAULT_COORDINATOR_DETECT_IP_CONFLICT: "false",
  SPIDERPOOL_INIT_DEFAULT_COORDINATOR_TUNE_POD_ROUTES: "true",
  SPIDERPOOL_INIT_DEFAULT_COORDINATOR_HIJACK_CIDR: '["169.254.0.0/16"]',
  SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME: "default-v4-ippool",
  SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_SUBNET: "192.0.2.0/24",
  SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_IPRANGES: '["192.0.2.10-192.0.2.200"]',
  SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_GATEWAY: "192.0.2.1",
  SPIDERPOOL_INIT_DEFAULT_IPV4_SUBNET_NAME: "default-v4-subnet",
  SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_NAME: "default-v6-ippool",
  SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_SUBNET: "2001:db8::/64",
  SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_IPRANGES: '["2001:db8::10-2001:db8::200"]',
  SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_GATEWAY: "",
  SPIDERPOOL_INIT_ENABLE_MULTUS_CONFIG: "true",
  SPIDERPOOL_INIT_INSTALL_MULTUS: "true",
  SPIDERPOOL_INIT_DEFAULT_CNI_NAME: "",
  SPIDERPOOL_INIT_DEFAULT_CNI_NAMESPACE: "kube-system",
  SPIDERPOOL_INIT_DEFAULT_CNI_DIR: "/etc/cni/net.d",
};

const env = (over: Record<string, string | undefined> = {}) => (k: string) =>
  (k in over ? over[k] : CHART[k]) as string | undefined;

Deno.test("init config: the chart's environment gives the coordinator, two subnets, two default pools, Multus", () => {
  const c = initConfigFromEnv(env());
  assert.equal(c.coordinator?.metadata?.name, "default");
  assert.equal(c.coordinator?.spec?.mode, "auto");
  assert.equal(c.coordinator?.spec?.podCIDRType, "auto");
  assert.deepEqual(c.coordinator?.spec?.hijackCIDR, ["169.254.0.0/16"]);
  assert.equal(c.coordinator?.spec?.tunePodRoutes, true);
  // The chart sets a subnet name only for IPv4 here.
  assert.deepEqual(c.subnets.map((s) => [s.metadata?.name, s.spec?.subnet, s.spec?.ips, s.spec?.gateway]), [
    ["default-v4-subnet", "192.0.2.0/24", ["192.0.2.10-192.0.2.200"], "192.0.2.1"],
  ]);
  assert.deepEqual(
    c.pools.map((p) => [p.metadata?.name, p.spec?.ipVersion, p.spec?.default, p.spec?.gateway]),
    [
      ["default-v4-ippool", 4, true, "192.0.2.1"],
      ["default-v6-ippool", 6, true, undefined],
    ],
  );
  assert.deepEqual(c.multus, { namespace: "kube-system", name: undefined, dir: "/etc/cni/net.d" });
  assert.deepEqual(c.ignored, []);
});

Deno.test("init config: nothing is created for what the environment leaves unset", () => {
  const c = initConfigFromEnv(() => undefined);
  assert.deepEqual([c.coordinator, c.subnets, c.pools, c.multus], [undefined, [], [], undefined]);
  assert.equal(c.namespace, "kube-system");
  assert.equal(c.controllerName, "spiderpool-controller");
});

Deno.test("init config: lists in JSON, comma or space form", () => {
  assert.deepEqual(listValue('["a","b"]'), ["a", "b"]);
  assert.deepEqual(listValue("a, b c"), ["a", "b", "c"]);
  assert.deepEqual(listValue('[\\"a\\"]'), ["a"]);
  assert.deepEqual(listValue(""), []);
  assert.deepEqual(listValue("[]"), []);
});

Deno.test("init config: the coordinator's hijackCIDR normalises bare IPs; the legacy detect flags are reported", () => {
  const c = initConfigFromEnv(env({
    SPIDERPOOL_INIT_DEFAULT_COORDINATOR_HIJACK_CIDR: '["198.51.100.7","2001:db8::/48"]',
    SPIDERPOOL_INIT_DEFAULT_COORDINATOR_DETECT_GATEWAY: "true",
  }));
  assert.deepEqual(c.coordinator?.spec?.hijackCIDR, ["198.51.100.7/32", "2001:db8::/48"]);
  assert.equal(c.ignored.length, 1);
  assert.match(c.ignored[0], /DETECT_GATEWAY=true \(set it in the ConfigMap instead\)/);
});

Deno.test("init config: every bad value is refused with the variable, the value and the fix", () => {
  const cases: [Record<string, string | undefined>, RegExp][] = [
    [
      { SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_SUBNET: "" },
      /SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_SUBNET is not set/,
    ],
    [{ SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_SUBNET: "192.0.2.5/24" }, /IPV4_IPPOOL_SUBNET="192\.0\.2\.5\/24"/],
    [{ SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_SUBNET: "2001:db8::/64" }, /not an IPv4 subnet/],
    [
      { SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_GATEWAY: "2001:db8::1" },
      /IPV4_IPPOOL_GATEWAY="2001:db8::1".*use an IPv4/,
    ],
    [
      { SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_IPRANGES: '["192.0.2.10-192.0.2"]' },
      /IPV4_IPPOOL_IPRANGES\[0\] "192\.0\.2\.10-192\.0\.2"/,
    ],
    [
      { SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_IPRANGES: '["198.51.100.1-198.51.100.9"]' },
      /spec\.ips.*\(set by SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_IPRANGES\)/,
    ],
    [
      { SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_GATEWAY: "198.51.100.1" },
      /gateway.*\(set by SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_GATEWAY\)/,
    ],
    [
      { SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_NAME: "default-v4-ippool" },
      /IPV4_IPPOOL_NAME and SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_NAME are both "default-v4-ippool"/,
    ],
    [
      { SPIDERPOOL_INIT_DEFAULT_COORDINATOR_TUNE_POD_ROUTES: "yes" },
      /TUNE_POD_ROUTES="yes" is not a boolean/,
    ],
    [{ SPIDERPOOL_INIT_ENABLE_MULTUS_CONFIG: "maybe" }, /SPIDERPOOL_INIT_ENABLE_MULTUS_CONFIG="maybe"/],
    [
      { SPIDERPOOL_INIT_DEFAULT_COORDINATOR_MODE: "fast" },
      /spec\.mode "fast".*\(set by SPIDERPOOL_INIT_DEFAULT_COORDINATOR_MODE\)/,
    ],
    [
      { SPIDERPOOL_INIT_DEFAULT_COORDINATOR_HIJACK_CIDR: '["not-a-cidr"]' },
      /hijackCIDR.*\(set by SPIDERPOOL_INIT_DEFAULT_COORDINATOR_HIJACK_CIDR\)/,
    ],
  ];
  for (const [over, want] of cases) {
    assert.throws(() => initConfigFromEnv(env(over)), (e: Error) => {
      assert.ok(e instanceof InitConfigError, `${JSON.stringify(over)}: ${e}`);
      assert.match(e.message, want, JSON.stringify(over));
      return true;
    });
  }
});

Deno.test("init: the default CNI is the first .conf/.conflist by name, Multus' own skipped", () => {
  assert.equal(
    defaultCNIFile(["10-calico.conflist", "00-multus.conf", "05-cilium.conf", "99-x.json"]),
    "05-cilium.conf",
  );
  assert.equal(defaultCNIFile(["00-multus.conf", "README"]), undefined);
  assert.deepEqual(
    cniNameAndType(
      "10-calico.conflist",
      JSON.stringify({ name: "k8s-pod-network", plugins: [{ type: "calico" }] }),
    ),
    { name: "k8s-pod-network", type: "calico" },
  );
  assert.deepEqual(cniNameAndType("05-mv.conf", JSON.stringify({ name: "mv", type: "macvlan" })), {
    name: "mv",
    type: "macvlan",
  });
  assert.throws(
    () => cniNameAndType("/etc/cni/net.d/1.conf", "{"),
    /CNI config \/etc\/cni\/net\.d\/1\.conf is not valid JSON/,
  );
  assert.throws(() => cniNameAndType("1.conflist", '{"name":"x","plugins":[]}'), /has no plugin type/);
});

Deno.test("init: Calico's legacy network name becomes a SpiderMultusConfig 'calico' keeping the NAD name", () => {
  assert.deepEqual(defaultNetworkConfig("k8s-pod-network", "kube-system").metadata, {
    name: "calico",
    namespace: "kube-system",
    annotations: { "multus.spidernet.io/cr-name": "k8s-pod-network" },
  });
  assert.deepEqual(defaultNetworkConfig("cilium", "ns").spec, {
    cniType: "custom",
    enableCoordinator: false,
  });
});
