//! OTLP export to an HTTPS collector, configured as a deployment configures it (the
//! `OTEL_EXPORTER_OTLP_*` variables), checked on a real TLS receiver started by the test on
//! 127.0.0.1 with a CA the test generates: the custom CA is trusted and an unknown one refused
//! with a clear error, a client certificate is presented, headers and gzip arrive as sent, the
//! timeout is honoured, and no credential reaches a diagnostic.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::https_receiver::{Answer, HttpsReceiver, Pki};
use tasker_telemetry::scope::StepCounts;
use tasker_telemetry::spans::{SpanExportReport, SpanPipeline};
use tasker_telemetry::{Task, Telemetry, TelemetryConfig};
use tracing_subscriber::layer::SubscriberExt;

const WAIT: Duration = Duration::from_secs(20);

/// The configuration these variables make, as `with_env` would read them.
fn config(vars: &[(&str, String)]) -> TelemetryConfig {
    let vars: HashMap<&str, String> = vars.iter().cloned().collect();
    TelemetryConfig::default()
        .with_env_from(|name| vars.get(name).cloned())
        .unwrap()
}

/// One task with one step through a pipeline built from `config`; the shutdown's report and
/// how long the shutdown took.
fn export_one_task(config: &TelemetryConfig) -> (SpanExportReport, Duration) {
    let pipeline = SpanPipeline::new(config).unwrap();
    let telemetry = Telemetry::new(config.clone()).unwrap();
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    tracing::subscriber::with_default(subscriber, || {
        let task = Task::new(&telemetry, "tls-1", "checkout", serde_json::Value::Null);
        task.scope().start();
        let step = task.step("tls-1-1", "charge");
        step.scope().attempt(1).complete(&1);
        task.scope().complete(StepCounts {
            total: 1,
            completed: 1,
            ..Default::default()
        });
    });
    let started = Instant::now();
    let report = pipeline.shutdown();
    (report, started.elapsed())
}

fn server(pki: &Pki, client_ca: bool, answer: Answer) -> HttpsReceiver {
    let (cert, key) = pki.issue("server", &["localhost", "127.0.0.1"]);
    let ca = pki.ca_file();
    HttpsReceiver::start(&cert, &key, client_ca.then_some(ca.as_path()), answer)
}

#[test]
fn https_with_the_deployments_own_ca_carries_headers_and_gzip() {
    let pki = Pki::new("own-ca");
    let receiver = server(&pki, false, Answer::Status(200, ""));
    let config = config(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            receiver.base_url("127.0.0.1"),
        ),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            pki.ca_file().display().to_string(),
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k3y%2Cpart".into()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "x-api-key=traces-k3y,x-team=core".into(),
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip".into()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from-resource,deployment.environment=prod%20eu".into(),
        ),
        ("OTEL_SERVICE_NAME", "checkout-eu".into()),
    ]);
    let (report, _) = export_one_task(&config);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.exported, 2, "{report:?}");
    let requests = receiver.wait_for_requests(1, WAIT);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/traces");
    // The signal's own headers replace the shared ones, as the specification orders them.
    assert_eq!(request.header("x-api-key"), Some("traces-k3y"));
    assert_eq!(request.header("x-team"), Some("core"));
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    assert_ne!(request.raw_body, request.body, "the body came compressed");
    let spans = receiver.spans();
    let task = spans
        .iter()
        .find(|s| s.name == "tasker.task.execution")
        .unwrap_or_else(|| panic!("no task span decoded: {spans:#?}"));
    let step = spans
        .iter()
        .find(|s| s.name == "tasker.step.execution")
        .expect("step span");
    assert_eq!(step.parent_span_id, task.span_id);
    assert_eq!(step.trace_id, task.trace_id);
    // The resource: the variable's attributes, percent-decoded; OTEL_SERVICE_NAME wins.
    let attribute = |key: &str| {
        task.resource
            .get(key)
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    assert_eq!(
        attribute("deployment.environment").as_deref(),
        Some("prod eu")
    );
    assert_eq!(attribute("service.name").as_deref(), Some("checkout-eu"));
}

#[test]
fn the_sampler_variables_decide_what_is_exported() {
    let pki = Pki::new("sampler");
    let receiver = server(&pki, false, Answer::Status(200, ""));
    let vars = |sampler: &str, arg: &str| {
        config(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                receiver.base_url("localhost"),
            ),
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                pki.ca_file().display().to_string(),
            ),
            ("OTEL_TRACES_SAMPLER", sampler.into()),
            ("OTEL_TRACES_SAMPLER_ARG", arg.into()),
        ])
    };
    for (sampler, arg, exported) in [
        ("always_off", "1.0", 0),
        ("parentbased_traceidratio", "0.0", 0),
        ("traceidratio", "1.0", 2),
        ("always_on", "0.0", 2),
    ] {
        let (report, _) = export_one_task(&vars(sampler, arg));
        assert_eq!(report.exported, exported, "{sampler} {arg}: {report:?}");
    }
    let error = TelemetryConfig::default()
        .with_env_from(|name| (name == "OTEL_TRACES_SAMPLER").then(|| "jaeger_remote".to_owned()))
        .unwrap_err();
    assert_eq!(error.variable(), Some("OTEL_TRACES_SAMPLER"));
    assert!(
        error.to_string().contains("parentbased_always_on"),
        "{error}"
    );
}

#[test]
fn the_shared_headers_apply_when_the_signal_has_none() {
    let pki = Pki::new("shared-headers");
    let receiver = server(&pki, false, Answer::Status(200, ""));
    let config = config(&[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("{}/custom/path", receiver.base_url("localhost")),
        ),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            pki.ca_file().display().to_string(),
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k3y%2Cpart".into()),
    ]);
    let (report, _) = export_one_task(&config);
    assert!(report.is_clean(), "{report:?}");
    let requests = receiver.wait_for_requests(1, WAIT);
    assert_eq!(
        requests[0].path, "/custom/path",
        "a signal's endpoint is used verbatim"
    );
    assert_eq!(
        requests[0].header("x-api-key"),
        Some("k3y,part"),
        "percent-decoded"
    );
    assert_eq!(requests[0].header("content-encoding"), None);
}

#[test]
fn a_collector_whose_ca_is_not_trusted_is_refused_with_a_clear_error() {
    let pki = Pki::new("unknown-ca");
    let receiver = server(&pki, false, Answer::Status(200, ""));
    // No certificate configured: the system's roots and webpki's, which do not know this CA.
    let config = config(&[(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        receiver.base_url("127.0.0.1"),
    )]);
    let (report, _) = export_one_task(&config);
    assert_eq!(report.exported, 0, "{report:?}");
    assert!(!report.is_clean());
    let error = report.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("certificate") && error.contains("UnknownIssuer"),
        "the error says why: {error}"
    );
    assert!(receiver.wait_for_requests(1, Duration::ZERO).is_empty());
}

#[test]
fn a_client_certificate_is_presented_when_the_collector_requires_one() {
    let pki = Pki::new("mtls");
    let receiver = server(&pki, true, Answer::Status(200, ""));
    let (cert, key) = pki.issue("client", &["tasker-worker"]);
    let base = [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            receiver.base_url("localhost"),
        ),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            pki.ca_file().display().to_string(),
        ),
    ];
    // Without one, the collector refuses the handshake.
    let (report, _) = export_one_task(&config(&base));
    assert_eq!(report.exported, 0, "{report:?}");
    let mut with_identity = base.to_vec();
    with_identity.push((
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        cert.display().to_string(),
    ));
    with_identity.push(("OTEL_EXPORTER_OTLP_CLIENT_KEY", key.display().to_string()));
    let (report, _) = export_one_task(&config(&with_identity));
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.exported, 2);
}

#[test]
fn credentials_never_reach_a_diagnostic_and_the_collectors_answer_does() {
    let pki = Pki::new("credentials");
    let receiver = server(&pki, false, Answer::Status(401, "invalid API key"));
    let base = receiver
        .base_url("127.0.0.1")
        .replace("https://", "https://tenant:pa55word@");
    let config = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", base),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            pki.ca_file().display().to_string(),
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=s3cret-value".into(),
        ),
    ]);
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("pa55word") && !shown.contains("s3cret-value"),
        "{shown}"
    );
    let (report, _) = export_one_task(&config);
    assert_eq!(report.exported, 0, "{report:?}");
    let error = report.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("401") && error.contains("invalid API key"),
        "{error}"
    );
    let reported = format!("{report:?}");
    assert!(!reported.contains("pa55word"), "{reported}");
    assert!(!reported.contains("s3cret-value"), "{reported}");
    assert!(reported.contains("[FILTERED]@127.0.0.1"), "{reported}");
    // The URL's credentials went as basic authentication, the header as it was.
    let requests = receiver.wait_for_requests(1, WAIT);
    assert!(
        requests[0]
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic ")),
        "{:?}",
        requests[0].headers
    );
    assert_eq!(requests[0].header("x-api-key"), Some("s3cret-value"));
}

#[test]
fn an_export_that_gets_no_answer_ends_within_its_timeout() {
    let pki = Pki::new("timeout");
    let receiver = server(&pki, false, Answer::Never);
    let config = config(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            receiver.base_url("localhost"),
        ),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            pki.ca_file().display().to_string(),
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000".into()),
    ]);
    let (report, took) = export_one_task(&config);
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
    assert_eq!(report.exported, 0, "{report:?}");
    let error = report.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("timeout") || error.contains("timed out"),
        "{error}"
    );
    assert!(
        !receiver.wait_for_requests(1, WAIT).is_empty(),
        "the request did arrive"
    );
}

#[test]
fn metrics_go_over_https_gzipped() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use prost::Message;
    let pki = Pki::new("metrics");
    let receiver = server(&pki, false, Answer::Status(200, ""));
    let config = config(&[
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            format!("{}/v1/metrics", receiver.base_url("localhost")),
        ),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            pki.ca_file().display().to_string(),
        ),
        ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip".into()),
        (
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
            "x-api-key=metrics-k3y".into(),
        ),
        // Longer than the test: the one push is the one at stop.
        ("OTEL_METRIC_EXPORT_INTERVAL", "3600000".into()),
    ]);
    let telemetry = Telemetry::new(config).unwrap();
    let exporter = tasker_telemetry::export::OtlpMetricsExporter::from_config(&telemetry).unwrap();
    let report = exporter.stop();
    assert_eq!((report.exported, report.failed), (1, 0), "{report:?}");
    let requests = receiver.wait_for_requests(1, WAIT);
    assert_eq!(requests[0].header("content-encoding"), Some("gzip"));
    assert_eq!(requests[0].header("x-api-key"), Some("metrics-k3y"));
    let decoded = ExportMetricsServiceRequest::decode(requests[0].body.as_slice()).unwrap();
    assert!(!decoded.resource_metrics.is_empty());
}
