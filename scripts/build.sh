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

# V8 flags for every mode. Lite mode (no optimizing compilers, lazy feedback) and young-generation semi-spaces
# of at most 2 MiB (V8's default grows them to 16 MiB under allocation) take the agent's peak RSS under a burst
# from ≈ 135 to ≈ 90 MiB at no measurable CPU cost per call; a plugin process is too short to notice either.
# Measured by tests/bench/agent_memory.ts (deno task bench:agent-memory). A CNI call (CNI_COMMAND set) also
# compiles eagerly, so that its whole code comes from the code cache: ≈ 1.5 ms less CPU per call (bench:plugin),
# and collects garbage on its own thread, not waking V8's helper threads: ≈ 0.5 ms less. (Not --single-threaded:
# it stops the timed Atomics wait that bounds each request to the agent, and a silent agent would hang the call;
# tests/cni/spiderpool_plugin.test.ts runs the built plugin against one.)
# A DENO_V8_FLAGS in the environment replaces them (the bundle's launcher sets it only when absent).
V8_FLAGS="--lite-mode,--max-semi-space-size=2"
CNI_V8_FLAGS="--no-lazy,--single-threaded-gc"

# cc_launcher compiles scripts/launcher.c into dist/spiderpool: static when libc.a is there, else dynamic.
cc_launcher() {
  local cc
  cc="$(command -v cc || command -v gcc)" || return 1
  local flags=(-O2 -s "-DRUNTIME_V8_FLAGS=\"$V8_FLAGS\"" "-DCNI_V8_FLAGS=\"$CNI_V8_FLAGS\"" -o dist/spiderpool
    scripts/launcher.c)
  "$cc" -static "${flags[@]}" 2>/dev/null || "$cc" "${flags[@]}"
}

rm -rf dist
mkdir -p dist/cni
if [ -n "${DENORT_BIN:-}" ] && [ -x "$DENORT_BIN" ] || [ -f "$CACHED_DENORT" ]; then
  "$DENO" compile --quiet -A --no-check --v8-flags="$V8_FLAGS" --output dist/spiderpool main.ts
  kind="deno compile"
else
  "$DENO" bundle --quiet --platform deno --code-splitting --outdir dist/lib main.ts
  # Each CNI plugin also gets a program of its own, lib/cni/<name>.js: only that plugin's code, which the
  # launcher runs for a CNI call under that name. Loading main.js and the shared chunks of the split bundle
  # instead costs a call ≈ 1.8 ms more CPU (tests/bench/plugin.ts). What a plugin imports dynamically (the
  # spiderpool plugin's raw-socket detection) goes to chunks of its own, read only by a call that needs them.
  entries="$(mktemp -d dist/.entries-XXXXXX)"
  for plugin in spiderpool coordinator ifacer; do
    printf 'import { main } from "../../src/plugins/%s.ts";\nDeno.exit(await main());\n' "$plugin" \
      >"$entries/$plugin.ts"
    "$DENO" bundle --quiet --platform deno --code-splitting --outdir dist/lib/cni "$entries/$plugin.ts"
  done
  rm -rf "$entries"
  # Deno fetches and parses every dynamic import whose specifier is a string literal when a module loads, so a
  # plugin would parse the agent's Kubernetes-client chunk (~50 ms) without running it. A computed specifier
  # keeps each mode's chunks unread until that mode is chosen.
  sed -i -E 's/import\("(\.\/[A-Za-z0-9_.-]+\.js|node:[a-z_/]+)"\)/import(["\1"][0])/g' dist/lib/*.js dist/lib/cni/*.js
  # The bundler's CommonJS helper (shared by every chunk) imports node:module eagerly, ≈ 10 ms for a plugin that
  # never calls require(); create the require function on first use instead.
  sed -i -E \
    -e '/^import \{ createRequire as __deno_internal_createRequire \} from "node:module";?$/d' \
    -e 's/^var __require = __deno_internal_createRequire\(import\.meta\.url\);?$/var __require = (id) => (__require.fn ??= globalThis.process.getBuiltinModule("node:module").createRequire(import.meta.url))(id);/' \
    dist/lib/*.js dist/lib/cni/*.js
  # The runtime travels with the bundle so that dist/ can be copied to a node as one folder.
  ln -f "$DENO" dist/lib/deno 2>/dev/null || cp "$DENO" dist/lib/deno
  # The launcher: a small static C program that execs the runtime directly (a shell in between costs a CNI
  # call ≈ 3-6 ms of CPU: bash plus readlink). Without a C compiler, a bash launcher with the same behaviour.
  launcher="C launcher"
  if ! cc_launcher; then
    launcher="bash launcher (no C compiler: run scripts/setup.sh for the faster C one)"
    cat > dist/spiderpool <<'LAUNCHER'
#!/bin/bash
# Runs the bundled program with argv[0] kept as the name this file was started under (the CNI plugin name);
# the same as scripts/launcher.c, which the build uses when a C compiler is present.
d="$(dirname "$(readlink -f "$0")")"
program="$d/lib/main.js"
if [ -n "${CNI_COMMAND+set}" ]; then
  export DENO_DIR="$d/cache/cni" DENO_V8_FLAGS="${DENO_V8_FLAGS-@V8_FLAGS@,@CNI_V8_FLAGS@}"
  name="${0##*/}"
  if [[ "$name" =~ ^[a-z-]+$ ]] && [ -r "$d/lib/cni/$name.js" ]; then program="$d/lib/cni/$name.js"; fi
else
  export DENO_DIR="$d/cache/run" DENO_V8_FLAGS="${DENO_V8_FLAGS-@V8_FLAGS@}"
fi
export DENO_NO_UPDATE_CHECK=1
exec -a "$0" "$d/lib/deno" run -A --no-config --no-lock --no-npm --no-remote "$program" "$@"
LAUNCHER
    sed -i -e "s|@V8_FLAGS@|$V8_FLAGS|g" -e "s|@CNI_V8_FLAGS@|$CNI_V8_FLAGS|g" dist/spiderpool
    chmod +x dist/spiderpool
  fi
  kind="code-split bundle + $launcher; no denort base binary for deno compile"
fi
for plugin in spiderpool coordinator ifacer; do
  ln -s ../spiderpool "dist/cni/$plugin"
done
if [ -f dist/lib/main.js ]; then
  # The runtime's module caches of this build live in dist/cache (the launcher's DENO_DIRs); cold, they cost a
  # plugin call ≈ 15 ms of CPU. Warm them as `spiderpool install` does for the copy it places on a node.
  "$DENO" eval --quiet \
    'import { warmCache } from "./src/cmd/install.ts"; for (const w of await warmCache("dist")) console.error(`build: ${w}`);'
fi
echo "build: dist/spiderpool ($kind)"
