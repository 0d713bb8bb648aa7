// Pods and namespaces whose IPAM annotations have the wrong shape: ADD through the real plugin and agent is
// refused with the annotation key and its value, and nothing is allocated.

import { API_VERSION, PLURAL } from "../../src/api/constants.ts";
import { annotationCases } from "./annotation_cases.ts";
import { runCases, world } from "./env.ts";

Deno.test({
  name: "bad input: malformed ipam.spidernet.io annotations are refused by name and allocate nothing",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  await using w = await world("bad-anno");
  // default-route-nic is read when the coordinator asks for its configuration, which needs a Synced
  // SpiderCoordinator. Named to sort first, so the agent serves it when no "default" exists.
  const coordinators = `/apis/${API_VERSION}/${PLURAL.coordinator}`;
  const name = `0-${w.ns}`;
  await w.http.post(coordinators, {
    apiVersion: API_VERSION,
    kind: "SpiderCoordinator",
    metadata: { name },
    spec: { mode: "underlay", podCIDRType: "none" },
  });
  w.scope.track(`${coordinators}/${name}`);
  const { body } = await w.http.get<Record<string, unknown>>(`${coordinators}/${name}`);
  await w.http.put(`${coordinators}/${name}/status`, {
    ...body,
    status: { phase: "Synced", overlayPodCIDR: [], serviceCIDR: [] },
  });
  await runCases(t, w, "the annotation corpus", annotationCases());
});
