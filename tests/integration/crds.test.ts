// The CRDs in crds/ against a real kube-apiserver: each is accepted with a structural schema and Established,
// and the schema's validations reject the objects Spiderpool's webhook would otherwise have to catch.

import assert from "node:assert/strict";
import { ApiException, CustomObjectsApi } from "@kubernetes/client-node";
import { getCluster, kubeTest, readCrds, testScope } from "../kube/harness.ts";

const GROUP = "spiderpool.spidernet.io";
const VERSION = "v2beta1";

for (const crd of await readCrds()) {
  kubeTest(`CRD ${crd.metadata.name} is accepted with a structural schema and Established`, async () => {
    const { http } = await getCluster();
    const { body } = await http.get<typeof crd>(
      `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
    );
    const conditions = Object.fromEntries((body.status?.conditions ?? []).map((c) => [c.type, c.status]));
    assert.equal(conditions.Established, "True");
    assert.equal(conditions.NamesAccepted, "True");
    // A non-structural schema is accepted by v1 CRDs only as an error, reported in this condition.
    assert.equal(conditions.NonStructuralSchema, undefined);
    const served = await http.get<{ resources: { name: string }[] }>(`/apis/${crd.spec.group}/${VERSION}`);
    assert.ok(
      served.body.resources.some((r) => r.name === crd.spec.names.plural),
      `${crd.spec.names.plural} missing from discovery of ${crd.spec.group}/${VERSION}`,
    );
  });
}

/** Creates a SpiderIPPool and returns the API server's error, or fails if it was accepted. */
async function rejection(spec: Record<string, unknown>): Promise<ApiException<string>> {
  const { kc } = await getCluster();
  await using scope = await testScope("crd-validation", { serviceAccount: false });
  const name = scope.name("pool");
  const api = kc.makeApiClient(CustomObjectsApi);
  try {
    await api.createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: "spiderippools",
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: "SpiderIPPool", metadata: { name }, spec },
    });
  } catch (err) {
    if (err instanceof ApiException) return err;
    throw err;
  }
  scope.track(`/apis/${GROUP}/${VERSION}/spiderippools/${name}`);
  assert.fail(`SpiderIPPool with spec ${JSON.stringify(spec)} was accepted`);
}

interface StatusCause {
  reason: string;
  field: string;
  message: string;
}

function causes(err: ApiException<string>): StatusCause[] {
  return (JSON.parse(err.body) as { details?: { causes?: StatusCause[] } }).details?.causes ?? [];
}

kubeTest("SpiderIPPool with ipVersion 5 is rejected as Invalid naming spec.ipVersion", async () => {
  const err = await rejection({ ipVersion: 5, subnet: "192.0.2.0/24", ips: ["192.0.2.10"] });
  assert.equal(err.code, 422);
  const cause = causes(err).find((c) => c.field === "spec.ipVersion");
  assert.equal(cause?.reason, "FieldValueNotSupported");
  assert.match(cause.message, /supported values: "4", "6"/);
});

kubeTest("SpiderIPPool without subnet is rejected as Invalid naming spec.subnet", async () => {
  const err = await rejection({ ipVersion: 4, ips: ["192.0.2.10"] });
  assert.equal(err.code, 422);
  const cause = causes(err).find((c) => c.field === "spec.subnet");
  assert.equal(cause?.reason, "FieldValueRequired");
});

kubeTest("SpiderIPPool ipVersion cannot be changed after creation", async () => {
  const { http } = await getCluster();
  await using scope = await testScope("crd-immutable", { serviceAccount: false });
  const path = `/apis/${GROUP}/${VERSION}/spiderippools/${scope.name("pool")}`;
  scope.track(path);
  await http.post(`/apis/${GROUP}/${VERSION}/spiderippools`, {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "SpiderIPPool",
    metadata: { name: scope.name("pool") },
    spec: { ipVersion: 4, subnet: "192.0.2.0/24" },
  });
  const err = await http.patch(path, { spec: { ipVersion: 6, subnet: "2001:db8::/64" } }).then(
    () => assert.fail("changing ipVersion was accepted"),
    (e) => e,
  );
  assert.equal(err.status, 422);
  assert.match(err.message, /ipVersion is immutable/);
});
