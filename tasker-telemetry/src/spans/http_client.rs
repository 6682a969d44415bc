//! A small blocking HTTP/1.1 client for OTLP/HTTP export over plain `http://`, so the default
//! build needs no hyper, reqwest or async runtime. The batch span processor calls it on its own
//! thread, so blocking here never blocks a step.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry_http::{HttpClient, HttpError};

/// Sends each request on a new connection, with connect / read / write timeouts.
#[derive(Debug, Clone)]
pub(crate) struct StdHttpClient {
    pub(crate) timeout: Duration,
    /// The last transport error in full: the OTLP exporter reports only "network error", and a
    /// diagnostic should say which (refused, timed out, unresolvable).
    pub(crate) last_error: Arc<Mutex<Option<String>>>,
}

impl StdHttpClient {
    pub(crate) fn send_blocking(
        &self,
        request: Request<Bytes>,
    ) -> Result<Response<Bytes>, HttpError> {
        let uri = request.uri();
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "unsupported scheme in {uri}: the built-in OTLP client speaks plain http:// only"
            )
            .into());
        }
        let host = uri.host().ok_or_else(|| format!("no host in {uri}"))?;
        let port = uri.port_u16().unwrap_or(80);
        let addr = (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| format!("{host}:{port} resolves to no address"))?;
        let mut stream = TcpStream::connect_timeout(&addr, self.timeout)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;

        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut head = format!(
            "{} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
            request.method(),
            request.body().len()
        );
        for (name, value) in request.headers() {
            if let Ok(value) = value.to_str() {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(request.body())?;
        stream.flush()?;

        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line)?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("malformed HTTP status line {status_line:?}"))?;
        let mut content_length = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.trim().eq_ignore_ascii_case("content-length")
            {
                content_length = v.trim().parse::<usize>().ok();
            }
        }
        // The body matters only for error details; bound what we read.
        let mut body = Vec::new();
        let limit = content_length.unwrap_or(64 * 1024).min(64 * 1024) as u64;
        let _ = reader.take(limit).read_to_end(&mut body);
        Ok(Response::builder().status(status).body(Bytes::from(body))?)
    }
}

impl StdHttpClient {
    /// The transport error as a diagnostic. A read or write timeout surfaces from the socket as
    /// `WouldBlock` ("Resource temporarily unavailable" on Linux), which says nothing about a
    /// collector that stopped answering; name the timeout instead.
    fn describe(&self, error: &(dyn std::error::Error + 'static)) -> String {
        match error
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
        {
            Some(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                format!("timed out: no response within {:?} ({error})", self.timeout)
            }
            _ => error.to_string(),
        }
    }
}

impl HttpClient for StdHttpClient {
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'async_trait>>
    where
        Self: 'async_trait,
        'life0: 'async_trait,
    {
        Box::pin(async move {
            let uri = request.uri().to_string();
            let result = self.send_blocking(request);
            if let (Err(e), Ok(mut last)) = (&result, self.last_error.lock()) {
                *last = Some(format!("{uri}: {}", self.describe(e.as_ref())));
            }
            result
        })
    }
}
