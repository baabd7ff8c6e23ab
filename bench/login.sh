#!/usr/bin/env bash
# bench/login.sh [N]: console login latency and login rate.
#  - p50/p99 of connect + negotiate + CRAM-MD5 + `version` for our console
#    -> our director in PSK and certificate mode (in-process, N logins), and
#    whole-process times for `baculink console` and the real 9.6 `bconsole`
#    -> real 9.6 director (tls mode), in the same run;
#  - logins per second one director sustains, driven by 2 client processes
#    (each on one thread, 8 logins at a time): the median of RATE_ROUNDS
#    rounds of RATE_SECONDS, with every round shown (the machine is shared).
# TLS_GROUPS="X25519:secp256r1" sets TLS Groups on both ends (the Director
# resources of bacula-dir.conf and bconsole.conf); the mode column says so.
# Prints a markdown table, then the cost of one key share (`baculink-bench
# kex`). Not a test: numbers depend on the machine.
. "$(dirname "$0")/common.sh"
N=${1:-500}
PROC_RUNS=${PROC_RUNS:-40}
RATE_SECONDS=${RATE_SECONDS:-10}
RATE_ROUNDS=${RATE_ROUNDS:-3}

rows=()
for mode in psk certs; do
  d="$SCRATCH/$mode"; mkdir -p "$d"
  if [ $mode = certs ]; then our_configs "$d" --certs; else our_configs "$d"; fi
  sed -i 's/^  Messages = Daemon$/  Messages = Daemon\n  Maximum Console Connections = 1000/' "$d/bacula-dir.conf"
  label=$mode
  if [ -n "${TLS_GROUPS:-}" ]; then
    for f in "$d/bacula-dir.conf" "$d/bconsole.conf"; do
      sed -i "0,/^Director {\$/s//Director {\n  TLS Groups = \"$TLS_GROUPS\"/" "$f"
    done
    label="$mode, TLS Groups $TLS_GROUPS"
  fi
  start_ours dir "$d/bacula-dir.conf"; wait_port "$(port_of "$d/bacula-dir.conf" DIRport)"
  read -r p50 p99 <<<"$("$BENCH" login "$d/bconsole.conf" "$N" | sed -n 's/.*p50=\([0-9.]*\) p99=\([0-9.]*\).*/\1 \2/p')"
  : > "$SCRATCH/proc-$mode.txt"
  for _ in $(seq "$PROC_RUNS"); do
    t0=$(date +%s%N); printf 'version\nquit\n' | "$BACULINK" console -n -c "$d/bconsole.conf" >/dev/null; t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", (b - a) / 1000000}' >> "$SCRATCH/proc-$mode.txt"
  done
  proc=$(median < "$SCRATCH/proc-$mode.txt")
  : > "$SCRATCH/rates-$mode"
  for _ in $(seq "$RATE_ROUNDS"); do
    r1="$SCRATCH/rate1-$mode"; r2="$SCRATCH/rate2-$mode"
    "$BENCH" rate "$d/bconsole.conf" "$RATE_SECONDS" 8 > "$r1" & a=$!
    "$BENCH" rate "$d/bconsole.conf" "$RATE_SECONDS" 8 > "$r2" & b=$!
    wait $a $b
    cat "$r1" "$r2" | sed -n 's/.*logins_per_s=\([0-9]*\).*/\1/p' | awk '{s+=$1} END {print s}' >> "$SCRATCH/rates-$mode"
  done
  rate="$(median < "$SCRATCH/rates-$mode") (rounds: $(sort -g "$SCRATCH/rates-$mode" | paste -sd/ -))"
  rows+=("| baculink console -> baculink dir | $label | $p50 | $p99 | $proc | $rate |")
  kill "$LAST_PID"; wait "$LAST_PID" 2>/dev/null || true
done

# The real Bacula 9.6 pair in tls mode, same machine, same run.
if [ -x /usr/sbin/bconsole ]; then
  HARNESS="$SCRATCH/bacula-tls"
  START=dir DIR_PORT=$((20000 + RANDOM % 20000)) bash "$INTEROP/start-bacula.sh" "$HARNESS" tls >/dev/null
  printf 'version\nquit\n' | /usr/sbin/bconsole -n -c "$HARNESS/etc/bconsole.conf" >/dev/null
  : > "$SCRATCH/bacula.txt"
  for _ in $(seq "$PROC_RUNS"); do
    t0=$(date +%s%N); printf 'version\nquit\n' | /usr/sbin/bconsole -n -c "$HARNESS/etc/bconsole.conf" >/dev/null; t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", (b - a) / 1000000}' >> "$SCRATCH/bacula.txt"
  done
  rows+=("| bconsole 9.6.7 -> bacula-dir 9.6.7 | tls | | | $(median < "$SCRATCH/bacula.txt") (p99 $(p99 < "$SCRATCH/bacula.txt")) | |")
fi

echo "| pair | mode | login p50 ms (in-process) | login p99 ms | whole process median ms | logins/s, 2 client processes: median (rounds) |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
# What one side's TLS 1.3 key share costs on this machine (each side of a
# login makes one key and one exchange).
"$BENCH" kex 2000
