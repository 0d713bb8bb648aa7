// The agent's unix socket fed malformed requests: bodies that are not the model, wrong types, missing fields,
// bad names, unknown paths and methods, broken framing, huge heads and bodies, slow and many clients. Each gets
// an answer naming what is wrong, the agent process stays up and serves, and nothing is allocated.

import { runCases, world } from "./env.ts";
import { socketCases } from "./socket_cases.ts";

Deno.test({
  name: "bad input: the agent's socket answers malformed requests clearly, keeps serving, allocates nothing",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  await using w = await world("bad-socket");
  await runCases(t, w, "the socket corpus", socketCases());
});
