// The spiderpool IPAM plugin's pure parts: its `ipam` configuration, the pod identity from CNI_ARGS,
// the result built from the agent's answer, and the GC attachment list.
import assert from "node:assert/strict";
import { CniError, type NetConf } from "../../src/cni/mod.ts";
import {
  buildResult,
  IPAM_DEFAULTS,
  parseIpamConf,
  podIdentity,
  validAttachments,
} from "../../src/plugins/spiderpool.ts";

function conf(ipam: unknown, extra: Record<string, unknown> = {}): NetConf {
  return { cniVersion: "1.0.0", name: "macvlan-net", type: "macvlan", ipam, ...extra } as NetConf;
}

function isCode(code: number, msg?: RegExp) {
  return (e: unknown) => e instanceof CniError && e.code === code && (!msg || msg.test(e.message));
}

Deno.test("an ipam section with only the type gets every default", () => {
  assert.deepEqual(parseIpamConf(conf({ type: "spiderpool" })), IPAM_DEFAULTS);
  assert.equal(IPAM_DEFAULTS.ipamUnixSocketPath, "/var/run/spidernet/spiderpool.sock");
  assert.equal(IPAM_DEFAULTS.logLevel, "info");
});

Deno.test("every ipam key is read under its upstream name", () => {
  const c = parseIpamConf(conf({
    type: "spiderpool",
    log_level: "DEBUG",
    log_file_path: "/tmp/x/sp.log",
    log_file_max_size: 5,
    log_file_max_age: 2,
    log_file_max_count: 3,
    default_ipv4_ippool: ["v4-a", "v4-b"],
    default_ipv6_ippool: ["v6-a"],
    clean_gateway: true,
    match_master_subnet: true,
    ipam_unix_socket_path: "/run/sp.sock",
  }));
  assert.deepEqual(c, {
    logLevel: "debug",
    logFilePath: "/tmp/x/sp.log",
    logFileMaxSize: 5,
    logFileMaxAge: 2,
    logFileMaxCount: 3,
    defaultIPv4IPPool: ["v4-a", "v4-b"],
    defaultIPv6IPPool: ["v6-a"],
    cleanGateway: true,
    matchMasterSubnet: true,
    ipamUnixSocketPath: "/run/sp.sock",
  });
});

Deno.test("a malformed ipam key is code 7 naming the key and what is expected", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ clean_gateway: "yes" }, /invalid ipam\.clean_gateway: expected true or false, got "yes"/],
    [{ log_level: "verbose" }, /invalid ipam\.log_level: expected one of debug, info/],
    [
      { default_ipv4_ippool: "v4-a" },
      /invalid ipam\.default_ipv4_ippool: expected a list of SpiderIPPool names/,
    ],
    [{ log_file_max_size: -1 }, /invalid ipam\.log_file_max_size/],
    [{ ipam_unix_socket_path: "run/sp.sock" }, /ipam_unix_socket_path: expected an absolute path/],
    [{ type: "host-local" }, /invalid ipam\.type/],
  ];
  for (const [ipam, msg] of cases) {
    assert.throws(() => parseIpamConf(conf({ type: "spiderpool", ...ipam })), isCode(7, msg));
  }
  assert.throws(() => parseIpamConf(conf(undefined)), isCode(7, /missing "ipam" section/));
});

Deno.test("the pod identity needs K8S_POD_NAMESPACE and K8S_POD_NAME (code 4); the UID may be absent", () => {
  assert.deepEqual(podIdentity("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u"), {
    namespace: "ns",
    name: "p",
    uid: "u",
  });
  assert.deepEqual(podIdentity("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p").uid, "");
  assert.throws(() => podIdentity("K8S_POD_NAME=p"), isCode(4, /lacks K8S_POD_NAMESPACE/));
});

Deno.test("the result holds only the current interface's addresses and routes", () => {
  const r = buildResult({
    ips: [
      { version: 4, address: "192.0.2.10/24", gateway: "192.0.2.1", nic: "eth0", ipPool: "v4" },
      { version: 6, address: "2001:db8::10/64", nic: "eth0", ipPool: "v6" },
      { version: 4, address: "198.51.100.10/24", gateway: "198.51.100.1", nic: "net1", ipPool: "v4-b" },
    ],
    routes: [
      { ifName: "eth0", dst: "0.0.0.0/0", gw: "192.0.2.1" },
      { ifName: "net1", dst: "203.0.113.0/24", gw: "198.51.100.1" },
    ],
  }, "eth0");
  assert.deepEqual(r.ips, [{ address: "192.0.2.10/24", gateway: "192.0.2.1" }, {
    address: "2001:db8::10/64",
  }]);
  assert.deepEqual(r.routes, [{ dst: "0.0.0.0/0", gw: "192.0.2.1" }]);
  assert.equal(r.interfaces, undefined);
});

Deno.test("an answer without addresses for the interface is the upstream error", () => {
  assert.throws(
    () => buildResult({ ips: [{ version: 4, address: "192.0.2.10/24", nic: "net1" }] }, "eth0"),
    isCode(101, /^no Interface eth0 IP allocation found$/),
  );
});

Deno.test("the GC attachment list comes from cni.dev/valid-attachments, or the older cni.dev/attachments; neither key is no list", () => {
  const list = [{ containerID: "c1", ifname: "eth0" }, { containerID: "c2", ifname: "net1" }];
  const want = [{ containerID: "c1", ifName: "eth0" }, { containerID: "c2", ifName: "net1" }];
  assert.deepEqual(validAttachments(conf({}, { "cni.dev/valid-attachments": list })), want);
  assert.deepEqual(validAttachments(conf({}, { "cni.dev/attachments": list })), want);
  assert.equal(validAttachments(conf({})), undefined, "no key: nothing is known to be stale");
  assert.deepEqual(validAttachments(conf({}, { "cni.dev/valid-attachments": [] })), []);
  assert.throws(
    () => validAttachments(conf({}, { "cni.dev/valid-attachments": [{ ifname: "x" }] })),
    isCode(7),
  );
});
