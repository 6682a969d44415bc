//! Load soak: the workflow runner with every sink on (standard metrics, a subscriber to every
//! event, spans through the OpenTelemetry batch pipeline, JSON log lines) holds its memory and
//! forgets each task once it ends. Proves, over 50,000 steps by default (1,000,000 with
//! `TASKER_SOAK=1`):
//! - resident memory grows by less than 10 MB between the end of warm-up (10 % of the tasks) and
//!   the end;
//! - no per-task state survives its task: every `tracing` span the tasks opened is closed, every
//!   correlation id's last holder is the test itself (scopes, events and spans let go), and the
//!   metric series, subscriptions and gauges are back to their post-warm-up baseline;
//! - nothing is lost or counted twice: `tasker_steps_total`, `tasker_tasks_total` and the
//!   histograms' `_count`s equal the steps and tasks run, every event reached the subscriber
//!   once, one log line per lifecycle line, and spans exported + dropped = spans ended.

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tasker_telemetry::config::LogFormat;
use tasker_telemetry::correlation::CorrelationId;
use tasker_telemetry::logging::LogLayer;
use tasker_telemetry::metrics::{FamilySnapshot, MetricsSnapshot, SeriesValue};
use tasker_telemetry::spans::{STEP_SPAN, SpanPipeline, TASK_SPAN};
use tasker_telemetry::workflow::{RunOptions, StepDef, TaskStatus, Workflow};
use tasker_telemetry::{Step, StepError, Telemetry, TelemetryConfig, step_handler, subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

const STEPS_PER_TASK: u64 = 10;
/// The default (CI) run, seconds in a debug build: the state checks are exact, so a task that
/// leaves anything behind fails them at any count; only a small per-task leak that holds no
/// span or correlation id needs the soak's million steps to show in resident memory.
const CI_STEPS: u64 = 50_000;
const SOAK_STEPS: u64 = 1_000_000;
/// Tasks run at once: both runtime workers record into the same series at the same time.
const IN_FLIGHT: u64 = 32;
const RSS_GROWTH_LIMIT_KB: i64 = 10 * 1024;

static PROCESSED: AtomicU64 = AtomicU64::new(0);

/// A trivial step: all the cost measured is the runner's and the telemetry's.
struct Noop;

#[step_handler]
impl Noop {
    fn process(&self, _step: &Step) -> Result<u64, StepError> {
        Ok(PROCESSED.fetch_add(1, Ordering::Relaxed))
    }
}

/// Discards exported spans, so the soak measures the pipeline, not a collector.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

/// Counts `tracing` spans opened and still open, by name: what the subscriber registry (and the
/// OpenTelemetry layer's per-span data in it) holds for running work.
#[derive(Default)]
struct SpanCensus {
    live: AtomicI64,
    task_spans: AtomicU64,
    step_spans: AtomicU64,
    other_spans: AtomicU64,
}

struct CensusLayer(Arc<SpanCensus>);

impl<S> Layer<S> for CensusLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: Context<'_, S>,
    ) {
        self.0.live.fetch_add(1, Ordering::Relaxed);
        let by_name = match attrs.metadata().name() {
            TASK_SPAN => &self.0.task_spans,
            STEP_SPAN => &self.0.step_spans,
            _ => &self.0.other_spans,
        };
        by_name.fetch_add(1, Ordering::Relaxed);
    }

    fn on_close(&self, _id: tracing::span::Id, _ctx: Context<'_, S>) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The log sink: counts lines and keeps the first few to check they are JSON.
#[derive(Default)]
struct LogSink {
    lines: u64,
    bytes: u64,
    sample: Vec<u8>,
}

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
        self.bytes += buf.len() as u64;
        if self.sample.len() < 16 * 1024 {
            self.sample.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn family<'a>(snapshot: &'a MetricsSnapshot, name: &str) -> &'a FamilySnapshot {
    snapshot
        .families
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} missing from the snapshot"))
}

fn label<'a>(family: &FamilySnapshot, values: &'a [String], name: &str) -> &'a str {
    let i = family
        .label_names
        .iter()
        .position(|l| l == name)
        .unwrap_or_else(|| panic!("{} has no label {name}", family.name));
    &values[i]
}

/// A counter family's total over the series `keep` selects.
fn counter_total(snapshot: &MetricsSnapshot, name: &str, keep: impl Fn(&[String]) -> bool) -> f64 {
    family(snapshot, name)
        .series
        .iter()
        .filter(|s| keep(&s.label_values))
        .map(|s| match s.value {
            SeriesValue::Counter(v) => v,
            ref other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

/// A histogram family's `_count` over the series `keep` selects, checking on the way that each
/// series' `+Inf` bucket equals its count.
fn histogram_count(
    snapshot: &MetricsSnapshot,
    name: &str,
    keep: impl Fn(&[String]) -> bool,
) -> u64 {
    family(snapshot, name)
        .series
        .iter()
        .filter(|s| keep(&s.label_values))
        .map(|s| match &s.value {
            SeriesValue::Histogram { buckets, count, .. } => {
                assert_eq!(buckets.last().map(|b| b.1), Some(*count), "{name} +Inf");
                *count
            }
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

fn gauges(snapshot: &MetricsSnapshot, name: &str) -> Vec<f64> {
    family(snapshot, name)
        .series
        .iter()
        .map(|s| match s.value {
            SeriesValue::Gauge(v) => v,
            ref other => panic!("{name} is not a gauge: {other:?}"),
        })
        .collect()
}

fn series_count(snapshot: &MetricsSnapshot) -> usize {
    snapshot.families.iter().map(|f| f.series.len()).sum()
}

/// What the process holds between tasks, compared at the end of warm-up and at the end.
#[derive(Debug, PartialEq)]
struct Baseline {
    live_spans: i64,
    metric_series: usize,
    subscriptions: usize,
    tasks_active: Vec<f64>,
    steps_active: Vec<f64>,
}

fn baseline(telemetry: &Telemetry, census: &SpanCensus) -> Baseline {
    let snapshot = telemetry.metrics().snapshot();
    Baseline {
        live_spans: census.live.load(Ordering::Relaxed),
        metric_series: series_count(&snapshot),
        subscriptions: telemetry.publisher().subscriber_stats().len(),
        tasks_active: gauges(&snapshot, "tasker_tasks_active"),
        steps_active: gauges(&snapshot, "tasker_steps_active"),
    }
}

#[test]
fn soak_holds_memory_and_forgets_finished_tasks() {
    let soak = std::env::var_os("TASKER_SOAK").is_some_and(|v| v == "1");
    let total_steps = if soak { SOAK_STEPS } else { CI_STEPS };
    let tasks = total_steps / STEPS_PER_TASK;
    let warm_up = tasks / 10;

    let config = TelemetryConfig::default();
    assert!(config.metrics_enabled && config.trace_sampling_ratio == 1.0);
    let telemetry = Telemetry::new(config.clone()).unwrap();
    let pipeline = SpanPipeline::with_exporter(&config, Discard);
    pipeline.register_metrics(telemetry.metrics());
    let census = Arc::new(SpanCensus::default());
    let logs = Arc::new(Mutex::new(LogSink::default()));
    let log_layer = LogLayer::new(LogFormat::Json, telemetry.filter().clone())
        .with_writer(logs.clone())
        .with_filter(LevelFilter::INFO);
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(pipeline.layer())
            .with(log_layer)
            .with(CensusLayer(census.clone())),
    )
    .expect("the only test in this binary installs the subscriber");

    let delivered = Arc::new(AtomicU64::new(0));
    let seen = delivered.clone();
    telemetry
        .publisher()
        .subscribe(
            &["*"],
            subscriber::from_fn("soak", move |_| {
                seen.fetch_add(1, Ordering::Relaxed);
            }),
        )
        .unwrap();

    let mut builder = Workflow::builder("soak").handler(Noop);
    for i in 0..STEPS_PER_TASK {
        let mut step = StepDef::new(format!("s{i}")).handler("noop");
        if i > 0 {
            step = step.depends_on([format!("s{}", i - 1)]);
        }
        builder = builder.step(step);
    }
    let workflow = builder.build().unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    // Runs tasks `from..to`, IN_FLIGHT at a time, and checks each one's end: every step
    // completed, and, once the span pipeline has exported what it queued (exported spans share
    // their task's ids until then), its correlation id held by nobody but this test.
    let run_tasks = |from: u64, to: u64| {
        let mut finished = Vec::new();
        runtime.block_on(async {
            let mut next = from;
            let mut running = tokio::task::JoinSet::new();
            while next < to || !running.is_empty() {
                while next < to && (running.len() as u64) < IN_FLIGHT {
                    let (workflow, telemetry) = (workflow.clone(), telemetry.clone());
                    let correlation_id = CorrelationId::parse(&format!("soak-{next}")).unwrap();
                    running.spawn(async move {
                        let options = RunOptions {
                            correlation_id: Some(correlation_id.clone()),
                            ..Default::default()
                        };
                        let context = serde_json::json!({"n": next, "api_token": "s3cr3t"});
                        let task_id = format!("task-{next}");
                        let outcome = workflow
                            .run_with(&telemetry, task_id.clone(), context, options)
                            .await;
                        (outcome, task_id, correlation_id)
                    });
                    next += 1;
                }
                let (outcome, task_id, correlation_id) =
                    running.join_next().await.unwrap().unwrap();
                assert_eq!(outcome.status, TaskStatus::Complete, "{outcome:?}");
                assert_eq!(outcome.results.len() as u64, STEPS_PER_TASK);
                finished.push((task_id, correlation_id));
            }
        });
        pipeline.flush();
        // The span store keeps the spans (and so the correlation ids) of the last
        // `span_store_tasks` tasks, by design and bounded; every other finished task is held by
        // nobody but this test.
        let store = pipeline
            .store()
            .expect("the default configuration keeps a store");
        let kept = store.task_ids();
        assert!(kept.len() <= config.span_store_tasks, "{}", kept.len());
        for (task_id, correlation_id) in finished {
            if kept.contains(&task_id) {
                continue;
            }
            assert_eq!(
                correlation_id.holders(),
                1,
                "task {correlation_id} ended but something still holds its correlation id"
            );
        }
    };

    let started = Instant::now();
    run_tasks(0, warm_up);
    let warm = baseline(&telemetry, &census);
    let rss_warm = support::process::resident_kb();
    let measured = Instant::now();
    run_tasks(warm_up, tasks);
    let measured_secs = measured.elapsed().as_secs_f64();
    let total_secs = started.elapsed().as_secs_f64();
    let rss_end = support::process::resident_kb();
    let end = baseline(&telemetry, &census);

    let steps_per_sec = (tasks - warm_up) as f64 * STEPS_PER_TASK as f64 / measured_secs;
    let growth_kb = rss_end - rss_warm;
    println!(
        "soak: {tasks} tasks x {STEPS_PER_TASK} steps = {total_steps} steps in {total_secs:.1} s; \
         after warm-up {steps_per_sec:.0} steps/s; VmRSS {rss_warm} kB after warm-up, \
         {rss_end} kB at the end ({growth_kb:+} kB)"
    );

    // Memory and per-task state.
    assert_eq!(PROCESSED.load(Ordering::Relaxed), total_steps);
    assert_eq!(warm.live_spans, 0, "spans open between tasks after warm-up");
    assert_eq!(end, warm, "state kept after tasks ended");
    assert_eq!(end.tasks_active, [0.0]);
    assert!(end.steps_active.iter().all(|v| *v == 0.0), "{end:?}");
    assert!(
        growth_kb < RSS_GROWTH_LIMIT_KB,
        "VmRSS grew by {growth_kb} kB after warm-up (limit {RSS_GROWTH_LIMIT_KB} kB)"
    );

    // Metric totals, exact.
    let snapshot = telemetry.metrics().snapshot();
    let (steps_f, tasks_f) = (total_steps as f64, tasks as f64);
    let status_is = |status: &'static str| {
        let steps = family(&snapshot, "tasker_steps_total");
        move |v: &[String]| label(steps, v, "status") == status
    };
    assert_eq!(
        counter_total(&snapshot, "tasker_steps_total", status_is("completed")),
        steps_f
    );
    assert_eq!(
        counter_total(&snapshot, "tasker_steps_total", |_| true),
        steps_f,
        "no failed or skipped steps"
    );
    let tasks_family = family(&snapshot, "tasker_tasks_total");
    assert_eq!(
        counter_total(&snapshot, "tasker_tasks_total", |v| {
            label(tasks_family, v, "status") == "completed"
        }),
        tasks_f
    );
    assert_eq!(
        counter_total(&snapshot, "tasker_tasks_total", |_| true),
        tasks_f
    );
    assert_eq!(
        counter_total(&snapshot, "tasker_tasks_started_total", |_| true),
        tasks_f
    );
    assert_eq!(
        histogram_count(&snapshot, "tasker_step_duration_seconds", |_| true),
        total_steps
    );
    assert_eq!(
        histogram_count(&snapshot, "tasker_operation_duration_seconds", |v| {
            v[0].starts_with("step.")
        }),
        total_steps
    );
    assert_eq!(
        histogram_count(&snapshot, "tasker_task_duration_seconds", |_| true),
        tasks
    );
    assert_eq!(
        histogram_count(&snapshot, "tasker_workflow_duration_seconds", |_| true),
        tasks
    );

    // Events: each delivered once, and counted once.
    let published = telemetry.publisher().stats();
    assert_eq!(published.published, delivered.load(Ordering::Relaxed));
    assert_eq!((published.dropped, published.subscriber_panics), (0, 0));
    assert_eq!(
        counter_total(&snapshot, "tasker_events_published_total", |_| true),
        published.published as f64
    );
    let per_task_events = published.published / tasks;
    assert_eq!(
        published.published,
        per_task_events * tasks,
        "every task publishes the same events"
    );

    // Logs: one JSON line per step completed, task started and task completed.
    let log = logs.lock().unwrap();
    assert_eq!(log.lines, total_steps + 2 * tasks, "log lines");
    let sample = String::from_utf8_lossy(&log.sample);
    let first: serde_json::Value = serde_json::from_str(sample.lines().next().unwrap()).unwrap();
    assert!(
        first["correlation_id"]
            .as_str()
            .unwrap()
            .starts_with("soak-")
    );
    let (log_lines, log_bytes) = (log.lines, log.bytes);
    drop(log);

    // Spans: one per task and one per step attempt, every one closed and accounted for.
    assert_eq!(census.task_spans.load(Ordering::Relaxed), tasks);
    assert_eq!(census.step_spans.load(Ordering::Relaxed), total_steps);
    assert_eq!(census.other_spans.load(Ordering::Relaxed), 0);
    let report = pipeline.shutdown();
    assert_eq!(report.ended, tasks + total_steps, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.exported + report.dropped, report.ended, "{report:?}");
    println!(
        "soak: events published {} ({per_task_events} per task), log lines {log_lines} \
         ({log_bytes} bytes), spans ended {} exported {} dropped {}, metric series {}",
        published.published, report.ended, report.exported, report.dropped, end.metric_series
    );
}
