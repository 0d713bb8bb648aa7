#!/usr/bin/env bash
# Builds the real Kubernetes components from the Go module in tests/kube, caching the binaries outside the repo.
#   kube-build.sh [controlplane]  kube-apiserver, kube-controller-manager, etcd 3.6 (the integration tests)
#   kube-build.sh node            kubelet, kube-scheduler, kube-proxy, kubectl (the one-node cluster)
# Each target has its own cache key and directory, so the control-plane-only path never builds the node.
# Prints the bin directory as the last line of stdout; a cache hit returns at once.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MOD="$ROOT/tests/kube"
KUBE_VERSION="v1.36.3"
export GOTOOLCHAIN=local CGO_ENABLED=0
TARGET="${1:-controlplane}"
case "$TARGET" in
controlplane)
  BINARIES=(kube-apiserver kube-controller-manager etcd)
  PACKAGES=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager go.etcd.io/etcd/server/v3)
  ;;
node)
  BINARIES=(kubelet kube-scheduler kube-proxy kubectl)
  PACKAGES=(k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy
    k8s.io/kubernetes/cmd/kubectl)
  ;;
*)
  echo "kube-build: unknown target '$TARGET'; use controlplane or node" >&2
  exit 2
  ;;
esac

if [ -n "${GO:-}" ]; then
  :
elif command -v go >/dev/null 2>&1; then
  GO="$(command -v go)"
elif [ -x /usr/local/go/bin/go ]; then
  GO=/usr/local/go/bin/go
else
  echo "kube-build: no Go toolchain found (set GO=/path/to/go or put go on PATH); need Go >= 1.26" >&2
  exit 1
fi

# The key covers everything that decides the binaries' bytes: the module graph, this script (flags, version
# stamps) and the toolchain.
key="$(
  {
    cat "$MOD/go.mod" "$MOD/go.sum" "${BASH_SOURCE[0]}"
    "$GO" version
    echo "$TARGET"
  } | sha256sum | cut -c1-16
)"
CACHE_ROOT="${SPIDERPOOL_KUBE_CACHE:-$HOME/.cache/spiderpool-kube}"
BIN="$CACHE_ROOT/$key/bin"

complete() {
  local b
  for b in "${BINARIES[@]}"; do
    [ -x "$BIN/$b" ] || return 1
  done
}

if complete; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE_ROOT/$key"
# Two test runs starting at once must not both spend 20 minutes building the same thing.
exec 9>"$CACHE_ROOT/$key/lock"
flock 9
if complete; then
  echo "$BIN"
  exit 0
fi

tmp="$CACHE_ROOT/$key/bin.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

major="${KUBE_VERSION#v}"
major="${major%%.*}"
minor="${KUBE_VERSION#v*.}"
minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean"
done

echo "kube-build: building ${BINARIES[*]} ($KUBE_VERSION) with $("$GO" version)" >&2
echo "kube-build: a cold build takes about 5 minutes per target on 2 cores (plus module downloads); output goes to $BIN" >&2
start=$SECONDS
(
  cd "$MOD"
  "$GO" build -pgo=off -trimpath -buildvcs=false -ldflags "$ldflags" -o "$tmp/" "${PACKAGES[@]}"
)
# go names the binary of a module root ending in /v3 after the element before the major version.
if [ -x "$tmp/server" ]; then mv "$tmp/server" "$tmp/etcd"; fi
for b in "${BINARIES[@]}"; do
  [ -x "$tmp/$b" ] || {
    echo "kube-build: $b missing after go build in $tmp" >&2
    exit 1
  }
done
rm -rf "$BIN"
mv "$tmp" "$BIN"
trap - EXIT
echo "kube-build: built in $((SECONDS - start))s" >&2
echo "$BIN"
