// CNI_ARGS parsing: the pod identity keys, IP, IgnoreUnknown, and errors for malformed input.
import assert from "node:assert/strict";
import { CniError, parseCniArgs } from "../../src/cni/mod.ts";

Deno.test("the Kubernetes pod keys are read and unknown keys are ignored", () => {
  const a = parseCniArgs(
    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;" +
      "K8S_POD_UID=5f1e-77;MULTUS_EXTRA=x=y",
  );
  assert.deepEqual(a, {
    IgnoreUnknown: true,
    K8S_POD_NAMESPACE: "default",
    K8S_POD_NAME: "web-0",
    K8S_POD_INFRA_CONTAINER_ID: "abc",
    K8S_POD_UID: "5f1e-77",
  });
});

Deno.test("an empty or absent CNI_ARGS gives no keys; empty pairs are skipped", () => {
  assert.deepEqual(parseCniArgs(undefined), {});
  assert.deepEqual(parseCniArgs(""), {});
  assert.deepEqual(parseCniArgs("K8S_POD_NAME=a;;"), { K8S_POD_NAME: "a" });
});

Deno.test("IP accepts IPv4, IPv6 and a comma separated pair", () => {
  assert.equal(parseCniArgs("IP=192.0.2.7").IP, "192.0.2.7");
  assert.equal(parseCniArgs("IP=2001:db8::7").IP, "2001:db8::7");
  assert.equal(parseCniArgs("IP=192.0.2.7,2001:db8::7").IP, "192.0.2.7,2001:db8::7");
});

Deno.test("malformed CNI_ARGS are code 4 naming the offending text", () => {
  const cases: [string, RegExp][] = [
    ["K8S_POD_NAME", /invalid pair "K8S_POD_NAME"/],
    ["=value", /invalid pair "=value"/],
    ["IP=192.0.2.300", /IP="192.0.2.300" is not an IP address/],
    ["IgnoreUnknown=maybe", /IgnoreUnknown="maybe" is not a boolean/],
  ];
  for (const [text, msg] of cases) {
    assert.throws(
      () => parseCniArgs(text),
      (e) => e instanceof CniError && e.code === 4 && msg.test(e.message),
    );
  }
});
