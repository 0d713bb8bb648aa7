#!/usr/bin/env bash
# Builds the project's container images from files, without a container engine, as tarballs that containerd
# imports (`ctr images import`). Cached by content: an image is rebuilt only when the files that go into it change.
#   spiderpool   dist/ (scripts/build.sh: the bundle and the Deno runtime) at /usr/local/lib/spiderpool, with
#                /usr/bin/spiderpool{,-agent,-controller,-init} linking to its launcher; bash, busybox for the
#                small tools, iproute2, iptables, libnl and CA certificates from this Debian machine, with the
#                shared libraries they load. Tag: <version>-<content hash of dist/>.
#   pause        Kubernetes' own pause.c (from the k8s.io/kubernetes module of tests/kube), linked statically.
#   busybox      Debian's busybox-static with its applet links: the test workload.
# Usage: images/build.sh [OUT_DIR]. Needs ocibuild on PATH or in $OCIBUILD (scripts/node-build.sh builds it)
# and dist/ built ($SPIDERPOOL_DIST names another build). Prints one line per image: "<name> <reference> <tarball>".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${1:-${SPIDERPOOL_IMAGE_CACHE:-$HOME/.cache/spiderpool-images}}"
OCIBUILD="${OCIBUILD:-$(command -v ocibuild || true)}"
[ -x "$OCIBUILD" ] || { echo "images: ocibuild not found (run scripts/node-build.sh; set OCIBUILD)" >&2; exit 1; }
DIST="${SPIDERPOOL_DIST:-$ROOT/dist}"
[ -x "$DIST/spiderpool" ] || { echo "images: $DIST not built (run scripts/build.sh)" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "images: /bin/busybox missing (Debian package busybox-static; scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$CACHE"
work="$(mktemp -d "$CACHE/stage.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# A Debian-like root: /bin, /sbin, /lib, /lib64 link into /usr as on a merged-/usr system.
new_root() {
  local r="$1"
  mkdir -p "$r"/{usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64,etc,tmp,root,proc,sys,dev,run,var}
  chmod 1777 "$r/tmp"
  ln -s usr/bin "$r/bin"
  ln -s usr/sbin "$r/sbin"
  ln -s usr/lib "$r/lib"
  ln -s usr/lib64 "$r/lib64"
  ln -s ../run "$r/var/run"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  printf 'hosts: files dns\n' >"$r/etc/nsswitch.conf"
}

# The merged-/usr path of a host path: /lib/x -> /usr/lib/x.
usr_path() {
  case "$1" in
  /bin/* | /sbin/* | /lib/* | /lib64/*) echo "/usr$1" ;;
  *) echo "$1" ;;
  esac
}

# Copies an ELF file and the shared libraries it loads into the root.
copy_elf() {
  local r="$1" src="$2" dest="${3:-}"
  dest="${dest:-$(usr_path "$src")}"
  mkdir -p "$r$(dirname "$dest")"
  cp -L "$src" "$r$dest"
  copy_libs "$r" "$src"
}

# Copies every shared library an ELF file loads (ldd) into the root, at the paths the loader expects.
copy_libs() {
  local r="$1" src="$2" lib real at
  while read -r lib; do
    real="$(readlink -f "$lib")"
    at="$(usr_path "$lib")"
    if [ ! -e "$r$(usr_path "$real")" ]; then
      mkdir -p "$r$(dirname "$(usr_path "$real")")"
      cp -L "$real" "$r$(usr_path "$real")"
    fi
    if [ "$at" != "$(usr_path "$real")" ] && [ ! -e "$r$at" ]; then
      mkdir -p "$r$(dirname "$at")"
      ln -s "$(usr_path "$real")" "$r$at"
    fi
  done < <(ldd "$src" 2>/dev/null | grep -oE '/[^ ]+\.so[^ ]*' | sort -u)
}

busybox_links() { # root, dir: a link for each busybox applet that the root does not already have
  local r="$1" d="$2" a
  for a in $(/bin/busybox --list); do
    [ -e "$r$d/$a" ] || [ -e "$r/usr/bin/$a" ] || [ -e "$r/usr/sbin/$a" ] || ln -s /usr/bin/busybox "$r$d/$a"
  done
}

# Content key of a staged root: names, link targets, modes and bytes of everything in it.
tree_key() {
  (
    cd "$1"
    find . -printf '%p %y %m %l\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -c1-16
}

# image NAME REF ROOTS... -- OCIBUILD_FLAGS...: writes (or reuses) the tarball and prints "NAME REF TARBALL".
image() {
  local name="$1" ref="$2" roots=() flags=() key r
  shift 2
  while [ "$1" != "--" ]; do roots+=("$1"); shift; done
  shift
  flags=("$@")
  key="$(
    {
      for r in "${roots[@]}"; do tree_key "$r"; done
      echo "$ref ${flags[*]}"
      sha256sum "$OCIBUILD" "${BASH_SOURCE[0]}"
    } | sha256sum | cut -c1-16
  )"
  local tar="$CACHE/$name-$key.tar"
  if [ ! -s "$tar" ]; then
    local layers=()
    for r in "${roots[@]}"; do layers+=(--layer "$r"); done
    "$OCIBUILD" --name "$ref" --out "$tar" "${layers[@]}" "${flags[@]}" >&2
    # Every new build of dist/ is a new tarball: keep the newest few of each image.
    ls -t "$CACHE/$name-"*.tar 2>/dev/null | tail -n +4 | xargs -r rm -f
  fi
  echo "$name $ref $tar"
}

# --- busybox: the test workload ------------------------------------------------------------------------------
bb="$work/busybox"
new_root "$bb"
cp /bin/busybox "$bb/usr/bin/busybox"
busybox_links "$bb" /usr/bin
bbver="$(/bin/busybox | head -n 1 | grep -oE 'v[0-9]+\.[0-9]+\.[0-9]+' | tr -d v)"
image busybox "localhost/spiderpool-ts/busybox:$bbver" "$bb" -- --cmd sh --env PATH=/usr/sbin:/usr/bin

# --- pause: Kubernetes' pause.c ------------------------------------------------------------------------------
kdir="$(cd "$ROOT/tests/kube" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' k8s.io/kubernetes)"
pause_src="$kdir/build/pause/linux/pause.c"
[ -f "$pause_src" ] || { echo "images: $pause_src missing (go mod download in tests/kube)" >&2; exit 1; }
pv="$(grep -oE '^TAG \?= [0-9.]+' "$kdir/build/pause/Makefile" 2>/dev/null | awk '{print $3}')"
pv="${pv:-3.10}"
pz="$work/pause"
mkdir -p "$pz"
gcc -Os -static -Wall -Werror -DVERSION="v$pv" -o "$pz/pause" "$pause_src"
strip "$pz/pause"
image pause "localhost/spiderpool-ts/pause:$pv" "$pz" -- --entrypoint /pause

# --- spiderpool: our build and what it needs at run time ------------------------------------------------------
base="$work/base"
new_root "$base"
copy_elf "$base" /bin/bash /usr/bin/bash
copy_elf "$base" /bin/ip /usr/bin/ip
xt="$(readlink -f /usr/sbin/iptables)"
copy_elf "$base" "$xt" "/usr/sbin/$(basename "$xt")"
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -s "$(basename "$xt")" "$base/usr/sbin/$t"
done
mkdir -p "$base/usr/lib/x86_64-linux-gnu/xtables"
for so in /usr/lib/x86_64-linux-gnu/xtables/*.so; do copy_elf "$base" "$so"; done
for so in /usr/lib/x86_64-linux-gnu/libnl-3.so.200 /usr/lib/x86_64-linux-gnu/libnl-route-3.so.200; do
  copy_elf "$base" "$so"
done
# The runtime's libraries: the bundle's Deno, or the compiled binary itself.
if [ -x "$DIST/lib/deno" ]; then copy_libs "$base" "$DIST/lib/deno"; else copy_libs "$base" "$DIST/spiderpool"; fi
cp /bin/busybox "$base/usr/bin/busybox"
busybox_links "$base" /usr/bin
ln -s bash "$base/usr/bin/sh" 2>/dev/null || true
mkdir -p "$base/etc/ssl/certs"
cp -L /etc/ssl/certs/ca-certificates.crt "$base/etc/ssl/certs/ca-certificates.crt"

app="$work/app"
mkdir -p "$app/usr/local/lib" "$app/usr/bin"
cp -a "$DIST" "$app/usr/local/lib/spiderpool"
for n in spiderpool spiderpool-agent spiderpool-controller spiderpool-init; do
  ln -s ../local/lib/spiderpool/spiderpool "$app/usr/bin/$n"
done
version="$(grep -oE 'VERSION = "[^"]+"' "$ROOT/src/version.ts" | cut -d'"' -f2)"
tag="$version-$(tree_key "$app" | cut -c1-12)"
image spiderpool "localhost/spiderpool-ts/spiderpool:$tag" "$base" "$app" -- \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin --env HOME=/root --env DENO_DIR=/tmp/deno \
  --entrypoint /usr/bin/spiderpool
