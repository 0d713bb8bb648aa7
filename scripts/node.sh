#!/usr/bin/env bash
# A real one-node Kubernetes cluster on this machine (control plane, kube-scheduler, containerd + runc, kubelet,
# kube-proxy), built from Go modules on first use and cached, with Spiderpool installed by its Helm chart.
#   scripts/node.sh start     build what is missing, start the cluster in the background, print how to use it
#   scripts/node.sh install   helm install charts/spiderpool (the agent, pod network on a bridge) into it
#   scripts/node.sh demo      start + install, then a SpiderIPPool and a 3-pod Deployment: addresses, ping, pool
#   scripts/node.sh status    the cluster's nodes and pods
#   scripts/node.sh stop      stop everything it started and leave the machine as it was
# State (pid, kubeconfig, paths) is in $SPIDERPOOL_NODE_STATE (default /run/spiderpool-node/state.json).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
STATE="${SPIDERPOOL_NODE_STATE:-/run/spiderpool-node/state.json}"
LOG="$(dirname "$STATE")/node.log"

running() { [ -s "$STATE" ] && kill -0 "$(state pid)" 2>/dev/null; }
state() { "$DENO" eval 'const s = JSON.parse(Deno.readTextFileSync(Deno.args[0])); console.log(s[Deno.args[1]])' "$STATE" "$1"; }

case "${1:-}" in
start)
  bash scripts/setup.sh >/dev/null
  DENO="$(deno_bin)"
  if running; then
    echo "node: already running (pid $(state pid)); KUBECONFIG=$(state kubeconfigPath)"
    exit 0
  fi
  bash scripts/build.sh
  SPIDERPOOL_KUBE_BIN="$(bash scripts/kube-build.sh | tail -n 1)"
  SPIDERPOOL_NODE_BIN="$(bash scripts/node-build.sh | tail -n 1)"
  export SPIDERPOOL_KUBE_BIN SPIDERPOOL_NODE_BIN
  mkdir -p "$(dirname "$STATE")"
  rm -f "$STATE"
  setsid "$DENO" run -A tests/node/node.ts start --state-file "$STATE" >"$LOG" 2>&1 </dev/null &
  pid=$!
  for _ in $(seq 1 600); do
    [ -s "$STATE" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$LOG"; echo "node: failed to start (log above, $LOG)"; exit 1; }
    sleep 1
  done
  [ -s "$STATE" ] || { tail -n 40 "$LOG"; echo "node: not up after 10 minutes"; exit 1; }
  echo "node: $(state nodeName) is up (log $LOG)"
  echo "  export KUBECONFIG=$(state kubeconfigPath) PATH=$(state binDir):\$PATH"
  echo "  kubectl get nodes; scripts/node.sh install; scripts/node.sh stop"
  ;;
install)
  DENO="$(deno_bin)"
  running || { echo "node: not running (scripts/node.sh start)"; exit 1; }
  values="$(mktemp)"
  trap 'rm -f "$values"' EXIT
  "$DENO" run -A tests/node/node.ts values --state-file "$STATE" >"$values"
  "$(state binDir)/helm" --kubeconfig "$(state kubeconfigPath)" upgrade --install spiderpool charts/spiderpool \
    -n kube-system -f "$values"
  k=("$(state binDir)/kubectl" --kubeconfig "$(state kubeconfigPath)")
  "${k[@]}" -n kube-system rollout status daemonset/spiderpool-agent --timeout=300s
  "${k[@]}" -n kube-system get pods -o wide
  ;;
demo)
  bash "$0" start
  bash "$0" install
  DENO="$(deno_bin)"
  k=("$(state binDir)/kubectl" --kubeconfig "$(state kubeconfigPath)")
  echo; echo "== a SpiderIPPool and a Deployment of 3 pods using it"
  "${k[@]}" apply -f - <<'YAML'
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: demo-v4}
spec: {ipVersion: 4, subnet: 203.0.113.0/24, ips: ["203.0.113.10-203.0.113.30"]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: demo, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: demo}}
  template:
    metadata:
      labels: {app: demo}
      annotations: {ipam.spidernet.io/ippool: '{"ipv4":["demo-v4"]}'}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: main, image: "localhost/spiderpool-ts/busybox:1.35.0", command: [sleep, "86400"]}]
YAML
  "${k[@]}" rollout status deployment/demo --timeout=300s
  "${k[@]}" get pods -l app=demo -o wide
  mapfile -t pods < <("${k[@]}" get pods -l app=demo -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
  peer="$("${k[@]}" get pod "${pods[1]}" -o jsonpath='{.status.podIP}')"
  echo; echo "== ${pods[0]} pings ${pods[1]} ($peer)"
  "${k[@]}" exec "${pods[0]}" -- ping -c 2 "$peer"
  echo; echo "== the pool and the pods' SpiderEndpoints"
  "${k[@]}" get spiderippool demo-v4
  "${k[@]}" get spiderendpoints
  echo; echo "the cluster keeps running: export KUBECONFIG=$(state kubeconfigPath); scripts/node.sh stop ends it"
  ;;
status)
  DENO="$(deno_bin)"
  running || { echo "node: not running"; exit 1; }
  k=("$(state binDir)/kubectl" --kubeconfig "$(state kubeconfigPath)")
  "${k[@]}" get nodes -o wide
  "${k[@]}" get pods -A -o wide
  ;;
stop)
  DENO="$(deno_bin)"
  if ! running; then
    echo "node: not running"
    rm -f "$STATE"
    exit 0
  fi
  pid="$(state pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then echo "node: pid $pid still running after 5 minutes"; exit 1; fi
  tail -n 3 "$LOG"
  ;;
*)
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
