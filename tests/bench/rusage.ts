// CPU time (user + system) of finished child processes, from getrusage(RUSAGE_CHILDREN) through FFI. The
// kernel adds a child's CPU, and that of every descendant it waited for, when the child is reaped, so the
// difference around one awaited process is the CPU of its whole process tree (a launcher, the runtime, a
// delegated plugin), measured in microseconds rather than the clock ticks of /proc/PID/stat.

const RUSAGE_CHILDREN = -1;
/** struct rusage is 144 bytes on x86-64 Linux; the first two fields are ru_utime and ru_stime (timeval). */
const RUSAGE_SIZE = 144;

let libc: Deno.DynamicLibrary<{ getrusage: { parameters: ["i32", "buffer"]; result: "i32" } }> | undefined;

/** User and system CPU of all reaped children of this process so far, in ms. */
export function childrenCpu(): { user: number; system: number; total: number } {
  libc ??= Deno.dlopen("libc.so.6", { getrusage: { parameters: ["i32", "buffer"], result: "i32" } });
  const buf = new BigInt64Array(RUSAGE_SIZE / 8);
  if (libc.symbols.getrusage(RUSAGE_CHILDREN, buf) !== 0) {
    throw new Error("getrusage(RUSAGE_CHILDREN) failed");
  }
  const user = Number(buf[0]) * 1e3 + Number(buf[1]) / 1e3;
  const system = Number(buf[2]) * 1e3 + Number(buf[3]) / 1e3;
  return { user, system, total: user + system };
}

/** Runs `fn` (which must await every process it starts) and returns the children's CPU it cost, in ms. */
export async function childCpuOf<T>(fn: () => Promise<T>): Promise<{ value: T; cpuMs: number }> {
  const before = childrenCpu().total;
  const value = await fn();
  return { value, cpuMs: childrenCpu().total - before };
}
