#!/usr/bin/env bash
# Build the lab kernel into build/kernel (the kernel's O= directory), cached by a hash of its inputs.
#   KERNEL_SRC=DIR   use that source tree instead of Debian's linux-source-6.12 tarball
#   KERNEL_FRAGMENT  config fragment (default lab/kernel.config); KERNEL_OUT output dir
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cross=${CROSS_COMPILE:-aarch64-linux-gnu-}
# KERNEL_FRAGMENT may list several fragments (space separated), merged in order.
fragment=${KERNEL_FRAGMENT:-$root/lab/kernel.config}
out=${KERNEL_OUT:-$root/build/kernel}
tarball=${KERNEL_TARBALL:-/usr/src/linux-source-6.12.tar.xz}

die() { echo "build-kernel: $*" >&2; exit 1; }
command -v "${cross}gcc" >/dev/null || die "${cross}gcc not found: run 'make setup' first"

if [ -n "${KERNEL_SRC:-}" ]; then
  src=$(cd "$KERNEL_SRC" 2>/dev/null && pwd) || die "KERNEL_SRC=$KERNEL_SRC is not a directory"
  [ -f "$src/Makefile" ] && [ -d "$src/arch/arm64" ] || die "KERNEL_SRC=$src is not a Linux source tree"
  src_id="tree:$src:$(make -s -C "$src" kernelversion 2>/dev/null):$(stat -c %Y "$src/Makefile")"
else
  [ -f "$tarball" ] || die "$tarball missing: run 'make setup' (installs linux-source-6.12)"
  src_id="tarball:$tarball:$(stat -c '%s:%Y' "$tarball")"
  srcbase=$root/build/src
  src=$srcbase/$(basename "$tarball" .tar.xz)
  if [ "$(cat "$src/.rkvm-extracted" 2>/dev/null)" != "$src_id" ]; then
    echo "build-kernel: extracting $tarball"
    rm -rf "$src"; mkdir -p "$srcbase"
    tar -C "$srcbase" -xf "$tarball"
    echo "$src_id" > "$src/.rkvm-extracted"
  fi
fi

key=$( { echo "$src_id"; cat $fragment; "${cross}gcc" --version | head -1; cat "$0"; } | sha256sum | cut -c1-16)
if [ "$(cat "$out/.rkvm-key" 2>/dev/null)" = "$key" ] && [ -f "$out/Image" ] && [ -f "$out/vmlinux" ]; then
  echo "build-kernel: up to date ($key)"
  exit 0
fi

echo "build-kernel: building (key $key) from $src into $out"
rm -rf "$out"; mkdir -p "$out"
kmake() { make -s -C "$src" O="$out" ARCH=arm64 CROSS_COMPILE="$cross" "$@"; }
kmake tinyconfig
ARCH=arm64 "$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" $fragment >/dev/null
kmake olddefconfig
# merge_config only warns when Kconfig drops an option: the lab depends on these, so refuse.
bad=0
while IFS= read -r line; do
  case "$line" in CONFIG_*=*) ;; *) continue ;; esac
  name=${line%%=*}; want=${line#*=}
  if [ "$want" = n ]; then
    grep -qx "$name=[ym]" "$out/.config" && { echo "build-kernel: $name should be off" >&2; bad=1; }
  else
    grep -qx "$line" "$out/.config" || { echo "build-kernel: $line did not take ($(grep "^$name=" "$out/.config" || echo unset))" >&2; bad=1; }
  fi
done < <(cat $fragment | awk -F= '/^CONFIG_/ {last[$1] = $0} END {for (k in last) print last[k]}')
[ $bad = 0 ] || die "config fragment $fragment did not apply"
kmake -j"$(nproc)" Image modules scripts_gdb
cp "$out/arch/arm64/boot/Image" "$out/Image"
echo "$key" > "$out/.rkvm-key"
echo "build-kernel: done"
