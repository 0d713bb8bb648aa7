#!/usr/bin/env bash
# Builds dist/: the one binary `dist/spiderpool` and the CNI plugin names `dist/cni/{spiderpool,coordinator,ifacer}`
# as symlinks to it. Uses `deno compile` when a denort base binary is available (DENORT_BIN, or Deno's download
# cache); otherwise a code-split bundle run by the pinned Deno through a launcher that keeps argv[0], so a plugin
# only parses the chunks of its own mode.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
DENO="$(deno_bin)" || { echo "build: deno not found; run scripts/setup.sh first" >&2; exit 1; }
VER="$("$DENO" --version | awk 'NR==1{print $2}')"
DENO_CACHE="${DENO_DIR:-$HOME/.cache/deno}"
CACHED_DENORT="$DENO_CACHE/dl/release/v$VER/denort-x86_64-unknown-linux-gnu.zip"

rm -rf dist
mkdir -p dist/cni
if [ -n "${DENORT_BIN:-}" ] && [ -x "$DENORT_BIN" ] || [ -f "$CACHED_DENORT" ]; then
  "$DENO" compile --quiet -A --no-check --output dist/spiderpool main.ts
  kind="deno compile"
else
  "$DENO" bundle --quiet --platform deno --code-splitting --outdir dist/lib main.ts
  # Deno fetches and parses every dynamic import whose specifier is a string literal when a module loads, so a
  # plugin would parse the agent's Kubernetes-client chunk (~50 ms) without running it. A computed specifier
  # keeps each mode's chunks unread until that mode is chosen.
  sed -i -E 's/import\("(\.\/[A-Za-z0-9_.-]+\.js|node:[a-z_/]+)"\)/import(["\1"][0])/g' dist/lib/*.js
  # The bundler's CommonJS helper (shared by every chunk) imports node:module eagerly, ≈ 10 ms for a plugin that
  # never calls require(); create the require function on first use instead.
  sed -i -E \
    -e '/^import \{ createRequire as __deno_internal_createRequire \} from "node:module";?$/d' \
    -e 's/^var __require = __deno_internal_createRequire\(import\.meta\.url\);?$/var __require = (id) => (__require.fn ??= globalThis.process.getBuiltinModule("node:module").createRequire(import.meta.url))(id);/' \
    dist/lib/*.js
  # The runtime travels with the bundle so that dist/ can be copied to a node as one folder.
  ln -f "$DENO" dist/lib/deno 2>/dev/null || cp "$DENO" dist/lib/deno
  cat > dist/spiderpool <<'LAUNCHER'
#!/bin/bash
# Runs the bundled binary with argv[0] kept as the name this file was started under (the CNI plugin name).
d="$(dirname "$(readlink -f "$0")")"
exec -a "$0" "$d/lib/deno" run -A --no-config --no-lock "$d/lib/main.js" "$@"
LAUNCHER
  chmod +x dist/spiderpool
  kind="code-split bundle + launcher (no denort base binary available for deno compile)"
fi
for plugin in spiderpool coordinator ifacer; do
  ln -s ../spiderpool "dist/cni/$plugin"
done
echo "build: dist/spiderpool ($kind)"
