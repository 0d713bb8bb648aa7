// The MutatingWebhookConfiguration and ValidatingWebhookConfiguration named `spiderpool-controller`: built as
// plain objects from the kind table (paths, operations, `failurePolicy: Fail`, `sideEffects: None`, v1
// reviews, the caBundle), then applied with server-side apply, so every replica can apply the same content
// at start-up and a manifest that created the configurations with an empty caBundle is completed, not fought.

import { GROUP, VERSION } from "../../api/constants.ts";
import type { KubeHttp } from "../../kube/client.ts";
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
}

type ConfigKind = "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration";

/** The two configurations, as objects ready to apply (pure). */
export function webhookConfigurations(o: RegistrationOptions): Record<ConfigKind, Record<string, unknown>> {
  const name = o.name ?? WEBHOOK_CONFIG_NAME;
  const caBundle = btoa(o.caPem);
  const hooks = (type: "mutate" | "validate") =>
    o.kinds.map((singular) => {
      const k = KIND_WEBHOOKS[singular];
      if (!k) throw new Error(`no webhooks for kind ${singular}`);
      const path = webhookPath(type, singular);
      const clientConfig = "url" in o.endpoint
        ? { url: `${o.endpoint.url.replace(/\/+$/, "")}${path}`, caBundle }
        : { service: { ...o.endpoint.service, path }, caBundle };
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
  const base = (kind: ConfigKind, webhooks: unknown[]) => ({
    apiVersion: "admissionregistration.k8s.io/v1",
    kind,
    metadata: { name, labels: { "app.kubernetes.io/component": "spiderpool-controller" } },
    webhooks,
  });
  return {
    MutatingWebhookConfiguration: base("MutatingWebhookConfiguration", hooks("mutate")),
    ValidatingWebhookConfiguration: base("ValidatingWebhookConfiguration", hooks("validate")),
  };
}

const PATHS: Record<ConfigKind, string> = {
  MutatingWebhookConfiguration: "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
  ValidatingWebhookConfiguration: "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
};

/** Creates or updates both configurations (server-side apply, taking over the fields this controller owns). */
export async function registerWebhooks(http: KubeHttp, o: RegistrationOptions): Promise<void> {
  const name = o.name ?? WEBHOOK_CONFIG_NAME;
  for (const [kind, body] of Object.entries(webhookConfigurations(o)) as [ConfigKind, unknown][]) {
    await http.patch(`${PATHS[kind]}/${name}?fieldManager=${FIELD_MANAGER}&force=true`, body, "apply");
  }
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
