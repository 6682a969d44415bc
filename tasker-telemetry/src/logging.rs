//! Structured logs: one line per `tracing` event, carrying the correlation id and the task / step
//! context of the spans it happened in, every field through the sensitive-data filter. JSON by
//! default; logfmt, compact and pretty on request. [`init`](crate::init) installs it; add
//! [`LogLayer`] to your own subscriber otherwise.
//!
//! The scopes log the lifecycle (target `tasker::lifecycle`): task started / completed / failed,
//! step completed / failed / retrying, at info, warn or error, with `duration_ms` and a
//! `performance_category` (fast < 0.1 s, moderate < 1 s, slow <= 5 s, very_slow above).
//!
//! A line written inside a span carries the span's `trace_id` and `span_id` (hex, as the
//! exported span has them), so a log search leads to the trace and back.

#[cfg(feature = "otlp-logs")]
mod otlp;

#[cfg(feature = "otlp-logs")]
pub use otlp::{LogExportReport, LogPipeline, OtlpLogLayer};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;
use crate::filter::ParameterFilter;
use crate::timestamp::Timestamp;

/// The target of the lifecycle lines the scopes log.
pub const LIFECYCLE_TARGET: &str = "tasker::lifecycle";

/// `fast` (< 0.1 s), `moderate` (< 1 s), `slow` (<= 5 s) or `very_slow`, as Tasker categorises
/// durations.
///
/// ```
/// assert_eq!(tasker_telemetry::logging::performance_category(0.05), "fast");
/// assert_eq!(tasker_telemetry::logging::performance_category(7.0), "very_slow");
/// ```
pub fn performance_category(seconds: f64) -> &'static str {
    if seconds < 0.1 {
        "fast"
    } else if seconds < 1.0 {
        "moderate"
    } else if seconds <= 5.0 {
        "slow"
    } else {
        "very_slow"
    }
}

/// The task / step context recorded on a `tasker.*` span.
#[derive(Debug, Default, Clone)]
struct SpanContextFields(BTreeMap<&'static str, String>);

struct Collect<'a> {
    fields: &'a mut BTreeMap<&'static str, String>,
    message: Option<&'a mut String>,
}

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record(field, value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record(field, value.to_string());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.record(field, value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record(field, value.to_string());
    }
}

impl Collect<'_> {
    fn record(&mut self, field: &Field, value: String) {
        if field.name() == "message"
            && let Some(message) = self.message.as_deref_mut()
        {
            *message = value;
            return;
        }
        // Span fields come as `tasker.task_id`; log lines use the bare key.
        let name = field.name().strip_prefix("tasker.").unwrap_or(field.name());
        self.fields.insert(name, value);
    }
}

/// Where log lines go.
pub type LogWriter = Arc<Mutex<dyn Write + Send>>;

/// The `tracing` layer writing structured log lines.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tasker_telemetry::config::LogFormat;
/// use tasker_telemetry::logging::LogLayer;
/// use tasker_telemetry::ParameterFilter;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
/// let layer = LogLayer::new(LogFormat::Json, ParameterFilter::tasker_default()).with_writer(buffer.clone());
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
///     tracing::info!(api_token = "secret", "charged");
/// });
/// let line = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
/// let json: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
/// assert_eq!(json["message"], "charged");
/// assert_eq!(json["api_token"], "[FILTERED]");
/// ```
pub struct LogLayer {
    format: LogFormat,
    filter: ParameterFilter,
    writer: LogWriter,
}

impl std::fmt::Debug for LogLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogLayer")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl LogLayer {
    /// A layer writing `format` lines to standard output, fields through `filter`.
    pub fn new(format: LogFormat, filter: ParameterFilter) -> Self {
        Self {
            format,
            filter,
            writer: Arc::new(Mutex::new(std::io::stdout())),
        }
    }

    /// Writes to `writer` instead of standard output.
    pub fn with_writer<W: Write + Send + 'static>(mut self, writer: Arc<Mutex<W>>) -> Self {
        self.writer = writer;
        self
    }

    fn render(
        &self,
        level: &Level,
        target: &str,
        message: &str,
        fields: &BTreeMap<&'static str, String>,
    ) -> String {
        let timestamp = Timestamp::now().to_millis_string();
        match self.format {
            LogFormat::Json => {
                let mut map = serde_json::Map::new();
                map.insert("timestamp".into(), timestamp.into());
                map.insert("level".into(), level.as_str().into());
                map.insert("target".into(), target.into());
                map.insert("message".into(), message.into());
                for (k, v) in fields {
                    let value = match *k {
                        "attempt_number" | "retry_limit" | "total_steps" | "completed_steps"
                        | "failed_steps" => v
                            .parse::<u64>()
                            .map(serde_json::Value::from)
                            .unwrap_or_else(|_| v.clone().into()),
                        "duration_ms" => v
                            .parse::<f64>()
                            .map(serde_json::Value::from)
                            .unwrap_or_else(|_| v.clone().into()),
                        _ => v.clone().into(),
                    };
                    map.insert((*k).to_owned(), value);
                }
                serde_json::Value::Object(map).to_string()
            }
            LogFormat::Logfmt => {
                let mut line = format!(
                    "timestamp={timestamp} level={} target={} message={}",
                    level.as_str().to_lowercase(),
                    quote(target),
                    quote(message)
                );
                for (k, v) in fields {
                    let _ = write!(line, " {k}={}", quote(v));
                }
                line
            }
            LogFormat::Compact => {
                let mut line = format!("{timestamp} {:>5} {target}: {message}", level.as_str());
                for (k, v) in fields {
                    let _ = write!(line, " {k}={v}");
                }
                line
            }
            LogFormat::Pretty => {
                let mut line = format!("{timestamp} {} {target}\n  {message}", level.as_str());
                for (k, v) in fields {
                    let _ = write!(line, "\n    {k}: {v}");
                }
                line
            }
        }
    }
}

fn quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=')
    {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

impl<S> Layer<S> for LogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = BTreeMap::new();
        attrs.record(&mut Collect {
            fields: &mut fields,
            message: None,
        });
        fields.retain(|k, _| CONTEXT_KEYS.contains(k));
        if !fields.is_empty() {
            span.extensions_mut().insert(SpanContextFields(fields));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = BTreeMap::new();
        values.record(&mut Collect {
            fields: &mut fields,
            message: None,
        });
        fields.retain(|k, _| CONTEXT_KEYS.contains(k));
        if fields.is_empty() {
            return;
        }
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanContextFields>() {
            Some(existing) => existing.0.extend(fields),
            None => extensions.insert(SpanContextFields(fields)),
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        let mut message = String::new();
        event.record(&mut Collect {
            fields: &mut fields,
            message: Some(&mut message),
        });
        // Context from the enclosing spans: the innermost value of a key wins.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(context) = span.extensions().get::<SpanContextFields>() {
                    for (k, v) in &context.0 {
                        fields.entry(*k).or_insert_with(|| v.clone());
                    }
                }
            }
        }
        if let Some(seconds) = fields
            .get("duration_ms")
            .and_then(|v| v.parse::<f64>().ok())
            .map(|ms| ms / 1000.0)
        {
            fields.insert(
                "performance_category",
                performance_category(seconds).to_owned(),
            );
        }
        for (key, value) in fields.iter_mut() {
            if let std::borrow::Cow::Owned(masked) = self.filter.filter_field(key, value) {
                *value = masked;
            }
        }
        if let std::borrow::Cow::Owned(masked) = self.filter.scrub(&message) {
            message = masked;
        }
        if let Some((trace_id, span_id)) = current_trace_context() {
            fields.insert("trace_id", trace_id);
            fields.insert("span_id", span_id);
        }
        let meta = event.metadata();
        let line = self.render(meta.level(), meta.target(), &message, &fields);
        if let Ok(mut writer) = self.writer.lock() {
            // A failing writer (closed pipe) must not break the work being logged.
            let _ = writeln!(writer, "{line}");
        }
    }
}

/// The trace and span ids of the OpenTelemetry context current on this thread: the span the
/// line is written in, as the span layer activates it on entering (and as the scopes activate
/// it around their own lifecycle lines). The OTLP log signal takes the same context, so a line
/// names the same span on stdout and in its exported record.
fn current_trace_context() -> Option<(String, String)> {
    use opentelemetry::trace::TraceContextExt as _;
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        let context = span.span_context();
        context.is_valid().then(|| {
            (
                context.trace_id().to_string(),
                context.span_id().to_string(),
            )
        })
    })
}

/// Span fields that become log-line context.
const CONTEXT_KEYS: &[&str] = &[
    "correlation_id",
    "task_id",
    "task_name",
    "step_id",
    "step_name",
    "attempt_number",
    "retry_limit",
];
