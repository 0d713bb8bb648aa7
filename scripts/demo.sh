#!/usr/bin/env bash
# The main job: set up the machine if needed, build dist/, and show the binary at work in each of its modes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
bash scripts/build.sh
step() { echo; echo "\$ $*"; "$@"; }
step dist/spiderpool help
step dist/spiderpool version
echo; echo '$ CNI_COMMAND=VERSION dist/cni/spiderpool </dev/null'
CNI_COMMAND=VERSION dist/cni/spiderpool </dev/null; echo
echo; echo '$ dist/spiderpool crds   # the six CustomResourceDefinitions, to pipe into kubectl apply -f -'
dist/spiderpool crds | grep -E '^(kind|  name):'
# A pod getting its address: real control plane, one agent, Debian's bridge plugin with spiderpool as IPAM.
export SPIDERPOOL_KUBE_BIN="${SPIDERPOOL_KUBE_BIN:-$(bash scripts/kube-build.sh | tail -n 1)}"
echo; echo '$ deno run -A scripts/demo-ipam.ts'
"$(deno_bin)" run -A scripts/demo-ipam.ts
