#!/usr/bin/env bash
# bench/bulk.sh [MIB]: throughput of one authenticated connection over
# loopback (our client and server on a thread each, 64 KiB packets fed back
# to back as the File daemon sends file data) in TLS 1.3 PSK
# (AES-128-GCM) and in clear, with `openssl speed -evp aes-128-gcm` on the
# same machine as the limit, and `baculink-bench gcm` (AES-GCM per core as
# libssl drives it, OpenSSL's and AWS-LC's) under the table. The machine is
# shared and its speed moves from minute to minute, so each mode runs RUNS
# times (default 3), the two modes alternating, and the table gives the
# median with every run. Prints a markdown table.
. "$(dirname "$0")/common.sh"
MIB=${1:-4096}
RUNS=${RUNS:-3}
: > "$SCRATCH/psk"; : > "$SCRATCH/clear"
for _ in $(seq "$RUNS"); do
  for mode in psk clear; do
    "$BENCH" bulk "$mode" "$MIB" >> "$SCRATCH/$mode"
  done
done
speed=$(openssl speed -evp aes-128-gcm -seconds 3 2>/dev/null | awk '/^AES-128-GCM/ {print $NF}' | tr -d k)
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" "$2"; }
# median MB/s (every run), then the median CPU seconds per GB.
row() {
  echo "$(field MB_per_s "$1" | median) ($(field MB_per_s "$1" | paste -sd/ -)) | $(field cpu_s_per_GB "$1" | median)"
}
suite=$(sed -n 's/.*suite="\([^"]*\)".*/\1/p' "$SCRATCH/psk" | head -1)
echo "| what | MB/s: median (runs) | CPU s per GB (both ends), median |"
echo "|---|---|---|"
echo "| one TLS 1.3 PSK connection ($suite) | $(row "$SCRATCH/psk") |"
echo "| one clear connection | $(row "$SCRATCH/clear") |"
echo "| openssl speed -evp aes-128-gcm, 16 KiB blocks, one core | $(awk "BEGIN {printf \"%.0f\", $speed / 1000}") | |"
"$BENCH" gcm 1024
