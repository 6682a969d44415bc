#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tools the tests need beyond the pinned Rust toolchain: Prometheus and promtool (Debian package
# `prometheus`) for the exposition and rule tests, and the Pushgateway (Debian package
# `prometheus-pushgateway`) for the push tests, and Chromium (Debian package `chromium`) for the
# timeline page test, run headless. The OTLP receivers are part of the test crate.
if ! command -v cargo >/dev/null 2>&1; then
  echo "scripts/test.sh: cargo is not on PATH; install Rust 1.95.0 (rustup) first" >&2
  exit 1
fi
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1 \
  || ! command -v prometheus-pushgateway >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  echo "scripts/test.sh: installing the Debian packages prometheus, prometheus-pushgateway and chromium"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  # The tests run their own instances: keep the package from starting its service (invoke-rc.d
  # asks policy-rc.d; 101 means "not now"), so nothing is left running that this script did not
  # start.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq prometheus prometheus-pushgateway chromium >/dev/null
  if [ -n "$policy" ]; then $sudo rm -f "$policy"; fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# No import cycles between the runtime's modules (exits 1 and names them otherwise).
python3 scripts/module_cycles.py
cargo test --workspace 2>&1 | tee "$log"

# The examples are part of the suite: they must run, not only compile. `cargo test` built them
# already, with the features the workspace's tests unify: run those binaries rather than have
# `cargo run` rebuild the library with the examples' own features (gigabytes of disk in CI).
examples="${CARGO_TARGET_DIR:-target}/debug/examples"
"$examples"/order_processing >/dev/null
"$examples"/quickstart >/dev/null
"$examples"/catalog >/dev/null
"$examples"/catalog --json >/dev/null
"$examples"/custom_subscriber >/dev/null
"$examples"/custom_events >/dev/null
"$examples"/distributed_task >/dev/null
"$examples"/telemetry_cli catalog >/dev/null
artefacts=$(mktemp -d)
"$examples"/dashboards --out "$artefacts" >/dev/null
promtool check rules "$artefacts"/tasker-recording-rules.yml "$artefacts"/tasker-alerting-rules.yml >/dev/null
rm -rf "$artefacts"
echo "scripts/test.sh: examples ran"

# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
