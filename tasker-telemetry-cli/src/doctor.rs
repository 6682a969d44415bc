//! `doctor`: prints the effective configuration (Tasker's defaults, then the file, then the
//! environment; secrets masked) with where each value came from, then checks each OTLP endpoint
//! it names (DNS, connect, TLS handshake, and for spans a test export the collector must
//! accept) and, when given, a running service's metrics endpoint. Each failure is printed with
//! one diagnosis; the exit code says whether any check failed.

mod diagnosis;
mod probe;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tasker_telemetry::TelemetryConfig;
use tasker_telemetry::config::{
    EffectiveConfig, ExporterSettings, OtlpProtocol, Signal, TraceSampler,
};
use tasker_telemetry::operator::parse_duration;
use tasker_telemetry::spans::SpanPipeline;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::{Exit, Output};
use probe::Target;

/// `doctor [--config FILE] [--metrics-url URL] [--timeout DURATION]`.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// A `.toml` or `.json` configuration file, read before the environment (which wins).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A running service's metrics endpoint to scrape once
    /// (`http://127.0.0.1:9464/metrics`).
    #[arg(long, value_name = "URL")]
    metrics_url: Option<String>,
    /// How long each network step may take (`5s`, `500ms`).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    timeout: Duration,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// What became of one check.
enum Outcome {
    Passed(String),
    Skipped(String),
    Failed(String),
}

struct Check {
    name: String,
    outcome: Outcome,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.push(name, Outcome::Passed(detail.into()));
    }

    fn skip(&mut self, name: &str, why: impl Into<String>) {
        self.push(name, Outcome::Skipped(why.into()));
    }

    /// Records a failure; `None`, so that a caller can stop its steps with `?`.
    fn fail<T>(&mut self, name: &str, diagnosis: impl Into<String>) -> Option<T> {
        self.push(name, Outcome::Failed(diagnosis.into()));
        None
    }

    fn push(&mut self, name: &str, outcome: Outcome) {
        self.checks.push(Check {
            name: name.to_owned(),
            outcome,
        });
    }

    fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
            .count()
    }
}

pub(crate) fn run(args: &DoctorArgs, output: &mut Output<'_>) -> Exit {
    let effective = match EffectiveConfig::load(args.config.as_deref()) {
        Ok(effective) => effective,
        Err(error) => {
            let _ = writeln!(
                output.err,
                "tasker-telemetry doctor: the configuration is invalid: {error}"
            );
            return Exit::Config;
        }
    };
    let layers = match &args.config {
        Some(path) => format!(
            "Tasker's defaults, then {}, then the environment",
            path.display()
        ),
        None => "Tasker's defaults, then the environment".to_owned(),
    };
    let _ = writeln!(output.out, "Configuration ({layers}; secrets masked):");
    for line in effective.to_string().lines() {
        let _ = writeln!(output.out, "  {line}");
    }

    let mut report = Report::default();
    let config = &effective.config;
    // One set of network checks per collector: signals sent to the same origin, protocol and
    // TLS files share them.
    let mut collectors: Vec<(ExporterSettings, Vec<(Signal, &str)>)> = Vec::new();
    for (signal, label) in [
        (Signal::Traces, "spans"),
        (Signal::Metrics, "metrics"),
        (Signal::Logs, "logs"),
    ] {
        let Some(settings) = config.exporter_settings(signal) else {
            continue;
        };
        let same = |known: &ExporterSettings| {
            origin(&known.endpoint) == origin(&settings.endpoint)
                && known.protocol == settings.protocol
                && known.tls == settings.tls
        };
        match collectors.iter_mut().find(|(known, _)| same(known)) {
            Some((_, signals)) => signals.push((signal, label)),
            None => collectors.push((settings, vec![(signal, label)])),
        }
    }
    if collectors.is_empty() {
        report.skip(
            "OTLP",
            "no OTLP endpoint is set: spans stay in process (OTEL_EXPORTER_OTLP_ENDPOINT sets one)",
        );
    }
    for (settings, signals) in &collectors {
        check_otlp(config, settings, signals, args.timeout, &mut report);
    }
    match &args.metrics_url {
        Some(url) => check_scrape(config, url, args.timeout, &mut report),
        None => report.skip(
            "metrics endpoint",
            "pass --metrics-url http://HOST:PORT/metrics to scrape a running service once",
        ),
    }

    let _ = writeln!(output.out, "\nChecks:");
    for check in &report.checks {
        let (mark, text) = match &check.outcome {
            Outcome::Passed(t) => ("ok  ", t),
            Outcome::Skipped(t) => ("skip", t),
            Outcome::Failed(t) => ("FAIL", t),
        };
        let _ = writeln!(output.out, "  {mark}  {}: {text}", check.name);
    }
    let failures = report.failures();
    if failures == 0 {
        let _ = writeln!(output.out, "\nNo check failed.");
        Exit::Ok
    } else {
        let _ = writeln!(
            output.out,
            "\n{failures} check{} failed.",
            if failures == 1 { "" } else { "s" }
        );
        Exit::CheckFailed
    }
}

/// Resolves, connects and (for https) shakes hands with `url`'s host; `None` after a failure
/// (recorded in `report`).
fn reach(
    name: &str,
    url: &str,
    tls: impl FnOnce() -> Result<rustls::ClientConfig, String>,
    timeout: Duration,
    report: &mut Report,
) -> Option<Target> {
    let target = match Target::parse(url) {
        Ok(t) => t,
        Err(why) => return report.fail(name, format!("{url}: {why}")),
    };
    let addrs = match probe::resolve(&target) {
        Ok(addrs) => addrs,
        Err(e) => return report.fail(&format!("{name} DNS"), diagnosis::dns(&target, &e)),
    };
    report.pass(
        &format!("{name} DNS"),
        format!(
            "{} resolves to {}",
            target.host,
            addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let stream = match probe::connect(&addrs, timeout) {
        Ok(s) => s,
        Err(e) => {
            return report.fail(
                &format!("{name} connect"),
                diagnosis::connect(&target, &e, timeout),
            );
        }
    };
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "the host".to_owned(), |a| a.to_string());
    report.pass(&format!("{name} connect"), format!("connected to {peer}"));
    if !target.https {
        report.skip(&format!("{name} TLS"), "http://: no TLS");
        return Some(target);
    }
    let config = match tls() {
        Ok(c) => c,
        Err(why) => return report.fail(&format!("{name} TLS"), why),
    };
    match probe::handshake(stream, &target.host, config, timeout) {
        Ok(alpn) => {
            report.pass(
                &format!("{name} TLS"),
                format!(
                    "handshake completed, certificate valid for {}{}",
                    target.host,
                    alpn.map(|p| format!(", protocol {p}")).unwrap_or_default()
                ),
            );
            Some(target)
        }
        Err(e) => report.fail(&format!("{name} TLS"), diagnosis::tls(&target, &e, timeout)),
    }
}

/// `scheme://host:port` of a URL (the URL itself when it does not parse).
fn origin(url: &str) -> String {
    Target::parse(url).map_or_else(
        |_| url.to_owned(),
        |t| {
            format!(
                "{}://{}:{}",
                if t.https { "https" } else { "http" },
                t.host,
                t.port
            )
        },
    )
}

fn check_otlp(
    config: &TelemetryConfig,
    settings: &ExporterSettings,
    signals: &[(Signal, &str)],
    timeout: Duration,
    report: &mut Report,
) {
    let grpc = settings.protocol == OtlpProtocol::Grpc;
    let labels: Vec<&str> = signals.iter().map(|(_, l)| *l).collect();
    let name = format!(
        "OTLP {} ({}, {})",
        origin(&settings.endpoint),
        settings.protocol.as_str(),
        labels.join(", ")
    );
    let tls = || {
        let mut tls = settings.tls_client_config().map_err(|e| e.to_string())?;
        if grpc {
            tls.alpn_protocols = vec![b"h2".to_vec()];
        }
        Ok(tls)
    };
    if reach(&name, &settings.endpoint, tls, timeout, report).is_none() {
        return;
    }
    match config.exporter_settings(Signal::Traces) {
        Some(traces) if signals.iter().any(|(s, _)| *s == Signal::Traces) => {
            let target = Target::parse(&traces.endpoint).ok();
            if let Some(target) = target {
                // Named without the URL's credentials, as everywhere the URL is shown.
                let shown = format!("OTLP spans to {}{}", origin(&traces.endpoint), target.path);
                test_export(config, &shown, &target, grpc, report);
            }
        }
        _ => report.skip(
            &format!("{name} export"),
            "a test export is sent for spans only",
        ),
    }
}

/// Exports one span through the pipeline the service itself would build, and reads what became
/// of it.
fn test_export(
    config: &TelemetryConfig,
    name: &str,
    target: &Target,
    grpc: bool,
    report: &mut Report,
) {
    let check = format!("{name} export");
    let mut config = config.clone();
    // The test span must be sent whatever the service samples; and kept out of the store.
    config.trace_sampler = TraceSampler::AlwaysOn;
    config.span_store_tasks = 0;
    let pipeline = match SpanPipeline::new(&config) {
        Ok(p) => p,
        Err(e) => {
            report.fail::<()>(&check, e.to_string());
            return;
        }
    };
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _span = tracing::info_span!("tasker_telemetry.doctor").entered();
    });
    let result = pipeline.shutdown();
    if result.exported == 1 {
        report.pass(&check, "the collector accepted a test span");
    } else if let Some(error) = result.last_error {
        report.fail::<()>(&check, diagnosis::export(target, &error, grpc));
    } else {
        report.fail::<()>(
            &check,
            format!(
                "the test span was not exported ({} dropped) and no error was reported",
                result.dropped
            ),
        );
    }
}

fn check_scrape(config: &TelemetryConfig, url: &str, timeout: Duration, report: &mut Report) {
    let name = "metrics endpoint";
    let settings = config.exporter_settings_at(Signal::Metrics, url);
    let tls = || settings.tls_client_config().map_err(|e| e.to_string());
    let Some(target) = reach(name, url, tls, timeout, report) else {
        return;
    };
    let client = settings
        .tls_client_config()
        .map_err(|e| e.to_string())
        .and_then(|tls| {
            reqwest::blocking::Client::builder()
                .tls_backend_preconfigured(tls)
                .timeout(timeout)
                .build()
                .map_err(|e| e.to_string())
        });
    let client = match client {
        Ok(c) => c,
        Err(why) => {
            report.fail::<()>(&format!("{name} scrape"), why);
            return;
        }
    };
    let mut request = client.get(url);
    if let Some(token) = config
        .metrics_auth_token
        .as_deref()
        .filter(|_| config.metrics_auth_required)
    {
        request = request.bearer_auth(token);
    }
    let check = format!("{name} scrape");
    match request.send() {
        Ok(response) if response.status().is_success() => {
            let body = response.text().unwrap_or_default();
            let families = body
                .lines()
                .filter(|l| l.starts_with("# TYPE tasker_"))
                .count();
            if families > 0 {
                report.pass(&check, format!("{families} tasker_ metric families served"));
            } else {
                report.fail::<()>(
                    &check,
                    "the endpoint answers but serves no tasker_ metric: is it this service's metrics endpoint?",
                );
            }
        }
        Ok(response) => {
            report.fail::<()>(
                &check,
                diagnosis::scrape(
                    response.status().as_u16(),
                    &target,
                    &config.metrics_endpoint,
                ),
            );
        }
        Err(e) => {
            report.fail::<()>(&check, format!("the request failed: {e}"));
        }
    }
}
