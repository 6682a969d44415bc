//! Every event in the catalog is either published by the framework on a path this test drives,
//! or marked reserved for integrations with its reason. A new event that is neither fails here.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tasker_telemetry::catalog::{self, EventSource};
use tasker_telemetry::config::MetricsFormat;
use tasker_telemetry::export::{ExportRegistry, ExporterPlugin};
use tasker_telemetry::metrics::MetricsSnapshot;
use tasker_telemetry::workflow::{Backoff, CancelHandle, RunOptions, StepDef, Workflow};
use tasker_telemetry::{
    Step, StepError, TaskScope, Telemetry, TelemetryConfig, step_handler, subscriber,
};

struct Ok_;
#[step_handler(name = "ok")]
impl Ok_ {
    fn process(&self, _step: &Step) -> Result<u8, StepError> {
        Ok(1)
    }
}

struct Flaky;
#[step_handler(name = "flaky", retry_limit = 2)]
impl Flaky {
    fn process(&self, step: &Step) -> Result<u8, StepError> {
        if step.attempt_number() == 1 {
            Err(StepError::new("timeout").with_class("Timeout"))
        } else {
            Ok(2)
        }
    }
}

struct Broken;
#[step_handler(name = "broken", retry_limit = 2)]
impl Broken {
    fn process(&self, _step: &Step) -> Result<u8, StepError> {
        Err(StepError::new("still broken"))
    }
}

struct Explodes;
#[step_handler(name = "explodes")]
impl Explodes {
    fn process(&self, _step: &Step) -> Result<u8, StepError> {
        panic!("handler bug")
    }
}

/// Holds memory past the end of the task so the runner sees resident memory grow.
static HELD: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

struct Hungry;
#[step_handler(name = "hungry")]
impl Hungry {
    fn process(&self, _step: &Step) -> Result<usize, StepError> {
        let block = vec![7u8; 64 * 1024 * 1024];
        let len = block.len();
        HELD.lock().unwrap().push(block);
        Ok(len)
    }
}

struct Slow;
#[step_handler(name = "slow")]
impl Slow {
    async fn process(&self, _step: &Step) -> Result<u8, StepError> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(0)
    }
}

struct Plugin(bool);
impl ExporterPlugin for Plugin {
    fn name(&self) -> &str {
        if self.0 { "works" } else { "fails" }
    }
    fn supported_formats(&self) -> &[MetricsFormat] {
        &[MetricsFormat::Prometheus]
    }
    fn export(
        &self,
        _: &MetricsSnapshot,
        _: MetricsFormat,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.0 {
            Ok(())
        } else {
            Err("refused".into())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn every_catalog_event_is_published_on_a_tested_path_or_reserved() {
    std::panic::set_hook(Box::new(|_| {}));
    let config = TelemetryConfig::builder()
        .slow_query_threshold_seconds(1e-9)
        .memory_threshold_mb(16)
        .build()
        .unwrap();
    let telemetry = Telemetry::new(config).unwrap();
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let sink = seen.clone();
    telemetry
        .publisher()
        .subscribe(
            &["*"],
            subscriber::from_fn("walk", move |e| {
                sink.lock().unwrap().insert(e.name().as_str());
            }),
        )
        .unwrap();

    let quick = Backoff {
        base: Duration::from_millis(10),
        max: Duration::from_millis(10),
        jitter: 0.0,
    };
    // Completes: a retry, a skip, memory growth.
    let happy = Workflow::builder("happy")
        .handler(Ok_)
        .handler(Flaky)
        .handler(Hungry)
        .step(StepDef::new("start").handler("ok"))
        .step(
            StepDef::new("retry")
                .handler("flaky")
                .depends_on(["start"])
                .backoff(quick),
        )
        .step(
            StepDef::new("skipped")
                .handler("ok")
                .depends_on(["start"])
                .skip_if(|_, _| Some("not needed".into())),
        )
        .step(
            StepDef::new("hungry")
                .handler("hungry")
                .depends_on(["retry", "skipped"]),
        )
        .build()
        .unwrap();
    assert!(
        happy
            .run(&telemetry, "walk-1", serde_json::json!({}))
            .await
            .is_complete()
    );
    // Fails: retries exhausted, and a handler that panics.
    let sad = Workflow::builder("sad")
        .handler(Broken)
        .handler(Explodes)
        .step(StepDef::new("broken").backoff(quick))
        .step(StepDef::new("explodes"))
        .build()
        .unwrap();
    assert!(
        !sad.run(&telemetry, "walk-2", serde_json::json!({}))
            .await
            .is_complete()
    );
    // Cancelled.
    let cancel = CancelHandle::new();
    let stuck = Workflow::builder("stuck")
        .handler(Slow)
        .handler(Ok_)
        .step(StepDef::new("slow"))
        .step(StepDef::new("after").handler("ok").depends_on(["slow"]))
        .build()
        .unwrap();
    let options = RunOptions {
        cancel: cancel.clone(),
        ..Default::default()
    };
    let (outcome, ()) = tokio::join!(
        stuck.run_with(&telemetry, "walk-3", serde_json::json!({}), options),
        async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            cancel.cancel();
        }
    );
    assert_eq!(
        outcome.status,
        tasker_telemetry::workflow::TaskStatus::Cancelled
    );
    // A step attempt abandoned mid-flight (a dropped future) is step.cancelled.
    drop(
        TaskScope::new(&telemetry, "walk-4", "manual")
            .step("walk-4/1", "dropped")
            .attempt(1),
    );
    // The export pipeline's lifecycle.
    let exports = ExportRegistry::new(&telemetry).unwrap();
    exports.register(Plugin(true)).unwrap();
    exports.register(Plugin(false)).unwrap();
    exports.export_all(MetricsFormat::Prometheus);
    exports.unregister("fails");
    let _ = std::panic::take_hook();

    let seen = seen.lock().unwrap().clone();
    let mut missing = Vec::new();
    for event in catalog::builtin_events() {
        match event.source {
            EventSource::Published { .. } if !seen.contains(event.name.as_str()) => {
                missing.push(event.name.as_str())
            }
            EventSource::Reserved { reason } => {
                assert!(reason.len() > 20, "{} needs a real reason", event.name)
            }
            _ => {}
        }
    }
    assert!(
        missing.is_empty(),
        "published in the catalog but on no tested path: {missing:?}"
    );
    let reserved: Vec<&str> = catalog::builtin_events()
        .iter()
        .filter(|e| matches!(e.source, EventSource::Reserved { .. }))
        .map(|e| e.name.as_str())
        .collect();
    assert!(
        reserved.iter().all(|r| !seen.contains(r)),
        "a reserved event was published: {reserved:?}"
    );
}
