//! What each option accepts: the checks [`options!`](super::options) calls from
//! [`TelemetryConfig::validate`], one per option, in table order.
//!
//! Every check has the same shape, `(field, &value, &config)`, so the table can name any of them:
//! the field's name (for the error), its value as the struct holds it (hence `&String` rather
//! than `&str`), and the whole configuration for the rules that involve two options.
#![allow(clippy::ptr_arg)]

use super::{
    ConfigError, DEFAULT_FILTER_MASK, EXPECTED_INTEGER, EXPECTED_RATIO, EXPECTED_SECONDS,
    ParameterFilter, REDACTED, TelemetryConfig, ValueDetection,
};

/// Runs one option's check; the bound gives the table's closures their argument types.
#[inline]
pub(super) fn check_option<T>(
    field: &'static str,
    value: &T,
    config: &TelemetryConfig,
    check: impl FnOnce(&'static str, &T, &TelemetryConfig) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    check(field, value, config)
}

/// For options whose type accepts every value it can hold.
pub(super) fn unchecked<T>(_: &'static str, _: &T, _: &TelemetryConfig) -> Result<(), ConfigError> {
    Ok(())
}

/// A count or size that must be at least 1.
pub(super) fn at_least_one<T: Copy + TryInto<u64>>(
    field: &'static str,
    value: &T,
    _: &TelemetryConfig,
) -> Result<(), ConfigError> {
    positive(field, (*value).try_into().unwrap_or(u64::MAX))
}

pub(crate) fn positive(field: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(field, "0", EXPECTED_INTEGER));
    }
    Ok(())
}

/// The span store holds each kept task's spans in memory: a bound keeps a typo (an extra few
/// zeros) from becoming gigabytes.
pub(super) fn check_span_store_tasks(
    field: &'static str,
    value: &usize,
    _: &TelemetryConfig,
) -> Result<(), ConfigError> {
    if *value > super::SPAN_STORE_MAX_TASKS {
        return Err(ConfigError::invalid(
            field,
            value.to_string(),
            "an integer from 0 (no store) to 100000",
        ));
    }
    Ok(())
}

pub(super) fn check_ratio(
    field: &'static str,
    value: &f64,
    _: &TelemetryConfig,
) -> Result<(), ConfigError> {
    if !(value.is_finite() && (0.0..=1.0).contains(value)) {
        return Err(ConfigError::invalid(
            field,
            value.to_string(),
            EXPECTED_RATIO,
        ));
    }
    Ok(())
}

pub(super) fn check_seconds(
    field: &'static str,
    seconds: &f64,
    _: &TelemetryConfig,
) -> Result<(), ConfigError> {
    if !(seconds.is_finite() && *seconds > 0.0) {
        return Err(ConfigError::invalid(
            field,
            seconds.to_string(),
            EXPECTED_SECONDS,
        ));
    }
    Ok(())
}

pub(super) fn check_service_name(
    field: &'static str,
    name: &String,
    _: &TelemetryConfig,
) -> Result<(), ConfigError> {
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            field,
            name.as_str(),
            "a non-empty name without control characters",
        ));
    }
    Ok(())
}

pub(super) fn check_service_version(
    field: &'static str,
    version: &String,
    _: &TelemetryConfig,
) -> Result<(), ConfigError> {
    if version.trim().is_empty() {
        return Err(ConfigError::invalid(
            field,
            version.as_str(),
            "a non-empty version, e.g. \"1.2.0\"",
        ));
    }
    Ok(())
}

pub(super) fn check_filter_parameters(
    _: &'static str,
    rules: &Vec<String>,
    config: &TelemetryConfig,
) -> Result<(), ConfigError> {
    // Checked with the default mask so a bad mask is reported against its own field.
    ParameterFilter::new(rules, DEFAULT_FILTER_MASK)
        .map(drop)
        .map_err(|error| config.filter_error(error))
}

pub(super) fn check_filter_value_detectors(
    _: &'static str,
    names: &Vec<String>,
    config: &TelemetryConfig,
) -> Result<(), ConfigError> {
    ValueDetection::parse(names)
        .map(drop)
        .map_err(|error| config.filter_error(error))
}

pub(super) fn check_filter_value_patterns(
    _: &'static str,
    patterns: &Vec<String>,
    config: &TelemetryConfig,
) -> Result<(), ConfigError> {
    patterns.iter().try_for_each(|pattern| {
        ValueDetection::off()
            .with_pattern(pattern)
            .map(drop)
            .map_err(|error| config.filter_error(error))
    })
}

pub(super) fn check_filter_mask(
    field: &'static str,
    mask: &String,
    _: &TelemetryConfig,
) -> Result<(), ConfigError> {
    if mask.is_empty() {
        return Err(ConfigError::invalid(
            field,
            "",
            "a non-empty replacement text such as \"[FILTERED]\"",
        ));
    }
    Ok(())
}

pub(super) fn check_correlation_id_header(
    field: &'static str,
    header: &String,
    _: &TelemetryConfig,
) -> Result<(), ConfigError> {
    if header.is_empty() || !header.bytes().all(is_header_token_byte) {
        return Err(ConfigError::invalid(
            field,
            header.as_str(),
            "an HTTP header name: one or more of A-Z a-z 0-9 ! # $ % & ' * + - . ^ _ ` | ~",
        ));
    }
    Ok(())
}

pub(super) fn check_metrics_endpoint(
    field: &'static str,
    endpoint: &String,
    _: &TelemetryConfig,
) -> Result<(), ConfigError> {
    let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#';
    if !endpoint.starts_with('/') || endpoint.contains(bad_char) {
        return Err(ConfigError::invalid(
            field,
            endpoint.as_str(),
            "a path starting with '/' without whitespace, '?' or '#', e.g. \"/tasker/metrics\"",
        ));
    }
    Ok(())
}

pub(super) fn check_metrics_auth_token(
    field: &'static str,
    token: &Option<String>,
    config: &TelemetryConfig,
) -> Result<(), ConfigError> {
    let present = token
        .as_deref()
        .is_some_and(|token| !token.trim().is_empty());
    if config.metrics_auth_required && !present {
        let shown = match token.as_deref() {
            None => "",
            // Blank, so nothing to hide, but keep the rule: a token is never echoed.
            Some(_) => REDACTED,
        };
        return Err(ConfigError::invalid(
            field,
            shown,
            "a non-empty token because metrics_auth_required is true",
        ));
    }
    Ok(())
}

pub(super) fn check_filtered_events(
    field: &'static str,
    events: &Vec<String>,
    _: &TelemetryConfig,
) -> Result<(), ConfigError> {
    // Syntax only; whether the event exists is checked against the catalog at startup.
    match events
        .iter()
        .find(|name| crate::event::rules::parse_pattern(name).is_none())
    {
        Some(bad) => Err(ConfigError::invalid(
            field,
            bad.as_str(),
            crate::event::rules::PATTERN_GRAMMAR,
        )),
        None => Ok(()),
    }
}

pub(super) fn check_url(
    field: &'static str,
    endpoint: &Option<String>,
    _: &TelemetryConfig,
) -> Result<(), ConfigError> {
    let Some(endpoint) = endpoint.as_deref() else {
        return Ok(());
    };
    let rest = strip_prefix_ignore_ascii_case(endpoint, "https://")
        .or_else(|| strip_prefix_ignore_ascii_case(endpoint, "http://"));
    let valid = rest.is_some_and(|rest| {
        !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace)
    });
    if !valid {
        return Err(ConfigError::invalid(
            field,
            endpoint,
            "an http:// or https:// URL with a host, e.g. \"http://localhost:4318\"",
        ));
    }
    Ok(())
}

pub(super) fn check_otlp(
    _: &'static str,
    _: &super::OtlpOptions,
    config: &TelemetryConfig,
) -> Result<(), ConfigError> {
    config.check_otlp_options()
}

/// RFC 9110 `tchar`.
pub(super) fn is_header_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn strip_prefix_ignore_ascii_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}
