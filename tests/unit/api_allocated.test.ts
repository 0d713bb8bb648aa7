import assert from "node:assert/strict";
import {
  decodeAllocatedIPs,
  decodeControlledIPPools,
  encodeAllocatedIPs,
  encodeControlledIPPools,
  formatApplicationKey,
  parseApplicationKey,
  StatusDecodeError,
} from "../../src/api/allocated.ts";

Deno.test("allocatedIPs decodes records keyed by IP", () => {
  assert.deepEqual(
    decodeAllocatedIPs('{"192.0.2.5":{"pod":"default/web-0","podUid":"u1"}}', "v4-a"),
    { "192.0.2.5": { pod: "default/web-0", podUid: "u1" } },
  );
});

Deno.test("allocatedIPs absent, empty or null decodes to an empty map", () => {
  for (const s of [undefined, null, "", "{}", "null"]) {
    assert.deepEqual(decodeAllocatedIPs(s, "v4-a"), {}, String(s));
  }
});

Deno.test("allocatedIPs decode drops the older interface member", () => {
  assert.deepEqual(
    decodeAllocatedIPs('{"192.0.2.5":{"interface":"eth0","pod":"ns/p","podUid":"u"}}', "v4-a"),
    { "192.0.2.5": { pod: "ns/p", podUid: "u" } },
  );
});

Deno.test("allocatedIPs decode canonicalises IPv6 keys", () => {
  assert.deepEqual(
    Object.keys(decodeAllocatedIPs('{"2001:DB8:0::1":{"pod":"ns/p","podUid":"u"}}', "v6-a")),
    ["2001:db8::1"],
  );
});

Deno.test("allocatedIPs encode sorts keys numerically, not as text", () => {
  const s = encodeAllocatedIPs({
    "192.0.2.10": { pod: "ns/b", podUid: "b" },
    "192.0.2.9": { pod: "ns/a", podUid: "a" },
    "192.0.2.100": { pod: "ns/c", podUid: "c" },
  });
  assert.deepEqual(Object.keys(JSON.parse(s!)), ["192.0.2.9", "192.0.2.10", "192.0.2.100"]);
});

Deno.test("allocatedIPs encode writes only pod and podUid", () => {
  const rec = { pod: "ns/p", podUid: "u", interface: "eth0" } as unknown as { pod: string; podUid: string };
  assert.equal(encodeAllocatedIPs({ "192.0.2.1": rec }), '{"192.0.2.1":{"pod":"ns/p","podUid":"u"}}');
});

Deno.test("allocatedIPs encode of an empty map is undefined (field omitted)", () => {
  assert.equal(encodeAllocatedIPs({}), undefined);
});

Deno.test("allocatedIPs encode then decode is the identity", () => {
  const map = { "2001:db8::2": { pod: "ns/b", podUid: "b" }, "2001:db8::1": { pod: "ns/a", podUid: "a" } };
  assert.deepEqual(decodeAllocatedIPs(encodeAllocatedIPs(map), "v6-a"), map);
});

const BAD_ALLOCATED: [string, string, string][] = [
  ["is not JSON", "{", "is not valid JSON"],
  ["is a list", "[]", "expected a JSON object"],
  ["has a non-IP key", '{"pod-a":{"pod":"ns/p","podUid":"u"}}', 'key "pod-a" is not an IP address'],
  ["has a record without podUid", '{"192.0.2.1":{"pod":"ns/p"}}', "the record of 192.0.2.1"],
  ["has a string record", '{"192.0.2.1":"ns/p"}', "the record of 192.0.2.1"],
  [
    "records one IP under two spellings",
    '{"2001:db8::1":{"pod":"a/b","podUid":"u"},"2001:DB8::1":{"pod":"a/b","podUid":"u"}}',
    "recorded twice",
  ],
];
for (const [behaviour, s, fragment] of BAD_ALLOCATED) {
  Deno.test(`allocatedIPs decode fails naming the pool when it ${behaviour}`, () => {
    assert.throws(() => decodeAllocatedIPs(s, "v4-a"), (e) => {
      assert.ok(e instanceof StatusDecodeError);
      assert.ok(e.message.startsWith('SpiderIPPool "v4-a": status.allocatedIPs'), e.message);
      assert.ok(e.message.includes(fragment), e.message);
      return true;
    });
  });
}

Deno.test("controlledIPPools decodes pools with and without application", () => {
  assert.deepEqual(
    decodeControlledIPPools(
      '{"v4-a":{"ips":["192.0.2.10-192.0.2.20"]},"auto4-web-eth0-1a2b3":{"ips":["192.0.2.30"],' +
        '"application":"apps_v1_Deployment_default_web"}}',
      "subnet-a",
    ),
    {
      "v4-a": { ips: ["192.0.2.10-192.0.2.20"] },
      "auto4-web-eth0-1a2b3": { ips: ["192.0.2.30"], application: "apps_v1_Deployment_default_web" },
    },
  );
});

Deno.test("controlledIPPools encode sorts pools by name and omits an empty application", () => {
  assert.equal(
    encodeControlledIPPools({ b: { ips: ["192.0.2.2"] }, a: { ips: ["192.0.2.1"], application: "" } }),
    '{"a":{"ips":["192.0.2.1"]},"b":{"ips":["192.0.2.2"]}}',
  );
});

Deno.test("controlledIPPools encode of an empty map is undefined", () => {
  assert.equal(encodeControlledIPPools({}), undefined);
});

Deno.test("controlledIPPools decode fails naming the subnet", () => {
  assert.throws(
    () => decodeControlledIPPools('{"v4-a":{"ips":"192.0.2.1"}}', "subnet-a"),
    /^StatusDecodeError: SpiderSubnet "subnet-a": status.controlledIPPools: the entry of pool "v4-a"/,
  );
});

Deno.test("application keys: group_version_Kind_ns_name, and version only for the core group", () => {
  const deploy = { group: "apps", version: "v1", kind: "Deployment", namespace: "default", name: "nginx" };
  assert.equal(formatApplicationKey(deploy), "apps_v1_Deployment_default_nginx");
  assert.deepEqual(parseApplicationKey("apps_v1_Deployment_default_nginx"), deploy);
  const pod = { group: "", version: "v1", kind: "Pod", namespace: "ns", name: "p" };
  assert.equal(formatApplicationKey(pod), "v1_Pod_ns_p");
  assert.deepEqual(parseApplicationKey("v1_Pod_ns_p"), pod);
  assert.equal(parseApplicationKey("nonsense"), undefined);
});

Deno.test("allocatedIPs encode puts IPv4 keys before IPv6 keys", () => {
  const s = encodeAllocatedIPs({
    "2001:db8::1": { pod: "ns/b", podUid: "b" },
    "198.51.100.1": { pod: "ns/a", podUid: "a" },
  });
  assert.deepEqual(Object.keys(JSON.parse(s!)), ["198.51.100.1", "2001:db8::1"]);
});
