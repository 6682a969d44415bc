//! The `tasker-telemetry` command with this program's handlers and subscribers linked in: the
//! installed command knows only the built-in events, so a crate that wants `catalog` to list its
//! own handlers (and `dashboards` to use their objectives) builds the command itself.
//!
//! `cargo run --example telemetry_cli -- catalog` lists `charge_card` and `AuditLog` beside the
//! built-in events; every other subcommand works as the installed one does.

use std::process::ExitCode;

use tasker_telemetry::{Event, StepError, step_handler, subscribe_to};

/// Charges the order's card; its p95 should stay under 250 ms.
struct ChargeCard;

#[step_handler(retry_limit = 3, objective = "250ms")]
impl ChargeCard {
    fn process(&self) -> Result<(), StepError> {
        Ok(())
    }
}

/// Keeps an audit trail of finished tasks.
#[derive(Debug, Default)]
struct AuditLog;

#[subscribe_to("task.completed")]
impl AuditLog {
    fn handle_task_completed(&self, _event: &Event<'_>) {}
}

fn main() -> ExitCode {
    // The workflow that runs it lives elsewhere; here it only has to be linked in.
    let _linked = ChargeCard;
    tasker_telemetry_cli::main()
}
