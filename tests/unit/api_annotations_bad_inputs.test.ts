// A corpus of malformed annotation values. Each must be rejected with an AnnotationError whose message names
// the annotation key, quotes the value (cut when long) and says what to write instead.

import assert from "node:assert/strict";
import {
  AnnotationError,
  parseDefaultRouteNIC,
  parseIPPoolAnnotation,
  parseIPPoolsAnnotation,
  parseMultusDefaultNetwork,
  parseMultusNetworks,
  parseNamespaceDefaultPools,
  parsePoolIPNumber,
  parsePoolReclaim,
  parseRoutesAnnotation,
  parseSubnetAnnotation,
  parseSubnetsAnnotation,
} from "../../src/api/annotations.ts";
import { ANNOTATION } from "../../src/api/constants.ts";

type Parser = (value: string) => unknown;

const ippool: [string, Parser] = [ANNOTATION.ippool, parseIPPoolAnnotation];
const ippools: [string, Parser] = [ANNOTATION.ippools, parseIPPoolsAnnotation];
const subnet: [string, Parser] = [ANNOTATION.subnet, parseSubnetAnnotation];
const subnets: [string, Parser] = [ANNOTATION.subnets, parseSubnetsAnnotation];
const ipNumber: [string, Parser] = [ANNOTATION.ippoolIPNumber, parsePoolIPNumber];
const reclaim: [string, Parser] = [ANNOTATION.ippoolReclaim, parsePoolReclaim];
const routes: [string, Parser] = [ANNOTATION.routes, parseRoutesAnnotation];
const routeNIC: [string, Parser] = [ANNOTATION.defaultRouteNIC, parseDefaultRouteNIC];
const nsV4: [string, Parser] = [
  ANNOTATION.defaultIPv4IPPool,
  (v) => parseNamespaceDefaultPools(ANNOTATION.defaultIPv4IPPool, v),
];
const networks: [string, Parser] = [ANNOTATION.multusNetworks, (v) => parseMultusNetworks(v, "default")];
const defaultNet: [string, Parser] = [
  ANNOTATION.multusDefaultNetwork,
  (v) => parseMultusDefaultNetwork(v, "spiderpool"),
];

/** [behaviour, annotation, value, fragments the message must contain] */
const CORPUS: [string, [string, Parser], string, string[]][] = [
  ["ippool is not JSON", ippool, "v4-a", ["not valid JSON", '{"ipv4":["pool-a"]']],
  ["ippool is a list instead of an object", ippool, '["v4-a"]', ["expected a JSON object"]],
  ["ippool ipv4 is a string instead of a list", ippool, '{"ipv4":"v4-a"}', [
    "ipv4 must be a list of pool names",
  ]],
  ["ippool pool name has upper case", ippool, '{"ipv4":["V4-A"]}', [
    '"V4-A" is not a valid pool name',
    "lower-case",
  ]],
  ["ippool pool name is empty", ippool, '{"ipv4":[""]}', ["a pool name is empty"]],
  ["ippool glob is unterminated", ippool, '{"ipv4":["v4-[a"]}', ['pattern "v4-[a" is not a valid glob']],
  ["ippool glob has a slash", ippool, '{"ipv4":["ns/v4-*"]}', [
    "characters that cannot occur in a pool name",
  ]],
  ["ippools is an object", ippools, '{"interface":"eth0"}', ["expected a JSON list"]],
  ["ippools is empty", ippools, "[]", ["the list is empty", "at least one item"]],
  [
    "ippools mixes named and unnamed items",
    ippools,
    '[{"interface":"eth0","ipv4":["a"]},{"ipv4":["b"]}]',
    ["item [1] does not name an interface but item [0] does", 'set "interface" on every item or on none'],
  ],
  [
    "ippools names an interface twice",
    ippools,
    '[{"interface":"eth0","ipv4":["a"]},{"interface":"eth0","ipv4":["b"]}]',
    ['interface "eth0" appears twice', "exactly one item"],
  ],
  ["ippools cleangateway is a string", ippools, '[{"ipv4":["a"],"cleangateway":"yes"}]', [
    "cleangateway must be true or false",
  ]],
  [
    "ippools interface name is too long",
    ippools,
    '[{"interface":"averyverylongnicname","ipv4":["a"]}]',
    ["is not a valid interface name", "1-15 characters"],
  ],
  ["ippools item is a string", ippools, '["v4-a"]', ["item [0] is not an object"]],
  ["subnet names no family", subnet, '{"interface":"eth0"}', [
    "names no subnet",
    'at least one of "ipv4" or "ipv6"',
  ]],
  ["subnet uses a glob", subnet, '{"ipv4":["s4-*"]}', ["globs are not allowed here"]],
  ["subnet is not JSON", subnet, "s4-a", ["not valid JSON"]],
  [
    "subnets has two items without interface (both for eth0)",
    subnets,
    '[{"ipv4":["s4-a"]},{"ipv4":["s4-b"]}]',
    ['interface "eth0" appears twice'],
  ],
  [
    "subnets repeats an interface",
    subnets,
    '[{"interface":"eth0","ipv4":["s4-a"]},{"interface":"eth0","ipv4":["s4-b"]}]',
    ['interface "eth0" appears twice'],
  ],
  [
    "subnets reuses a subnet for two NICs",
    subnets,
    '[{"interface":"eth0","ipv4":["s4-a"]},{"interface":"net1","ipv4":["s4-a"]}]',
    ['SpiderSubnet "s4-a" is used for more than one interface'],
  ],
  [
    "subnets item names no family",
    subnets,
    '[{"interface":"eth0","ipv4":[]}]',
    ["item [0] names no subnet"],
  ],
  ["subnets is empty", subnets, "[]", ["the list is empty"]],
  ["ip number is negative", ipNumber, "-1", ['"N" (fixed pool size) or "+N"']],
  ["ip number has two plus signs", ipNumber, "++1", ['"+N"']],
  ["ip number has a trailing plus", ipNumber, "1+", ['"+N"']],
  ["ip number is a word", ipNumber, "two", ['"+N"']],
  ["ip number is empty", ipNumber, "", ['"+N"']],
  ["ip number is fractional", ipNumber, "1.5", ['"+N"']],
  ["reclaim is yes", reclaim, "yes", ['expected "true" or "false"']],
  ["reclaim is empty", reclaim, "", ['expected "true" or "false"']],
  ["routes is an object", routes, '{"dst":"198.51.100.0/24","gw":"192.0.2.1"}', ["expected a JSON list"]],
  ["route misses gw", routes, '[{"dst":"198.51.100.0/24"}]', ['needs both "dst" and "gw"']],
  ["route dst is not a CIDR", routes, '[{"dst":"198.51.100.0","gw":"192.0.2.1"}]', [
    "item [0].dst",
    "/prefix",
  ]],
  ["route dst prefix is too long", routes, '[{"dst":"198.51.100.0/33","gw":"192.0.2.1"}]', [
    "item [0].dst",
    'prefix length "33" is not valid',
  ]],
  ["route gw is not an IP", routes, '[{"dst":"198.51.100.0/24","gw":"gateway"}]', ["item [0].gw"]],
  [
    "route mixes families",
    routes,
    '[{"dst":"2001:db8::/64","gw":"192.0.2.1"}]',
    ["is IPv6 but gw 192.0.2.1 is IPv4", "of the destination's family"],
  ],
  ["default-route-nic is empty", routeNIC, "", ["not a valid interface name"]],
  ["default-route-nic has a slash", routeNIC, "net/1", ["not a valid interface name"]],
  ["namespace default pools is a bare name", nsV4, "v4-a", ["not valid JSON", "JSON array of pool names"]],
  ["namespace default pools is an object", nsV4, '{"ipv4":["a"]}', ["must be a list of pool names"]],
  ["namespace default pools has a bad name", nsV4, '["Pool_A"]', ['"Pool_A" is not a valid pool name']],
  ["multus networks has two slashes", networks, "a/b/c", ['has more than one "/"']],
  ["multus networks has two at signs", networks, "net-a@net1@net2", ['has more than one "@"']],
  ["multus networks names an invalid namespace", networks, "Team_A/net-a", ['namespace "Team_A"']],
  ["multus networks names an invalid network", networks, "team-a/Net_A", ['network name "Net_A"']],
  ["multus networks is empty", networks, "  ", ["the value is empty"]],
  ["multus networks JSON is malformed", networks, '[{"name":"a"', ["not valid JSON"]],
  ["multus networks JSON item lacks a name", networks, '[{"namespace":"a"}]', ['network name ""']],
  ["multus networks JSON interface is a number", networks, '[{"name":"a","interface":1}]', [
    "interface must be a string",
  ]],
  ["multus default network names two networks", defaultNet, "a,b", ["names 2 networks", "exactly one"]],
];

for (const [behaviour, [key, parse], value, fragments] of CORPUS) {
  Deno.test(`rejected annotation: ${behaviour}`, () => {
    let err: unknown;
    try {
      parse(value);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof AnnotationError, `${key}=${value} was accepted`);
    assert.equal(err.key, key);
    assert.ok(err.message.includes(key), `message does not name ${key}: ${err.message}`);
    const quoted = JSON.stringify(value.length > 120 ? value.slice(0, 120) + "…" : value);
    assert.ok(err.message.includes(quoted), `message does not quote the value: ${err.message}`);
    for (const f of fragments) {
      assert.ok(err.message.includes(f), `message lacks ${JSON.stringify(f)}: ${err.message}`);
    }
  });
}

Deno.test("a long annotation value is cut in the message, with its length", () => {
  const value = JSON.stringify({ ipv4: Array.from({ length: 40 }, (_, i) => `Pool-${i}`) });
  assert.throws(() => parseIPPoolAnnotation(value), (e) => {
    assert.ok(e instanceof AnnotationError);
    assert.ok(e.message.includes(`(${value.length} characters)`), e.message);
    assert.ok(!e.message.includes(value), "the whole value was quoted");
    return true;
  });
});
