//! A real OTLP/HTTP receiver over TLS, for tests: hyper serving `POST /v1/traces` and
//! `/v1/metrics` over tokio-rustls on 127.0.0.1, with a CA, a server certificate and (for mutual
//! TLS) a client certificate the test generates with rcgen. It keeps every request's headers and
//! its body as decoded off the wire (gzip `Content-Encoding` undone), and the spans in it.
#![allow(dead_code)]

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::otlp_receiver::{ReceivedLog, ReceivedSpan, flatten, flatten_logs};

/// A CA, and the PEM files of what it signed, in a directory of their own.
pub struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A new CA named `name`, its files under the system's temporary directory.
    pub fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("tasker-pki-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("tasker test CA {name}"));
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca }
    }

    /// The CA's certificate (PEM file).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `names` signed by the CA: its PEM certificate and key files.
    pub fn issue(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (cert_file, key_file) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}-key.pem")),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct TlsRequest {
    /// The path, e.g. `/v1/traces`.
    pub path: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body as it came off the wire (compressed, when it was).
    pub raw_body: Vec<u8>,
    /// The body after undoing its `Content-Encoding`.
    pub body: Vec<u8>,
}

impl TlsRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the receiver answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status, and this body.
    Status(u16, &'static str),
    /// Never: the request is read and the connection held open.
    Never,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<TlsRequest>>,
    arrived: Condvar,
}

/// A running receiver; stops when dropped.
pub struct HttpsReceiver {
    shared: Arc<Shared>,
    port: u16,
    _runtime: tokio::runtime::Runtime,
}

impl HttpsReceiver {
    /// Serves with the certificate `cert` / `key`; when `client_ca` is given, only clients with
    /// a certificate it signed are accepted.
    pub fn start(cert: &Path, key: &Path, client_ca: Option<&Path>, answer: Answer) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca).unwrap() {
                    roots.add(c.unwrap()).unwrap();
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let serving = shared.clone();
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let shared = serving.clone();
                let answer = answer.clone();
                tokio::spawn(async move {
                    // A handshake the client refuses (an unknown CA) ends here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let shared = shared.clone();
                        let answer = answer.clone();
                        async move { Ok::<_, Infallible>(receive(&shared, request, answer).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            shared,
            port,
            _runtime: runtime,
        }
    }

    /// The receiver's base URL with `host` (which its certificate must name).
    pub fn base_url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.port)
    }

    /// Waits (on a condition variable) until `n` requests arrived or `timeout` passed.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<TlsRequest> {
        let deadline = Instant::now() + timeout;
        let mut requests = self.shared.requests.lock().unwrap();
        while requests.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            requests = self.shared.arrived.wait_timeout(requests, left).unwrap().0;
        }
        requests.clone()
    }

    /// The log records received so far.
    pub fn logs(&self) -> Vec<ReceivedLog> {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        self.shared
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == "/v1/logs")
            .filter_map(|r| ExportLogsServiceRequest::decode(r.body.as_slice()).ok())
            .flat_map(|r| flatten_logs(&r))
            .collect()
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == "/v1/traces")
            .filter_map(|r| ExportTraceServiceRequest::decode(r.body.as_slice()).ok())
            .flat_map(|r| flatten(&r))
            .collect()
    }
}

async fn receive(
    shared: &Shared,
    request: Request<Incoming>,
    answer: Answer,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let raw_body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let gzip = headers
        .iter()
        .any(|(k, v)| k == "content-encoding" && v.eq_ignore_ascii_case("gzip"));
    let body = if gzip {
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(raw_body.as_slice()),
            &mut out,
        );
        out
    } else {
        raw_body.clone()
    };
    shared.requests.lock().unwrap().push(TlsRequest {
        path: parts.uri.path().to_owned(),
        headers,
        raw_body,
        body,
    });
    shared.arrived.notify_all();
    match answer {
        Answer::Status(status, text) => Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(text.as_bytes())))
            .unwrap(),
        Answer::Never => std::future::pending().await,
    }
}
