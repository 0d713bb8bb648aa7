#!/usr/bin/env bash
# Builds the Go parts the CNI tests talk to, from the Go module in tests/cnitools: the reference CNI plugins
# bridge and host-local (a version that speaks CNI 1.1.0, which Debian's 1.1.1 refuses), cnidriver (libcni,
# as container runtimes call plugins) and gohttp (Go's net/http on a unix socket). The binaries are cached
# outside the repo, keyed by the module, this script and the Go version. Prints the bin directory as the last
# line of stdout; a cache hit returns at once.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MOD="$ROOT/tests/cnitools"
export GOTOOLCHAIN=local CGO_ENABLED=0

if [ -n "${GO:-}" ]; then
  :
elif command -v go >/dev/null 2>&1; then
  GO="$(command -v go)"
elif [ -x /usr/local/go/bin/go ]; then
  GO=/usr/local/go/bin/go
else
  echo "cni-build: no Go toolchain found (set GO=/path/to/go or put go on PATH); need Go >= 1.26" >&2
  exit 1
fi

key="$(
  {
    cat "$MOD/go.mod" "$MOD/go.sum" "${BASH_SOURCE[0]}"
    find "$MOD" -name '*.go' -print0 | sort -z | xargs -0 cat
    "$GO" version
  } | sha256sum | cut -c1-16
)"
CACHE_ROOT="${SPIDERPOOL_CNI_CACHE:-$HOME/.cache/spiderpool-cni}"
BIN="$CACHE_ROOT/$key/bin"
BINARIES=(bridge host-local cnidriver gohttp)

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

plugins_version="$(cd "$MOD" && "$GO" list -m -f '{{.Version}}' github.com/containernetworking/plugins)"
ldflags="-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$plugins_version"
echo "cni-build: building CNI plugins $plugins_version, cnidriver and gohttp with $("$GO" version)" >&2
start=$SECONDS
(
  cd "$MOD"
  "$GO" build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$tmp/" \
    github.com/containernetworking/plugins/plugins/main/bridge \
    github.com/containernetworking/plugins/plugins/ipam/host-local \
    ./cnidriver ./gohttp
)
for b in "${BINARIES[@]}"; do
  [ -x "$tmp/$b" ] || {
    echo "cni-build: $b missing after go build in $tmp" >&2
    exit 1
  }
done
rm -rf "$BIN"
mv "$tmp" "$BIN"
trap - EXIT
echo "cni-build: built in $((SECONDS - start))s" >&2
echo "$BIN"
