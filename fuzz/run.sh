#!/usr/bin/env bash
# fuzz/run.sh SECONDS [TARGET...]
# Runs each cargo-fuzz target (default: all) for SECONDS, starting from the
# seed corpus (real captures and protocol.md examples) plus what earlier runs
# found, and prints a table of runs per target. A crash stops with a non-zero
# exit; its input is left in fuzz/artifacts/TARGET/ — fix the bug and keep the
# input under fuzz/regressions/TARGET/ (crates/proto and crates/conf replay it).
set -euo pipefail
secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame_decode line_parsers handshake_server handshake_client config_parse)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz/run.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked >&2
fi
# libFuzzer needs nightly flags: use a nightly toolchain when present, else
# let the stable compiler accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi

"${fuzz[@]}" build -O
printf '| target | seconds | runs | result |\n|---|---|---|---|\n' > "$here/results.md"
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  [ -d "regressions/$t" ] && cp -n regressions/"$t"/* "corpus/$t/" 2>/dev/null || true
  log="$here/target/$t.log"
  mkdir -p "$here/target"
  if "${fuzz[@]}" run -O "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (see $log and artifacts/$t/)"
    status=1
  fi
  runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | awk '{print $2}' || true)
  printf '| %s | %s | %s | %s |\n' "$t" "$secs" "${runs:-?}" "$result" | tee -a "$here/results.md"
done
exit $status
