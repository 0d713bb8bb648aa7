#!/usr/bin/env bash
# The project's test command: sets up the machine if needed, builds dist/ and the Kubernetes control plane,
# starts one control plane for the whole run, runs every test suite (the real-node suite last, after building
# kubelet, containerd, runc and helm, cached like the control plane), stops what it started, and prints one
# final line "N passed, M failed[, K skipped]" summing all suites. Extra arguments are passed to `deno test`
# (e.g. a path or `--filter name`).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
export NO_COLOR=1

bash scripts/setup.sh || { echo "test: set-up failed"; echo "0 passed, 1 failed"; exit 1; }
DENO="$(deno_bin)"
bash scripts/build.sh || { echo "test: build failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0 skipped=0
suite() { # name, then a command that succeeds or fails as one check
  local name="$1"; shift
  if "$@"; then passed=$((passed + 1)); echo "check $name ... ok"; else failed=$((failed + 1)); echo "check $name ... FAILED"; fi
}
suite "deno fmt --check" "$DENO" fmt --check
suite "deno lint" "$DENO" lint --quiet
suite "deno check" "$DENO" check --quiet main.ts tests/

# One real control plane (etcd, kube-apiserver, kube-controller-manager) for all integration tests.
work="$(mktemp -d)"
cp_pid=""
cleanup() {
  if [ -n "$cp_pid" ] && kill -0 "$cp_pid" 2>/dev/null; then
    kill -TERM "$cp_pid" 2>/dev/null
    wait "$cp_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if bin="$(bash scripts/kube-build.sh | tail -n 1)" && [ -x "$bin/kube-apiserver" ]; then
  export SPIDERPOOL_KUBE_BIN="$bin"
  "$DENO" run -A tests/kube/controlplane.ts start --state-file "$work/state.json" >"$work/controlplane.log" 2>&1 &
  cp_pid=$!
  for _ in $(seq 1 180); do
    [ -s "$work/state.json" ] && break
    kill -0 "$cp_pid" 2>/dev/null || break
    sleep 1
  done
  if [ -s "$work/state.json" ]; then
    SPIDERPOOL_TEST_KUBECONFIG="$("$DENO" eval 'console.log(JSON.parse(Deno.readTextFileSync(Deno.args[0])).kubeconfigPath)' "$work/state.json")"
    export SPIDERPOOL_TEST_KUBECONFIG
  else
    echo "test: the control plane did not start; its log:"; tail -n 50 "$work/controlplane.log"
    failed=$((failed + 1))
  fi
else
  echo "test: building the Kubernetes control plane failed"
  failed=$((failed + 1))
fi

# The Go parts of the CNI tests (reference plugins at CNI 1.1.0, the libcni driver, Go's net/http).
if tools="$(bash scripts/cni-build.sh | tail -n 1)" && [ -x "$tools/cnidriver" ]; then
  export SPIDERPOOL_CNI_TOOLS_BIN="$tools"
else
  echo "test: building the CNI test tools (scripts/cni-build.sh) failed"
  failed=$((failed + 1))
fi

# run_deno LOG ARGS...: one deno test run whose summary line is added to the totals.
run_deno() {
  local log="$1" summary
  shift
  "$DENO" test -A --quiet "$@" 2>&1 | tee "$log"
  summary="$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -n 1)"
  if [ -z "$summary" ]; then
    echo "test: deno test $* did not report a summary"
    failed=$((failed + 1))
  else
    n() { echo "$summary" | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+' || echo 0; }
    passed=$((passed + $(n passed))); failed=$((failed + $(n failed))); skipped=$((skipped + $(n ignored)))
  fi
}

# Without arguments: every suite, the real-node suite (tests/node: a one-node cluster with kubelet, containerd and
# runc, and the Helm chart) last in its own run, after its tools are built. With arguments: exactly those paths.
node_suite=0
if [ $# -eq 0 ]; then
  run_deno "$work/deno-test.log" --ignore=tests/node/ tests/
  node_suite=1
else
  for a in "$@"; do case "$a" in tests/node* | ./tests/node*) node_suite=2 ;; esac; done
  [ "$node_suite" = 2 ] && echo "test: building the node's tools for tests/node first"
fi
if [ "$node_suite" != 0 ]; then
  node_start=$SECONDS
  if SPIDERPOOL_NODE_BIN="$(bash scripts/node-build.sh | tail -n 1)" && [ -x "$SPIDERPOOL_NODE_BIN/kubelet" ]; then
    export SPIDERPOOL_NODE_BIN
    echo "test: node tools ready in $((SECONDS - node_start)) s ($SPIDERPOOL_NODE_BIN)"
  else
    echo "test: building the node's tools failed"
    failed=$((failed + 1))
  fi
fi
if [ "$node_suite" = 1 ] && [ -n "${SPIDERPOOL_NODE_BIN:-}" ]; then
  run_deno "$work/deno-test-node.log" tests/node/
  echo "test: real-node suite done in $((SECONDS - node_start)) s (tool builds included)"
elif [ "$node_suite" != 1 ]; then
  run_deno "$work/deno-test.log" "$@"
fi

if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"; else echo "$passed passed, $failed failed"; fi
[ "$failed" -eq 0 ]
