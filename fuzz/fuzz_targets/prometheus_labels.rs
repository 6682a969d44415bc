#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tasker_telemetry_fuzz::prometheus_labels(data));
