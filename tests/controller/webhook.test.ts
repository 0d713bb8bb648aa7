// The controller's admission webhooks as a user meets them: real `dist/spiderpool controller` processes called
// over HTTPS by the real kube-apiserver, objects of every kind created, updated and deleted through the API,
// refusals read as the API server returns them (what `kubectl apply` prints), probes, metrics, TLS methods and
// the process's own start-up and shut-down.

import assert from "node:assert/strict";
import { ConflictError, NotFoundError } from "../../src/kube/client.ts";
import { CERT_SECRET_NAME } from "../../src/controller/webhook/tls.ts";
import { scrapeMetrics } from "../e2e/node_sim.ts";
import { run } from "../binary/run.ts";
import { getCluster, kubeTest, poll, testScope } from "../kube/harness.ts";
import { API, CONTROLLER_BIN, failure, randomSubnets, startControllers } from "./webhook_harness.ts";

const POOLS = `${API}/spiderippools`;
const SUBNETS = `${API}/spidersubnets`;
const RESERVED = `${API}/spiderreservedips`;
const COORDINATORS = `${API}/spidercoordinators`;
const smcs = (ns: string) => `${API}/namespaces/${ns}/spidermultusconfigs`;

interface Obj {
  metadata: {
    name: string;
    uid: string;
    resourceVersion: string;
    labels?: Record<string, string>;
    finalizers?: string[];
    ownerReferences?: { kind: string; name: string; controller?: boolean }[];
  };
  // deno-lint-ignore no-explicit-any
  spec: any;
}

const pool = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: "spiderpool.spidernet.io/v2beta1",
  kind: "SpiderIPPool",
  metadata: { name },
  spec,
});

kubeTest(
  "a SpiderIPPool copied from Spiderpool's guides, without ipVersion, is completed by the mutating webhook",
  async () => {
    await using scope = await testScope("wh-guide", { serviceAccount: false });
    await using set = await startControllers(scope);
    const { v4, v4prefix } = randomSubnets();
    // docs/usage/ippool-affinity-pod.md's pool, with the guide's addresses moved to a documentation range.
    const created = await set.create<Obj>(POOLS, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderIPPool",
      metadata: { name: scope.name("test-ippool") },
      spec: {
        subnet: v4,
        ips: [`${v4prefix}40-${v4prefix}45`, `${v4prefix}44-${v4prefix}50`],
        podAffinity: { matchLabels: { app: "static" } },
      },
    });
    assert.equal(created.spec.ipVersion, 4);
    assert.deepEqual(created.spec.ips, [`${v4prefix}40-${v4prefix}50`]);
    assert.deepEqual(created.metadata.finalizers, ["spiderpool.spidernet.io"]);
    assert.equal(created.metadata.labels?.["ipam.spidernet.io/ippool-cidr"], v4.replace(/[./]/g, "-"));
    // What the API server stored, not only what it answered.
    const stored = (await set.http.get<Obj>(`${POOLS}/${created.metadata.name}`)).body;
    assert.equal(stored.spec.ipVersion, 4);
  },
);

kubeTest(
  "an overlapping SpiderIPPool is refused with a message naming the object, field, value and the other pool",
  async () => {
    await using scope = await testScope("wh-msg", { serviceAccount: false });
    await using set = await startControllers(scope);
    const { v4, v4prefix } = randomSubnets();
    const a = scope.name("a");
    const b = scope.name("b");
    await set.create(POOLS, pool(a, { subnet: v4, ips: [`${v4prefix}10-${v4prefix}20`] }));
    const err = await failure(
      set.create(POOLS, pool(b, { subnet: v4, ips: [`${v4prefix}18-${v4prefix}30`] })),
    );
    assert.equal(err.code, 422);
    assert.equal(err.reason, "Invalid");
    // kubectl prints: Error from server (Invalid): error when creating "b.yaml": <this message>
    assert.equal(
      err.message,
      `admission webhook "spiderippool.spiderpool.spidernet.io" denied the request: SpiderIPPool "${b}": ` +
        `spec.ips overlaps SpiderIPPool "${a}" at ${v4prefix}18-${v4prefix}20; remove those addresses from one ` +
        `of the pools or add them to spec.excludeIPs`,
    );
    await assert.rejects(set.http.get(`${POOLS}/${b}`), NotFoundError);
    // Excluding the overlap makes the same pool acceptable.
    const ok = await set.create<Obj>(
      POOLS,
      pool(b, {
        subnet: v4,
        ips: [`${v4prefix}18-${v4prefix}30`],
        excludeIPs: [`${v4prefix}18-${v4prefix}20`],
      }),
    );
    assert.equal(ok.metadata.name, b);
  },
);

kubeTest("SpiderIPPool update and delete: in-use addresses, subnet and ipVersion are protected", async () => {
  await using scope = await testScope("wh-inuse", { serviceAccount: false });
  // The webhooks alone: the leader's reconciler would finalise the emptied, deleted pool at once.
  await using set = await startControllers(scope, {
    configYaml: "enableValidatingResourcesDeletedWebhook: true\n",
    reconcile: false,
  });
  const { v4, v4prefix } = randomSubnets();
  const name = scope.name("p");
  const p = await set.create<Obj>(POOLS, pool(name, { subnet: v4, ips: [`${v4prefix}10-${v4prefix}20`] }));
  // An address handed to a pod, written as the agent writes it (status subresource, no webhook involved).
  const allocated = JSON.stringify({ [`${v4prefix}12`]: { pod: "ns/web-0", podUid: "u-1" } });
  await set.http.patch(`${POOLS}/${name}/status`, {
    status: { allocatedIPs: allocated, allocatedIPCount: 1 },
  });

  const shrink = await failure(
    set.http.patch(`${POOLS}/${name}`, { spec: { ips: [`${v4prefix}13-${v4prefix}20`] } }),
  );
  assert.match(
    shrink.message,
    new RegExp(`SpiderIPPool "${name}": spec.ips no longer contains ${v4prefix}12 \\(pod ns/web-0\\)`),
  );
  const exclude = await failure(
    set.http.patch(`${POOLS}/${name}`, { spec: { excludeIPs: [`${v4prefix}12`] } }),
  );
  assert.match(exclude.message, /still allocated/);
  const { v4: other } = randomSubnets();
  const moved = await failure(set.http.patch(`${POOLS}/${name}`, { spec: { subnet: other } }));
  // The CRD rule answers first: schema validation runs before the validating webhooks.
  assert.match(moved.message, /spec.subnet: Invalid value: .*subnet is immutable/);
  const version = await failure(set.http.patch(`${POOLS}/${name}`, { spec: { ipVersion: 6 } }));
  assert.match(version.message, /spec.ipVersion/);
  const del = await failure(set.http.delete(`${POOLS}/${name}`));
  assert.match(del.message, new RegExp(`SpiderIPPool "${name}": cannot be deleted while 1 IP is allocated`));

  // Growing the pool keeps the allocated address and passes; so does deleting it once the address is free.
  const grown =
    (await set.http.patch<Obj>(`${POOLS}/${name}`, { spec: { ips: [`${v4prefix}10-${v4prefix}30`] } })).body;
  assert.deepEqual(grown.spec.ips, [`${v4prefix}10-${v4prefix}30`]);
  assert.notEqual(grown.metadata.resourceVersion, p.metadata.resourceVersion);
  await set.http.patch(`${POOLS}/${name}/status`, { status: { allocatedIPs: null, allocatedIPCount: 0 } });
  await set.http.delete(`${POOLS}/${name}`);
  const terminating =
    (await set.http.get<Obj & { metadata: { deletionTimestamp?: string } }>(`${POOLS}/${name}`)).body;
  assert.ok(
    terminating.metadata.deletionTimestamp,
    "the finalizer keeps the pool until its addresses are released",
  );
  // A terminating pool cannot be changed, except for removing the finalizer, which completes the delete.
  const edit = await failure(
    set.http.patch(`${POOLS}/${name}`, { spec: { ips: [`${v4prefix}10-${v4prefix}31`] } }),
  );
  assert.match(edit.message, /being deleted/);
  await set.http.patch(`${POOLS}/${name}`, { metadata: { finalizers: null } });
  await assert.rejects(set.http.get(`${POOLS}/${name}`), NotFoundError);
});

kubeTest(
  "with SpiderSubnet, a pool is adopted by its subnet, inherits gateway and routes, and must fit inside it",
  async () => {
    await using scope = await testScope("wh-subnet", { serviceAccount: false });
    await using set = await startControllers(scope, {
      configYaml: "enableValidatingResourcesDeletedWebhook: true\n",
    });
    const { v4, v4prefix } = randomSubnets();
    const subnetName = scope.name("s");
    const subnet = await set.create<Obj>(SUBNETS, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderSubnet",
      metadata: { name: subnetName },
      spec: {
        subnet: v4,
        ips: [`${v4prefix}10-${v4prefix}100`],
        gateway: `${v4prefix}1`,
        routes: [{ dst: "203.0.113.0/24", gw: `${v4prefix}2` }],
      },
    });
    assert.equal(subnet.spec.ipVersion, 4);
    assert.equal(subnet.metadata.labels?.["ipam.spidernet.io/subnet-cidr"], v4.replace(/[./]/g, "-"));
    assert.deepEqual(subnet.metadata.finalizers, ["spiderpool.spidernet.io"]);

    const child = await set.create<Obj>(
      POOLS,
      pool(scope.name("child"), { subnet: v4, ips: [`${v4prefix}20-${v4prefix}30`] }),
    );
    assert.equal(child.metadata.labels?.["ipam.spidernet.io/owner-spider-subnet"], subnetName);
    assert.deepEqual(
      child.metadata.ownerReferences?.map((r) => [r.kind, r.name, r.controller]),
      [["SpiderSubnet", subnetName, true]],
    );
    assert.equal(child.spec.gateway, `${v4prefix}1`);
    assert.deepEqual(child.spec.routes, [{ dst: "203.0.113.0/24", gw: `${v4prefix}2` }]);

    const outside = await failure(
      set.create(POOLS, pool(scope.name("wide"), { subnet: v4, ips: [`${v4prefix}95-${v4prefix}120`] })),
    );
    assert.match(
      outside.message,
      new RegExp(
        `spec.ips has ${v4prefix}101-${v4prefix}120, which SpiderSubnet "${subnetName}" does not offer`,
      ),
    );

    // The subnet may not shrink below its pools, nor overlap another subnet.
    const shrink = await failure(
      set.http.patch(`${SUBNETS}/${subnetName}`, { spec: { ips: [`${v4prefix}25-${v4prefix}100`] } }),
    );
    assert.match(
      shrink.message,
      new RegExp(
        `does not cover ${v4prefix}20-${v4prefix}24 of existing SpiderIPPool "${child.metadata.name}"`,
      ),
    );
    const wider = await failure(set.create(SUBNETS, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderSubnet",
      metadata: { name: scope.name("wider") },
      spec: { subnet: `${v4prefix.split(".").slice(0, 2).join(".")}.0.0/16` },
    }));
    assert.match(wider.message, new RegExp(`overlaps SpiderSubnet "${subnetName}"`));
    // In use: deletion refused while the subnet hands addresses to pools.
    await set.http.patch(`${SUBNETS}/${subnetName}/status`, {
      status: { allocatedIPCount: 11, totalIPCount: 91 },
    });
    const del = await failure(set.http.delete(`${SUBNETS}/${subnetName}`));
    assert.match(del.message, /cannot be deleted while its pools hold 11 of its IPs/);
  },
);

kubeTest("SpiderReservedIP: ipVersion derived, ranges merged, overlapping reservations refused", async () => {
  await using scope = await testScope("wh-rip", { serviceAccount: false });
  await using set = await startControllers(scope);
  const { v6prefix } = randomSubnets();
  const rip = (name: string, ips: string[]) => ({
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderReservedIP",
    metadata: { name },
    spec: { ips },
  });
  const a = await set.create<Obj>(
    RESERVED,
    rip(scope.name("a"), [`${v6prefix}1-${v6prefix}5`, `${v6prefix}6`]),
  );
  assert.equal(a.spec.ipVersion, 6);
  assert.deepEqual(a.spec.ips, [`${v6prefix}1-${v6prefix}6`]);
  const clash = await failure(set.create(RESERVED, rip(scope.name("b"), [`${v6prefix}5-${v6prefix}9`])));
  assert.match(
    clash.message,
    new RegExp(`spec.ips overlaps SpiderReservedIP "${a.metadata.name}" at ${v6prefix}5-${v6prefix}6`),
  );
  const mixed = await failure(set.create(RESERVED, rip(scope.name("c"), [`${v6prefix}20`, "192.0.2.1"])));
  assert.match(mixed.message, /spec.ips\[1\] "192.0.2.1" is IPv4 but the object is IPv6/);
  const flip = await failure(
    set.http.patch(`${RESERVED}/${a.metadata.name}`, { spec: { ipVersion: 4, ips: ["192.0.2.1"] } }),
  );
  // The CRD's own rule answers first (schema validation runs before the validating webhooks).
  assert.match(flip.message, /spec.ipVersion: Invalid value: 4: ipVersion is immutable/);
  const grown = (await set.http.patch<Obj>(`${RESERVED}/${a.metadata.name}`, {
    spec: { ips: [`${v6prefix}1-${v6prefix}9`] },
  })).body;
  assert.deepEqual(grown.spec.ips, [`${v6prefix}1-${v6prefix}9`]);
  await set.http.delete(`${RESERVED}/${a.metadata.name}`);
});

kubeTest("SpiderCoordinator: defaults filled, bad values refused, updates validated", async () => {
  await using scope = await testScope("wh-coord", { serviceAccount: false });
  await using set = await startControllers(scope);
  const name = scope.name("c");
  const c = await set.create<Obj>(COORDINATORS, {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderCoordinator",
    metadata: { name },
    spec: { podCIDRType: "cluster", mode: "disable", hijackCIDR: ["169.254.0.0/16", "198.51.100.7"] },
  });
  assert.equal(c.spec.mode, "disabled");
  assert.equal(c.spec.vethMTU, 1500);
  assert.equal(c.spec.hostRuleTable, 500);
  assert.equal(c.spec.tunePodRoutes, true);
  assert.deepEqual(c.spec.hijackCIDR, ["169.254.0.0/16", "198.51.100.7/32"]);
  const bad = await failure(set.http.patch(`${COORDINATORS}/${name}`, { spec: { podMACPrefix: "01:02" } }));
  assert.match(
    bad.message,
    new RegExp(`SpiderCoordinator "${name}": spec.podMACPrefix "01:02" is a multicast prefix`),
  );
  const missing = await failure(set.create(COORDINATORS, {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderCoordinator",
    metadata: { name: scope.name("d") },
    spec: {},
  }));
  assert.match(missing.message, /spec.podCIDRType is required/);
  await set.http.delete(`${COORDINATORS}/${name}`);
});

const NAD_CRD = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "network-attachment-definitions.k8s.cni.cncf.io" },
  spec: {
    group: "k8s.cni.cncf.io",
    scope: "Namespaced",
    names: {
      plural: "network-attachment-definitions",
      singular: "network-attachment-definition",
      kind: "NetworkAttachmentDefinition",
      shortNames: ["net-attach-def"],
    },
    versions: [{
      name: "v1",
      served: true,
      storage: true,
      schema: {
        openAPIV3Schema: {
          type: "object",
          properties: {
            spec: { type: "object", properties: { config: { type: "string" } } },
          },
          "x-kubernetes-preserve-unknown-fields": true,
        },
      },
    }],
  },
};

kubeTest(
  "SpiderMultusConfig: defaults filled, invalid blocks refused, a NAD owned by another one is a conflict",
  async () => {
    await using scope = await testScope("wh-smc", { serviceAccount: false });
    await using set = await startControllers(scope);
    const ns = scope.namespace;
    const smc = (name: string, spec: Record<string, unknown>) => ({
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderMultusConfig",
      metadata: { name, namespace: ns },
      spec,
    });
    const m = await set.create<Obj>(
      smcs(ns),
      smc("macvlan-ens192", { cniType: "macvlan", macvlan: { master: ["ens192"] } }),
    );
    assert.equal(m.spec.macvlan.vlanID, 0);
    assert.deepEqual(m.spec.macvlan.ippools, { ipv4: [], ipv6: [] });
    assert.equal(m.spec.enableCoordinator, true);
    assert.equal(m.spec.coordinator.mode, "auto");
    assert.equal(m.spec.coordinator.tunePodRoutes, true);

    const bond = await failure(
      set.create(smcs(ns), smc("no-bond", { cniType: "macvlan", macvlan: { master: ["ens192", "ens224"] } })),
    );
    assert.match(
      bond.message,
      /SpiderMultusConfig "no-bond": spec.macvlan.bond.name is required with 2 master/,
    );
    const update = await failure(
      set.http.patch(`${smcs(ns)}/macvlan-ens192`, { spec: { macvlan: { master: [] } } }),
    );
    assert.match(update.message, /spec.macvlan.master is empty/);

    // A NetworkAttachmentDefinition that belongs to another SpiderMultusConfig blocks the name.
    try {
      await set.http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", NAD_CRD);
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
    }
    const nads = `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions`;
    await poll("the NetworkAttachmentDefinition CRD to be served", 30_000, async () => {
      try {
        return (await set.http.get(nads)).body;
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    });
    await set.http.post(nads, {
      apiVersion: "k8s.cni.cncf.io/v1",
      kind: "NetworkAttachmentDefinition",
      metadata: {
        name: "shared-name",
        namespace: ns,
        ownerReferences: [{
          apiVersion: "spiderpool.spidernet.io/v2beta1",
          kind: "SpiderMultusConfig",
          name: "macvlan-ens192",
          uid: m.metadata.uid,
          controller: true,
        }],
      },
      spec: { config: "{}" },
    });
    const clash = await failure(set.create(smcs(ns), {
      ...smc("other", { cniType: "macvlan", macvlan: { master: ["ens224"] } }),
      metadata: {
        name: "other",
        namespace: ns,
        annotations: { "multus.spidernet.io/cr-name": "shared-name" },
      },
    }));
    assert.match(
      clash.message,
      /SpiderMultusConfig "other": NetworkAttachmentDefinition "shared-name" already belongs to SpiderMultusConfig "macvlan-ens192"/,
    );
  },
);

kubeTest(
  "replicas share one generated certificate; probes, metrics and SIGTERM behave as a Deployment expects",
  async () => {
    await using scope = await testScope("wh-proc", { serviceAccount: false });
    await using set = await startControllers(scope, { replicas: 2 });
    const { http } = set;
    const secret = (await http.get<{ data: Record<string, string>; metadata: { resourceVersion: string } }>(
      `/api/v1/namespaces/${set.namespace}/secrets/${CERT_SECRET_NAME}`,
    )).body;
    const cfg = (await http.get<{ webhooks: { clientConfig: { caBundle: string; url: string } }[] }>(
      `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/wh-${set.id}`,
    )).body;
    assert.equal(cfg.webhooks.length, 5);
    for (const w of cfg.webhooks) assert.equal(w.clientConfig.caBundle, secret.data["ca.crt"]);
    // Both replicas log that they used the Secret; only one wrote it.
    const logs = await Promise.all(set.replicas.map((r) => r.log()));
    assert.equal(logs.filter((l) => l.includes("wrote a new CA")).length, 1, logs.join("\n---\n"));

    for (const r of set.replicas) {
      assert.deepEqual(await r.probe("startup"), [200, ""]);
      assert.deepEqual(await r.probe("liveness"), [200, ""]);
      // Ready once one of the two holds the Lease.
      await set.ready(r);
      assert.deepEqual(await r.probe("readiness"), [200, ""]);
    }

    // Admissions are counted by kind, operation and verdict.
    const { v4, v4prefix } = randomSubnets();
    await set.create(POOLS, pool(scope.name("m1"), { subnet: v4, ips: [`${v4prefix}1-${v4prefix}9`] }));
    await failure(set.create(POOLS, pool(scope.name("m2"), { subnet: v4, ips: [`${v4prefix}5`] })));
    const totals = new Map<string, number>();
    for (const r of set.replicas) {
      for (const [k, v] of await scrapeMetrics(r.metricsPort)) totals.set(k, (totals.get(k) ?? 0) + v);
    }
    const count = (webhook: string, verdict: string) =>
      totals.get(
        `spiderpool_webhook_admission_counts_total{webhook="${webhook}",kind="SpiderIPPool",operation="CREATE",verdict="${verdict}"}`,
      ) ?? 0;
    assert.equal(count("validating", "allowed"), 1);
    assert.equal(count("validating", "denied"), 1);
    assert.equal(count("mutating", "allowed"), 2);
    assert.ok(
      [...totals.keys()].some((k) => k.startsWith("spiderpool_webhook_admission_duration_seconds_bucket{")),
      "latency histogram exported",
    );

    // SIGTERM: the replica stops serving and exits 0; the other replica keeps admitting.
    const status = await set.replicas[0].stop();
    assert.equal(status.code, 0, await set.replicas[0].log());
    assert.match(await set.replicas[0].log(), /stopping \(signal received\)/);
    await assert.rejects(fetch(`http://127.0.0.1:${set.replicas[0].healthPort}/v1/runtime/startup`));
    const after = await set.create<Obj>(
      POOLS,
      pool(scope.name("m3"), { subnet: v4, ips: [`${v4prefix}20`] }),
    );
    assert.equal(after.spec.ipVersion, 4);
  },
);

kubeTest(
  "tls.method provided: the controller serves the given certificate and puts its CA in the caBundle",
  async () => {
    await using scope = await testScope("wh-tls", { serviceAccount: false });
    const dir = await Deno.makeTempDir({ prefix: "spiderpool-tls-" });
    try {
      const ns = scope.namespace;
      const sh = (cmd: string) => run("sh", ["-c", cmd], {}, "", dir);
      const ca = await sh(
        `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt ` +
          `-subj /CN=test-ca -days 2 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>&1`,
      );
      assert.equal(ca.code, 0, ca.stdout);
      const leaf = await sh(
        `openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.csr -subj /CN=x 2>&1 && ` +
          `printf 'subjectAltName=DNS:spiderpool-controller.${ns}.svc,IP:127.0.0.1\\n' > ext && ` +
          `openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out tls.crt 2>&1`,
      );
      assert.equal(leaf.code, 0, leaf.stdout);
      await using set = await startControllers(scope, {
        extraArgs: [
          "--tls-method",
          "provided",
          "--tls-server-cert",
          `${dir}/tls.crt`,
          "--tls-server-key",
          `${dir}/tls.key`,
          "--tls-ca-cert",
          `${dir}/ca.crt`,
        ],
      });
      const cfg = (await set.http.get<{ webhooks: { clientConfig: { caBundle: string } }[] }>(
        `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/wh-${set.id}`,
      )).body;
      assert.equal(atob(cfg.webhooks[0].clientConfig.caBundle), await Deno.readTextFile(`${dir}/ca.crt`));
      await assert.rejects(
        set.http.get(`/api/v1/namespaces/${ns}/secrets/${CERT_SECRET_NAME}`),
        NotFoundError,
      );
      const { v6, v6prefix } = randomSubnets();
      const p = await set.create<Obj>(POOLS, pool(scope.name("p"), { subnet: v6, ips: [`${v6prefix}a`] }));
      assert.equal(p.spec.ipVersion, 6);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("the controller refuses bad flags, environment and configuration with a message naming them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-ctl-flags-" });
  try {
    const cases: [string[], Record<string, string>, number, RegExp][] = [
      [["--no-such-flag"], {}, 2, /no-such-flag/],
      [["--health-port", "http"], {}, 2, /--health-port must be a port number 0-65535, got "http"/],
      [
        [],
        { SPIDERPOOL_WEBHOOK_PORT: "70000" },
        2,
        /--webhook-port must be a port number 0-65535, got "70000"/,
      ],
      [["--tls-method", "certmanager"], {}, 2, /--tls-method must be auto or provided, got "certmanager"/],
      [["--webhook-url", "http://127.0.0.1:1"], {}, 2, /--webhook-url "http:\/\/127.0.0.1:1" must use https/],
      [["--webhook-object-selector", "a b"], {}, 2, /"a b" is not a label KEY=VALUE/],
      [["--reconcile-selector", "x"], {}, 2, /--reconcile-selector: "x" is not a label KEY=VALUE/],
      [
        [],
        { SPIDERPOOL_LEADER_DURATION: "soon" },
        2,
        /SPIDERPOOL_LEADER_DURATION="soon" is not a number of seconds/,
      ],
      [
        [],
        { SPIDERPOOL_LEADER_DURATION: "5", SPIDERPOOL_LEADER_RENEW_DEADLINE: "10" },
        2,
        /SPIDERPOOL_LEADER_DURATION \(5 s\) must be greater than SPIDERPOOL_LEADER_RENEW_DEADLINE \(10 s\)/,
      ],
      [
        [],
        { SPIDERPOOL_ENABLED_DEBUG_METRIC: "yes" },
        2,
        /SPIDERPOOL_ENABLED_DEBUG_METRIC must be true or false/,
      ],
      [
        [],
        { SPIDERPOOL_COORDINATOR_ENABLED: "maybe" },
        2,
        /SPIDERPOOL_COORDINATOR_ENABLED must be true or false/,
      ],
    ];
    for (const [args, env, code, message] of cases) {
      const r = await run(CONTROLLER_BIN, ["controller", ...args], env);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    await Deno.writeTextFile(`${dir}/conf.yml`, 'enableSpiderSubnet: "yes"\n');
    const conf = await run(CONTROLLER_BIN, [
      "controller",
      "--config-path",
      `${dir}/conf.yml`,
      "--kubeconfig",
      "/nonexistent",
    ]);
    assert.equal(conf.code, 1);
    assert.match(conf.stderr, new RegExp(`${dir}/conf.yml: enableSpiderSubnet must be a boolean, got "yes"`));
    const help = await run(CONTROLLER_BIN, ["controller", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /usage: spiderpool controller/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

kubeTest("provided certificate files that are missing or do not match are refused at start-up", async () => {
  const { kubeconfigPath } = await getCluster();
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-ctl-tls-" });
  try {
    const r = await run(CONTROLLER_BIN, [
      "controller",
      "--kubeconfig",
      kubeconfigPath,
      "--tls-method",
      "provided",
      "--tls-server-cert",
      `${dir}/missing.crt`,
      "--health-port",
      "0",
      "--webhook-port",
      "0",
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`cannot read the serving certificate ${dir}/missing.crt`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
