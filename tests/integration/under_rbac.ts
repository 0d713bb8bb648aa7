// The controller's processes under deploy/rbac.yaml: the RBAC applied, a kubeconfig per ServiceAccount (a
// short-lived token, what a pod gets), and `spiderpool controller` started as its ServiceAccount in kube-system
// with deploy/controller.yaml's environment. Used by the RBAC process tests and the controller's IP GC tests.
import assert from "node:assert/strict";
import { loadAll } from "js-yaml";
import { type TestScope } from "../kube/harness.ts";
import { API, type ControllerSet, startControllers } from "../controller/webhook_harness.ts";
import {
  applyClusterManifest,
  applyRbac,
  clientAs,
  kubeconfigAs,
  type Manifest,
  whenAuthorised,
} from "./rbac_kit.ts";

export const NS = "kube-system";
export const ADM = "/apis/admissionregistration.k8s.io/v1";
export const WEBHOOK_PATHS = {
  MutatingWebhookConfiguration: (m: Manifest) => `${ADM}/mutatingwebhookconfigurations/${m.metadata.name}`,
  ValidatingWebhookConfiguration: (m: Manifest) =>
    `${ADM}/validatingwebhookconfigurations/${m.metadata.name}`,
};
/** What a controller leaves in kube-system, removed after each test. */
export const CONTROLLER_STATE = [
  `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/spiderpool-controller-leases`,
  `/api/v1/namespaces/${NS}/secrets/spiderpool-controller-server-certs`,
  `/api/v1/namespaces/${NS}/configmaps/spiderpool-controller-admission-ippools`,
  `/api/v1/namespaces/${NS}/configmaps/spiderpool-controller-admission-reservedips`,
];
export const FAST_LEASE = {
  SPIDERPOOL_LEADER_DURATION: "4",
  SPIDERPOOL_LEADER_RENEW_DEADLINE: "3",
  SPIDERPOOL_LEADER_RETRY_PERIOD: "0.5",
};

/**
 * The environment deploy/controller.yaml gives the controller (so every component it switches on runs under the
 * RBAC it ships), with short election durations; ports and identity come from the harness's flags.
 */
export async function deploymentEnv(): Promise<Record<string, string>> {
  const docs = loadAll(await Deno.readTextFile(new URL("../../deploy/controller.yaml", import.meta.url))) as {
    kind: string;
    spec?: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
  }[];
  const env = docs.find((d) => d.kind === "Deployment")!.spec!.template.spec.containers[0].env;
  const out: Record<string, string> = {};
  for (const e of env) if (e.value !== undefined) out[e.name] = e.value;
  return { ...out, ...FAST_LEASE };
}

/**
 * deploy/rbac.yaml applied, a kubeconfig for each ServiceAccount in a temporary directory, and the
 * controller's state in kube-system registered for removal. `webhooks`: also apply deploy/webhooks.yaml.
 */
export async function underRbac(scope: TestScope, webhooks: boolean) {
  const { http } = scope.cluster;
  for (const path of CONTROLLER_STATE) scope.track(path);
  for (const path of await applyRbac(http)) scope.track(path);
  if (webhooks) {
    for (const path of await applyClusterManifest(http, "webhooks.yaml", WEBHOOK_PATHS)) scope.track(path);
  }
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-rbac-" });
  const controller = await kubeconfigAs(scope, NS, "spiderpool-controller", `${dir}/controller.kubeconfig`);
  const init = await kubeconfigAs(scope, NS, "spiderpool-init", `${dir}/init.kubeconfig`);
  // New bindings reach the authorizer asynchronously: wait until both ServiceAccounts' roles are in force.
  const c = await clientAs(scope, NS, "spiderpool-controller");
  const i = await clientAs(scope, NS, "spiderpool-init");
  try {
    assert.notEqual(await whenAuthorised(() => c.get(`${API}/spiderippools`)), 403);
    assert.notEqual(await whenAuthorised(() => c.get(CONTROLLER_STATE[0])), 403);
    assert.notEqual(await whenAuthorised(() => c.get(CONTROLLER_STATE[2])), 403);
    assert.notEqual(
      await whenAuthorised(() => i.get(`${ADM}/mutatingwebhookconfigurations/spiderpool-controller`)),
      403,
    );
  } finally {
    c.close();
    i.close();
  }
  return {
    controller,
    init,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * The controller, as its ServiceAccount, in kube-system, with the Deployment's environment, registered in the
 * shipped configurations.
 */
export async function controllerAsServiceAccount(
  scope: TestScope,
  kubeconfig: string,
  webhookSelector = true,
  more: { replicas?: number; env?: Record<string, string>; configYaml?: string } = {},
): Promise<ControllerSet> {
  return await startControllers(scope, {
    configYaml: more.configYaml,
    kubeconfig,
    namespace: NS,
    webhookConfigName: "spiderpool-controller",
    webhookSelector,
    // Every component the Deployment switches on, the application controller included.
    autoPools: true,
    reconcileNamespace: false,
    replicas: more.replicas,
    env: { ...await deploymentEnv(), ...more.env },
  });
}
