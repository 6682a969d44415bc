#!/usr/bin/env bash
# Runs the `overhead` criterion bench (all groups: overhead, publisher, contention, runner, filter)
# and prints the tables of medians and targets. Extra arguments go to cargo bench (for example a
# criterion filter: `bash scripts/bench.sh -- overhead/full`). With BENCH_BASELINE=NAME, the
# tables also compare every figure with the criterion baseline NAME, saved by an earlier run with
# `-- --save-baseline NAME` (see BENCHMARKS.md, "Before and after").
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p tasker-telemetry-benches --bench overhead "$@"
python3 scripts/bench_table.py ${BENCH_BASELINE:+--baseline "$BENCH_BASELINE"}
