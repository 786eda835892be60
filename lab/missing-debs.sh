#!/usr/bin/env bash
# Print, one per line, the Debian packages among "$@" that are not installed.
# dpkg-query exits 1 when it has never heard of a package (every package on a fresh machine):
# that is an answer ("not installed"), not an error, so its status is not the script's.
set -uo pipefail
[ $# -gt 0 ] || exit 0
installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "$@" 2>/dev/null | awk '$1 == "ii" {print $2}')
for pkg in "$@"; do
  # multiarch names (pkg:arch) are listed by dpkg-query without the arch
  grep -qxF -- "${pkg%%:*}" <<<"$installed" || echo "$pkg"
done
exit 0
