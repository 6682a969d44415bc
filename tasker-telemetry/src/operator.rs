//! What operators get: a Grafana dashboard, Prometheus recording rules and alerting rules,
//! generated from the standard metrics and the steps' objectives.
//!
//! The panels and the recording rules come from one table of queries, so a panel and the rule
//! that records it compute the same thing. The alerts watch the task failure ratio, steps
//! running out of retries, span export failing, subscribers panicking, and each step's p95
//! against the objective its handler declares (`#[step_handler(objective = "250ms")]`) or
//! [`OperatorOptions::objective`] sets.
//!
//! ```
//! use std::time::Duration;
//! use tasker_telemetry::operator::{self, OperatorOptions};
//!
//! let options = OperatorOptions::default()
//!     .failure_ratio(0.1)?
//!     .objective("charge_card", Duration::from_millis(250))?;
//! let artefacts = operator::artefacts(&options);
//! assert_eq!(artefacts.dashboard["schemaVersion"], 41);
//! assert!(artefacts.alerting_yaml().contains("TaskerStepLatencyAboveObjective"));
//! # let dir = std::env::temp_dir().join(format!("tasker-operator-doc-{}", std::process::id()));
//! let written = artefacts.write_to(&dir)?;
//! assert_eq!(written.len(), 3);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod dashboard;
mod duration;
mod queries;
mod rules;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use rules::{AlertRule, RecordingRule};

/// The file names [`Artefacts::write_to`] writes.
pub const DASHBOARD_FILE: &str = "tasker-dashboard.json";
/// The recording rules' file name.
pub const RECORDING_RULES_FILE: &str = "tasker-recording-rules.yml";
/// The alerting rules' file name.
pub const ALERTING_RULES_FILE: &str = "tasker-alerting-rules.yml";

/// A step's latency objective: its p95 duration should stay at or below `p95`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Objective {
    /// The step's name, as the `step_name` label carries it.
    pub step_name: String,
    /// The 95th-percentile duration the step should stay within.
    pub p95: Duration,
}

/// A setting [`OperatorOptions`] refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// The failure-ratio threshold is not a number strictly between 0 and 1.
    #[error("failure_ratio must be a number strictly between 0 and 1 (0.05 is 5 %), got {0}")]
    FailureRatio(f64),
    /// An objective with an empty step name, or a zero duration.
    #[error(
        "objective for step {step_name:?}: needs a non-empty step name and a duration above zero, got {p95:?}"
    )]
    Objective {
        /// The step named.
        step_name: String,
        /// The duration given.
        p95: Duration,
    },
    /// An alert hold time below one second or not a whole number of seconds.
    #[error("alert_for must be a whole number of seconds (0 fires at once), got {0:?}")]
    AlertFor(Duration),
    /// A duration's text that [`parse_duration`] does not read.
    #[error("{0}")]
    Duration(String),
}

/// Reads a duration as `#[step_handler(objective = "...")]` writes it: a number above zero and
/// one unit, `ns`, `us`, `ms`, `s` or `m` (`"250ms"`, `"1.5s"`, `"2m"`).
///
/// ```
/// use std::time::Duration;
/// use tasker_telemetry::operator::parse_duration;
///
/// assert_eq!(parse_duration("250ms")?, Duration::from_millis(250));
/// assert_eq!(parse_duration("1.5s")?, Duration::from_millis(1500));
/// assert!(parse_duration("250").unwrap_err().to_string().contains("has no unit it knows"));
/// # Ok::<(), tasker_telemetry::operator::OperatorError>(())
/// ```
///
/// # Errors
/// [`OperatorError::Duration`] saying what is accepted.
pub fn parse_duration(text: &str) -> Result<Duration, OperatorError> {
    duration::parse_nanos(text)
        .map(Duration::from_nanos)
        .map_err(OperatorError::Duration)
}

/// What to generate: thresholds, objectives and the dashboard's identity.
///
/// The default holds each objective the linked handlers declare
/// (`#[step_handler(objective = "...")]`, see [`catalog::handlers`](crate::catalog::handlers)).
///
/// ```
/// use std::time::Duration;
/// use tasker_telemetry::operator::{OperatorError, OperatorOptions};
///
/// let options = OperatorOptions::default().alert_for(Duration::from_secs(600))?;
/// assert_eq!(options.failure_ratio_threshold(), 0.05);
/// assert!(matches!(
///     OperatorOptions::default().failure_ratio(1.5),
///     Err(OperatorError::FailureRatio(_))
/// ));
/// # Ok::<(), OperatorError>(())
/// ```
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    failure_ratio: f64,
    alert_for: Duration,
    objectives: Vec<Objective>,
    dashboard_uid: String,
    dashboard_title: String,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        Self {
            failure_ratio: 0.05,
            alert_for: Duration::from_secs(300),
            objectives: declared_objectives(),
            dashboard_uid: "tasker-telemetry".to_owned(),
            dashboard_title: "Tasker workflows".to_owned(),
        }
    }
}

impl OperatorOptions {
    /// Alert when more than `ratio` of a task's runs fail (default 0.05).
    pub fn failure_ratio(mut self, ratio: f64) -> Result<Self, OperatorError> {
        if !(ratio.is_finite() && ratio > 0.0 && ratio < 1.0) {
            return Err(OperatorError::FailureRatio(ratio));
        }
        self.failure_ratio = ratio;
        Ok(self)
    }

    /// How long a condition must hold before its alert fires (default 5 minutes; `0` fires at
    /// once). Step max-retries alerts always fire at once.
    pub fn alert_for(mut self, hold: Duration) -> Result<Self, OperatorError> {
        if hold.subsec_nanos() != 0 {
            return Err(OperatorError::AlertFor(hold));
        }
        self.alert_for = hold;
        Ok(self)
    }

    /// Sets step `step_name`'s p95 objective (replacing one its handler declares).
    pub fn objective(
        mut self,
        step_name: impl Into<String>,
        p95: Duration,
    ) -> Result<Self, OperatorError> {
        let step_name = step_name.into();
        if step_name.is_empty() || p95.is_zero() {
            return Err(OperatorError::Objective { step_name, p95 });
        }
        self.objectives.retain(|o| o.step_name != step_name);
        self.objectives.push(Objective { step_name, p95 });
        Ok(self)
    }

    /// Drops every objective (those the handlers declare included).
    pub fn without_objectives(mut self) -> Self {
        self.objectives.clear();
        self
    }

    /// The dashboard's uid and title (default `tasker-telemetry`, "Tasker workflows").
    pub fn dashboard(mut self, uid: impl Into<String>, title: impl Into<String>) -> Self {
        self.dashboard_uid = uid.into();
        self.dashboard_title = title.into();
        self
    }

    /// The failure-ratio threshold.
    pub fn failure_ratio_threshold(&self) -> f64 {
        self.failure_ratio
    }

    /// The objectives the alerts and the dashboard use, in the order given.
    pub fn objectives(&self) -> &[Objective] {
        &self.objectives
    }
}

/// The objectives the linked handlers declare, by step name, in name order.
fn declared_objectives() -> Vec<Objective> {
    let mut objectives: Vec<Objective> = crate::catalog::handlers()
        .into_iter()
        .filter_map(|h| {
            h.objective.map(|p95| Objective {
                step_name: h.name.to_owned(),
                p95,
            })
        })
        .collect();
    objectives.sort_by(|a, b| a.step_name.cmp(&b.step_name));
    objectives.dedup_by(|a, b| a.step_name == b.step_name);
    objectives
}

/// A generated dashboard and rule set.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Artefacts {
    /// The Grafana dashboard (classic JSON model), ready to import.
    pub dashboard: serde_json::Value,
    /// The recording rules: one per dashboard series, over every task and step.
    pub recording_rules: Vec<RecordingRule>,
    /// The alerting rules.
    pub alerting_rules: Vec<AlertRule>,
}

/// Generates the dashboard and the rules for `options`.
pub fn artefacts(options: &OperatorOptions) -> Artefacts {
    Artefacts {
        dashboard: dashboard::dashboard(options),
        recording_rules: rules::recording_rules(),
        alerting_rules: rules::alert_rules(options),
    }
}

impl Artefacts {
    /// The recording rules as a Prometheus rule file (`rule_files:` in `prometheus.yml`).
    pub fn recording_yaml(&self) -> String {
        rules::recording_yaml(&self.recording_rules)
    }

    /// The alerting rules as a Prometheus rule file.
    pub fn alerting_yaml(&self) -> String {
        rules::alerting_yaml(&self.alerting_rules)
    }

    /// The dashboard as pretty-printed JSON.
    pub fn dashboard_json(&self) -> String {
        serde_json::to_string_pretty(&self.dashboard).unwrap_or_default()
    }

    /// Writes [`DASHBOARD_FILE`], [`RECORDING_RULES_FILE`] and [`ALERTING_RULES_FILE`] into
    /// `dir` (created if missing) and returns their paths.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> std::io::Result<Vec<PathBuf>> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let files = [
            (DASHBOARD_FILE, self.dashboard_json()),
            (RECORDING_RULES_FILE, self.recording_yaml()),
            (ALERTING_RULES_FILE, self.alerting_yaml()),
        ];
        files
            .into_iter()
            .map(|(name, text)| {
                let path = dir.join(name);
                std::fs::write(&path, text)?;
                Ok(path)
            })
            .collect()
    }
}

/// A duration in PromQL's notation: whole seconds as `Ns` (`5m` style units are not needed:
/// Prometheus reads `300s`), a fraction of a second as `Nms`.
pub(crate) fn promql_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_typed_errors() {
        for ratio in [0.0, 1.0, -0.1, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                OperatorOptions::default().failure_ratio(ratio),
                Err(OperatorError::FailureRatio(_))
            ));
        }
        assert!(matches!(
            OperatorOptions::default().objective("", Duration::from_secs(1)),
            Err(OperatorError::Objective { .. })
        ));
        assert!(matches!(
            OperatorOptions::default().objective("s", Duration::ZERO),
            Err(OperatorError::Objective { .. })
        ));
        assert!(matches!(
            OperatorOptions::default().alert_for(Duration::from_millis(1500)),
            Err(OperatorError::AlertFor(_))
        ));
    }

    #[test]
    fn an_objective_set_again_replaces_the_first() {
        let o = OperatorOptions::default()
            .without_objectives()
            .objective("s", Duration::from_secs(1))
            .unwrap()
            .objective("s", Duration::from_millis(250))
            .unwrap();
        assert_eq!(o.objectives().len(), 1);
        assert_eq!(o.objectives()[0].p95, Duration::from_millis(250));
        let a = artefacts(&o);
        let slo: Vec<&AlertRule> = a
            .alerting_rules
            .iter()
            .filter(|r| r.alert == "TaskerStepLatencyAboveObjective")
            .collect();
        assert_eq!(slo.len(), 1);
        assert!(slo[0].expr.ends_with("> 0.25"), "{}", slo[0].expr);
        assert_eq!(slo[0].labels["objective"], "250ms");
    }

    #[test]
    fn durations_read_as_promql() {
        assert_eq!(promql_duration(Duration::from_secs(300)), "300s");
        assert_eq!(promql_duration(Duration::from_millis(250)), "250ms");
    }
}
