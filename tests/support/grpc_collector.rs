//! A real OTLP/gRPC collector for tests: tonic's `TraceService` and `LogsService` on 127.0.0.1,
//! plain or over TLS, keeping every request it decodes.
#![allow(dead_code)]

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<ExportTraceServiceRequest>>,
    logs: Mutex<Vec<ExportLogsServiceRequest>>,
    /// Request metadata seen, names lower-case.
    metadata: Mutex<Vec<(String, String)>>,
    arrived: Condvar,
}

impl Shared {
    fn keep_metadata(&self, metadata: &tonic::metadata::MetadataMap) {
        let headers = metadata.clone().into_headers();
        let mut kept = self.metadata.lock().unwrap();
        for (k, v) in &headers {
            kept.push((k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()));
        }
    }
}

struct Service(Arc<Shared>);

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.keep_metadata(request.metadata());
        self.0.requests.lock().unwrap().push(request.into_inner());
        self.0.arrived.notify_all();
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.keep_metadata(request.metadata());
        // Logs arrive under the same lock as spans, so one condition variable serves both.
        let _spans = self.0.requests.lock().unwrap();
        self.0.logs.lock().unwrap().push(request.into_inner());
        self.0.arrived.notify_all();
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// A running gRPC collector; stops when dropped.
pub struct GrpcCollector {
    shared: Arc<Shared>,
    endpoint: String,
    _runtime: tokio::runtime::Runtime,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl GrpcCollector {
    /// Starts a collector on an ephemeral port of 127.0.0.1.
    pub fn start() -> Self {
        Self::serve(None)
    }

    /// Starts a collector serving TLS with the certificate `cert` / `key` (PEM files), at
    /// `https://localhost:PORT`.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Self {
        let identity = tonic::transport::Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        );
        Self::serve(Some(
            tonic::transport::ServerTlsConfig::new().identity(identity),
        ))
    }

    fn serve(tls: Option<tonic::transport::ServerTlsConfig>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let shared = Arc::new(Shared::default());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let endpoint = match tls {
            Some(_) => format!("https://localhost:{port}"),
            None => format!("http://127.0.0.1:{port}"),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let traces = TraceServiceServer::new(Service(shared.clone()));
        let logs = LogsServiceServer::new(Service(shared.clone()));
        runtime.spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let mut server = tonic::transport::Server::builder();
            if let Some(tls) = tls {
                server = server.tls_config(tls).unwrap();
            }
            let _ = server
                .add_service(traces)
                .add_service(logs)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            shared,
            endpoint,
            _runtime: runtime,
            _stop: stop,
        }
    }

    /// Waits until `n` log records arrived or `timeout` passed.
    pub fn wait_for_logs(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Vec<super::otlp_receiver::ReceivedLog> {
        let deadline = Instant::now() + timeout;
        let mut requests = self.shared.requests.lock().unwrap();
        loop {
            let logs: Vec<_> = self
                .shared
                .logs
                .lock()
                .unwrap()
                .iter()
                .flat_map(super::otlp_receiver::flatten_logs)
                .collect();
            let now = Instant::now();
            if logs.len() >= n || now >= deadline {
                return logs;
            }
            requests = self
                .shared
                .arrived
                .wait_timeout(requests, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// A request metadata value seen (the first with this name).
    pub fn metadata(&self, name: &str) -> Option<String> {
        self.shared
            .metadata
            .lock()
            .unwrap()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// The collector's URL, e.g. `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Waits (on a condition variable) until `n` spans arrived or `timeout` passed; returns the
    /// names of the spans received, with their trace id and parent span id (hex).
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<(String, String, String)> {
        let deadline = Instant::now() + timeout;
        let mut requests = self.shared.requests.lock().unwrap();
        loop {
            let spans = flatten(&requests);
            let now = Instant::now();
            if spans.len() >= n || now >= deadline {
                return spans;
            }
            requests = self
                .shared
                .arrived
                .wait_timeout(requests, deadline - now)
                .unwrap()
                .0;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn flatten(requests: &[ExportTraceServiceRequest]) -> Vec<(String, String, String)> {
    requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| (s.name.clone(), hex(&s.trace_id), hex(&s.parent_span_id)))
        .collect()
}
