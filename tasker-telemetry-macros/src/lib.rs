//! Procedural macros for [`tasker-telemetry`](https://docs.rs/tasker-telemetry).
//!
//! Do not depend on this crate directly: `tasker-telemetry` re-exports every macro, and the
//! generated code names only `::tasker_telemetry::__private` paths.
//!
//! The attribute macros (`#[step_handler]`, `#[subscribe_to]`, custom event declarations) are
//! delivered by the macros milestone; this crate is already a workspace member so that the
//! runtime can re-export them without a breaking change.
