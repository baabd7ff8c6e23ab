#!/usr/bin/env bash
# Runs every test of the project, real-peer tests included.
#
# On a fresh Debian 12 machine, as root, it first installs what the real-peer
# tests need (Bacula 9.6 packages, openssl, capture tools) through the shared
# interop harness. Real-peer tests fail, never skip, when their peer is
# missing (BACULINK_ALLOW_SKIP=1 is refused here).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
interop="$root/../shared/interop"
cd "$root"

if [ "${BACULINK_ALLOW_SKIP:-0}" = 1 ]; then
  echo "scripts/test.sh: BACULINK_ALLOW_SKIP=1 would let real-peer tests skip; refusing" >&2
  exit 2
fi
[ -x "$interop/setup-bacula.sh" ] || [ -f "$interop/setup-bacula.sh" ] || {
  echo "scripts/test.sh: the shared interop harness is missing (expected ../shared/interop beside the checkout)" >&2
  exit 1
}
bash scripts/deps.sh
if [ "$(id -u)" = 0 ]; then
  bash "$interop/setup-bacula.sh" --with-capture
fi
command -v openssl >/dev/null || { echo "scripts/test.sh: openssl is not installed" >&2; exit 1; }

# The interop tests run the built binary.
cargo build --workspace --bins
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
# The build with OpenSSL compiled in (feature vendored-openssl) against the
# real peers of the TLS layer: openssl s_server/s_client, Bacula 9.6, the
# policy directives and FIPS. VENDORED=0 leaves it out.
if [ "${VENDORED:-1}" = 1 ]; then
  vendored=(--features vendored-openssl)
  if ! { cargo build -p baculink -p baculink-interop "${vendored[@]}" --bins &&
    cargo test --no-fail-fast -p baculink-tls -p baculink-net "${vendored[@]}" &&
    cargo test --no-fail-fast -p baculink-interop "${vendored[@]}" \
      --test policy_directives --test policy_refusals --test fips --test console_real_director \
      --test probe_real_bacula --test fd_real_director --test ours_together; } 2>&1 |
    tee target/test-output-vendored.txt; then
    status=1
  fi
  cat target/test-output-vendored.txt >> target/test-output.txt
  # The interop tests run target/debug/baculink: put the default build back.
  cargo build --workspace --bins
fi
# Fuzzing smoke run: every cargo-fuzz target for a few seconds.
if ! bash fuzz/run.sh "${FUZZ_SECONDS:-5}"; then
  echo "scripts/test.sh: a fuzz target crashed (see fuzz/artifacts)" >&2
  status=1
fi
if grep -q '^SKIP' target/test-output.txt; then
  echo "scripts/test.sh: a real-peer test was skipped" >&2
  exit 1
fi
exit "$status"
