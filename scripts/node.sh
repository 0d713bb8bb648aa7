#!/usr/bin/env bash
# A real one-node Kubernetes cluster on this machine (control plane, kube-scheduler, containerd + runc, kubelet,
# kube-proxy), built from Go modules on first use and cached, with Spiderpool installed by its Helm chart.
#   scripts/node.sh start     build what is missing, start the cluster in the background, print how to use it
#   scripts/node.sh install   helm install charts/spiderpool (agent, controller, webhooks, coordinator) into it
#   scripts/node.sh demo      start + install, then a SpiderIPPool and a 3-pod Deployment: addresses, routes, ping
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
  # (Helm notes that the chart's crds/ and files/webhooks.yaml are links to the project's own: not news here.)
  "$(state binDir)/helm" --kubeconfig "$(state kubeconfigPath)" upgrade --install spiderpool charts/spiderpool \
    -n kube-system -f "$values" 2> >(sed '/found symbolic link in path/d' >&2)
  k=("$(state binDir)/kubectl" --kubeconfig "$(state kubeconfigPath)")
  "${k[@]}" -n kube-system rollout status daemonset/spiderpool-agent --timeout=300s
  "${k[@]}" -n kube-system rollout status deployment/spiderpool-controller --timeout=300s
  "${k[@]}" -n kube-system get pods -o wide
  ;;
demo)
  t0=$SECONDS
  echo "== 1/5 the node: control plane, kube-scheduler, containerd + runc, kubelet, kube-proxy (built on first use)"
  bash "$0" start
  t_node=$((SECONDS - t0))
  DENO="$(deno_bin)"
  k=("$(state binDir)/kubectl" --kubeconfig "$(state kubeconfigPath)")
  echo; echo "== 2/5 helm install charts/spiderpool: the agent DaemonSet, the controller and its webhooks"
  t1=$SECONDS
  bash "$0" install
  t_install=$((SECONDS - t1))
  echo "webhooks the API server calls (the CA patched in by the controller):"
  "${k[@]}" get validatingwebhookconfiguration spiderpool-controller \
    -o jsonpath='{range .webhooks[*]}  {.name} -> {.clientConfig.service.name}:{.clientConfig.service.port}{.clientConfig.service.path} (caBundle {.clientConfig.caBundle}){"\n"}{end}' |
    sed -E 's/caBundle (.{12})[^)]*\)/caBundle \1...)/'
  echo "the node's CNI configuration ($(state mainPlugin) + spiderpool IPAM + coordinator):"
  sed 's/^/  /' "$(state cniConfDir)/10-spiderpool.conflist"

  echo; echo "== 3/5 a SpiderIPPool written as in Spiderpool's guide (no spec.ipVersion: the webhook fills it in)"
  t2=$SECONDS
  "${k[@]}" apply -f - <<'YAML'
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: demo-v4}
spec:
  subnet: 203.0.113.0/24
  ips: ["203.0.113.10-203.0.113.30"]
YAML
  echo "spec.ipVersion of demo-v4: $("${k[@]}" get spiderippool demo-v4 -o jsonpath='{.spec.ipVersion}')"
  echo "a pool overlapping it is refused by the webhook:"
  refused="$(mktemp)"
  trap 'rm -f "$refused"' EXIT
  if "${k[@]}" apply -f - 2>"$refused" <<'YAML'
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: demo-overlap}
spec: {subnet: 203.0.113.0/24, ips: ["203.0.113.25-203.0.113.40"]}
YAML
  then
    echo "demo: the overlapping pool was accepted; the webhook did not run"
    exit 1
  fi
  sed 's/^/  /' "$refused"

  echo; echo "== 4/5 a Deployment of 3 pods with ipam.spidernet.io/ippool: demo-v4"
  "${k[@]}" apply -f - <<'YAML'
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
  t_pods=$((SECONDS - t2))
  "${k[@]}" get pods -l app=demo -o wide
  mapfile -t pods < <("${k[@]}" get pods -l app=demo --field-selector=status.phase=Running \
    -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
  peer="$("${k[@]}" get pod "${pods[1]}" -o jsonpath='{.status.podIP}')"
  node_ip="$("${k[@]}" get node "$(state nodeName)" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')"
  echo; echo "${pods[0]}: its interfaces and routes (eth0 from $(state mainPlugin), veth0 and routes from coordinator)"
  "${k[@]}" exec "${pods[0]}" -- ip -4 addr
  "${k[@]}" exec "${pods[0]}" -- ip -4 route
  echo; echo "${pods[0]} pings ${pods[1]} ($peer) over the underlay, and the node ($node_ip) over veth0"
  "${k[@]}" exec "${pods[0]}" -- ping -c 1 -W 3 "$peer"
  "${k[@]}" exec "${pods[0]}" -- ping -c 1 -W 3 "$node_ip"

  echo; echo "== 5/5 the pool, the pods' SpiderEndpoints and the SpiderCoordinator"
  "${k[@]}" get spiderippool demo-v4
  "${k[@]}" get spiderendpoints
  "${k[@]}" get spidercoordinator default -o jsonpath='{.metadata.name}: {.status.phase}, service CIDR {.status.serviceCIDR}, hijack {.spec.hijackCIDR}{"\n"}'
  echo
  echo "demo: node up in ${t_node} s, helm install to Ready in ${t_install} s, pool + 3 pods Running in ${t_pods} s;" \
    "$((SECONDS - t0)) s in all"
  echo "the cluster keeps running: export KUBECONFIG=$(state kubeconfigPath) PATH=$(state binDir):\$PATH;" \
    "scripts/node.sh stop ends it"
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
