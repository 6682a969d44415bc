//! `overhead`: what instrumenting one trivial step costs, with tasker-telemetry and with its
//! peers, all in one run so the figures are comparable.
//!
//! `cargo bench -p tasker-telemetry-benches --bench overhead` (or `bash scripts/bench.sh`, which
//! also prints the tables). Groups:
//! - `overhead`: ns per call of [`work`] — bare, through a `StepScope` attempt in each
//!   configuration, and under each peer's attribute or hand-written instrumentation; plus the
//!   floors (a clock read pair, an atomic increment);
//! - `publisher`: events/s through `Telemetry::publisher()` by subscriber count and thread count;
//! - `contention`: one shared `StepScope` (one metric series) hit by 1 vs 2 threads;
//! - `runner`: steps/s through `workflow::Workflow` on a 10-step chain.
//!
//! What each variant includes is written beside it; BENCHMARKS.md has the summary.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{Bencher, BenchmarkGroup, Criterion, Throughput, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};
use tasker_telemetry::event::names;
use tasker_telemetry::payload::StepPayload;
use tasker_telemetry::spans::SpanPipeline;
use tasker_telemetry::workflow::{StepDef, Workflow};
use tasker_telemetry::{
    Step, StepError, StepScope, TaskScope, Telemetry, TelemetryConfig, set_enabled, step_handler,
    subscriber,
};
use tracing::subscriber::NoSubscriber;
use tracing_subscriber::layer::SubscriberExt as _;

// ------------------------------------------------------------------------------------------------
// The measured step and its instrumented copies (identical bodies).
// ------------------------------------------------------------------------------------------------

/// The error the trivial step could return (it never does: `y == 0` is practically unreachable).
#[derive(Debug)]
struct WorkError;

impl std::fmt::Display for WorkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("work failed")
    }
}

impl std::error::Error for WorkError {}

/// The trivial step every variant measures: one multiply-add (an LCG step) behind `black_box`.
#[inline(never)]
fn work(x: u64) -> Result<u64, WorkError> {
    let y = black_box(x)
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    if y == 0 { Err(WorkError) } else { Ok(y) }
}

/// A failure as step errors usually read: 200 bytes of text naming a URL, a status, a duration,
/// a request id and a time, and no secret.
#[derive(Debug)]
struct GatewayError;

/// [`GatewayError`]'s message.
const GATEWAY_MESSAGE: &str = "upstream gateway https://payments.example.com/v2/charges returned \
    503 Service Unavailable after 30.2s (attempt 3 of 5, request 4f1c2a9e-77d0-4c1b-9a43-\
    0b7e5d2c8f11); next retry at 2026-12-06T23:10:00Z";
const _: () = assert!(GATEWAY_MESSAGE.len() == 200);

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(GATEWAY_MESSAGE)
    }
}

impl std::error::Error for GatewayError {}

/// [`work`] under `#[tracing::instrument]` (defaults: an INFO span named after the function,
/// recording `x`).
#[tracing::instrument]
#[inline(never)]
fn work_tracing(x: u64) -> Result<u64, WorkError> {
    let y = black_box(x)
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    if y == 0 { Err(WorkError) } else { Ok(y) }
}

/// [`work`] under `#[fastrace::trace]` (a local span when a local parent is set, else nothing).
#[fastrace::trace]
#[inline(never)]
fn work_fastrace(x: u64) -> Result<u64, WorkError> {
    let y = black_box(x)
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    if y == 0 { Err(WorkError) } else { Ok(y) }
}

/// [`work`] under `#[autometrics]` (prometheus-client backend): call counter by result, duration
/// histogram, concurrency gauge off by default.
#[autometrics::autometrics]
#[inline(never)]
fn work_autometrics(x: u64) -> Result<u64, WorkError> {
    let y = black_box(x)
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    if y == 0 { Err(WorkError) } else { Ok(y) }
}

// ------------------------------------------------------------------------------------------------
// Shared setup.
// ------------------------------------------------------------------------------------------------

/// A span exporter that drops every batch: export cost is out of the picture, the SDK's batch
/// processor (queue, thread) is not.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

/// A fastrace reporter that drops every batch (fastrace's collector thread still runs).
struct DiscardReporter;

impl fastrace::collector::Reporter for DiscardReporter {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        drop(black_box(spans));
    }
}

/// The workflow and task names every scope in this file uses.
const TASK_ID: &str = "bench-task";
/// The step id of the measured step.
const STEP_ID: &str = "bench-task/1";

/// A `Telemetry` for `config`, with one no-op synchronous subscriber on `step.*` when `listen`.
fn telemetry(config: &TelemetryConfig, listen: bool) -> Telemetry {
    let telemetry = Telemetry::new(config.clone()).expect("bench config is valid");
    if listen {
        subscribe_noops(&telemetry, 1);
    }
    telemetry
}

/// Subscribes `n` no-op synchronous subscribers to `step.*`.
fn subscribe_noops(telemetry: &Telemetry, n: usize) {
    for i in 0..n {
        telemetry
            .publisher()
            .subscribe(
                &["step.*"],
                subscriber::from_fn(format!("noop-{i}"), |e| {
                    black_box(e);
                }),
            )
            .expect("subscribe");
    }
}

/// The scope of the measured step (retry limit 3, like a typical handler), in a fresh task.
///
/// Create it under the dispatcher it is measured with: the task's root span opens here.
fn step_scope(telemetry: &Telemetry) -> StepScope {
    TaskScope::new(telemetry, TASK_ID, "bench")
        .step(STEP_ID, "work")
        .with_retry_limit(3)
}

/// One instrumented attempt around [`work`] as `#[step_handler]` runs it:
/// `StepScope::run_attempt` (start, the call inside the attempt's span, entered as the peers'
/// spans are, then the outcome).
#[inline(always)]
fn one_attempt(step: &StepScope, x: u64) -> Result<u64, WorkError> {
    step.run_attempt(1, || work(x))
}

/// The same attempt through the value API: `step.attempt(1)`, `in_scope`, `finish`.
#[inline(always)]
fn one_attempt_value_api(step: &StepScope, x: u64) -> Result<u64, WorkError> {
    let attempt = step.attempt(1);
    let result = attempt.in_scope(|| work(x));
    attempt.finish(&result);
    result
}

/// Measures [`one_attempt`] on `step` (ns per attempt).
fn attempt_loop(b: &mut Bencher<'_>, step: &StepScope) {
    let mut x = 0u64;
    b.iter(|| {
        x += 1;
        black_box(one_attempt(step, x))
    })
}

/// Runs `per_thread(i, iters)` on `threads` threads released together by a barrier; returns
/// the wall time from the release to the last thread's end (so thread start-up is excluded, and
/// with `iters` per thread the figure is per-call latency per thread).
fn wall_time_on_threads<F>(threads: usize, iters: u64, per_thread: F) -> Duration
where
    F: Fn(u64) + Sync,
{
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    per_thread(iters);
                    (start, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect()
    });
    let start = spans
        .iter()
        .map(|s| s.0)
        .min()
        .expect("at least one thread");
    let end = spans
        .iter()
        .map(|s| s.1)
        .max()
        .expect("at least one thread");
    end - start
}

/// The configuration of the `full` variants: Tasker's defaults (metrics on), logs off (as the
/// issue specifies: `structured_logging_enabled = false`, so no lifecycle lines are built), the
/// given trace sampling ratio.
fn full_config(trace_sampling_ratio: f64) -> TelemetryConfig {
    let mut config = TelemetryConfig::default();
    config.structured_logging_enabled = false;
    config.trace_sampling_ratio = trace_sampling_ratio;
    // The peers keep no copy of the spans they export: neither do the variants compared with
    // them. What the in-process store adds is `runner/full_store`.
    config.span_store_tasks = 0;
    config
}

/// Runs `f` under a `tracing` dispatcher made of the registry and `pipeline`'s OpenTelemetry
/// layer (no log layer), as `init()` would install minus logs.
fn with_span_pipeline<R>(pipeline: &SpanPipeline, f: impl FnOnce() -> R) -> R {
    let dispatch = tracing_subscriber::registry().with(pipeline.layer());
    tracing::subscriber::with_default(dispatch, f)
}

// ------------------------------------------------------------------------------------------------
// Group `overhead`: ns per call.
// ------------------------------------------------------------------------------------------------

/// Our untraced variants: the bare step, then one `StepScope` attempt with telemetry off,
/// events only, and metrics only (last, as the metrics peers follow).
fn ours_untraced(group: &mut BenchmarkGroup<'_, WallTime>) {
    // baseline: the bare function, nothing else.
    group.bench_function("baseline", |b| {
        let mut x = 0u64;
        b.iter(|| {
            x += 1;
            black_box(work(x))
        })
    });

    // off: the global switch off; an attempt is one relaxed load at start and a `None` check at
    // finish.
    let quiet = telemetry(&TelemetryConfig::default(), false);
    let step = tracing::subscriber::with_default(NoSubscriber::default(), || step_scope(&quiet));
    set_enabled(false);
    group.bench_function("off", |b| attempt_loop(b, &step));
    group.bench_function("off_value_api", |b| {
        let mut x = 0u64;
        b.iter(|| {
            x += 1;
            black_box(one_attempt_value_api(&step, x))
        })
    });
    set_enabled(true);

    // events_noop_sub: metrics off, one no-op synchronous subscriber on `step.*` (so
    // `step.before_handle` and `step.completed` are built and delivered), spans disabled.
    let mut config = TelemetryConfig::default();
    config.metrics_enabled = false;
    let listened = telemetry(&config, true);
    tracing::subscriber::with_default(NoSubscriber::default(), || {
        let step = step_scope(&listened);
        group.bench_function("events_noop_sub", |b| attempt_loop(b, &step));
    });

    // events_noop_sub_error, events_noop_sub_error_nodetect: as events_noop_sub, each attempt
    // failing with a 200-byte error message of ordinary text (so `step.failed` carries it),
    // with value detection on (the default: the message is scanned for secrets once) and off.
    for (id, detectors) in [
        ("events_noop_sub_error", "all"),
        ("events_noop_sub_error_nodetect", "none"),
    ] {
        let mut config = TelemetryConfig::default();
        config.metrics_enabled = false;
        config.filter_value_detectors = vec![detectors.to_owned()];
        let listened = telemetry(&config, true);
        tracing::subscriber::with_default(NoSubscriber::default(), || {
            let step = step_scope(&listened);
            group.bench_function(id, |b| {
                b.iter(|| black_box(step.run_attempt(1, || Err::<u64, _>(GatewayError))))
            });
        });
    }

    // metrics_only: metrics on (step counters, duration histograms, active gauge, operation
    // histogram), no event subscriber, spans disabled (no `tracing` subscriber).
    let metered = telemetry(&TelemetryConfig::default(), false);
    tracing::subscriber::with_default(NoSubscriber::default(), || {
        let step = step_scope(&metered);
        group.bench_function("metrics_only", |b| attempt_loop(b, &step));
    });
}

/// Our traced variants, run right after `tracing_otel` (see [`overhead`]).
fn ours_traced(group: &mut BenchmarkGroup<'_, WallTime>) {
    // full: metrics, the no-op subscriber, and a step span per attempt exported through
    // `SpanPipeline` (sampler, batch processor, counting) to a discarding exporter. Logs off.
    // full_unsampled: the same with `trace_sampling_ratio = 0.0`, so the task's trace is sampled
    // out and steps skip span work.
    bench_full(group, "full", 1.0);
    bench_full(group, "full_unsampled", 0.0);

    // exemplars_off, exemplars_on: metrics and a sampled step span (no subscriber), without and
    // with the duration histograms' exemplars (the span's ids kept per bucket).
    for (id, exemplars) in [("exemplars_off", false), ("exemplars_on", true)] {
        let mut config = full_config(1.0);
        config.metrics_exemplars_enabled = exemplars;
        bench_traced(group, id, &config, false);
    }

    // tracing_otel_one_cpu, full_one_cpu: the traced pair again, each with its export thread on
    // the step thread's one CPU (see `on_one_cpu`).
    on_one_cpu(|| {
        bench_tracing_otel(group, "tracing_otel_one_cpu");
        bench_full(group, "full_one_cpu", 1.0);
    });
}

/// `tracing` peers: `#[tracing::instrument]` under no subscriber, the bare registry, and the
/// registry with `tracing-opentelemetry` onto an SDK provider batching like ours.
fn tracing_peers(group: &mut BenchmarkGroup<'_, WallTime>) {
    // tracing_no_subscriber: the callsite's interest is `never`; a span check and nothing else.
    tracing::subscriber::with_default(NoSubscriber::default(), || {
        group.bench_function("tracing_no_subscriber", |b| {
            let mut x = 0u64;
            b.iter(|| {
                x += 1;
                black_box(work_tracing(x))
            })
        });
    });

    // tracing_registry: the span is created, entered, exited and closed in the registry
    // (sharded-slab slot, field recording for `x`), with no layer on top.
    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        group.bench_function("tracing_registry", |b| {
            let mut x = 0u64;
            b.iter(|| {
                x += 1;
                black_box(work_tracing(x))
            })
        });
    });

    // tracing_otel: see `bench_tracing_otel`.
    bench_tracing_otel(group, "tracing_otel");
}

/// `#[tracing::instrument]` under the registry + `tracing_opentelemetry::layer()` (its defaults)
/// on an `SdkTracerProvider` (default sampler: parent-based always-on) whose batch processor is
/// configured like ours (queue 4096, batch 512, 500 ms) and exports to the discarding exporter.
fn bench_tracing_otel(group: &mut BenchmarkGroup<'_, WallTime>, id: &str) {
    let processor = BatchSpanProcessor::builder(Discard)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(4096)
                .with_max_export_batch_size(512)
                .with_scheduled_delay(Duration::from_millis(500))
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let dispatch = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    tracing::subscriber::with_default(dispatch, || {
        group.bench_function(id, |b| {
            let mut x = 0u64;
            b.iter(|| {
                x += 1;
                black_box(work_tracing(x))
            })
        });
    });
    let _ = provider.shutdown();
}

/// Our `full` setup (see [`ours_traced`]) measured as `id`.
fn bench_full(group: &mut BenchmarkGroup<'_, WallTime>, id: &str, trace_sampling_ratio: f64) {
    bench_traced(group, id, &full_config(trace_sampling_ratio), true);
}

/// An attempt under `config` with its spans through `SpanPipeline` to a discarding exporter,
/// and a no-op subscriber on `step.*` if `listen`, measured as `id`.
fn bench_traced(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    config: &TelemetryConfig,
    listen: bool,
) {
    let telemetry = telemetry(config, listen);
    let pipeline = SpanPipeline::with_exporter(config, Discard);
    with_span_pipeline(&pipeline, || {
        let step = step_scope(&telemetry);
        group.bench_function(id, |b| attempt_loop(b, &step));
    });
    black_box(pipeline.shutdown());
}

/// Runs `f` with the calling thread, and every thread it starts meanwhile (they inherit the
/// mask), allowed on one CPU only; then gives the calling thread back its CPUs.
///
/// The traced pair measured this way costs each span's whole CPU time, the batch processor's
/// export thread included, instead of the step thread's latency while that thread runs on the
/// other core (where both figures swing by 2x from one measurement to the next with where the
/// VM's vCPUs land; see BENCHMARKS.md).
fn on_one_cpu<R>(f: impl FnOnce() -> R) -> R {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `cpu_set_t` is plain bits, valid zeroed; the calls read and write only the set
    // they are given, of the size they are told.
    unsafe {
        let mut original: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, size, &mut original),
            0,
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        );
        let first = (0..libc::CPU_SETSIZE as usize)
            .find(|&cpu| libc::CPU_ISSET(cpu, &original))
            .expect("the thread may run on some CPU");
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(first, &mut one);
        assert_eq!(
            libc::sched_setaffinity(0, size, &one),
            0,
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        );
        let result = f();
        assert_eq!(
            libc::sched_setaffinity(0, size, &original),
            0,
            "sched_setaffinity (restore): {}",
            std::io::Error::last_os_error()
        );
        result
    }
}

/// fastrace peers: `#[fastrace::trace]` without and with a root span.
fn fastrace_peers(group: &mut BenchmarkGroup<'_, WallTime>) {
    use fastrace::prelude::{Span, SpanContext};

    // The reporter is process-wide; set it once (it discards; the collector thread still runs).
    fastrace::set_reporter(DiscardReporter, fastrace::collector::Config::default());

    // fastrace_disabled: no local parent, so the attribute's local span is a no-op.
    group.bench_function("fastrace_disabled", |b| {
        let mut x = 0u64;
        b.iter(|| {
            x += 1;
            black_box(work_fastrace(x))
        })
    });

    // fastrace_enabled: per iteration a new root span with a random context, set as the local
    // parent, the attributed call (one child local span), then the guard and the root dropped,
    // which hands the two spans to the global collector's queue. Included: root creation, the
    // random trace id, local-parent set-up and tear-down, the child span, the submission. Not
    // included: the collector thread turning records into `SpanRecord`s and reporting them.
    group.bench_function("fastrace_enabled", |b| {
        let mut x = 0u64;
        b.iter(|| {
            x += 1;
            let root = Span::root("work", SpanContext::random());
            let _guard = root.set_local_parent();
            black_box(work_fastrace(x))
        })
    });
    fastrace::flush();
}

/// Metrics peers: the `metrics` facade with the Prometheus recorder (cached handles first, the
/// nearest comparison to `metrics_only`, then per-call macros), autometrics, prometheus-client
/// with cached handles.
fn metrics_peers(group: &mut BenchmarkGroup<'_, WallTime>) {
    // The `metrics` global recorder, installed once, no HTTP listener. `install_recorder` leaves
    // upkeep (draining histogram samples) to the caller; this thread does it every 5 s like the
    // exporter's own `install()` would.
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("install the metrics recorder once");
    let stop = Arc::new(AtomicBool::new(false));
    let upkeep = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                if last.elapsed() >= Duration::from_secs(5) {
                    handle.run_upkeep();
                    last = Instant::now();
                }
            }
        })
    };

    // metrics_cached: handles resolved once; per call two clock reads, a counter increment and
    // a histogram record — the same work metrics_only's metric updates do.
    let counter = metrics::counter!("bench_work_calls_total", "step" => "work");
    let histogram = metrics::histogram!("bench_work_duration_seconds", "step" => "work");
    group.bench_function("metrics_cached", |b| {
        let mut x = 0u64;
        b.iter(|| {
            x += 1;
            let start = Instant::now();
            let r = work(x);
            counter.increment(1);
            histogram.record(start.elapsed().as_secs_f64());
            black_box(r)
        })
    });

    // metrics_macro: the same with the macros (and their label) evaluated on every call, so each
    // call looks the series up in the recorder.
    group.bench_function("metrics_macro", |b| {
        let mut x = 0u64;
        b.iter(|| {
            x += 1;
            let start = Instant::now();
            let r = work(x);
            metrics::counter!("bench_work_calls_total", "step" => "work").increment(1);
            metrics::histogram!("bench_work_duration_seconds", "step" => "work")
                .record(start.elapsed().as_secs_f64());
            black_box(r)
        })
    });
    stop.store(true, Ordering::Relaxed);
    upkeep.join().expect("upkeep thread");

    // autometrics: its settings (prometheus-client registry, default buckets) initialised once,
    // before first use.
    autometrics::settings::AutometricsSettings::builder().init();
    group.bench_function("autometrics", |b| {
        let mut x = 0u64;
        b.iter(|| {
            x += 1;
            black_box(work_autometrics(x))
        })
    });

    // prometheus_client_cached: a counter family and a histogram family (Prometheus' default
    // buckets) labelled by step; handles cloned once; per call two clock reads, inc, observe.
    bench_prometheus_client(group);
}

/// The label set of the prometheus-client peer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct StepLabels {
    /// The step's name.
    step: String,
}

/// `prometheus_client_cached`: see [`metrics_peers`].
fn bench_prometheus_client(group: &mut BenchmarkGroup<'_, WallTime>) {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;

    /// Prometheus' default histogram buckets (seconds).
    const BUCKETS: [f64; 11] = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let mut registry = prometheus_client::registry::Registry::default();
    let calls = Family::<StepLabels, Counter>::default();
    let durations =
        Family::<StepLabels, Histogram>::new_with_constructor(|| Histogram::new(BUCKETS));
    registry.register("bench_work_calls", "Calls of work", calls.clone());
    registry.register(
        "bench_work_duration_seconds",
        "Duration of work",
        durations.clone(),
    );
    let labels = StepLabels {
        step: "work".to_owned(),
    };
    let counter = calls.get_or_create(&labels).clone();
    let histogram = durations.get_or_create(&labels).clone();
    group.bench_function("prometheus_client_cached", |b| {
        let mut x = 0u64;
        b.iter(|| {
            x += 1;
            let start = Instant::now();
            let r = work(x);
            counter.inc();
            histogram.observe(start.elapsed().as_secs_f64());
            black_box(r)
        })
    });
    black_box(registry);
}

/// The floors: what a clock read pair and a relaxed atomic increment cost on this machine.
fn floors(group: &mut BenchmarkGroup<'_, WallTime>) {
    // floor_instant: `Instant::now()` then `.elapsed()` — two monotonic clock reads.
    group.bench_function("floor_instant", |b| {
        b.iter(|| {
            let start = black_box(Instant::now());
            black_box(start.elapsed())
        })
    });
    // floor_fetch_add: one uncontended relaxed `fetch_add` on a shared atomic.
    let counter = AtomicU64::new(0);
    group.bench_function("floor_fetch_add", |b| {
        b.iter(|| black_box(&counter).fetch_add(1, Ordering::Relaxed))
    });
}

/// Group `overhead`: every variant, ns per call of the trivial step.
/// Group `overhead`. Each target compares figures from this one run; the two sides of each
/// comparison run back to back (ours, then the metrics peers; `tracing_otel`, then our traced
/// variants), so that a slow drift in the machine's speed over the run (other tenants on the
/// host) bends a ratio as little as possible.
fn overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("overhead");
    ours_untraced(&mut group);
    metrics_peers(&mut group);
    tracing_peers(&mut group);
    ours_traced(&mut group);
    fastrace_peers(&mut group);
    floors(&mut group);
    group.finish();
}

// ------------------------------------------------------------------------------------------------
// Group `publisher`: events/s.
// ------------------------------------------------------------------------------------------------

/// Group `publisher`: `step.completed`-like events (a `StepPayload` with a duration, built only
/// when someone listens) published through `Telemetry::publisher()`, to 0, 1 or 4 no-op
/// synchronous subscribers, from 1 or 2 threads (IDs `t<threads>_s<subscribers>`). Throughput is
/// events per second over all threads.
fn publisher(c: &mut Criterion) {
    let mut group = c.benchmark_group("publisher");
    let (task_id, task_name, step_id, step_name): (Arc<str>, Arc<str>, Arc<str>, Arc<str>) = (
        TASK_ID.into(),
        "bench".into(),
        STEP_ID.into(),
        "work".into(),
    );
    let publish = |telemetry: &Telemetry| {
        telemetry
            .publisher()
            .publish_with(names::STEP_COMPLETED, || {
                let mut p = StepPayload::new(
                    task_id.clone(),
                    task_name.clone(),
                    step_id.clone(),
                    step_name.clone(),
                );
                p.execution_duration = Some(0.000_001);
                p
            })
    };
    for subscribers in [0usize, 1, 4] {
        let telemetry = Telemetry::new(TelemetryConfig::default()).expect("default config");
        subscribe_noops(&telemetry, subscribers);

        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("t1_s{subscribers}"), |b| {
            b.iter(|| black_box(publish(&telemetry)))
        });

        group.throughput(Throughput::Elements(2));
        group.bench_function(format!("t2_s{subscribers}"), |b| {
            b.iter_custom(|iters| {
                wall_time_on_threads(2, iters, |n| {
                    for _ in 0..n {
                        black_box(publish(&telemetry));
                    }
                })
            })
        });
    }

    // t1_async: one asynchronous no-op subscriber: what the publisher pays for it, the event
    // copied for the queue and its size counted (the subscriber's thread drains the queue).
    let telemetry = Telemetry::new(TelemetryConfig::default()).expect("default config");
    telemetry
        .publisher()
        .subscribe_with(
            &["step.*"],
            subscriber::from_fn("noop-async", |e| {
                black_box(e);
            }),
            tasker_telemetry::subscriber::Delivery::Asynchronous { capacity: 4096 },
        )
        .expect("subscribe");
    group.throughput(Throughput::Elements(1));
    group.bench_function("t1_async", |b| b.iter(|| black_box(publish(&telemetry))));
    group.finish();
}

// ------------------------------------------------------------------------------------------------
// Group `contention`: one shared StepScope.
// ------------------------------------------------------------------------------------------------

/// Group `contention`: the `metrics_only` attempt on one shared `StepScope` (so one metric
/// series: the same counters, histograms and gauge), from 1 thread and from 2 threads each doing
/// `iters` attempts at once. Wall time, so the figure is per-call latency per thread.
fn contention(c: &mut Criterion) {
    let mut group = c.benchmark_group("contention");
    let telemetry = telemetry(&TelemetryConfig::default(), false);
    let step =
        tracing::subscriber::with_default(NoSubscriber::default(), || step_scope(&telemetry));
    for threads in [1usize, 2] {
        group.bench_function(format!("metrics_only_t{threads}"), |b| {
            b.iter_custom(|iters| {
                wall_time_on_threads(threads, iters, |n| {
                    // Threads start with no scoped dispatcher: spans stay disabled.
                    tracing::subscriber::with_default(NoSubscriber::default(), || {
                        for x in 0..n {
                            let _ = black_box(one_attempt(&step, x));
                        }
                    })
                })
            })
        });
    }
    group.finish();
}

// ------------------------------------------------------------------------------------------------
// Group `runner`: steps/s through the workflow runner.
// ------------------------------------------------------------------------------------------------

/// The trivial handler of every runner step: returns its attempt number.
#[step_handler]
fn noop_step(step: &Step) -> Result<u32, StepError> {
    Ok(black_box(step.attempt_number()))
}

/// Group `runner`: one task of a 10-step linear chain (`s0 -> s1 -> ... -> s9`, each the no-op
/// handler) per iteration, on a tokio current-thread runtime. Throughput is 10 elements per
/// iteration, so criterion reports steps/s. `telemetry_off`: the global switch off. `full`: the
/// overhead group's `full` setup (metrics, a no-op subscriber on `step.*`, spans to a discarding
/// exporter through `SpanPipeline`).
fn runner(c: &mut Criterion) {
    const STEPS: usize = 10;
    let mut group = c.benchmark_group("runner");
    group.throughput(Throughput::Elements(STEPS as u64));
    let mut builder = Workflow::builder("bench_chain").handler(NoopStep);
    for i in 0..STEPS {
        let mut def = StepDef::new(format!("s{i}")).handler("noop_step");
        if i > 0 {
            def = def.depends_on([format!("s{}", i - 1)]);
        }
        builder = builder.step(def);
    }
    let workflow = builder.build().expect("a valid 10-step chain");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    let run_tasks = |b: &mut Bencher<'_>, telemetry: &Telemetry| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            let outcome =
                runtime.block_on(workflow.run(telemetry, n.to_string(), serde_json::json!({})));
            debug_assert!(outcome.is_complete());
            black_box(outcome)
        })
    };

    let quiet = telemetry(&TelemetryConfig::default(), false);
    set_enabled(false);
    group.bench_function("telemetry_off", |b| run_tasks(b, &quiet));
    set_enabled(true);

    // full: every task traced to a discarding exporter; full_store: the same with the
    // in-process span store of the default configuration (the last 100 tasks), which copies
    // each exported span on the export thread and lets the oldest task go.
    let mut stored = full_config(1.0);
    stored.span_store_tasks = TelemetryConfig::default().span_store_tasks;
    for (id, config) in [("full", full_config(1.0)), ("full_store", stored)] {
        let full = telemetry(&config, true);
        let pipeline = SpanPipeline::with_exporter(&config, Discard);
        with_span_pipeline(&pipeline, || {
            group.bench_function(id, |b| run_tasks(b, &full));
        });
        black_box(pipeline.shutdown());
    }
    group.finish();

    // One task of 10,000 steps, telemetry off: the runner's own cost per step, as a chain
    // (each step waits on the one before) and as independent steps.
    let mut group = c.benchmark_group("runner_10k");
    group.sample_size(10);
    group.throughput(Throughput::Elements(10_000));
    let chain = {
        let mut builder = Workflow::builder("chain_10k").handler(NoopStep);
        // Declared last step first: validation walks the whole chain from its end.
        for i in (0..10_000).rev() {
            let mut def = StepDef::new(format!("s{i}")).handler("noop_step");
            if i > 0 {
                def = def.depends_on([format!("s{}", i - 1)]);
            }
            builder = builder.step(def);
        }
        builder.build().expect("a valid 10,000-step chain")
    };
    let independent = {
        let mut builder = Workflow::builder("independent_10k").handler(NoopStep);
        for i in 0..10_000 {
            builder = builder.step(StepDef::new(format!("s{i}")).handler("noop_step"));
        }
        builder.build().expect("10,000 independent steps")
    };
    set_enabled(false);
    for (id, workflow) in [("chain", &chain), ("independent", &independent)] {
        let mut n = 0u64;
        group.bench_function(id, |b| {
            b.iter(|| {
                n += 1;
                let outcome =
                    runtime.block_on(workflow.run(&quiet, n.to_string(), serde_json::json!({})));
                debug_assert!(outcome.is_complete());
                black_box(outcome)
            })
        });
    }
    set_enabled(true);
    group.finish();
}

/// Short runs: the whole bench (about 30 variants) stays within a few minutes on 2 cores.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

/// Group `filter`: one payload of ten keys through the parameter filter, with Tasker's ten
/// default rules and with 10,000 short substring rules (matched together, not one by one).
fn filter(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter");
    let payload = serde_json::json!({
        "task_id": "t-1", "task_name": "checkout", "step_id": "t-1/charge", "step_name": "charge",
        "attempt_number": 1, "amount": 42, "currency": "EUR", "customer": {"id": 7, "tier": "gold"},
        "password": "hunter2",
    });
    let rules_10000: Vec<String> = (0..10_000).map(|i| format!("zq{i:x}w")).collect();
    for (id, filter) in [
        (
            "defaults",
            tasker_telemetry::ParameterFilter::tasker_default(),
        ),
        (
            "rules_10000",
            tasker_telemetry::ParameterFilter::new(&rules_10000, "[FILTERED]").unwrap(),
        ),
    ] {
        group.bench_function(id, |b| {
            b.iter(|| black_box(filter.filtered(black_box(&payload))))
        });
    }
    // scrub_200b: value detection over GatewayError's 200 bytes of text with no secret in them.
    let defaults = tasker_telemetry::ParameterFilter::tasker_default();
    group.bench_function("scrub_200b", |b| {
        b.iter(|| black_box(defaults.scrub(black_box(GATEWAY_MESSAGE))))
    });
    group.finish();
}

/// The criterion group (its generated function cannot carry a doc comment, hence the module):
/// every group above, with the short-run configuration.
mod all {
    use super::{config, contention, filter, overhead, publisher, runner};

    criterion::criterion_group! {
        name = benches;
        config = config();
        targets = overhead, publisher, contention, runner, filter
    }
}

criterion_main!(all::benches);
