// SpiderIPPools, SpiderReservedIPs and SpiderEndpoints written while no admission webhook runs: the ADD that
// would use one is refused naming the object, the field and the value, and nothing is allocated.

import { crdCases } from "./crd_cases.ts";
import { runCases, world } from "./env.ts";

Deno.test({
  name: "bad input: objects the webhook never saw are refused at ADD by field, and nothing is allocated",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  await using w = await world("bad-crd");
  await runCases(t, w, "the CRD corpus", crdCases());
});
