//! The crate's error type.

use crate::catalog::CatalogError;
use crate::config::ConfigError;
use crate::filter::FilterError;
use crate::publisher::SubscribeError;

/// Everything that can go wrong setting telemetry up. Nothing here is raised while instrumenting
/// work: telemetry failures at run time are counted and reported, never returned to a step.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An invalid sensitive-data filter rule.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// A custom event broke a naming rule.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A subscription was refused.
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    /// `filtered_events` names an event the catalog does not have.
    #[error(
        "invalid value {name:?} for `filtered_events`: no such event in the catalog{}",
        suggestion.map(|s| format!("; did you mean {s:?}?")).unwrap_or_default()
    )]
    UnknownFilteredEvent {
        /// The unknown name or pattern.
        name: String,
        /// The nearest catalog name, if one is close.
        suggestion: Option<&'static str>,
    },
    /// The metrics registry refused a standard family (a name clash with a user family).
    #[error("metrics could not be set up: {message}")]
    Metrics {
        /// What went wrong.
        message: String,
    },
    /// The HTTP server could not start.
    #[error("the metrics HTTP server could not start: {message}")]
    Http {
        /// What went wrong.
        message: String,
    },
    /// The span export pipeline could not be built.
    #[error("span export could not be set up: {message}")]
    SpanExport {
        /// What went wrong.
        message: String,
    },
    /// The OTLP log export pipeline could not be built.
    #[error("log export could not be set up: {message}")]
    LogExport {
        /// What went wrong.
        message: String,
    },
    /// `init` found a global `tracing` subscriber already installed.
    #[error(
        "a global tracing subscriber is already installed; add `SpanPipeline::layer()` to it instead of calling init()"
    )]
    SubscriberAlreadySet,
    /// `init` was called after the process-wide telemetry was already set up (or used).
    #[error(
        "telemetry is already initialised for this process; call init() once, before first use"
    )]
    AlreadyInitialized,
}
