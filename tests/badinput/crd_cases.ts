// Spiderpool objects written while no admission webhook runs (the webhook corpus of tests/controller covers what
// the webhook refuses): SpiderIPPools whose spec or status breaks a rule, SpiderReservedIPs that cannot be read,
// and SpiderEndpoints that record nonsense. The CRD schema lets each through; the agent must refuse the ADD that
// would use it, naming the object, the field and the value, and write nothing.

import { API_VERSION, PLURAL } from "../../src/api/constants.ts";
import { addUntil, type Case, lit, type Outcome, type PodRef, type World } from "./env.ts";

const AGENT = 100;
let seq = 0;

/** A pool of `spec` (a /24 of 203.0.113.0 by default, 10 addresses of its own) that a new pod names. */
function poolCase(
  name: string,
  says: RegExp[],
  spec: (n: number) => Record<string, unknown>,
  status?: (w: World) => Record<string, unknown>,
): Case {
  // The pool's name is known once the case is prepared; the runner reads `says` after that.
  const expect = [...says];
  let pod: PodRef;
  return {
    name: `SpiderIPPool: ${name}`,
    code: AGENT,
    says: expect,
    async prepare(w) {
      const n = ++seq;
      const pool = await w.createPool(`bad-${n}`, spec(n), status?.(w));
      expect.unshift(lit(pool));
      pod = await w.createPod(`crd-${n}`, { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [pool] }) });
    },
    run: (w) => addUntil(w, pod, expect),
  };
}

/** A valid spec in 203.0.113.0/24 with addresses no other case uses. */
const v4 = (n: number, extra: Record<string, unknown> = {}) => ({
  ipVersion: 4,
  subnet: "203.0.113.0/24",
  ips: [`203.0.113.${n * 2}-203.0.113.${n * 2 + 1}`],
  ...extra,
});

/** A SpiderReservedIP of `spec`, deleted again after the ADD; the pod names the good pool. */
function reservedCase(name: string, says: RegExp[], spec: Record<string, unknown>): Case {
  const expect = [...says];
  let pod: PodRef;
  let path = "";
  return {
    name: `SpiderReservedIP: ${name}`,
    code: AGENT,
    says: expect,
    async prepare(w) {
      const rip = w.scope.name(`rip-${++seq}`);
      const plural = `/apis/${API_VERSION}/${PLURAL.reservedIP}`;
      await w.http.post(plural, {
        apiVersion: API_VERSION,
        kind: "SpiderReservedIP",
        metadata: { name: rip },
        spec,
      });
      path = `${plural}/${rip}`;
      w.scope.track(path);
      expect.unshift(lit(`SpiderReservedIP "${rip}"`));
      pod = await w.createPod(`crd-${seq}`);
    },
    async run(w): Promise<Outcome> {
      try {
        return await addUntil(w, pod, expect);
      } finally {
        // Until it is gone, no address of its family is handed out: the checkpoint after the batch needs one.
        await w.http.delete(path).catch(() => {});
        await waitGone(w, path);
      }
    },
  };
}

/** A pod whose SpiderEndpoint (same name and UID, as a repeated ADD finds it) records `ips`. */
function endpointCase(name: string, says: RegExp[], ips: (w: World) => Record<string, unknown>[]): Case {
  const expect = [...says];
  let pod: PodRef;
  return {
    name: `SpiderEndpoint: ${name}`,
    code: AGENT,
    says: expect,
    async prepare(w) {
      pod = await w.createPod(`crd-${++seq}`);
      await w.http.post(`/apis/${API_VERSION}/namespaces/${w.ns}/${PLURAL.endpoint}`, {
        apiVersion: API_VERSION,
        kind: "SpiderEndpoint",
        metadata: { name: pod.name },
        status: {
          current: { uid: pod.uid, node: w.node.name, ips: ips(w) },
          ownerControllerType: "Pod",
          ownerControllerName: pod.name,
        },
      });
      expect.unshift(lit(`SpiderEndpoint ${w.ns}/${pod.name}`));
    },
    run: (w) => addUntil(w, pod, expect),
  };
}

async function waitGone(w: World, path: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await w.http.get(path);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function crdCases(): Case[] {
  return [
    // ----- spec.subnet and spec.ipVersion
    poolCase("spec.subnet not canonical", [/spec\.subnet/, /"203\.0\.113\.5\/24"/], (
      n,
    ) => ({ ...v4(n), subnet: "203.0.113.5/24" })),
    poolCase("spec.subnet prefix /33", [/spec\.subnet/, /203\.0\.113\.0\/33/], (n) => ({
      ...v4(n),
      subnet: "203.0.113.0/33",
    })),
    poolCase(
      "spec.subnet not an address",
      [/spec\.subnet/, /banana/],
      (n) => ({ ...v4(n), subnet: "banana" }),
    ),
    poolCase(
      "spec.ipVersion 6 with an IPv4 subnet",
      [/spec\.ipVersion/, /6/],
      (n) => ({ ...v4(n), ipVersion: 6 }),
    ),
    // ----- spec.ips and spec.excludeIPs
    poolCase("spec.ips with 203.0.113.300", [/spec\.ips/, /203\.0\.113\.300/], (n) => ({
      ...v4(n),
      ips: ["203.0.113.300"],
    })),
    poolCase("spec.ips with a reversed range", [/spec\.ips/, /203\.0\.113\.20-203\.0\.113\.10/], (n) => ({
      ...v4(n),
      ips: ["203.0.113.20-203.0.113.10"],
    })),
    poolCase("spec.ips with an IPv6 address", [/spec\.ips/, /2001:db8::1/], (n) => ({
      ...v4(n),
      ips: ["2001:db8::1"],
    })),
    poolCase("spec.ips with a space in a range", [/spec\.ips/, /203\.0\.113\.2 - 203\.0\.113\.3/], (n) => ({
      ...v4(n),
      ips: ["203.0.113.2 - 203.0.113.3"],
    })),
    poolCase("spec.excludeIPs not an address", [/spec\.excludeIPs/, /nonsense/], (n) => ({
      ...v4(n),
      excludeIPs: ["nonsense"],
    })),
    // ----- spec.gateway
    poolCase("spec.gateway 203.0.113.999", [/spec\.gateway/, /203\.0\.113\.999/], (n) =>
      v4(n, {
        gateway: "203.0.113.999",
      })),
    poolCase("spec.gateway outside the subnet", [/spec\.gateway/, /198\.51\.100\.1/], (n) =>
      v4(n, {
        gateway: "198.51.100.1",
      })),
    poolCase("spec.gateway of the other family", [/spec\.gateway/, /2001:db8::1/], (n) =>
      v4(n, {
        gateway: "2001:db8::1",
      })),
    // ----- spec.routes
    poolCase("spec.routes with the default route", [/spec\.routes/, /0\.0\.0\.0\/0/], (n) =>
      v4(n, {
        routes: [{ dst: "0.0.0.0/0", gw: "203.0.113.1" }],
      })),
    poolCase(
      "spec.routes with a gateway outside the subnet",
      [/spec\.routes/, /198\.51\.100\.1/],
      (n) =>
        v4(n, {
          routes: [{ dst: "198.18.0.0/16", gw: "198.51.100.1" }],
        }),
    ),
    poolCase("spec.routes with dst /33", [/spec\.routes/, /198\.18\.0\.0\/33/], (n) =>
      v4(n, {
        routes: [{ dst: "198.18.0.0/33", gw: "203.0.113.1" }],
      })),
    poolCase("spec.routes with the same dst twice", [/spec\.routes/, /198\.18\.0\.0\/16/], (n) =>
      v4(n, {
        routes: [{ dst: "198.18.0.0/16", gw: "203.0.113.1" }, { dst: "198.18.0.0/16", gw: "203.0.113.2" }],
      })),
    poolCase("spec.routes with an IPv6 dst", [/spec\.routes/, /2001:db8::\/64/], (n) =>
      v4(n, {
        routes: [{ dst: "2001:db8::/64", gw: "203.0.113.1" }],
      })),
    // ----- affinities
    poolCase("spec.podAffinity with an unknown operator", [/spec\.podAffinity/, /"Near"/], (n) =>
      v4(n, {
        podAffinity: { matchExpressions: [{ key: "app", operator: "Near", values: ["x"] }] },
      })),
    poolCase("spec.podAffinity In without values", [/spec\.podAffinity/, /values/], (n) =>
      v4(n, {
        podAffinity: { matchExpressions: [{ key: "app", operator: "In" }] },
      })),
    poolCase("spec.nodeAffinity with an unknown operator", [/spec\.nodeAffinity/, /"Gt"/], (n) =>
      v4(n, {
        nodeAffinity: { matchExpressions: [{ key: "zone", operator: "Gt", values: ["1"] }] },
      })),
    poolCase(
      "spec.namespaceAffinity label key with a space",
      [/spec\.namespaceAffinity/, /"bad key"/],
      (n) => v4(n, { namespaceAffinity: { matchLabels: { "bad key": "x" } } }),
    ),
    // ----- status.allocatedIPs (written by hand or by a broken tool)
    poolCase(
      "status.allocatedIPs that is not JSON",
      [/status\.allocatedIPs/],
      (n) => v4(n),
      () => ({ allocatedIPs: "{not json", allocatedIPCount: 1 }),
    ),
    poolCase(
      "status.allocatedIPs keyed by something that is not an address",
      [/status\.allocatedIPs/, /"host-1"/],
      (n) => v4(n),
      () => ({
        allocatedIPs: JSON.stringify({ "host-1": { pod: "a/b", podUid: "u" } }),
        allocatedIPCount: 1,
      }),
    ),
    poolCase(
      "status.allocatedIPs record without podUid",
      [/status\.allocatedIPs/, /podUid/],
      (n) => v4(n),
      (w) => ({
        allocatedIPs: JSON.stringify({ "203.0.113.99": { pod: `${w.ns}/x` } }),
        allocatedIPCount: 1,
      }),
    ),
    // ----- SpiderReservedIP
    reservedCase("spec.ips not an address", [/spec\.ips/, /not-an-ip/], { ipVersion: 4, ips: ["not-an-ip"] }),
    reservedCase("spec.ipVersion 4 with IPv6 addresses", [/spec\.ips|spec\.ipVersion/, /2001:db8::5/], {
      ipVersion: 4,
      ips: ["2001:db8::5"],
    }),
    // ----- SpiderEndpoint of the pod (a repeated ADD answers from it)
    endpointCase("status.current.ips[0].ipv4 not an address", [
      /status\.current\.ips\[0\]\.ipv4/,
      /"garbage"/,
    ], (w) => [{
      interface: "eth0",
      ipv4: "garbage",
      ipv4Pool: w.pool,
    }]),
    endpointCase("status.current.ips[0].ipv4Pool that does not exist", [
      /SpiderIPPool "no-such-pool-e1"/,
      /does not exist/,
    ], () => [{
      interface: "eth0",
      ipv4: "192.0.2.250/24",
      ipv4Pool: "no-such-pool-e1",
    }]),
    endpointCase("status.current.ips[0].ipv4 outside its pool", [/198\.51\.100\.7/], (w) => [{
      interface: "eth0",
      ipv4: "198.51.100.7/24",
      ipv4Pool: w.pool,
    }]),
  ];
}
