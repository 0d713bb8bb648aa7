#!/usr/bin/env bash
# Builds everything a one-node cluster needs besides the control plane, from Go modules, cached outside the repo:
#   tests/kube (kube-build.sh node)   kubelet, kube-scheduler, kube-proxy, kubectl v1.36
#   tests/node/tools/containerd       containerd 2.x, containerd-shim-runc-v2, ctr (static, no cgo)
#   tests/node/tools/runc             runc (cgo + libseccomp: containerd's seccomp profiles need it)
#   tests/node/tools/helm             helm v3
#   images/ocibuild                   writes the project's images without a container engine
# Each tool has its own cache key (its go.mod, go.sum, this script, the Go version), so changing one rebuilds
# only that one. Prints, as the last line of stdout, one directory holding links to all of them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export GOTOOLCHAIN=local

if [ -n "${GO:-}" ]; then
  :
elif command -v go >/dev/null 2>&1; then
  GO="$(command -v go)"
elif [ -x /usr/local/go/bin/go ]; then
  GO=/usr/local/go/bin/go
else
  echo "node-build: no Go toolchain found (set GO=/path/to/go or put go on PATH); need Go >= 1.26" >&2
  exit 1
fi
CACHE_ROOT="${SPIDERPOOL_KUBE_CACHE:-$HOME/.cache/spiderpool-kube}"
GOVERSION="$("$GO" version)"

# build_tool NAME MODULE_DIR CGO TAGS LDFLAGS BINARY=PACKAGE... ; prints the tool's bin directory.
build_tool() {
  local name="$1" mod="$ROOT/$2" cgo="$3" tags="$4" ldflags="-s -w $5"
  shift 5
  local key
  key="$(
    {
      cat "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}"
      find "$mod" -name '*.go' -type f | sort | xargs -r cat
      echo "$GOVERSION $name $cgo $tags $ldflags $*"
    } | sha256sum | cut -c1-16
  )"
  local dir="$CACHE_ROOT/$name-$key" spec ok=1
  for spec in "$@"; do [ -x "$dir/bin/${spec%%=*}" ] || ok=0; done
  if [ "$ok" = 1 ]; then
    echo "$dir/bin"
    return
  fi
  mkdir -p "$dir"
  (
    flock 9
    for spec in "$@"; do [ -x "$dir/bin/${spec%%=*}" ] || ok=0; done
    [ "$ok" = 1 ] && exit 0
    local tmp="$dir/bin.tmp.$$" start=$SECONDS
    rm -rf "$tmp"
    mkdir -p "$tmp"
    echo "node-build: building $name ($*) with $GOVERSION" >&2
    cd "$mod"
    for spec in "$@"; do
      CGO_ENABLED="$cgo" "$GO" build -pgo=off -trimpath -buildvcs=false -tags "$tags" -ldflags "$ldflags" \
        -o "$tmp/${spec%%=*}" "${spec#*=}" >&2
    done
    rm -rf "$dir/bin"
    mv "$tmp" "$dir/bin"
    echo "node-build: $name built in $((SECONDS - start))s" >&2
  ) 9>"$dir/lock"
  echo "$dir/bin"
}

kube_bin="$(bash "$ROOT/scripts/kube-build.sh" node | tail -n 1)"
# The version each module is required at, for the tools' own version stamps.
modver() { (cd "$ROOT/$1" && "$GO" list -m -f '{{.Version}}' "$2"); }
containerd_bin="$(build_tool containerd tests/node/tools/containerd 0 "no_btrfs no_devmapper" \
  "-X github.com/containerd/containerd/v2/version.Version=$(modver tests/node/tools/containerd github.com/containerd/containerd/v2)" \
  containerd=github.com/containerd/containerd/v2/cmd/containerd \
  containerd-shim-runc-v2=github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
  ctr=github.com/containerd/containerd/v2/cmd/ctr)"
if ! pkg-config --exists libseccomp 2>/dev/null; then
  echo "node-build: runc needs libseccomp-dev and pkg-config (scripts/setup.sh installs them)" >&2
  exit 1
fi
runc_bin="$(build_tool runc tests/node/tools/runc 1 "seccomp urfave_cli_no_docs" "" runc=github.com/opencontainers/runc)"
helm_bin="$(build_tool helm tests/node/tools/helm 0 "" \
  "-X helm.sh/helm/v3/internal/version.version=$(modver tests/node/tools/helm helm.sh/helm/v3)" \
  helm=helm.sh/helm/v3/cmd/helm)"
ocibuild_bin="$(build_tool ocibuild images/ocibuild 0 "" "" ocibuild=.)"

# One directory of links, named by the tools' own directories, so a caller needs one PATH entry.
all="$(echo "$kube_bin $containerd_bin $runc_bin $helm_bin $ocibuild_bin" | sha256sum | cut -c1-16)"
out="$CACHE_ROOT/node-$all/bin"
if [ ! -d "$out" ]; then
  tmp="$CACHE_ROOT/node-$all/bin.tmp.$$"
  mkdir -p "$tmp"
  for d in "$kube_bin" "$containerd_bin" "$runc_bin" "$helm_bin" "$ocibuild_bin"; do
    for f in "$d"/*; do ln -sf "$f" "$tmp/"; done
  done
  mv -T "$tmp" "$out" 2>/dev/null || rm -rf "$tmp"
fi
echo "$out"
