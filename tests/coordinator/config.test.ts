// Merging the coordinator's CNI configuration with the agent's SpiderCoordinator answer: which side wins, the
// defaults, and the errors for bad values (code 7, naming the key and the fix).

import assert from "node:assert/strict";
import type { CoordinatorConfig } from "../../src/agentapi/models.ts";
import { CniError } from "../../src/cni/errors.ts";
import { type CoordinatorNetConf, mergeSettings, readConf } from "../../src/coordinator/config.ts";

const conf = (o: Record<string, unknown> = {}): CoordinatorNetConf => ({
  cniVersion: "1.0.0",
  name: "macvlan-ens192",
  type: "coordinator",
  ...o,
});

const agent = (o: Partial<CoordinatorConfig> = {}): CoordinatorConfig => ({
  mode: "auto",
  overlayPodCIDR: ["198.18.128.0/18"],
  serviceCIDR: ["198.18.0.0/20"],
  hijackCIDR: ["169.254.0.0/16"],
  policyRoutes: [],
  podMACPrefix: "",
  tunePodRoutes: true,
  podDefaultRouteNIC: "",
  hostRuleTable: 500,
  podRPFilter: 0,
  txQueueLen: 0,
  vethLinkAddress: "",
  vethMTU: 1500,
  ...o,
});

function rejects(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof CniError && e.code === 7 && re.test(e.message));
}

Deno.test("the agent's values fill every key the CNI configuration leaves out", () => {
  const s = mergeSettings(
    conf(),
    agent({ podMACPrefix: "0a:1b", txQueueLen: 5000, podDefaultRouteNIC: "net1" }),
  );
  assert.equal(s.mode, "auto");
  assert.deepEqual(s.overlayPodCIDR, ["198.18.128.0/18"]);
  assert.deepEqual(s.serviceCIDR, ["198.18.0.0/20"]);
  assert.equal(s.podMACPrefix, "0a:1b");
  assert.equal(s.txQueueLen, 5000);
  assert.equal(s.podDefaultRouteNic, "net1");
  assert.equal(s.podDefaultCniNic, "eth0");
  assert.equal(s.agentSocket, "/var/run/spidernet/spiderpool.sock");
  assert.equal(s.log.level, "info");
});

Deno.test("a value in the CNI configuration wins over the SpiderCoordinator's", () => {
  const s = mergeSettings(
    conf({
      mode: "overlay",
      serviceCIDR: ["203.0.113.0/24"],
      hijackCIDR: ["198.19.0.0/16"],
      podMACPrefix: "0e:2c",
      tunePodRoutes: false,
      podDefaultRouteNic: "net2",
      hostRuleTable: 600,
      podRPFilter: -1,
      txQueueLen: 100,
      vethLinkAddress: "169.254.100.1",
      vethMTU: 9000,
    }),
    agent({ podDefaultRouteNIC: "net1" }),
  );
  assert.deepEqual(
    [
      s.mode,
      s.serviceCIDR,
      s.hijackCIDR,
      s.podMACPrefix,
      s.tunePodRoutes,
      s.podDefaultRouteNic,
      s.hostRuleTable,
    ],
    ["overlay", ["203.0.113.0/24"], ["198.19.0.0/16"], "0e:2c", false, "net2", 600],
  );
  assert.deepEqual([s.podRPFilter, s.txQueueLen, s.vethLinkAddress, s.vethMTU], [
    -1,
    100,
    "169.254.100.1",
    9000,
  ]);
  assert.deepEqual(s.overlayPodCIDR, ["198.18.128.0/18"]); // an absent key still comes from the agent
});

Deno.test("mode disable and disabled are the same; 0 and empty agent values fall back to the defaults", () => {
  assert.equal(mergeSettings(conf({ mode: "disabled" }), agent()).mode, "disable");
  assert.equal(mergeSettings(conf(), agent({ mode: "disable" })).mode, "disable");
  const s = mergeSettings(conf(), agent({ hostRuleTable: 0, vethMTU: 0 }));
  assert.deepEqual([s.hostRuleTable, s.vethMTU], [500, 1500]);
});

Deno.test("without the agent the configuration stands alone, with the documented defaults", () => {
  const s = mergeSettings(
    conf({ overlayPodCIDR: ["198.18.128.0/18"], serviceCIDR: ["198.18.0.0/20"] }),
    undefined,
  );
  assert.deepEqual(
    [s.mode, s.tunePodRoutes, s.hostRuleTable, s.podRPFilter, s.vethMTU, s.hijackCIDR],
    ["auto", true, 500, 0, 1500, []],
  );
});

Deno.test("CIDRs are made canonical, bare addresses become host routes, duplicates go", () => {
  const s = mergeSettings(
    conf({ hijackCIDR: ["169.254.20.10", "198.19.1.7/16", "198.19.0.0/16", "2001:db8::1"] }),
    agent(),
  );
  assert.deepEqual(s.hijackCIDR, ["169.254.20.10/32", "198.19.0.0/16", "2001:db8::1/128"]);
  const p = mergeSettings(conf({ policyRoutes: [{ dst: "198.19.7.9/24", gw: "192.0.2.1" }] }), agent());
  assert.deepEqual(p.policyRoutes, [{ family: 4, dst: "198.19.7.0/24", gw: "192.0.2.1" }]);
});

Deno.test("the MAC prefix accepts a dash and upper case; a multicast prefix is refused", () => {
  assert.equal(mergeSettings(conf({ podMACPrefix: "0A-1B" }), agent()).podMACPrefix, "0a:1b");
  rejects(
    () => mergeSettings(conf({ podMACPrefix: "01:1b" }), agent()),
    /podMACPrefix "01:1b" is a multicast prefix/,
  );
  rejects(
    () => mergeSettings(conf({ podMACPrefix: "0a1b" }), agent()),
    /podMACPrefix "0a1b" is not two hex bytes/,
  );
});

Deno.test("bad values are refused with code 7 naming the key", () => {
  rejects(
    () => mergeSettings(conf({ mode: "bridge" }), agent()),
    /"mode".*one of auto, underlay, overlay, disable/,
  );
  rejects(
    () => mergeSettings(conf({ serviceCIDR: "198.18.0.0/20" }), agent()),
    /"serviceCIDR": expected a list/,
  );
  rejects(() => mergeSettings(conf({ serviceCIDR: ["198.18.0.300/20"] }), agent()), /serviceCIDR\[0\]/);
  rejects(() => mergeSettings(conf({ podRPFilter: 3 }), agent()), /podRPFilter 3 is not an rp_filter mode/);
  rejects(() => mergeSettings(conf({ vethMTU: 0 }), agent()), /vethMTU 0 is out of range/);
  rejects(
    () => mergeSettings(conf({ hostRuleTable: "500" }), agent()),
    /"hostRuleTable": expected a whole number/,
  );
  rejects(
    () => mergeSettings(conf({ tunePodRoutes: "yes" }), agent()),
    /"tunePodRoutes": expected true or false/,
  );
  rejects(
    () => mergeSettings(conf({ vethLinkAddress: "2001:db8::1" }), agent()),
    /"vethLinkAddress": expected an IPv4/,
  );
  rejects(
    () => mergeSettings(conf({ podDefaultRouteNic: "a/b" }), agent()),
    /podDefaultRouteNic "a\/b" is not a valid/,
  );
  rejects(
    () => mergeSettings(conf({ policyRoutes: [{ dst: "198.19.0.0/16", gw: "2001:db8::1" }] }), agent()),
    /policyRoutes\[0\]: dst "198.19.0.0\/16" is IPv4 but gw "2001:db8::1" is IPv6/,
  );
  rejects(() => readConf(conf({ logOptions: { logLevel: "loud" } })), /"logOptions.logLevel"/);
  rejects(
    () => readConf(conf({ ipamUnixSocketPath: "run/x.sock" })),
    /"ipamUnixSocketPath": expected an absolute path/,
  );
});

Deno.test("a bad value served by the agent names the SpiderCoordinator", () => {
  assert.throws(
    () => mergeSettings(conf(), agent({ mode: "sideways" })),
    (e: unknown) =>
      e instanceof CniError &&
      /SpiderCoordinator served by spiderpool-agent has an invalid spec.mode/.test(e.message),
  );
});

Deno.test("log options: level, file and rotation limits", () => {
  const c = readConf(
    conf({
      logOptions: { logLevel: "debug", logFile: "/tmp/c.log", logMaxSize: 5, logMaxAge: 2, logMaxCount: 3 },
    }),
  );
  assert.deepEqual(c.log, { level: "debug", path: "/tmp/c.log", maxSizeMB: 5, maxAgeDays: 2, maxCount: 3 });
});
