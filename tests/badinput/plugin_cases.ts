// Malformed input to the real `spiderpool` plugin: its stdin (the network configuration), the CNI_* environment
// and CNI_ARGS. Every case aims at a live pod that names a good pool, so an input let through would allocate.

import type { Case, World } from "./env.ts";

interface Input {
  /** Changes to the good ADD environment; undefined removes a variable. */
  env?: Record<string, string | undefined>;
  /** The configuration object (JSON-encoded) or raw stdin; default the good configuration. */
  conf?: Record<string, unknown>;
  stdin?: string | Uint8Array;
}

function pluginCase(name: string, code: number, says: RegExp[], input: (w: World) => Input): Case {
  return {
    name: `plugin: ${name}`,
    code,
    says,
    async run(w) {
      const i = input(w);
      const stdin = i.stdin ?? JSON.stringify(i.conf ?? w.conf());
      return w.outcome(await w.plugin({ ...w.env(), ...i.env }, stdin));
    },
  };
}

/** A case whose good configuration gets `ipam` keys changed. */
function ipamCase(name: string, code: number, says: RegExp[], ipam: Record<string, unknown>): Case {
  return pluginCase(name, code, says, (w) => ({ conf: w.conf(ipam) }));
}

/** A case whose CNI_ARGS are replaced by `args(w)`. */
function argsCase(name: string, code: number, says: RegExp[], args: (w: World) => string): Case {
  return pluginCase(name, code, says, (w) => ({ env: { CNI_ARGS: args(w) } }));
}

const DECODING = 6;
const CONFIG = 7;
const ENV = 4;
const VERSION = 1;
const AGENT = 100;
const TRY_AGAIN = 11;

export function pluginCases(): Case[] {
  const pod = (w: World) =>
    `K8S_POD_NAMESPACE=${w.ns};K8S_POD_NAME=${w.victim.name};K8S_POD_UID=${w.victim.uid}`;
  return [
    // ----- stdin: the network configuration
    pluginCase("empty stdin", DECODING, [/network configuration on stdin/, /JSON/], () => ({ stdin: "" })),
    pluginCase("truncated JSON", DECODING, [/network configuration on stdin/], () => ({
      stdin: '{"cniVersion":"1.0.0","name":"n",',
    })),
    pluginCase("a JSON list", DECODING, [/must be a JSON object/], () => ({ stdin: "[]" })),
    pluginCase("a JSON string", DECODING, [/must be a JSON object/], () => ({ stdin: '"spiderpool"' })),
    pluginCase("JSON null", DECODING, [/must be a JSON object/], () => ({ stdin: "null" })),
    pluginCase("bytes that are not UTF-8 text", DECODING, [/network configuration on stdin/], () => ({
      stdin: new Uint8Array([0xff, 0xfe, 0x7b, 0x00, 0xc3, 0x28]),
    })),
    pluginCase("4 MiB of garbage", DECODING, [/network configuration on stdin/], () => ({
      stdin: "x".repeat(4 * 1024 * 1024),
    })),
    pluginCase("cniVersion as a number", DECODING, [/"cniVersion" must be a string/, /1/], (w) => ({
      conf: { ...w.conf(), cniVersion: 1 },
    })),
    pluginCase(
      "cniVersion that is not a version",
      DECODING,
      [/"cniVersion" "latest" is not a version/],
      (w) => ({
        conf: { ...w.conf(), cniVersion: "latest" },
      }),
    ),
    pluginCase(
      "cniVersion the plugin does not support",
      VERSION,
      [/incompatible CNI versions/, /"9\.9\.9"/],
      (w) => ({
        conf: { ...w.conf(), cniVersion: "9.9.9" },
      }),
    ),
    pluginCase("no network name", CONFIG, [/missing network name/, /"name"/], (w) => {
      const { name: _, ...conf } = w.conf();
      return { conf };
    }),
    pluginCase(
      "network name with spaces and !",
      CONFIG,
      [/network name "bad name!"/, /invalid characters/],
      (w) => ({
        conf: { ...w.conf(), name: "bad name!" },
      }),
    ),
    pluginCase("network name as a number", CONFIG, [/"name" must be a string, got 42/], (w) => ({
      conf: { ...w.conf(), name: 42 },
    })),
    pluginCase("no ipam section", CONFIG, [/missing "ipam" section/], (w) => {
      const { ipam: _, ...conf } = w.conf();
      return { conf };
    }),
    pluginCase("ipam as a string", CONFIG, [/"ipam" must be an object/, /got "spiderpool"/], (w) => ({
      conf: { ...w.conf(), ipam: "spiderpool" },
    })),
    ipamCase("ipam.type of another plugin", CONFIG, [/ipam\.type/, /"host-local"/], { type: "host-local" }),
    ipamCase("ipam.log_level unknown", CONFIG, [/ipam\.log_level/, /"loud"/], { log_level: "loud" }),
    ipamCase("ipam.log_level as a number", CONFIG, [/ipam\.log_level/, /a string/, /5/], { log_level: 5 }),
    ipamCase("ipam.log_file_max_size negative", CONFIG, [/ipam\.log_file_max_size/, /-1/], {
      log_file_max_size: -1,
    }),
    ipamCase("ipam.log_file_max_age as text", CONFIG, [/ipam\.log_file_max_age/, /"a month"/], {
      log_file_max_age: "a month",
    }),
    ipamCase("ipam.log_file_max_count fractional", CONFIG, [/ipam\.log_file_max_count/, /2\.5/], {
      log_file_max_count: 2.5,
    }),
    ipamCase("ipam.default_ipv4_ippool as a string", CONFIG, [/ipam\.default_ipv4_ippool/, /"pool-a"/], {
      default_ipv4_ippool: "pool-a",
    }),
    ipamCase("ipam.default_ipv4_ippool with a number", CONFIG, [/ipam\.default_ipv4_ippool/, /\[1\]/], {
      default_ipv4_ippool: [1],
    }),
    ipamCase("ipam.default_ipv6_ippool with an empty name", CONFIG, [/ipam\.default_ipv6_ippool/, /\[""\]/], {
      default_ipv6_ippool: [""],
    }),
    ipamCase("ipam.clean_gateway as a string", CONFIG, [/ipam\.clean_gateway/, /"yes"/], {
      clean_gateway: "yes",
    }),
    ipamCase("ipam.match_master_subnet as a number", CONFIG, [/ipam\.match_master_subnet/, /1/], {
      match_master_subnet: 1,
    }),
    ipamCase(
      "ipam.ipam_unix_socket_path relative",
      CONFIG,
      [/ipam\.ipam_unix_socket_path/, /"agent\.sock"/],
      {
        ipam_unix_socket_path: "agent.sock",
      },
    ),
    ipamCase("ipam.ipam_unix_socket_path as a number", CONFIG, [/ipam\.ipam_unix_socket_path/, /42/], {
      ipam_unix_socket_path: 42,
    }),
    ipamCase("ipam.ipam_unix_socket_path where no agent listens", TRY_AGAIN, [
      /\/nonexistent\/spiderpool\.sock/,
      /check the spiderpool-agent pod/,
    ], { ipam_unix_socket_path: "/nonexistent/spiderpool.sock" }),
    pluginCase(
      "GC in a configuration version without GC",
      VERSION,
      [/does not allow GC/, /"1\.0\.0"/],
      (w) => ({
        env: { CNI_COMMAND: "GC" },
        conf: { ...w.conf(), "cni.dev/valid-attachments": [] },
      }),
    ),
    pluginCase("GC with valid-attachments that is not a list", CONFIG, [
      /cni\.dev\/valid-attachments/,
      /"all"/,
    ], (
      w,
    ) => ({
      env: { CNI_COMMAND: "GC" },
      conf: { ...w.conf(), cniVersion: "1.1.0", "cni.dev/valid-attachments": "all" },
    })),
    pluginCase("GC with an attachment without containerID", CONFIG, [
      /cni\.dev\/valid-attachments/,
      /"ifname":"eth0"/,
    ], (
      w,
    ) => ({
      env: { CNI_COMMAND: "GC" },
      conf: { ...w.conf(), cniVersion: "1.1.0", "cni.dev/valid-attachments": [{ ifname: "eth0" }] },
    })),

    // ----- CNI_* environment
    pluginCase(
      "CNI_COMMAND unknown",
      ENV,
      [/unknown CNI_COMMAND: ATTACH/],
      () => ({ env: { CNI_COMMAND: "ATTACH" } }),
    ),
    pluginCase(
      "CNI_COMMAND in lower case",
      ENV,
      [/unknown CNI_COMMAND: add/],
      () => ({ env: { CNI_COMMAND: "add" } }),
    ),
    pluginCase("CNI_CONTAINERID missing", ENV, [/CNI_CONTAINERID/, /missing/], () => ({
      env: { CNI_CONTAINERID: undefined },
    })),
    pluginCase(
      "CNI_CONTAINERID with spaces",
      ENV,
      [/CNI_CONTAINERID "abc def"/, /invalid characters/],
      () => ({
        env: { CNI_CONTAINERID: "abc def" },
      }),
    ),
    pluginCase("CNI_CONTAINERID starting with a dash", ENV, [/CNI_CONTAINERID "-abc"/], () => ({
      env: { CNI_CONTAINERID: "-abc" },
    })),
    pluginCase("CNI_CONTAINERID with a slash", ENV, [/CNI_CONTAINERID "\.\.\/\.\.\/etc"/], () => ({
      env: { CNI_CONTAINERID: "../../etc" },
    })),
    pluginCase("CNI_NETNS missing", ENV, [/CNI_NETNS/, /missing/], () => ({ env: { CNI_NETNS: undefined } })),
    pluginCase(
      "CNI_IFNAME missing",
      ENV,
      [/CNI_IFNAME/, /missing/],
      () => ({ env: { CNI_IFNAME: undefined } }),
    ),
    pluginCase("CNI_IFNAME of 16 bytes", ENV, [/CNI_IFNAME="eth0123456789abc"/, /16 bytes/], () => ({
      env: { CNI_IFNAME: "eth0123456789abc" },
    })),
    pluginCase(
      "CNI_IFNAME with a slash",
      ENV,
      [/CNI_IFNAME="eth\/0"/],
      () => ({ env: { CNI_IFNAME: "eth/0" } }),
    ),
    pluginCase(
      "CNI_IFNAME with a space",
      ENV,
      [/CNI_IFNAME="eth 0"/],
      () => ({ env: { CNI_IFNAME: "eth 0" } }),
    ),
    pluginCase("CNI_IFNAME ..", ENV, [/CNI_IFNAME="\.\."/], () => ({ env: { CNI_IFNAME: ".." } })),
    pluginCase("CNI_IFNAME of 15 multi-byte characters", ENV, [/CNI_IFNAME="ééééééééé"/, /18 bytes/], () => ({
      env: { CNI_IFNAME: "ééééééééé" },
    })),
    pluginCase("CNI_PATH missing", ENV, [/CNI_PATH/, /missing/], () => ({ env: { CNI_PATH: undefined } })),
    pluginCase("DEL with CNI_IFNAME containing a colon", ENV, [/CNI_IFNAME="eth0:1"/], () => ({
      env: { CNI_COMMAND: "DEL", CNI_IFNAME: "eth0:1" },
    })),
    pluginCase("DEL with CNI_CONTAINERID missing", ENV, [/CNI_CONTAINERID/, /missing/], () => ({
      env: { CNI_COMMAND: "DEL", CNI_CONTAINERID: undefined },
    })),

    // ----- CNI_ARGS
    pluginCase("CNI_ARGS missing", ENV, [/CNI_ARGS lacks K8S_POD_NAMESPACE and K8S_POD_NAME/], () => ({
      env: { CNI_ARGS: undefined },
    })),
    argsCase(
      "CNI_ARGS a pair without =",
      ENV,
      [/CNI_ARGS: invalid pair "garbage"/],
      (w) => `${pod(w)};garbage`,
    ),
    argsCase(
      "CNI_ARGS a pair with an empty key",
      ENV,
      [/CNI_ARGS: invalid pair "=x"/],
      (w) => `=x;${pod(w)}`,
    ),
    argsCase(
      "CNI_ARGS IgnoreUnknown not a boolean",
      ENV,
      [/IgnoreUnknown="maybe"/],
      (w) => `IgnoreUnknown=maybe;${pod(w)}`,
    ),
    argsCase("CNI_ARGS IP not an address", ENV, [/IP="192\.0\.2\.300"/], (w) => `${pod(w)};IP=192.0.2.300`),
    argsCase(
      "CNI_ARGS K8S_POD_NAME missing",
      ENV,
      [/lacks K8S_POD_NAME/],
      (w) => `K8S_POD_NAMESPACE=${w.ns};K8S_POD_UID=${w.victim.uid}`,
    ),
    argsCase(
      "CNI_ARGS K8S_POD_NAMESPACE empty",
      ENV,
      [/lacks K8S_POD_NAMESPACE/],
      (w) => `K8S_POD_NAMESPACE=;K8S_POD_NAME=${w.victim.name}`,
    ),
    argsCase(
      "CNI_ARGS of 100 KiB of unknown keys and no pod name",
      ENV,
      [/lacks K8S_POD_NAME/],
      (w) => `${"X_UNKNOWN=".concat("v".repeat(100)).concat(";").repeat(1000)}K8S_POD_NAMESPACE=${w.ns}`,
    ),
    argsCase(
      "CNI_ARGS naming a pod that does not exist",
      AGENT,
      [/no-such-pod/, /not found/],
      (w) => `K8S_POD_NAMESPACE=${w.ns};K8S_POD_NAME=no-such-pod;K8S_POD_UID=${crypto.randomUUID()}`,
    ),
    argsCase(
      "CNI_ARGS with the UID of an older pod of that name",
      AGENT,
      [/00000000-0000-4000-8000-000000000000/],
      (w) =>
        `K8S_POD_NAMESPACE=${w.ns};K8S_POD_NAME=${w.victim.name};K8S_POD_UID=00000000-0000-4000-8000-000000000000`,
    ),
    argsCase(
      "CNI_ARGS pod name with a path",
      AGENT,
      [/podName in body "\.\.\/\.\.\/\.\.\/nodes\//, /not a valid pod name/],
      (w) =>
        `K8S_POD_NAMESPACE=${w.ns};K8S_POD_NAME=../../../nodes/${w.node.name};K8S_POD_UID=${w.victim.uid}`,
    ),
    argsCase(
      "CNI_ARGS namespace with a path",
      AGENT,
      [/podNamespace in body "x\/\.\.\//, /not a valid namespace name/],
      (w) => `K8S_POD_NAMESPACE=x/../${w.ns};K8S_POD_NAME=${w.victim.name};K8S_POD_UID=${w.victim.uid}`,
    ),
    argsCase(
      "CNI_ARGS namespace in upper case",
      AGENT,
      [/podNamespace in body "NOT-A-NAMESPACE" is not a valid namespace name/],
      (w) => `K8S_POD_NAMESPACE=NOT-A-NAMESPACE;K8S_POD_NAME=${w.victim.name};K8S_POD_UID=${w.victim.uid}`,
    ),
    argsCase(
      "CNI_ARGS pod name of 300 characters",
      AGENT,
      [/podName in body "a{20}/, /not a valid pod name/],
      (w) => `K8S_POD_NAMESPACE=${w.ns};K8S_POD_NAME=${"a".repeat(300)};K8S_POD_UID=${w.victim.uid}`,
    ),
  ];
}
