//! `scope_overhead`: one step attempt through `StepScope` around a trivial function.
//!
//! Variants, all in one run: the bare function (baseline); telemetry switched off; on with no
//! subscriber; on with one no-op synchronous subscriber.
//!
//! `cargo bench -p tasker-telemetry-benches --bench scope_overhead`

use std::hint::black_box;

use criterion::{Bencher, Criterion, criterion_group, criterion_main};
use tasker_telemetry::{StepScope, TaskScope, Telemetry, set_enabled, subscriber};

#[derive(Debug)]
struct WorkError;

impl std::fmt::Display for WorkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("work failed")
    }
}

impl std::error::Error for WorkError {}

#[inline(never)]
fn work(x: u64) -> Result<u64, WorkError> {
    let y = black_box(x)
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    if y == 0 { Err(WorkError) } else { Ok(y) }
}

fn one_attempt(b: &mut Bencher<'_>, step: &StepScope) {
    let mut x = 0u64;
    b.iter(|| {
        x += 1;
        let attempt = step.attempt(1);
        let result = work(x);
        attempt.finish(&result);
        black_box(result)
    })
}

fn scope_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("scope_overhead");

    group.bench_function("baseline", |b| {
        let mut x = 0u64;
        b.iter(|| {
            x += 1;
            black_box(work(x))
        })
    });

    let quiet = Telemetry::new(Default::default()).expect("default config is valid");
    let task = TaskScope::new(&quiet, "bench-task", "bench");
    let step = task.step("bench-task/1", "work").with_retry_limit(3);

    set_enabled(false);
    group.bench_function("telemetry_off", |b| one_attempt(b, &step));
    set_enabled(true);
    group.bench_function("on_no_subscriber", |b| one_attempt(b, &step));

    let listened = Telemetry::new(Default::default()).expect("default config is valid");
    listened
        .publisher()
        .subscribe(
            &["step.*"],
            subscriber::from_fn("noop", |e| {
                black_box(e);
            }),
        )
        .expect("subscribe");
    let task = TaskScope::new(&listened, "bench-task", "bench");
    let step = task.step("bench-task/1", "work").with_retry_limit(3);
    group.bench_function("on_one_noop_subscriber", |b| one_attempt(b, &step));

    group.finish();
}

criterion_group!(benches, scope_overhead);
criterion_main!(benches);
