// The real `spiderpool` plugin fed malformed network configurations, CNI_* variables and CNI_ARGS: each is
// refused with a CNI error naming the key or variable and its value, the agent behind it keeps serving, and no
// address is allocated.

import { runCases, world } from "./env.ts";
import { pluginCases } from "./plugin_cases.ts";

Deno.test({
  name: "bad input: the plugin refuses malformed stdin, environment and CNI_ARGS and allocates nothing",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  await using w = await world("bad-plugin");
  await runCases(t, w, "the plugin corpus", pluginCases());
});
