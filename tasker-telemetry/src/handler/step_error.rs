//! [`StepError`], the error a step's outcome carries, and how a user's own error becomes one:
//! its message with the cause chain, the most specific class that can be known, a backtrace
//! when it carries one, and whether another attempt may succeed ([`Retryable`]).

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

use crate::scope::Failure;

/// An error a step can return when it has no error type of its own, with Tasker's
/// retryable / permanent distinction. It is also what every other error `process()` returns is
/// reported as (see [`StepError::from_error`]).
///
/// ```
/// use tasker_telemetry::handler::StepError;
///
/// let e = StepError::permanent("card declined").with_class("PaymentDeclined");
/// assert!(!e.is_retryable());
/// assert_eq!(e.class(), "PaymentDeclined");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    message: Cow<'static, str>,
    class: Cow<'static, str>,
    retryable: bool,
    backtrace: Option<Arc<str>>,
}

impl StepError {
    /// A retryable error.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: message.into(),
            class: Cow::Borrowed("StepError"),
            retryable: true,
            backtrace: None,
        }
    }

    /// An error that retrying cannot fix: the workflow runner makes no further attempt.
    pub fn permanent(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            retryable: false,
            ..Self::new(message)
        }
    }

    /// Sets the class events report (default `StepError`).
    pub fn with_class(mut self, class: impl Into<Cow<'static, str>>) -> Self {
        self.class = class.into();
        self
    }

    /// Sets whether another attempt may succeed.
    ///
    /// ```
    /// use tasker_telemetry::StepError;
    ///
    /// assert!(!StepError::new("card declined").with_retryable(false).is_retryable());
    /// ```
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Attaches a backtrace (reported as the `backtrace` payload key).
    ///
    /// ```
    /// use tasker_telemetry::StepError;
    ///
    /// let e = StepError::new("boom").with_backtrace("0: main");
    /// assert_eq!(e.backtrace(), Some("0: main"));
    /// ```
    pub fn with_backtrace(mut self, backtrace: impl Into<Arc<str>>) -> Self {
        self.backtrace = Some(backtrace.into());
        self
    }

    /// The message, with the cause chain (`outer: inner: root`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The class events report.
    pub fn class(&self) -> &str {
        &self.class
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The backtrace the error carried, if any.
    pub fn backtrace(&self) -> Option<&str> {
        self.backtrace.as_deref()
    }

    /// A step error from any error value: its message followed by its sources (as anyhow's
    /// `{:#}`), its concrete type's name as the class, retryable. A `StepError` is returned as it
    /// is.
    ///
    /// ```
    /// use tasker_telemetry::StepError;
    ///
    /// let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "gateway timed out");
    /// let e = StepError::from_error(&io);
    /// assert_eq!(e.message(), "gateway timed out");
    /// assert_eq!(e.class(), "std::io::error::Error");
    /// assert!(e.is_retryable());
    /// ```
    pub fn from_error<E: Error + 'static>(error: &E) -> Self {
        if let Some(step) = (error as &dyn Error).downcast_ref::<StepError>() {
            return step.clone();
        }
        Self::new(chain_message(error)).with_class(std::any::type_name::<E>())
    }

    /// A step error from a type-erased error (a `Box<dyn Error>`, anyhow's or eyre's root
    /// cause): the class is recovered where the error is one of the standard library's or
    /// `serde_json`'s error types, or a `StepError`; otherwise it is `container`. A `StepError`
    /// anywhere in the chain also decides retryability and, unless a known type is its source,
    /// the class.
    pub(crate) fn from_dyn(
        error: &(dyn Error + 'static),
        message: String,
        root: &(dyn Error + 'static),
        container: &'static str,
    ) -> Self {
        let mut out = Self::new(message).with_class(known_class(root).unwrap_or(container.into()));
        let mut cause: Option<&(dyn Error + 'static)> = Some(error);
        while let Some(e) = cause {
            if let Some(step) = e.downcast_ref::<StepError>() {
                out.retryable = step.retryable;
                if out.class == container {
                    out.class = step.class.clone();
                }
                if out.backtrace.is_none() {
                    out.backtrace = step.backtrace.clone();
                }
                break;
            }
            cause = e.source();
        }
        out
    }

    pub(crate) fn failure(&self) -> Failure {
        let failure = Failure::new(self.message.to_string(), self.class.clone());
        match &self.backtrace {
            Some(bt) => failure.with_backtrace(bt.clone()),
            None => failure,
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for StepError {}

/// Says whether another attempt of a failed step may succeed. Implement it for your own error
/// type and `#[step_handler]` reports the answer: a permanent error (`false`) ends the step's
/// attempts in the workflow runner, without converting your error to [`StepError`]. Error types
/// that do not implement it are retryable.
///
/// ```
/// use tasker_telemetry::handler::Retryable;
/// use tasker_telemetry::{step_handler, Sequence, Step, StepHandler, Task, Telemetry};
///
/// #[derive(Debug, thiserror::Error)]
/// enum PaymentError {
///     #[error("card declined")]
///     Declined,
///     #[error("gateway timed out")]
///     Timeout,
/// }
///
/// impl Retryable for PaymentError {
///     fn is_retryable(&self) -> bool {
///         matches!(self, PaymentError::Timeout)
///     }
/// }
///
/// struct ChargeCard;
///
/// #[step_handler(retry_limit = 3)]
/// impl ChargeCard {
///     fn process(&self, _step: &Step) -> Result<(), PaymentError> {
///         Err(PaymentError::Declined)
///     }
/// }
///
/// let task = Task::new(Telemetry::global(), "42", "checkout", serde_json::Value::Null);
/// let step = task.step("42-1", "charge_card");
/// let error = ChargeCard.handle(&task, &Sequence::new(), &step).now().unwrap().unwrap_err();
/// assert!(!error.is_retryable());
/// assert!(error.class().ends_with("PaymentError"));
/// ```
pub trait Retryable {
    /// Whether another attempt may succeed.
    fn is_retryable(&self) -> bool;
}

impl Retryable for StepError {
    fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// The error's message followed by each of its sources, `outer: inner: root`.
pub(crate) fn chain_message(error: &dyn Error) -> String {
    Failure::from_error(error).message().to_owned()
}

/// The type name of a type-erased error, where it is one this crate can name.
fn known_class(error: &(dyn Error + 'static)) -> Option<Cow<'static, str>> {
    if let Some(step) = error.downcast_ref::<StepError>() {
        return Some(step.class.clone());
    }
    macro_rules! known {
        ($($ty:ty),* $(,)?) => {
            $(if error.is::<$ty>() {
                return Some(Cow::Borrowed(std::any::type_name::<$ty>()));
            })*
        };
    }
    known!(
        std::io::Error,
        std::fmt::Error,
        std::num::ParseIntError,
        std::num::ParseFloatError,
        std::num::TryFromIntError,
        std::str::ParseBoolError,
        std::str::Utf8Error,
        std::string::FromUtf8Error,
        std::net::AddrParseError,
        std::env::VarError,
        std::time::SystemTimeError,
        serde_json::Error,
    );
    None
}

/// A backtrace's text, when one was captured.
#[cfg(feature = "anyhow")]
pub(crate) fn captured(backtrace: &std::backtrace::Backtrace) -> Option<Arc<str>> {
    (backtrace.status() == std::backtrace::BacktraceStatus::Captured)
        .then(|| backtrace.to_string().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("loading the cart failed")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_typed_error_keeps_its_type_and_its_cause_chain() {
        let e = StepError::from_error(&Outer(std::io::Error::other("connection reset")));
        assert_eq!(e.message(), "loading the cart failed: connection reset");
        assert!(e.class().ends_with("::Outer"), "{}", e.class());
        assert!(e.is_retryable());
    }

    #[test]
    fn a_boxed_error_names_its_root_cause_when_it_is_known_and_else_its_container() {
        let boxed: Box<dyn Error + Send + Sync> = Box::new(Outer(std::io::Error::other("reset")));
        let root = std::io::Error::other("reset");
        let e = StepError::from_dyn(&*boxed, chain_message(&*boxed), &root, "Box<dyn Error>");
        assert_eq!(e.class(), "std::io::error::Error");
        let e = StepError::from_dyn(&*boxed, chain_message(&*boxed), &*boxed, "Box<dyn Error>");
        assert_eq!(e.class(), "Box<dyn Error>");
    }

    #[test]
    fn a_step_error_in_the_chain_decides_retryability() {
        #[derive(Debug)]
        struct Wrapped(StepError);
        impl fmt::Display for Wrapped {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("charging")
            }
        }
        impl Error for Wrapped {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let inner = StepError::permanent("declined").with_class("Declined");
        let outer = Wrapped(inner.clone());
        let e = StepError::from_dyn(&outer, chain_message(&outer), &inner, "anyhow::Error");
        assert!(!e.is_retryable());
        assert_eq!(e.class(), "Declined");
        assert_eq!(e.message(), "charging: declined");
    }
}
