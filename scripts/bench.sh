#!/usr/bin/env bash
# Runs a benchmark and prints its figures next to references measured in the same run. Builds dist/ first; the
# control-plane benchmarks build or reuse the Kubernetes binaries.
# `scripts/bench.sh NAME [ARGS]` runs one of:
#   plugin         CPU per CNI call (ADD, DEL, VERSION) vs a trivial Deno script and host-local, and its parts
#   ipam           300 pods over 3 simulated nodes through the bridge chain, vs host-local (ARGS: --pods ...)
#   scale          100 and 1,000 pods over 1 and 10 nodes (several minutes)
#   agent-memory   what holds the agent's memory, at rest and under load with V8 flag variants
#   ip             the IP range engine
#   kube           the Kubernetes client
# With no NAME: plugin, ip, kube and ipam.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
DENO="$(deno_bin)"
bash scripts/build.sh >/dev/null
which="${1:-all}"
[ $# -gt 0 ] && shift
run() { echo; echo "== $1"; shift; "$@"; }
case "$which" in
  all | plugin | ipam | scale | agent-memory | kube | ip) ;;
  *) echo "bench: unknown benchmark \"$which\"; choose plugin, ipam, scale, agent-memory, ip or kube" >&2; exit 2 ;;
esac
if [[ "$which" != ip ]]; then
  SPIDERPOOL_KUBE_BIN="$(bash scripts/kube-build.sh | tail -n 1)"
  export SPIDERPOOL_KUBE_BIN
fi
[[ "$which" == all || "$which" == plugin ]] && run "CNI plugin CPU" "$DENO" run -A tests/bench/plugin.ts "$@"
[[ "$which" == all || "$which" == ip ]] && run "IP range engine" "$DENO" run -A tests/bench/ip.ts "$@"
[[ "$which" == all || "$which" == kube ]] && run "Kubernetes client" "$DENO" run -A tests/bench/kube_client.ts "$@"
[[ "$which" == all || "$which" == ipam ]] && run "IPAM through the bridge chain" "$DENO" run -A tests/bench/ipam.ts "$@"
[[ "$which" == scale ]] && run "IPAM at scale" "$DENO" run -A tests/bench/ipam.ts --scale "$@"
[[ "$which" == agent-memory ]] && run "agent memory" "$DENO" run -A tests/bench/agent_memory.ts "$@"
exit 0
