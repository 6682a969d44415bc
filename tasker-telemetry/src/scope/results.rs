//! A step's results as its `step.completed` event carries them, and the failure reported when
//! they cannot be serialised.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;

use super::{Failure, panic_message};

/// A step's results as the `step.completed` event carries them (filtered), or the failure to
/// report instead when their `Serialize` fails or panics. Out of line: the attempt's success path
/// stays small enough for its callees to be inlined into it.
#[inline(never)]
pub(super) fn results_json<T: Serialize + ?Sized>(
    result: &T,
    filter: &crate::filter::ParameterFilter,
) -> Result<serde_json::Value, Failure> {
    let mut value =
        serialise_guarded(|| crate::filter::to_value_bounded(result, crate::filter::Past::Masked))?;
    filter.filter_in_place(&mut value);
    Ok(value)
}

/// Whether a step's results serialise, when no event carries them: the same `Serialize` run
/// [`results_json`] makes, keeping nothing (see [`results_check`](crate::results_check)), so
/// that a results type that fails is reported the same with or without subscribers.
#[inline(never)]
pub(super) fn results_serialise<T: Serialize + ?Sized>(result: &T) -> Result<(), Failure> {
    serialise_guarded(|| crate::results_check::check(result))
}

/// Runs a serialisation of the step's results; its error or panic becomes the failure reported
/// for the attempt. The class is `serde_json::Error` either way: that is what the results'
/// `step.completed` payload is built with, and the report must not depend on who listens.
fn serialise_guarded<R, E: std::fmt::Display>(
    serialise: impl FnOnce() -> Result<R, E>,
) -> Result<R, Failure> {
    match catch_unwind(AssertUnwindSafe(serialise)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Failure::new(
            format!("step results could not be serialised: {e}"),
            "serde_json::Error",
        )),
        Err(payload) => Err(Failure::new(
            format!(
                "serialising the step results panicked: {}",
                panic_message(&*payload).unwrap_or("(no message)")
            ),
            "panic",
        )),
    }
}
