#!/usr/bin/env bash
# Runs the `overhead` criterion bench (all groups: overhead, publisher, contention, runner) and
# prints the tables of medians and targets. Extra arguments go to cargo bench (for example a
# criterion filter: `bash scripts/bench.sh -- overhead/full`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p tasker-telemetry-benches --bench overhead "$@"
python3 scripts/bench_table.py
