#!/usr/bin/env bash
# Runs the runtime crate's unit tests and the concurrency, faults, step-handler, subscription and
# leak tests under AddressSanitizer (the toolchain ships its runtime; RUSTC_BOOTSTRAP unlocks
# -Zsanitizer on stable). An explicit --target keeps the proc macros and build scripts, which run
# in the compiler, out of the instrumented build. Its own target directory: the instrumented
# artefacts must not mix with the normal ones.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Zsanitizer=address"
export RUSTDOCFLAGS="-Zsanitizer=address"
# Leaks are the leak test's business (it counts live bytes); ASan's leak checker would also
# report the process-wide statics that live until exit by design.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
target=x86_64-unknown-linux-gnu
cargo test --target "$target" --target-dir target/asan -p tasker-telemetry --lib
# The faults tests' bounds on resident memory are left to the normal run (they look at
# ASAN_OPTIONS): ASan's quarantine of freed memory alone grows it past them.
cargo test --target "$target" --target-dir target/asan -p tasker-telemetry-e2e \
    --test concurrency --test faults --test step_handler --test subscription_changes \
    --test subscriber_isolation --test async_delivery
echo "scripts/sanitize.sh: AddressSanitizer clean"
