//! Writes the operator's artefacts: a Grafana dashboard and Prometheus recording and alerting
//! rules, generated from the standard metrics and the objectives of the handlers linked in.
//!
//! `cargo run --example dashboards -- --out DIR [--failure-ratio 0.05] [--objective STEP=250ms]...`
//! writes `tasker-dashboard.json`, `tasker-recording-rules.yml` and `tasker-alerting-rules.yml`
//! into DIR. Import the dashboard into Grafana; add the two rule files to `rule_files:` in
//! `prometheus.yml`.

use std::time::Duration;

use tasker_telemetry::operator::{self, OperatorOptions};
use tasker_telemetry::{StepError, step_handler};

/// A handler declaring its latency objective: the alerts watch its p95.
struct ChargeCard;

#[step_handler(objective = "250ms")]
impl ChargeCard {
    fn process(&self) -> Result<(), StepError> {
        Ok(())
    }
}

const USAGE: &str =
    "usage: dashboards --out DIR [--failure-ratio RATIO] [--objective STEP=DURATION]...";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _linked = ChargeCard;
    let mut out = None;
    let mut options = OperatorOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value; {USAGE}"))
        };
        match arg.as_str() {
            "--out" => out = Some(value()?),
            "--failure-ratio" => options = options.failure_ratio(value()?.parse()?)?,
            "--objective" => {
                let spec = value()?;
                let (step, millis) = spec
                    .split_once('=')
                    .and_then(|(s, d)| Some((s, d.strip_suffix("ms")?.parse::<u64>().ok()?)))
                    .ok_or_else(|| format!("--objective takes STEP=<N>ms, got {spec:?}"))?;
                options = options.objective(step, Duration::from_millis(millis))?;
            }
            _ => return Err(format!("unknown argument {arg:?}; {USAGE}").into()),
        }
    }
    let out = out.ok_or(USAGE)?;
    for path in operator::artefacts(&options).write_to(&out)? {
        println!("{}", path.display());
    }
    Ok(())
}
