// Pods whose `ipam.spidernet.io/*` annotations (spec §3.1) and whose namespace's default-pool annotations
// (§3.2) have the wrong shape. Each pod is bound to the node and Running; the real plugin's ADD for it must be
// refused by the agent with a message naming the annotation and quoting the value, and allocate nothing.

import { type Case, lit, type Outcome, type PodRef, type World } from "./env.ts";
import { addUntil } from "./env.ts";
import { rawRequest } from "./socket_cases.ts";

const AGENT = 100;
const K = {
  ippool: "ipam.spidernet.io/ippool",
  ippools: "ipam.spidernet.io/ippools",
  subnet: "ipam.spidernet.io/subnet",
  subnets: "ipam.spidernet.io/subnets",
  ipNumber: "ipam.spidernet.io/ippool-ip-number",
  reclaim: "ipam.spidernet.io/ippool-reclaim",
  routes: "ipam.spidernet.io/routes",
  defaultRouteNIC: "ipam.spidernet.io/default-route-nic",
  nsV4: "ipam.spidernet.io/default-ipv4-ippool",
  nsV6: "ipam.spidernet.io/default-ipv6-ippool",
};

let pods = 0;

/** Names the key and quotes the value, as AnnotationError words it. */
function names(key: string, value: string): RegExp {
  return lit(`invalid annotation ${key}: ${JSON.stringify(value)}`);
}

/**
 * A pod with `annotations(w)` (a controller owner when `owned`), ADDed through the plugin; `says` adds what
 * the message must explain beyond the key and value.
 */
function podCase(
  name: string,
  says: RegExp[],
  annotations: (w: World) => Record<string, string>,
  owned = false,
): Case {
  return {
    name: `annotation: ${name}`,
    code: AGENT,
    says,
    async run(w) {
      const pod = await w.createPod(`anno-${++pods}`, annotations(w), owned ? await w.owner() : undefined);
      return await addUntil(w, pod, says);
    },
  };
}

/** A malformed value of `key` beside the good pool annotation (for keys read along with it). */
function shapeCase(
  key: string,
  value: string,
  why: RegExp,
  owned = false,
  extra?: (w: World) => Record<string, string>,
) {
  return podCase(
    `${key} = ${value.length > 40 ? `${value.slice(0, 40)}...` : value}`,
    [names(key, value), why],
    (w) => ({ ...(extra?.(w) ?? {}), [key]: value }),
    owned,
  );
}

/** A valid single-NIC subnet annotation: only the auto-pool annotations beside it are malformed. */
const subnetOf = () => ({ [K.subnet]: JSON.stringify({ interface: "eth0", ipv4: ["no-such-subnet"] }) });
const goodPool = (w: World) => ({ [K.ippool]: JSON.stringify({ ipv4: [w.pool] }) });

/** Namespace annotations: set on the test namespace, ADD for a pod without pool annotations, then removed. */
function namespaceCase(key: string, value: string, why: RegExp): Case {
  const says = [names(key, value), why];
  return {
    name: `namespace annotation: ${key} = ${value}`,
    code: AGENT,
    says,
    async run(w): Promise<Outcome> {
      const path = `/api/v1/namespaces/${w.ns}`;
      await w.http.patch(path, { metadata: { annotations: { [key]: value } } }, "merge");
      try {
        const pod = await w.createPod(`anno-${++pods}`, {});
        // Until the agent sees the annotation it falls back to the CNI defaults: a pool that does not exist.
        return await addUntil(w, pod, says, w.conf({ default_ipv4_ippool: [`${w.ns}-none`] }));
      } finally {
        await w.http.patch(path, { metadata: { annotations: { [key]: null } } }, "merge");
      }
    },
  };
}

/** GET /v1/coordinator/config for a pod whose default-route-nic is `value`. */
function routeNICCase(value: string, why: RegExp): Case {
  const says = [names(K.defaultRouteNIC, value), why];
  return {
    name: `annotation: ${K.defaultRouteNIC} = ${JSON.stringify(value)} (coordinator config)`,
    code: 500,
    says,
    async run(w) {
      const pod: PodRef = await w.createPod(`anno-${++pods}`, { ...goodPool(w), [K.defaultRouteNIC]: value });
      const body = JSON.stringify({ podNamespace: w.ns, podName: pod.name });
      const deadline = Date.now() + 15_000;
      for (;;) {
        const got = await w.socket(rawRequest("GET", "/v1/coordinator/config", body));
        if (got.code === 200 || says.every((re) => re.test(got.message)) || Date.now() > deadline) return got;
        await new Promise((r) => setTimeout(r, 200));
      }
    },
  };
}

export function annotationCases(): Case[] {
  const notJSON = /not valid JSON/;
  return [
    // ----- ipam.spidernet.io/ippool
    shapeCase(K.ippool, "v4-pool", notJSON),
    shapeCase(K.ippool, '["v4-pool"]', /expected a JSON object/),
    shapeCase(K.ippool, "null", /expected a JSON object/),
    shapeCase(K.ippool, '{"ipv4":"v4-pool"}', /ipv4 must be a list of pool names/),
    shapeCase(K.ippool, '{"ipv4":[1]}', /ipv4/),
    shapeCase(K.ippool, '{"ipv4":["Bad_Name!"]}', /Bad_Name!/),
    shapeCase(K.ippool, '{"ipv4":[""]}', /ipv4/),
    podCase(
      "ipam.spidernet.io/ippool names a pool that does not exist",
      [/no-such-pool-x1/, /not found/],
      () => ({
        [K.ippool]: JSON.stringify({ ipv4: ["no-such-pool-x1"] }),
      }),
    ),
    podCase("ipam.spidernet.io/ippool names an IPv4 pool for IPv6", [/IPv4 pool, not IPv6/], (w) => ({
      [K.ippool]: JSON.stringify({ ipv4: [w.pool], ipv6: [w.pool] }),
    })),
    // ----- ipam.spidernet.io/ippools
    shapeCase(K.ippools, "eth0=v4-pool", notJSON),
    shapeCase(K.ippools, '{"interface":"eth0","ipv4":["p"]}', /expected a JSON list/),
    shapeCase(K.ippools, "[]", /the list is empty/),
    shapeCase(K.ippools, "[1]", /not an object/),
    shapeCase(K.ippools, '[{"interface":"eth0","ipv4":["p"]},{"ipv4":["q"]}]', /interface/),
    shapeCase(K.ippools, '[{"interface":"eth0","ipv4":["p"]},{"interface":"eth0","ipv4":["q"]}]', /eth0/),
    shapeCase(K.ippools, '[{"interface":"eth 0","ipv4":["p"]}]', /interface/),
    shapeCase(K.ippools, '[{"interface":"eth0","ipv4":["p"],"cleangateway":"yes"}]', /cleangateway/),
    shapeCase(K.ippools, '[{"interface":"eth0","ipv4":"p"}]', /ipv4/),
    podCase("ipam.spidernet.io/ippools has no item for eth0", [
      lit(K.ippools),
      /no item for interface "eth0"/,
    ], (w) => ({
      [K.ippools]: JSON.stringify([{ interface: "net1", ipv4: [w.pool] }]),
    })),
    // ----- ipam.spidernet.io/subnet and subnets (auto-pools; the pod has a controller owner)
    shapeCase(K.subnet, "subnet-a", notJSON, true),
    shapeCase(K.subnet, '["subnet-a"]', /expected a JSON object/, true),
    shapeCase(K.subnet, '{"interface":"eth0","ipv4":"subnet-a"}', /ipv4/, true),
    shapeCase(K.subnet, '{"interface":"eth0","ipv4":[7]}', /ipv4/, true),
    shapeCase(K.subnet, '{"interface":"eth/0","ipv4":["subnet-a"]}', /interface/, true),
    shapeCase(K.subnets, "subnet-a", notJSON, true),
    shapeCase(K.subnets, '{"interface":"eth0","ipv4":["subnet-a"]}', /expected a JSON list/, true),
    shapeCase(K.subnets, "[]", /the list is empty/, true),
    shapeCase(
      K.subnets,
      '[{"interface":"eth0","ipv4":["s1"]},{"interface":"eth0","ipv4":["s2"]}]',
      /eth0/,
      true,
    ),
    shapeCase(K.subnets, '[{"interface":"eth0"}]', /ipv4|family/, true),
    podCase(
      "ipam.spidernet.io/subnet on a pod without a controller",
      [lit(K.subnet), /needs a controller/],
      () => ({
        [K.subnet]: JSON.stringify({ interface: "eth0", ipv4: ["subnet-a"] }),
      }),
    ),
    // ----- auto-pool size and reclaim, beside a valid subnet annotation
    shapeCase(K.ipNumber, "many", /\+N|N/, true, subnetOf),
    shapeCase(K.ipNumber, "-1", /\+N|N/, true, subnetOf),
    shapeCase(K.ipNumber, "++2", /\+N|N/, true, subnetOf),
    shapeCase(K.ipNumber, "1.5", /\+N|N/, true, subnetOf),
    shapeCase(K.reclaim, "maybe", /"true" or "false"/, true, subnetOf),
    shapeCase(K.reclaim, "yes", /"true" or "false"/, true, subnetOf),
    // ----- ipam.spidernet.io/routes
    shapeCase(K.routes, "198.51.100.0/24 via 192.0.2.1", notJSON, false, goodPool),
    shapeCase(
      K.routes,
      '{"dst":"198.51.100.0/24","gw":"192.0.2.1"}',
      /expected a JSON list/,
      false,
      goodPool,
    ),
    shapeCase(K.routes, "[1]", /not an object/, false, goodPool),
    shapeCase(K.routes, '[{"dst":"198.51.100.0/24"}]', /gw/, false, goodPool),
    shapeCase(K.routes, '[{"dst":"198.51.100.0/33","gw":"192.0.2.1"}]', /dst/, false, goodPool),
    shapeCase(K.routes, '[{"dst":"198.51.100.0/24","gw":"192.0.2.300"}]', /gw/, false, goodPool),
    shapeCase(K.routes, '[{"dst":"2001:db8::/64","gw":"192.0.2.1"}]', /IPv6|IPv4|family/, false, goodPool),
    // ----- ipam.spidernet.io/default-route-nic (served to the coordinator)
    routeNICCase("eth/0", /interface|name/),
    routeNICCase("averyveryverylongnicname", /interface|name|bytes/),
    // ----- namespace default pools
    namespaceCase(K.nsV4, "v4-pool", notJSON),
    namespaceCase(K.nsV4, '{"ipv4":["p"]}', /list/),
    namespaceCase(K.nsV6, "[1]", /pool name|string/),
  ];
}
