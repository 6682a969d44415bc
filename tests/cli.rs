//! The `tasker-telemetry` command, run as the binary users install: each subcommand against a
//! local receiver (OTLP over http and https with a CA the test made, a metrics server, a real
//! Prometheus's promtool) and against a closed port; the exit codes the command documents.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::https_receiver::{Answer, HttpsReceiver, Pki};
use support::otlp_receiver::Receiver;
use support::prometheus::{TempDir, free_port, require};
use tasker_telemetry::http::MetricsServer;
use tasker_telemetry::{Telemetry, TelemetryConfig};

/// The command, with no telemetry setting inherited from the test's environment.
fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tasker-telemetry-cli-e2e"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("OTEL_") || name.starts_with("TASKER_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(command: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the command starts");
    Run {
        code: status.code().expect("exited, not killed"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

fn cli(args: &[&str]) -> Run {
    run(command().args(args))
}

/// The check lines of a doctor run.
fn checks(run: &Run) -> &str {
    run.stdout.split("\nChecks:\n").nth(1).unwrap_or_default()
}

// --- catalog ------------------------------------------------------------------------------------

#[test]
fn catalog_renders_text_markdown_and_json() {
    let json = cli(&["catalog", "--json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let catalog: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let events = catalog["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["name"] == "task.completed"));
    assert_eq!(
        events.len(),
        tasker_telemetry::catalog::events().len(),
        "the command's catalog is the runtime's"
    );
    // The installed command links no user handler, and says how to link them.
    assert_eq!(catalog["handlers"], serde_json::json!([]));
    let text = cli(&["catalog"]);
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("task.completed"), "{}", text.stdout);
    assert!(
        text.stdout.contains("tasker_telemetry_cli::main"),
        "{}",
        text.stdout
    );
    let markdown = cli(&["catalog", "--markdown"]);
    assert!(markdown.stdout.starts_with("# Tasker telemetry catalog"));
    assert!(markdown.stdout.contains("| `step.failed` |"));

    let both = cli(&["catalog", "--json", "--markdown"]);
    assert_eq!(both.code, 2, "conflicting flags are a usage error");
    assert!(both.stderr.contains("--markdown"), "{}", both.stderr);
    assert_eq!(cli(&["catalgo"]).code, 2);
}

#[test]
fn a_program_that_links_its_handlers_into_the_command_lists_them() {
    let example = support::examples::example_binary("telemetry_cli");
    let out = run(Command::new(example).args(["catalog", "--json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let catalog: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(catalog["handlers"][0]["name"], "charge_card");
    assert_eq!(catalog["handlers"][0]["objective"], 0.25);
    assert_eq!(catalog["subscribers"][0]["name"], "AuditLog");
}

// --- dashboards ---------------------------------------------------------------------------------

#[test]
fn dashboards_writes_files_promtool_accepts() {
    let dir = TempDir::new("tasker-cli-dashboards");
    let out = dir.0.join("artefacts");
    let written = cli(&[
        "dashboards",
        "--out",
        out.to_str().unwrap(),
        "--failure-ratio",
        "0.1",
        "--alert-for",
        "2m",
        "--objective",
        "process_payment=250ms",
    ]);
    assert_eq!(written.code, 0, "{}", written.stderr);
    let files: Vec<PathBuf> = written.stdout.lines().map(PathBuf::from).collect();
    assert_eq!(files.len(), 3, "{}", written.stdout);
    let rules: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yml"))
        .collect();
    let promtool = require("promtool");
    let checked = Command::new(promtool)
        .args(["check", "rules"])
        .args(&rules)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    let alerts =
        std::fs::read_to_string(out.join(tasker_telemetry::operator::ALERTING_RULES_FILE)).unwrap();
    assert!(alerts.contains("process_payment"), "{alerts}");
    assert!(alerts.contains("> 0.1"), "{alerts}");
    assert!(alerts.contains("for: \"120s\""), "{alerts}");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join(tasker_telemetry::operator::DASHBOARD_FILE)).unwrap(),
    )
    .unwrap();
    assert!(
        dashboard["panels"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );

    let bad = cli(&[
        "dashboards",
        "--out",
        out.to_str().unwrap(),
        "--objective",
        "pay=250",
    ]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("has no unit it knows"),
        "{}",
        bad.stderr
    );
    let ratio = cli(&[
        "dashboards",
        "--out",
        out.to_str().unwrap(),
        "--failure-ratio",
        "2",
    ]);
    assert_eq!(ratio.code, 2);
    assert!(
        ratio.stderr.contains("strictly between 0 and 1"),
        "{}",
        ratio.stderr
    );
    // A file where the directory should be.
    let file = dir.0.join("a-file");
    std::fs::write(&file, "").unwrap();
    let blocked = cli(&["dashboards", "--out", file.to_str().unwrap()]);
    assert_eq!(blocked.code, 4, "{}", blocked.stderr);
    assert!(
        blocked.stderr.contains("cannot write into"),
        "{}",
        blocked.stderr
    );
}

// --- scaffold -----------------------------------------------------------------------------------

/// The workspace's root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn scaffolded_subscribers_compile_and_receive_a_tasks_events() {
    let dir = TempDir::new("tasker-cli-scaffold");
    let krate = dir.0.join("scaffolded");
    let modules = krate.join("src/subscribers");
    for args in [
        vec![
            "order_audit",
            "--events",
            "task.completed,step.failed,workflow.viable_steps_discovered",
        ],
        vec!["OrderMetrics", "--metrics"],
        vec![
            "retry_watch",
            "--events",
            "observability.step.max_retries_reached",
            "--events",
            "step.retry_requested",
            "--metrics",
        ],
    ] {
        let mut full = vec!["scaffold", "subscriber"];
        full.extend(args);
        full.extend(["--out", modules.to_str().unwrap()]);
        let out = cli(&full);
        assert_eq!(out.code, 0, "{full:?}: {}", out.stderr);
        assert!(out.stdout.contains("subscribers"), "{}", out.stdout);
    }
    // Written as rustfmt writes it.
    for module in ["order_audit", "order_metrics", "retry_watch"] {
        let path = modules.join(format!("{module}.rs"));
        let fmt = Command::new("rustfmt")
            .args(["--edition", "2024", "--check"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            fmt.status.success(),
            "{}",
            String::from_utf8_lossy(&fmt.stdout)
        );
    }
    let again = cli(&[
        "scaffold",
        "subscriber",
        "order_audit",
        "--out",
        modules.to_str().unwrap(),
    ]);
    assert_eq!(
        again.code, 4,
        "an existing module is not replaced without --force"
    );
    let unknown = cli(&[
        "scaffold",
        "subscriber",
        "x",
        "--events",
        "task.complete",
        "--out",
        modules.to_str().unwrap(),
    ]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("did you mean \"task.completed\""),
        "{}",
        unknown.stderr
    );
    let keyword = cli(&[
        "scaffold",
        "subscriber",
        "mod",
        "--out",
        modules.to_str().unwrap(),
    ]);
    assert_eq!(keyword.code, 2);

    // A crate using the three modules: it must build with warnings denied, and run a task
    // whose events reach them.
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"scaffolded\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n[dependencies]\ntasker-telemetry = {{ path = {:?} }}\nserde_json = \"1\"\ntokio = {{ version = \"1\", features = [\"rt\", \"time\"] }}\n\n[workspace]\n",
            workspace().join("tasker-telemetry")
        ),
    )
    .unwrap();
    std::fs::write(
        modules.join("mod.rs"),
        "pub mod order_audit;\npub mod order_metrics;\npub mod retry_watch;\n",
    )
    .unwrap();
    std::fs::write(
        krate.join("src/main.rs"),
        r#"#![deny(warnings)]
mod subscribers;

use std::time::Duration;

use tasker_telemetry::workflow::{Backoff, StepDef, Workflow};
use tasker_telemetry::{StepError, Telemetry, TelemetryConfig, step_handler};

/// Fails both of its attempts: a retry, then max retries reached and a failed task.
struct Pay;

#[step_handler(retry_limit = 2)]
impl Pay {
    fn process(&self) -> Result<(), StepError> {
        Err(StepError::new("the gateway timed out").with_class("GatewayTimeout"))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let telemetry = Telemetry::new(TelemetryConfig::default())?;
    telemetry.publisher().subscribe_registered()?;
    let _metrics = subscribers::order_metrics::OrderMetrics::subscribe(&telemetry)?;
    let _retries = subscribers::retry_watch::RetryWatch::subscribe(&telemetry)?;
    let workflow = Workflow::builder("orders")
        .handler(Pay)
        .step(StepDef::new("pay").backoff(Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
            jitter: 0.0,
        }))
        .build()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let outcome = runtime.block_on(workflow.run(&telemetry, "t-1", serde_json::json!({})));
    assert!(!outcome.is_complete());
    print!("{}", tasker_telemetry::metrics::prometheus_text(&telemetry.metrics().snapshot()));
    Ok(())
}
"#,
    )
    .unwrap();
    std::fs::copy(workspace().join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    let built = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--offline", "--manifest-path"])
        .arg(krate.join("Cargo.toml"))
        // Its own target directory (under the workspace's, kept between runs): this test's
        // cargo may still hold the workspace's build lock.
        .env(
            "CARGO_TARGET_DIR",
            workspace().join("target/scaffold-check"),
        )
        .env_remove("RUSTFLAGS")
        // A throwaway build: without debuginfo it is a fraction of the disk (CI machines have
        // run out of it).
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .env("CARGO_INCREMENTAL", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&built.stdout);
    assert!(
        built.status.success(),
        "the scaffolded crate failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(
        stdout.contains(r#"order_metrics_events_total{event="step.failed",task_name="orders",step_name="pay"} 2"#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"order_metrics_errors_total{event="task.failed""#),
        "{stdout}"
    );
    assert!(
        stdout
            .contains(r#"retry_watch_events_total{event="observability.step.max_retries_reached""#),
        "{stdout}"
    );
}

// --- doctor -------------------------------------------------------------------------------------

#[test]
fn doctor_passes_against_a_receiver_that_accepts_and_the_span_arrives() {
    let receiver = Receiver::start();
    let out = run(command()
        .arg("doctor")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.base_url())
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20SEKRIT-TOKEN",
        )
        .env("OTEL_SERVICE_NAME", "billing"));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        checks(&out).contains("the collector accepted a test span"),
        "{}",
        out.stdout
    );
    // Where each value came from, with the secret masked.
    assert!(
        out.stdout.lines().any(|l| l.contains("service_name")
            && l.contains("\"billing\"")
            && l.ends_with("(env OTEL_SERVICE_NAME)")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("log_level") && l.ends_with("(default)"))
    );
    assert!(!out.stdout.contains("SEKRIT"), "{}", out.stdout);
    assert!(
        out.stdout.contains("authorization=[FILTERED]"),
        "{}",
        out.stdout
    );
    // The span reached the receiver, decoded off the wire, with the header.
    let spans = receiver.wait_for_spans(1, std::time::Duration::from_secs(10));
    assert_eq!(spans[0].name, "tasker_telemetry.doctor");
    assert_eq!(
        receiver.requests()[0].header("authorization"),
        Some("Bearer SEKRIT-TOKEN")
    );
}

#[test]
fn doctor_sends_its_test_span_over_grpc_and_tls_with_h2() {
    let pki = Pki::new("tasker-cli-doctor-grpc");
    let (cert, key) = pki.issue("collector", &["localhost"]);
    let collector = support::grpc_collector::GrpcCollector::start_tls(&cert, &key);
    let out = run(command()
        .arg("doctor")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint())
        .env("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.ca_file()));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(checks(&out).contains("protocol h2"), "{}", out.stdout);
    assert!(
        checks(&out).contains("the collector accepted a test span"),
        "{}",
        out.stdout
    );
    let spans = collector.wait_for_spans(1, std::time::Duration::from_secs(10));
    assert!(
        spans.iter().any(|s| s.0 == "tasker_telemetry.doctor"),
        "{spans:?}"
    );
}

#[test]
fn doctor_diagnoses_a_closed_port() {
    let port = free_port();
    let out = run(command().arg("doctor").env(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    ));
    assert_eq!(out.code, 1, "{}", out.stdout);
    let checks = checks(&out);
    assert!(
        checks.contains("FAIL")
            && checks.contains("connection refused: nothing listens on 127.0.0.1"),
        "{checks}"
    );
    assert_eq!(
        checks.matches("FAIL").count(),
        1,
        "one diagnosis per failure:\n{checks}"
    );
}

#[test]
fn doctor_diagnoses_a_name_that_does_not_resolve() {
    // A DNS label longer than 63 bytes: the resolver refuses it before sending any query, so
    // the test sends nothing off the machine (strace shows no packet to the name server).
    let host = format!("{}.invalid", "a".repeat(64));
    let out = run(command()
        .arg("doctor")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{host}:4318")));
    assert_eq!(out.code, 1, "{}", out.stdout);
    let checks = checks(&out);
    assert!(
        checks.contains(&format!("the host name \"{host}\" does not resolve")),
        "{checks}"
    );
    assert!(
        !checks.contains("connect:"),
        "no step after a failed one:\n{checks}"
    );
}

#[test]
fn doctor_diagnoses_401_and_a_wrong_path() {
    let receiver = Receiver::start_with_status(401);
    let out = run(command()
        .arg("doctor")
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.endpoint()));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        checks(&out).contains("refused the credentials"),
        "{}",
        out.stdout
    );
    assert!(
        checks(&out).contains("OTEL_EXPORTER_OTLP_HEADERS"),
        "{}",
        out.stdout
    );

    let receiver = Receiver::start();
    let wrong = format!("{}/otlp/v1/traces", receiver.base_url());
    let out = run(command()
        .arg("doctor")
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &wrong));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        checks(&out).contains("nothing is at /otlp/v1/traces (404)"),
        "{}",
        out.stdout
    );
}

#[test]
fn doctor_checks_tls_with_the_ca_it_is_given() {
    let pki = Pki::new("tasker-cli-doctor");
    let (cert, key) = pki.issue("server", &["localhost"]);
    let receiver = HttpsReceiver::start(&cert, &key, None, Answer::Status(200, ""));
    let url = receiver.base_url("localhost");

    // Without the CA: the certificate's issuer is unknown.
    let out = run(command()
        .arg("doctor")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &url));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        checks(&out).contains("not signed by a CA this process trusts"),
        "{}",
        out.stdout
    );
    assert!(checks(&out).contains("OTEL_EXPORTER_OTLP_CERTIFICATE"));

    // With it: the handshake and the export pass.
    let out = run(command()
        .arg("doctor")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &url)
        .env("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.ca_file()));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        checks(&out).contains("handshake completed"),
        "{}",
        out.stdout
    );
    assert!(
        checks(&out).contains("the collector accepted a test span"),
        "{}",
        out.stdout
    );

    // A name the certificate does not list.
    let out = run(command()
        .arg("doctor")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            receiver.base_url("127.0.0.1"),
        )
        .env("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.ca_file()));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        checks(&out).contains("is not issued for \"127.0.0.1\""),
        "{}",
        out.stdout
    );
}

#[test]
fn doctor_scrapes_a_metrics_endpoint_and_diagnoses_401_and_404() {
    let config = TelemetryConfig::builder()
        .metrics_auth_required(true)
        .metrics_auth_token("scrape-SEKRIT")
        .build()
        .unwrap();
    let telemetry = Telemetry::new(config).unwrap();
    let server = MetricsServer::local(&telemetry, None, 0).unwrap();
    let url = format!("http://{}/metrics", server.addr());

    let out = run(command().args(["doctor", "--metrics-url", &url]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        checks(&out).contains("wants a bearer token"),
        "{}",
        out.stdout
    );

    let out = run(command()
        .args(["doctor", "--metrics-url", &url])
        .env("TASKER_METRICS_AUTH_REQUIRED", "true")
        .env("TASKER_METRICS_AUTH_TOKEN", "scrape-SEKRIT"));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        checks(&out).contains("tasker_ metric families served"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("scrape-SEKRIT"));

    let wrong = format!("http://{}/metricz", server.addr());
    let out = run(command()
        .args(["doctor", "--metrics-url", &wrong])
        .env("TASKER_METRICS_AUTH_REQUIRED", "true")
        .env("TASKER_METRICS_AUTH_TOKEN", "scrape-SEKRIT"));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        checks(&out).contains("nothing is at /metricz (404)"),
        "{}",
        out.stdout
    );

    let closed = format!("http://127.0.0.1:{}/metrics", free_port());
    let out = run(command().args(["doctor", "--metrics-url", &closed]));
    assert_eq!(out.code, 1);
    assert!(
        checks(&out).contains("connection refused"),
        "{}",
        out.stdout
    );
}

#[test]
fn doctor_blames_file_and_environment_and_refuses_a_bad_configuration_with_exit_3() {
    let dir = TempDir::new("tasker-cli-config");
    let file = dir.0.join("telemetry.toml");
    std::fs::write(
        &file,
        "service_name = \"from-file\"\nmax_concurrent_steps = 8\n",
    )
    .unwrap();
    let out = run(command()
        .args(["doctor", "--config", file.to_str().unwrap()])
        .env("OTEL_SERVICE_NAME", "from-env"));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let line = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{}", out.stdout))
            .to_owned()
    };
    assert!(
        line("service_name").ends_with("(env OTEL_SERVICE_NAME)"),
        "{}",
        line("service_name")
    );
    assert!(line("max_concurrent_steps").ends_with(&format!("(file {})", file.display())));

    std::fs::write(&file, "max_concurrent_steps = 0\n").unwrap();
    let bad = cli(&["doctor", "--config", file.to_str().unwrap()]);
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("max_concurrent_steps"),
        "{}",
        bad.stderr
    );
    let env = run(command()
        .arg("doctor")
        .env("TASKER_SPAN_STORE_TASKS", "1000000"));
    assert_eq!(env.code, 3);
    assert!(
        env.stderr.contains("TASKER_SPAN_STORE_TASKS"),
        "{}",
        env.stderr
    );
}
