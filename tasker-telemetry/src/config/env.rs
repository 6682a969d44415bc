//! Reading options from environment variables: one variable's value, parsed the way its option
//! declares, and the Markdown table the documentation shows of them all.
//!
//! The variables themselves are declared with their options (see [`options!`](super::options)),
//! so the list, the mapping and the documentation cannot disagree.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::{ConfigError, EXPECTED_BOOL, EXPECTED_INTEGER, REDACTED, TelemetryConfig, otlp};

/// Sets a configuration field from one variable's value.
pub(super) type Apply = fn(&mut TelemetryConfig, &EnvValue<'_>) -> Result<(), Rejected>;

/// One environment variable that [`TelemetryConfig::with_env`] reads.
///
/// ```
/// use tasker_telemetry::config::ENVIRONMENT_VARIABLES;
///
/// let rust_log = ENVIRONMENT_VARIABLES.iter().find(|v| v.name == "RUST_LOG").unwrap();
/// assert_eq!(rust_log.field, "log_filter");
/// ```
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct EnvVariable {
    /// The variable's name.
    pub name: &'static str,
    /// The field it sets, as files and errors name it (`otlp.traces.headers` for nested ones).
    pub field: &'static str,
    /// What it accepts and what it wins over, as the documentation's table shows.
    pub notes: &'static str,
    pub(super) apply: Apply,
}

impl fmt::Debug for EnvVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvVariable")
            .field("name", &self.name)
            .field("field", &self.field)
            .field("notes", &self.notes)
            .finish_non_exhaustive()
    }
}

/// The environment variables as the Markdown table in the module documentation and the README
/// (one row per variable, in the order they are applied).
///
/// ```
/// let table = tasker_telemetry::config::environment_table();
/// assert!(table.contains("| `OTEL_SERVICE_NAME` | `service_name` |"));
/// ```
pub fn environment_table() -> String {
    let mut table = String::from("| Variable | Field | Notes |\n|----------|-------|-------|\n");
    for variable in super::ENVIRONMENT_VARIABLES {
        let notes = match variable.notes {
            "" => String::new(),
            notes => format!("{notes} "),
        };
        table.push_str(&format!(
            "| `{}` | `{}` | {notes}|\n",
            variable.name, variable.field
        ));
    }
    table
}

/// Why a variable's value did not set its field.
pub(super) enum Rejected {
    /// Defined to change nothing: blank text (OpenTelemetry counts it as unset), or
    /// `OTEL_SDK_DISABLED=false`.
    Unchanged,
    /// Not accepted.
    Invalid(ConfigError),
}

impl From<ConfigError> for Rejected {
    fn from(error: ConfigError) -> Self {
        Self::Invalid(error)
    }
}

/// The value of one variable, with what it sets, for parsing and for errors that name both.
pub(super) struct EnvValue<'a> {
    pub(super) variable: &'static str,
    pub(super) field: &'static str,
    pub(super) raw: &'a str,
}

impl EnvValue<'_> {
    fn text_or_unset(&self) -> Result<&str, Rejected> {
        match self.raw.trim() {
            "" => Err(Rejected::Unchanged),
            text => Ok(text),
        }
    }

    fn rejected(&self, value: impl Into<String>, expected: impl Into<String>) -> Rejected {
        Rejected::Invalid(ConfigError::Env {
            variable: self.variable.to_owned(),
            field: self.field.to_owned(),
            value: value.into(),
            expected: expected.into(),
        })
    }

    /// A typed value: blank is an error, never the default (a blank
    /// `TASKER_METRICS_AUTH_REQUIRED` must not switch authentication off).
    fn typed<T>(
        &self,
        parse: impl FnOnce(&str) -> Option<T>,
        expected: &str,
    ) -> Result<T, Rejected> {
        let text = self.raw.trim();
        if text.is_empty() {
            return Err(self.rejected(
                self.raw,
                format!("{expected} (the variable is set but blank)"),
            ));
        }
        parse(text).ok_or_else(|| self.rejected(self.raw, expected))
    }

    /// Text, trimmed; blank leaves the field as it was.
    pub(super) fn text(&self) -> Result<String, Rejected> {
        self.text_or_unset().map(str::to_owned)
    }

    /// Text exactly as set (spaces kept); blank leaves the field as it was.
    pub(super) fn verbatim(&self) -> Result<String, Rejected> {
        self.text_or_unset()?;
        Ok(self.raw.to_owned())
    }

    /// Comma-separated items, whitespace around them ignored, empty ones dropped.
    pub(super) fn list(&self) -> Result<Vec<String>, Rejected> {
        Ok(self
            .text_or_unset()?
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// `true`/`false`/`1`/`0`/`yes`/`no`, in any case.
    pub(super) fn boolean(&self) -> Result<bool, Rejected> {
        self.typed(super::parse_bool, EXPECTED_BOOL)
    }

    /// A whole number (zero is refused by validation, which names the field).
    pub(super) fn integer(&self) -> Result<u64, Rejected> {
        self.typed(|text| text.parse().ok(), EXPECTED_INTEGER)
    }

    /// A whole number, as a count.
    pub(super) fn count(&self) -> Result<usize, Rejected> {
        self.typed(|text| text.parse().ok(), EXPECTED_INTEGER)
    }

    /// A number; `expected` says which.
    pub(super) fn number(&self, expected: &str) -> Result<f64, Rejected> {
        self.typed(|text| text.parse().ok(), expected)
    }

    /// Milliseconds, greater than 0.
    pub(super) fn millis(&self) -> Result<u64, Rejected> {
        self.typed(
            |text| text.parse().ok().filter(|ms| *ms > 0),
            "a number of milliseconds greater than 0",
        )
    }

    /// One of an enum's names (its `FromStr` says which); blank leaves the field as it was.
    pub(super) fn parsed<T: FromStr<Err = ConfigError>>(&self) -> Result<T, Rejected> {
        self.text_or_unset()?.parse().map_err(|error| match error {
            ConfigError::Invalid { expected, .. } => self.rejected(self.raw, expected),
            other => Rejected::Invalid(other),
        })
    }

    /// `key=value,...`, percent-decoded; the values are secrets, never shown in the error.
    pub(super) fn headers(&self) -> Result<BTreeMap<String, String>, Rejected> {
        otlp::parse_headers(self.text_or_unset()?)
            .map_err(|expected| self.rejected(REDACTED, expected))
    }

    /// `key=value,...`, percent-decoded.
    pub(super) fn key_values(&self) -> Result<BTreeMap<String, String>, Rejected> {
        otlp::parse_key_values(self.text_or_unset()?)
            .map_err(|expected| self.rejected(self.raw, expected))
    }

    /// A file's path.
    pub(super) fn path(&self) -> Result<PathBuf, Rejected> {
        self.text_or_unset().map(PathBuf::from)
    }

    /// Refuses the variable unless logs can be exported over OTLP (cargo feature `otlp-logs`):
    /// a setting this build cannot honour is an error, never ignored.
    /// A blank value passes, for the parser to treat as it treats any blank.
    pub(super) fn needs_otlp_logs(&self) -> Result<(), Rejected> {
        if cfg!(feature = "otlp-logs") || self.raw.trim().is_empty() {
            return Ok(());
        }
        Err(self.rejected(
            "(set)",
            "unset: logs are exported over OTLP only when tasker-telemetry is built with its `otlp-logs` cargo feature",
        ))
    }
}
