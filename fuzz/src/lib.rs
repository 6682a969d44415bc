//! The fuzz targets of tasker-telemetry, as plain functions of arbitrary bytes.
//!
//! Each function decodes its bytes into inputs for one untrusted-input surface of the crate and
//! panics only when that surface breaks a property (a panic inside the crate is one such break).
//! The cargo-fuzz binaries in `fuzz/fuzz_targets/` call them under libFuzzer; the stable test
//! `tests/fuzz_replay.rs` compiles this same file and replays the committed corpus
//! (`fuzz/corpus/<target>/`) through them, so CI runs every input the fuzzer kept.
//!
//! Inputs are split into fields at `0xFF` bytes (a byte UTF-8 never uses), each field read as
//! UTF-8 with invalid sequences replaced, so every input reaches the code under test.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tasker_telemetry::config::ConfigError;
use tasker_telemetry::correlation::{self, CorrelationId, CorrelationIdError};
use tasker_telemetry::filter::{FilterError, FilterRule, ParameterFilter};
use tasker_telemetry::http::{MetricsServer, ServerOptions};
use tasker_telemetry::metrics::{self, MetricsRegistry};
use tasker_telemetry::spans::{self, TraceContext, TraceContextError};
use tasker_telemetry::{Telemetry, TelemetryConfig};

/// A target: arbitrary bytes in, a panic when a property breaks.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory and cargo-fuzz binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("filter", filter),
    ("trace_context", trace_context),
    ("config", config),
    ("prometheus_labels", prometheus_labels),
    ("http_request", http_request),
];

/// The input's fields: split at `0xFF`, each decoded as lossy UTF-8. Never empty.
fn fields(data: &[u8]) -> Vec<String> {
    data.split(|b| *b == 0xFF)
        .map(|field| String::from_utf8_lossy(field).into_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// (a) The sensitive-data filter.

/// Data to filter when the input's JSON field does not parse: every shape the filter walks.
fn sample_payload() -> Value {
    json!({
        "password": "hunter2",
        "user": {"email": "ada@example.com", "name": "Ada", "cards": [{"number": "4111", "cvv": 123}]},
        "items": [[{"api_key": "k"}], 3, null],
        "a.b": {"c": "dotted key"},
        "": {"": "empty keys"},
        "Token": ["x", {"nested": true}],
    })
}

/// Fields: rules (one per line), mask, JSON value, then flat keys for `filter_field`.
///
/// Properties: rule lists are either accepted or refused with the [`FilterError`] that names the
/// first bad rule, never a panic; an accepted filter masks exactly the values whose path
/// [`ParameterFilter::is_sensitive_path`] calls sensitive and leaves everything else (structure,
/// key order, scalars) untouched; `filter_in_place` agrees with `filtered`; filtering twice
/// changes nothing; `filter_field` agrees with the key and path predicates. The lenient
/// [`ParameterFilter::from_rules`] (no validation) keeps the same properties.
pub fn filter(data: &[u8]) {
    let fields = fields(data);
    let rules: Vec<&str> = fields[0].split('\n').collect();
    let mask = fields.get(1).map_or("[FILTERED]", String::as_str);
    let value = fields
        .get(2)
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .unwrap_or_else(sample_payload);
    let keys: Vec<&str> = fields.iter().skip(3).map(String::as_str).collect();

    match ParameterFilter::new(&rules, mask) {
        Ok(filter) => {
            assert!(!mask.is_empty(), "an empty mask was accepted");
            assert_eq!(filter.mask(), mask);
            check_filter(&filter, &value, &keys);
        }
        Err(error) => check_filter_error(&error, &rules, mask),
    }

    let raw_rules = rules
        .iter()
        .map(|rule| {
            if rule.contains('.') {
                FilterRule::Path(rule.split('.').map(str::to_owned).collect())
            } else {
                FilterRule::KeySubstring((*rule).to_owned())
            }
        })
        .collect();
    let lenient = ParameterFilter::from_rules(raw_rules, mask);
    assert!(!lenient.mask().is_empty(), "from_rules kept an empty mask");
    check_filter(&lenient, &value, &keys);
}

fn check_filter_error(error: &FilterError, rules: &[&str], mask: &str) {
    assert!(!error.to_string().is_empty());
    if mask.is_empty() {
        assert_eq!(*error, FilterError::EmptyMask, "the mask is checked first");
        return;
    }
    let position = |rule: &str| {
        rules
            .iter()
            .position(|r| *r == rule)
            .unwrap_or_else(|| panic!("error names a rule {rule:?} that was not given"))
    };
    let index = match error {
        FilterError::EmptyRule { index } => {
            assert!(rules[*index].trim().is_empty(), "{error}");
            *index
        }
        FilterError::EmptyPathSegment { rule } => {
            assert!(rule.split('.').any(str::is_empty), "{error}");
            position(rule)
        }
        FilterError::InvalidRegex { rule, .. } => {
            assert!(rule.starts_with('/'), "{error}");
            position(rule)
        }
        other => panic!("unexpected filter error {other:?}"),
    };
    // The first bad rule is reported, so every rule before it is valid on its own.
    for (i, rule) in rules[..index].iter().enumerate() {
        assert!(
            ParameterFilter::new([rule], mask).is_ok(),
            "rule #{i} {rule:?} is bad, but #{index} was reported: {error}"
        );
    }
}

fn check_filter(filter: &ParameterFilter, value: &Value, keys: &[&str]) {
    let out = filter.filtered(value);
    let mut in_place = value.clone();
    filter.filter_in_place(&mut in_place);
    assert_eq!(in_place, out, "filter_in_place and filtered disagree");
    assert_eq!(
        filter.filtered(&out),
        out,
        "filtering twice changed the result"
    );
    let masked = Value::String(filter.mask().to_owned());
    compare_filtered(filter, value, &out, &mut Vec::new(), &masked);

    for key in keys {
        let sensitive = filter.is_sensitive_key(key)
            || (key.contains('.') && filter.is_sensitive_path(&key.split('.').collect::<Vec<_>>()));
        let shown = filter.filter_field(key, "plain value");
        if sensitive {
            assert_eq!(shown, filter.mask(), "sensitive field {key:?} not masked");
        } else {
            assert_eq!(shown, "plain value", "field {key:?} masked");
        }
    }
}

/// Walks the original and the filtered value together: a value is masked exactly when its path
/// is sensitive (nothing below a masked value is visited), texts elsewhere are scrubbed, and
/// everything else is unchanged.
fn compare_filtered<'a>(
    filter: &ParameterFilter,
    original: &'a Value,
    filtered: &Value,
    path: &mut Vec<&'a str>,
    masked: &Value,
) {
    match (original, filtered) {
        (Value::Object(before), Value::Object(after)) => {
            assert!(before.keys().eq(after.keys()), "keys changed at {path:?}");
            for ((key, child), out) in before.iter().zip(after.values()) {
                path.push(key);
                if filter.is_sensitive_path(path) {
                    assert_eq!(out, masked, "sensitive {path:?} not masked");
                } else {
                    compare_filtered(filter, child, out, path, masked);
                }
                path.pop();
            }
        }
        (Value::Array(before), Value::Array(after)) => {
            assert_eq!(before.len(), after.len(), "array changed at {path:?}");
            for (child, out) in before.iter().zip(after) {
                compare_filtered(filter, child, out, path, masked);
            }
        }
        // Text is scrubbed of the secrets value detection finds (tested on its own in the
        // runtime's unit tests and tests/secrets_property.rs); the key rules leave it alone.
        (Value::String(before), after) => assert_eq!(
            after,
            &Value::String(filter.scrub(before).into_owned()),
            "{path:?} changed but is not sensitive"
        ),
        (before, after) => assert_eq!(before, after, "{path:?} changed but is not sensitive"),
    }
}

// ---------------------------------------------------------------------------------------------
// (b) W3C trace context and correlation ids.

/// The W3C Trace Context rules for `traceparent` (§3.2), written independently of the parser:
/// `version-traceid-parentid-flags`, lower-case hex of 2, 32, 16 and 2 digits; version `ff`
/// invalid; version `00` exactly four fields, later versions may append `-`fields; all-zero ids
/// invalid. Surrounding whitespace is ignored, as HTTP ignores it around a header value.
fn w3c_traceparent(value: &str) -> Option<(&str, &str, u8)> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let lower_hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let [version, trace, span, flags, rest @ ..] = parts.as_slice() else {
        return None;
    };
    let well_formed = lower_hex(version, 2)
        && lower_hex(trace, 32)
        && lower_hex(span, 16)
        && lower_hex(flags, 2)
        && *version != "ff"
        && (*version != "00" || rest.is_empty())
        && trace.bytes().any(|b| b != b'0')
        && span.bytes().any(|b| b != b'0');
    well_formed.then(|| (*trace, *span, u8::from_str_radix(flags, 16).unwrap_or(0)))
}

/// The correlation id rule, written independently: 1 to 100 characters of
/// `[A-Za-z0-9][A-Za-z0-9_-]*`.
fn valid_correlation_id(value: &str) -> bool {
    let mut bytes = value.bytes();
    value.len() <= correlation::MAX_LEN
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Error messages quote at most a clipped part of the input (128 characters for trace context,
/// 100 for correlation ids): a 4 KB header never comes back whole in a log line.
const MAX_ERROR_MESSAGE_BYTES: usize = 128 * 10 + 300;

/// Fields: traceparent, tracestate, correlation id, and the header name to carry the id under.
///
/// Properties: `TraceContext::parse` accepts exactly what the W3C rules accept (a rejection of a
/// valid traceparent must be the tracestate's fault), keeps the ids, reduces the flags to the
/// sampled bit, re-parses its own output, round-trips through headers and carriers of any name
/// case, and counts every rejection; errors quote a clipped value. `CorrelationId::parse`
/// accepts exactly the documented ids; `accept_or_generate` keeps a valid id and replaces (and
/// counts) anything else with a fresh valid one; a carrier under any name case gives the same.
pub fn trace_context(data: &[u8]) {
    let fields = fields(data);
    let traceparent = fields[0].as_str();
    let tracestate = fields.get(1).map(String::as_str);

    let rejected_before = spans::rejected_traceparents();
    let parsed = TraceContext::parse(traceparent, tracestate);
    let expected = w3c_traceparent(traceparent);
    match &parsed {
        Ok(context) => {
            let (trace, span, flags) =
                expected.unwrap_or_else(|| panic!("accepted {traceparent:?}, which W3C rejects"));
            assert_eq!(context.trace_id(), trace);
            assert_eq!(context.span_id(), span);
            assert_eq!(context.is_sampled(), flags & 1 == 1);
            let rendered = context.traceparent();
            assert_eq!(rendered, format!("00-{trace}-{span}-{:02x}", flags & 1));
            let state = context
                .headers()
                .into_iter()
                .find(|(name, _)| *name == spans::TRACESTATE)
                .map(|(_, value)| value);
            assert_eq!(
                TraceContext::parse(&rendered, state.as_deref()).as_ref(),
                Ok(context),
                "a context does not re-parse its own headers"
            );
            let mut carrier = HashMap::new();
            context.inject(&mut carrier);
            let shouted: HashMap<String, String> = carrier
                .into_iter()
                .map(|(k, v)| (k.to_ascii_uppercase(), v))
                .collect();
            assert_eq!(
                TraceContext::extract(&shouted).as_ref(),
                Ok(&Some(context.clone())),
                "an upper-case carrier loses the context"
            );
        }
        Err(error) => {
            if expected.is_some() {
                assert!(
                    matches!(error, TraceContextError::InvalidTraceState { .. }),
                    "rejected {traceparent:?}, which W3C accepts: {error}"
                );
            }
            assert!(
                spans::rejected_traceparents() > rejected_before,
                "rejection not counted"
            );
            assert!(
                error.to_string().len() <= MAX_ERROR_MESSAGE_BYTES,
                "error message not clipped: {} bytes",
                error.to_string().len()
            );
        }
    }
    let mut headers = vec![("TraceParent", traceparent)];
    if let Some(state) = tracestate {
        headers.push(("TRACESTATE", state));
    }
    assert_eq!(
        TraceContext::from_headers(headers).map(|c| c.is_some()),
        parsed.as_ref().map(|_| true).map_err(Clone::clone),
        "from_headers and parse disagree"
    );

    let incoming = fields.get(2).map_or(traceparent, String::as_str);
    let valid = valid_correlation_id(incoming);
    match CorrelationId::parse(incoming) {
        Ok(id) => {
            assert!(valid, "accepted correlation id {incoming:?}");
            assert_eq!(id.as_str(), incoming);
        }
        Err(error) => {
            assert!(
                !valid,
                "rejected valid correlation id {incoming:?}: {error}"
            );
            if let CorrelationIdError::Length { len } = error {
                assert_eq!(len, incoming.chars().count());
            }
            assert!(error.to_string().len() <= MAX_ERROR_MESSAGE_BYTES);
        }
    }
    let rejected_before = correlation::rejected_correlation_ids();
    let accepted = CorrelationId::accept_or_generate(Some(incoming));
    if valid {
        assert_eq!(accepted.as_str(), incoming);
    } else {
        assert!(accepted.as_str().starts_with("tsk_"), "{accepted:?}");
        assert!(CorrelationId::parse(accepted.as_str()).is_ok());
        assert!(correlation::rejected_correlation_ids() > rejected_before);
    }
    let header = fields.get(3).map_or("x-CORRELATION-id", String::as_str);
    if header.eq_ignore_ascii_case(correlation::CORRELATION_ID_HEADER) {
        let carrier = HashMap::from([(header.to_owned(), incoming.to_owned())]);
        let extracted = CorrelationId::extract(&carrier, correlation::CORRELATION_ID_HEADER);
        assert_eq!(extracted.as_str() == incoming, valid, "{extracted:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// (c) Configuration files and environment.

const TOKEN_FIELD: &str = "metrics_auth_token";

/// A token worth looking for in output: long, free of whitespace, mixing letters and digits (so
/// no fixed message text contains it), and absent from everything else in `elsewhere`.
fn distinctive_token(token: &str, elsewhere: &str) -> bool {
    token.chars().count() >= 8
        && !token.chars().any(char::is_whitespace)
        && token.chars().any(|c| c.is_ascii_digit())
        && token.chars().any(char::is_alphabetic)
        && !elsewhere.contains(token)
}

/// The document's `metrics_auth_token`, when it parses as a generic TOML table or JSON object
/// and the token is distinctive.
fn declared_token(text: &str, json: bool) -> Option<String> {
    let (token, rest) = if json {
        let mut object: serde_json::Map<String, Value> = serde_json::from_str(text).ok()?;
        let token = object.remove(TOKEN_FIELD)?.as_str()?.to_owned();
        (token, format!("{object:?}"))
    } else {
        let mut table: toml::Table = toml::from_str(text).ok()?;
        let token = table.remove(TOKEN_FIELD)?.as_str()?.to_owned();
        (token, format!("{table:?}"))
    };
    distinctive_token(&token, &rest).then_some(token)
}

fn assert_hidden(token: &str, shown: &str, what: &str) {
    assert!(
        !shown.contains(token),
        "{what} shows the auth token: {shown}"
    );
}

/// First byte: even for TOML, odd for JSON. Fields: the document, then `NAME=value` lines for
/// the environment.
///
/// Properties: parsing returns a configuration or a typed error, never a panic; an accepted
/// configuration validates, builds its filter, and survives a JSON round trip unchanged; the
/// auth token never appears in `Debug` output or in any error, from a file or from
/// `TASKER_METRICS_AUTH_TOKEN`; environment overrides either give a valid configuration or an
/// error naming the variable.
pub fn config(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let json = selector & 1 == 1;
    let fields = fields(rest);
    let text = fields[0].as_str();
    let env: Vec<(String, String)> = fields
        .get(1)
        .map(|lines| {
            lines
                .lines()
                .filter_map(|line| line.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();

    let parsed = if json {
        TelemetryConfig::from_json_str(text)
    } else {
        TelemetryConfig::from_toml_str(text)
    };
    let token = declared_token(text, json);
    let config = match parsed {
        Ok(config) => config,
        Err(error) => {
            if let Some(token) = &token {
                assert_hidden(token, &error.to_string(), "a parse error");
                assert_hidden(token, &format!("{error:?}"), "a parse error's Debug");
            }
            return;
        }
    };
    config
        .validate()
        .expect("an accepted configuration validates");
    config
        .parameter_filter()
        .expect("an accepted configuration builds its filter");
    let serialized = serde_json::to_string(&config).expect("a configuration serializes");
    assert_eq!(
        TelemetryConfig::from_json_str(&serialized).as_ref(),
        Ok(&config),
        "JSON round trip changed the configuration"
    );
    if let Some(token) = &config.metrics_auth_token {
        let mut without = config.clone();
        without.metrics_auth_token = None;
        if distinctive_token(token, &format!("{without:?}")) {
            assert_hidden(token, &format!("{config:?}"), "Debug");
        }
    }

    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let env_token = lookup("TASKER_METRICS_AUTH_TOKEN");
    match config.clone().with_env_from(lookup) {
        Ok(overridden) => overridden
            .validate()
            .expect("environment overrides give a valid configuration"),
        Err(error) => {
            match &error {
                ConfigError::Env { variable, .. } => assert!(
                    env.iter().any(|(k, _)| k == variable),
                    "error blames unset variable {variable}"
                ),
                ConfigError::Invalid { .. } => {}
                other => panic!("unexpected error from the environment: {other:?}"),
            }
            let others: String = env
                .iter()
                .filter(|(k, _)| k != "TASKER_METRICS_AUTH_TOKEN")
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect();
            if let Some(token) = env_token
                .as_deref()
                .filter(|t| distinctive_token(t, &format!("{others}{config:?}")))
            {
                assert_hidden(token, &error.to_string(), "an environment error");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (d) Prometheus / OpenMetrics label escaping.

/// What the registry was given: counter totals by (a, b, c), the last gauge value and the
/// histogram count by a.
#[derive(Debug, Default)]
pub struct Recorded {
    help: String,
    counters: BTreeMap<Vec<String>, f64>,
    gauges: BTreeMap<String, f64>,
    histograms: BTreeMap<String, f64>,
}

/// Records the input's label values in a fresh registry and returns its snapshot and what was
/// recorded. Fields: help text, then label values, three per counter series (a, b, c); the
/// first of each three also labels a gauge and a histogram series.
fn record_labels(data: &[u8]) -> (metrics::MetricsSnapshot, Recorded) {
    let fields = fields(data);
    let help = fields[0].clone();
    let values: &[String] = if fields.len() > 1 {
        &fields[1..]
    } else {
        &[String::new()]
    };
    let registry = MetricsRegistry::new();
    let counter = registry
        .counter("fuzz_labels_total", &help, &["a", "b", "c"])
        .expect("valid counter");
    let gauge = registry
        .gauge("fuzz_level", &help, &["a"])
        .expect("valid gauge");
    let histogram = registry
        .histogram(
            "fuzz_wait_seconds",
            &help,
            Some("seconds"),
            &["a"],
            Some(&[0.5, 1.0]),
        )
        .expect("valid histogram");
    let mut recorded = Recorded {
        help: help.clone(),
        ..Recorded::default()
    };
    // The registry's rule: a label set with a value too long, or equal to the marker, is the
    // family's overflow series (every label the marker).
    let series_of = |labels: &[&str]| -> Vec<String> {
        let refused = labels.iter().any(|v| {
            v.len() > metrics::MAX_LABEL_VALUE_BYTES || *v == metrics::OVERFLOW_LABEL_VALUE
        });
        labels
            .iter()
            .map(|v| {
                if refused {
                    metrics::OVERFLOW_LABEL_VALUE.to_owned()
                } else {
                    (*v).to_owned()
                }
            })
            .collect()
    };
    for (i, chunk) in values.chunks(3).enumerate() {
        let mut labels: Vec<&str> = chunk.iter().map(String::as_str).collect();
        labels.resize(3, "");
        let n = i as u64 + 1;
        counter.with(&labels).inc_by(n);
        *recorded.counters.entry(series_of(&labels)).or_default() += n as f64;
        let first = series_of(&labels[..1]).remove(0);
        gauge.with(&labels[..1]).set(i as f64);
        recorded.gauges.insert(first.clone(), i as f64);
        histogram.with(&labels[..1]).observe(i as f64 * 0.25);
        *recorded.histograms.entry(first).or_default() += 1.0;
    }
    let mut snapshot = registry.snapshot();
    // A family without samples (the registry's overflow counter, before any overflow) is valid
    // exposition, but the oracle parser wants a sample in every family; promtool checks the
    // full text in tests/fuzz_replay.rs.
    snapshot.families.retain(|family| !family.series.is_empty());
    (snapshot, recorded)
}

/// What [`prometheus_labels`] records for this input.
pub fn recorded_labels(data: &[u8]) -> Recorded {
    record_labels(data).1
}

/// The Prometheus text the registry renders for this input (for `promtool check metrics`).
pub fn prometheus_labels_text(data: &[u8]) -> String {
    metrics::prometheus_text(&record_labels(data).0)
}

/// Fields as [`record_labels`] reads them.
///
/// Property: the Prometheus text and the OpenMetrics text the registry renders both parse with
/// an independent parser (the `nom-openmetrics` crate), and every parsed label value, sample
/// value and help text equals what was recorded: escaping loses nothing, whatever the bytes.
pub fn prometheus_labels(data: &[u8]) {
    let (snapshot, recorded) = record_labels(data);
    check_exposition(&metrics::prometheus_text(&snapshot), false, &recorded);
    check_exposition(&metrics::openmetrics_text(&snapshot), true, &recorded);
}

/// Parses `text` (OpenMetrics when `openmetrics`) and compares it with `recorded`.
pub fn check_exposition(text: &str, openmetrics: bool, recorded: &Recorded) {
    let parsed = if openmetrics {
        nom_openmetrics::parser::openmetrics(text)
    } else {
        nom_openmetrics::parser::prometheus(text)
    };
    let families = match parsed {
        Ok((_, families)) => families,
        Err(error) => panic!("the exposition does not parse: {error:?}\n{text}"),
    };
    let mut counters = BTreeMap::new();
    let mut gauges = BTreeMap::new();
    let mut histograms = BTreeMap::new();
    let mut helps = Vec::new();
    for family in &families {
        for descriptor in &family.descriptors {
            if let nom_openmetrics::MetricDescriptor::Help { metric, help } = descriptor {
                helps.push((*metric, help.clone()));
            }
        }
        for sample in &family.samples {
            let label = |name: &str| {
                sample
                    .labels()
                    .iter()
                    .find(|l| l.name == name)
                    .map(|l| l.value.clone())
                    .unwrap_or_else(|| panic!("{} lacks label {name}", sample.name()))
            };
            match sample.name() {
                "fuzz_labels_total" => {
                    let key = vec![label("a"), label("b"), label("c")];
                    assert!(
                        counters.insert(key, sample.number()).is_none(),
                        "duplicate series"
                    );
                }
                "fuzz_level" => {
                    gauges.insert(label("a"), sample.number());
                }
                "fuzz_wait_seconds_count" => {
                    histograms.insert(label("a"), sample.number());
                }
                "fuzz_wait_seconds_bucket" => {
                    let le = label("le");
                    assert!(
                        ["0.5", "1", "1.0", "+Inf"].contains(&le.as_str()),
                        "bucket bound {le:?}"
                    );
                }
                "fuzz_wait_seconds_sum" => {}
                // What the registry reports when a label set overflowed.
                name if name.starts_with("tasker_metrics_overflow") => {}
                other => panic!("unexpected sample {other:?}"),
            }
        }
    }
    assert_eq!(counters, recorded.counters, "counter label values changed");
    assert_eq!(gauges, recorded.gauges, "gauge label values changed");
    assert_eq!(
        histograms, recorded.histograms,
        "histogram label values changed"
    );
    let counter_family = if openmetrics {
        "fuzz_labels"
    } else {
        "fuzz_labels_total"
    };
    for family in [counter_family, "fuzz_level", "fuzz_wait_seconds"] {
        let help = helps
            .iter()
            .find(|(metric, _)| *metric == family)
            .unwrap_or_else(|| panic!("no HELP for {family}"));
        assert_eq!(help.1, recorded.help, "help text of {family} changed");
    }
}

// ---------------------------------------------------------------------------------------------
// (e) HTTP requests to the metrics server.

/// The bearer token the fuzzed server demands.
pub const HTTP_TOKEN: &str = "fuzz-token-3b9d0c";
/// A metric only an authorized scrape can see.
pub const CANARY: &str = "fuzz_canary_total";
/// How long the server may take to answer or close once the client has sent everything.
const ANSWER_LIMIT: Duration = Duration::from_secs(5);

static SERVER_PANICKED: AtomicBool = AtomicBool::new(false);

struct FuzzServer {
    addr: SocketAddr,
    _server: MetricsServer,
    _telemetry: Telemetry,
}

/// One server for the whole process, with auth on and a canary metric.
fn fuzz_server() -> &'static FuzzServer {
    static SERVER: OnceLock<FuzzServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        // Server threads run connections inside tokio tasks, whose panics tokio would swallow;
        // the flag makes them visible (under libFuzzer the chained hook also aborts).
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current()
                .name()
                .is_some_and(|name| name.starts_with("tasker-metrics-http"))
            {
                SERVER_PANICKED.store(true, Ordering::SeqCst);
            }
            previous(info);
        }));
        let config = TelemetryConfig::builder()
            .metrics_auth_required(true)
            .metrics_auth_token(HTTP_TOKEN)
            .build()
            .expect("valid configuration");
        let telemetry = Telemetry::new(config).expect("telemetry");
        telemetry.mark_ready();
        telemetry
            .metrics()
            .counter(CANARY, "Seen only with the token.", &[])
            .expect("valid counter")
            .with(&[])
            .inc();
        let options = ServerOptions::default().with_header_read_timeout(Duration::from_secs(2));
        let server =
            MetricsServer::start_with(&telemetry, None, ([127, 0, 0, 1], 0).into(), options)
                .expect("server starts");
        FuzzServer {
            addr: server.addr(),
            _server: server,
            _telemetry: telemetry,
        }
    })
}

/// Sends `data` on a fresh connection, then (when `half_close`) closes the sending side, and
/// reads until the server closes. Panics if it neither answers nor closes within
/// [`ANSWER_LIMIT`].
fn exchange(addr: SocketAddr, data: &[u8], half_close: bool) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("the server accepts connections");
    stream
        .set_write_timeout(Some(ANSWER_LIMIT))
        .expect("timeout");
    // The server may answer and close before reading everything: that is an answer too.
    let _ = stream.write_all(data);
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let deadline = Instant::now() + ANSWER_LIMIT;
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the server neither answered nor closed within {ANSWER_LIMIT:?}"
        );
        stream.set_read_timeout(Some(left)).expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server neither answered nor closed within {ANSWER_LIMIT:?}")
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A reset closes the connection: allowed.
            Err(_) => break,
        }
    }
    response
}

/// What any answer to `request` must satisfy: only HTTP/1.x responses, never a 5xx
/// other than readiness' 503, and never a metric or status without the token.
pub fn check_responses(request: &[u8], response: &[u8]) {
    let text = String::from_utf8_lossy(response);
    if !response.is_empty() {
        assert!(
            response.starts_with(b"HTTP/1.1 ") || response.starts_with(b"HTTP/1.0 "),
            "not an HTTP/1.x response: {text:?}"
        );
    }
    for version in ["HTTP/1.1 5", "HTTP/1.0 5"] {
        for (at, _) in text.match_indices(version) {
            let status = text.get(at + 9..at + 12).unwrap_or("");
            assert_eq!(status, "503", "server error {status} in {text:?}");
        }
    }
    let has_token = request
        .windows(HTTP_TOKEN.len())
        .any(|w| w == HTTP_TOKEN.as_bytes());
    if !has_token {
        assert!(
            !text.contains(CANARY),
            "metrics served without the token to {:?}",
            String::from_utf8_lossy(request)
        );
        assert!(
            !text.contains("task_error_rate"),
            "status served without the token to {:?}",
            String::from_utf8_lossy(request)
        );
    }
}

/// The input is the raw bytes a client sends.
///
/// Properties: the server answers (with well-formed responses, see [`check_responses`]) or
/// closes within 5 s of the client finishing, never panics, never serves metrics or status
/// without the token, and answers the next well-formed request.
pub fn http_request(data: &[u8]) {
    let server = fuzz_server();
    let response = exchange(server.addr, data, true);
    check_responses(data, &response);
    assert!(
        !SERVER_PANICKED.load(Ordering::SeqCst),
        "the server panicked on {:?}",
        String::from_utf8_lossy(data)
    );
    let live = exchange(
        server.addr,
        b"GET /health/live HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n",
        false,
    );
    assert!(
        live.starts_with(b"HTTP/1.1 200"),
        "the server stopped answering after {:?}",
        String::from_utf8_lossy(data)
    );
}
