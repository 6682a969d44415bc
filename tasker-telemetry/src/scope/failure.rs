//! The failure value an attempt or a task reports: message, class, backtrace.

use std::borrow::Cow;
use std::sync::Arc;

use crate::filter::ParameterFilter;

/// A failure as events report it: message, error class and optional backtrace.
///
/// ```
/// use tasker_telemetry::scope::Failure;
///
/// let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "gateway timed out");
/// let failure = Failure::from_error(&err);
/// assert_eq!(failure.message(), "gateway timed out");
/// assert_eq!(failure.class(), "std::io::error::Error");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub(super) message: Arc<str>,
    pub(super) class: Cow<'static, str>,
    pub(super) backtrace: Option<Arc<str>>,
}

impl Failure {
    /// A failure with an explicit message and class.
    pub fn new(message: impl Into<Arc<str>>, class: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: message.into(),
            class: class.into(),
            backtrace: None,
        }
    }

    /// A failure from an error value: its `Display` text followed by each of its sources
    /// (`outer: inner: root`, as `#[step_handler]` reports it), and its concrete type's name as
    /// the class.
    pub fn from_error<E: std::error::Error + ?Sized>(error: &E) -> Self {
        let mut message = error.to_string();
        let mut cause = error.source();
        while let Some(e) = cause {
            message.push_str(": ");
            message.push_str(&e.to_string());
            cause = e.source();
        }
        Self::new(message, std::any::type_name::<E>())
    }

    /// Attaches a backtrace.
    pub fn with_backtrace(mut self, backtrace: impl Into<Arc<str>>) -> Self {
        self.backtrace = Some(backtrace.into());
        self
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error's class (type name, or `panic`).
    pub fn class(&self) -> &str {
        &self.class
    }

    /// The captured backtrace, if any.
    pub fn backtrace(&self) -> Option<&str> {
        self.backtrace.as_deref()
    }

    /// This failure with the secrets `filter` finds in its message and backtrace masked
    /// ([`ParameterFilter::scrub`]), borrowed when there are none. Every sink reports the
    /// failure through this, once per failure: a step that does not fail pays nothing.
    ///
    /// ```
    /// use tasker_telemetry::ParameterFilter;
    /// use tasker_telemetry::scope::Failure;
    ///
    /// let failure = Failure::new("no account for ada@example.com", "NotFound");
    /// let scrubbed = failure.scrubbed(&ParameterFilter::tasker_default());
    /// assert_eq!(scrubbed.message(), "no account for [FILTERED]");
    /// assert_eq!(scrubbed.class(), "NotFound");
    /// ```
    pub fn scrubbed(&self, filter: &ParameterFilter) -> Cow<'_, Self> {
        let message = filter.scrub(&self.message);
        let backtrace = self.backtrace.as_deref().map(|b| filter.scrub(b));
        let backtrace_found = matches!(backtrace, Some(Cow::Owned(_)));
        if matches!(message, Cow::Borrowed(_)) && !backtrace_found {
            return Cow::Borrowed(self);
        }
        Cow::Owned(Self {
            message: message.into_owned().into(),
            class: self.class.clone(),
            backtrace: match backtrace {
                Some(Cow::Owned(scrubbed)) => Some(scrubbed.into()),
                _ => self.backtrace.clone(),
            },
        })
    }
}

/// A panic's message, for the failure that reports it (`None` for a payload that is not text).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}
