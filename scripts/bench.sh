#!/usr/bin/env bash
# Runs every benchmark and prints its figures. Builds dist/ first; the control-plane benchmarks build or reuse
# the Kubernetes binaries. `scripts/bench.sh NAME` runs one of: startup ip kube ipam node (node: a real one-node
# cluster, not part of `all`: it builds kubelet, containerd and runc on first use).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
DENO="$(deno_bin)"
bash scripts/build.sh >/dev/null
which="${1:-all}"
run() { echo; echo "== $1"; shift; "$@"; }
[[ "$which" == all || "$which" == startup ]] && run "plugin start-up" "$DENO" run -A tests/bench/startup.ts
[[ "$which" == all || "$which" == ip ]] && run "IP range engine" "$DENO" run -A tests/bench/ip.ts
if [[ "$which" == node ]]; then
  SPIDERPOOL_KUBE_BIN="$(bash scripts/kube-build.sh | tail -n 1)"
  SPIDERPOOL_NODE_BIN="$(bash scripts/node-build.sh | tail -n 1)"
  export SPIDERPOOL_KUBE_BIN SPIDERPOOL_NODE_BIN
  run "20 pods on a real node: spiderpool against host-local" "$DENO" run -A tests/node/bench.ts
fi
if [[ "$which" == all || "$which" == kube || "$which" == ipam ]]; then
  SPIDERPOOL_KUBE_BIN="$(bash scripts/kube-build.sh | tail -n 1)"
  export SPIDERPOOL_KUBE_BIN
  [[ "$which" == ipam ]] || run "Kubernetes client" "$DENO" run -A tests/bench/kube_client.ts
  [[ "$which" == kube ]] || run "IPAM through the bridge chain" "$DENO" run -A tests/bench/ipam.ts
fi
