//! Prometheus compatibility, proven with Prometheus itself: `promtool check metrics` accepts the
//! exposition, and a real Prometheus server (started here on 127.0.0.1) scrapes the endpoint and
//! answers PromQL with exactly the workload's values. Needs the Debian package `prometheus`
//! (`bash scripts/test.sh` installs it); without it these tests fail, saying so.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::http_get::get;
use support::prometheus::{Prometheus, query, require};
use tasker_telemetry::http::MetricsServer;
use tasker_telemetry::scope::{Failure, StepCounts};
use tasker_telemetry::{TaskScope, Telemetry};

/// Names with every character that needs escaping, and non-ASCII.
const TRICKY_TASK: &str = "order \"big\" \\ batch\nline two é✓";
const TRICKY_STEP: &str = "charge \\card\\ \"now\" ü";

/// Busy work for a known time, so step durations have a known median.
fn work(millis: u64) {
    let until = Instant::now() + Duration::from_millis(millis);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// 3 tasks of the tricky name (2 completed, 1 failed); 5 attempts of the tricky step with
/// durations 2, 30, 70, 80, 300 ms (median 70 ms, in the (0.05, 0.1] bucket); 1 failed attempt.
fn workload(telemetry: &Telemetry) {
    let durations = [2, 30, 70, 80, 300];
    for t in 0..3 {
        let task = TaskScope::new(telemetry, format!("t{t}"), TRICKY_TASK);
        task.start();
        if t == 2 {
            task.fail(&Failure::new("boom", "Boom"), StepCounts::default());
            continue;
        }
        for (i, ms) in durations.iter().enumerate() {
            if (t == 0) == (i % 2 == 0) {
                let step = task.step(format!("t{t}-{i}"), TRICKY_STEP);
                let attempt = step.attempt(1);
                work(*ms);
                attempt.complete(&i);
            }
        }
        task.complete(StepCounts::default());
    }
    let task = TaskScope::new(telemetry, "t9", TRICKY_TASK);
    task.step("t9-1", TRICKY_STEP)
        .attempt(1)
        .fail_with(&Failure::new("declined", "Declined"));
}

/// `name{labels} value` lines of a text exposition, labels unescaped.
fn parse_samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap(),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        let mut chars = labels.chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            assert_eq!(chars.next(), Some('"'));
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => break,
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            if chars.peek() == Some(&',') {
                chars.next();
            }
            map.insert(key, value);
        }
        out.push((name.to_owned(), map, value));
    }
    out
}

#[test]
fn promtool_accepts_the_exposition_and_the_format_holds_what_promtool_does_not_check() {
    let promtool = require("promtool");
    let telemetry = Telemetry::new(Default::default()).unwrap();
    workload(&telemetry);
    let server = MetricsServer::start(&telemetry, None, ([127, 0, 0, 1], 0).into()).unwrap();
    let first = get(server.addr(), "/metrics", &[]).body;

    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(first.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let samples = parse_samples(&first);
    // No duplicate series, no NaN.
    let mut seen = HashSet::new();
    for (name, labels, value) in &samples {
        assert!(
            seen.insert((name.clone(), labels.clone())),
            "duplicate {name}{labels:?}"
        );
        assert!(!value.is_nan(), "NaN in {name}");
    }
    // Buckets cumulative and monotonic; +Inf equals _count.
    for (name, labels, count) in samples.iter().filter(|(n, _, _)| n.ends_with("_count")) {
        let base = name.trim_end_matches("_count");
        let mut buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|(n, l, _)| {
                *n == format!("{base}_bucket") && {
                    let mut l = l.clone();
                    l.remove("le");
                    l == *labels
                }
            })
            .map(|(_, l, v)| (l["le"].parse::<f64>().unwrap_or(f64::INFINITY), *v))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{base} buckets not cumulative"
        );
        assert_eq!(
            buckets.last().map(|b| (b.0, b.1)),
            Some((f64::INFINITY, *count)),
            "{base}: +Inf != _count"
        );
    }
    // The tricky names round-trip through escaping.
    assert!(
        samples
            .iter()
            .any(|(n, l, _)| n == "tasker_tasks_total" && l["task_name"] == TRICKY_TASK)
    );

    // Counters never decrease across two scrapes (with more work in between).
    workload(&telemetry);
    let second = parse_samples(&get(server.addr(), "/metrics", &[]).body);
    for (name, labels, value) in samples
        .iter()
        .filter(|(n, _, _)| n.ends_with("_total") || n.ends_with("_count"))
    {
        let later = second
            .iter()
            .find(|(n, l, _)| n == name && l == labels)
            .map(|s| s.2)
            .unwrap_or(0.0);
        assert!(
            later >= *value,
            "{name}{labels:?} went from {value} to {later}"
        );
    }
}

#[test]
fn a_real_prometheus_scrapes_exact_values_and_quantiles() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    workload(&telemetry);
    let server = MetricsServer::start(&telemetry, None, ([127, 0, 0, 1], 0).into()).unwrap();
    let prometheus = Prometheus::start(&[server.addr()], &[]);

    let up = query(&prometheus, "up{job=\"tasker\"}");
    assert_eq!(
        up[0]["value"][1], "1",
        "Prometheus scraped the endpoint: {up:?}"
    );

    let value = |result: &[serde_json::Value]| {
        result[0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    let completed = query(&prometheus, "tasker_tasks_total{status=\"completed\"}");
    assert_eq!(completed.len(), 1);
    assert_eq!(value(&completed), 2.0);
    assert_eq!(
        completed[0]["metric"]["task_name"], TRICKY_TASK,
        "label round-trips exactly"
    );
    assert_eq!(
        value(&query(&prometheus, "tasker_tasks_total{status=\"failed\"}")),
        1.0
    );
    assert_eq!(
        value(&query(&prometheus, "tasker_tasks_started_total")),
        3.0
    );
    let steps = query(
        &prometheus,
        "sum by (step_name, status) (tasker_steps_total)",
    );
    let by_status: BTreeMap<String, f64> = steps
        .iter()
        .map(|r| {
            assert_eq!(r["metric"]["step_name"], TRICKY_STEP);
            (
                r["metric"]["status"].as_str().unwrap().to_owned(),
                r["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_status,
        BTreeMap::from([("completed".to_owned(), 5.0), ("failed".to_owned(), 1.0)])
    );

    let median = value(&query(
        &prometheus,
        "histogram_quantile(0.5, sum by (le) (tasker_step_duration_seconds_bucket{status=\"completed\"}))",
    ));
    assert!(
        median > 0.05 && median <= 0.1,
        "median {median} outside the (0.05, 0.1] bucket holding 70 ms"
    );
}
