#!/usr/bin/env bash
# bench/bulk.sh [MIB]: throughput of one authenticated connection over
# loopback (our client and server on a thread each, 64 KiB packets fed back
# to back as the File daemon sends file data) in TLS 1.3 PSK
# (AES-128-GCM) and in clear, with `openssl speed -evp aes-128-gcm` on the
# same machine as the limit. Prints a markdown table.
. "$(dirname "$0")/common.sh"
MIB=${1:-4096}
psk=$("$BENCH" bulk psk "$MIB")
clear=$("$BENCH" bulk clear "$MIB")
speed=$(openssl speed -evp aes-128-gcm -seconds 3 2>/dev/null | awk '/^AES-128-GCM/ {print $NF}' | tr -d k)
cpu() { sed -n 's/.*cpu_s_per_GB=\([0-9.]*\).*/\1/p' <<<"$1"; }
echo "| what | MB/s | CPU s per GB (both ends) |"
echo "|---|---|---|"
echo "| one TLS 1.3 PSK connection ($(sed -n 's/.*suite="\([^"]*\)".*/\1/p' <<<"$psk")) | $(sed -n 's/.*MB_per_s=\([0-9]*\).*/\1/p' <<<"$psk") | $(cpu "$psk") |"
echo "| one clear connection | $(sed -n 's/.*MB_per_s=\([0-9]*\).*/\1/p' <<<"$clear") | $(cpu "$clear") |"
echo "| openssl speed -evp aes-128-gcm, 16 KiB blocks, one core | $(awk "BEGIN {printf \"%.0f\", $speed / 1000}") | |"
