//! The effective configuration with where each value came from (Tasker's default, a file, or an
//! environment variable), secrets masked: what `tasker-telemetry doctor` prints.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::{ConfigError, REDACTED, SHOWN, TelemetryConfig};

/// How an option's value may be shown (the table's `show`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shown {
    Plain,
    /// Never shown: the mask instead.
    Secret,
    /// Shown without the URL's credentials.
    Url,
}

/// Where an option's effective value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum SettingSource {
    /// Tasker's default (not named `Default`, so that compiler messages about the `Default`
    /// trait keep its short name).
    Defaults,
    /// The configuration file.
    File(PathBuf),
    /// This environment variable (the one that won, when several name the field).
    Env(&'static str),
}

impl fmt::Display for SettingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Defaults => f.write_str("default"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Env(variable) => write!(f, "env {variable}"),
        }
    }
}

/// One option's effective value, as text (secrets masked, URLs without credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Setting {
    /// The option, dotted for nested ones (`otlp.traces.headers`), as files name it.
    pub name: String,
    /// Its value as JSON text, `(unset)` for an option with no value.
    pub value: String,
    /// Where the value came from.
    pub source: SettingSource,
}

/// A configuration loaded from Tasker's defaults, an optional file and the environment, with
/// where each value came from.
///
/// ```
/// use tasker_telemetry::config::{EffectiveConfig, SettingSource};
///
/// let vars = [
///     ("OTEL_SERVICE_NAME", "billing"),
///     ("TASKER_METRICS_AUTH_TOKEN", "s3cret"),
///     ("TASKER_METRICS_AUTH_REQUIRED", "true"),
///     ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k3y"),
/// ];
/// let effective =
///     EffectiveConfig::load_from(None, |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))?;
/// assert_eq!(effective.config.service_name, "billing");
/// let service = effective.setting("service_name").unwrap();
/// assert_eq!(service.source, SettingSource::Env("OTEL_SERVICE_NAME"));
/// assert_eq!(effective.setting("log_level").unwrap().source, SettingSource::Defaults);
/// let shown = effective.to_string();
/// assert!(!shown.contains("s3cret") && !shown.contains("k3y"));
/// # Ok::<(), tasker_telemetry::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EffectiveConfig {
    /// The configuration.
    pub config: TelemetryConfig,
    /// Every option, in the configuration table's order, nested ones expanded.
    pub settings: Vec<Setting>,
}

impl EffectiveConfig {
    /// Loads `file` (a `.toml` or `.json`; Tasker's defaults without one), then the process
    /// environment on top, as [`TelemetryConfig::from_path`] and
    /// [`TelemetryConfig::with_env`] do.
    ///
    /// # Errors
    /// As those two.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        super::check_env_is_unicode()?;
        Self::load_from(file, |name| std::env::var(name).ok())
    }

    /// [`load`](Self::load), reading variables through `lookup`.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn load_from<F>(file: Option<&Path>, lookup: F) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let (base, from_file) = match file {
            Some(path) => (TelemetryConfig::from_path(path)?, file_keys(path)?),
            None => (TelemetryConfig::default(), Vec::new()),
        };
        let (config, from_env) = base.with_env_sources(lookup)?;
        let mut leaves = Vec::new();
        let value = serde_json::to_value(&config).unwrap_or(Value::Null);
        for &(field, shown) in SHOWN {
            match value.get(field) {
                None | Some(Value::Null) => leaves.push((field.to_owned(), None, shown)),
                Some(v) => flatten(field, v, shown, &mut leaves),
            }
        }
        let under = |name: &str, prefix: &str| {
            name == prefix
                || name
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
        };
        let settings = leaves
            .into_iter()
            .map(|(name, value, shown)| {
                let source = if let Some(&(_, variable)) =
                    from_env.iter().rev().find(|(f, _)| under(&name, f))
                {
                    SettingSource::Env(variable)
                } else if from_file.iter().any(|k| under(&name, k) || under(k, &name)) {
                    SettingSource::File(file.map(Path::to_path_buf).unwrap_or_default())
                } else {
                    SettingSource::Defaults
                };
                Setting {
                    value: show(&name, value.as_ref(), shown),
                    name,
                    source,
                }
            })
            .collect();
        Ok(Self { config, settings })
    }

    /// The setting named `name` (dotted for nested options).
    pub fn setting(&self, name: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.name == name)
    }
}

/// `name = value  (source)`, one option per line.
impl fmt::Display for EffectiveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .settings
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0);
        let value_width = self
            .settings
            .iter()
            .map(|s| s.value.chars().count())
            .max()
            .unwrap_or(0)
            .min(48);
        for s in &self.settings {
            writeln!(
                f,
                "{:width$} = {:value_width$}  ({})",
                s.name, s.value, s.source
            )?;
        }
        Ok(())
    }
}

/// Expands objects into dotted leaves; anything else is one leaf.
fn flatten(name: &str, value: &Value, shown: Shown, out: &mut Vec<(String, Option<Value>, Shown)>) {
    match value {
        Value::Object(map) if !map.is_empty() && !is_headers(name) => {
            for (key, v) in map {
                flatten(&format!("{name}.{key}"), v, shown, out);
            }
        }
        Value::Null => out.push((name.to_owned(), None, shown)),
        other => out.push((name.to_owned(), Some(other.clone()), shown)),
    }
}

/// Headers carry API keys and tokens: their values are never shown, only their names.
fn is_headers(name: &str) -> bool {
    name.rsplit('.').next() == Some("headers")
}

fn show(name: &str, value: Option<&Value>, shown: Shown) -> String {
    let Some(value) = value else {
        return "(unset)".to_owned();
    };
    if is_headers(name) {
        let names: Vec<String> = match value {
            Value::Object(map) => map.keys().map(|k| format!("{k}={REDACTED}")).collect(),
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.get(0).or_else(|| i.get("name")).and_then(Value::as_str))
                .map(|k| format!("{k}={REDACTED}"))
                .collect(),
            _ => vec![REDACTED.to_owned()],
        };
        return format!("[{}]", names.join(", "));
    }
    match (shown, value) {
        (Shown::Secret, _) => REDACTED.to_owned(),
        (Shown::Url, Value::String(url)) => Value::String(crate::redact::url(url)).to_string(),
        _ => value.to_string(),
    }
}

/// The dotted keys a file sets (objects expanded), read as the file's own format.
fn file_keys(path: &Path) -> Result<Vec<String>, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
        path: shown.clone(),
        message: error.to_string(),
    })?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    // Already parsed once by `from_path`, so neither can fail here but for a file changed since.
    let value: Value = if is_json {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    } else {
        toml::from_str::<toml::Value>(&text)
            .ok()
            .and_then(|v| serde_json::to_value(v).ok())
            .unwrap_or(Value::Null)
    };
    let mut keys = Vec::new();
    if let Value::Object(map) = value {
        for (key, v) in &map {
            collect_keys(key, v, &mut keys);
        }
    }
    Ok(keys)
}

fn collect_keys(name: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() && !is_headers(name) => {
            for (key, v) in map {
                collect_keys(&format!("{name}.{key}"), v, out);
            }
        }
        _ => out.push(name.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_value_is_blamed_on_the_file_and_the_environment_wins_over_it() {
        let dir = std::env::temp_dir().join(format!("tasker-provenance-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("telemetry.toml");
        std::fs::write(
            &path,
            "service_name = \"from-file\"\nmax_concurrent_steps = 8\n[otlp]\ntimeout_ms = 1234\n",
        )
        .unwrap();
        let effective = EffectiveConfig::load_from(Some(&path), |name| {
            (name == "OTEL_SERVICE_NAME").then(|| "from-env".to_owned())
        })
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let source = |name: &str| effective.setting(name).unwrap().source.clone();
        assert_eq!(
            source("service_name"),
            SettingSource::Env("OTEL_SERVICE_NAME")
        );
        assert_eq!(
            source("max_concurrent_steps"),
            SettingSource::File(path.clone())
        );
        assert_eq!(source("otlp.timeout_ms"), SettingSource::File(path));
        assert_eq!(source("otlp.compression"), SettingSource::Defaults);
        assert_eq!(
            effective.setting("max_concurrent_steps").unwrap().value,
            "8"
        );
        assert_eq!(effective.setting("otlp_endpoint").unwrap().value, "(unset)");
    }

    #[test]
    fn secrets_header_values_and_url_credentials_are_masked() {
        let vars = [
            ("TASKER_METRICS_AUTH_TOKEN", "tok-SECRET-1"),
            ("TASKER_METRICS_AUTH_REQUIRED", "true"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20SECRET-2",
            ),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://user:SECRET-3@collector:4318",
            ),
        ];
        let effective = EffectiveConfig::load_from(None, |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        let text = effective.to_string();
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains("authorization="), "{text}");
        assert_eq!(
            effective.setting("metrics_auth_token").unwrap().source,
            SettingSource::Env("TASKER_METRICS_AUTH_TOKEN")
        );
    }
}
