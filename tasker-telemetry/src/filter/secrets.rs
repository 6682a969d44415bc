//! Secrets recognised by their value, wherever they appear in free text.
//!
//! The key rules of a [`ParameterFilter`](super::ParameterFilter) cannot see a token inside an
//! error message or a `Debug`-formatted value under a harmless key. These detectors can: each
//! looks for one shape of secret, and each one found is replaced by the mask while the rest of
//! the text is kept.
//!
//! The scan is built for text that holds no secret, which is nearly all of it: memchr finds
//! the bytes that can start a secret on their own (`@`, `=`, `:`), one pass of an Aho-Corasick
//! automaton the literal prefixes (`eyJ`, `AKIA`, `sk_live_`, ...), both with SIMD, and card
//! numbers are looked for by a skip-scan that reads one byte in thirteen where there are no
//! digits. Only what they find is looked at closely.

use std::fmt;
use std::str::FromStr;

use aho_corasick::AhoCorasick;
use regex::{Regex, RegexBuilder};

use super::{FilterError, REGEX_NEST_LIMIT};

/// One shape of secret that value detection finds in free text.
///
/// ```
/// use tasker_telemetry::filter::SecretKind;
///
/// assert_eq!("card_number".parse::<SecretKind>()?, SecretKind::CardNumber);
/// assert_eq!(SecretKind::Jwt.name(), "jwt");
/// # Ok::<(), tasker_telemetry::FilterError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretKind {
    /// An email address, `local@domain.tld`: the whole address is masked.
    Email,
    /// The `user:password` of a URL (`https://user:password@host/`): the user information is
    /// masked, the rest of the URL kept.
    UrlCredentials,
    /// The token after `Bearer ` (any case), when it is at least 12 characters and not a plain
    /// lowercase word.
    BearerToken,
    /// A JSON Web Token: three base64url segments, the first starting `eyJ`.
    Jwt,
    /// An AWS access key id: `AKIA`, `ASIA`, `ABIA` or `ACCA` and 16 upper-case letters or digits.
    AwsAccessKeyId,
    /// A Stripe secret or restricted key: `sk_live_`, `sk_test_`, `rk_live_`, `rk_test_` and at
    /// least 10 letters or digits.
    StripeKey,
    /// A GitHub token: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` or `github_pat_` and at least 20
    /// letters, digits (or underscores, for `github_pat_`).
    GithubToken,
    /// A Slack token: `xoxa-`, `xoxb-`, `xoxe-`, `xoxo-`, `xoxp-`, `xoxr-` or `xoxs-` and at least
    /// 10 letters, digits or dashes.
    SlackToken,
    /// A payment card number: 13 to 19 digits starting 2 to 6 (as every major network's do),
    /// optionally in groups separated by single spaces or dashes, that passes the Luhn check and
    /// is not part of a longer number or word.
    CardNumber,
    /// The value of a `key=value`, `key: value` or `"key": "value"` pair whose key a filter rule
    /// calls sensitive (`password=hunter2`, `{"api_key": "k"}`, `Config { token: "t" }`).
    KeyValue,
}

impl SecretKind {
    /// Every kind, in the order of their names in [`ValueDetection::all`]'s documentation.
    pub const ALL: [Self; 10] = [
        Self::Email,
        Self::UrlCredentials,
        Self::BearerToken,
        Self::Jwt,
        Self::AwsAccessKeyId,
        Self::StripeKey,
        Self::GithubToken,
        Self::SlackToken,
        Self::CardNumber,
        Self::KeyValue,
    ];

    /// The kind's name in configuration (`filter_value_detectors`).
    ///
    /// ```
    /// use tasker_telemetry::filter::SecretKind;
    ///
    /// for kind in SecretKind::ALL {
    ///     assert_eq!(kind.name().parse::<SecretKind>()?, kind);
    /// }
    /// # Ok::<(), tasker_telemetry::FilterError>(())
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::UrlCredentials => "url_credentials",
            Self::BearerToken => "bearer_token",
            Self::Jwt => "jwt",
            Self::AwsAccessKeyId => "aws_access_key_id",
            Self::StripeKey => "stripe_key",
            Self::GithubToken => "github_token",
            Self::SlackToken => "slack_token",
            Self::CardNumber => "card_number",
            Self::KeyValue => "key_value",
        }
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// The accepted detector names, for error messages.
pub(crate) fn accepted_detector_names() -> String {
    let names: Vec<&str> = SecretKind::ALL.iter().map(|k| k.name()).collect();
    format!("\"all\", \"none\" or any of {}", names.join(", "))
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SecretKind {
    type Err = FilterError;

    fn from_str(name: &str) -> Result<Self, FilterError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| FilterError::UnknownDetector {
                name: name.to_owned(),
            })
    }
}

/// Which secrets a [`ParameterFilter`](super::ParameterFilter) finds by value in free text: a
/// set of [`SecretKind`]s and any extra regular expressions of your own.
///
/// On by default, every kind ([`ValueDetection::all`]).
///
/// ```
/// use tasker_telemetry::filter::{ParameterFilter, SecretKind, ValueDetection};
///
/// let filter = ParameterFilter::tasker_default()
///     .with_value_detection(ValueDetection::only([SecretKind::Email]).with_pattern(r"INV-\d{6}")?);
/// assert_eq!(
///     filter.scrub("refund INV-004211 for ada@example.com, ghp_0123456789abcdefghij0123"),
///     "refund [FILTERED] for [FILTERED], ghp_0123456789abcdefghij0123",
/// );
/// # Ok::<(), tasker_telemetry::FilterError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ValueDetection {
    kinds: u16,
    patterns: Vec<Regex>,
}

impl ValueDetection {
    /// Every [`SecretKind`], no extra pattern: the default.
    pub fn all() -> Self {
        Self::only(SecretKind::ALL)
    }

    /// No value detection: only the key rules apply, as in Tasker.
    pub fn off() -> Self {
        Self {
            kinds: 0,
            patterns: Vec::new(),
        }
    }

    /// These kinds only.
    pub fn only(kinds: impl IntoIterator<Item = SecretKind>) -> Self {
        Self {
            kinds: kinds.into_iter().fold(0, |bits, kind| bits | kind.bit()),
            patterns: Vec::new(),
        }
    }

    /// Parses detector names as configuration gives them: `"all"`, `"none"`, or kind names
    /// ([`SecretKind::name`]), in any case. An empty list is [`off`](Self::off).
    ///
    /// # Errors
    /// [`FilterError::UnknownDetector`] for a name that is none of these.
    ///
    /// ```
    /// use tasker_telemetry::filter::{SecretKind, ValueDetection};
    ///
    /// let detection = ValueDetection::parse(["email", "card_number"])?;
    /// assert!(detection.detects(SecretKind::Email));
    /// assert!(!detection.detects(SecretKind::Jwt));
    /// assert!(ValueDetection::parse(["emails"]).is_err());
    /// # Ok::<(), tasker_telemetry::FilterError>(())
    /// ```
    pub fn parse<I, S>(names: I) -> Result<Self, FilterError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut detection = Self::off();
        for name in names {
            match name.as_ref().trim() {
                all if all.eq_ignore_ascii_case("all") => detection.kinds = Self::all().kinds,
                none if none.eq_ignore_ascii_case("none") => {}
                other => detection.kinds |= other.parse::<SecretKind>()?.bit(),
            }
        }
        Ok(detection)
    }

    /// Adds a regular expression of your own: every match of it in free text is masked.
    ///
    /// # Errors
    /// [`FilterError::InvalidValuePattern`] for an empty or invalid expression, or one that matches
    /// the empty text (it would mask nothing, or between every character).
    pub fn with_pattern(mut self, pattern: &str) -> Result<Self, FilterError> {
        let invalid = |message: String| FilterError::InvalidValuePattern {
            pattern: pattern.to_owned(),
            message,
        };
        if pattern.is_empty() {
            return Err(invalid("the pattern is empty".to_owned()));
        }
        let regex = RegexBuilder::new(pattern)
            .nest_limit(REGEX_NEST_LIMIT)
            .build()
            .map_err(|error| invalid(super::regex_reason(&error)))?;
        if regex.is_match("") {
            return Err(invalid("the pattern matches the empty text".to_owned()));
        }
        self.patterns.push(regex);
        Ok(self)
    }

    /// Whether this kind is detected.
    pub fn detects(&self, kind: SecretKind) -> bool {
        self.kinds & kind.bit() != 0
    }

    /// The kinds detected, in [`SecretKind::ALL`]'s order.
    pub fn kinds(&self) -> impl Iterator<Item = SecretKind> + '_ {
        SecretKind::ALL
            .into_iter()
            .filter(|kind| self.detects(*kind))
    }

    /// The extra patterns, in the order added.
    pub fn patterns(&self) -> &[Regex] {
        &self.patterns
    }

    /// Whether nothing is detected by value.
    pub fn is_off(&self) -> bool {
        self.kinds == 0 && self.patterns.is_empty()
    }
}

impl Default for ValueDetection {
    fn default() -> Self {
        Self::all()
    }
}

/// What a trigger found by the automaton may start.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Bearer,
    Jwt,
    Aws,
    Stripe,
    Github,
    Slack,
}

/// A [`ValueDetection`] compiled for scanning.
#[derive(Debug)]
pub(super) struct Scanner {
    kinds: u16,
    /// The bytes that start a secret on their own: `@` (emails, URL credentials), `=` and `:`
    /// (`key=value` pairs). Found with memchr, whose SIMD search an automaton over one-byte
    /// patterns as common as these would lose.
    bytes: Option<[u8; 3]>,
    /// The literal prefixes (all three bytes or more, so the automaton's packed SIMD prefilter
    /// applies), and what each starts.
    triggers: Option<(AhoCorasick, Vec<Trigger>)>,
    extra: ExtraPatterns,
}

/// The extra patterns: one alternation when it compiles (the usual case), else each on its own
/// (a long list can exceed the size limit together).
#[derive(Debug)]
enum ExtraPatterns {
    None,
    One(Regex),
    Each(Vec<Regex>),
}

impl ExtraPatterns {
    fn new(patterns: &[Regex]) -> Self {
        match patterns {
            [] => Self::None,
            [one] => Self::One(one.clone()),
            many => {
                let alternation = many
                    .iter()
                    .map(|p| format!("(?:{})", p.as_str()))
                    .collect::<Vec<_>>()
                    .join("|");
                RegexBuilder::new(&alternation)
                    .nest_limit(REGEX_NEST_LIMIT + 1)
                    .build()
                    .map_or_else(|_| Self::Each(many.to_vec()), Self::One)
            }
        }
    }

    fn find(&self, text: &str, found: &mut Vec<(usize, usize)>) {
        let each = match self {
            Self::None => return,
            Self::One(regex) => std::slice::from_ref(regex),
            Self::Each(regexes) => regexes,
        };
        for regex in each {
            found.extend(regex.find_iter(text).map(|m| (m.start(), m.end())));
        }
    }
}

impl Scanner {
    /// `None` when nothing would be found. `key_rules` says whether any key rule exists: without
    /// one, no `key=value` pair can be sensitive.
    pub(super) fn new(detection: &ValueDetection, key_rules: bool) -> Option<Self> {
        let mut kinds = detection.kinds;
        if !key_rules {
            kinds &= !SecretKind::KeyValue.bit();
        }
        if kinds == 0 && detection.patterns.is_empty() {
            return None;
        }
        let on = |kind: SecretKind| kinds & kind.bit() != 0;
        let mut literals: Vec<&'static str> = Vec::new();
        let mut meanings = Vec::new();
        let mut add = |trigger: Trigger, texts: &[&'static str]| {
            for text in texts {
                literals.push(text);
                meanings.push(trigger);
            }
        };
        if on(SecretKind::BearerToken) {
            add(Trigger::Bearer, &["bearer", "Bearer", "BEARER"]);
        }
        if on(SecretKind::Jwt) {
            add(Trigger::Jwt, &["eyJ"]);
        }
        if on(SecretKind::AwsAccessKeyId) {
            add(Trigger::Aws, &["AKIA", "ASIA", "ABIA", "ACCA"]);
        }
        if on(SecretKind::StripeKey) {
            add(
                Trigger::Stripe,
                &["sk_live_", "sk_test_", "rk_live_", "rk_test_"],
            );
        }
        if on(SecretKind::GithubToken) {
            add(
                Trigger::Github,
                &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
            );
        }
        if on(SecretKind::SlackToken) {
            add(Trigger::Slack, &["xox"]);
        }
        let triggers = if literals.is_empty() {
            None
        } else {
            // A handful of short literals always builds. Leftmost-first, as no literal is a
            // prefix of another that starts elsewhere: only then does the automaton use its
            // packed SIMD prefilter, which skips text without a candidate at vector speed.
            AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                .build(&literals)
                .ok()
                .map(|ac| (ac, meanings))
        };
        let at = on(SecretKind::Email) || on(SecretKind::UrlCredentials);
        let separators = on(SecretKind::KeyValue);
        // memchr3 with a byte repeated searches for fewer bytes.
        let bytes = match (at, separators) {
            (true, true) => Some([b'@', b'=', b':']),
            (true, false) => Some([b'@'; 3]),
            (false, true) => Some([b'=', b':', b':']),
            (false, false) => None,
        };
        Some(Self {
            kinds,
            bytes,
            triggers,
            extra: ExtraPatterns::new(&detection.patterns),
        })
    }

    /// Appends the byte ranges of the secrets in `text` to `found`, in no particular order and
    /// possibly overlapping. `sensitive_key` decides the keys of `key=value` pairs.
    pub(super) fn find(
        &self,
        text: &str,
        sensitive_key: &dyn Fn(&str) -> bool,
        found: &mut Vec<(usize, usize)>,
    ) {
        let bytes = text.as_bytes();
        if let Some([a, b, c]) = self.bytes {
            for at in memchr::memchr3_iter(a, b, c, bytes) {
                let range = if bytes[at] == b'@' {
                    self.at_sign(bytes, at)
                } else {
                    key_value(bytes, at, sensitive_key)
                };
                if let Some(range) = range {
                    found.push(range);
                }
            }
        }
        if let Some((automaton, meanings)) = &self.triggers {
            for hit in automaton.find_iter(bytes) {
                let at = hit.start();
                let range = match meanings[hit.pattern().as_usize()] {
                    Trigger::Bearer => bearer(bytes, at),
                    Trigger::Jwt => jwt(bytes, at),
                    Trigger::Aws => aws(bytes, at),
                    Trigger::Stripe => prefixed(bytes, at, hit.end(), 10, is_alnum),
                    Trigger::Github => {
                        let underscore = bytes[at..hit.end()].starts_with(b"github_pat_");
                        prefixed(
                            bytes,
                            at,
                            hit.end(),
                            20,
                            if underscore { is_word } else { is_alnum },
                        )
                    }
                    Trigger::Slack => slack(bytes, at),
                };
                if let Some(range) = range {
                    found.push(range);
                }
            }
        }
        if self.kinds & SecretKind::CardNumber.bit() != 0 {
            cards(bytes, found);
        }
        self.extra.find(text, found);
    }

    fn at_sign(&self, bytes: &[u8], at: usize) -> Option<(usize, usize)> {
        if self.kinds & SecretKind::UrlCredentials.bit() != 0
            && let Some(range) = url_credentials(bytes, at)
        {
            return Some(range);
        }
        if self.kinds & SecretKind::Email.bit() != 0 {
            return email(bytes, at);
        }
        None
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The end of the run of bytes from `from` that satisfy `class`.
fn run_end(bytes: &[u8], from: usize, class: impl Fn(u8) -> bool) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| !class(b))
        .map_or(bytes.len(), |n| from + n)
}

/// The start of the run of bytes ending before `to` that satisfy `class`.
fn run_start(bytes: &[u8], to: usize, class: impl Fn(u8) -> bool) -> usize {
    bytes[..to]
        .iter()
        .rposition(|&b| !class(b))
        .map_or(0, |n| n + 1)
}

/// Whether the byte before `at` ends a word (or there is none).
fn starts_word(bytes: &[u8], at: usize) -> bool {
    at == 0 || !is_word(bytes[at - 1])
}

/// `user:password@` after `://`: the user information.
fn url_credentials(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let start = run_start(bytes, at, |b| {
        !(b.is_ascii_whitespace() || b"/\"'<>()[]{},;@".contains(&b))
    });
    (start >= 3 && start < at && &bytes[start - 3..start] == b"://").then_some((start, at))
}

fn email(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let local = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
    let start = run_start(bytes, at, local);
    if start == at || at - start > 64 || bytes[start] == b'.' {
        return None;
    }
    // Labels of letters, digits and dashes, separated by single dots; the last all letters.
    let mut end = at + 1;
    let mut labels = 0;
    let mut last_alpha = false;
    loop {
        let label_end = run_end(bytes, end, |b| b.is_ascii_alphanumeric() || b == b'-');
        if label_end == end {
            break;
        }
        labels += 1;
        last_alpha =
            label_end - end >= 2 && bytes[end..label_end].iter().all(u8::is_ascii_alphabetic);
        let next = label_end;
        end = label_end;
        if bytes.get(next) == Some(&b'.')
            && bytes
                .get(next + 1)
                .is_some_and(|b| b.is_ascii_alphanumeric())
        {
            end = next + 1;
        } else {
            break;
        }
    }
    (labels >= 2 && last_alpha).then_some((start, end))
}

/// The value after `=` or `:` at `at`, when the key before it is sensitive.
fn key_value(
    bytes: &[u8],
    at: usize,
    sensitive_key: &dyn Fn(&str) -> bool,
) -> Option<(usize, usize)> {
    let next = bytes.get(at + 1).copied();
    // `a == b`, `https://`, `::` paths: not pairs; nor `12:30` or `:8080` between digits
    // (times, ports, ratios), which are the most common `:` in log text.
    let digits_around =
        at > 0 && bytes[at - 1].is_ascii_digit() && next.is_some_and(|b| b.is_ascii_digit());
    if next == Some(bytes[at]) || (bytes[at] == b':' && next == Some(b'/')) || digits_around {
        return None;
    }
    // The key: before optional spaces and an optional closing quote.
    let mut key_end = at;
    while key_end > 0 && matches!(bytes[key_end - 1], b' ' | b'\t') {
        key_end -= 1;
    }
    if key_end > 0 && matches!(bytes[key_end - 1], b'"' | b'\'') {
        key_end -= 1;
    }
    let key_start = run_start(bytes, key_end, |b| is_word(b) || b == b'-' || b == b'.');
    if key_start == key_end {
        return None;
    }
    // Only ASCII bytes were stepped over, so the slice is text.
    let key = std::str::from_utf8(&bytes[key_start..key_end]).ok()?;
    if !sensitive_key(key) {
        return None;
    }
    let mut start = at + 1;
    while bytes.get(start).is_some_and(|b| matches!(b, b' ' | b'\t')) {
        start += 1;
    }
    // A `Debug` wrapper (`Some("x")`, `Secret("x")`) leads to the value inside it.
    let wrapped = run_end(bytes, start, |b| is_word(b) || b == b':');
    if wrapped > start && bytes.get(wrapped) == Some(&b'(') {
        start = wrapped + 1;
    }
    let end = match bytes.get(start)? {
        quote @ (b'"' | b'\'') => {
            let quote = *quote;
            let mut i = start + 1;
            while i < bytes.len() && bytes[i] != quote {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            start += 1;
            i.min(bytes.len())
        }
        b'[' | b'{' | b'(' => balanced(bytes, start),
        _ => run_end(bytes, start, |b| {
            !(b.is_ascii_whitespace() || b",;&)]}<>\"'".contains(&b))
        }),
    };
    (end > start).then_some((start, end))
}

/// The end of the bracketed value starting at `start` (past its closing bracket), quotes
/// respected; the end of the text if it never closes.
fn balanced(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut quote = None;
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'[' | b'{' | b'(' => depth += 1,
                b']' | b'}' | b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    bytes.len()
}

fn bearer(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    if !starts_word(bytes, at) {
        return None;
    }
    let spaces = run_end(bytes, at + 6, |b| b == b' ' || b == b'\t');
    if spaces == at + 6 {
        return None;
    }
    let token = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
    let end = run_end(bytes, spaces, token);
    let value = &bytes[spaces..end];
    if value.len() < 12 || value.iter().all(u8::is_ascii_lowercase) {
        return None;
    }
    Some((spaces, run_end(bytes, end, |b| b == b'=')))
}

fn jwt(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    if at > 0 && is_base64url(bytes[at - 1]) {
        return None;
    }
    let header = run_end(bytes, at, is_base64url);
    if header - at < 10 || bytes.get(header) != Some(&b'.') {
        return None;
    }
    let payload = run_end(bytes, header + 1, is_base64url);
    if payload - header - 1 < 2 || bytes.get(payload) != Some(&b'.') {
        return None;
    }
    Some((at, run_end(bytes, payload + 1, is_base64url)))
}

fn aws(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let end = at + 20;
    let id = bytes.get(at + 4..end)?;
    (starts_word(bytes, at)
        && id
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && !bytes.get(end).is_some_and(|&b| is_alnum(b)))
    .then_some((at, end))
}

/// A fixed prefix (`prefix_end` past it) followed by at least `min` bytes of `class`.
fn prefixed(
    bytes: &[u8],
    at: usize,
    prefix_end: usize,
    min: usize,
    class: fn(u8) -> bool,
) -> Option<(usize, usize)> {
    if !starts_word(bytes, at) {
        return None;
    }
    let end = run_end(bytes, prefix_end, class);
    (end - prefix_end >= min).then_some((at, end))
}

fn slack(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let kind = *bytes.get(at + 3)?;
    if !b"aboprse".contains(&kind) || bytes.get(at + 4) != Some(&b'-') {
        return None;
    }
    prefixed(bytes, at, at + 5, 10, |b| is_alnum(b) || b == b'-')
}

/// The shortest card number, in bytes.
const CARD_MIN_DIGITS: usize = 13;
const CARD_MAX_DIGITS: usize = 19;

fn is_card_byte(b: u8) -> bool {
    b.is_ascii_digit() || b == b' ' || b == b'-'
}

/// Finds Luhn-valid card numbers. A card spans at least [`CARD_MIN_DIGITS`] bytes of digits and
/// separators, so a byte that is neither rules out every card through it: the scan looks at
/// every thirteenth byte until one is a digit or separator, then reads that run whole.
fn cards(bytes: &[u8], found: &mut Vec<(usize, usize)>) {
    let mut probe = CARD_MIN_DIGITS - 1;
    while probe < bytes.len() {
        if !is_card_byte(bytes[probe]) {
            probe += CARD_MIN_DIGITS;
            continue;
        }
        let start = run_start(bytes, probe, is_card_byte);
        let end = run_end(bytes, probe, is_card_byte);
        if end - start >= CARD_MIN_DIGITS {
            cards_in_run(bytes, start, end, found);
        }
        probe = end + CARD_MIN_DIGITS;
    }
}

/// The card numbers in a run of digits and separators: groups of digits joined by single
/// separators, with nothing number-like on either side. A run of groups that is no card as a
/// whole may hold one (`page 2 4111 1111 1111 1111`): every sequence of whole groups of card
/// length is checked.
fn cards_in_run(bytes: &[u8], start: usize, end: usize, found: &mut Vec<(usize, usize)>) {
    let mut i = start;
    let mut groups: Vec<(usize, usize)> = Vec::new();
    while i < end {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // A number: groups of digits, each separator single and followed by a digit.
        groups.clear();
        loop {
            let group_end = run_end(&bytes[..end], i, |b| b.is_ascii_digit());
            groups.push((i, group_end));
            i = group_end;
            if i + 1 < end && bytes[i + 1].is_ascii_digit() && !bytes[i].is_ascii_digit() {
                i += 1;
            } else {
                break;
            }
        }
        let first = groups[0].0;
        let stop = groups[groups.len() - 1].1;
        let before_ok = first == 0 || {
            let b = bytes[first - 1];
            !(is_word(b)
                || (matches!(b, b'.' | b',') && first >= 2 && bytes[first - 2].is_ascii_digit()))
        };
        let after_ok = stop == bytes.len() || {
            let b = bytes[stop];
            !(is_word(b)
                || (matches!(b, b'.' | b',')
                    && bytes.get(stop + 1).is_some_and(u8::is_ascii_digit)))
        };
        for from in 0..groups.len() {
            let mut digits = 0;
            for to in from..groups.len() {
                digits += groups[to].1 - groups[to].0;
                if digits > CARD_MAX_DIGITS {
                    break;
                }
                let (a, b) = (groups[from].0, groups[to].1);
                // Card numbers start 2 to 6 (Mastercard's 2-series, Amex, Diners and JCB, Visa,
                // Mastercard and Maestro, Discover and UnionPay): never 1, as millisecond and
                // microsecond timestamps do, nor 7 to 9 or 0.
                if digits >= CARD_MIN_DIGITS
                    && matches!(bytes[a], b'2'..=b'6')
                    && (from > 0 || before_ok)
                    && (to + 1 < groups.len() || after_ok)
                    && luhn(&bytes[a..b])
                {
                    found.push((a, b));
                }
            }
        }
        i = stop + 1;
    }
}

/// The Luhn checksum over the digits of `number` (separators skipped).
fn luhn(number: &[u8]) -> bool {
    let mut sum = 0u32;
    for (position, digit) in number
        .iter()
        .rev()
        .filter(|b| b.is_ascii_digit())
        .map(|b| u32::from(b - b'0'))
        .enumerate()
    {
        sum += if position % 2 == 1 {
            let doubled = digit * 2;
            if doubled > 9 { doubled - 9 } else { doubled }
        } else {
            digit
        };
    }
    sum.is_multiple_of(10)
}

/// `text` with each range masked: sorted, overlapping and touching ranges merged.
pub(super) fn mask_ranges(text: &str, ranges: &mut [(usize, usize)], mask: &str) -> String {
    ranges.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut masked = false;
    for &(start, end) in ranges.iter() {
        if end <= copied {
            continue;
        }
        // A range that touches the previous one extends its mask: one mask per secret.
        if start > copied || !masked {
            out.push_str(&text[copied..start]);
            out.push_str(mask);
            masked = true;
        }
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::super::ParameterFilter;
    use super::*;
    use std::borrow::Cow;

    fn scrub(text: &str) -> String {
        ParameterFilter::tasker_default().scrub(text).into_owned()
    }

    fn only(kind: SecretKind, text: &str) -> String {
        ParameterFilter::tasker_default()
            .with_value_detection(ValueDetection::only([kind]))
            .scrub(text)
            .into_owned()
    }

    #[test]
    fn each_kind_masks_its_secret_and_keeps_the_rest() {
        let cases: [(SecretKind, &str, &str); 10] = [
            (
                SecretKind::Email,
                "mail ada.l+x@mail.example.co.uk now",
                "mail [FILTERED] now",
            ),
            (
                SecretKind::UrlCredentials,
                "GET https://ada:s3cret@db.internal:5432/x",
                "GET https://[FILTERED]@db.internal:5432/x",
            ),
            (
                SecretKind::BearerToken,
                "Authorization: Bearer abcDEF123456.xyz=",
                "Authorization: Bearer [FILTERED]",
            ),
            (
                SecretKind::Jwt,
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature_ ok",
                "jwt [FILTERED] ok",
            ),
            (
                SecretKind::AwsAccessKeyId,
                "key AKIAIOSFODNN7EXAMPLE,",
                "key [FILTERED],",
            ),
            (
                SecretKind::StripeKey,
                "(sk_live_4eC39HqLyjWDarjtT1zdp7dc)",
                "([FILTERED])",
            ),
            (
                SecretKind::GithubToken,
                "token ghp_0123456789abcdefghijABCDEFGHIJ used",
                "token [FILTERED] used",
            ),
            (
                SecretKind::SlackToken,
                "xoxb-123456789012-abcdefABCDEF",
                "[FILTERED]",
            ),
            (
                SecretKind::CardNumber,
                "card 4111 1111 1111 1111 declined; 5500-0000-0000-0004 too",
                "card [FILTERED] declined; [FILTERED] too",
            ),
            (
                SecretKind::KeyValue,
                r#"Config { password: Some("hunter2"), user: "ada" } api_key=k-1&x=2 {"secret": "s 1"}"#,
                r#"Config { password: Some("[FILTERED]"), user: "ada" } api_key=[FILTERED]&x=2 {"secret": "[FILTERED]"}"#,
            ),
        ];
        for (kind, text, expected) in cases {
            assert_eq!(only(kind, text), expected, "{kind}");
            assert_eq!(scrub(text), expected, "{kind} with every kind on");
            assert_eq!(
                ParameterFilter::tasker_default()
                    .with_value_detection(ValueDetection::off())
                    .scrub(text),
                text,
                "{kind} with detection off"
            );
        }
    }

    #[test]
    fn benign_text_is_borrowed_unchanged() {
        for text in [
            "2026-12-06T22:31:07.123Z INFO order 12345 shipped in 1.25s",
            "https://example.com:8443/api/v1/orders?id=42&page=2",
            "f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "version 1.95.0 (59807616e 2026-04-14), 10.0.0.12:9090 up",
            "bearer token rotation scheduled; a == b; std::io::Error",
            "1234567890123 is not a card (Luhn fails): 4111111111111112",
            "user@localhost can't be mailed, but ok",
        ] {
            assert!(
                matches!(ParameterFilter::tasker_default().scrub(text), Cow::Borrowed(t) if t == text),
                "{text}"
            );
        }
    }

    #[test]
    fn numbers_inside_longer_numbers_or_words_are_not_cards() {
        for text in [
            "id 14111111111111111100",
            "x4111111111111111",
            "1.4111111111111111",
        ] {
            assert_eq!(only(SecretKind::CardNumber, text), text);
        }
    }

    #[test]
    fn key_value_pairs_need_a_sensitive_key_and_a_key_rule() {
        assert_eq!(only(SecretKind::KeyValue, "color=red"), "color=red");
        let no_rules = ParameterFilter::new(&[] as &[&str], "[F]").unwrap();
        assert_eq!(no_rules.scrub("password=x"), "password=x");
        assert_eq!(no_rules.scrub("ada@example.com"), "[F]");
    }

    #[test]
    fn extra_patterns_are_masked_and_bad_ones_refused() {
        let detection = ValueDetection::off()
            .with_pattern(r"INV-\d{6}")
            .unwrap()
            .with_pattern("ORD[0-9]+")
            .unwrap();
        let filter = ParameterFilter::tasker_default().with_value_detection(detection);
        assert_eq!(
            filter.scrub("INV-123456 ORD77 x"),
            "[FILTERED] [FILTERED] x"
        );
        for bad in ["", "(", "a*"] {
            let error = ValueDetection::off().with_pattern(bad).unwrap_err();
            assert!(
                matches!(error, FilterError::InvalidValuePattern { .. }),
                "{bad}"
            );
        }
        let error = ValueDetection::parse(["all", "emails"]).unwrap_err();
        assert!(error.to_string().contains("\"emails\""), "{error}");
        assert!(error.to_string().contains("card_number"), "{error}");
    }

    #[test]
    fn overlapping_and_adjacent_finds_are_merged_and_multibyte_text_kept() {
        let text = "é ada@example.com→ghp_0123456789abcdefghij0123 ü";
        assert_eq!(scrub(text), "é [FILTERED]→[FILTERED] ü");
        let mut ranges = vec![(4, 8), (0, 2), (1, 5), (8, 9)];
        assert_eq!(mask_ranges("0123456789", &mut ranges, "#"), "#9");
    }
}
