#!/usr/bin/env bash
# Runs benchmarks and prints their figures next to references measured in the same run. Builds dist/ first;
# the control-plane benchmarks build or reuse the Kubernetes binaries.
# `scripts/bench.sh [NAME [ARGS]]` runs one of the names in the table below (ARGS go to its script); with no
# NAME, every benchmark marked "all". `node` (a real one-node cluster; builds kubelet, containerd and runc on
# first use) is not part of "all".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
DENO="$(deno_bin)"
bash scripts/build.sh >/dev/null
which="${1:-all}"
[ $# -gt 0 ] && shift

# name | in "all" | needs the Kubernetes binaries | title | script and fixed arguments
BENCHES=(
  "plugin|all|yes|CNI plugin CPU per call vs a trivial Deno script and host-local|tests/bench/plugin.ts"
  "ip|all|no|IP range engine|tests/bench/ip.ts"
  "overlap|all|no|overlap rule in the commit plan|tests/bench/overlap.ts"
  "kube|all|yes|Kubernetes client|tests/bench/kube_client.ts"
  "ipam|all|yes|IPAM through the bridge chain vs host-local|tests/bench/ipam.ts"
  "scale|-|yes|IPAM at scale: 100 and 1,000 pods over 1 and 10 nodes|tests/bench/ipam.ts --scale"
  "agent-memory|-|yes|what holds the agent's memory|tests/bench/agent_memory.ts"
  "reconcile|all|yes|pool reconciler|tests/bench/reconcile.ts"
  "admission|all|yes|admission webhooks|tests/bench/admission.ts"
  "gc|-|yes|IP garbage collection scan-all|tests/bench/gc_scan.ts"
  "watch|-|yes|delay of a change into the caches after a long silence|tests/bench/watch_idle.ts"
  "coordinator|all|yes|coordinator: netlink vs iproute2|tests/bench/coordinator.ts"
  "multus|all|yes|SpiderMultusConfig → NetworkAttachmentDefinition controller|tests/bench/multus.ts"
  "autopool|-|yes|auto-pool resize after kubectl scale, 1 and 20 applications|tests/bench/autopool.ts"
  "chaos|-|yes|fault injection: 5 agents, 2 controllers, 10,000 CNI operations under SIGKILL, SIGSTOP and etcd pauses|tests/bench/chaos.ts"
  "detect|all|yes|IPAM plugin CPU per ADD with IP-conflict and gateway detection off and on|tests/bench/detect.ts"
)

if [[ "$which" == node ]]; then
  SPIDERPOOL_KUBE_BIN="$(bash scripts/kube-build.sh | tail -n 1)"
  SPIDERPOOL_NODE_BIN="$(bash scripts/node-build.sh | tail -n 1)"
  export SPIDERPOOL_KUBE_BIN SPIDERPOOL_NODE_BIN
  echo; echo "== 20 pods on a real node: spiderpool against host-local"
  exec "$DENO" run -A tests/node/bench.ts "$@"
fi

found=no
for row in "${BENCHES[@]}"; do
  IFS='|' read -r name inall kube title script <<<"$row"
  if [[ "$which" == all ]]; then [[ "$inall" == all ]] || continue; else [[ "$which" == "$name" ]] || continue; fi
  found=yes
  if [[ "$kube" == yes && -z "${SPIDERPOOL_KUBE_BIN:-}" ]]; then
    SPIDERPOOL_KUBE_BIN="$(bash scripts/kube-build.sh | tail -n 1)"
    export SPIDERPOOL_KUBE_BIN
  fi
  echo; echo "== $title"
  # shellcheck disable=SC2086 # the script column carries its fixed arguments
  "$DENO" run -A $script "$@"
done
if [[ "$found" == no ]]; then
  echo "bench: unknown benchmark \"$which\"; one of: all $(printf '%s\n' "${BENCHES[@]}" | cut -d'|' -f1 | tr '\n' ' ')" >&2
  exit 2
fi
