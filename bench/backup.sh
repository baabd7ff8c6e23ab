#!/usr/bin/env bash
# bench/backup.sh [SCRATCH]: backup throughput, same data for all:
#  (a) the real Bacula 9.6 daemons in `tls` mode (shared/interop/bench-baseline.sh),
#  (b) our Director + FD + SD in TLS-PSK mode, (c) certificate TLS, (d) clear;
# datasets: one 1 GiB random file ("big") and 10,000 files of 4 KiB ("small").
# Prints MB/s and files/s (best of RUNS runs; our modes interleaved run by
# run), the ratios ours/Bacula and TLS/clear, every run's time, and the peak
# RSS of our FD and SD. Not a test. Env: RUNS [3], BIG_MB [1024],
# SMALL_FILES [10000], VOLUME_ROOT [unset]: put every volume (Bacula's and
# ours) under this folder, e.g. a tmpfs, to take the disk out of the measurement.
. "$(dirname "$0")/common.sh"
[ $# -ge 1 ] && { SCRATCH_DATA=$1; mkdir -p "$SCRATCH_DATA"; } || SCRATCH_DATA=$SCRATCH
RUNS=${RUNS:-3}
export BIG_MB=${BIG_MB:-1024} SMALL_FILES=${SMALL_FILES:-10000} SMALL_SIZE=4096

# (a) real Bacula: the harness's own benchmark writes the data sets too.
echo "bench: real Bacula 9.6 (tls)..." >&2
KEEP=1 VOLUME_ROOT=${VOLUME_ROOT:+$VOLUME_ROOT/bacula} MODES=tls RUNS=$RUNS WARMUP=0 LOGIN_RUNS=0 DATASETS="big small" VOLUME_MAX_JOBS=1 \
  bash "$INTEROP/bench-baseline.sh" "$SCRATCH_DATA/bacula" "$SCRATCH_DATA/bacula.md" >&2
bacula_mbs() { awk -F'|' -v d="$1" '$2 ~ /tls/ && $3 ~ d {gsub(/ /, "", $5); print $5}' "$SCRATCH_DATA/bacula.md"; }
bacula_wall() { awk -F'|' -v d="$1" '$2 ~ /tls/ && $3 ~ d {gsub(/ /, "", $4); print $4}' "$SCRATCH_DATA/bacula.md"; }

peak_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo nan; }

declare -A MBS FPS FDRSS SDRSS BEST TIMES BYTES FILES
# Configs once per mode and data set.
for mode in psk certs clear; do
  for ds in big small; do
    d="$SCRATCH/ours-$mode-$ds"; mkdir -p "$d"
    flag=(); [ $mode = certs ] && flag=(--certs); [ $mode = clear ] && flag=(--clear)
    "$BACULINK" demo --configs-only --dir "$d" --data "$SCRATCH_DATA/bacula/data-$ds" "${flag[@]}" >/dev/null
    if [ -n "${VOLUME_ROOT:-}" ]; then
      sed -i "s|Archive Device = \".*\"|Archive Device = \"$VOLUME_ROOT/ours-$mode-$ds\"|" "$d/bacula-sd.conf"
    fi
    FDRSS[$mode-$ds]=0; SDRSS[$mode-$ds]=0
  done
done
# Runs interleave the modes (psk, certs, clear, psk, ...), so that a slow
# spell of the shared machine does not fall on one mode only; each run
# starts fresh daemons; the best run of each mode counts.
for run in $(seq "$RUNS"); do
  for ds in big small; do
    for mode in psk certs clear; do
      d="$SCRATCH/ours-$mode-$ds"
      vols="$d/volumes"; [ -n "${VOLUME_ROOT:-}" ] && vols="$VOLUME_ROOT/ours-$mode-$ds"
      rm -rf "$vols"; mkdir -p "$vols"
      start_ours sd "$d/bacula-sd.conf"; sdp=$LAST_PID
      start_ours fd "$d/bacula-fd.conf"; fdp=$LAST_PID
      start_ours dir "$d/bacula-dir.conf"; dirp=$LAST_PID
      wait_port "$(port_of "$d/bacula-sd.conf" SDPort)"; wait_port "$(port_of "$d/bacula-fd.conf" FDport)"
      wait_port "$(port_of "$d/bacula-dir.conf" DIRport)"
      sync
      find "$SCRATCH_DATA/bacula/data-$ds" -type f -exec cat {} + >/dev/null
      t0=$(date +%s%N)
      out=$(printf 'run job=BackupData yes\nwait\nmessages\nquit\n' | "$BACULINK" console -n -c "$d/bconsole.conf")
      t1=$(date +%s%N)
      grep -q "Backup OK" <<<"$out" || { echo "$out" >&2; echo "bench: our $mode backup failed" >&2; exit 1; }
      BYTES[$mode-$ds]=$(sed -n 's/^  FD Bytes Written: *\([0-9,]*\).*/\1/p' <<<"$out" | tr -d , | tail -1)
      FILES[$mode-$ds]=$(sed -n 's/^  FD Files Written: *\([0-9,]*\).*/\1/p' <<<"$out" | tr -d , | tail -1)
      secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
      TIMES[$mode-$ds]="${TIMES[$mode-$ds]:+${TIMES[$mode-$ds]}/}$secs"
      BEST[$mode-$ds]=$(awk -v a="${BEST[$mode-$ds]:-$secs}" -v b="$secs" 'BEGIN {print (b < a ? b : a)}')
      f=$(( $(peak_kib "$fdp") / 1024 )); s=$(( $(peak_kib "$sdp") / 1024 ))
      [ "$f" -gt "${FDRSS[$mode-$ds]}" ] && FDRSS[$mode-$ds]=$f
      [ "$s" -gt "${SDRSS[$mode-$ds]}" ] && SDRSS[$mode-$ds]=$s
      kill "$dirp" "$fdp" "$sdp"; wait "$dirp" "$fdp" "$sdp" 2>/dev/null || true
      rm -rf "$vols"
    done
  done
done
for k in "${!BEST[@]}"; do
  MBS[$k]=$(awk -v b="${BYTES[$k]}" -v s="${BEST[$k]}" 'BEGIN {printf "%.1f", b / 1e6 / s}')
  FPS[$k]=$(awk -v f="${FILES[$k]}" -v s="${BEST[$k]}" 'BEGIN {printf "%.0f", f / s}')
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0) print "nan"; else printf "%.2f", a / b}'; }
echo "| daemons | mode | 1 GiB file MB/s | 10,000 x 4 KiB files/s | FD peak RSS MiB (big / small) | SD peak RSS MiB (big / small) |"
echo "|---|---|---|---|---|---|"
bw=$(bacula_wall big); sw=$(bacula_wall small)
echo "| Bacula 9.6.7 | tls | $(bacula_mbs big) | $(awk -v f="$SMALL_FILES" -v s="$sw" 'BEGIN {printf "%.0f", f / s}') | | |"
for mode in psk certs clear; do
  echo "| baculink | $mode | ${MBS[$mode-big]} | ${FPS[$mode-small]} | ${FDRSS[$mode-big]} / ${FDRSS[$mode-small]} | ${SDRSS[$mode-big]} / ${SDRSS[$mode-small]} |"
done
echo
echo "Ratios (1 GiB file): baculink PSK / Bacula TLS = $(ratio "${MBS[psk-big]}" "$(bacula_mbs big)"), baculink certificate TLS / Bacula TLS = $(ratio "${MBS[certs-big]}" "$(bacula_mbs big)"), baculink PSK / baculink clear = $(ratio "${MBS[psk-big]}" "${MBS[clear-big]}"), baculink certificate TLS / baculink clear = $(ratio "${MBS[certs-big]}" "${MBS[clear-big]}")."
echo "Seconds per run (1 GiB file): PSK ${TIMES[psk-big]}, certificates ${TIMES[certs-big]}, clear ${TIMES[clear-big]}."
