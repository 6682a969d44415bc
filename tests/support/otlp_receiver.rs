//! A real OTLP/HTTP trace receiver for tests: a plain `std::net` HTTP/1.1 server on
//! `127.0.0.1:<ephemeral port>` that decodes `POST /v1/traces` protobuf bodies into
//! [`ReceivedSpan`]s, so a test can check exactly what an exporter put on the wire.
//!
//! Behaviour, in brief:
//! - Each connection is served on its own thread; keep-alive (several requests on one
//!   connection), `Content-Length` bodies and `Transfer-Encoding: chunked` bodies are supported,
//!   as is `Expect: 100-continue`.
//! - Every request that parses as HTTP is recorded ([`Receiver::requests`],
//!   [`Receiver::request_count`], [`Receiver::raw_bodies`]), whatever its path or method.
//! - `/v1/metrics` POSTs are recorded as they came and answered like traces; other paths are answered 404 (in every mode) and otherwise ignored.
//! - `POST /v1/traces` with `Content-Type: application/x-protobuf` and no `Content-Encoding` is
//!   decoded as an `ExportTraceServiceRequest`; its spans are recorded whatever status the
//!   receiver was told to answer, then the receiver answers that status (200 with an empty
//!   `ExportTraceServiceResponse` for [`Receiver::start`]).
//! - Anything the receiver cannot decode is recorded in [`Receiver::decode_errors`] and answered
//!   with a 4xx: 400 for malformed HTTP or protobuf, 405 for a method other than POST on
//!   `/v1/traces`, 415 for another content type or any content encoding (gzip is not
//!   supported). Nothing received from the network makes it panic.
//! - Dropping the [`Receiver`] stops accepting and shuts down open connections; it never blocks
//!   for more than about a second.
//! - For fault tests: [`Receiver::set_status`] changes the answer of a running receiver (a
//!   collector that recovers), [`Receiver::go_away`] / [`Receiver::come_back`] close and reopen
//!   the listener on the same port (a collector that restarts) keeping what was recorded, and
//!   [`Receiver::start_on`] starts one on a given address (a collector that comes up late).
//!   [`Receiver::set_recording`] stops keeping requests and spans (they are still answered and
//!   counted), so a test measuring its own process's memory does not measure the receiver's;
//!   [`Receiver::clear`] forgets what was recorded so far.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

/// The path OTLP/HTTP trace exporters post to.
pub const TRACES_PATH: &str = "/v1/traces";
/// The OTLP/HTTP metrics path: requests are recorded (see `requests()`), not decoded.
pub const METRICS_PATH: &str = "/v1/metrics";

/// Longest request line, header line or chunk-size line accepted.
const MAX_LINE: usize = 16 * 1024;
/// Most header (or trailer) lines accepted in one request.
const MAX_HEADERS: usize = 128;
/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// An idle keep-alive connection is closed after this long without a request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `Drop` waits to connect to its own listener (to unblock `accept`).
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// An attribute value as received, with the common scalar kinds kept typed.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A string value.
    Str(String),
    /// A 64-bit integer value.
    Int(i64),
    /// A double value.
    Double(f64),
    /// A boolean value.
    Bool(bool),
    /// Any other value (array, key/value list, bytes, empty), rendered as text:
    /// arrays as `[a, b]`, lists as `{k: v, ...}`, bytes as lowercase hex, empty as `""`.
    Other(String),
}

impl AttrValue {
    /// The string, if this is a [`AttrValue::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an [`AttrValue::Int`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttrValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The double, if this is an [`AttrValue::Double`].
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::Double(d) => Some(*d),
            _ => None,
        }
    }

    /// The boolean, if this is an [`AttrValue::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn from_any(value: Option<&AnyValue>) -> AttrValue {
        match value.and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => AttrValue::Str(s.clone()),
            Some(any_value::Value::IntValue(i)) => AttrValue::Int(*i),
            Some(any_value::Value::DoubleValue(d)) => AttrValue::Double(*d),
            Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(*b),
            other => AttrValue::Other(render(other)),
        }
    }
}

/// Renders any value as text, for [`AttrValue::Other`].
fn render(value: Option<&any_value::Value>) -> String {
    match value {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex(b),
        Some(any_value::Value::StringValueStrindex(i)) => format!("strindex:{i}"),
        Some(any_value::Value::ArrayValue(array)) => {
            let items: Vec<String> = array
                .values
                .iter()
                .map(|v| render(v.value.as_ref()))
                .collect();
            format!("[{}]", items.join(", "))
        }
        Some(any_value::Value::KvlistValue(list)) => {
            let items: Vec<String> = list
                .values
                .iter()
                .map(|kv| {
                    let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
                    format!("{}: {}", kv.key, render(value))
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, AttrValue> {
    list.iter()
        .map(|kv| (kv.key.clone(), AttrValue::from_any(kv.value.as_ref())))
        .collect()
}

/// One span event as received.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    /// The event name.
    pub name: String,
    /// The event attributes (for a repeated key, the last value wins).
    pub attributes: BTreeMap<String, AttrValue>,
}

/// One span as received, flattened with its resource and scope.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// The trace id, lowercase hex (32 characters for a valid id).
    pub trace_id: String,
    /// The span id, lowercase hex (16 characters for a valid id).
    pub span_id: String,
    /// The parent span id, lowercase hex; empty for a root span.
    pub parent_span_id: String,
    /// The span name.
    pub name: String,
    /// Start time, nanoseconds since the Unix epoch.
    pub start_unix_nano: u64,
    /// End time, nanoseconds since the Unix epoch.
    pub end_unix_nano: u64,
    /// The span attributes (for a repeated key, the last value wins).
    pub attributes: BTreeMap<String, AttrValue>,
    /// The span attributes' keys in the order sent, repeats included.
    pub attribute_keys: Vec<String>,
    /// The span events, in the order sent.
    pub events: Vec<ReceivedEvent>,
    /// The status code: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    /// The status message (empty unless set).
    pub status_message: String,
    /// The attributes of the resource the span was sent under.
    pub resource: BTreeMap<String, AttrValue>,
    /// The name of the instrumentation scope the span was sent under.
    pub scope_name: String,
}

impl ReceivedSpan {
    /// End minus start (zero if the end is before the start).
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_unix_nano.saturating_sub(self.start_unix_nano))
    }

    /// The attribute named `key`, if present.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }

    /// The first event named `name`, if any.
    pub fn event(&self, name: &str) -> Option<&ReceivedEvent> {
        self.events.iter().find(|e| e.name == name)
    }

    /// Whether the span has no parent.
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }
}

/// Flattens a decoded export request into spans, in the order sent.
/// The spans of a decoded request, flattened with their resource and scope.
pub fn flatten(request: &ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut spans = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for scope_spans in &resource_spans.scope_spans {
            let scope_name = scope_spans
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for span in &scope_spans.spans {
                let (status_code, status_message) = span
                    .status
                    .as_ref()
                    .map(|s| (s.code, s.message.clone()))
                    .unwrap_or_default();
                spans.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name.clone(),
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano,
                    attributes: attributes(&span.attributes),
                    attribute_keys: span.attributes.iter().map(|kv| kv.key.clone()).collect(),
                    events: span
                        .events
                        .iter()
                        .map(|e| ReceivedEvent {
                            name: e.name.clone(),
                            attributes: attributes(&e.attributes),
                        })
                        .collect(),
                    status_code,
                    status_message,
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                });
            }
        }
    }
    spans
}

/// One log record as received.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedLog {
    /// The body, as text.
    pub body: String,
    /// `INFO`, `WARN`, ...
    pub severity_text: String,
    /// The span the record was written in (lowercase hex), empty outside any span.
    pub trace_id: String,
    /// Lowercase hex, empty outside any span.
    pub span_id: String,
    /// The record's attributes.
    pub attributes: BTreeMap<String, AttrValue>,
    /// The resource's attributes.
    pub resource: BTreeMap<String, AttrValue>,
}

/// The log records of an OTLP logs export request.
pub fn flatten_logs(
    request: &opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest,
) -> Vec<ReceivedLog> {
    let mut logs = Vec::new();
    for resource_logs in &request.resource_logs {
        let resource = resource_logs
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for record in resource_logs.scope_logs.iter().flat_map(|s| &s.log_records) {
            logs.push(ReceivedLog {
                body: render(record.body.as_ref().and_then(|b| b.value.as_ref())),
                severity_text: record.severity_text.clone(),
                trace_id: hex(&record.trace_id),
                span_id: hex(&record.span_id),
                attributes: attributes(&record.attributes),
                resource: resource.clone(),
            });
        }
    }
    logs
}

/// One HTTP request as received (any path, any method).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedRequest {
    /// The request method, e.g. `POST`.
    pub method: String,
    /// The request target as sent, e.g. `/v1/traces`.
    pub path: String,
    /// The header lines, in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body after removing any chunked framing (content encoding is not undone).
    pub body: Vec<u8>,
}

impl ReceivedRequest {
    /// The first header named `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without any query string.
    fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }
}

#[derive(Default)]
struct Recorded {
    /// Requests answered while recording was off: counted, not kept.
    unrecorded: usize,
    requests: Vec<ReceivedRequest>,
    spans: Vec<ReceivedSpan>,
    decode_errors: Vec<String>,
}

#[derive(Default)]
struct Connections {
    stopping: bool,
    next_id: u64,
    open: HashMap<u64, TcpStream>,
}

struct Shared {
    /// The status answered to a decodable `POST /v1/traces`.
    status: AtomicU16,
    /// Whether requests and spans are kept (see `Receiver::set_recording`).
    recording: AtomicBool,
    recorded: Mutex<Recorded>,
    changed: Condvar,
    connections: Mutex<Connections>,
}

impl Shared {
    fn record_error(&self, error: String) {
        lock(&self.recorded).decode_errors.push(error);
        self.changed.notify_all();
    }
}

/// Locks, ignoring poisoning (a panicking test thread must not cascade into others).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running OTLP/HTTP trace receiver; see the [module docs](self). Dropping it stops it.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Starts a receiver that answers 200 with an empty `ExportTraceServiceResponse`.
    pub fn start() -> Receiver {
        Receiver::start_with_status(200)
    }

    /// Starts a receiver that answers `status` (e.g. 500, 404, 429) to every decodable
    /// `POST /v1/traces`, still recording the request and its spans.
    ///
    /// Panics if `status` is not in `200..=599` or if binding `127.0.0.1:0` fails.
    pub fn start_with_status(status: u16) -> Receiver {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Receiver::start_on(addr, status).expect("bind 127.0.0.1:0")
    }

    /// Starts a receiver listening on `addr` (e.g. the port of an endpoint an exporter already
    /// uses), answering `status` like [`start_with_status`](Self::start_with_status).
    ///
    /// Fails if `addr` cannot be bound; panics if `status` is not in `200..=599`.
    pub fn start_on(addr: SocketAddr, status: u16) -> io::Result<Receiver> {
        assert_final_status(status);
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            status: AtomicU16::new(status),
            recording: AtomicBool::new(true),
            recorded: Mutex::new(Recorded::default()),
            changed: Condvar::new(),
            connections: Mutex::new(Connections::default()),
        });
        let acceptor = spawn_acceptor(listener, addr, &shared)?;
        Ok(Receiver {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// Answers `status` to decodable `POST /v1/traces` from now on (requests already answered
    /// keep their status). Panics if `status` is not in `200..=599`.
    pub fn set_status(&self, status: u16) {
        assert_final_status(status);
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Keeps (`true`, the default) or stops keeping (`false`) what arrives from now on. While
    /// off, requests are still decoded, answered and counted in
    /// [`request_count`](Self::request_count), but neither they nor their spans are stored.
    pub fn set_recording(&self, on: bool) {
        self.shared.recording.store(on, Ordering::SeqCst);
    }

    /// Forgets the requests, spans and decode errors recorded so far (a long test that checks
    /// as it goes keeps the receiver's memory flat); [`request_count`](Self::request_count)
    /// still counts the forgotten requests.
    pub fn clear(&self) {
        let mut recorded = lock(&self.shared.recorded);
        recorded.unrecorded += recorded.requests.len();
        recorded.requests = Vec::new();
        recorded.spans = Vec::new();
        recorded.decode_errors = Vec::new();
    }

    /// Whether the receiver is accepting connections (not between [`go_away`](Self::go_away)
    /// and [`come_back`](Self::come_back)).
    pub fn is_up(&self) -> bool {
        self.acceptor.is_some()
    }

    /// Stops listening and shuts down open connections, like dropping the receiver, but keeps
    /// what was recorded; [`come_back`](Self::come_back) listens again on the same address.
    /// Returns once the port is closed (or after about a second if the accept thread could not
    /// be woken). Does nothing if the receiver is already down.
    pub fn go_away(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        {
            let mut connections = lock(&self.shared.connections);
            connections.stopping = true;
            for stream in connections.open.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
            connections.open.clear();
        }
        // Unblock `accept`; join only if that worked, so stopping never hangs. The listener is
        // closed when the accept thread returns.
        if TcpStream::connect_timeout(&self.addr, WAKE_TIMEOUT).is_ok() {
            let _ = acceptor.join();
        }
    }

    /// Listens again on the same address after [`go_away`](Self::go_away), recording into the
    /// same history. Fails if the port cannot be bound again (e.g. taken meanwhile). Does
    /// nothing if the receiver is up.
    pub fn come_back(&mut self) -> io::Result<()> {
        if self.acceptor.is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr)?;
        lock(&self.shared.connections).stopping = false;
        self.acceptor = Some(spawn_acceptor(listener, self.addr, &self.shared)?);
        Ok(())
    }

    /// The traces endpoint, e.g. `http://127.0.0.1:PORT/v1/traces`.
    pub fn endpoint(&self) -> String {
        format!("{}{TRACES_PATH}", self.base_url())
    }

    /// The base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every span decoded so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        lock(&self.shared.recorded).spans.clone()
    }

    /// Every request body received so far (any path), concatenated in arrival order, as sent
    /// (chunked framing removed, nothing decompressed or decoded).
    pub fn raw_bodies(&self) -> Vec<u8> {
        lock(&self.shared.recorded)
            .requests
            .iter()
            .flat_map(|r| r.body.iter().copied())
            .collect()
    }

    /// Every request received so far (any path), in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.shared.recorded).requests.clone()
    }

    /// How many requests (any path) have been received so far, recorded or not.
    pub fn request_count(&self) -> usize {
        let recorded = lock(&self.shared.recorded);
        recorded.requests.len() + recorded.unrecorded
    }

    /// Everything the receiver could not decode so far, as messages.
    pub fn decode_errors(&self) -> Vec<String> {
        lock(&self.shared.recorded).decode_errors.clone()
    }

    /// Blocks until at least `n` spans have been decoded or `timeout` passes, then returns
    /// every span decoded so far (possibly fewer than `n`).
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        self.wait_until(timeout, |r| r.spans.len() >= n)
            .spans
            .clone()
    }

    /// Blocks until at least `n` requests have been received or `timeout` passes, then returns
    /// the number received so far (possibly fewer than `n`).
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> usize {
        let recorded = self.wait_until(timeout, |r| r.requests.len() + r.unrecorded >= n);
        recorded.requests.len() + recorded.unrecorded
    }

    fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Recorded) -> bool,
    ) -> MutexGuard<'_, Recorded> {
        let guard = lock(&self.shared.recorded);
        let (guard, _timed_out) = self
            .shared
            .changed
            .wait_timeout_while(guard, timeout, |r| !done(r))
            .unwrap_or_else(PoisonError::into_inner);
        guard
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.go_away();
    }
}

fn assert_final_status(status: u16) {
    assert!(
        (200..=599).contains(&status),
        "status {status} is not a final HTTP status"
    );
}

fn spawn_acceptor(
    listener: TcpListener,
    addr: SocketAddr,
    shared: &Arc<Shared>,
) -> io::Result<JoinHandle<()>> {
    let shared = Arc::clone(shared);
    thread::Builder::new()
        .name(format!("otlp-receiver-{}", addr.port()))
        .spawn(move || accept_loop(&listener, &shared))
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for incoming in listener.incoming() {
        let stream = match incoming {
            Ok(stream) => stream,
            Err(_) => {
                if lock(&shared.connections).stopping {
                    return;
                }
                // Back off briefly on accept errors (e.g. out of descriptors), not a wait loop.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let id = {
            let mut connections = lock(&shared.connections);
            if connections.stopping {
                return;
            }
            let Ok(handle) = stream.try_clone() else {
                continue;
            };
            let id = connections.next_id;
            connections.next_id += 1;
            connections.open.insert(id, handle);
            id
        };
        let worker_shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name(format!("otlp-receiver-conn-{id}"))
            .spawn(move || {
                serve(&worker_shared, stream);
                lock(&worker_shared.connections).open.remove(&id);
            });
        if spawned.is_err() {
            lock(&shared.connections).open.remove(&id);
        }
    }
}

/// Why a request could not be read.
enum ReadError {
    /// The bytes received are not an acceptable HTTP/1.x request.
    Malformed(String),
    /// The connection failed part-way through a request.
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> ReadError {
        ReadError::Io(error)
    }
}

/// A parsed request and whether the connection may stay open after it.
struct Parsed {
    request: ReceivedRequest,
    keep_alive: bool,
}

fn serve(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        match read_request(&mut reader, &mut writer) {
            Ok(None) => return,
            Ok(Some(Parsed {
                request,
                keep_alive,
            })) => {
                let status = handle(shared, request);
                let close = !keep_alive || lock(&shared.connections).stopping;
                if write_response(&mut writer, status, close).is_err() || close {
                    close_gracefully(&mut reader, &writer);
                    return;
                }
            }
            Err(ReadError::Malformed(message)) => {
                shared.record_error(format!("malformed HTTP request: {message}"));
                let _ = write_response(&mut writer, 400, true);
                close_gracefully(&mut reader, &writer);
                return;
            }
            Err(ReadError::Io(error)) => {
                shared.record_error(format!("connection failed mid-request: {error}"));
                return;
            }
        }
    }
}

/// Half-closes, then discards a bounded amount of unread input, so the peer sees the response
/// rather than a reset.
fn close_gracefully(reader: &mut BufReader<TcpStream>, writer: &TcpStream) {
    let _ = writer.shutdown(Shutdown::Write);
    let _ = writer.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = io::copy(&mut reader.take(1024 * 1024), &mut io::sink());
}

/// Decodes and records one request; returns the status to answer.
fn handle(shared: &Shared, request: ReceivedRequest) -> u16 {
    let (status, spans, error) = process(shared.status.load(Ordering::SeqCst), &request);
    {
        let mut recorded = lock(&shared.recorded);
        if shared.recording.load(Ordering::SeqCst) {
            recorded.requests.push(request);
            recorded.spans.extend(spans);
        } else {
            recorded.unrecorded += 1;
        }
        recorded.decode_errors.extend(error);
    }
    shared.changed.notify_all();
    status
}

fn process(status: u16, request: &ReceivedRequest) -> (u16, Vec<ReceivedSpan>, Option<String>) {
    // OTLP metrics are recorded as they came (the test decodes them); only traces are decoded.
    if request.route() == METRICS_PATH && request.method == "POST" {
        return (status, Vec::new(), None);
    }
    if request.route() != TRACES_PATH {
        return (404, Vec::new(), None);
    }
    let what = format!("{} {}", request.method, request.path);
    if request.method != "POST" {
        return (405, Vec::new(), Some(format!("{what}: expected POST")));
    }
    if let Some(encoding) = request.header("content-encoding")
        && !encoding.trim().eq_ignore_ascii_case("identity")
    {
        return (
            415,
            Vec::new(),
            Some(format!(
                "{what}: unsupported Content-Encoding {encoding:?} (the receiver does not decompress)"
            )),
        );
    }
    let content_type = request.header("content-type").unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/x-protobuf") {
        return (
            415,
            Vec::new(),
            Some(format!(
                "{what}: unsupported Content-Type {content_type:?} (expected application/x-protobuf)"
            )),
        );
    }
    match ExportTraceServiceRequest::decode(request.body.as_slice()) {
        Ok(export) => (status, flatten(&export), None),
        Err(error) => (
            400,
            Vec::new(),
            Some(format!(
                "{what}: body ({} bytes) is not an ExportTraceServiceRequest: {error}",
                request.body.len()
            )),
        ),
    }
}

fn write_response(writer: &mut TcpStream, status: u16, close: bool) -> io::Result<()> {
    let body = if (200..300).contains(&status) {
        ExportTraceServiceResponse::default().encode_to_vec()
    } else {
        Vec::new()
    };
    let mut response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    if close {
        response.push_str("Connection: close\r\n");
    }
    response.push_str("\r\n");
    let mut bytes = response.into_bytes();
    bytes.extend_from_slice(&body);
    writer.write_all(&bytes)?;
    writer.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Reads one line ending in LF (CR before it dropped). `Ok(None)` at a clean end of input.
fn read_line(reader: &mut BufReader<TcpStream>) -> Result<Option<String>, ReadError> {
    let mut line = Vec::new();
    reader
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(if line.len() > MAX_LINE {
            ReadError::Malformed(format!("line longer than {MAX_LINE} bytes"))
        } else {
            ReadError::Io(io::ErrorKind::UnexpectedEof.into())
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| ReadError::Malformed("line is not UTF-8".to_owned()))
}

/// Reads a line that must be there (end of input is an error).
fn require_line(reader: &mut BufReader<TcpStream>) -> Result<String, ReadError> {
    read_line(reader)?.ok_or_else(|| ReadError::Io(io::ErrorKind::UnexpectedEof.into()))
}

/// Reads one request. `Ok(None)` if the connection closed (or idled out) between requests.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
) -> Result<Option<Parsed>, ReadError> {
    // The request line; failures before it arrives mean the peer is done, not an error.
    let request_line = loop {
        match read_line(reader) {
            Ok(None) | Err(ReadError::Io(_)) => return Ok(None),
            Ok(Some(line)) if line.is_empty() => continue,
            Ok(Some(line)) => break line,
            Err(malformed) => return Err(malformed),
        }
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed(format!(
            "bad request line {request_line:?}"
        )));
    };
    let http_1_0 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => {
            return Err(ReadError::Malformed(format!(
                "unsupported version in {request_line:?}"
            )));
        }
    };
    if method.is_empty() || path.is_empty() {
        return Err(ReadError::Malformed(format!(
            "bad request line {request_line:?}"
        )));
    }
    let headers = read_fields(reader)?;
    let mut request = ReceivedRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body: Vec::new(),
    };

    let connection = request.header("connection").unwrap_or_default();
    let has_token = |token: &str| {
        connection
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let keep_alive = if http_1_0 {
        has_token("keep-alive")
    } else {
        !has_token("close")
    };

    if !http_1_0
        && request
            .header("expect")
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("100-continue"))
    {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }

    request.body = if let Some(coding) = request.header("transfer-encoding") {
        let last = coding.rsplit(',').next().unwrap_or_default().trim();
        if !last.eq_ignore_ascii_case("chunked") {
            return Err(ReadError::Malformed(format!(
                "unsupported Transfer-Encoding {coding:?}"
            )));
        }
        read_chunked(reader)?
    } else if let Some(length) = content_length(&request)? {
        if length > MAX_BODY {
            return Err(ReadError::Malformed(format!(
                "Content-Length {length} exceeds {MAX_BODY}"
            )));
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        body
    } else {
        Vec::new()
    };
    Ok(Some(Parsed {
        request,
        keep_alive,
    }))
}

/// Reads header (or trailer) fields up to and including the empty line.
fn read_fields(reader: &mut BufReader<TcpStream>) -> Result<Vec<(String, String)>, ReadError> {
    let mut fields = Vec::new();
    loop {
        let line = require_line(reader)?;
        if line.is_empty() {
            return Ok(fields);
        }
        if fields.len() == MAX_HEADERS {
            return Err(ReadError::Malformed(format!(
                "more than {MAX_HEADERS} header fields"
            )));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::Malformed(format!("bad header line {line:?}")));
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ReadError::Malformed(format!("bad header name in {line:?}")));
        }
        fields.push((name.to_owned(), value.trim().to_owned()));
    }
}

/// The Content-Length, if any; several differing values (or a non-number) are malformed.
fn content_length(request: &ReceivedRequest) -> Result<Option<usize>, ReadError> {
    let mut length = None;
    for (_, value) in request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        for item in value.split(',') {
            let item = item.trim();
            let parsed = item
                .parse::<usize>()
                .ok()
                .filter(|_| item.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| ReadError::Malformed(format!("bad Content-Length {value:?}")))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(ReadError::Malformed(
                    "conflicting Content-Length".to_owned(),
                ));
            }
            length = Some(parsed);
        }
    }
    Ok(length)
}

/// Reads a chunked body (and discards any trailer fields).
fn read_chunked(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line = require_line(reader)?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = (!size_text.is_empty() && size_text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| usize::from_str_radix(size_text, 16).ok())
            .flatten()
            .ok_or_else(|| ReadError::Malformed(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            read_fields(reader)?;
            return Ok(body);
        }
        if size > MAX_BODY - body.len() {
            return Err(ReadError::Malformed(format!(
                "chunked body exceeds {MAX_BODY} bytes"
            )));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        if !require_line(reader)?.is_empty() {
            return Err(ReadError::Malformed(
                "chunk data not followed by CRLF".to_owned(),
            ));
        }
    }
}
