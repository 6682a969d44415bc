//! Pushing to a real Prometheus Pushgateway (the Debian package `prometheus-pushgateway`, started
//! here on 127.0.0.1): the values read back through the gateway's API and through a real
//! Prometheus scraping the gateway; PUT replacing the group and POST keeping other metrics; and a
//! gateway that is down counted, with the task itself unaffected.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::http_get::get;
use support::prometheus::{Prometheus, free_port, query_until, require};
use tasker_telemetry::export::{PushError, PushMethod, Pushgateway, push_at_task_end};
use tasker_telemetry::metrics::prometheus_text;
use tasker_telemetry::scope::{Failure, StepCounts};
use tasker_telemetry::{TaskScope, Telemetry};

/// A Pushgateway this test started, stopped by its pid when dropped.
struct Gateway {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn start() -> Self {
        let binary = require("prometheus-pushgateway");
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-pushgateway starts");
        let gateway = Self {
            child,
            addr: ([127, 0, 0, 1], port).into(),
        };
        // Ready once it answers its readiness endpoint (polled, bounded).
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(gateway.addr).is_err()
            || get(gateway.addr, "/-/ready", &[]).status != 200
        {
            assert!(Instant::now() < deadline, "the pushgateway did not start");
            std::thread::park_timeout(Duration::from_millis(50));
        }
        gateway
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The gateway's groups (`/api/v1/metrics`).
    fn groups(&self) -> Vec<serde_json::Value> {
        let answer = get(self.addr, "/api/v1/metrics", &[]);
        assert_eq!(answer.status, 200, "{}", answer.body);
        let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        body["data"].as_array().cloned().unwrap_or_default()
    }

    /// The group with exactly these grouping labels.
    fn group(&self, job: &str, instance: &str) -> Option<serde_json::Value> {
        self.groups().into_iter().find(|g| {
            g["labels"]["job"] == job
                && g["labels"]["instance"] == instance
                && g["labels"].as_object().map(|l| l.len()) == Some(2)
        })
    }
}

/// The value of `name{labels}` in a group, as the gateway's API gives it.
fn value(group: &serde_json::Value, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    group[name]["metrics"]
        .as_array()?
        .iter()
        .find(|m| labels.iter().all(|(k, v)| m["labels"][*k] == *v))
        .and_then(|m| m["value"].as_str()?.parse().ok())
}

/// `tasker_export_failures_total{plugin="pushgateway"}`, read off the exposition.
fn export_failures(telemetry: &Telemetry) -> f64 {
    prometheus_text(&telemetry.metrics().snapshot())
        .lines()
        .filter(|l| l.starts_with("tasker_export_failures_total{plugin=\"pushgateway\"}"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn run_tasks(telemetry: &Telemetry) {
    for (id, fails) in [("t1", false), ("t2", true), ("t3", false)] {
        let task = TaskScope::new(telemetry, id, "nightly_import");
        task.start();
        if fails {
            task.fail(
                &Failure::new("source gone", "SourceGone"),
                StepCounts::default(),
            );
        } else {
            task.complete(StepCounts::default());
        }
    }
}

#[test]
fn task_ends_are_pushed_and_read_back_through_the_gateway_and_prometheus() {
    let gateway = Gateway::start();
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let pushing = push_at_task_end(
        &telemetry,
        Pushgateway::new(&gateway.url(), "nightly_import")
            .unwrap()
            .with_instance("worker-3")
            .unwrap(),
    )
    .unwrap();
    run_tasks(&telemetry);
    let completed = [("task_name", "nightly_import"), ("status", "completed")];
    let failed = [("task_name", "nightly_import"), ("status", "failed")];
    let counts = |group: &serde_json::Value| {
        (
            value(group, "tasker_tasks_total", &completed),
            value(group, "tasker_tasks_total", &failed),
        )
    };
    // Pushed by the task ends themselves, before any final push (polled, bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let group = gateway.group("nightly_import", "worker-3");
        if group.as_ref().map(counts) == Some((Some(2.0), Some(1.0))) {
            assert!(group.unwrap()["push_time_seconds"].is_object());
            break;
        }
        assert!(Instant::now() < deadline, "task ends not pushed: {group:?}");
        std::thread::park_timeout(Duration::from_millis(50));
    }
    pushing.finish().unwrap();
    let group = gateway.group("nightly_import", "worker-3").unwrap();
    assert_eq!(counts(&group), (Some(2.0), Some(1.0)));
    assert_eq!(export_failures(&telemetry), 0.0);

    // A real Prometheus scraping the gateway, keeping the pushed job and instance.
    let prometheus = Prometheus::start(&[gateway.addr], &[]);
    let result = query_until(
        &prometheus,
        "tasker_tasks_total{job=\"nightly_import\",instance=\"worker-3\",status=\"completed\"}",
        |r| !r.is_empty(),
    );
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["value"][1], "2");
}

/// A telemetry holding one counter `name` at 1 (and the standard families).
fn with_counter(name: &str) -> Telemetry {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    telemetry
        .metrics()
        .counter(name, "A metric only one pusher has.", &[])
        .unwrap()
        .with(&[])
        .inc();
    telemetry
}

#[test]
fn put_replaces_the_group_and_post_replaces_only_metrics_of_the_same_name() {
    let gateway = Gateway::start();
    let a = with_counter("only_in_a_total");
    let b = with_counter("only_in_b_total");
    let group = |method| {
        Pushgateway::new(&gateway.url(), "batch")
            .unwrap()
            .with_instance("w1")
            .unwrap()
            .with_method(method)
    };
    let names = || {
        let group = gateway.group("batch", "w1").expect("the group");
        (
            group.get("only_in_a_total").is_some(),
            group.get("only_in_b_total").is_some(),
        )
    };
    group(PushMethod::Put)
        .push(&a.metrics().snapshot())
        .unwrap();
    assert_eq!(names(), (true, false));
    group(PushMethod::Post)
        .push(&b.metrics().snapshot())
        .unwrap();
    assert_eq!(names(), (true, true), "POST kept the other pusher's metric");
    group(PushMethod::Put)
        .push(&b.metrics().snapshot())
        .unwrap();
    assert_eq!(names(), (false, true), "PUT replaced the whole group");
    group(PushMethod::Put).delete().unwrap();
    assert!(gateway.group("batch", "w1").is_none());
}

#[test]
fn a_gateway_that_is_down_is_counted_and_the_tasks_are_unaffected() {
    let closed = free_port();
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let pushing = push_at_task_end(
        &telemetry,
        Pushgateway::new(
            &format!("http://pusher:hunter2@127.0.0.1:{closed}"),
            "nightly_import",
        )
        .unwrap()
        .with_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    run_tasks(&telemetry);
    let error = pushing.finish().unwrap_err();
    assert!(matches!(error, PushError::FinalPush(_)), "{error}");
    assert!(
        error.to_string().contains(&format!("127.0.0.1:{closed}")),
        "{error}"
    );
    // The gateway's credentials stay out of the error (and so out of the export_failed event
    // and the log line, which carry it).
    assert!(!error.to_string().contains("hunter2"), "{error}");
    // The final push at least failed and was counted; the tasks' own metrics are intact.
    assert!(export_failures(&telemetry) >= 1.0);
    let text = prometheus_text(&telemetry.metrics().snapshot());
    assert!(
        text.contains("tasker_tasks_total{task_name=\"nightly_import\",status=\"completed\"} 2")
    );
}

#[test]
fn bad_gateway_settings_are_typed_errors() {
    assert!(matches!(
        Pushgateway::new("127.0.0.1:9091", "job"),
        Err(PushError::Url(_))
    ));
    assert!(matches!(
        Pushgateway::new("http://", "job"),
        Err(PushError::Url(_))
    ));
    assert!(matches!(
        Pushgateway::new("http://127.0.0.1:9091", ""),
        Err(PushError::EmptyJob)
    ));
    let gateway = Pushgateway::new("http://127.0.0.1:9091", "job").unwrap();
    for bad in ["job", "__name", "1st", "with-dash", ""] {
        assert!(
            matches!(
                gateway.clone().with_label(bad, "x"),
                Err(PushError::Label(_))
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        gateway.with_instance("a").unwrap().with_instance("b"),
        Err(PushError::Label(_))
    ));
}
