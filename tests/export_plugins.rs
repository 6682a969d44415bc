//! Exporter plugins: lifecycle events, isolation of failing and panicking plugins.

use std::sync::{Arc, Mutex};

use tasker_telemetry::config::MetricsFormat;
use tasker_telemetry::export::{ExportError, ExportRegistry, ExporterPlugin};
use tasker_telemetry::metrics::MetricsSnapshot;
use tasker_telemetry::{Telemetry, subscriber};

type Result = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

struct Collects(Arc<Mutex<Vec<usize>>>);
impl ExporterPlugin for Collects {
    fn name(&self) -> &str {
        "collects"
    }
    fn supported_formats(&self) -> &[MetricsFormat] {
        &[MetricsFormat::Json, MetricsFormat::Prometheus]
    }
    fn export(&self, snapshot: &MetricsSnapshot, _: MetricsFormat) -> Result {
        self.0.lock().unwrap().push(snapshot.families.len());
        Ok(())
    }
}

struct Fails;
impl ExporterPlugin for Fails {
    fn name(&self) -> &str {
        "fails"
    }
    fn supported_formats(&self) -> &[MetricsFormat] {
        &[MetricsFormat::Json]
    }
    fn export(&self, _: &MetricsSnapshot, _: MetricsFormat) -> Result {
        Err("vendor API answered 503".into())
    }
}

struct Panics;
impl ExporterPlugin for Panics {
    fn name(&self) -> &str {
        "panics"
    }
    fn supported_formats(&self) -> &[MetricsFormat] {
        &[MetricsFormat::Json]
    }
    fn export(&self, _: &MetricsSnapshot, _: MetricsFormat) -> Result {
        panic!("plugin bug")
    }
}

#[test]
fn plugins_are_isolated_and_their_lifecycle_is_published() {
    std::panic::set_hook(Box::new(|_| {}));
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    telemetry
        .publisher()
        .subscribe(
            &["tasker.telemetry.*"],
            subscriber::from_fn("recorder", move |e| {
                let plugin = e
                    .get("plugin")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned();
                sink.lock().unwrap().push((e.name().to_string(), plugin));
            }),
        )
        .unwrap();
    let exports = ExportRegistry::new(&telemetry).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    exports.register(Collects(seen.clone())).unwrap();
    exports.register(Fails).unwrap();
    exports.register(Panics).unwrap();
    assert_eq!(
        exports.register(Fails),
        Err(ExportError::Duplicate {
            name: "fails".into()
        })
    );

    let summary = exports.export_all(MetricsFormat::Json);
    assert_eq!(
        (summary.succeeded, summary.failed, summary.skipped),
        (1, 2, 0)
    );
    let summary = exports.export_all(MetricsFormat::Csv);
    assert_eq!(summary.skipped, 3, "no plugin takes CSV");
    assert!(exports.unregister("panics"));
    assert!(!exports.unregister("panics"));
    let _ = std::panic::take_hook();

    assert_eq!(seen.lock().unwrap().len(), 1);
    let text = tasker_telemetry::metrics::prometheus_text(&telemetry.metrics().snapshot());
    assert!(
        text.contains("tasker_export_failures_total{plugin=\"fails\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("tasker_export_failures_total{plugin=\"panics\"} 1"),
        "{text}"
    );
    let events = events.lock().unwrap().clone();
    let has = |event: &str, plugin: &str| events.iter().any(|(e, p)| e == event && p == plugin);
    for plugin in ["collects", "fails", "panics"] {
        assert!(
            has("tasker.telemetry.plugin_registered", plugin),
            "{events:?}"
        );
        assert!(
            has("tasker.telemetry.export_requested", plugin),
            "{events:?}"
        );
    }
    assert!(has("tasker.telemetry.export_completed", "collects"));
    assert!(has("tasker.telemetry.export_failed", "fails"));
    assert!(has("tasker.telemetry.export_failed", "panics"));
    assert!(has("tasker.telemetry.plugin_unregistered", "panics"));
}
