#!/usr/bin/env bash
# build/initramfs.cpio.gz: busybox (Debian's arm64 busybox-static), lab/init and rkvm.ko.
# Uses the kernel's own usr/gen_init_cpio so device nodes need no root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$root/build/initramfs.cpio.gz}")
kdir=${KERNEL_OUT:-$root/build/kernel}
busybox=$root/build/downloads/busybox
ko=${MODULE_KO:-$root/build/module/rkvm.ko}
die() { echo "build-initramfs: $*" >&2; exit 1; }
[ -x "$busybox" ] || die "$busybox missing: run 'make setup'"
[ -f "$ko" ] || die "$ko missing: run 'make module'"
gen=$kdir/usr/gen_init_cpio
[ -x "$gen" ] || die "$gen missing: build the kernel first ('make kernel')"

list=$(mktemp); trap 'rm -f "$list"' EXIT
cat > "$list" <<LIST
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
nod /dev/null 0666 0 0 c 1 3
dir /proc 0755 0 0
dir /sys 0755 0 0
dir /tmp 1777 0 0
dir /root 0700 0 0
dir /etc 0755 0 0
dir /bin 0755 0 0
dir /sbin 0755 0 0
dir /usr 0755 0 0
dir /usr/bin 0755 0 0
dir /usr/sbin 0755 0 0
dir /lib 0755 0 0
dir /lib/modules 0755 0 0
file /bin/busybox $busybox 0755 0 0
file /init $root/lab/init 0755 0 0
file /lib/modules/rkvm.ko $ko 0644 0 0
LIST
for extra in "${@:2}"; do echo "file /lib/modules/$(basename "$extra") $extra 0644 0 0" >> "$list"; done
"$gen" "$list" | gzip -9 > "$out.tmp"
mv "$out.tmp" "$out"
echo "build-initramfs: $out"
