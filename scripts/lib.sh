# Shared shell helpers: where the project's Deno lives. Sourced by the other scripts.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DENO_VERSION="2.9.6"
LOCAL_DENO="$ROOT/.tools/deno/node_modules/@deno/linux-x64-glibc/deno"

# deno_bin prints the Deno to use: the project's pinned copy when installed, else one on PATH.
deno_bin() {
  if [ -x "$LOCAL_DENO" ]; then
    echo "$LOCAL_DENO"
  elif command -v deno >/dev/null 2>&1; then
    command -v deno
  else
    return 1
  fi
}
