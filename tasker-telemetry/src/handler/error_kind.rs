//! How `#[step_handler]`'s generated code turns whatever error `process()` returned into a
//! [`StepError`], choosing by the error's type at the handler's own definition.
//!
//! The choice is autoderef specialisation: the generated code calls
//! `(&&&ErrorKind(&error)).to_step_error()`, and method lookup takes the first of these that
//! applies, in this order:
//! 1. `StepError` itself, as it is;
//! 2. `E: Error + Retryable`: the user's type, asked whether it is retryable;
//! 3. `E: Error`, `Box<dyn Error ...>`, `anyhow::Error`, `eyre::Report` (distinct types, so at
//!    most one applies);
//! 4. otherwise an inherent method whose bound carries the compile error the user sees.
//!
//! A blanket `impl<E: Error> From<E>` cannot do this: `anyhow::Error` and `Box<dyn Error>` do
//! not implement `Error`, and coherence forbids a second impl beside the blanket one for them.

use std::error::Error;

use super::step_error::{Retryable, StepError, chain_message};

/// An error `process()` returned, borrowed for classification.
pub struct ErrorKind<'a, E: ?Sized>(pub &'a E);

impl<E: ?Sized> Clone for ErrorKind<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E: ?Sized> Copy for ErrorKind<'_, E> {}

/// Level 1: a `StepError` is reported as it is.
pub trait ViaStepError {
    /// The step error.
    fn to_step_error(&self) -> StepError;
}

impl ViaStepError for &&ErrorKind<'_, StepError> {
    fn to_step_error(&self) -> StepError {
        self.0.clone()
    }
}

/// Level 2: the user's error type says whether it is retryable.
pub trait ViaRetryable {
    /// The step error.
    fn to_step_error(&self) -> StepError;
}

impl<E: Error + Retryable + 'static> ViaRetryable for &ErrorKind<'_, E> {
    fn to_step_error(&self) -> StepError {
        StepError::from_error(self.0).with_retryable(self.0.is_retryable())
    }
}

/// Level 3: any error type; retryable.
pub trait ViaError {
    /// The step error.
    fn to_step_error(&self) -> StepError;
}

impl<E: Error + 'static> ViaError for ErrorKind<'_, E> {
    fn to_step_error(&self) -> StepError {
        StepError::from_error(self.0)
    }
}

/// Level 3: a boxed error; its class is its root cause's where that can be named.
pub trait ViaBoxed {
    /// The step error.
    fn to_step_error(&self) -> StepError;
}

macro_rules! boxed {
    ($($bounds:tt)*) => {
        impl ViaBoxed for ErrorKind<'_, Box<dyn Error $($bounds)*>> {
            fn to_step_error(&self) -> StepError {
                let error: &(dyn Error + 'static) = &**self.0;
                let mut root = error;
                while let Some(next) = root.source() {
                    root = next;
                }
                StepError::from_dyn(
                    error,
                    chain_message(error),
                    root,
                    concat!("Box<dyn std::error::Error", $(" ", stringify!($bounds),)* ">"),
                )
            }
        }
    };
}
boxed!();
boxed!(+ Send);
boxed!(+ Send + Sync);

/// Level 3: an `anyhow::Error`; its class is its root cause's where that can be named.
#[cfg(feature = "anyhow")]
pub trait ViaAnyhow {
    /// The step error.
    fn to_step_error(&self) -> StepError;
}

#[cfg(feature = "anyhow")]
impl ViaAnyhow for ErrorKind<'_, anyhow::Error> {
    fn to_step_error(&self) -> StepError {
        let error = self.0;
        let out = StepError::from_dyn(
            error.as_ref(),
            format!("{error:#}"),
            error.root_cause(),
            "anyhow::Error",
        );
        match super::step_error::captured(error.backtrace()) {
            Some(bt) if out.backtrace().is_none() => out.with_backtrace(bt),
            _ => out,
        }
    }
}

/// Level 3: an `eyre::Report`; its class is its root cause's where that can be named.
#[cfg(feature = "eyre")]
pub trait ViaEyre {
    /// The step error.
    fn to_step_error(&self) -> StepError;
}

#[cfg(feature = "eyre")]
impl ViaEyre for ErrorKind<'_, eyre::Report> {
    fn to_step_error(&self) -> StepError {
        let error = self.0;
        let mut message = String::new();
        for (i, cause) in error.chain().enumerate() {
            if i > 0 {
                message.push_str(": ");
            }
            message.push_str(&cause.to_string());
        }
        StepError::from_dyn(error.as_ref(), message, error.root_cause(), "eyre::Report")
    }
}

/// What `process()` may fail with. Exists to give a clear compile error; never implement it.
#[diagnostic::on_unimplemented(
    message = "process() fails with `{Self}`, which tasker-telemetry cannot report as a step error",
    label = "`{Self}` is not an error type tasker-telemetry accepts",
    note = "accepted: any `E: std::error::Error + 'static` (a thiserror enum, std::io::Error, ...), `tasker_telemetry::StepError`, `Box<dyn std::error::Error + Send + Sync>`, `anyhow::Error` (tasker-telemetry's cargo feature `anyhow`) and `eyre::Report` (its feature `eyre`)"
)]
pub trait StepFailure {}

impl<'a, E: ?Sized> ErrorKind<'a, E> {
    /// Level 4: nothing above applied; the bound is the compile error.
    pub fn to_step_error(self) -> StepError
    where
        E: StepFailure,
    {
        StepError::new("unsupported error type")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Declined;
    impl std::fmt::Display for Declined {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("declined")
        }
    }
    impl Error for Declined {}
    impl Retryable for Declined {
        fn is_retryable(&self) -> bool {
            false
        }
    }

    #[derive(Debug)]
    struct Plain;
    impl std::fmt::Display for Plain {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("plain")
        }
    }
    impl Error for Plain {}

    #[test]
    #[allow(clippy::needless_borrow)] // the borrows choose the level
    fn each_kind_takes_its_level() {
        let step = StepError::permanent("no").with_class("Custom");
        assert_eq!((&&&ErrorKind(&step)).to_step_error(), step);
        let declined = (&&&ErrorKind(&Declined)).to_step_error();
        assert!(!declined.is_retryable());
        assert!(declined.class().ends_with("Declined"));
        let plain = (&&&ErrorKind(&Plain)).to_step_error();
        assert!(plain.is_retryable());
        assert!(plain.class().ends_with("Plain"));
        let boxed: Box<dyn Error + Send + Sync> = Box::new(std::io::Error::other("reset"));
        let boxed = (&&&ErrorKind(&boxed)).to_step_error();
        assert_eq!(boxed.class(), "std::io::error::Error");
        let opaque: Box<dyn Error + Send + Sync> = Box::new(Plain);
        assert_eq!(
            (&&&ErrorKind(&opaque)).to_step_error().class(),
            "Box<dyn std::error::Error + Send + Sync>"
        );
    }
}
