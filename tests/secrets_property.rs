//! Secrets never leave the process, whatever shape the data has.
//!
//! A seeded generator builds random nested task contexts, step inputs and step results (objects
//! within arrays within objects, random depth, keys in random ASCII case) holding unique secret
//! markers (`SECRET-<hex>`) under keys that Tasker's default `filter_parameters` cover, beside
//! visible markers (`VISIBLE-<hex>`) under harmless keys. Free text under harmless keys (notes,
//! an error's message, a log message, a span attribute, a metric label value) holds a secret in
//! one of the shapes value detection knows (an email address, URL credentials, a bearer token,
//! a JWT, a `key=value` pair, a `Debug`-formatted struct, an AWS, Stripe, GitHub or Slack key, a
//! Luhn-valid card number) at a random position among benign words, beside a visible marker
//! that must survive. Each case runs through real tasks —
//! the workflow runner (a sync handler returning the results, an async one echoing the context,
//! one failing with an error whose `Debug` holds a secret) and hand-driven `#[step_handler]`
//! steps that log their own fields and inputs (as JSON text) and open their own spans — with
//! every sink on: a subscriber to every event, the span pipeline exporting to a real OTLP
//! receiver, the JSON log layer writing into memory, and the metrics registry.
//!
//! It then reads every output byte — events serialised to JSON, the raw HTTP requests the
//! receiver got and the spans it decoded, the log lines, the Prometheus / OpenMetrics / JSON /
//! CSV / OTLP metric expositions — and asserts that no secret marker appears anywhere, and that
//! the visible markers do (so the data demonstrably flowed through each sink).
//!
//! `TASKER_SECRETS_SEED=<n>` replays a run; `TASKER_SECRETS_CASES=<n>` sets the number of cases
//! (default 150; `TASKER_SOAK=1` raises it to 2,000).

mod support;

#[path = "support/rng.rs"]
mod rng;

use rng::Rng;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use support::otlp_receiver::Receiver;
use tasker_telemetry::config::LogFormat;
use tasker_telemetry::filter::DEFAULT_FILTER_PARAMETERS;
use tasker_telemetry::logging::LogLayer;
use tasker_telemetry::metrics::{
    CsvOptions, csv_export, json_export, openmetrics_text, otlp_request, prometheus_text,
};
use tasker_telemetry::spans::SpanPipeline;
use tasker_telemetry::workflow::{Backoff, StepDef, TaskStatus, Workflow};
use tasker_telemetry::{
    Event, Sequence, Step, StepError, StepHandler, Task, Telemetry, TelemetryConfig, step_handler,
    subscriber,
};
use tracing_subscriber::layer::SubscriberExt;

const SECRET: &str = "SECRET-";
const VISIBLE: &str = "VISIBLE-";

/// Keys that contain none of Tasker's default rules (checked by `harmless_keys_are_harmless`).
const HARMLESS_KEYS: &[&str] = &[
    "amount", "name", "cart", "items", "note", "region", "sku", "quantity", "meta", "keyboard",
    "details", "address", "status", "level", "tags", "history", "currency", "lines", "owner",
];
const PREFIXES: &[&str] = &["", "user_", "billing", "x-", "Primary"];
const SUFFIXES: &[&str] = &["", "_value", "s", "Hash", "_v2"];

/// Where a marker was put, to name it in a failure.
#[derive(Debug, Clone)]
struct Placed {
    marker: String,
    case: usize,
    path: String,
}

impl fmt::Display for Placed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (case {}, at {})", self.marker, self.case, self.path)
    }
}

/// Builds one case's data and remembers every marker placed.
struct Generator<'a> {
    rng: &'a mut Rng,
    case: usize,
    serial: u64,
    secrets: Vec<Placed>,
    visible: Vec<Placed>,
    /// Secrets found by their shape (keys, card numbers) that cannot hold a `SECRET-` marker:
    /// each is looked for verbatim.
    shaped: Vec<Placed>,
}

impl Generator<'_> {
    fn marker(&mut self, prefix: &str, path: &str) -> String {
        self.serial += 1;
        // The case and a serial make every marker unique; the random part makes it unguessable.
        // The `f` keeps it from ever being sixteen digits, which could pass for a card number.
        let marker = format!(
            "{prefix}{:04x}f{:04x}{:08x}",
            self.case,
            self.serial,
            self.rng.next() as u32
        );
        let placed = Placed {
            marker: marker.clone(),
            case: self.case,
            path: path.to_owned(),
        };
        if prefix == SECRET {
            self.secrets.push(placed);
        } else {
            self.visible.push(placed);
        }
        marker
    }

    fn secret(&mut self, path: &str) -> String {
        self.marker(SECRET, path)
    }

    fn visible(&mut self, path: &str) -> String {
        self.marker(VISIBLE, path)
    }

    /// `n` random characters from `alphabet`.
    fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[self.rng.below(alphabet.len() as u64) as usize] as char)
            .collect()
    }

    fn shaped(&mut self, secret: String, path: &str) -> String {
        self.shaped.push(Placed {
            marker: secret.clone(),
            case: self.case,
            path: path.to_owned(),
        });
        secret
    }

    /// A secret in one of the shapes value detection knows, unique to this case.
    fn secret_in_text(&mut self, path: &str) -> String {
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let path = &format!("{path} (in free text)");
        match self.rng.below(13) {
            0 => format!("{}@example.com", self.secret(path)),
            1 => format!(
                "{}.{}@mail.example.co.uk",
                self.rng.pick(&["ada", "x"]),
                self.secret(path)
            ),
            2 => format!(
                "https://ada:{}@db.example.com:5432/orders",
                self.secret(path)
            ),
            3 => format!("Authorization: Bearer {}", self.secret(path)),
            4 => format!("eyJhbGciOiJIUzI1NiJ9.{}.c2lnbmF0dXJl", self.secret(path)),
            5 => {
                let key = self.sensitive_key();
                let secret = self.secret(path);
                match self.rng.below(4) {
                    0 => format!("{key}={secret}"),
                    1 => format!("{key}: {secret}"),
                    2 => format!(r#"{{"{key}": "{secret}"}}"#),
                    _ => format!(r#"Config {{ {key}: Some("{secret}"), retries: 3 }}"#),
                }
            }
            6 => {
                let id = format!("AKIA{}", self.chars(UPPER, 16));
                self.shaped(id, path)
            }
            7 => {
                let key = format!(
                    "{}{}",
                    self.rng.pick(&["sk_live_", "rk_test_"]),
                    self.chars(ALNUM, 24)
                );
                self.shaped(key, path)
            }
            8 => {
                let token = format!("ghp_{}", self.chars(ALNUM, 36));
                self.shaped(token, path)
            }
            9 => {
                let token = format!(
                    "xoxb-{}-{}",
                    self.chars(b"0123456789", 12),
                    self.chars(ALNUM, 24)
                );
                self.shaped(token, path)
            }
            _ => {
                let mut digits: Vec<u32> = std::iter::once(4)
                    .chain((0..14).map(|_| self.rng.below(10) as u32))
                    .collect();
                // The check digit that makes the Luhn sum a multiple of ten.
                let sum: u32 = digits
                    .iter()
                    .rev()
                    .enumerate()
                    .map(|(i, &d)| {
                        if i % 2 == 0 {
                            let d2 = d * 2;
                            if d2 > 9 { d2 - 9 } else { d2 }
                        } else {
                            d
                        }
                    })
                    .sum();
                digits.push((10 - sum % 10) % 10);
                let card: String = digits.iter().map(|d| char::from(b'0' + *d as u8)).collect();
                self.shaped(card, path)
            }
        }
    }

    /// Free text (a note, a log line, an error message) with a visible marker and a secret at
    /// random positions among harmless words; the visible marker is returned too.
    fn free_text(&mut self, path: &str) -> (String, Placed) {
        const WORDS: &[&str] = &[
            "order",
            "shipped",
            "retry",
            "2026-12-06T22:31:07Z",
            "v1.95.0",
            "10.0.0.12:9090",
            "f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "took",
            "1.25s",
            "user",
            "see",
            "https://example.com/docs?page=2",
            "(code=503)",
            "sha256:9f86d081884c7d659a2feaa0c55ad015",
            "for",
            "-",
            "and",
            "at",
        ];
        let visible = self.visible(path);
        let placed = self.visible.last().cloned().expect("placed");
        let secret = self.secret_in_text(path);
        let mut words: Vec<String> = (0..self.rng.below(8))
            .map(|_| self.rng.pick(WORDS).to_owned())
            .collect();
        let at = self.rng.below(words.len() as u64 + 1) as usize;
        words.insert(at, secret);
        let at = self.rng.below(words.len() as u64 + 1) as usize;
        words.insert(at, visible);
        (words.join(" "), placed)
    }

    /// A key one of Tasker's default rules covers, in random case, with random surroundings.
    fn sensitive_key(&mut self) -> String {
        let rule = self.rng.pick(DEFAULT_FILTER_PARAMETERS);
        let key = format!(
            "{}{rule}{}",
            self.rng.pick(PREFIXES),
            self.rng.pick(SUFFIXES)
        );
        self.rng.random_case(&key)
    }

    fn harmless_key(&mut self) -> String {
        let key = self.rng.pick(HARMLESS_KEYS).to_owned();
        self.rng.random_case(&key)
    }

    /// A random value. Every string placed under a sensitive key (at any depth below it) is a
    /// secret; every other string is visible.
    fn value(&mut self, depth: u32, secret: bool, path: &str) -> Value {
        let roll = self.rng.below(100);
        if depth == 0 || roll < 30 {
            return match self.rng.below(6) {
                // Non-string scalars under a sensitive key are masked too; they carry no
                // marker, so they are only there to vary the shapes.
                0 => json!(self.rng.below(1_000_000)),
                1 => json!(self.rng.chance(50)),
                _ if secret => {
                    let marker = self.secret(path);
                    // Sometimes inside other text: a filter must not rely on whole-value matches.
                    if self.rng.chance(30) {
                        json!(format!("Bearer {marker}; scope=all"))
                    } else {
                        json!(marker)
                    }
                }
                // Free text under a harmless key: found by value, the rest of the text kept.
                _ if self.rng.chance(25) => json!(self.free_text(path).0),
                _ => json!(self.visible(path)),
            };
        }
        if roll < 50 {
            let n = 1 + self.rng.below(3);
            return Value::Array(
                (0..n)
                    .map(|i| self.value(depth - 1, secret, &format!("{path}[{i}]")))
                    .collect(),
            );
        }
        self.object(depth, secret, path)
    }

    fn object(&mut self, depth: u32, secret: bool, path: &str) -> Value {
        let mut map = Map::new();
        for _ in 0..1 + self.rng.below(4) {
            let sensitive = self.rng.chance(35);
            let key = if sensitive {
                self.sensitive_key()
            } else {
                self.harmless_key()
            };
            if map.contains_key(&key) {
                continue;
            }
            let child_path = format!("{path}.{key}");
            let child = self.value(depth.saturating_sub(1), secret || sensitive, &child_path);
            map.insert(key, child);
        }
        Value::Object(map)
    }

    /// An object with at least one secret and one visible marker, at random depths.
    fn tree(&mut self, path: &str) -> Value {
        let depth = 1 + self.rng.below(4) as u32;
        let mut value = self.object(depth, false, path);
        let map = value.as_object_mut().expect("an object");
        // Guarantee both kinds, buried at a random depth under a random shape.
        let key = self.sensitive_key();
        let leaf = self.secret(&format!("{path}.{key}"));
        map.insert(key, json!([{ "deep": leaf }]));
        let key = format!("{}_{}", self.harmless_key(), self.serial);
        let leaf = self.visible(&format!("{path}.{key}"));
        map.insert(key, json!({ "ok": [leaf] }));
        value
    }
}

/// One generated case: the data, and the markers each sink must show.
struct Case {
    index: usize,
    context: Value,
    results: Value,
    inputs: Value,
    secrets: Vec<Placed>,
    /// Secrets looked for verbatim (see `Generator::shaped`).
    shaped: Vec<Placed>,
    /// The visible part of the inputs' note, which is also a metric label value.
    note_placed: Placed,
    /// Must reach subscribers (they sit under harmless keys in contexts, inputs, results).
    in_events: Vec<Placed>,
    /// Must reach the log lines.
    in_logs: Vec<Placed>,
    /// Must reach the exported spans.
    in_spans: Vec<Placed>,
}

fn generate(rng: &mut Rng, index: usize) -> Case {
    let mut g = Generator {
        rng,
        case: index,
        serial: 0,
        secrets: Vec::new(),
        visible: Vec::new(),
        shaped: Vec::new(),
    };
    // The runner's task: a random context that also carries what the handlers use.
    let mut context = g.tree("context");
    let echo = g.tree("context.echo");
    let decline_reason = g.visible("context.decline_reason");
    let (decline_note, decline_note_placed) =
        g.free_text("context.decline_note (in the error's message)");
    let card_token = g.secret("context.card_token (only in the error's Debug)");
    let results = g.tree("results");
    {
        let map = context.as_object_mut().expect("an object");
        map.insert("echo".into(), echo);
        map.insert("decline_reason".into(), json!(decline_reason));
        map.insert("decline_note".into(), json!(decline_note));
        map.insert("card_token".into(), json!(card_token));
    }
    let event_visible_before_manual = g.visible.len();

    // The hand-driven step's inputs: random data, plus what its process() logs and returns.
    let payload = g.tree("inputs.payload");
    let manual_results = g.tree("inputs.results");
    let order_ref = g.visible("inputs.order_ref");
    // Logged as the message, recorded on the span, in the first attempt's error, and as a
    // metric label value.
    let (note, note_placed) = g.free_text("inputs.note");
    let secret_key = g.sensitive_key();
    let field_secret = g.secret(&format!("inputs.{secret_key} (logged as a field)"));
    let variant = g.rng.below(FIELD_VARIANTS);
    let mut inputs = json!({
        "payload": payload,
        "results": manual_results,
        "order_ref": order_ref,
        "note": note,
        "variant": variant,
    });
    inputs
        .as_object_mut()
        .expect("an object")
        .insert(secret_key, json!(field_secret));
    let visible = g.visible.clone();
    let order_ref_placed = visible
        .iter()
        .find(|p| p.marker == order_ref)
        .cloned()
        .expect("placed");
    let decline_placed = visible
        .iter()
        .find(|p| p.marker == decline_reason)
        .cloned()
        .expect("placed");
    // Logs and spans carry: the manual step's inputs as JSON text (all of its visible
    // markers), its `order_ref` field, and both error messages.
    let mut in_logs: Vec<Placed> = visible[event_visible_before_manual..].to_vec();
    in_logs.push(decline_placed.clone());
    in_logs.push(decline_note_placed);
    let mut in_spans = in_logs.clone();
    in_spans.push(order_ref_placed);
    in_logs.dedup_by(|a, b| a.marker == b.marker);
    in_spans.dedup_by(|a, b| a.marker == b.marker);
    Case {
        index,
        context,
        results,
        inputs,
        secrets: g.secrets,
        shaped: g.shaped,
        note_placed,
        in_events: visible,
        in_logs,
        in_spans,
    }
}

/// How many ways the manual handler names its secret field (see `Inspect::process`).
const FIELD_VARIANTS: u64 = 6;

/// Returns the case's results (a handler with per-case state).
struct Emit {
    results: Value,
}

#[step_handler]
impl Emit {
    fn process(&self) -> Result<Value, StepError> {
        Ok(self.results.clone())
    }
}

/// Echoes part of the task context, asynchronously.
#[step_handler]
async fn echo_context(task: &Task) -> Result<Value, StepError> {
    Ok(task.context()["echo"].clone())
}

/// An error whose message is harmless but whose value holds a secret: only `Display` may
/// leave the process.
#[derive(Debug)]
struct CardDeclined {
    reason: String,
    note: String,
    #[allow(dead_code)] // Read only through `Debug`, which must never be used.
    card_token: String,
}

impl fmt::Display for CardDeclined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "card declined: {} ({})", self.reason, self.note)
    }
}

impl std::error::Error for CardDeclined {}

/// Always declines, so the task retries it and then fails.
struct Charge;

#[step_handler(retry_limit = 2)]
impl Charge {
    fn process(&self, task: &Task) -> Result<Value, CardDeclined> {
        Err(CardDeclined {
            reason: task.context()["decline_reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            note: task.context()["decline_note"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            card_token: task.context()["card_token"].to_string(),
        })
    }
}

/// Does what handlers do with their inputs: logs fields (one of them secret) and the inputs
/// themselves as JSON text, opens its own span, fails the first attempt and then returns results.
struct Inspect;

#[step_handler(retry_limit = 2)]
impl Inspect {
    fn process(&self, step: &Step) -> Result<Value, StepError> {
        let inputs = step.inputs();
        let order_ref = inputs["order_ref"].as_str().unwrap_or_default();
        let note = inputs["note"].as_str().unwrap_or_default();
        // The secret sits under the one key of the inputs that the case generated as sensitive.
        let secret = inputs
            .as_object()
            .and_then(|m| {
                m.iter().find(|(k, _)| {
                    !["payload", "results", "order_ref", "note", "variant"].contains(&k.as_str())
                })
            })
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default();
        // Field names are fixed at compile time, so the variants cover the rules, case and
        // naming styles (plain, quoted, dotted) between them.
        let span = match inputs["variant"].as_u64().unwrap_or(0) {
            0 => {
                tracing::info_span!("user.charge", password = %secret, order_ref, note = tracing::field::Empty)
            }
            1 => {
                tracing::info_span!("user.charge", "API_KEY" = %secret, order_ref, note = tracing::field::Empty)
            }
            2 => {
                tracing::info_span!("user.charge", user.Email = %secret, order_ref, note = tracing::field::Empty)
            }
            3 => {
                tracing::info_span!("user.charge", Client_Secret = %secret, order_ref, note = tracing::field::Empty)
            }
            4 => {
                tracing::info_span!("user.charge", "x-Auth-Token" = %secret, order_ref, note = tracing::field::Empty)
            }
            _ => {
                tracing::info_span!("user.charge", card.CERTIFICATE = %secret, order_ref, note = tracing::field::Empty)
            }
        };
        let _entered = span.enter();
        match inputs["variant"].as_u64().unwrap_or(0) {
            0 => tracing::info!(ssn = %secret, order_ref, "charging"),
            1 => tracing::info!("Session_Token" = %secret, order_ref, "charging"),
            2 => tracing::warn!(otp.Code = %secret, order_ref, "charging"),
            3 => tracing::info!(PASSWORD_confirmation = %secret, order_ref, "charging"),
            4 => tracing::error!("stripe_KEY" = %secret, order_ref, "charging"),
            _ => tracing::debug!(salt = %secret, order_ref, "charging"),
        }
        tracing::info!(inputs = %inputs, "step inputs");
        // Free text with a secret in it: as a log message, a span attribute, an error message.
        tracing::info!("customer wrote: {note}");
        span.record("note", note);
        if step.attempt_number() == 1 {
            return Err(StepError::new(format!(
                "gateway timed out for {order_ref}: {note}"
            )));
        }
        Ok(inputs["results"].clone())
    }
}

/// Every sink's output, as text (OTLP bytes are protobuf, whose strings are raw UTF-8).
struct Outputs {
    sinks: BTreeMap<&'static str, Vec<u8>>,
}

impl Outputs {
    /// Every marker with `prefix` found in each sink: `SECRET-` or `VISIBLE-` and the hex after it.
    fn markers(&self, prefix: &str) -> BTreeMap<&'static str, BTreeSet<String>> {
        self.sinks
            .iter()
            .map(|(sink, bytes)| (*sink, find_markers(bytes, prefix.as_bytes())))
            .collect()
    }
}

/// Each occurrence of `prefix`, with the hex digits that follow it (possibly none: a truncated
/// secret is still a leak).
fn find_markers(haystack: &[u8], prefix: &[u8]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut at = 0;
    while let Some(offset) = haystack[at..]
        .windows(prefix.len())
        .position(|w| w == prefix)
    {
        let start = at + offset;
        let end = haystack[start + prefix.len()..]
            .iter()
            .position(|b| !b.is_ascii_hexdigit())
            .map_or(haystack.len(), |n| start + prefix.len() + n);
        found.insert(String::from_utf8_lossy(&haystack[start..end]).into_owned());
        at = start + prefix.len();
    }
    found
}

fn seed() -> u64 {
    match std::env::var("TASKER_SECRETS_SEED") {
        Ok(text) => text.parse().expect("TASKER_SECRETS_SEED is a u64"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_nanos() as u64),
    }
}

fn cases() -> usize {
    if let Ok(text) = std::env::var("TASKER_SECRETS_CASES") {
        return text.parse().expect("TASKER_SECRETS_CASES is a number");
    }
    if std::env::var_os("TASKER_SOAK").is_some() {
        2_000
    } else {
        150
    }
}

#[test]
fn harmless_keys_are_harmless() {
    // The generator's classification must not depend on the filter under test: check it
    // against the rule list itself (substrings, ASCII case-insensitive).
    for key in HARMLESS_KEYS {
        for rule in DEFAULT_FILTER_PARAMETERS {
            assert!(
                !key.to_ascii_lowercase()
                    .contains(&rule.to_ascii_lowercase()),
                "{key} contains the rule {rule}"
            );
        }
    }
    for prefix in PREFIXES.iter().chain(SUFFIXES) {
        for rule in DEFAULT_FILTER_PARAMETERS {
            assert!(!prefix.to_ascii_lowercase().contains(rule), "{prefix}");
        }
    }
    let seen = find_markers(
        b"a SECRET-00ff, SECRET-; VISIBLE-1 SECRET-abcZ",
        SECRET.as_bytes(),
    );
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["SECRET-", "SECRET-00ff", "SECRET-abc"]
    );
}

#[test]
fn no_secret_reaches_any_sink() {
    let seed = seed();
    let n_cases = cases();
    let replay = format!(
        "seed {seed}; replay with TASKER_SECRETS_SEED={seed} TASKER_SECRETS_CASES={n_cases} \
         cargo test -p tasker-telemetry-e2e --test secrets_property"
    );
    let mut rng = Rng(seed);
    let cases: Vec<Case> = (0..n_cases).map(|i| generate(&mut rng, i)).collect();

    let receiver = Receiver::start();
    let config = TelemetryConfig::builder()
        .otlp_endpoint(receiver.base_url())
        .build()
        .expect("config");
    // Tasker's defaults, untouched: the property is about what users get out of the box.
    assert_eq!(config.filter_parameters, DEFAULT_FILTER_PARAMETERS);
    let pipeline = SpanPipeline::new(&config).expect("span pipeline");
    let telemetry = Telemetry::new(config).expect("telemetry");
    pipeline.register_metrics(telemetry.metrics());

    // A user's own family whose label value is free text (a note): found by value.
    let notes = telemetry
        .metrics()
        .counter("shop_notes_total", "Notes, by text.", &["note"])
        .expect("family");

    let events = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = events.clone();
    let subscription = telemetry
        .publisher()
        .subscribe(
            &["*"],
            subscriber::from_fn("every_event", move |event: &Event<'_>| {
                let json = serde_json::to_vec(event).expect("events serialise");
                let mut sink = sink.lock().unwrap();
                sink.extend_from_slice(&json);
                sink.push(b'\n');
            }),
        )
        .expect("subscribe");

    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let log_layer =
        LogLayer::new(LogFormat::Json, telemetry.filter().clone()).with_writer(logs.clone());
    let subscriber = tracing_subscriber::registry()
        .with(pipeline.layer())
        .with(log_layer);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let instant = Backoff {
        base: Duration::from_millis(1),
        max: Duration::from_millis(1),
        jitter: 0.0,
    };

    tracing::subscriber::with_default(subscriber, || {
        for case in &cases {
            let workflow = Workflow::builder("secrets_flow")
                .handler(Emit {
                    results: case.results.clone(),
                })
                .handler(EchoContext)
                .handler(Charge)
                .step(StepDef::new("emit"))
                .step(StepDef::new("echo_context").depends_on(["emit"]))
                .step(
                    StepDef::new("charge")
                        .depends_on(["echo_context"])
                        .backoff(instant),
                )
                .build()
                .expect("workflow");
            let outcome = runtime.block_on(workflow.run(
                &telemetry,
                format!("flow-{}", case.index),
                case.context.clone(),
            ));
            // The work itself is untouched by the filtering.
            assert_eq!(outcome.status, TaskStatus::Failed, "case {}", case.index);
            assert_eq!(outcome.results["emit"], case.results);
            assert_eq!(outcome.results["echo_context"], case.context["echo"]);
            assert_eq!(outcome.attempts["charge"], 2);

            let task = Task::new(
                &telemetry,
                format!("manual-{}", case.index),
                "secrets_manual",
                case.context.clone(),
            );
            task.scope().start();
            let sequence = Sequence::new();
            let step_id = format!("manual-{}/inspect", case.index);
            let first = task
                .step(step_id.clone(), "inspect")
                .with_inputs(case.inputs.clone());
            let failed = Inspect
                .handle(&task, &sequence, &first)
                .now()
                .expect("sync");
            assert!(failed.is_err(), "case {}", case.index);
            let second = task
                .step(step_id, "inspect")
                .with_inputs(case.inputs.clone())
                .with_attempt(2);
            let out = Inspect
                .handle(&task, &sequence, &second)
                .now()
                .expect("sync");
            assert_eq!(
                out,
                Ok(case.inputs["results"].clone()),
                "case {}",
                case.index
            );
            notes
                .with(&[case.inputs["note"].as_str().unwrap_or_default()])
                .inc();
            task.scope().complete(tasker_telemetry::scope::StepCounts {
                total: 1,
                completed: 1,
                ..Default::default()
            });
            // Keep the batch queue short so no span is dropped before export.
            if case.index % 25 == 24 {
                pipeline.flush();
            }
        }
    });
    let report = pipeline.shutdown();
    assert!(report.is_clean(), "every span delivered: {report:?}");
    assert!(subscription.unsubscribe());

    let snapshot = telemetry.metrics().snapshot();
    let mut sinks: BTreeMap<&'static str, Vec<u8>> = BTreeMap::new();
    sinks.insert("events (JSON)", events.lock().unwrap().clone());
    sinks.insert("logs (JSON lines)", logs.lock().unwrap().clone());
    let mut wire = Vec::new();
    for request in receiver.requests() {
        wire.extend_from_slice(format!("{} {}\r\n", request.method, request.path).as_bytes());
        for (name, value) in &request.headers {
            wire.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        wire.extend_from_slice(&request.body);
    }
    sinks.insert("OTLP requests (raw bytes)", wire);
    sinks.insert(
        "OTLP spans (decoded)",
        format!("{:?}", receiver.spans()).into_bytes(),
    );
    sinks.insert(
        "metrics (Prometheus)",
        prometheus_text(&snapshot).into_bytes(),
    );
    sinks.insert(
        "metrics (OpenMetrics)",
        openmetrics_text(&snapshot).into_bytes(),
    );
    sinks.insert(
        "metrics (JSON)",
        json_export(&snapshot, &json!({})).to_string().into_bytes(),
    );
    sinks.insert(
        "metrics (CSV)",
        csv_export(&snapshot, &CsvOptions::default()).into_bytes(),
    );
    sinks.insert(
        "metrics (OTLP)",
        otlp_request(&snapshot, "tasker", "0", SystemTime::now()),
    );
    let outputs = Outputs { sinks };

    // No secret anywhere.
    let all_secrets: BTreeMap<&str, &Placed> = cases
        .iter()
        .flat_map(|c| c.secrets.iter())
        .map(|p| (p.marker.as_str(), p))
        .collect();
    let mut leaks = Vec::new();
    let mut per_sink = BTreeMap::new();
    for (sink, found) in outputs.markers(SECRET) {
        if !found.is_empty() {
            per_sink.insert(sink, found.len());
        }
        for marker in found {
            let origin = all_secrets
                .get(marker.as_str())
                .map_or_else(|| "a truncated secret".to_owned(), |p| p.to_string());
            leaks.push(format!("{sink}: {origin}"));
        }
    }
    // The secrets shaped like keys and card numbers, looked for verbatim in one pass per sink.
    let shaped: Vec<&Placed> = cases.iter().flat_map(|c| c.shaped.iter()).collect();
    let automaton =
        aho_corasick::AhoCorasick::new(shaped.iter().map(|p| &p.marker)).expect("automaton");
    for (sink, bytes) in &outputs.sinks {
        for hit in automaton.find_overlapping_iter(bytes.as_slice()) {
            let placed = shaped[hit.pattern().as_usize()];
            per_sink.entry(sink).and_modify(|n| *n += 1).or_insert(1);
            leaks.push(format!("{sink}: {placed}"));
        }
    }
    let secrets_tried = all_secrets.len() + shaped.len();
    assert!(
        leaks.is_empty(),
        "{} secret occurrence(s) leaked out of {secrets_tried} secrets in {n_cases} cases, by sink \
         {per_sink:?} ({replay}):\n{}",
        leaks.len(),
        leaks
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // And the data did flow: the visible markers are where they belong.
    let visible = outputs.markers(VISIBLE);
    let mut missing = Vec::new();
    for case in &cases {
        for (sinks, expected) in [
            (&["events (JSON)"][..], &case.in_events),
            (&["logs (JSON lines)"][..], &case.in_logs),
            (
                &["OTLP requests (raw bytes)", "OTLP spans (decoded)"][..],
                &case.in_spans,
            ),
        ] {
            for sink in sinks {
                for placed in expected {
                    if !visible[sink].contains(&placed.marker) {
                        missing.push(format!("{sink}: {placed}"));
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} visible value(s) missing ({replay}):\n{}",
        missing.len(),
        missing
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    for sink in [
        "metrics (Prometheus)",
        "metrics (OpenMetrics)",
        "metrics (JSON)",
        "metrics (CSV)",
        "metrics (OTLP)",
    ] {
        let text = String::from_utf8_lossy(&outputs.sinks[sink]);
        for name in ["secrets_flow", "secrets_manual", "inspect", "charge"] {
            assert!(text.contains(name), "{sink} lacks {name}");
        }
        // The rest of each note's text is kept in its label value.
        for case in &cases {
            assert!(
                visible[sink].contains(&case.note_placed.marker),
                "{sink} lacks {} ({replay})",
                case.note_placed
            );
        }
    }
    eprintln!(
        "secrets_property: {n_cases} cases, {secrets_tried} secrets, {} visible values checked, \
         {} spans exported, 0 leaks ({replay})",
        cases
            .iter()
            .map(|c| c.in_events.len() + c.in_logs.len() + c.in_spans.len())
            .sum::<usize>(),
        report.exported
    );
}

#[test]
fn metric_label_values_under_sensitive_label_names_are_masked() {
    // The filter's contract covers metric labels too (`ParameterFilter::filter_field`: "span
    // attribute, log field, metric label"): a user family whose label is named like a secret
    // must not expose the value in any exposition format.
    let seed = seed();
    let mut rng = Rng(seed);
    let telemetry = Telemetry::new(TelemetryConfig::default()).expect("telemetry");
    let mut secrets = Vec::new();
    let mut visible = Vec::new();
    // Prometheus label names: letters, digits and underscores, so rules and case only.
    let label_names = [
        "api_key",
        "User_Email",
        "session_TOKEN",
        "client_secret",
        "Password",
    ];
    for (i, label) in label_names.iter().enumerate() {
        let family = telemetry
            .metrics()
            .counter(
                &format!("shop_calls_{i}_total"),
                "Calls, by caller.",
                &["region", label],
            )
            .expect("family");
        for j in 0..3 {
            let secret = format!("{SECRET}{i:04x}f{j:04x}{:08x}", rng.next() as u32);
            let region = format!("{VISIBLE}{i:04x}f{j:04x}{:08x}", rng.next() as u32);
            family.with(&[&region, &secret]).inc();
            secrets.push(secret);
            visible.push(region);
        }
    }
    let snapshot = telemetry.metrics().snapshot();
    let outputs = [
        ("Prometheus", prometheus_text(&snapshot).into_bytes()),
        ("OpenMetrics", openmetrics_text(&snapshot).into_bytes()),
        (
            "JSON",
            json_export(&snapshot, &json!({})).to_string().into_bytes(),
        ),
        (
            "CSV",
            csv_export(&snapshot, &CsvOptions::default()).into_bytes(),
        ),
        (
            "OTLP",
            otlp_request(&snapshot, "tasker", "0", SystemTime::now()),
        ),
    ];
    let mut leaks = Vec::new();
    for (format, bytes) in &outputs {
        let found = find_markers(bytes, VISIBLE.as_bytes());
        for region in &visible {
            assert!(found.contains(region), "{format} lacks the region {region}");
        }
        for marker in find_markers(bytes, SECRET.as_bytes()) {
            leaks.push(format!("{format}: {marker}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "{} of {} label values under sensitive label names leaked (seed {seed}):\n{}",
        leaks.len(),
        secrets.len() * outputs.len(),
        leaks.join("\n")
    );
}
