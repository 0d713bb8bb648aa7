// The CNI GC decisions (src/ipam/cni_gc.ts): what an ADD records on the endpoint, which NICs a GC for one network
// may release, and when a pod's sandbox may still be running.
import assert from "node:assert/strict";
import type { SpiderEndpoint } from "../../src/api/types.ts";
import {
  CONTAINER_ID_ANNOTATION as CID,
  gcCandidate,
  GRACE_SKEW_MS,
  NIC_NETWORKS_ANNOTATION as NETS,
  nicNetworks,
  recordAttachment,
  sandboxMayRun,
} from "../../src/ipam/cni_gc.ts";

Deno.test("an ADD records its container and its network for every NIC it lists that has no record yet", () => {
  const first = recordAttachment(undefined, {
    containerID: "c1",
    ifName: "eth0",
    networkName: "net-a",
    nics: ["eth0", "net1"],
  });
  assert.deepEqual(first, { [CID]: "c1", [NETS]: '{"eth0":"net-a","net1":"net-a"}' });
  // net1's own ADD names its network.
  const second = recordAttachment(first, {
    containerID: "c1",
    ifName: "net1",
    networkName: "net-b",
    nics: ["eth0", "net1"],
  });
  assert.deepEqual(second, { [CID]: "c1", [NETS]: '{"eth0":"net-a","net1":"net-b"}' });
  // A repeated ADD changes nothing and returns the same object.
  assert.equal(
    recordAttachment(second, {
      containerID: "c1",
      ifName: "net1",
      networkName: "net-b",
      nics: ["eth0", "net1"],
    }),
    second,
  );
});

Deno.test("a new sandbox starts the NIC records afresh; an ADD without network records none", () => {
  const old = { other: "x", [CID]: "c1", [NETS]: '{"eth0":"net-a","net1":"net-b"}' };
  assert.deepEqual(
    recordAttachment(old, {
      containerID: "c2",
      ifName: "eth0",
      networkName: "net-c",
      nics: ["eth0", "net1"],
    }),
    { other: "x", [CID]: "c2", [NETS]: '{"eth0":"net-c","net1":"net-c"}' },
  );
  assert.deepEqual(
    recordAttachment(old, { containerID: "c2", ifName: "eth0", nics: ["eth0", "net1"] }),
    { other: "x", [CID]: "c2" },
  );
  // The same sandbox without a network keeps what was recorded, minus NICs the endpoint no longer lists.
  assert.deepEqual(
    recordAttachment(old, { containerID: "c1", ifName: "eth0", nics: ["eth0"] }),
    { other: "x", [CID]: "c1", [NETS]: '{"eth0":"net-a"}' },
  );
});

Deno.test("a malformed NIC record reads as no record", () => {
  for (const raw of ["", "{", "[]", "null", '"x"']) assert.deepEqual(nicNetworks({ [NETS]: raw }), {});
  assert.deepEqual(nicNetworks({ [NETS]: '{"eth0":"a","net1":7}' }), { eth0: "a" });
  assert.deepEqual(nicNetworks(undefined), {});
});

function endpoint(
  annotations: Record<string, string>,
  nics: string[],
  node = "n1",
): SpiderEndpoint {
  return {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderEndpoint",
    metadata: { name: "p", namespace: "ns", annotations },
    status: {
      current: {
        uid: "u1",
        node,
        ips: nics.map((nic, i) =>
          nic.endsWith("!")
            ? { interface: nic.slice(0, -1) } // a NIC without addresses
            : { interface: nic, ipv4: `192.0.2.${10 + i}/24`, ipv4Pool: "v4" }
        ),
      },
      ownerControllerType: "Pod",
      ownerControllerName: "p",
    },
  } as SpiderEndpoint;
}

const scope = (network: string, valid: { containerID: string; ifName: string }[] = []) => ({
  network,
  valid,
  node: "n1",
});

Deno.test("a GC considers only NICs attached through its network, of sandboxes it does not list as valid", () => {
  const ep = endpoint({ [CID]: "c1", [NETS]: '{"eth0":"net-a","net1":"net-b"}' }, ["eth0", "net1"]);
  assert.deepEqual(gcCandidate(ep, scope("net-b")), { containerID: "c1", nics: ["net1"], whole: false });
  assert.deepEqual(gcCandidate(ep, scope("net-a")), { containerID: "c1", nics: ["eth0"], whole: false });
  assert.equal(gcCandidate(ep, scope("net-c")), undefined, "no NIC through net-c");
  // Any attachment of the sandbox listed as valid on the network keeps it.
  assert.equal(gcCandidate(ep, scope("net-b", [{ containerID: "c1", ifName: "net1" }])), undefined);
  assert.equal(gcCandidate(ep, scope("net-b", [{ containerID: "c1", ifName: "net9" }])), undefined);
  assert.ok(gcCandidate(ep, scope("net-b", [{ containerID: "c9", ifName: "net1" }])));
});

Deno.test("a GC's candidate is whole when every NIC with addresses went through its network", () => {
  const ep = endpoint({ [CID]: "c1", [NETS]: '{"eth0":"net-a","net1":"net-a"}' }, ["eth0", "net1", "net2!"]);
  assert.deepEqual(gcCandidate(ep, scope("net-a")), {
    containerID: "c1",
    nics: ["eth0", "net1"],
    whole: true,
  });
});

Deno.test("a GC skips endpoints of other nodes, without a recorded sandbox, or without NIC records", () => {
  const nets = { [NETS]: '{"eth0":"net-a"}' };
  assert.equal(gcCandidate(endpoint({ [CID]: "c1", ...nets }, ["eth0"], "n2"), scope("net-a")), undefined);
  assert.equal(gcCandidate(endpoint(nets, ["eth0"]), scope("net-a")), undefined);
  assert.equal(gcCandidate(endpoint({ [CID]: "c1" }, ["eth0"]), scope("net-a")), undefined);
});

Deno.test("a sandbox may still run while its pod is alive or within its grace period (plus clock skew)", () => {
  const now = Date.parse("2026-01-01T00:00:30Z");
  const pod = (extra: Record<string, unknown> = {}, status: Record<string, unknown> = {}) => ({
    metadata: { name: "p", uid: "u1", ...extra },
    status: { phase: "Running", ...status },
  });
  assert.equal(sandboxMayRun(undefined, "u1", now), false, "pod gone");
  assert.equal(sandboxMayRun(pod({ uid: "u2" }), "u1", now), false, "another pod of the same name");
  assert.equal(sandboxMayRun(pod(), "u1", now), true, "alive");
  const terminating = (at: string) => pod({ deletionTimestamp: at, deletionGracePeriodSeconds: 30 });
  assert.equal(sandboxMayRun(terminating("2026-01-01T00:00:45Z"), "u1", now), true, "within grace");
  const justOver = new Date(now - GRACE_SKEW_MS + 1000).toISOString();
  assert.equal(sandboxMayRun(terminating(justOver), "u1", now), true, "within the skew allowance");
  const longOver = new Date(now - GRACE_SKEW_MS - 1000).toISOString();
  assert.equal(sandboxMayRun(terminating(longOver), "u1", now), false, "past grace and skew");
  const done = {
    metadata: { name: "p", uid: "u1" },
    spec: { restartPolicy: "Never" },
    status: { phase: "Succeeded" },
  };
  assert.equal(sandboxMayRun(done, "u1", now), false, "finished for good");
});
