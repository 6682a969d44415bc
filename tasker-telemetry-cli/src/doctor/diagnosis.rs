//! One diagnosis per failure: what went wrong, in the user's terms, and the setting that fixes
//! it.

use std::io;
use std::time::Duration;

use rustls::{AlertDescription, CertificateError};

use super::probe::{self, Target};

/// Why the host did not resolve.
pub(crate) fn dns(target: &Target, error: &io::Error) -> String {
    format!(
        "the host name {:?} does not resolve ({error}): check its spelling, or use the collector's IP address",
        target.host
    )
}

/// Why the connection failed.
pub(crate) fn connect(target: &Target, error: &io::Error, timeout: Duration) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => format!(
            "connection refused: nothing listens on {}:{}. Is the collector running, and is the port right (OTLP/HTTP 4318, OTLP/gRPC 4317)?",
            target.host, target.port
        ),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
            "no answer from {}:{} within {timeout:?}: a firewall, or the wrong host",
            target.host, target.port
        ),
        _ => format!("cannot connect to {}:{}: {error}", target.host, target.port),
    }
}

/// Why the TLS handshake failed.
pub(crate) fn tls(target: &Target, error: &io::Error, timeout: Duration) -> String {
    let Some(tls) = probe::tls_error(error) else {
        return match error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
                "TLS: no handshake answer within {timeout:?}: the port may not speak TLS (use http://) or the server is stuck"
            ),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                "TLS: the server closed the connection during the handshake: it may not speak TLS on this port (use http://), or it wants a client certificate (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY)".to_owned()
            }
            _ => format!("TLS handshake failed: {error}"),
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "TLS: the server's certificate is not signed by a CA this process trusts. Set OTEL_EXPORTER_OTLP_CERTIFICATE (or otlp.certificate) to the PEM file of the CA that signed it".to_owned()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "TLS: the server's certificate is not issued for {:?}: connect by a name the certificate lists",
            target.host
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "TLS: the server's certificate has expired".to_owned(),
        rustls::Error::InvalidCertificate(other) => {
            format!("TLS: the server's certificate is refused: {other:?}")
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "TLS: the server did not answer in TLS: this port speaks plain HTTP. Use http:// or the collector's TLS port".to_owned()
        }
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure,
        ) => "TLS: the server refused the handshake: it may require a client certificate (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY)".to_owned(),
        rustls::Error::AlertReceived(AlertDescription::NoApplicationProtocol) => {
            "TLS: the server speaks none of the protocols offered (http/1.1 for OTLP/HTTP, h2 for gRPC): check OTEL_EXPORTER_OTLP_PROTOCOL".to_owned()
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

/// The HTTP status in an export error (`... the collector answered 404 Not Found ...`).
pub(crate) fn answered_status(message: &str) -> Option<u16> {
    let rest = &message[message.find("answered ")? + "answered ".len()..];
    rest.get(..3)?.parse().ok()
}

/// Why a test export was not accepted, from the exporter's error.
pub(crate) fn export(target: &Target, message: &str, grpc: bool) -> String {
    if grpc {
        let has = |code: &str| message.contains(code);
        return if has("Unauthenticated") || has("PermissionDenied") {
            format!("the collector refused the credentials ({message}): {AUTH_FIX}")
        } else if has("Unimplemented") {
            format!(
                "the endpoint is not an OTLP/gRPC trace receiver ({message}): check the port, or use OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
            )
        } else {
            format!("the test export failed: {message}")
        };
    }
    match answered_status(message) {
        Some(401 | 403) => format!("the collector refused the credentials ({message}): {AUTH_FIX}"),
        Some(404) => format!(
            "nothing is at {} (404) on this host: OTLP/HTTP spans go to <base>/v1/traces. OTEL_EXPORTER_OTLP_ENDPOINT takes the base URL (the /v1/traces path is added); OTEL_EXPORTER_OTLP_TRACES_ENDPOINT takes the full URL",
            target.path
        ),
        Some(400 | 415) => format!(
            "the endpoint does not take OTLP/HTTP protobuf ({message}): is it an OTLP receiver? For gRPC, set OTEL_EXPORTER_OTLP_PROTOCOL=grpc"
        ),
        Some(413) => format!("the collector refused the request's size ({message})"),
        Some(429 | 502..=504) => format!(
            "the collector is overloaded or restarting ({message}): spans are dropped and counted until it recovers"
        ),
        Some(status) if status >= 500 => format!("the collector failed ({message}): see its logs"),
        _ if message.contains("no answer within") => format!(
            "the collector accepted the connection but did not answer within the export timeout ({message}): OTEL_EXPORTER_OTLP_TIMEOUT sets it"
        ),
        _ => format!("the test export failed: {message}"),
    }
}

const AUTH_FIX: &str = "set the header it expects with OTEL_EXPORTER_OTLP_HEADERS (for example \"authorization=Bearer <token>\" or \"x-api-key=<key>\")";

/// Why the metrics endpoint did not serve metrics.
pub(crate) fn scrape(status: u16, target: &Target, metrics_endpoint: &str) -> String {
    match status {
        401 | 403 => "the metrics endpoint wants a bearer token: set TASKER_METRICS_AUTH_TOKEN to the service's metrics_auth_token (and TASKER_METRICS_AUTH_REQUIRED=true)".to_owned(),
        404 => format!(
            "nothing is at {} (404): the router mounts metrics at metrics_endpoint ({metrics_endpoint}); the standalone MetricsServer serves /metrics",
            target.path
        ),
        other => format!("the metrics endpoint answered {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_read_from_the_exporters_message() {
        let message =
            "POST http://127.0.0.1:1/v1/traces: the collector answered 401 Unauthorized: no token";
        assert_eq!(answered_status(message), Some(401));
        assert_eq!(answered_status("connection refused"), None);
        let target = Target::parse("http://127.0.0.1:1/v1/traces").unwrap();
        assert!(export(&target, message, false).contains("OTEL_EXPORTER_OTLP_HEADERS"));
    }
}
