#!/usr/bin/env bash
# Runs every benchmark and prints its figures. Builds dist/ first; the control-plane benchmarks build or reuse
# the Kubernetes binaries. `scripts/bench.sh NAME` runs one of the names in the table below.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
DENO="$(deno_bin)"
bash scripts/build.sh >/dev/null
which="${1:-all}"

# name | needs the Kubernetes binaries | title | script
BENCHES=(
  "startup|no|plugin start-up|tests/bench/startup.ts"
  "ip|no|IP range engine|tests/bench/ip.ts"
  "overlap|no|overlap rule in the commit plan|tests/bench/overlap.ts"
  "kube|yes|Kubernetes client|tests/bench/kube_client.ts"
  "ipam|yes|IPAM through the bridge chain|tests/bench/ipam.ts"
  "reconcile|yes|pool reconciler|tests/bench/reconcile.ts"
  "admission|yes|admission webhooks|tests/bench/admission.ts"
  "gc|yes|IP garbage collection scan-all|tests/bench/gc_scan.ts"
  "watch|yes|delay of a change into the caches after a long silence|tests/bench/watch_idle.ts"
  "coordinator|yes|coordinator: netlink vs iproute2|tests/bench/coordinator.ts"
  "detect|yes|IPAM plugin CPU per ADD with IP-conflict and gateway detection off and on|tests/bench/detect.ts"
)

found=no
for row in "${BENCHES[@]}"; do
  IFS='|' read -r name kube title script <<<"$row"
  [[ "$which" == all || "$which" == "$name" ]] || continue
  found=yes
  if [[ "$kube" == yes && -z "${SPIDERPOOL_KUBE_BIN:-}" ]]; then
    SPIDERPOOL_KUBE_BIN="$(bash scripts/kube-build.sh | tail -n 1)"
    export SPIDERPOOL_KUBE_BIN
  fi
  echo; echo "== $title"
  "$DENO" run -A "$script"
done
if [[ "$found" == no ]]; then
  echo "bench: unknown benchmark \"$which\"; one of: all $(printf '%s\n' "${BENCHES[@]}" | cut -d'|' -f1 | tr '\n' ' ')" >&2
  exit 2
fi
