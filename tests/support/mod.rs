//! Shared helpers for the end-to-end test targets; each target uses a subset.

pub mod otlp_receiver;
