//! Writes the operator's artefacts: a Grafana dashboard and Prometheus recording and alerting
//! rules, generated from the standard metrics and the objectives of the handlers linked in.
//!
//! `cargo run --example dashboards -- --out DIR [--failure-ratio 0.05] [--objective STEP=250ms]...`
//! writes `tasker-dashboard.json`, `tasker-recording-rules.yml` and `tasker-alerting-rules.yml`
//! into DIR: it is `tasker-telemetry dashboards` with this program's `charge_card` handler (and
//! its objective) linked in. Import the dashboard into Grafana; add the two rule files to
//! `rule_files:` in `prometheus.yml`.

use std::process::ExitCode;

use tasker_telemetry::{StepError, step_handler};

/// A handler declaring its latency objective: the alerts watch its p95.
struct ChargeCard;

#[step_handler(objective = "250ms")]
impl ChargeCard {
    fn process(&self) -> Result<(), StepError> {
        Ok(())
    }
}

fn main() -> ExitCode {
    let _linked = ChargeCard;
    let args = ["tasker-telemetry".into(), "dashboards".into()]
        .into_iter()
        .chain(std::env::args_os().skip(1));
    tasker_telemetry_cli::run(args, &mut std::io::stdout(), &mut std::io::stderr()).into()
}
