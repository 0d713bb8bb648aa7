// `spiderpool init` (also started as `spiderpool-init`): the post-install job of upstream's chart. Reads
// upstream's SPIDERPOOL_INIT_* environment, waits until the API server serves the CRDs and the controller's
// admission webhooks are registered, then creates the default SpiderCoordinator, the default SpiderSubnets and
// SpiderIPPools, and the SpiderMultusConfig of the cluster's default CNI. Objects that exist are left as they are,
// so running it again changes nothing. The environment is parsed and checked first by pure functions (bad values
// are reported with the variable, the value and the fix before anything is written).

import { API_VERSION, COORDINATOR_DEFAULTS, KIND, PLURAL } from "../api/constants.ts";
import { defaultCoordinator, defaultIPPool, defaultMultusConfig, defaultSubnet } from "../api/defaults.ts";
import type { SpiderCoordinator, SpiderIPPool, SpiderMultusConfig, SpiderSubnet } from "../api/types.ts";
import type { FieldError } from "../api/validate/common.ts";
import { validateCoordinator } from "../api/validate/coordinator.ts";
import { validateIPPool } from "../api/validate/ippool.ts";
import { validateMultusConfig } from "../api/validate/multusconfig.ts";
import { validateSubnet } from "../api/validate/subnet.ts";
import { type Family, IPError, parseCIDR, parseIP, parseRange } from "../ip/mod.ts";
import { ConflictError, KubeHttp, KubeHttpError, KubeTimeoutError, NotFoundError } from "../kube/client.ts";
import { closeKubeConfig, loadKubeConfig } from "../kube/client_node.ts";
import { parseFlags } from "./flags.ts";

const USAGE = `usage: spiderpool init [flags]

Creates the default SpiderCoordinator, SpiderSubnets, SpiderIPPools and the SpiderMultusConfig of the default
CNI from upstream's SPIDERPOOL_INIT_* environment variables, once the CRDs are served and the controller's
webhooks are registered. Existing objects are left unchanged.

flags:
  --kubeconfig PATH       kubeconfig file (default: in-cluster service account, else $KUBECONFIG)
  --timeout SECONDS       give up waiting after this long (default 300)
  --skip-webhook-wait     do not wait for the MutatingWebhookConfiguration and ValidatingWebhookConfiguration of
                          the controller (for clusters without the controller's webhooks); creations that reach
                          a webhook that is down are still retried until the timeout
  --readiness-file PATH   write "ready" here when done (default $SPIDERPOOL_INIT_READINESS_FILE; none when unset)
  -h, --help              print this help

environment (upstream's): SPIDERPOOL_NAMESPACE, SPIDERPOOL_CONTROLLER_NAME,
  SPIDERPOOL_INIT_DEFAULT_COORDINATOR_{NAME,MODE,POD_CIDR_TYPE,TUNE_POD_ROUTES,HIJACK_CIDR,VETH_LINK_ADDRESS,
  DETECT_GATEWAY,DETECT_IP_CONFLICT},
  SPIDERPOOL_INIT_DEFAULT_IPV{4,6}_{SUBNET_NAME,IPPOOL_NAME,IPPOOL_SUBNET,IPPOOL_IPRANGES,IPPOOL_GATEWAY},
  SPIDERPOOL_INIT_ENABLE_MULTUS_CONFIG, SPIDERPOOL_INIT_DEFAULT_CNI_{NAME,NAMESPACE,DIR}
`;

/** A bad SPIDERPOOL_INIT_* value; the message names the variable, the value and the fix. */
export class InitConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InitConfigError";
  }
}

/** What init is to create, from the environment. */
export interface InitConfig {
  namespace: string;
  /** Name of the controller's webhook configurations (`SPIDERPOOL_CONTROLLER_NAME`). */
  controllerName: string;
  coordinator?: SpiderCoordinator;
  subnets: SpiderSubnet[];
  pools: SpiderIPPool[];
  multus?: {
    namespace: string;
    /** From SPIDERPOOL_INIT_DEFAULT_CNI_NAME; undefined: read from the first CNI config in `dir`. */
    name?: string;
    dir?: string;
  };
  /** Settings upstream reads but v2beta1 has no field for; reported, not applied. */
  ignored: string[];
}

type Env = (key: string) => string | undefined;

/** Upstream strips quotes from every value (Helm renders some quoted). */
function value(env: Env, key: string): string {
  return (env(key) ?? "").replaceAll('"', "").trim();
}

function bool(env: Env, key: string, fallback: boolean): boolean {
  const v = value(env, key).toLowerCase();
  if (v === "") return fallback;
  if (["true", "1", "t"].includes(v)) return true;
  if (["false", "0", "f"].includes(v)) return false;
  throw new InitConfigError(`${key}=${JSON.stringify(env(key))} is not a boolean; use true or false`);
}

/**
 * A list value as the chart renders it: JSON (`["a","b"]`) or separated by commas or spaces; upstream strips
 * quotes, backslashes and brackets the same way.
 */
export function listValue(raw: string | undefined): string[] {
  if (!raw) return [];
  return raw.replace(/["\\[\]]/g, "").replaceAll(",", " ").split(/\s+/).filter((s) => s !== "");
}

function familyConfig(env: Env, family: Family): {
  subnet?: SpiderSubnet;
  pool?: SpiderIPPool;
} {
  const p = `SPIDERPOOL_INIT_DEFAULT_IPV${family}`;
  const subnetName = value(env, `${p}_SUBNET_NAME`);
  const poolName = value(env, `${p}_IPPOOL_NAME`);
  if (!subnetName && !poolName) return {};
  const cidrKey = `${p}_IPPOOL_SUBNET`;
  const cidr = value(env, cidrKey);
  if (!cidr) {
    throw new InitConfigError(
      `${cidrKey} is not set, but ${
        subnetName ? `${p}_SUBNET_NAME` : `${p}_IPPOOL_NAME`
      } asks for a default ` +
        `IPv${family} ${subnetName ? "SpiderSubnet" : "SpiderIPPool"}; set it to the subnet, e.g. ` +
        (family === 4 ? `"192.0.2.0/24"` : `"2001:db8::/64"`),
    );
  }
  try {
    if (parseCIDR(cidr, { canonical: true }).family !== family) {
      throw new IPError(`not an IPv${family} subnet`);
    }
  } catch (e) {
    if (!(e instanceof IPError)) throw e;
    throw new InitConfigError(`${cidrKey}=${JSON.stringify(cidr)}: ${e.message}`);
  }
  const gwKey = `${p}_IPPOOL_GATEWAY`;
  const gateway = value(env, gwKey);
  if (gateway) {
    try {
      if (parseIP(gateway).family !== family) throw new IPError(`not an IPv${family} address`);
    } catch (e) {
      if (!(e instanceof IPError)) throw e;
      throw new InitConfigError(
        `${gwKey}=${JSON.stringify(gateway)}: ${e.message}; use an IPv${family} address`,
      );
    }
  }
  const rangesKey = `${p}_IPPOOL_IPRANGES`;
  const ips = listValue(env(rangesKey));
  ips.forEach((r, i) => {
    try {
      parseRange(r, family);
    } catch (e) {
      if (!(e instanceof IPError)) throw e;
      throw new InitConfigError(`${rangesKey}[${i}] ${JSON.stringify(r)}: ${e.message}`);
    }
  });
  const spec = { ipVersion: family, subnet: cidr, ips, ...(gateway ? { gateway } : {}) };
  const out: { subnet?: SpiderSubnet; pool?: SpiderIPPool } = {};
  if (subnetName) {
    out.subnet = {
      apiVersion: API_VERSION,
      kind: KIND.subnet,
      metadata: { name: subnetName },
      spec: { ...spec },
    };
  }
  if (poolName) {
    out.pool = {
      apiVersion: API_VERSION,
      kind: KIND.ippool,
      metadata: { name: poolName },
      spec: { ...spec, ips: [...ips], default: true },
    };
  }
  return out;
}

/**
 * Reads and checks the environment. Throws InitConfigError for anything init could not create as asked; the
 * objects returned also pass the project's own defaulting and validation, so the webhook accepts them.
 */
export function initConfigFromEnv(env: Env): InitConfig {
  const namespace = value(env, "SPIDERPOOL_NAMESPACE") || "kube-system";
  const ignored: string[] = [];
  let coordinator: SpiderCoordinator | undefined;
  const coordName = value(env, "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME");
  if (coordName) {
    const k = (s: string) => `SPIDERPOOL_INIT_DEFAULT_COORDINATOR_${s}`;
    const hijack = listValue(env(k("HIJACK_CIDR")));
    for (const legacy of ["DETECT_GATEWAY", "DETECT_IP_CONFLICT"]) {
      // Checked as upstream does, but v2beta1 moved both into the ConfigMap (enableGatewayDetection,
      // enableIPConflictDetection).
      if (bool(env, k(legacy), false)) ignored.push(`${k(legacy)}=true (set it in the ConfigMap instead)`);
    }
    const vethLinkAddress = value(env, k("VETH_LINK_ADDRESS"));
    coordinator = defaultCoordinator({
      apiVersion: API_VERSION,
      kind: KIND.coordinator,
      metadata: { name: coordName },
      spec: {
        mode: value(env, k("MODE")) || COORDINATOR_DEFAULTS.mode,
        podCIDRType: value(env, k("POD_CIDR_TYPE")) || COORDINATOR_DEFAULTS.podCIDRType,
        tunePodRoutes: bool(env, k("TUNE_POD_ROUTES"), COORDINATOR_DEFAULTS.tunePodRoutes),
        hijackCIDR: env(k("HIJACK_CIDR")) === undefined ? [...COORDINATOR_DEFAULTS.hijackCIDR] : hijack,
        podDefaultRouteNIC: "",
        podMACPrefix: "",
        ...(vethLinkAddress ? { vethLinkAddress } : {}),
      } as SpiderCoordinator["spec"],
    });
    refuse(validateCoordinator(coordinator), {
      "spec.mode": k("MODE"),
      "spec.podCIDRType": k("POD_CIDR_TYPE"),
      "spec.hijackCIDR": k("HIJACK_CIDR"),
      "spec.vethLinkAddress": k("VETH_LINK_ADDRESS"),
    });
  }
  const v4 = familyConfig(env, 4);
  const v6 = familyConfig(env, 6);
  for (const what of ["SUBNET", "IPPOOL"]) {
    const a = value(env, `SPIDERPOOL_INIT_DEFAULT_IPV4_${what}_NAME`);
    if (a && a === value(env, `SPIDERPOOL_INIT_DEFAULT_IPV6_${what}_NAME`)) {
      throw new InitConfigError(
        `SPIDERPOOL_INIT_DEFAULT_IPV4_${what}_NAME and SPIDERPOOL_INIT_DEFAULT_IPV6_${what}_NAME are both ` +
          `${JSON.stringify(a)}; the IPv4 and IPv6 ${
            what === "SUBNET" ? "subnets" : "pools"
          } need different names`,
      );
    }
  }
  const subnets = [v4.subnet, v6.subnet].filter((s) => s !== undefined);
  const pools = [v4.pool, v6.pool].filter((p) => p !== undefined);
  const flags = { enableIPv4: true, enableIPv6: true, enableSpiderSubnet: true };
  for (const s of subnets) {
    const f = s.spec?.ipVersion;
    refuse(validateSubnet(defaultSubnet(s), undefined, { ...flags, subnets, pools: [] }), fieldVars(f));
  }
  for (const pool of pools) {
    const f = pool.spec?.ipVersion;
    const defaulted = defaultIPPool(pool, { enableSpiderSubnet: false, subnets: [] });
    refuse(
      validateIPPool(defaulted, undefined, { ...flags, enableSpiderSubnet: false, pools: [] }),
      fieldVars(f),
    );
  }
  let multus: InitConfig["multus"];
  if (bool(env, "SPIDERPOOL_INIT_ENABLE_MULTUS_CONFIG", false)) {
    multus = {
      namespace: value(env, "SPIDERPOOL_INIT_DEFAULT_CNI_NAMESPACE") || namespace,
      name: value(env, "SPIDERPOOL_INIT_DEFAULT_CNI_NAME") || undefined,
      dir: value(env, "SPIDERPOOL_INIT_DEFAULT_CNI_DIR") || undefined,
    };
    if (!multus.name && !multus.dir) multus.dir = "/etc/cni/net.d";
  }
  return {
    namespace,
    controllerName: value(env, "SPIDERPOOL_CONTROLLER_NAME") || "spiderpool-controller",
    coordinator,
    subnets,
    pools,
    multus,
    ignored,
  };
}

function fieldVars(family: number | undefined): Record<string, string> {
  const p = `SPIDERPOOL_INIT_DEFAULT_IPV${family}`;
  return {
    "spec.subnet": `${p}_IPPOOL_SUBNET`,
    "spec.ips": `${p}_IPPOOL_IPRANGES`,
    "spec.gateway": `${p}_IPPOOL_GATEWAY`,
  };
}

/** Throws the validation errors, each followed by the environment variable that set the field. */
function refuse(errors: FieldError[], vars: Record<string, string>): void {
  if (errors.length === 0) return;
  throw new InitConfigError(
    errors.map((e) => {
      const v = Object.entries(vars).find(([field]) => e.path === field || e.path.startsWith(`${field}[`))
        ?.[1];
      return v ? `${e.message} (set by ${v})` : e.message;
    }).join("\n"),
  );
}

/** Upstream maps the default CNI's type so; others (calico, cilium, flannel, ...) are `custom`. */
const KNOWN_CNI_TYPES = ["macvlan", "ipvlan", "sriov", "ib-sriov", "ipoib"];
const LEGACY_CALICO_NAME = "k8s-pod-network";

/** A CNI config file's `name` and first plugin `type`; throws with the file name when it is not valid. */
export function cniNameAndType(file: string, text: string): { name: string; type: string } {
  let conf: { name?: unknown; type?: unknown; plugins?: { type?: unknown }[] };
  try {
    conf = JSON.parse(text);
  } catch (e) {
    throw new InitConfigError(`CNI config ${file} is not valid JSON: ${(e as Error).message}`);
  }
  const type = file.endsWith(".conflist") ? conf.plugins?.[0]?.type : conf.type;
  if (typeof conf.name !== "string" || conf.name === "" || typeof type !== "string") {
    throw new InitConfigError(
      `CNI config ${file} has no ${typeof conf.name !== "string" ? '"name"' : "plugin type"}; set ` +
        `SPIDERPOOL_INIT_DEFAULT_CNI_NAME to the default network's name instead`,
    );
  }
  return { name: conf.name, type };
}

/** Upstream's choice of the default CNI config: `.conf`/`.conflist` files, Multus' own skipped, first by name. */
export function defaultCNIFile(files: readonly string[]): string | undefined {
  return files.filter((f) => (f.endsWith(".conf") || f.endsWith(".conflist")) && !f.includes("00-multus"))
    .sort()[0];
}

/**
 * The SpiderMultusConfig for the cluster's default CNI, as upstream builds it: named after the CNI network
 * (Calico's legacy `k8s-pod-network` becomes `calico`, the NAD keeping the old name), coordinator off. Every type
 * is created as `custom` — a NetworkAttachmentDefinition without config, which Multus resolves to the CNI file of
 * that name — because the master interface or resource a macvlan/SR-IOV block needs is not known here (upstream
 * writes the bare type, which its own webhook then refuses).
 */
export function defaultNetworkConfig(name: string, namespace: string): SpiderMultusConfig {
  const annotations: Record<string, string> = {};
  let crName = name;
  if (name === LEGACY_CALICO_NAME) {
    crName = "calico";
    annotations["multus.spidernet.io/cr-name"] = LEGACY_CALICO_NAME;
  }
  return {
    apiVersion: API_VERSION,
    kind: KIND.multusConfig,
    metadata: { name: crName, namespace, ...(Object.keys(annotations).length ? { annotations } : {}) },
    spec: { cniType: "custom", enableCoordinator: false },
  };
}

// ---------------------------------------------------------------------------------------------------------------

/** A create that failed for a reason waiting will not fix; names the object and what the API server said. */
export class InitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InitError";
  }
}

export interface InitOptions {
  http: KubeHttp;
  config: InitConfig;
  /** Overall deadline (ms since epoch). */
  deadline: number;
  waitWebhook: boolean;
  log: (message: string) => void;
  /** Pause between tries; default 2 s (upstream's). */
  retryMs?: number;
}

/** What init did with each object: `created` or `exists`. */
export type InitOutcome = { kind: string; name: string; result: "created" | "exists" };

const GROUP_PATH = `/apis/${API_VERSION}`;

async function retry<T>(opts: InitOptions, what: string, fn: () => Promise<T | undefined>): Promise<T> {
  let last = "";
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      if (!transient(err)) throw err;
      last = (err as Error).message;
    }
    if (Date.now() >= opts.deadline) {
      throw new InitError(`gave up waiting for ${what}${last ? `; last error: ${last}` : ""}`);
    }
    opts.log(`waiting for ${what}${last ? ` (${last})` : ""}`);
    await new Promise((r) =>
      setTimeout(r, Math.min(opts.retryMs ?? 2_000, Math.max(0, opts.deadline - Date.now())))
    );
  }
}

/** Errors that waiting can fix: the API server or the webhook not answering (yet). */
function transient(err: unknown): boolean {
  if (err instanceof KubeTimeoutError || err instanceof TypeError) return true;
  if (err instanceof NotFoundError) return true; // the CRD is not served yet
  if (err instanceof KubeHttpError) {
    if ([429, 502, 503, 504].includes(err.status)) return true;
    // A webhook with failurePolicy Fail whose server does not answer yet.
    return err.status === 500 && /failed calling webhook|webhook/i.test(err.message);
  }
  return false;
}

async function waitCRDs(opts: InitOptions, plurals: string[]): Promise<void> {
  await retry(opts, `the API server to serve ${plurals.join(", ")} (${GROUP_PATH})`, async () => {
    const { body } = await opts.http.get<{ resources?: { name: string }[] }>(GROUP_PATH);
    const served = new Set((body.resources ?? []).map((r) => r.name));
    return plurals.every((p) => served.has(p)) ? true : undefined;
  });
}

interface WebhookConfiguration {
  webhooks?: { name: string; clientConfig?: { caBundle?: string } }[];
}

async function waitWebhooks(opts: InitOptions): Promise<void> {
  const name = opts.config.controllerName;
  for (const kind of ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"]) {
    await retry(opts, `${kind}/${name} of the controller, with its CA`, async () => {
      const { body } = await opts.http.get<WebhookConfiguration>(
        `/apis/admissionregistration.k8s.io/v1/${kind}/${encodeURIComponent(name)}`,
      );
      const hooks = body.webhooks ?? [];
      return hooks.length > 0 && hooks.every((h) => h.clientConfig?.caBundle) ? true : undefined;
    });
  }
}

async function create(
  opts: InitOptions,
  collection: string,
  obj: { kind?: string; metadata?: { name?: string; namespace?: string } },
): Promise<InitOutcome> {
  const kind = obj.kind ?? "";
  const name = obj.metadata?.namespace
    ? `${obj.metadata.namespace}/${obj.metadata.name}`
    : obj.metadata?.name ?? "";
  const result = await retry(opts, `the API server to accept ${kind} ${JSON.stringify(name)}`, async () => {
    try {
      await opts.http.post(collection, obj);
      return "created" as const;
    } catch (err) {
      if (err instanceof ConflictError && err.reason === "AlreadyExists") return "exists" as const;
      if (err instanceof KubeHttpError && !transient(err)) {
        throw new InitError(`could not create ${kind} ${JSON.stringify(name)}: ${err.message}`);
      }
      throw err;
    }
  });
  opts.log(
    result === "created"
      ? `created ${kind} ${JSON.stringify(name)}`
      : `${kind} ${JSON.stringify(name)} exists; left unchanged`,
  );
  return { kind, name, result };
}

/** The default CNI's network name and type, from the CNI config directory. */
async function defaultCNI(dir: string): Promise<{ name: string; type: string; file?: string }> {
  let files: string[];
  try {
    files = [];
    for await (const e of Deno.readDir(dir)) if (e.isFile || e.isSymlink) files.push(e.name);
  } catch (err) {
    throw new InitConfigError(
      `SPIDERPOOL_INIT_DEFAULT_CNI_DIR ${dir} cannot be read: ${
        (err as Error).message
      }; mount the host's CNI ` +
        `config directory there or set SPIDERPOOL_INIT_DEFAULT_CNI_NAME`,
    );
  }
  const file = defaultCNIFile(files);
  // Upstream: no CNI config yet means a SpiderMultusConfig named "default".
  if (file === undefined) return { name: "default", type: "custom" };
  return { ...cniNameAndType(`${dir}/${file}`, await Deno.readTextFile(`${dir}/${file}`)), file };
}

/** Waits, then creates every object of `opts.config`; returns what happened to each. */
export async function runInit(opts: InitOptions): Promise<InitOutcome[]> {
  const { config } = opts;
  for (const i of config.ignored) opts.log(`ignored: ${i}`);
  const plurals = [
    ...(config.coordinator ? [PLURAL.coordinator] : []),
    ...(config.subnets.length ? [PLURAL.subnet] : []),
    ...(config.pools.length ? [PLURAL.ippool] : []),
    ...(config.multus ? [PLURAL.multusConfig] : []),
  ];
  if (plurals.length === 0) {
    opts.log("nothing to create: no default coordinator, subnet, pool or Multus config is configured");
    return [];
  }
  await waitCRDs(opts, plurals);
  if (opts.waitWebhook) await waitWebhooks(opts);
  const out: InitOutcome[] = [];
  if (config.coordinator) {
    out.push(await create(opts, `${GROUP_PATH}/${PLURAL.coordinator}`, config.coordinator));
  }
  // Subnets before pools, so the webhook can make each pool's subnet its owner.
  for (const s of config.subnets) out.push(await create(opts, `${GROUP_PATH}/${PLURAL.subnet}`, s));
  for (const p of config.pools) out.push(await create(opts, `${GROUP_PATH}/${PLURAL.ippool}`, p));
  if (config.multus) {
    let name = config.multus.name;
    if (name === undefined) {
      const found = await defaultCNI(config.multus.dir!);
      name = found.name;
      opts.log(
        `default CNI: ${
          found.file ? `network ${JSON.stringify(name)} of type ${found.type} (${found.file})` : "none found"
        }` +
          (KNOWN_CNI_TYPES.includes(found.type) ? "; its SpiderMultusConfig is created as custom" : ""),
      );
    }
    const smc = defaultNetworkConfig(name, config.multus.namespace);
    const problems = validateMultusConfig(defaultMultusConfig(smc));
    if (problems.length) throw new InitError(problems.map((e) => e.message).join("\n"));
    out.push(
      await create(
        opts,
        `${GROUP_PATH}/namespaces/${encodeURIComponent(smc.metadata.namespace!)}/${PLURAL.multusConfig}`,
        smc,
      ),
    );
  }
  return out;
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseFlags("init", USAGE, args, {
    kubeconfig: { type: "string" },
    timeout: { type: "string" },
    "skip-webhook-wait": { type: "boolean" },
    "readiness-file": { type: "string" },
  });
  if ("exit" in parsed) return parsed.exit;
  const { values } = parsed;
  const log = (m: string) => console.error(`spiderpool init: ${m}`);
  const timeout = Number(values.timeout ?? "300");
  if (!Number.isFinite(timeout) || timeout <= 0) {
    console.error(
      `spiderpool init: --timeout must be a number of seconds > 0, got ${JSON.stringify(values.timeout)}`,
    );
    return 2;
  }
  let config: InitConfig;
  try {
    config = initConfigFromEnv((k) => Deno.env.get(k));
  } catch (err) {
    if (!(err instanceof InitConfigError)) throw err;
    console.error(`spiderpool init: ${err.message}`);
    return 2;
  }
  const kc = loadKubeConfig(values.kubeconfig);
  const http = await KubeHttp.fromKubeConfig(kc, { timeoutMs: 15_000 });
  try {
    await runInit({
      http,
      config,
      deadline: Date.now() + timeout * 1000,
      waitWebhook: !values["skip-webhook-wait"],
      log,
    });
    const readiness = values["readiness-file"] ??
      (Deno.env.get("SPIDERPOOL_INIT_READINESS_FILE") || undefined);
    if (readiness) {
      await Deno.mkdir(readiness.slice(0, Math.max(1, readiness.lastIndexOf("/"))), { recursive: true });
      await Deno.writeTextFile(readiness, "ready");
    }
    log("done");
    return 0;
  } catch (err) {
    if (err instanceof InitError || err instanceof InitConfigError) {
      log(err.message);
      return 1;
    }
    log(`failed: ${(err as Error).message}`);
    return 1;
  } finally {
    http.close();
    await closeKubeConfig(kc);
  }
}
