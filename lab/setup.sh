#!/usr/bin/env bash
# `make setup`: install what the lab needs, once. Idempotent; when nothing is missing it only checks.
#   Debian packages (apt), Debian's arm64 busybox-static (downloaded, not installed), and the Python
#   packages in build/venv, a virtual environment of Debian's /usr/bin/python3: the Python that
#   gdb-multiarch embeds, so compiled packages (capstone) load inside GDB. Nothing goes into the
#   system Python.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
dl=$build/downloads
venv=$build/venv
BASE_PYTHON=${RKVM_BASE_PYTHON:-/usr/bin/python3}
# gcc + libc6-dev build the kernel's host tools (fixdep, gen_init_cpio); procps gives pgrep (tests).
PACKAGES="qemu-system-arm gdb-multiarch gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu make flex bison
bc libssl-dev libelf-dev cpio linux-source-6.12 e2fsprogs xz-utils gzip python3 python3-venv ca-certificates
gcc libc6-dev perl procps"

say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

missing=$("$root/lab/missing-debs.sh" $PACKAGES | tr '\n' ' ' | sed 's/ $//')
need_busybox=0; [ -x "$dl/busybox" ] || need_busybox=1

if [ "$(id -u)" != 0 ]; then
  if [ -n "$missing" ]; then
    die "missing Debian packages: $missing; as root run: apt-get install -y --no-install-recommends $missing (or: sudo make setup)"
  fi
  if [ $need_busybox = 1 ]; then
    die "the arm64 busybox is not downloaded yet; as root run: make setup (or: sudo make setup)"
  fi
fi

export DEBIAN_FRONTEND=noninteractive
updated=0
apt_update() {
  [ $updated = 1 ] && return 0
  apt-get update -q >/dev/null || die "apt-get update failed (is a Debian mirror reachable?)"
  updated=1
}
if [ -n "$missing" ]; then
  say "installing $missing"
  apt_update
  apt-get install -y -q --no-install-recommends $missing >/dev/null || die "apt-get install $missing failed"
  still=$("$root/lab/missing-debs.sh" $missing | tr '\n' ' ')
  [ -z "$still" ] || die "still missing after apt-get install: $still"
fi

if [ $need_busybox = 1 ]; then
  # Download only: nothing arm64 gets installed on the host.
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64; updated=0
  fi
  apt_update
  mkdir -p "$dl"
  # A directory only root can enter (mktemp -d is 0700): nobody can plant files or symlinks where
  # dpkg-deb unpacks as root. apt's download sandbox user could not write there, so it is turned off
  # for this one download.
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root busybox-static:arm64 >/dev/null) \
    || die "apt-get download busybox-static:arm64 failed"
  dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/x"
  install -m 0755 "$tmp/x/bin/busybox" "$dl/busybox.tmp" && mv "$dl/busybox.tmp" "$dl/busybox"
  rm -rf "$tmp"; trap - EXIT
  say "busybox (arm64) in $dl/busybox"
fi

# The venv is keyed by what went into it; a second run with nothing changed does nothing.
[ -x "$BASE_PYTHON" ] || die "$BASE_PYTHON not found: Debian's python3 is what GDB embeds (apt-get install python3)"
reqs=$root/lab/python-requirements.txt
venv_key=$( { cat "$reqs"; "$BASE_PYTHON" --version; echo "$root"; } | sha256sum | cut -c1-16)
pip_install() {
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --require-hashes --only-binary :all: \
    --no-deps -r "$reqs" "$@" 2>&1
}
if [ "$(cat "$venv/.rkvm-key" 2>/dev/null)" != "$venv_key" ] || [ ! -x "$venv/bin/python" ]; then
  say "Python packages into $venv (from $BASE_PYTHON)"
  rm -rf "$venv"
  "$BASE_PYTHON" -m venv "$venv" || die "'$BASE_PYTHON -m venv' failed (apt-get install python3-venv)"
  if ! log=$(pip_install); then
    if grep -q "CERTIFICATE_VERIFY_FAILED" <<<"$log"; then
      # An intercepting proxy whose CA this machine lacks. Every file is checked against the sha256
      # pinned in python-requirements.txt, so an untrusted connection cannot change what is installed.
      say "PyPI's TLS certificate is not trusted here (an intercepting proxy?): installing the hash-pinned wheels anyway"
      log=$(pip_install --trusted-host pypi.org --trusted-host files.pythonhosted.org) \
        || { echo "$log" | grep -v "^WARNING: Location" >&2; die "pip install into $venv failed"; }
    else
      echo "$log" | grep -v "^WARNING: Location" >&2
      die "pip install into $venv failed (is PyPI reachable?)"
    fi
  fi
  # The checkout itself: on the venv's path (what an editable install does, without building one).
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$root" > "$site/gdb-rkvm-checkout.pth"
  "$venv/bin/python" -c "import pygdbmi, capstone, prompt_toolkit, elftools, pytest, hypothesis, gdb_rkvm" \
    || die "the Python packages do not import in $venv"
  echo "$venv_key" > "$venv/.rkvm-key"
fi

# GDB's embedded Python must be the venv's Python (same X.Y), or capstone's compiled part will not load.
if command -v gdb-multiarch >/dev/null; then
  gdb_py=$(gdb-multiarch -nx -batch -ex 'python import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null | tail -1)
  venv_py=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [ "$gdb_py" = "$venv_py" ] || die "gdb-multiarch embeds Python $gdb_py but $venv has $venv_py: set RKVM_BASE_PYTHON to a python$gdb_py"
fi
