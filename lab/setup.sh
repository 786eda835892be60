#!/usr/bin/env bash
# `make setup`: install what the lab needs, once. Idempotent; when nothing is missing it only checks.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dl=$root/build/downloads
PACKAGES="qemu-system-arm gdb-multiarch gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu make flex bison
bc libssl-dev libelf-dev cpio linux-source-6.12 e2fsprogs xz-utils gzip"
PY=${PYTHON:-python3}

missing=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $PACKAGES 2>/dev/null \
  | awk '$1 == "ii" {print $2}' | sort | comm -13 - <(echo $PACKAGES | tr ' ' '\n' | sort))
need_busybox=0; [ -x "$dl/busybox" ] || need_busybox=1
pip_key=$( { cat "$root/setup.cfg"; command -v "$PY"; } | sha256sum | cut -c1-16)
need_pip=0; [ "$(cat "$root/build/.pip-installed" 2>/dev/null)" = "$pip_key" ] || need_pip=1

if [ "$(id -u)" != 0 ] && { [ -n "$missing" ] || [ $need_busybox = 1 ]; }; then
  echo "setup: missing Debian packages or busybox; as root run: make setup" >&2
  [ -n "$missing" ] && echo "  (or: sudo apt-get install -y $(echo $missing))" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
updated=0
apt_update() { [ $updated = 1 ] || { apt-get update -q >/dev/null; updated=1; }; }
if [ -n "$missing" ]; then
  echo "setup: installing $(echo $missing)"
  apt_update
  apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

if [ $need_busybox = 1 ]; then
  # Download only: nothing arm64 gets installed on the host.
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64; updated=0
  fi
  apt_update
  mkdir -p "$dl"; tmp=$(mktemp -d); chmod a+rwx "$tmp"  # apt downloads as _apt
  (cd "$tmp" && apt-get download -q busybox-static:arm64 >/dev/null && dpkg-deb -x busybox-static_*.deb x)
  install -m 0755 "$tmp/x/bin/busybox" "$dl/busybox.tmp" && mv "$dl/busybox.tmp" "$dl/busybox"
  rm -rf "$tmp"
  echo "setup: busybox (arm64) in $dl/busybox"
fi

if [ $need_pip = 1 ]; then
  echo "setup: pip install -e '.[test]'"
  "$PY" -m pip install -q --disable-pip-version-check -e "$root[test]" 2>&1 | grep -v "Running pip as the 'root'" || true
  "$PY" -c "import pygdbmi, capstone, prompt_toolkit, elftools" || { echo "setup: pip install failed" >&2; exit 1; }
  # GDB embeds Debian's Python: tell rkvm.py where this Python's packages (capstone...) live.
  mkdir -p "$root/build"
  "$PY" -c "import capstone, os; print(os.path.dirname(os.path.dirname(capstone.__file__)))" > "$root/build/python-site"
  echo "$pip_key" > "$root/build/.pip-installed"
fi
