//! The batch span processor's settings (`OTEL_BSP_*`).

use serde::{Deserialize, Serialize};

use super::{ConfigError, positive};

/// How spans are batched for export.
///
/// ```
/// use tasker_telemetry::TelemetryConfig;
///
/// let vars = [("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "128")];
/// let config = TelemetryConfig::default()
///     .with_env_from(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()))?;
/// assert_eq!(config.span_batch.max_export_batch_size, 128);
/// # Ok::<(), tasker_telemetry::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SpanBatchOptions {
    /// How long a span may wait for its batch, in milliseconds. Default `500` (the
    /// specification's is 5000; a step's span then reaches the backend while it is looked at).
    pub schedule_delay_ms: u64,
    /// The longest one export may take, in milliseconds; the exporter's own timeout is cut to
    /// it. Default `30000`.
    pub export_timeout_ms: u64,
    /// Spans queued before new ones are dropped (and counted). Default `4096`.
    pub max_queue_size: usize,
    /// Spans in one export, at most `max_queue_size`. Default `512`.
    pub max_export_batch_size: usize,
}

impl Default for SpanBatchOptions {
    fn default() -> Self {
        Self {
            schedule_delay_ms: 500,
            export_timeout_ms: 30_000,
            max_queue_size: 4096,
            max_export_batch_size: 512,
        }
    }
}

impl SpanBatchOptions {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        positive("span_batch.schedule_delay_ms", self.schedule_delay_ms)?;
        positive("span_batch.export_timeout_ms", self.export_timeout_ms)?;
        positive("span_batch.max_queue_size", self.max_queue_size as u64)?;
        positive(
            "span_batch.max_export_batch_size",
            self.max_export_batch_size as u64,
        )?;
        if self.max_export_batch_size > self.max_queue_size {
            return Err(ConfigError::invalid(
                "span_batch.max_export_batch_size",
                self.max_export_batch_size.to_string(),
                format!("at most max_queue_size ({})", self.max_queue_size),
            ));
        }
        Ok(())
    }
}
