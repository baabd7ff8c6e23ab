# shellcheck shell=bash
# Shared by the bench scripts: build once in release mode, locate the tools,
# and start/stop our daemons from config files.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INTEROP=$BENCH_ROOT/../shared/interop
# FEATURES=vendored-openssl benches the build with OpenSSL compiled in
# (the system's shared OpenSSL otherwise); the output's first line says which.
(cd "$BENCH_ROOT" && cargo build --release -q -p baculink -p baculink-interop \
  ${FEATURES:+--features "$FEATURES"} --bin baculink --bin baculink-bench)
# CARGO_TARGET_DIR keeps builds apart (e.g. one per FEATURES); relative to the repo.
TARGET=${CARGO_TARGET_DIR:-target}
case $TARGET in /*) ;; *) TARGET=$BENCH_ROOT/$TARGET ;; esac
BACULINK=$TARGET/release/baculink
BENCH=$TARGET/release/baculink-bench
echo "Built: $("$BACULINK" --version)"
echo
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/baculink-bench.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${HARNESS:-}" ] && bash "$INTEROP/stop-bacula.sh" "$HARNESS" >/dev/null 2>&1 || true
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

# port_of FILE KEY: the value of "KEY = N" in a config file.
port_of() { awk -F= -v k="$2" 'tolower($1) ~ "^ *" tolower(k) " *$" {gsub(/ /, "", $2); print $2; exit}' "$1"; }

# wait_port PORT: until something listens on it.
wait_port() {
  local hex; hex=$(printf ':%04X' "$1")
  for _ in $(seq 100); do
    awk -v p="$hex" 'FNR>1 && $4=="0A" && $2 ~ p"$" {f=1} END {exit !f}' /proc/net/tcp && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2; return 1
}

# our_configs DIR [--certs]: the demo's configs (a director, FD, SD, console).
our_configs() { "$BACULINK" demo --configs-only --dir "$@" >/dev/null; }

# start_ours KIND CONF: runs one of our daemons in the background.
start_ours() {
  "$BACULINK" "$1" -f -c "$2" > "$SCRATCH/$1-$(basename "$(dirname "$2")").log" 2>&1 &
  PIDS+=($!)
  LAST_PID=$!
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"; exit} print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
p99() { sort -g | awk '{a[NR]=$1} END {i=int((NR-1)*0.99+0.5)+1; print a[i]}'; }
