//! One-call setup.

use crate::config::TelemetryConfig;
use crate::error::Error;
use crate::telemetry::{Telemetry, set_enabled};

/// Keeps the process-wide telemetry running; dropping it flushes what the sinks buffer.
///
/// (Spans and metrics exporters join it in later releases; today it carries the installed
/// [`Telemetry`].)
#[derive(Debug)]
#[must_use = "dropping the guard flushes and stops telemetry export"]
pub struct TelemetryGuard {
    telemetry: &'static Telemetry,
}

impl TelemetryGuard {
    /// The installed telemetry.
    pub fn telemetry(&self) -> &'static Telemetry {
        self.telemetry
    }
}

/// Sets up process-wide telemetry from Tasker's defaults and the environment
/// (`OTEL_SERVICE_NAME`, `TASKER_*`, ...). Needs no network.
///
/// ```
/// let guard = tasker_telemetry::init()?;
/// assert_eq!(guard.telemetry().config().filter_mask, "[FILTERED]");
/// # Ok::<(), tasker_telemetry::Error>(())
/// ```
pub fn init() -> Result<TelemetryGuard, Error> {
    init_with(TelemetryConfig::default().with_env()?)
}

/// Sets up process-wide telemetry from `config` (apply [`TelemetryConfig::with_env`] first if the
/// environment should override it), and subscribes every `#[subscribe_to]` subscriber the program
/// links.
pub fn init_with(config: TelemetryConfig) -> Result<TelemetryGuard, Error> {
    let enabled = config.enabled;
    let telemetry = Telemetry::new(config)?;
    telemetry.publisher().subscribe_registered()?;
    let telemetry = telemetry.install_global()?;
    set_enabled(enabled);
    Ok(TelemetryGuard { telemetry })
}
