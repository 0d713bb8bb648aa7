// The MutatingWebhookConfiguration and ValidatingWebhookConfiguration named `spiderpool-controller`: built as
// plain objects from the kind table (paths, operations, `failurePolicy: Fail`, `sideEffects: None`, v1
// reviews, the caBundle), then written so that every replica can register the same content at start-up. A
// configuration that exists (deploy/webhooks.yaml ships both, without CA) is only patched, which RBAC can limit
// to that one name; one that does not exist is created when this controller may create it.

import { GROUP, VERSION } from "../../api/constants.ts";
import { type KubeHttp, KubeHttpError, NotFoundError } from "../../kube/client.ts";
import { KIND_WEBHOOKS, webhookPath } from "./handlers.ts";

/** Default name of both configurations. */
export const WEBHOOK_CONFIG_NAME = "spiderpool-controller";
const FIELD_MANAGER = "spiderpool-controller";

/** How the API server reaches the webhook server. */
export type WebhookEndpoint =
  /** In cluster: the controller's Service. */
  | { service: { namespace: string; name: string; port: number } }
  /** Outside a cluster (tests, development): a base URL such as `https://127.0.0.1:5722`. */
  | { url: string };

export interface RegistrationOptions {
  endpoint: WebhookEndpoint;
  caPem: string;
  /** Singular names of the kinds to register (e.g. without `spidercoordinator` when the coordinator is off). */
  kinds: readonly string[];
  /** Name of both configurations; default `spiderpool-controller`. */
  name?: string;
  /**
   * Restrict the webhooks to objects with these labels (`objectSelector.matchLabels`). Unset in production; a
   * test cluster shared with other suites uses it so that only its own objects reach this controller.
   */
  objectSelector?: Record<string, string>;
  /** Seconds the API server waits for an answer; default 10 (upstream's chart). */
  timeoutSeconds?: number;
  /**
   * ConfigMap `podResourceInject` when enabled: the Pod webhook `pods.spiderpool.spidernet.io` is added to the
   * mutating configuration; absent, it is left out (a merge patch then removes one an earlier start added).
   */
  podWebhook?: PodWebhookNamespaces;
}

/** Name of the Pod resource-injection webhook in the mutating configuration (upstream's). */
export const POD_WEBHOOK_NAME = `pods.${GROUP}`;
/** Path of the Pod resource-injection webhook (controller-runtime's pattern for the core group). */
export const POD_WEBHOOK_PATH = "/mutate--v1-pod";

/** Which namespaces' pods the Pod webhook sees (ConfigMap `podResourceInject`). */
export interface PodWebhookNamespaces {
  namespacesExclude: readonly string[];
  namespacesInclude: readonly string[];
}

/**
 * The Pod webhook's namespaceSelector, as upstream builds it: `kubernetes.io/metadata.name` NotIn the excluded
 * namespaces, and In the included ones when any are listed; `{}` (every namespace) when both are empty.
 */
export function podWebhookNamespaceSelector(
  ns: PodWebhookNamespaces,
): { matchExpressions?: { key: string; operator: "In" | "NotIn"; values: string[] }[] } {
  const matchExpressions: { key: string; operator: "In" | "NotIn"; values: string[] }[] = [];
  const key = "kubernetes.io/metadata.name";
  if (ns.namespacesExclude.length > 0) {
    matchExpressions.push({ key, operator: "NotIn", values: [...ns.namespacesExclude] });
  }
  if (ns.namespacesInclude.length > 0) {
    matchExpressions.push({ key, operator: "In", values: [...ns.namespacesInclude] });
  }
  return matchExpressions.length > 0 ? { matchExpressions } : {};
}

export type ConfigKind = "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration";

/** One configuration as written. */
export interface ConfigObject {
  apiVersion: string;
  kind: ConfigKind;
  metadata: { name: string; labels: Record<string, string> };
  webhooks: Record<string, unknown>[];
}

/** The two configurations, as objects ready to apply (pure). */
export function webhookConfigurations(o: RegistrationOptions): Record<ConfigKind, ConfigObject> {
  const name = o.name ?? WEBHOOK_CONFIG_NAME;
  const caBundle = btoa(o.caPem);
  const clientConfigFor = (path: string) =>
    "url" in o.endpoint
      ? { url: `${o.endpoint.url.replace(/\/+$/, "")}${path}`, caBundle }
      : { service: { ...o.endpoint.service, path }, caBundle };
  const hooks = (type: "mutate" | "validate") =>
    o.kinds.map((singular) => {
      const k = KIND_WEBHOOKS[singular];
      if (!k) throw new Error(`no webhooks for kind ${singular}`);
      const clientConfig = clientConfigFor(webhookPath(type, singular));
      return {
        name: `${singular}.${GROUP}`,
        admissionReviewVersions: ["v1"],
        sideEffects: "None",
        failurePolicy: "Fail",
        matchPolicy: "Equivalent",
        timeoutSeconds: o.timeoutSeconds ?? 10,
        clientConfig,
        rules: [{
          apiGroups: [GROUP],
          apiVersions: [VERSION],
          operations: [...(type === "mutate" ? k.mutateOps : k.validateOps)],
          resources: [k.plural],
          scope: "*",
        }],
        ...(type === "mutate" ? { reinvocationPolicy: "Never" } : {}),
        ...(o.objectSelector ? { objectSelector: { matchLabels: o.objectSelector } } : {}),
      };
    });
  const base = (kind: ConfigKind, webhooks: Record<string, unknown>[]): ConfigObject => ({
    apiVersion: "admissionregistration.k8s.io/v1",
    kind,
    metadata: { name, labels: { "app.kubernetes.io/component": "spiderpool-controller" } },
    webhooks,
  });
  // Pods are created before any network exists for them, so like upstream only CREATE is sent, never UPDATE
  // (a pod's resources cannot change after creation anyway).
  const podHook = o.podWebhook && {
    name: POD_WEBHOOK_NAME,
    admissionReviewVersions: ["v1"],
    sideEffects: "None",
    failurePolicy: "Fail",
    matchPolicy: "Equivalent",
    timeoutSeconds: o.timeoutSeconds ?? 10,
    clientConfig: clientConfigFor(POD_WEBHOOK_PATH),
    namespaceSelector: podWebhookNamespaceSelector(o.podWebhook),
    rules: [{
      apiGroups: [""],
      apiVersions: ["v1"],
      operations: ["CREATE"],
      resources: ["pods"],
      scope: "Namespaced",
    }],
    reinvocationPolicy: "Never",
    ...(o.objectSelector ? { objectSelector: { matchLabels: o.objectSelector } } : {}),
  };
  return {
    MutatingWebhookConfiguration: base(
      "MutatingWebhookConfiguration",
      [...hooks("mutate"), ...(podHook ? [podHook] : [])],
    ),
    ValidatingWebhookConfiguration: base("ValidatingWebhookConfiguration", hooks("validate")),
  };
}

const PATHS: Record<ConfigKind, string> = {
  MutatingWebhookConfiguration: "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
  ValidatingWebhookConfiguration: "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
};

/** The configurations could not be written; the message says what to grant or apply. */
export class WebhookRegistrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookRegistrationError";
  }
}

/** What registration did to each configuration. */
export type Registration = "patched" | "created";

const RESOURCE: Record<ConfigKind, string> = {
  MutatingWebhookConfiguration: "mutatingwebhookconfigurations",
  ValidatingWebhookConfiguration: "validatingwebhookconfigurations",
};

/**
 * Puts the webhooks into both configurations. One that exists is patched with a JSON merge patch, which
 * replaces its webhook list as a whole: it ends with exactly these webhooks (this endpoint, this CA), whatever
 * a manifest or an earlier version put there, and the controller needs only `patch` on that name. One that does
 * not exist is created by server-side apply, which the API server authorises as `create` of that name. A refusal
 * throws WebhookRegistrationError saying what to apply or grant.
 */
export async function registerWebhooks(
  http: KubeHttp,
  o: RegistrationOptions,
): Promise<Record<ConfigKind, Registration>> {
  const name = o.name ?? WEBHOOK_CONFIG_NAME;
  const done = {} as Record<ConfigKind, Registration>;
  for (const [kind, body] of Object.entries(webhookConfigurations(o)) as [ConfigKind, ConfigObject][]) {
    const path = `${PATHS[kind]}/${encodeURIComponent(name)}?fieldManager=${FIELD_MANAGER}`;
    const what = `${kind} ${JSON.stringify(name)}`;
    try {
      await http.patch(
        path,
        { metadata: { labels: body.metadata.labels }, webhooks: body.webhooks },
        "merge",
      );
      done[kind] = "patched";
      continue;
    } catch (err) {
      if (refused(err)) {
        throw new WebhookRegistrationError(
          `cannot patch ${what}: ${err.message}; grant patch on ${RESOURCE[kind]} named ${
            JSON.stringify(name)
          } (deploy/rbac.yaml)`,
        );
      }
      if (!(err instanceof NotFoundError)) throw err;
    }
    try {
      await http.patch(`${path}&force=true`, body, "apply");
      done[kind] = "created";
    } catch (err) {
      if (!refused(err)) throw err;
      throw new WebhookRegistrationError(
        `${what} does not exist and this controller may not create it: ${err.message}; apply ` +
          `deploy/webhooks.yaml (the controller then only patches it), or grant create on ${
            RESOURCE[kind]
          } named ${JSON.stringify(name)}`,
      );
    }
  }
  return done;
}

function refused(err: unknown): err is KubeHttpError {
  return err instanceof KubeHttpError && err.status === 403;
}

/** Deletes both configurations (tests; uninstall is the manifests' job). Missing ones are fine. */
export async function unregisterWebhooks(http: KubeHttp, name = WEBHOOK_CONFIG_NAME): Promise<void> {
  for (const path of Object.values(PATHS)) {
    try {
      await http.delete(`${path}/${name}`);
    } catch (err) {
      if ((err as { status?: number }).status !== 404) throw err;
    }
  }
}
