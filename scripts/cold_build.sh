#!/usr/bin/env bash
# Cold `cargo build` of a one-line user crate on tasker-telemetry's default features, side by side
# with the same crate on the stack a user would otherwise assemble (tracing, tracing-subscriber
# with json, tracing-opentelemetry, opentelemetry_sdk, opentelemetry-otlp with http-proto +
# reqwest-blocking-client + reqwest-rustls, prometheus-client). Each build starts from an empty
# target directory; crates come from the local registry cache (fetched first, not timed).
#
#   bash scripts/cold_build.sh            # prints both times and their ratio
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/ours/src" "$work/peer/src"
cat > "$work/ours/Cargo.toml" <<TOML
[package]
name = "ours"
version = "0.1.0"
edition = "2024"
[dependencies]
tasker-telemetry = { path = "$root/tasker-telemetry" }
[workspace]
TOML
echo 'fn main() { let _ = tasker_telemetry::TelemetryConfig::default(); }' > "$work/ours/src/main.rs"

cat > "$work/peer/Cargo.toml" <<'TOML'
[package]
name = "peer"
version = "0.1.0"
edition = "2024"
[dependencies]
tracing = "0.1"
tracing-subscriber = { version = "0.3", features = ["json", "env-filter"] }
tracing-opentelemetry = "0.34"
opentelemetry = "0.33"
opentelemetry_sdk = "0.33"
opentelemetry-otlp = { version = "0.33", default-features = false, features = ["http-proto", "trace", "reqwest-blocking-client", "reqwest-rustls"] }
prometheus-client = "0.24"
[workspace]
TOML
echo 'fn main() { let _ = opentelemetry_sdk::trace::SdkTracerProvider::builder(); }' > "$work/peer/src/main.rs"

cp "$root/rust-toolchain.toml" "$work/ours/"
cp "$root/rust-toolchain.toml" "$work/peer/"
for crate in ours peer; do
    (cd "$work/$crate" && cargo fetch -q)
done
declare -A took_ms
for crate in ours peer; do
    start=$(date +%s%N)
    (cd "$work/$crate" && CARGO_TARGET_DIR="$work/$crate/target" cargo build -q)
    end=$(date +%s%N)
    took_ms[$crate]=$(( (end - start) / 1000000 ))
done
seconds() { printf '%d.%01d' $(( $1 / 1000 )) $(( $1 % 1000 / 100 )); }
echo "cold build, tasker-telemetry default features: $(seconds "${took_ms[ours]}") s"
echo "cold build, assembled stack:                   $(seconds "${took_ms[peer]}") s"
echo "ratio ours / assembled: $(( took_ms[ours] * 100 / took_ms[peer] ))%"
