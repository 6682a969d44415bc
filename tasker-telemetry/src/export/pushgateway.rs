//! Pushing metrics to a Prometheus Pushgateway, for jobs that end before Prometheus would scrape
//! them: at each task's end and once more when the push is finished.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;

use super::{ExportError, ExportRegistry, ExporterPlugin};
use crate::config::{MetricsFormat, TlsFiles};
use crate::event::names;
use crate::metrics::{MetricsSnapshot, prometheus_text};
use crate::publisher::{SubscribeError, SubscriptionHandle};
use crate::subscriber::{self, Delivery};
use crate::telemetry::Telemetry;

/// How a push replaces what the gateway holds for the grouping key.
///
/// ```
/// use tasker_telemetry::export::{PushMethod, Pushgateway};
///
/// let gateway = Pushgateway::new("http://127.0.0.1:9091", "nightly_import")?
///     .with_method(PushMethod::Post);
/// assert_eq!(gateway.method(), PushMethod::Post);
/// # Ok::<(), tasker_telemetry::export::PushError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushMethod {
    /// `PUT`: the push replaces every metric of the group, so a metric the process no longer
    /// has disappears from the gateway. The default: each push is the process's whole state.
    #[default]
    Put,
    /// `POST`: the push replaces only the metrics of the same name; others already in the group
    /// (pushed by another process under the same key) stay.
    Post,
}

/// Why a push could not be set up or did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The gateway's address is not an `http://` or `https://` URL with a host.
    #[error("pushgateway URL {0:?} is not http://host[:port][/path] or https://...")]
    Url(String),
    /// An empty job name.
    #[error("the pushgateway job name is empty; give the job's name")]
    EmptyJob,
    /// A grouping label whose name Prometheus does not accept, or that repeats `job` or another
    /// label.
    #[error(
        "grouping label {0:?}: a label name is [a-zA-Z_][a-zA-Z0-9_]*, not starting with __, not `job` (the job is given to Pushgateway::new), and given once"
    )]
    Label(String),
    /// The HTTP client could not be built.
    #[error("the pushgateway HTTP client could not be built: {0}")]
    Client(String),
    /// The push was not accepted: the request failed or the gateway answered an error.
    #[error("{method} {url}: {reason}")]
    Push {
        /// `PUT`, `POST` or `DELETE`.
        method: &'static str,
        /// The group's URL.
        url: String,
        /// The transport error, or the gateway's status and answer.
        reason: String,
    },
    /// The final push of [`PushAtTaskEnd::finish`] failed (counted like every failed push).
    #[error("the final push failed: {0}")]
    FinalPush(String),
    /// Subscribing to the task events failed.
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    /// Registering the gateway as an exporter failed.
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// A Pushgateway group: the gateway's address and the grouping key (`job`, then labels such as
/// `instance`), with the method and timeout of each push.
///
/// It is an [`ExporterPlugin`] (name `pushgateway`, Prometheus text), so a failed push is
/// reported like any export: `tasker.telemetry.export_failed` and
/// `tasker_export_failures_total{plugin="pushgateway"}`. [`push_at_task_end`] pushes when each
/// task ends and once more at the end.
///
/// ```
/// use tasker_telemetry::export::Pushgateway;
///
/// let gateway = Pushgateway::new("http://127.0.0.1:9091", "nightly_import")?.with_instance("worker-3")?;
/// assert_eq!(gateway.url(), "http://127.0.0.1:9091/metrics/job/nightly_import/instance/worker-3");
/// // A value with a slash travels base64-encoded, as the gateway asks.
/// let odd = Pushgateway::new("http://127.0.0.1:9091/", "a/b")?;
/// assert_eq!(odd.url(), "http://127.0.0.1:9091/metrics/job@base64/YS9i");
/// # Ok::<(), tasker_telemetry::export::PushError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pushgateway {
    base: String,
    grouping: Vec<(String, String)>,
    method: PushMethod,
    timeout: Duration,
    tls: TlsFiles,
    /// The HTTP client, built at the first push and shared by the clones (the exporter's and
    /// the final push's): building one loads the trusted roots.
    client: Arc<OnceLock<Result<reqwest::blocking::Client, String>>>,
}

impl Pushgateway {
    /// A group of job `job` on the gateway at `url` (`http://host:9091`, optionally with a path
    /// prefix).
    pub fn new(url: &str, job: &str) -> Result<Self, PushError> {
        let base = url.trim_end_matches('/');
        let host = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .map(|rest| rest.split('/').next().unwrap_or_default());
        if host.is_none_or(|h| h.is_empty() || h.contains(char::is_whitespace)) {
            return Err(PushError::Url(url.to_owned()));
        }
        if job.is_empty() {
            return Err(PushError::EmptyJob);
        }
        Ok(Self {
            base: base.to_owned(),
            grouping: vec![("job".to_owned(), job.to_owned())],
            method: PushMethod::default(),
            timeout: Duration::from_secs(10),
            tls: TlsFiles::default(),
            client: Arc::default(),
        })
    }

    /// Adds the `instance` label to the grouping key.
    pub fn with_instance(self, instance: &str) -> Result<Self, PushError> {
        self.with_label("instance", instance)
    }

    /// Adds a label to the grouping key.
    pub fn with_label(mut self, name: &str, value: &str) -> Result<Self, PushError> {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with("__")
            && self.grouping.iter().all(|(n, _)| n != name);
        if !valid {
            return Err(PushError::Label(name.to_owned()));
        }
        self.grouping.push((name.to_owned(), value.to_owned()));
        Ok(self)
    }

    /// Sets how a push replaces the group's metrics (default [`PushMethod::Put`]).
    pub fn with_method(mut self, method: PushMethod) -> Self {
        self.method = method;
        self
    }

    /// Sets the time each push may take (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.client = Arc::default();
        self
    }

    /// Trusts `tls`'s CA (and presents its client certificate) for an `https://` gateway.
    pub fn with_tls(mut self, tls: TlsFiles) -> Self {
        self.tls = tls;
        self.client = Arc::default();
        self
    }

    /// The push method.
    pub fn method(&self) -> PushMethod {
        self.method
    }

    /// The group's URL: `<gateway>/metrics/job/<job>{/<label>/<value>}`, each value that is not
    /// plain text base64-encoded (`<label>@base64/<value>`).
    pub fn url(&self) -> String {
        let mut url = format!("{}/metrics", self.base);
        for (name, value) in &self.grouping {
            let plain = !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
            if plain {
                url.push_str(&format!("/{name}/{value}"));
            } else {
                let encoded = base64::engine::general_purpose::URL_SAFE.encode(value);
                // The gateway's spelling of an empty value.
                let encoded = if encoded.is_empty() {
                    "=".into()
                } else {
                    encoded
                };
                url.push_str(&format!("/{name}@base64/{encoded}"));
            }
        }
        url
    }

    /// Pushes `snapshot` (Prometheus text) to the group.
    pub fn push(&self, snapshot: &MetricsSnapshot) -> Result<(), PushError> {
        let method = match self.method {
            PushMethod::Put => reqwest::Method::PUT,
            PushMethod::Post => reqwest::Method::POST,
        };
        self.send(method, Some(prometheus_text(snapshot)))
    }

    /// Deletes the group from the gateway.
    pub fn delete(&self) -> Result<(), PushError> {
        self.send(reqwest::Method::DELETE, None)
    }

    fn send(&self, method: reqwest::Method, body: Option<String>) -> Result<(), PushError> {
        let url = self.url();
        let shown: &'static str = match method {
            reqwest::Method::PUT => "PUT",
            reqwest::Method::POST => "POST",
            _ => "DELETE",
        };
        let failed = |reason: String| PushError::Push {
            method: shown,
            url: crate::redact::url(&url),
            reason,
        };
        let client = self
            .client
            .get_or_init(|| {
                let tls = crate::otlp::tls::client_config(&self.tls, url.starts_with("https://"))?;
                reqwest::blocking::Client::builder()
                    .tls_backend_preconfigured(tls)
                    .timeout(self.timeout)
                    .connect_timeout(self.timeout)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| PushError::Client(e.clone()))?;
        let mut request = client.request(method, &url);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                .body(body);
        }
        // The transport's wording: the URL (shown masked above) is not repeated unmasked.
        let response = request
            .send()
            .map_err(|e| failed(crate::otlp::transport::chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let answer = response.text().unwrap_or_default();
        Err(failed(format!(
            "the gateway answered {status}: {}",
            answer.trim().chars().take(300).collect::<String>()
        )))
    }
}

impl ExporterPlugin for Pushgateway {
    fn name(&self) -> &str {
        "pushgateway"
    }

    fn supported_formats(&self) -> &[MetricsFormat] {
        &[MetricsFormat::Prometheus]
    }

    fn export(
        &self,
        snapshot: &MetricsSnapshot,
        _format: MetricsFormat,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.push(snapshot)?)
    }
}

/// Pushes `telemetry`'s metrics to `gateway` whenever a task ends (`task.completed`,
/// `task.failed`, `task.cancelled`), from a thread of its own so that the task never waits on
/// the network, and once more from [`PushAtTaskEnd::finish`] (or its drop), so the last state is
/// pushed before the process exits. Pushes that fail are counted in
/// `tasker_export_failures_total{plugin="pushgateway"}`; task ends that arrive while a push is
/// still queued behind a slow gateway are dropped and counted
/// (`tasker_telemetry_dropped_total{sink="subscriber"}`), the next push carrying their metrics.
///
/// ```
/// use tasker_telemetry::export::{push_at_task_end, Pushgateway};
/// use tasker_telemetry::Telemetry;
///
/// let telemetry = Telemetry::new(Default::default())?;
/// // Nothing listens on port 9 here: the pushes fail and are counted, nothing else happens.
/// let gateway = Pushgateway::new("http://127.0.0.1:9", "nightly_import")?;
/// let pushing = push_at_task_end(&telemetry, gateway)?;
/// assert!(pushing.finish().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn push_at_task_end(
    telemetry: &Telemetry,
    gateway: Pushgateway,
) -> Result<PushAtTaskEnd, PushError> {
    let exports = Arc::new(ExportRegistry::new(telemetry)?);
    exports.register(gateway.clone())?;
    let pushing = exports.clone();
    let subscription = telemetry.publisher().subscribe_with(
        &[
            names::TASK_COMPLETED.as_str(),
            names::TASK_FAILED.as_str(),
            names::TASK_CANCELLED.as_str(),
        ],
        subscriber::from_fn("pushgateway", move |_| {
            pushing.export_all(MetricsFormat::Prometheus);
        }),
        Delivery::Asynchronous { capacity: 2 },
    )?;
    Ok(PushAtTaskEnd {
        subscription: Some(subscription),
        exports,
        gateway,
    })
}

/// Pushing at each task's end, started by [`push_at_task_end`]; finishing (or dropping) it
/// stops the pushes and pushes the final state once.
#[derive(Debug)]
#[must_use = "dropping it at once stops the pushes (after one final push)"]
pub struct PushAtTaskEnd {
    subscription: Option<SubscriptionHandle>,
    exports: Arc<ExportRegistry>,
    gateway: Pushgateway,
}

impl PushAtTaskEnd {
    /// Stops pushing at task ends and pushes the metrics as they are now; the push's own
    /// outcome (also counted like the others).
    pub fn finish(mut self) -> Result<(), PushError> {
        self.final_push()
    }

    fn final_push(&mut self) -> Result<(), PushError> {
        let Some(subscription) = self.subscription.take() else {
            return Ok(());
        };
        subscription.unsubscribe();
        match self
            .exports
            .export_one(self.gateway.name(), MetricsFormat::Prometheus)
        {
            Some(Err(reason)) => Err(PushError::FinalPush(reason)),
            _ => Ok(()),
        }
    }
}

impl Drop for PushAtTaskEnd {
    fn drop(&mut self) {
        let _ = self.final_push();
    }
}
