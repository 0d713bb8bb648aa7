// The agent's group commit lives in src/kube/pool_commit.ts, shared with the controller's IP GC; this module
// keeps the agent's existing imports working.
export * from "../kube/pool_commit.ts";
