// The pure parts of the controller's webhooks: JSON Patch from defaulting, the admission ledger's pruning,
// the webhook configurations, the generated certificates, denials, and the shared ConfigMap parser.

import assert from "node:assert/strict";
import { parseConfig } from "../../src/api/config.ts";
import { defaultIPPool, defaultMultusConfig } from "../../src/api/defaults.ts";
import {
  decodeLedger,
  encodeLedger,
  livePending,
  type PendingEntry,
  raiseSeen,
} from "../../src/controller/webhook/ledger.ts";
import { podWebhookNamespaceSelector, webhookConfigurations } from "../../src/controller/webhook/register.ts";
import { applyPatch, deny, jsonPatch, parseReview } from "../../src/controller/webhook/review.ts";
import { unusableReason } from "../../src/controller/webhook/tls.ts";
import { generateServingMaterial } from "../../src/controller/webhook/x509.ts";
import { run } from "../binary/run.ts";

Deno.test("the mutating patch turns the submitted pool into exactly its defaulted copy", () => {
  const submitted = {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderIPPool",
    metadata: { name: "p", labels: { app: "x" } },
    spec: { subnet: "192.0.2.0/24", ips: ["192.0.2.5", "192.0.2.1-192.0.2.4"], gateway: "192.0.2.254" },
  };
  const defaulted = defaultIPPool(submitted, { enableSpiderSubnet: false, subnets: [] });
  const patch = jsonPatch(submitted, defaulted);
  assert.deepEqual(applyPatch(submitted, patch), defaulted);
  // Label keys contain "/", which JSON Pointer writes as "~1".
  assert.ok(
    patch.some((op) => op.path === "/metadata/labels/ipam.spidernet.io~1ippool-cidr"),
    JSON.stringify(patch),
  );
  assert.ok(patch.some((op) => op.op === "add" && op.path === "/spec/ipVersion" && op.value === 4));
  assert.deepEqual(patch.find((op) => op.path === "/spec/ips"), {
    op: "replace",
    path: "/spec/ips",
    value: ["192.0.2.1-192.0.2.5"],
  });
  assert.deepEqual(
    jsonPatch(defaulted, defaultIPPool(defaulted, { enableSpiderSubnet: false, subnets: [] })),
    [],
  );
});

Deno.test("the mutating patch of a SpiderMultusConfig adds whole missing blocks and removes nothing given", () => {
  const submitted = {
    metadata: { name: "m", namespace: "n" },
    spec: { cniType: "macvlan", macvlan: { master: ["ens192"] } },
  };
  const defaulted = defaultMultusConfig(submitted as never);
  const patch = jsonPatch(submitted, defaulted);
  assert.deepEqual(applyPatch(submitted, patch), defaulted);
  assert.ok(patch.every((op) => op.op !== "remove"));
  assert.ok(patch.some((op) => op.op === "add" && op.path === "/spec/coordinator"));
});

Deno.test("jsonPatch removes keys the defaulted copy dropped (custom cniType loses its coordinator)", () => {
  const submitted = { spec: { cniType: "custom", coordinator: { mode: "auto" } } };
  const defaulted = defaultMultusConfig(submitted as never);
  const patch = jsonPatch(submitted, defaulted);
  assert.ok(patch.some((op) => op.op === "remove" && op.path === "/spec/coordinator"));
  assert.deepEqual(applyPatch(submitted, patch), defaulted);
});

Deno.test("ledger entries: kept until visible, superseded or expired", () => {
  const now = 1_000_000;
  const e = (kind: string, name: string, more: Partial<PendingEntry>): PendingEntry => ({
    kind,
    name,
    spec: {},
    expires: now + 10_000,
    by: "r0",
    ...more,
  });
  const entries = [
    e("SpiderIPPool", "created-visible", { uid: "u1" }),
    e("SpiderIPPool", "created-pending", { uid: "u2" }),
    e("SpiderIPPool", "update-landed", { replaces: "10" }),
    e("SpiderIPPool", "update-pending", { replaces: "20" }),
    e("SpiderIPPool", "update-gone", { replaces: "30" }),
    e("SpiderIPPool", "expired", { uid: "u3", expires: now }),
    e("SpiderSubnet", "created-visible", { uid: "u9" }),
  ];
  const listed = [
    { kind: "SpiderIPPool", name: "created-visible", uid: "u1", resourceVersion: "1" },
    { kind: "SpiderIPPool", name: "update-landed", resourceVersion: "11" },
    { kind: "SpiderIPPool", name: "update-pending", resourceVersion: "20" },
  ];
  assert.deepEqual(livePending(entries, listed, now).map((x) => `${x.kind}/${x.name}`), [
    "SpiderIPPool/created-pending",
    "SpiderIPPool/update-pending",
    // Only a SpiderIPPool of that name is listed; the subnet's create is still pending.
    "SpiderSubnet/created-visible",
  ]);
});

Deno.test("ledger 'seen' versions only grow, compare as numbers, and survive a round trip; damage reads as empty", () => {
  const seen = raiseSeen({ SpiderIPPool: "900" }, {
    SpiderIPPool: "1000",
    SpiderSubnet: "7",
    SpiderReservedIP: undefined,
  });
  assert.deepEqual(seen, { SpiderIPPool: "1000", SpiderSubnet: "7" });
  assert.deepEqual(raiseSeen(seen, { SpiderIPPool: "999", SpiderSubnet: "x" }), seen);
  const entries: PendingEntry[] = [{
    kind: "SpiderIPPool",
    name: "a",
    uid: "u",
    spec: {},
    expires: 5,
    by: "r",
  }];
  assert.deepEqual(decodeLedger(encodeLedger({ entries, seen })), { entries, seen });
  assert.deepEqual(decodeLedger({ pending: "{", seen: "[1]" }), { entries: [], seen: {} });
  assert.deepEqual(decodeLedger(undefined), { entries: [], seen: {} });
});

Deno.test("webhook configurations: upstream paths and operations, failurePolicy Fail, sideEffects None, v1", () => {
  const cfg = webhookConfigurations({
    endpoint: { service: { namespace: "kube-system", name: "spiderpool-controller", port: 5722 } },
    caPem: "CA",
    kinds: ["spiderippool", "spiderreservedip"],
  });
  const m = cfg.MutatingWebhookConfiguration as {
    metadata: { name: string };
    webhooks: Record<string, unknown>[];
  };
  const v = cfg.ValidatingWebhookConfiguration as typeof m;
  assert.equal(m.metadata.name, "spiderpool-controller");
  assert.deepEqual(m.webhooks[0].clientConfig, {
    service: {
      namespace: "kube-system",
      name: "spiderpool-controller",
      port: 5722,
      path: "/mutate-spiderpool-spidernet-io-v2beta1-spiderippool",
    },
    caBundle: btoa("CA"),
  });
  for (const w of [...m.webhooks, ...v.webhooks]) {
    assert.equal(w.failurePolicy, "Fail");
    assert.equal(w.sideEffects, "None");
    assert.deepEqual(w.admissionReviewVersions, ["v1"]);
    assert.equal(w.objectSelector, undefined);
  }
  const ops = (list: Record<string, unknown>[], i: number) =>
    (list[i].rules as { operations: string[] }[])[0].operations;
  assert.deepEqual(ops(m.webhooks, 0), ["CREATE", "UPDATE"]);
  assert.deepEqual(ops(v.webhooks, 0), ["CREATE", "UPDATE", "DELETE"]);
  assert.deepEqual(ops(v.webhooks, 1), ["CREATE", "UPDATE"]);
  assert.equal(v.webhooks[1].name, "spiderreservedip.spiderpool.spidernet.io");
  const byURL = webhookConfigurations({
    endpoint: { url: "https://127.0.0.1:9443/" },
    caPem: "CA",
    kinds: ["spidersubnet"],
  });
  const hook = (byURL.ValidatingWebhookConfiguration as typeof m).webhooks[0];
  assert.deepEqual(hook.clientConfig, {
    url: "https://127.0.0.1:9443/validate-spiderpool-spidernet-io-v2beta1-spidersubnet",
    caBundle: btoa("CA"),
  });
});

Deno.test("webhook configurations: the Pod webhook of podResourceInject, with upstream's namespaceSelector", () => {
  const endpoint = { service: { namespace: "kube-system", name: "spiderpool-controller", port: 5722 } };
  const without = webhookConfigurations({ endpoint, caPem: "CA", kinds: ["spiderippool"] });
  assert.deepEqual(without.MutatingWebhookConfiguration.webhooks.map((w) => w.name), [
    "spiderippool.spiderpool.spidernet.io",
  ]);
  const cfg = webhookConfigurations({
    endpoint,
    caPem: "CA",
    kinds: ["spiderippool"],
    podWebhook: parseConfig("podResourceInject: {enabled: true}").podResourceInject,
  });
  const pod = cfg.MutatingWebhookConfiguration.webhooks[1];
  assert.equal(cfg.ValidatingWebhookConfiguration.webhooks.length, 1, "no validating Pod webhook");
  assert.equal(pod.name, "pods.spiderpool.spidernet.io");
  assert.equal(pod.failurePolicy, "Fail");
  assert.equal(pod.sideEffects, "None");
  assert.deepEqual(pod.admissionReviewVersions, ["v1"]);
  assert.deepEqual(pod.clientConfig, {
    service: { ...endpoint.service, path: "/mutate--v1-pod" },
    caBundle: btoa("CA"),
  });
  assert.deepEqual(pod.rules, [{
    apiGroups: [""],
    apiVersions: ["v1"],
    operations: ["CREATE"],
    resources: ["pods"],
    scope: "Namespaced",
  }]);
  assert.deepEqual(pod.namespaceSelector, {
    matchExpressions: [{
      key: "kubernetes.io/metadata.name",
      operator: "NotIn",
      values: ["kube-system", "spiderpool", "metallb-system", "istio-system"],
    }],
  });
  assert.deepEqual(
    podWebhookNamespaceSelector({ namespacesExclude: ["a"], namespacesInclude: ["b", "c"] }),
    {
      matchExpressions: [
        { key: "kubernetes.io/metadata.name", operator: "NotIn", values: ["a"] },
        { key: "kubernetes.io/metadata.name", operator: "In", values: ["b", "c"] },
      ],
    },
  );
  assert.deepEqual(podWebhookNamespaceSelector({ namespacesExclude: [], namespacesInclude: [] }), {});
});

Deno.test("conf.yml: podResourceInject defaults, overrides and bad values named", () => {
  assert.deepEqual(parseConfig("").podResourceInject, {
    enabled: false,
    namespacesExclude: ["kube-system", "spiderpool", "metallb-system", "istio-system"],
    namespacesInclude: [],
  });
  assert.deepEqual(
    parseConfig("podResourceInject:\n  enabled: true\n  namespacesExclude: []\n  namespacesInclude: [ai]\n")
      .podResourceInject,
    { enabled: true, namespacesExclude: [], namespacesInclude: ["ai"] },
  );
  assert.throws(() => parseConfig("podResourceInject: true", "f"), /f: podResourceInject must be a mapping/);
  assert.throws(
    () => parseConfig("podResourceInject: {enabled: 'yes'}", "f"),
    /f: podResourceInject\.enabled must be a boolean, got "yes"/,
  );
  assert.throws(
    () => parseConfig("podResourceInject: {namespacesInclude: ai}", "f"),
    /f: podResourceInject\.namespacesInclude must be a list of namespace names, got "ai"/,
  );
  assert.throws(
    () => parseConfig("podResourceInject: {namespacesExclude: [ok, 'Bad Name']}", "f"),
    /f: podResourceInject\.namespacesExclude\[1\] = "Bad Name" is not a namespace name/,
  );
});

Deno.test("a denial is a 422 Invalid Status listing every field error", () => {
  const r = deny("u", [{ path: "spec.ips[0]", message: 'SpiderIPPool "p": spec.ips[0]: bad' }, {
    path: "spec.gateway",
    message: 'SpiderIPPool "p": spec.gateway: bad',
  }], { kind: "SpiderIPPool", group: "spiderpool.spidernet.io", name: "p" });
  assert.equal(r.allowed, false);
  assert.equal(r.status?.code, 422);
  assert.equal(r.status?.message, 'SpiderIPPool "p": spec.ips[0]: bad; SpiderIPPool "p": spec.gateway: bad');
  assert.deepEqual(r.status?.details?.causes.map((c) => c.field), ["spec.ips[0]", "spec.gateway"]);
});

Deno.test("an AdmissionReview that is not v1 or has no request is refused with a reason", () => {
  assert.throws(() => parseReview("{"), /not JSON/);
  assert.throws(
    () => parseReview('{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}'),
    /v1beta1/,
  );
  assert.throws(
    () => parseReview('{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}'),
    /no request/,
  );
});

Deno.test("generated certificates: the serving one chains to the CA and names the Service and 127.0.0.1", async () => {
  const needs = { dnsNames: ["spiderpool-controller.kube-system.svc"], ipAddresses: ["127.0.0.1"] };
  const m = await generateServingMaterial(needs);
  assert.equal(unusableReason(m, needs), undefined);
  assert.match(
    unusableReason(m, { dnsNames: ["spiderpool-controller.other.svc"], ipAddresses: [] }) ?? "",
    /does not name spiderpool-controller.other.svc/,
  );
  assert.match(unusableReason(m, needs, new Date(Date.now() + 3650 * 86_400_000)) ?? "", /expire/);
  const other = await generateServingMaterial(needs);
  assert.match(unusableReason({ ...m, caPem: other.caPem }, needs) ?? "", /not signed by the CA/);
  assert.match(unusableReason({ ...m, keyPem: other.keyPem }, needs) ?? "", /key does not belong/);
  // An independent implementation agrees.
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ca.pem`, m.caPem);
    await Deno.writeTextFile(`${dir}/leaf.pem`, m.certPem);
    const v = await run("openssl", [
      "verify",
      "-CAfile",
      `${dir}/ca.pem`,
      "-purpose",
      "sslserver",
      `${dir}/leaf.pem`,
    ]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("conf.yml: both spellings of the auto-pool redundancy key, the first winning; wrong types named", () => {
  assert.equal(parseConfig("").clusterSubnetDefaultFlexibleIPNumber, 1);
  assert.deepEqual(parseConfig("# managed by Helm\n\n"), parseConfig(""));
  assert.equal(
    parseConfig("clusterSubnetAutoPoolDefaultRedundantIPNumber: 3").clusterSubnetDefaultFlexibleIPNumber,
    3,
  );
  assert.equal(
    parseConfig("clusterSubnetDefaultFlexibleIPNumber: 2\nclusterSubnetAutoPoolDefaultRedundantIPNumber: 3")
      .clusterSubnetDefaultFlexibleIPNumber,
    2,
  );
  assert.equal(
    parseConfig("enableValidatingResourcesDeletedWebhook: true").enableValidatingResourcesDeletedWebhook,
    true,
  );
  assert.throws(
    () => parseConfig("clusterSubnetDefaultFlexibleIPNumber: -1", "f"),
    /f: clusterSubnetDefaultFlexibleIPNumber must be a whole number/,
  );
  assert.throws(
    () => parseConfig("enableIPv4: yes please", "f"),
    /f: enableIPv4 must be a boolean, got "yes please"/,
  );
});
