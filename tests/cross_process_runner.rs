//! One trace across processes, through the runner: the `distributed_task` example's producer
//! creates the task and hands over its carrier; its worker, a separate process, runs the steps
//! with the workflow runner. On the OTLP receiver every step span from the worker is in the
//! producer's trace with the producer's task span as parent, and the JSON log lines of both
//! processes carry the same correlation id.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::otlp_receiver::Receiver;

const WAIT: Duration = Duration::from_secs(20);

fn correlation_ids(logs: &str) -> Vec<String> {
    logs.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("a JSON log line"))
        .filter_map(|v| v["correlation_id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_worker_process_runs_the_steps_inside_the_producers_trace() {
    let receiver = Receiver::start();
    let exe = env!("CARGO_BIN_EXE_distributed_task");

    let mut producer = Command::new(exe)
        .args(["producer", &receiver.endpoint()])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the producer starts");
    let mut stderr = BufReader::new(producer.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let carrier = line
        .trim_end()
        .strip_prefix("carrier: ")
        .unwrap_or_else(|| panic!("no carrier from the producer: {line:?}"))
        .to_owned();
    let carrier_map: serde_json::Value = serde_json::from_str(&carrier).unwrap();
    let correlation = carrier_map["x-correlation-id"].as_str().unwrap().to_owned();

    let worker = Command::new(exe)
        .args(["worker", &carrier, &receiver.endpoint()])
        .env_remove("RUST_LOG")
        .output()
        .expect("the worker runs");
    assert!(
        worker.status.success(),
        "worker failed: {}",
        String::from_utf8_lossy(&worker.stderr)
    );
    producer.stdin.take().unwrap().write_all(b"done\n").unwrap();
    let mut producer_logs = String::new();
    producer
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut producer_logs)
        .unwrap();
    assert!(producer.wait().unwrap().success(), "producer failed");

    let spans = receiver.wait_for_spans(3, WAIT);
    let tasks: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "tasker.task.execution")
        .collect();
    assert_eq!(tasks.len(), 1, "one task span, the producer's: {spans:#?}");
    let task = tasks[0];
    assert_eq!(
        task.resource.get("service.name").and_then(|v| v.as_str()),
        Some("order-api")
    );
    let steps: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "tasker.step.execution")
        .collect();
    assert_eq!(steps.len(), 2, "{spans:#?}");
    for step in steps {
        assert_eq!(step.trace_id, task.trace_id, "same trace: {step:#?}");
        assert_eq!(step.parent_span_id, task.span_id, "child of the task span");
        assert_eq!(
            step.resource.get("service.name").and_then(|v| v.as_str()),
            Some("order-worker")
        );
        assert_eq!(
            step.attr("tasker.correlation_id").and_then(|v| v.as_str()),
            Some(correlation.as_str())
        );
    }

    let worker_logs = String::from_utf8(worker.stdout).unwrap();
    for (process, logs) in [("producer", &producer_logs), ("worker", &worker_logs)] {
        let ids = correlation_ids(logs);
        assert!(
            !ids.is_empty(),
            "{process} logged no line with a correlation id:\n{logs}"
        );
        assert!(
            ids.iter().all(|id| *id == correlation),
            "{process} logged another correlation id than {correlation}:\n{logs}"
        );
    }
    // The worker's own log lines from inside process() carry it too.
    assert!(
        worker_logs.contains("parcel handed to the carrier"),
        "{worker_logs}"
    );
}
