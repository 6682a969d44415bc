//! The network steps of a check, one at a time so that a failure names the step: resolving the
//! host, connecting, and shaking hands over TLS.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use rustls::pki_types::ServerName;

/// An endpoint's host and port, from its URL.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) https: bool,
    pub(crate) path: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let parsed = Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
        let https = match parsed.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(format!("scheme {other}:// is neither http:// nor https://")),
        };
        let host = parsed
            .host_str()
            .ok_or("the URL names no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed
            .port_or_known_default()
            .ok_or("the URL names no port")?;
        Ok(Self {
            host,
            port,
            https,
            path: parsed.path().to_owned(),
        })
    }
}

/// The addresses the host resolves to.
pub(crate) fn resolve(target: &Target) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()?
        .collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the name resolved to no address",
        ));
    }
    Ok(addrs)
}

/// A connection to the first address that accepts one; the last error otherwise.
pub(crate) fn connect(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Completes a TLS handshake over `stream` with `config`, checking the certificate for `host`.
/// The protocol agreed (ALPN), if any.
pub(crate) fn handshake(
    mut stream: TcpStream,
    host: &str,
    config: rustls::ClientConfig,
    timeout: Duration,
) -> io::Result<Option<String>> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    while connection.is_handshaking() {
        connection.complete_io(&mut stream)?;
    }
    Ok(connection
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned()))
}

/// The TLS error inside an I/O error from [`handshake`], if it is one.
pub(crate) fn tls_error(error: &io::Error) -> Option<&rustls::Error> {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
}
