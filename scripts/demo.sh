#!/usr/bin/env bash
# The main job: builds baculink and runs its end-to-end demo on loopback.
# Extra arguments go to `baculink demo` (e.g. --certs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/deps.sh
cargo build --release -p baculink
exec target/release/baculink demo "$@"
