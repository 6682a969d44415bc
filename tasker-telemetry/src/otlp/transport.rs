//! The OTLP/HTTP transport: reqwest's blocking client over rustls, shared by the span exporter
//! (as its [`HttpClient`]) and the metrics exporter.
//!
//! Each export runs on an exporter's own thread, so blocking here never blocks a step. What a
//! collector can cost is bounded: the whole exchange (connect, TLS, request, response head and
//! body) ends within the export timeout; a response's head is bounded by hyper's limits and its
//! body is read to at most [`BODY_LIMIT`] bytes. Retrying is the span exporter's (the OTLP
//! specification's policy: 429, 502, 503, 504 and network errors, after `Retry-After` when the
//! server gives one, within the timeout); metrics are pushed again at the next interval. The
//! client is built on first use, on
//! the export thread: reqwest's blocking client must not be built or dropped inside an async
//! runtime, which the caller of `init` may be in.

use std::io::Read;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use http::{Request, Response};
use opentelemetry_http::{HttpClient, HttpError};

use crate::config::ExporterSettings;
use crate::redact;

/// The most of a response body kept, for the diagnostic of a failed export.
pub(crate) const BODY_LIMIT: u64 = 1024;

/// Sends OTLP requests to one signal's endpoint with its headers, timeout and TLS.
pub(crate) struct HttpTransport {
    timeout: Duration,
    headers: HeaderMap,
    tls: rustls::ClientConfig,
    client: OnceLock<Result<reqwest::blocking::Client, String>>,
    /// What diagnostics must never show: header values and the endpoint's credentials.
    secrets: Vec<String>,
    /// The last failure in full (the SDK's own error says less), credentials masked.
    last_error: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("timeout", &self.timeout)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// A transport for `settings`; reads the TLS files now, so that a missing or malformed one
    /// is an error at startup.
    pub(crate) fn new(
        settings: &ExporterSettings,
        last_error: Arc<Mutex<Option<String>>>,
    ) -> Result<Self, String> {
        let https = settings
            .endpoint
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"));
        let tls = super::tls::client_config(&settings.tls, https)?;
        let mut headers = HeaderMap::new();
        for (name, value) in &settings.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|e| format!("OTLP header name {name:?}: {e}"))?;
            let mut value = HeaderValue::try_from(value.as_str())
                .map_err(|e| format!("OTLP header {name}: value: {e}"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let mut secrets: Vec<String> = settings.headers.iter().map(|(_, v)| v.clone()).collect();
        secrets.extend(
            redact::url_credentials(&settings.endpoint)
                .into_iter()
                .map(str::to_owned),
        );
        Ok(Self {
            timeout: settings.timeout,
            headers,
            tls,
            client: OnceLock::new(),
            secrets,
            last_error,
        })
    }

    fn client(&self) -> Result<&reqwest::blocking::Client, String> {
        self.client
            .get_or_init(|| {
                reqwest::blocking::Client::builder()
                    .tls_backend_preconfigured(self.tls.clone())
                    .timeout(self.timeout)
                    .connect_timeout(self.timeout)
                    .http1_only()
                    .build()
                    .map_err(|e| format!("the OTLP HTTP client could not be built: {}", chain(&e)))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Sends `request`, within the timeout. A response that is not a success is returned as it is (the exporter counts it); its
    /// description is kept as the last error.
    pub(crate) fn send_blocking(&self, request: Request<Bytes>) -> Result<Response<Bytes>, String> {
        let shown = redact::url(&request.uri().to_string());
        let result = self
            .exchange(request)
            .map_err(|e| format!("POST {shown}: {e}"));
        let failure = match &result {
            Ok(response) if !response.status().is_success() => Some(format!(
                "POST {shown}: the collector answered {}",
                describe_answer(response)
            )),
            Ok(_) => None,
            Err(e) => Some(e.clone()),
        };
        if let Some(failure) = failure {
            let masked = redact::secrets(&failure, self.secrets.iter().map(String::as_str));
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(masked.clone());
            }
            if result.is_err() {
                return Err(masked);
            }
        }
        result
    }

    fn exchange(&self, request: Request<Bytes>) -> Result<Response<Bytes>, String> {
        let client = self.client()?;
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let mut headers = parts.headers;
        for (name, value) in &self.headers {
            headers.insert(name, value.clone());
        }
        let response = client
            .request(parts.method, &url)
            .headers(headers)
            .body(body)
            .send()
            .map_err(|e| self.describe(&e))?;
        let mut answer = Response::builder().status(response.status());
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        let mut kept = Vec::new();
        // A body cut short by the timeout still says something; keep what came.
        let _ = response.take(BODY_LIMIT).read_to_end(&mut kept);
        answer.body(Bytes::from(kept)).map_err(|e| e.to_string())
    }

    fn describe(&self, error: &reqwest::Error) -> String {
        if error.is_timeout() {
            return format!(
                "no answer within the export timeout of {:?} ({})",
                self.timeout,
                chain(error)
            );
        }
        chain(error)
    }
}

/// A non-success answer as a diagnostic: its status, `Retry-After`, and the start of its body.
fn describe_answer(response: &Response<Bytes>) -> String {
    let mut text = response.status().to_string();
    if let Some(after) = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
    {
        text.push_str(&format!(" (Retry-After: {after})"));
    }
    let body = String::from_utf8_lossy(response.body());
    let body = body.trim();
    if !body.is_empty() {
        let printable: String = body
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        text.push_str(": ");
        text.push_str(&printable);
    }
    text
}

/// An error and its sources, as one line, without the URL reqwest would repeat (unmasked).
pub(crate) fn chain(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut first = true;
    while let Some(e) = next {
        let part = if first {
            first = false;
            match e.downcast_ref::<reqwest::Error>() {
                Some(r) => {
                    let kind = if r.is_connect() {
                        "could not connect"
                    } else if r.is_timeout() {
                        "timed out"
                    } else if r.is_body() {
                        "request body"
                    } else if r.is_decode() {
                        "response"
                    } else {
                        "request failed"
                    };
                    kind.to_owned()
                }
                None => e.to_string(),
            }
        } else {
            e.to_string()
        };
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
        next = e.source();
    }
    text
}

impl HttpClient for HttpTransport {
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'async_trait>>
    where
        Self: 'async_trait,
        'life0: 'async_trait,
    {
        Box::pin(async move { self.send_blocking(request).map_err(HttpError::from) })
    }
}
