#!/usr/bin/env bash
# Installs the Debian packages the build needs (OpenSSL headers for the
# `openssl` crate, pkg-config, the openssl command line; perl and make to
# build OpenSSL for the vendored-openssl feature) when missing.
# Needs root only when something is missing.
set -euo pipefail
need=()
for p in libssl-dev pkg-config openssl perl make; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "scripts/deps.sh: please install as root: ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-cache show libssl-dev >/dev/null 2>&1 || apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}" || { apt-get update -q; apt-get install -y -q --no-install-recommends "${need[@]}"; }
