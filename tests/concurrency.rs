//! Concurrency: the metric registry's per-thread lanes and the publisher's subscription table
//! under contention, through the public API only.
//! - Metric cells lose no update: far more threads than there are lanes (long- and short-lived,
//!   so lanes are leased, returned at thread exit and leased again mid-run) hammer one counter,
//!   one gauge and one histogram; the totals are exact (counter, histogram count, per-bucket
//!   counts, integer sum), the gauge is back to the value last `set`, and snapshots taken
//!   meanwhile are internally consistent (+Inf bucket = count, buckets cumulative) and never go
//!   backwards. A gauge `set` racing balanced adds ends on a value some linear order explains.
//! - The publisher neither misses nor duplicates: while threads publish uniquely numbered events
//!   and others subscribe and unsubscribe in a loop, every event published after a stable
//!   subscriber's `subscribe` returned reaches it exactly once (synchronous and asynchronous
//!   delivery), and nothing published after an `unsubscribe` returned reaches that subscriber.
//!
//! `TASKER_SOAK=1` runs five to ten times the rounds.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use tasker_telemetry::event::names;
use tasker_telemetry::metrics::{MetricsRegistry, MetricsSnapshot, SeriesValue};
use tasker_telemetry::payload::TaskPayload;
use tasker_telemetry::subscriber::{self, Delivery};
use tasker_telemetry::{Event, EventName, Publisher};

fn soak() -> bool {
    std::env::var_os("TASKER_SOAK").is_some_and(|v| v == "1")
}

/// Above the most lanes the registry ever leases (64), so some threads always share a lane,
/// whatever the machine.
const MAX_ALIVE: usize = 72;
const BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0];

/// A small deterministic generator: each worker's workload differs, reproducibly.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// What one worker records: `ops` rounds of counter +1 (+3 every fifth), gauge +1 +2 -1 -2, and
/// one observation of a small integer.
#[derive(Clone, Copy)]
struct Work {
    ops: u64,
    seed: u64,
}

impl Work {
    fn new(worker: u64) -> Self {
        let seed = mix(worker + 1);
        // Mostly short-lived workers (so lanes change hands often), some long ones.
        let ops = if seed.is_multiple_of(8) {
            5_000 + seed % 5_000
        } else {
            50 + seed % 500
        };
        Self { ops, seed }
    }

    fn observation(&self, j: u64) -> u64 {
        mix(self.seed ^ j) % 11
    }

    fn counter(&self) -> u64 {
        self.ops + self.ops.div_ceil(5) * 3
    }
}

#[derive(Default)]
struct Expected {
    counter: u64,
    count: u64,
    sum: u64,
    /// Per bucket, not cumulative: `BOUNDS` then the one above every bound.
    buckets: [u64; 5],
}

impl Expected {
    fn add(&mut self, work: &Work) {
        self.counter += work.counter();
        for j in 0..work.ops {
            let v = work.observation(j);
            self.count += 1;
            self.sum += v;
            let bucket = BOUNDS
                .iter()
                .position(|b| v as f64 <= *b)
                .unwrap_or(BOUNDS.len());
            self.buckets[bucket] += 1;
        }
    }
}

/// The test's series in a snapshot: counter, gauge, histogram (cumulative buckets, sum, count).
struct Seen {
    counter: u64,
    gauge: f64,
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

fn seen(snapshot: &MetricsSnapshot) -> Seen {
    let value = |name: &str| {
        let family = snapshot
            .families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(family.series.len(), 1, "{name}");
        family.series[0].value.clone()
    };
    let SeriesValue::Counter(counter) = value("lanes_ops_total") else {
        panic!("counter")
    };
    let SeriesValue::Gauge(gauge) = value("lanes_in_flight") else {
        panic!("gauge")
    };
    let SeriesValue::Histogram {
        buckets,
        sum,
        count,
    } = value("lanes_size")
    else {
        panic!("histogram")
    };
    let bounds: Vec<f64> = buckets.iter().map(|b| b.0).collect();
    assert_eq!(bounds[..BOUNDS.len()], *BOUNDS);
    assert_eq!(bounds[BOUNDS.len()], f64::INFINITY);
    Seen {
        counter: counter as u64,
        gauge,
        buckets: buckets.iter().map(|b| b.1).collect(),
        sum,
        count,
    }
}

/// Runs `workers` workers with at most `alive` at once; a worker's thread exits when its work is
/// done and the next worker starts on a fresh thread, which leases whatever lane is free.
fn run_workers(
    first_worker: u64,
    workers: u64,
    alive: usize,
    work: impl Fn(Work) + Sync,
) -> Expected {
    let next = AtomicU64::new(first_worker);
    let end = first_worker + workers;
    let expected = Mutex::new(Expected::default());
    std::thread::scope(|s| {
        // `alive` spawner loops, each running its workers one after another on new threads.
        for _ in 0..alive {
            s.spawn(|| {
                loop {
                    let worker = next.fetch_add(1, Ordering::Relaxed);
                    if worker >= end {
                        break;
                    }
                    let w = Work::new(worker);
                    std::thread::scope(|inner| {
                        inner.spawn(|| work(w));
                    });
                    expected.lock().unwrap().add(&w);
                }
            });
        }
    });
    expected.into_inner().unwrap()
}

#[test]
fn metric_lanes_lose_no_updates_while_threads_come_and_go() {
    let registry = MetricsRegistry::new();
    let counter = registry
        .counter("lanes_ops_total", "Operations.", &[])
        .unwrap()
        .with(&[]);
    let gauge = registry
        .gauge("lanes_in_flight", "In flight.", &[])
        .unwrap()
        .with(&[]);
    let histogram = registry
        .histogram("lanes_size", "Sizes.", None, &[], Some(BOUNDS))
        .unwrap()
        .with(&[]);

    let rounds = if soak() { 60 } else { 12 };
    // Alternating few and many threads: few leave lanes free for the next threads to lease
    // mid-run; many (above the lane count) force the shared lane.
    let alive_by_round = [4, MAX_ALIVE, 12, MAX_ALIVE, 2, 24];
    let workers_per_round = 300;
    let mut total = Expected::default();
    let (mut threads, mut snapshots) = (0u64, 0u64);
    let started = Instant::now();

    for round in 0..rounds {
        let base = (round * 1000) as f64;
        gauge.set(base);
        assert_eq!(gauge.get(), base, "set overrides every lane's leftovers");
        let before = seen(&registry.snapshot());
        let stop = AtomicBool::new(false);
        let alive = alive_by_round[round % alive_by_round.len()];
        let (expected, reads) = std::thread::scope(|s| {
            // A reader taking snapshots the whole time: each must be internally consistent and
            // never behind the one before.
            let reader = s.spawn(|| {
                let mut last = seen(&registry.snapshot());
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let now = seen(&registry.snapshot());
                    assert_eq!(now.buckets.last(), Some(&now.count), "+Inf bucket = count");
                    assert!(
                        now.buckets.windows(2).all(|w| w[0] <= w[1]),
                        "buckets cumulative: {:?}",
                        now.buckets
                    );
                    assert!(now.counter >= last.counter, "counter went backwards");
                    assert!(
                        now.buckets.iter().zip(&last.buckets).all(|(n, l)| n >= l),
                        "a bucket went backwards: {:?} after {:?}",
                        now.buckets,
                        last.buckets
                    );
                    assert!(now.sum >= last.sum, "sum went backwards");
                    // Every worker's gauge updates go +1 +2 -1 -2 on its own lane (or the shared
                    // one), so no lane is ever below where it started the round.
                    assert!(now.gauge >= base, "gauge {} below {base}", now.gauge);
                    assert!(histogram.count() >= now.count && counter.get() >= now.counter);
                    last = now;
                    reads += 1;
                }
                reads
            });
            let expected = run_workers(
                (round * workers_per_round) as u64,
                workers_per_round as u64,
                alive,
                |w| {
                    for j in 0..w.ops {
                        counter.inc();
                        if j % 5 == 0 {
                            counter.inc_by(3);
                        }
                        gauge.inc();
                        gauge.add(2.0);
                        histogram.observe(w.observation(j) as f64);
                        gauge.dec();
                        gauge.add(-2.0);
                    }
                },
            );
            stop.store(true, Ordering::Relaxed);
            (expected, reader.join().unwrap())
        });
        threads += workers_per_round as u64;
        snapshots += reads;

        let after = seen(&registry.snapshot());
        assert_eq!(
            after.counter - before.counter,
            expected.counter,
            "round {round}: counter"
        );
        assert_eq!(after.count - before.count, expected.count, "round {round}");
        assert_eq!(
            after.sum - before.sum,
            expected.sum as f64,
            "round {round}: sum"
        );
        assert_eq!(
            after.gauge, base,
            "round {round}: gauge back to its set value"
        );
        total.counter += expected.counter;
        total.count += expected.count;
        total.sum += expected.sum;
        for (t, e) in total.buckets.iter_mut().zip(expected.buckets) {
            *t += e;
        }
    }

    let end = seen(&registry.snapshot());
    assert_eq!(end.counter, total.counter);
    assert_eq!(counter.get(), total.counter);
    assert_eq!(end.count, total.count);
    assert_eq!(histogram.count(), total.count);
    assert_eq!(end.sum, total.sum as f64);
    let cumulative: Vec<u64> = total
        .buckets
        .iter()
        .scan(0, |acc, n| {
            *acc += n;
            Some(*acc)
        })
        .collect();
    assert_eq!(end.buckets, cumulative);
    println!(
        "metric lanes: {rounds} rounds, {threads} worker threads, {} counter updates, {} \
         observations, {snapshots} concurrent snapshots, {:.1} s; lost updates: 0",
        total.counter,
        total.count,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn gauge_set_racing_balanced_adds_ends_on_a_linearizable_value() {
    let registry = MetricsRegistry::new();
    let gauge = registry
        .gauge("race_level", "Level.", &[])
        .unwrap()
        .with(&[]);
    let (setters, adders) = (3u64, 6u64);
    let rounds = if soak() { 200 } else { 20 };
    for round in 0..rounds {
        let barrier = Barrier::new((setters + adders) as usize);
        let last_set = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for setter in 0..setters {
                let (barrier, gauge, last_set) = (&barrier, &gauge, &last_set);
                s.spawn(move || {
                    barrier.wait();
                    let mut value = 0.0;
                    for i in 0..2_000u64 {
                        // Far apart, so the final value names its setter and index.
                        value = ((setter + 1) * 1_000_000 + i * 100) as f64;
                        gauge.set(value);
                    }
                    last_set.lock().unwrap().push(value);
                });
            }
            for _ in 0..adders {
                let (barrier, gauge) = (&barrier, &gauge);
                s.spawn(move || {
                    barrier.wait();
                    for _ in 0..5_000 {
                        gauge.inc();
                        gauge.dec();
                    }
                });
            }
        });
        // The last set wins; an adder between its +1 and -1 when that set read the lanes
        // leaves -1 behind (set, then the -1), so the end is v - k for a setter's last value v
        // and 0 <= k <= adders.
        let end = gauge.get();
        let explained = last_set
            .lock()
            .unwrap()
            .iter()
            .any(|v| (0..=adders).any(|k| end == v - k as f64));
        assert!(
            explained,
            "round {round}: gauge ended at {end}, which no order of the calls gives (last sets: {:?})",
            last_set.lock().unwrap()
        );
    }
}

/// Records, per event number, how many times a subscriber received it.
struct Tally {
    counts: Vec<AtomicU8>,
}

impl Tally {
    fn new(events: u64) -> Arc<Self> {
        Arc::new(Self {
            counts: (0..events).map(|_| AtomicU8::new(0)).collect(),
        })
    }

    fn record(&self, event: &Event<'_>) {
        let n = event
            .get("total_steps")
            .and_then(|v| v.as_u64())
            .expect("numbered event");
        self.counts[n as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn received(&self, n: u64) -> u8 {
        self.counts[n as usize].load(Ordering::Relaxed)
    }
}

/// Event `n` is `EVENTS[n % 3]`, so which subscriptions owe it follows from its number.
const EVENTS: [EventName; 3] = [
    names::TASK_COMPLETED,
    names::STEP_COMPLETED,
    names::WORKFLOW_TASK_COMPLETED,
];

/// The churners' subscriptions, and which of `EVENTS` each covers.
const CHURN_PATTERNS: [(&[&str], [bool; 3]); 3] = [
    (&["*"], [true, true, true]),
    (&["task.completed"], [true, false, false]),
    (&["step.*", "workflow.*"], [false, true, true]),
];

/// One subscribe ... unsubscribe cycle of a churning subscriber.
struct Churned {
    received: Arc<Mutex<Vec<u64>>>,
    /// Events it covers that were numbered after `subscribe` returned and whose publish had
    /// returned before `unsubscribe` was called: each must have reached it exactly once.
    owed: Vec<u64>,
    /// The event counter read right after `unsubscribe` returned: no event numbered from here
    /// on may reach the subscriber.
    closed_at: u64,
}

#[test]
fn publisher_delivers_exactly_once_while_subscriptions_churn() {
    let rounds = if soak() { 40 } else { 4 };
    let (publishers, per_publisher) = (3u64, 40_000u64);
    let events = publishers * per_publisher;
    let (mut cycles_total, mut owed_total) = (0usize, 0usize);
    let started = Instant::now();
    for round in 0..rounds {
        let publisher = Publisher::new();
        let next = AtomicU64::new(0);
        let published: Vec<AtomicBool> = (0..events).map(|_| AtomicBool::new(false)).collect();

        // Stable from the start: every event, synchronously and through a queue big enough
        // never to drop.
        let sync_all = Tally::new(events);
        let tally = sync_all.clone();
        publisher
            .subscribe(
                &["*"],
                subscriber::from_fn("stable-sync", move |e| tally.record(e)),
            )
            .unwrap();
        let async_all = Tally::new(events);
        let tally = async_all.clone();
        let async_handle = publisher
            .subscribe_with(
                &["task.*", "step.completed", "workflow.task_completed"],
                subscriber::from_fn("stable-async", move |e| tally.record(e)),
                Delivery::Asynchronous {
                    capacity: events as usize,
                },
            )
            .unwrap();

        let stop_churn = AtomicBool::new(false);
        let late = Tally::new(events);
        let (late_from, churned) = std::thread::scope(|s| {
            let publishing: Vec<_> = (0..publishers)
                .map(|_| {
                    let (publisher, next, published) = (&publisher, &next, &published);
                    s.spawn(move || {
                        for _ in 0..per_publisher {
                            let n = next.fetch_add(1, Ordering::SeqCst);
                            let delivered =
                                publisher.publish_with(EVENTS[(n % 3) as usize], || {
                                    let mut payload = TaskPayload::new("churn", "churn");
                                    payload.total_steps = Some(n);
                                    payload
                                });
                            assert!(delivered, "event {n}: stable subscribers listen");
                            published[n as usize].store(true, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            // Subscribes mid-run and stays: owed every event numbered after its subscribe
            // returned.
            let late_subscriber = s.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(60);
                while next.load(Ordering::SeqCst) < events / 4 {
                    assert!(Instant::now() < deadline, "publishers stalled");
                    std::thread::yield_now();
                }
                let tally = late.clone();
                publisher
                    .subscribe(
                        &["task.completed", "step.*", "workflow.*"],
                        subscriber::from_fn("stable-late", move |e| tally.record(e)),
                    )
                    .unwrap();
                next.load(Ordering::SeqCst)
            });
            let churners: Vec<_> = (0..2)
                .map(|c| {
                    let (publisher, next, published, stop) =
                        (&publisher, &next, &published, &stop_churn);
                    s.spawn(move || {
                        let mut cycles = Vec::new();
                        while !stop.load(Ordering::SeqCst) {
                            let (patterns, covers) =
                                CHURN_PATTERNS[(cycles.len() + c) % CHURN_PATTERNS.len()];
                            let received = Arc::new(Mutex::new(Vec::new()));
                            let sink = received.clone();
                            let handle = publisher
                                .subscribe(
                                    patterns,
                                    subscriber::from_fn("churn", move |e: &Event<'_>| {
                                        let n = e.get("total_steps").and_then(|v| v.as_u64());
                                        sink.lock().unwrap().push(n.expect("numbered event"));
                                    }),
                                )
                                .unwrap();
                            let opened_at = next.load(Ordering::SeqCst);
                            // Stay subscribed while a few events go by.
                            while next.load(Ordering::SeqCst) < opened_at + 20
                                && !stop.load(Ordering::SeqCst)
                            {
                                std::thread::yield_now();
                            }
                            let owed = (opened_at..next.load(Ordering::SeqCst))
                                .filter(|n| covers[(n % 3) as usize])
                                .filter(|n| published[*n as usize].load(Ordering::SeqCst))
                                .collect();
                            assert!(handle.unsubscribe(), "still subscribed");
                            let closed_at = next.load(Ordering::SeqCst);
                            cycles.push(Churned {
                                received,
                                owed,
                                closed_at,
                            });
                        }
                        cycles
                    })
                })
                .collect();
            let late_from = late_subscriber.join().unwrap();
            for p in publishing {
                p.join().unwrap();
            }
            stop_churn.store(true, Ordering::SeqCst);
            let churned: Vec<Churned> = churners
                .into_iter()
                .flat_map(|c| c.join().unwrap())
                .collect();
            (late_from, churned)
        });

        // Wait for the asynchronous subscriber's queue to drain (bounded, no sleeps).
        let deadline = Instant::now() + Duration::from_secs(60);
        while async_handle.stats().delivered < events {
            assert!(
                Instant::now() < deadline,
                "async subscriber stuck at {:?}",
                async_handle.stats()
            );
            std::thread::yield_now();
        }
        assert_eq!(async_handle.stats().dropped, 0);

        for n in 0..events {
            assert_eq!(sync_all.received(n), 1, "stable sync subscriber, event {n}");
            assert_eq!(
                async_all.received(n),
                1,
                "stable async subscriber, event {n}"
            );
            let late_got = late.received(n);
            assert!(
                late_got <= 1,
                "late subscriber got event {n} {late_got} times"
            );
            if n >= late_from {
                assert_eq!(
                    late_got, 1,
                    "late subscriber missed event {n} (from {late_from})"
                );
            }
        }
        assert!(!churned.is_empty());
        for (i, cycle) in churned.iter().enumerate() {
            let received = cycle.received.lock().unwrap().clone();
            let mut times = std::collections::HashMap::new();
            for n in &received {
                *times.entry(*n).or_insert(0u32) += 1;
            }
            let context = format!("round {round}, churn cycle {i}");
            assert!(
                times.values().all(|t| *t == 1),
                "{context}: duplicate deliveries {times:?}"
            );
            let late: Vec<&u64> = received.iter().filter(|n| **n >= cycle.closed_at).collect();
            assert!(
                late.is_empty(),
                "{context}: events {late:?} arrived after unsubscribe returned (at {})",
                cycle.closed_at
            );
            let missed: Vec<&u64> = cycle
                .owed
                .iter()
                .filter(|n| !times.contains_key(n))
                .collect();
            assert!(missed.is_empty(), "{context}: missed {missed:?}");
            owed_total += cycle.owed.len();
        }
        cycles_total += churned.len();
        assert!(async_handle.unsubscribe());
    }
    println!(
        "publisher: {rounds} rounds x {events} events from {publishers} threads, 3 stable \
         subscribers checked per event, {cycles_total} subscribe/unsubscribe cycles during \
         publishing owed {owed_total} deliveries, {:.1} s; missed 0, duplicated 0, late 0",
        started.elapsed().as_secs_f64()
    );
}
