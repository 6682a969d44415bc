//! The HTTP surface (cargo feature `http`): metrics in Prometheus text, OpenMetrics, JSON or CSV,
//! and liveness / readiness / status endpoints, as an axum [`Router`] to mount in your server,
//! or a one-call [`MetricsServer`] bound to 127.0.0.1.
//!
//! | route | what |
//! |---|---|
//! | `GET <metrics_endpoint>` (the router), `GET /metrics` (the server) | Prometheus text 0.0.4; OpenMetrics 1.0 when `Accept` asks; `?format=json` / `?format=csv` |
//! | `GET /health/live` | always `200 {"status":"ok"}` |
//! | `GET /health/ready` | `200` once `init()` completed and span export is not failing (3 failures in a row); `503` otherwise, with each check |
//! | `GET /health/status` | task and step counts by status, error rates, span-export state |
//! | `GET /tasks` | the timeline page: the recent tasks (at most [`TASKS_PAGE_LIMIT`]) from the in-process span store, each with its step attempts on one time axis (HTML, no script, no external asset) |
//! | `GET /tasks/{task_id}` | one task's timeline page |
//! | `GET /tasks/{task_id}.json`, `GET /tasks.json` | the same data as JSON ([`TaskTimeline`](crate::spans::TaskTimeline), and the list of [`TaskSummary`](crate::spans::TaskSummary)) |
//!
//! With `metrics_auth_required`, the metrics, status and task routes need `Authorization: Bearer
//! <metrics_auth_token>` (compared in constant time); otherwise `401` with `WWW-Authenticate`.
//! The token is checked before anything else about the request (its query string included), and
//! only the exact route paths serve metrics: `//metrics`, `/metrics/`, `/%6Detrics` or
//! `/METRICS` are `404`, never an unauthenticated way in. `/health/live` and `/health/ready`
//! stay open so that orchestrators can probe them; they reveal no metric.
//!
//! [`MetricsServer`] speaks HTTP/1.1 and bounds what a client can hold: a connection must deliver
//! each request's head within [`DEFAULT_HEADER_READ_TIMEOUT`] (slow or silent clients are cut
//! off, also between keep-alive requests), and a head larger than [`MAX_REQUEST_HEAD_BYTES`] is
//! answered `431` and the connection closed. A client that stops reading its answer is cut off
//! once a write has waited [`DEFAULT_WRITE_TIMEOUT`], and at most [`DEFAULT_MAX_CONNECTIONS`]
//! connections are open at once (further clients wait in the kernel's queue until one closes).
//! These are set per server with [`ServerOptions`]. An HTTP/1.1 request without exactly one
//! `Host` header, or whose head has a line ending in a bare LF, is answered `400`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::Error;
use crate::metrics::{self, CsvOptions, MetricsSnapshot, SeriesValue};
use crate::spans::SpanPipeline;
use crate::telemetry::Telemetry;

mod connection;
mod timeline;

pub use timeline::{TASKS_PAGE_LIMIT, TASKS_PATH};

/// Span export failures in a row after which `/health/ready` answers 503.
pub const READY_EXPORT_FAILURE_THRESHOLD: u64 = 3;

#[derive(Clone)]
struct AppState {
    telemetry: Telemetry,
    spans: Option<SpanPipeline>,
}

/// The routes, with metrics at the configured `metrics_endpoint` (Tasker's `/tasker/metrics` by
/// default), to merge into your own axum application.
///
/// ```
/// let telemetry = tasker_telemetry::Telemetry::new(Default::default())?;
/// let app: axum::Router = tasker_telemetry::http::router(&telemetry, None);
/// # let _ = app;
/// # Ok::<(), tasker_telemetry::Error>(())
/// ```
pub fn router(telemetry: &Telemetry, spans: Option<&SpanPipeline>) -> Router {
    routes(
        telemetry,
        spans,
        &[telemetry.config().metrics_endpoint.as_str()],
    )
}

fn routes(telemetry: &Telemetry, spans: Option<&SpanPipeline>, metrics_paths: &[&str]) -> Router {
    let state = Arc::new(AppState {
        telemetry: telemetry.clone(),
        spans: spans.cloned(),
    });
    let mut router = Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health/status", get(status))
        .route(TASKS_PATH, get(timeline::tasks_page))
        .route("/tasks.json", get(timeline::tasks_json))
        .route("/tasks/{task}", get(timeline::task));
    for path in metrics_paths {
        router = router.route(path, get(metrics_handler));
    }
    router
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .method_not_allowed_fallback(|| async {
            (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        })
        .with_state(state)
}

/// Whether `given` equals `expected`. Every byte of `expected` is compared whatever `given` is, so
/// the time taken reveals neither where a guess first differs nor whether its length is right.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(!e) ^ e;
    }
    std::hint::black_box(diff) == 0
}

fn authorized(state: &AppState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let config = state.telemetry.config();
    if !config.metrics_auth_required {
        return Ok(());
    }
    let expected = config.metrics_auth_token.as_deref().unwrap_or_default();
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(token)
            if !expected.is_empty() && constant_time_eq(token.as_bytes(), expected.as_bytes()) =>
        {
            Ok(())
        }
        _ => Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tasker\""),
                )],
                "unauthorized\n",
            )
                .into_response(),
        )),
    }
}

#[derive(serde::Deserialize)]
struct MetricsQuery {
    format: Option<String>,
}

async fn metrics_handler(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = authorized(&state, &headers) {
        return *denied;
    }
    // Parsed only once authorized, so an unauthenticated client cannot tell a malformed query
    // from a wrong token.
    let query = match Query::<MetricsQuery>::try_from_uri(&uri) {
        Ok(Query(query)) => query,
        Err(rejection) => return rejection.into_response(),
    };
    let snapshot = state.telemetry.metrics().snapshot();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = query.format.as_deref().map(str::to_ascii_lowercase);
    match format.as_deref() {
        Some("json") => {
            let metadata = serde_json::json!({
                "service_name": state.telemetry.config().service_name,
                "service_version": state.telemetry.config().service_version,
                "format": "json",
            });
            let body = metrics::json_export(&snapshot, &metadata).to_string();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Some("csv") => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            metrics::csv_export(&snapshot, &CsvOptions::default()),
        )
            .into_response(),
        Some("openmetrics") => openmetrics(&snapshot),
        Some("prometheus") => prometheus(&snapshot),
        None if metrics::wants_openmetrics(accept) => openmetrics(&snapshot),
        None => prometheus(&snapshot),
        Some(other) => (
            StatusCode::BAD_REQUEST,
            format!("unknown format {other:?}: accepted are prometheus, openmetrics, json, csv\n"),
        )
            .into_response(),
    }
}

fn prometheus(snapshot: &MetricsSnapshot) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::PROMETHEUS_CONTENT_TYPE)],
        metrics::prometheus_text(snapshot),
    )
        .into_response()
}

fn openmetrics(snapshot: &MetricsSnapshot) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::OPENMETRICS_CONTENT_TYPE)],
        metrics::openmetrics_text(snapshot),
    )
        .into_response()
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn live() -> Response {
    json(StatusCode::OK, serde_json::json!({"status": "ok"}))
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let initialized = state.telemetry.is_ready();
    let failures = state
        .spans
        .as_ref()
        .map_or(0, |s| s.report().consecutive_failures);
    let exporting = failures < READY_EXPORT_FAILURE_THRESHOLD;
    let ok = initialized && exporting;
    json(
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        serde_json::json!({
            "status": if ok { "ready" } else { "not_ready" },
            "checks": {
                "initialized": {"ok": initialized},
                "span_export": {"ok": exporting, "consecutive_failures": failures},
            }
        }),
    )
}

/// Sums a counter family's series by the value of one label.
fn totals_by(
    snapshot: &MetricsSnapshot,
    family: &str,
    label: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    let Some(f) = snapshot.families.iter().find(|f| f.name == family) else {
        return out;
    };
    let Some(i) = f.label_names.iter().position(|l| l == label) else {
        return out;
    };
    for s in &f.series {
        if let (Some(key), SeriesValue::Counter(v)) = (s.label_values.get(i), &s.value) {
            let entry = out.entry(key.clone()).or_insert(serde_json::json!(0.0));
            *entry = serde_json::json!(entry.as_f64().unwrap_or(0.0) + v);
        }
    }
    out
}

fn error_rate(totals: &serde_json::Map<String, serde_json::Value>) -> f64 {
    let get = |k: &str| {
        totals
            .get(k)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    };
    let finished = get("completed") + get("failed");
    if finished == 0.0 {
        0.0
    } else {
        get("failed") / finished
    }
}

async fn status(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(denied) = authorized(&state, &headers) {
        return *denied;
    }
    let snapshot = state.telemetry.metrics().snapshot();
    let tasks = totals_by(&snapshot, "tasker_tasks_total", "status");
    let steps = totals_by(&snapshot, "tasker_steps_total", "status");
    let exporter = state.spans.as_ref().map(|s| {
        let r = s.report();
        serde_json::json!({
            "endpoint": r.endpoint,
            "exported": r.exported,
            "failed": r.failed,
            "dropped": r.dropped,
            "consecutive_failures": r.consecutive_failures,
            "last_error": r.last_error,
        })
    });
    json(
        StatusCode::OK,
        serde_json::json!({
            "service_name": state.telemetry.config().service_name,
            "tasks": tasks,
            "steps": steps,
            "task_error_rate": error_rate(&tasks),
            "step_error_rate": error_rate(&steps),
            "span_export": exporter,
        }),
    )
}

/// How long a connection may take to deliver a request's head (request line and headers) before
/// the server closes it: 10 seconds. The clock starts when the connection is accepted, and again
/// when a keep-alive connection waits for its next request, so a client that connects and sends
/// nothing, or dribbles its headers a byte at a time, holds a connection for at most this long.
/// Prometheus sends a scrape's head in one packet; 10 s leaves room for a loaded machine.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request head (request line and headers) [`MetricsServer`] reads: 64 KiB. A longer
/// head is answered `431 Request Header Fields Too Large` and the connection closed, so one client
/// can pin at most this much memory. A scrape's head is a few hundred bytes.
pub const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;

/// How long one write of an answer may wait for the client to read before the server closes the
/// connection: 10 seconds. The clock restarts whenever the client takes more bytes, so a slow
/// reader of a large `/metrics` is served, and one that stops reading holds its connection and
/// its answer's memory for at most this long.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections [`MetricsServer`] keeps open at once: 512. Beyond that it accepts no
/// more until one closes; the kernel queues the rest (up to its listen backlog), so a flood of
/// idle or stuck clients costs at most this many connections' memory while the header read and
/// write timeouts free them.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Connections the kernel may queue before the server accepts them (capped by the system's
/// `net.core.somaxconn`). tokio's default of 1,024 reset some of 5,000 clients connecting at
/// once (`TASKER_SOAK=1 cargo test --test http_robustness`).
const LISTEN_BACKLOG: u32 = 4096;

/// How long a stopping [`MetricsServer`] lets open connections finish before it drops them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Limits of a [`MetricsServer`]; [`Default`] gives the documented constants.
///
/// ```
/// use std::time::Duration;
/// use tasker_telemetry::http::{DEFAULT_HEADER_READ_TIMEOUT, ServerOptions};
///
/// let options = ServerOptions::default().with_header_read_timeout(Duration::from_secs(2));
/// assert_eq!(options.header_read_timeout, Duration::from_secs(2));
/// assert_eq!(ServerOptions::default().header_read_timeout, DEFAULT_HEADER_READ_TIMEOUT);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerOptions {
    /// See [`DEFAULT_HEADER_READ_TIMEOUT`]. Zero is taken as one millisecond.
    pub header_read_timeout: Duration,
    /// See [`DEFAULT_WRITE_TIMEOUT`]. Zero is taken as one millisecond.
    pub write_timeout: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS`]. Zero is taken as one.
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ServerOptions {
    /// The same options with another header read timeout.
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// The same options with another write timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasker_telemetry::http::ServerOptions;
    ///
    /// let options = ServerOptions::default().with_write_timeout(Duration::from_secs(2));
    /// assert_eq!(options.write_timeout, Duration::from_secs(2));
    /// ```
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// The same options with another bound on open connections.
    ///
    /// ```
    /// use tasker_telemetry::http::{DEFAULT_MAX_CONNECTIONS, ServerOptions};
    ///
    /// assert_eq!(ServerOptions::default().max_connections, DEFAULT_MAX_CONNECTIONS);
    /// assert_eq!(ServerOptions::default().with_max_connections(8).max_connections, 8);
    /// ```
    pub fn with_max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }
}

/// What a [`MetricsServer`] counts of its connections.
#[derive(Debug, Default)]
struct ConnectionCounters {
    open: AtomicUsize,
    most_open: AtomicUsize,
    write_timeouts: AtomicU64,
}

/// A [`MetricsServer`]'s connections: how many are open, the most that ever were, and how many
/// were closed because the client stopped reading.
///
/// ```
/// let telemetry = tasker_telemetry::Telemetry::new(Default::default())?;
/// let server = tasker_telemetry::http::MetricsServer::local(&telemetry, None, 0)?;
/// let stats = server.connection_stats();
/// assert_eq!(stats.write_timeouts, 0);
/// assert!(stats.most_open <= tasker_telemetry::http::DEFAULT_MAX_CONNECTIONS);
/// # Ok::<(), tasker_telemetry::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Connections open now.
    pub open: usize,
    /// The most connections open at once since the server started.
    pub most_open: usize,
    /// Connections closed because a write waited longer than the write timeout.
    pub write_timeouts: u64,
}

/// A metrics and health server on its own thread and tokio runtime; stops when dropped.
///
/// Serves `/metrics` and the configured `metrics_endpoint`, plus `/health/*`, over HTTP/1.1 with
/// the limits of [`ServerOptions`].
///
/// ```no_run
/// let telemetry = tasker_telemetry::Telemetry::new(Default::default())?;
/// let server = tasker_telemetry::http::MetricsServer::start(&telemetry, None, ([127, 0, 0, 1], 9464).into())?;
/// println!("metrics at http://{}/metrics", server.addr());
/// # Ok::<(), tasker_telemetry::Error>(())
/// ```
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    counters: Arc<ConnectionCounters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Serves on 127.0.0.1 (loopback only: metrics are not exposed beyond the machine unless
    /// you choose an address with [`start`](Self::start)); port 0 picks a free port.
    pub fn local(
        telemetry: &Telemetry,
        spans: Option<&SpanPipeline>,
        port: u16,
    ) -> Result<Self, Error> {
        Self::start(telemetry, spans, SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Binds `addr` (use port 0 for any free port) and serves until dropped, with the default
    /// [`ServerOptions`].
    pub fn start(
        telemetry: &Telemetry,
        spans: Option<&SpanPipeline>,
        addr: SocketAddr,
    ) -> Result<Self, Error> {
        Self::start_with(telemetry, spans, addr, ServerOptions::default())
    }

    /// Binds `addr` and serves until dropped, with these limits.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasker_telemetry::http::{MetricsServer, ServerOptions};
    ///
    /// let telemetry = tasker_telemetry::Telemetry::new(Default::default())?;
    /// let options = ServerOptions::default().with_header_read_timeout(Duration::from_secs(3));
    /// let server = MetricsServer::start_with(&telemetry, None, ([127, 0, 0, 1], 0).into(), options)?;
    /// assert_ne!(server.addr().port(), 0);
    /// # Ok::<(), tasker_telemetry::Error>(())
    /// ```
    pub fn start_with(
        telemetry: &Telemetry,
        spans: Option<&SpanPipeline>,
        addr: SocketAddr,
        options: ServerOptions,
    ) -> Result<Self, Error> {
        let io = |e: std::io::Error| Error::Http {
            message: format!("{addr}: {e}"),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tasker-metrics-http")
            .enable_all()
            .build()
            .map_err(io)?;
        let listener = runtime
            .block_on(async {
                let socket = if addr.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()?
                } else {
                    tokio::net::TcpSocket::new_v6()?
                };
                socket.set_reuseaddr(true)?;
                socket.bind(addr)?;
                socket.listen(LISTEN_BACKLOG)
            })
            .map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        let mut paths = vec!["/metrics"];
        let configured = telemetry.config().metrics_endpoint.clone();
        if configured != "/metrics" {
            paths.push(configured.as_str());
        }
        let app = routes(telemetry, spans, &paths);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let counters = Arc::new(ConnectionCounters::default());
        let shared = counters.clone();
        let thread = std::thread::Builder::new()
            .name("tasker-metrics-http".to_owned())
            .spawn(move || runtime.block_on(serve(listener, app, options, shared, stopped)))
            .map_err(io)?;
        Ok(Self {
            addr,
            counters,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the server counts of its connections (see [`ConnectionStats`]).
    pub fn connection_stats(&self) -> ConnectionStats {
        ConnectionStats {
            open: self.counters.open.load(Ordering::Relaxed),
            most_open: self.counters.most_open.load(Ordering::Relaxed),
            write_timeouts: self.counters.write_timeouts.load(Ordering::Relaxed),
        }
    }
}

/// Answers `400` to an HTTP/1.1 request without exactly one `Host` header (RFC 9112 §3.2): a
/// request that two hops could route differently is not served.
async fn one_host(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let hosts = request.headers().get_all(header::HOST).iter().count();
    if request.version() == axum::http::Version::HTTP_11 && hosts != 1 {
        let problem = if hosts == 0 {
            "no Host header"
        } else {
            "more than one Host header"
        };
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONNECTION, "close")],
            format!("bad request: {problem}; HTTP/1.1 requests carry exactly one\n"),
        )
            .into_response();
    }
    next.run(request).await
}

/// The accept loop. axum's own `serve` sets no timer on its connections, so hyper's header read
/// timeout never fires there and a silent client would hold its connection forever; each
/// connection here gets hyper's HTTP/1 server with a timer, the timeout and the head size limit.
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    options: ServerOptions,
    counters: Arc<ConnectionCounters>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let header_read_timeout = options.header_read_timeout.max(Duration::from_millis(1));
    let write_timeout = options.write_timeout.max(Duration::from_millis(1));
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let app = app.layer(axum::middleware::from_fn(one_host));
    let (closing, _) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // A slot first: with every slot taken, no connection is accepted until one closes.
        let slot = tokio::select! {
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        tokio::select! {
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // pause instead of spinning, then carry on serving.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let open = counters.open.fetch_add(1, Ordering::Relaxed) + 1;
                counters.most_open.fetch_max(open, Ordering::Relaxed);
                let mut timed = tokio_io_timeout::TimeoutStream::new(stream);
                timed.set_write_timeout(Some(write_timeout));
                let stream = connection::StrictLineEnds::new(Box::pin(timed));
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let mut closing = closing.subscribe();
                let counters = counters.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    // A client may shut its sending side once its request is out (`nc -N`,
                    // some HTTP/1.0 clients); it still gets its answer.
                    builder
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(header_read_timeout)
                        .max_buf_size(MAX_REQUEST_HEAD_BYTES)
                        .half_close(true);
                    let connection =
                        builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    let ended = tokio::select! {
                        ended = connection.as_mut() => ended,
                        _ = closing.changed() => {
                            connection.as_mut().graceful_shutdown();
                            connection.await
                        }
                    };
                    if ended.as_ref().is_err_and(timed_out) {
                        counters.write_timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                    counters.open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
    }
    drop(listener);
    let _ = closing.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    // Whatever has not finished by then is aborted when `connections` drops.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, drained).await;
}

/// Whether hyper ended a connection because a write timed out.
fn timed_out(error: &hyper::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(super::constant_time_eq(b"secret", b"secret"));
        assert!(!super::constant_time_eq(b"secret", b"secreT"));
        assert!(!super::constant_time_eq(b"secret", b"secret2"));
        assert!(!super::constant_time_eq(b"secret2", b"secret"));
        assert!(!super::constant_time_eq(b"", b"secret"));
        assert!(super::constant_time_eq(b"", b""));
    }
}
