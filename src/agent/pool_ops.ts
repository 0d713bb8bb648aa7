// The batch plan of pool requests lives in src/ipam/pool_ops.ts, shared with the controller's IP GC; this module
// keeps the agent's existing imports working.
export * from "../ipam/pool_ops.ts";
