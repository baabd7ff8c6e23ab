#!/usr/bin/env bash
# bench/bulk.sh [MIB]: throughput of one authenticated connection over
# loopback (our client and server, 64 KiB packets) in TLS 1.3 PSK
# (AES-128-GCM) and in clear, with `openssl speed -evp aes-128-gcm` on the
# same machine as the limit. Prints a markdown table.
. "$(dirname "$0")/common.sh"
MIB=${1:-4096}
psk=$("$BENCH" bulk psk "$MIB")
clear=$("$BENCH" bulk clear "$MIB")
speed=$(openssl speed -evp aes-128-gcm -seconds 3 2>/dev/null | awk '/^AES-128-GCM/ {print $NF}' | tr -d k)
echo "| what | MB/s |"
echo "|---|---|"
echo "| one TLS 1.3 PSK connection ($(sed -n 's/.*suite="\([^"]*\)".*/\1/p' <<<"$psk")) | $(sed -n 's/.*MB_per_s=\([0-9]*\).*/\1/p' <<<"$psk") |"
echo "| one clear connection | $(sed -n 's/.*MB_per_s=\([0-9]*\).*/\1/p' <<<"$clear") |"
echo "| openssl speed -evp aes-128-gcm, 16 KiB blocks, one core | $(awk "BEGIN {printf \"%.0f\", $speed / 1000}") |"
