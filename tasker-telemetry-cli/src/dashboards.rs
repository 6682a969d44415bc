//! `dashboards`: the operator's artefacts (a Grafana dashboard, Prometheus recording and
//! alerting rules) from `tasker_telemetry::operator`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tasker_telemetry::operator::{self, OperatorOptions, parse_duration};

use crate::{Exit, Output};

/// `dashboards --out DIR [...]`.
#[derive(Debug, Args)]
pub(crate) struct DashboardsArgs {
    /// The directory to write the three files into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Alert when more than this share of a task's runs fail (default 0.05).
    #[arg(long, value_name = "RATIO")]
    failure_ratio: Option<f64>,
    /// How long a condition holds before its alert fires, in whole seconds (`5m`, `300s`).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    alert_for: Option<Duration>,
    /// A step's p95 objective, `STEP=DURATION` (`process_payment=250ms`); repeatable. Replaces
    /// what the step's handler declares.
    #[arg(long, value_name = "STEP=DURATION", value_parser = objective)]
    objective: Vec<(String, Duration)>,
    /// Leave out the objectives the linked handlers declare.
    #[arg(long)]
    without_declared_objectives: bool,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

fn objective(text: &str) -> Result<(String, Duration), String> {
    let (step, p95) = text
        .split_once('=')
        .ok_or_else(|| format!("expected STEP=DURATION (process_payment=250ms), got {text:?}"))?;
    Ok((step.to_owned(), duration(p95)?))
}

fn options(args: &DashboardsArgs) -> Result<OperatorOptions, operator::OperatorError> {
    let mut options = OperatorOptions::default();
    if args.without_declared_objectives {
        options = options.without_objectives();
    }
    if let Some(ratio) = args.failure_ratio {
        options = options.failure_ratio(ratio)?;
    }
    if let Some(hold) = args.alert_for {
        options = options.alert_for(hold)?;
    }
    for (step, p95) in &args.objective {
        options = options.objective(step.clone(), *p95)?;
    }
    Ok(options)
}

pub(crate) fn run(args: &DashboardsArgs, output: &mut Output<'_>) -> Exit {
    let options = match options(args) {
        Ok(options) => options,
        Err(error) => {
            let _ = writeln!(output.err, "tasker-telemetry dashboards: {error}");
            return Exit::Usage;
        }
    };
    match operator::artefacts(&options).write_to(&args.out) {
        Ok(paths) => {
            for path in paths {
                let _ = writeln!(output.out, "{}", path.display());
            }
            Exit::Ok
        }
        Err(error) => {
            let _ = writeln!(
                output.err,
                "tasker-telemetry dashboards: cannot write into {}: {error}",
                args.out.display()
            );
            Exit::Failed
        }
    }
}
