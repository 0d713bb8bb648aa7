// Listening ports for the processes that tests start (API servers, agents, controllers, kubelets).
//
// A port the kernel hands out for `listen(port 0)` comes from its ephemeral range
// (net.ipv4.ip_local_port_range), the same range every outgoing connection takes its source port from. Once
// released, such a port can go to any connection (the API server's to etcd, a client's, a webhook call) before
// the test's process binds it, and that process then dies with "address already in use". Ports are picked
// below that range instead, and below Kubernetes' NodePort range (30000-32767, which kube-proxy's rules catch on
// loopback too): there only another listener can take one. A record of this process's picks keeps two starts
// of one test run from being given the same port.

const given = new Set<number>();

/** The span ports are picked from: up to 10,000 ports below min(ephemeral start, 30000). */
export function portSpan(ephemeralStart = ephemeralRangeStart()): { low: number; high: number } {
  const high = Math.min(ephemeralStart, 30_000) - 1;
  return { low: Math.max(1_024, high - 9_999), high };
}

function ephemeralRangeStart(): number {
  try {
    const start = Number(
      Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim().split(/\s+/)[0],
    );
    if (Number.isInteger(start) && start > 2_048) return start;
  } catch { /* not Linux procfs: the kernel's usual default */ }
  return 32_768;
}

/** Whether nothing listens on `port` (on any address): a bind to the wildcard fails if anything does. */
function bindable(port: number): boolean {
  try {
    Deno.listen({ hostname: "0.0.0.0", port }).close();
    return true;
  } catch {
    return false;
  }
}

/** `n` distinct ports nobody listens on now, none handed out before by this process. */
export function freePorts(n: number): number[] {
  const { low, high } = portSpan();
  const out: number[] = [];
  for (let tries = 0; out.length < n; tries++) {
    if (tries > 50 * n + 1_000) throw new Error(`no free port left in ${low}-${high}`);
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (given.has(port) || !bindable(port)) continue;
    given.add(port);
    out.push(port);
  }
  return out;
}
