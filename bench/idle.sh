#!/usr/bin/env bash
# bench/idle.sh [N]: memory per idle authenticated TLS connection: N PSK
# console connections held open against one director; RSS delta / N.
. "$(dirname "$0")/common.sh"
N=${1:-10000}
ulimit -n "$(( N * 2 + 1000 ))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
d="$SCRATCH/idle"; mkdir -p "$d"; our_configs "$d"
sed -i "s/^  Messages = Daemon\$/  Messages = Daemon\n  Maximum Console Connections = $((N + 100))/" "$d/bacula-dir.conf"
start_ours dir "$d/bacula-dir.conf"; wait_port "$(port_of "$d/bacula-dir.conf" DIRport)"
out=$("$BENCH" idle "$d/bconsole.conf" "$N" "$LAST_PID")
echo "| idle connections | mode | director RSS before KiB | after KiB | KiB per connection |"
echo "|---|---|---|---|---|"
sed -n 's/idle_connections=\([0-9]*\) mode=\([a-z]*\) rss_before_kib=\([0-9]*\) rss_after_kib=\([0-9]*\) kib_per_connection=\([0-9.]*\)/| \1 | \2 | \3 | \4 | \5 |/p' <<<"$out"
