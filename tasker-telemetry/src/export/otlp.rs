//! OTLP/HTTP metrics export (cargo feature `otlp-metrics`): the registry's instruments, pushed
//! every interval from a background thread and once more when the exporter stops. A collector
//! that is down costs the application nothing but counted failures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::error::Error;
use crate::metrics::otlp_request_for;
use crate::otlp::transport::HttpTransport;
use crate::telemetry::Telemetry;

/// What the metrics exporter has done so far.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricsExportReport {
    /// Snapshots delivered.
    pub exported: u64,
    /// Snapshots the collector did not take.
    pub failed: u64,
    /// The most recent error.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Stats {
    exported: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Where the transport keeps its account of the last failure (not read: the push reports
    /// the failure it is handed).
    transport_error: Arc<Mutex<Option<String>>>,
}

/// `body` gzip-compressed (`Content-Encoding: gzip`).
fn gzipped(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// Pushes the registry to an OTLP/HTTP collector every `interval` from its own thread; on drop
/// (or [`stop`](Self::stop)) pushes once more and stops.
///
/// ```no_run
/// use std::time::Duration;
/// use tasker_telemetry::export::OtlpMetricsExporter;
///
/// let telemetry = tasker_telemetry::Telemetry::new(Default::default())?;
/// let exporter = OtlpMetricsExporter::start(&telemetry, "http://127.0.0.1:4318/v1/metrics", Duration::from_secs(10))?;
/// // ... work ...
/// let report = exporter.stop();
/// # Ok::<(), tasker_telemetry::Error>(())
/// ```
#[derive(Debug)]
pub struct OtlpMetricsExporter {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    stats: Arc<Stats>,
}

impl OtlpMetricsExporter {
    /// Starts pushing where the configuration says: the metrics endpoint
    /// ([`TelemetryConfig::exporter_settings`](crate::TelemetryConfig::exporter_settings) with
    /// [`Signal::Metrics`](crate::config::Signal)), every `metrics_export_interval_ms`
    /// (`OTEL_METRIC_EXPORT_INTERVAL`).
    ///
    /// # Errors
    /// [`Error::Http`] when no OTLP endpoint is configured, or as [`start`](Self::start).
    ///
    /// ```
    /// use tasker_telemetry::export::OtlpMetricsExporter;
    /// use tasker_telemetry::{Telemetry, TelemetryConfig};
    ///
    /// let telemetry = Telemetry::new(TelemetryConfig::default())?;
    /// assert!(OtlpMetricsExporter::from_config(&telemetry).is_err(), "no endpoint configured");
    /// # Ok::<(), tasker_telemetry::Error>(())
    /// ```
    pub fn from_config(telemetry: &Telemetry) -> Result<Self, Error> {
        let config = telemetry.config();
        let settings = config
            .exporter_settings(crate::config::Signal::Metrics)
            .ok_or_else(|| Error::Http {
                message: "no OTLP metrics endpoint is configured (otlp_endpoint, otlp_metrics_endpoint, OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)".to_owned(),
            })?;
        let interval = Duration::from_millis(config.metrics_export_interval_ms);
        Self::start(telemetry, &settings.endpoint, interval)
    }

    /// Starts pushing to `endpoint` (the full `/v1/metrics` URL, `http://` or `https://`), with
    /// the configuration's OTLP metrics settings (headers, compression, timeout, TLS files; see
    /// [`TelemetryConfig::exporter_settings_at`](crate::TelemetryConfig::exporter_settings_at)).
    ///
    /// # Errors
    /// [`Error::Http`] for an endpoint that is not a URL or a TLS file that cannot be used.
    pub fn start(telemetry: &Telemetry, endpoint: &str, interval: Duration) -> Result<Self, Error> {
        let shown = crate::redact::url(endpoint);
        let uri: http::Uri = endpoint.parse().map_err(|e| Error::Http {
            message: format!("invalid OTLP metrics endpoint {shown:?}: {e}"),
        })?;
        let settings = telemetry
            .config()
            .exporter_settings_at(crate::config::Signal::Metrics, endpoint);
        let gzip = settings.compression == crate::config::OtlpCompression::Gzip;
        let stats = Arc::new(Stats::default());
        let client =
            HttpTransport::new(&settings, stats.transport_error.clone()).map_err(|message| {
                Error::Http {
                    message: format!("{shown}: {message}"),
                }
            })?;
        let (stop, stopped) = mpsc::channel::<()>();
        let telemetry = telemetry.clone();
        let worker_stats = stats.clone();
        let started = SystemTime::now();
        let thread = std::thread::Builder::new()
            .name("tasker-otlp-metrics".to_owned())
            .spawn(move || {
                let push = || {
                    let config = telemetry.config();
                    let body = otlp_request_for(
                        &telemetry.metrics().snapshot(),
                        &config.resource(),
                        started,
                    );
                    let mut request = http::Request::post(uri.clone())
                        .header("content-type", "application/x-protobuf");
                    let body = if gzip {
                        request = request.header("content-encoding", "gzip");
                        gzipped(&body)
                    } else {
                        body
                    };
                    let outcome = match request.body(Bytes::from(body)) {
                        // The transport's account of a failure (masked, with the collector's
                        // answer) is the one reported.
                        Ok(request) => match client.send_blocking(request) {
                            Ok(response) if response.status().is_success() => Ok(()),
                            // Described (and masked) by the transport as it failed.
                            Ok(response) => Err(worker_stats
                                .transport_error
                                .lock()
                                .ok()
                                .and_then(|mut t| t.take())
                                .unwrap_or_else(|| {
                                    format!("POST {shown}: the collector answered {}", response.status())
                                })),
                            Err(e) => Err(e),
                        },
                        Err(e) => Err(e.to_string()),
                    };
                    match outcome {
                        Ok(()) => {
                            worker_stats.exported.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            worker_stats.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(target: "tasker_telemetry::export", error = %e, "OTLP metrics export failed");
                            if let Ok(mut last) = worker_stats.last_error.lock() {
                                *last = Some(e);
                            }
                        }
                    }
                };
                loop {
                    match stopped.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => push(),
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                            push();
                            return;
                        }
                    }
                }
            })
            .map_err(|e| Error::Http { message: format!("could not start the OTLP metrics thread: {e}") })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
            stats,
        })
    }

    /// What has been exported so far.
    pub fn report(&self) -> MetricsExportReport {
        MetricsExportReport {
            exported: self.stats.exported.load(Ordering::Relaxed),
            failed: self.stats.failed.load(Ordering::Relaxed),
            last_error: self.stats.last_error.lock().ok().and_then(|l| l.clone()),
        }
    }

    /// Pushes once more, stops the thread, and reports.
    pub fn stop(mut self) -> MetricsExportReport {
        self.halt();
        self.report()
    }

    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for OtlpMetricsExporter {
    fn drop(&mut self) {
        self.halt();
    }
}
