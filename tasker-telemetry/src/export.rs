//! Exporter plugins: code that ships metric snapshots somewhere (a file, a push gateway, a
//! vendor API), registered at run time, with Tasker's export lifecycle events. A plugin that
//! fails or panics is reported through `tasker.telemetry.export_failed` and
//! `tasker_export_failures_total`; it never panics the caller.

#[cfg(feature = "otlp-metrics")]
mod otlp;

#[cfg(feature = "otlp-metrics")]
pub use otlp::{MetricsExportReport, OtlpMetricsExporter};

#[cfg(feature = "pushgateway")]
mod pushgateway;

#[cfg(feature = "pushgateway")]
pub use pushgateway::{PushAtTaskEnd, PushError, PushMethod, Pushgateway, push_at_task_end};

use std::error::Error as StdError;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::config::MetricsFormat;
use crate::event::names;
use crate::metrics::{CounterVec, MetricsSnapshot};
use crate::payload::Fields;
use crate::telemetry::Telemetry;

/// An exporter: a name, the formats it takes, and the export itself.
///
/// ```
/// use tasker_telemetry::config::MetricsFormat;
/// use tasker_telemetry::export::{ExportRegistry, ExporterPlugin};
/// use tasker_telemetry::metrics::MetricsSnapshot;
///
/// struct Stdout;
/// impl ExporterPlugin for Stdout {
///     fn name(&self) -> &str { "stdout" }
///     fn supported_formats(&self) -> &[MetricsFormat] { &[MetricsFormat::Json] }
///     fn export(&self, snapshot: &MetricsSnapshot, _format: MetricsFormat) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///         let _ = snapshot.families.len();
///         Ok(())
///     }
/// }
///
/// let telemetry = tasker_telemetry::Telemetry::new(Default::default())?;
/// let exports = ExportRegistry::new(&telemetry)?;
/// exports.register(Stdout)?;
/// let summary = exports.export_all(MetricsFormat::Json);
/// assert_eq!((summary.succeeded, summary.failed), (1, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ExporterPlugin: Send + Sync + 'static {
    /// A unique name.
    fn name(&self) -> &str;
    /// The formats [`export`](Self::export) accepts.
    fn supported_formats(&self) -> &[MetricsFormat];
    /// Ships one snapshot. Errors are reported, not propagated.
    fn export(
        &self,
        snapshot: &MetricsSnapshot,
        format: MetricsFormat,
    ) -> Result<(), Box<dyn StdError + Send + Sync>>;
}

/// Why a plugin could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Another plugin has this name.
    #[error("an exporter plugin named {name:?} is already registered; unregister it first")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// The failure counter could not be registered (a user metric took its name).
    #[error("could not register tasker_export_failures_total: {message}")]
    Metrics {
        /// What went wrong.
        message: String,
    },
}

/// The outcome of [`ExportRegistry::export_all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportSummary {
    /// Plugins that exported.
    pub succeeded: usize,
    /// Plugins that failed or panicked.
    pub failed: usize,
    /// Plugins skipped because they do not take the format.
    pub skipped: usize,
}

/// The registered plugins of one [`Telemetry`].
pub struct ExportRegistry {
    telemetry: Telemetry,
    plugins: RwLock<Vec<Arc<dyn ExporterPlugin>>>,
    failures: CounterVec,
}

impl std::fmt::Debug for ExportRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportRegistry")
            .field("plugins", &self.plugin_names())
            .finish()
    }
}

impl ExportRegistry {
    /// An empty registry reporting through `telemetry`.
    pub fn new(telemetry: &Telemetry) -> Result<Self, ExportError> {
        let failures = telemetry
            .metrics()
            .counter(
                "tasker_export_failures_total",
                "Exporter plugin runs that failed or panicked, by plugin.",
                &["plugin"],
            )
            .map_err(|e| ExportError::Metrics {
                message: e.to_string(),
            })?;
        Ok(Self {
            telemetry: telemetry.clone(),
            plugins: RwLock::new(Vec::new()),
            failures,
        })
    }

    /// Registers a plugin; publishes `tasker.telemetry.plugin_registered`.
    pub fn register(&self, plugin: impl ExporterPlugin) -> Result<(), ExportError> {
        let plugin: Arc<dyn ExporterPlugin> = Arc::new(plugin);
        let name = plugin.name().to_owned();
        {
            let mut plugins = self.plugins.write().unwrap_or_else(|e| e.into_inner());
            if plugins.iter().any(|p| p.name() == name) {
                return Err(ExportError::Duplicate { name });
            }
            plugins.push(plugin.clone());
        }
        let formats: Vec<&str> = plugin
            .supported_formats()
            .iter()
            .map(|f| f.as_str())
            .collect();
        self.publish(names::TASKER_TELEMETRY_PLUGIN_REGISTERED, |f| {
            f.insert("plugin", name.clone())
                .insert("formats", formats.clone());
        });
        Ok(())
    }

    /// Unregisters a plugin by name; publishes `tasker.telemetry.plugin_unregistered`. Returns
    /// whether it was registered.
    pub fn unregister(&self, name: &str) -> bool {
        let removed = {
            let mut plugins = self.plugins.write().unwrap_or_else(|e| e.into_inner());
            let before = plugins.len();
            plugins.retain(|p| p.name() != name);
            plugins.len() != before
        };
        if removed {
            self.publish(names::TASKER_TELEMETRY_PLUGIN_UNREGISTERED, |f| {
                f.insert("plugin", name);
            });
        }
        removed
    }

    /// The registered plugins' names.
    pub fn plugin_names(&self) -> Vec<String> {
        self.plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|p| p.name().to_owned())
            .collect()
    }

    fn publish(&self, event: crate::EventName, fill: impl FnOnce(&mut Fields)) {
        self.telemetry.publisher().publish_with(event, || {
            let mut fields = Fields::new();
            fill(&mut fields);
            fields
        });
    }

    /// Takes one snapshot and hands it to every plugin that takes `format`, each isolated:
    /// `export_requested`, then `export_completed` or `export_failed` per plugin.
    pub fn export_all(&self, format: MetricsFormat) -> ExportSummary {
        let plugins: Vec<_> = self
            .plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let snapshot = self.telemetry.metrics().snapshot();
        let mut summary = ExportSummary::default();
        for plugin in plugins {
            if !plugin.supported_formats().contains(&format) {
                summary.skipped += 1;
                continue;
            }
            match self.run(&*plugin, &snapshot, format) {
                Ok(()) => summary.succeeded += 1,
                Err(_) => summary.failed += 1,
            }
        }
        summary
    }

    /// Exports one snapshot through the plugin named `name` alone, reported as
    /// [`export_all`](Self::export_all) reports each; `None` if no such plugin takes `format`.
    #[cfg(feature = "pushgateway")]
    pub(crate) fn export_one(
        &self,
        name: &str,
        format: MetricsFormat,
    ) -> Option<Result<(), String>> {
        let plugin = self
            .plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|p| p.name() == name && p.supported_formats().contains(&format))
            .cloned()?;
        let snapshot = self.telemetry.metrics().snapshot();
        Some(self.run(&*plugin, &snapshot, format))
    }

    /// One plugin's export, isolated and reported.
    fn run(
        &self,
        plugin: &dyn ExporterPlugin,
        snapshot: &MetricsSnapshot,
        format: MetricsFormat,
    ) -> Result<(), String> {
        let name = plugin.name().to_owned();
        self.publish(names::TASKER_TELEMETRY_EXPORT_REQUESTED, |f| {
            f.insert("plugin", name.clone())
                .insert("format", format.as_str());
        });
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| plugin.export(snapshot, format)));
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(panic) => Some(
                panic
                    .downcast_ref::<&str>()
                    .map(|s| format!("panicked: {s}"))
                    .or_else(|| {
                        panic
                            .downcast_ref::<String>()
                            .map(|s| format!("panicked: {s}"))
                    })
                    .unwrap_or_else(|| "panicked".to_owned()),
            ),
        };
        let seconds = started.elapsed().as_secs_f64();
        match error {
            None => {
                self.publish(names::TASKER_TELEMETRY_EXPORT_COMPLETED, |f| {
                    f.insert("plugin", name.clone())
                        .insert("format", format.as_str())
                        .insert("metric_count", snapshot.families.len())
                        .insert("duration", seconds);
                });
                Ok(())
            }
            Some(error) => {
                self.failures.with(&[&name]).inc();
                tracing::warn!(target: "tasker_telemetry::export", plugin = %name, error = %error, "exporter plugin failed");
                self.publish(names::TASKER_TELEMETRY_EXPORT_FAILED, |f| {
                    f.insert("plugin", name.clone())
                        .insert("format", format.as_str())
                        .insert("error", error.clone())
                        .insert("duration", seconds);
                });
                Err(error)
            }
        }
    }
}
