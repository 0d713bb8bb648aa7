#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for building, running and testing the project.
# Idempotent: a second run only checks. Needs root for apt-get (skipped when everything is present).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

# Debian packages: iproute2 (ip), iptables, the CNI reference plugins (/usr/lib/cni), libnl for FFI,
# openssl for test PKI, npm for fetching Deno from the npm registry, and a C compiler for the bundle's launcher.
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
[ -e /usr/lib/x86_64-linux-gnu/libnl-3.so.200 ] || need+=(libnl-3-200)
[ -e /usr/lib/x86_64-linux-gnu/libnl-route-3.so.200 ] || need+=(libnl-route-3-200)
command -v openssl >/dev/null || need+=(openssl)
command -v ping >/dev/null || need+=(iputils-ping)
command -v npm >/dev/null || need+=(npm)
command -v unzip >/dev/null || need+=(unzip)
# The plugin launcher (scripts/launcher.c) is built with the C compiler.
# The real node (scripts/node.sh, tests/node): runc is built with cgo and libseccomp; the pause image is
# Kubernetes' pause.c linked statically (libc6-dev); busybox-static is the test workload and the image's tools.
[ -x /bin/busybox ] || need+=(busybox-static)
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v gcc >/dev/null && command -v cc >/dev/null || need+=(gcc)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Deno: the pinned release from the npm registry, into a git-ignored folder, unless one is on PATH.
if ! deno_bin >/dev/null 2>&1; then
  echo "setup: installing Deno $DENO_VERSION into .tools/deno"
  mkdir -p .tools/deno
  npm install --silent --no-audit --no-fund --prefix .tools/deno "deno@$DENO_VERSION" >/dev/null
fi
DENO="$(deno_bin)"
"$DENO" --version | head -n 1

# Go builds the test control plane (tests/kube); the machines ship it in /usr/local/go. Debian's golang is too old.
GO="$(command -v go || echo /usr/local/go/bin/go)"
if ! "$GO" version >/dev/null 2>&1; then
  echo "setup: no Go toolchain (need Go >= 1.26 on PATH or in /usr/local/go) to build the test control plane" >&2
  exit 1
fi

# npm dependencies pinned in deno.json / deno.lock.
"$DENO" install --frozen --quiet
