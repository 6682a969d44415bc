//! Shared helpers for the end-to-end test targets; each target uses a subset.

pub mod examples;
pub mod executor;
pub mod grpc_collector;
pub mod http_get;
pub mod https_receiver;
pub mod otlp_receiver;
pub mod process;
pub mod prometheus;
