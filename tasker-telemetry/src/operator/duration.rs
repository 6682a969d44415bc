//! Durations written as text (`250ms`, `1.5s`, `2m`): one grammar for
//! `#[step_handler(objective = "...")]` and the command line's flags. The macros crate
//! includes this file as its own module, so it names nothing outside itself.

/// What a duration's text must be.
pub(crate) const ACCEPTED: &str =
    "a duration above zero: a number and a unit (ns, us, ms, s, m), e.g. \"250ms\" or \"1.5s\"";

/// The nanoseconds `text` names, or why it names none (starting with [`ACCEPTED`]).
pub(crate) fn parse_nanos(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{ACCEPTED}; `{text}` does not start with a number"))?;
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        _ => return Err(format!("{ACCEPTED}; `{text}` has no unit it knows")),
    };
    let nanos = value * scale;
    if !(nanos >= 1.0 && nanos < u64::MAX as f64) {
        return Err(format!("{ACCEPTED}; `{text}` is not above zero"));
    }
    Ok(nanos.round() as u64)
}
