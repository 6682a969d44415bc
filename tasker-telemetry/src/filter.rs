//! The sensitive-data filter.
//!
//! Secrets must never leave the process, so one [`ParameterFilter`] is applied to every sink:
//! event payloads, span attributes, log fields and metric labels. It keeps the semantics of
//! Tasker's (and Rails') `filter_parameters`, so an existing list carries over unchanged:
//!
//! | Rule text              | Meaning                                                            |
//! |------------------------|--------------------------------------------------------------------|
//! | `passw`                | any key containing `passw`, ASCII case-insensitive                 |
//! | `customer.card.number` | that path from the root; arrays are transparent; `*` = any one key |
//! | `/^api[-_]?key$/`      | a regular expression matched against the key alone                 |
//! | `/^api[-_]?key$/i`     | the same, case-insensitive                                         |
//!
//! A matching key keeps its name; its whole value (even an object or an array) becomes the mask.
//!
//! Key names cannot see a secret inside free text, so the filter also looks at the text itself:
//! email addresses, URL credentials, bearer tokens, JWTs, AWS access key ids, Stripe, GitHub and
//! Slack tokens, Luhn-valid card numbers, and `key=value` / `key: value` / `"key": "value"` pairs
//! whose key a rule matches (see [`SecretKind`]). Each one found becomes the mask and the rest of
//! the text is kept. This is on by default; [`ValueDetection`] chooses the kinds and adds
//! patterns of your own.
//!
//! ```
//! use tasker_telemetry::filter::ParameterFilter;
//! use serde_json::json;
//!
//! let filter = ParameterFilter::tasker_default();
//! let payload = json!({"user_email": "a@example.com", "amount": 42, "card": {"cvv_token": "x"}});
//! assert_eq!(
//!     filter.filtered(&payload),
//!     json!({"user_email": "[FILTERED]", "amount": 42, "card": {"cvv_token": "[FILTERED]"}}),
//! );
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde_json::Value;

use crate::fast_hash::FnvBuildHasher;

mod depth;
mod secrets;

pub(crate) use depth::{Bounded, Past, drop_deep, to_value_bounded};
pub use depth::{DEPTH_MASK, MAX_VALUE_DEPTH};
pub(crate) use secrets::accepted_detector_names;
pub use secrets::{SecretKind, ValueDetection};

/// Tasker's default `filter_parameters`, kept verbatim so existing deployments filter the same keys.
///
/// These are substrings, so `"otp"` also matches keys such as `hotpath`: over-masking a harmless key
/// is the accepted price of never leaking a one-time password.
pub const DEFAULT_FILTER_PARAMETERS: &[&str] = &[
    "passw",
    "email",
    "secret",
    "token",
    "_key",
    "crypt",
    "salt",
    "certificate",
    "otp",
    "ssn",
];

/// Tasker's default replacement for a sensitive value.
pub const DEFAULT_FILTER_MASK: &str = "[FILTERED]";

/// What the rule-list syntax accepts, repeated in every error so the fix is in the message.
const ACCEPTED_RULES: &str = "a key substring (e.g. \"passw\"), a dotted path from the root \
     (e.g. \"customer.card.number\", \"*\" matches any one key) or a regular expression on keys \
     written \"/pattern/\" or \"/pattern/i\"";

/// One rule of a [`ParameterFilter`].
///
/// [`ParameterFilter::new`] parses rule text into these; build them directly with
/// [`ParameterFilter::from_rules`] when the text syntax is in the way (e.g. a key that starts
/// with `/`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FilterRule {
    /// A key containing this text, ASCII case-insensitive, at any depth.
    KeySubstring(String),
    /// The keys from the root to the filtered value. Arrays are transparent, `"*"` matches any one
    /// key, and the comparison is ASCII case-insensitive.
    Path(Vec<String>),
    /// A key (alone, not its path) matched by this regular expression, unanchored like Ruby's `=~`.
    ///
    /// A filter matches all its patterns together, by their text ([`Regex::as_str`]): write
    /// flags inline (`(?i)`), as `/.../i` rules are compiled, not through `RegexBuilder`.
    KeyPattern(Regex),
}

/// A rule list or mask that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A rule is empty or only whitespace; it would either match every key or none.
    #[error("filter rule #{index} is empty: expected {ACCEPTED_RULES}")]
    EmptyRule {
        /// Position of the rule in the list, from 0.
        index: usize,
    },
    /// A `/.../` rule is not a valid regular expression (or uses a flag other than `i`).
    #[error(
        "filter rule {rule:?} is not a valid regular expression ({message}): expected {ACCEPTED_RULES}"
    )]
    InvalidRegex {
        /// The rule text as given.
        rule: String,
        /// Why it was rejected.
        message: String,
    },
    /// A dotted path has an empty segment (`"a..b"`, `".a"`, `"a."`).
    #[error(
        "filter rule {rule:?} has an empty path segment: expected keys separated by single dots, e.g. \"customer.card.number\""
    )]
    EmptyPathSegment {
        /// The rule text as given.
        rule: String,
    },
    /// A value-detector name is not one of [`SecretKind`]'s, `"all"` or `"none"`.
    #[error(
        "unknown value detector {name:?}: expected {}",
        secrets::accepted_detector_names()
    )]
    UnknownDetector {
        /// The name as given.
        name: String,
    },
    /// An extra value pattern ([`ValueDetection::with_pattern`]) is not a usable regular
    /// expression.
    #[error(
        "value pattern {pattern:?} is not usable ({message}): expected a regular expression that matches the secret itself, e.g. \"INV-\\d{{6}}\""
    )]
    InvalidValuePattern {
        /// The pattern as given.
        pattern: String,
        /// Why it was rejected.
        message: String,
    },
    /// The mask is empty, which would make filtered values indistinguishable from empty ones.
    #[error(
        "the filter mask is empty: expected a non-empty replacement text such as \"[FILTERED]\""
    )]
    EmptyMask,
}

/// Replaces sensitive values with a mask before they reach any sink.
///
/// Cheap to clone (the compiled rules are shared) and `Send + Sync`, so one instance is built at
/// startup and handed to every sink.
///
/// ```
/// use tasker_telemetry::ParameterFilter;
///
/// let filter = ParameterFilter::new(["passw", "customer.card.number", "/^api[-_]?key$/i"], "***")?;
/// assert!(filter.is_sensitive_key("Password_Confirmation"));
/// assert!(filter.is_sensitive_key("API_KEY"));
/// assert!(filter.is_sensitive_path(&["customer", "card", "number"]));
/// assert_eq!(filter.filter_field("password", "hunter2"), "***");
/// assert_eq!(filter.filter_field("step_name", "charge"), "charge");
/// # Ok::<(), tasker_telemetry::FilterError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ParameterFilter {
    inner: Arc<Inner>,
}

/// Keys whose sensitivity a thread already worked out.
type DecidedKeys = HashMap<Box<str>, bool, FnvBuildHasher>;

#[derive(Debug)]
struct Inner {
    /// Tells filters apart in the per-thread cache of key decisions.
    id: u64,
    rules: Vec<FilterRule>,
    mask: String,
    /// The substring rules, matched together (ASCII case-insensitive) in one pass over a key.
    substrings: Option<KeySubstrings>,
    /// The pattern rules, matched together.
    patterns: Option<KeyPatterns>,
    paths: Vec<Vec<String>>,
    detection: ValueDetection,
    /// `detection` compiled; `None` when it finds nothing.
    scanner: Option<secrets::Scanner>,
    /// Containers replaced for nesting deeper than [`MAX_VALUE_DEPTH`].
    too_deep: std::sync::atomic::AtomicU64,
}

/// The substring rules: one automaton, or (for a list too large to build one, which no real list
/// is) each rule lowered once and searched on its own.
#[derive(Debug)]
enum KeySubstrings {
    Automaton(AhoCorasick),
    Each(Vec<Box<[u8]>>),
}

impl KeySubstrings {
    fn new(substrings: Vec<String>) -> Option<Self> {
        if substrings.is_empty() {
            return None;
        }
        Some(
            match AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(&substrings)
            {
                Ok(automaton) => Self::Automaton(automaton),
                Err(_) => Self::Each(
                    substrings
                        .iter()
                        .map(|s| s.to_ascii_lowercase().into_bytes().into_boxed_slice())
                        .collect(),
                ),
            },
        )
    }

    fn is_match(&self, key: &str) -> bool {
        match self {
            Self::Automaton(automaton) => automaton.is_match(key),
            Self::Each(needles) => needles
                .iter()
                .any(|needle| contains_ignore_ascii_case(key.as_bytes(), needle)),
        }
    }
}

/// The pattern rules: one set when they compile into one, else each on its own (a very large
/// list can exceed the set's size limit, and is still matched).
#[derive(Debug)]
enum KeyPatterns {
    Set(RegexSet),
    Each(Vec<Regex>),
}

impl KeyPatterns {
    fn new(patterns: Vec<Regex>) -> Option<Self> {
        if patterns.is_empty() {
            return None;
        }
        Some(
            match RegexSetBuilder::new(patterns.iter().map(Regex::as_str))
                .nest_limit(REGEX_NEST_LIMIT)
                .build()
            {
                Ok(set) => Self::Set(set),
                Err(_) => Self::Each(patterns),
            },
        )
    }

    fn is_match(&self, key: &str) -> bool {
        match self {
            Self::Set(set) => set.is_match(key),
            Self::Each(patterns) => patterns.iter().any(|re| re.is_match(key)),
        }
    }
}

impl ParameterFilter {
    /// Parses a Rails/Tasker `filter_parameters` list.
    ///
    /// `"/.../"` (optionally `"/.../i"`) is a regular expression on keys; a string containing `'.'`
    /// is a dotted path from the root; anything else is an ASCII case-insensitive key substring.
    ///
    /// # Errors
    /// [`FilterError`] for an empty rule, an invalid regular expression, an empty path segment or
    /// an empty mask.
    ///
    /// ```
    /// use tasker_telemetry::{FilterError, ParameterFilter};
    ///
    /// assert!(ParameterFilter::new(["token", "/^x-api-key$/i"], "[HIDDEN]").is_ok());
    /// assert_eq!(
    ///     ParameterFilter::new(["token", ""], "[HIDDEN]").unwrap_err(),
    ///     FilterError::EmptyRule { index: 1 },
    /// );
    /// ```
    pub fn new<I, S>(parameters: I, mask: impl Into<String>) -> Result<Self, FilterError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mask = mask.into();
        if mask.is_empty() {
            return Err(FilterError::EmptyMask);
        }
        let rules = parameters
            .into_iter()
            .enumerate()
            .map(|(index, rule)| parse_rule(index, rule.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_rules(rules, mask))
    }

    /// Tasker's defaults: [`DEFAULT_FILTER_PARAMETERS`] masked with [`DEFAULT_FILTER_MASK`].
    pub fn tasker_default() -> Self {
        let rules = DEFAULT_FILTER_PARAMETERS
            .iter()
            .map(|rule| FilterRule::KeySubstring((*rule).to_owned()))
            .collect();
        Self::from_rules(rules, DEFAULT_FILTER_MASK)
    }

    /// A filter that masks nothing, for hosts that filter upstream. Keeps the default mask so
    /// [`mask`](Self::mask) is still meaningful.
    pub fn none() -> Self {
        Self::build(
            Vec::new(),
            DEFAULT_FILTER_MASK.to_owned(),
            ValueDetection::off(),
        )
    }

    /// Builds a filter from rules that are already parsed, with every [`SecretKind`] detected in
    /// free text.
    ///
    /// This constructor cannot fail, so degenerate rules are made harmless instead of rejected: an
    /// empty `KeySubstring` or an empty `Path` matches nothing, and an empty mask is replaced by
    /// [`DEFAULT_FILTER_MASK`] (an empty mask would hide that anything was filtered).
    ///
    /// ```
    /// use tasker_telemetry::filter::{FilterRule, ParameterFilter};
    ///
    /// let filter = ParameterFilter::from_rules(
    ///     vec![FilterRule::Path(vec!["/etc".into(), "shadow".into()])],
    ///     "[FILTERED]",
    /// );
    /// assert!(filter.is_sensitive_path(&["/etc", "shadow"]));
    /// ```
    pub fn from_rules(rules: Vec<FilterRule>, mask: impl Into<String>) -> Self {
        Self::build(rules, mask.into(), ValueDetection::all())
    }

    /// This filter with other value detection: which [`SecretKind`]s are found in free text,
    /// and any patterns of your own. [`ValueDetection::off`] leaves only the key rules.
    ///
    /// ```
    /// use tasker_telemetry::filter::{ParameterFilter, ValueDetection};
    ///
    /// let text = "charge failed for ada@example.com";
    /// let keys_only = ParameterFilter::tasker_default().with_value_detection(ValueDetection::off());
    /// assert_eq!(keys_only.scrub(text), text);
    /// assert_eq!(ParameterFilter::tasker_default().scrub(text), "charge failed for [FILTERED]");
    /// ```
    pub fn with_value_detection(&self, detection: ValueDetection) -> Self {
        Self::build(self.inner.rules.clone(), self.inner.mask.clone(), detection)
    }

    /// What is detected by value in free text.
    pub fn value_detection(&self) -> &ValueDetection {
        &self.inner.detection
    }

    fn build(rules: Vec<FilterRule>, mut mask: String, detection: ValueDetection) -> Self {
        if mask.is_empty() {
            mask = DEFAULT_FILTER_MASK.to_owned();
        }
        let mut substrings = Vec::new();
        let mut patterns = Vec::new();
        let mut paths = Vec::new();
        for rule in &rules {
            match rule {
                FilterRule::KeySubstring(text) if !text.is_empty() => substrings.push(text.clone()),
                FilterRule::Path(segments) if !segments.is_empty() => {
                    paths.push(segments.iter().map(|s| s.to_ascii_lowercase()).collect());
                }
                FilterRule::KeyPattern(regex) => patterns.push(regex.clone()),
                FilterRule::KeySubstring(_) | FilterRule::Path(_) => {}
            }
        }
        Self {
            inner: Arc::new(Inner {
                id: {
                    static NEXT_ID: std::sync::atomic::AtomicU64 =
                        std::sync::atomic::AtomicU64::new(0);
                    NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                },
                rules,
                mask,
                scanner: secrets::Scanner::new(
                    &detection,
                    !(substrings.is_empty() && patterns.is_empty() && paths.is_empty()),
                ),
                detection,
                too_deep: std::sync::atomic::AtomicU64::new(0),
                substrings: KeySubstrings::new(substrings),
                patterns: KeyPatterns::new(patterns),
                paths,
            }),
        }
    }

    /// The text that replaces a sensitive value.
    pub fn mask(&self) -> &str {
        &self.inner.mask
    }

    /// The rules, in the order given.
    pub fn rules(&self) -> &[FilterRule] {
        &self.inner.rules
    }

    /// `true` when no rule can match and nothing is detected by value, so callers may skip
    /// walking values altogether.
    pub fn is_empty(&self) -> bool {
        let inner = &self.inner;
        inner.substrings.is_none()
            && inner.patterns.is_none()
            && inner.paths.is_empty()
            && inner.scanner.is_none()
    }

    /// `text` with every secret that value detection finds in it replaced by the mask, the rest
    /// kept; `text` itself, borrowed, when there is none.
    ///
    /// ```
    /// use tasker_telemetry::ParameterFilter;
    ///
    /// let filter = ParameterFilter::tasker_default();
    /// assert_eq!(
    ///     filter.scrub("retry with password=hunter2 for ada@example.com"),
    ///     "retry with password=[FILTERED] for [FILTERED]",
    /// );
    /// assert_eq!(filter.scrub("gateway timed out after 30s"), "gateway timed out after 30s");
    /// ```
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.inner.scanner {
            Some(scanner) => self.scrub_with(scanner, text),
            None => Cow::Borrowed(text),
        }
    }

    fn scrub_with<'a>(&self, scanner: &secrets::Scanner, text: &'a str) -> Cow<'a, str> {
        let mut found = Vec::new();
        scanner.find(text, &|key| self.is_sensitive_field_key(key), &mut found);
        if found.is_empty() {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(secrets::mask_ranges(text, &mut found, &self.inner.mask))
        }
    }

    /// Whether a key is sensitive wherever it appears: substring and regular-expression rules only,
    /// since path rules need to know where the key is (see [`is_sensitive_path`](Self::is_sensitive_path)).
    pub fn is_sensitive_key(&self, key: &str) -> bool {
        let inner = &self.inner;
        inner.substrings.as_ref().is_some_and(|s| s.is_match(key))
            || inner.patterns.as_ref().is_some_and(|p| p.is_match(key))
    }

    /// Whether the value at `path` (keys from the root, array indices left out) would be masked.
    ///
    /// All rules apply. A path below a masked value is sensitive too, because
    /// [`filter_in_place`](Self::filter_in_place) masks that whole value.
    pub fn is_sensitive_path(&self, path: &[&str]) -> bool {
        path.iter().any(|key| self.is_sensitive_key(key))
            || self.path_rule_covers(path.iter().copied())
    }

    /// Masks every sensitive value, recursively through objects and arrays (including objects
    /// inside arrays and arrays of arrays), and the secrets value detection finds in every text
    /// (see [`scrub`](Self::scrub)). Values with nothing sensitive are left exactly as they were,
    /// key order included.
    ///
    /// Objects and arrays nested deeper than [`MAX_VALUE_DEPTH`] are replaced by
    /// [`DEPTH_MASK`] and counted ([`depth_truncations`](Self::depth_truncations)): nothing
    /// downstream recurses without a bound, and the parts removed are dropped without
    /// recursion.
    ///
    /// ```
    /// use tasker_telemetry::ParameterFilter;
    /// use serde_json::json;
    ///
    /// let mut value = json!({"note": "call ada@example.com", "otp": 123456});
    /// ParameterFilter::tasker_default().filter_in_place(&mut value);
    /// assert_eq!(value, json!({"note": "call [FILTERED]", "otp": "[FILTERED]"}));
    /// ```
    // Inlined so that a scalar (a step's result often is one) costs a check, not a call.
    #[inline]
    pub fn filter_in_place(&self, value: &mut Value) {
        match value {
            Value::Object(_) | Value::Array(_) => {
                self.filter_nested(value);
            }
            Value::String(text) if self.inner.scanner.is_some() => {
                self.scrub_string(text);
            }
            _ => {}
        }
    }

    /// [`filter_in_place`](Self::filter_in_place) on a container; whether anything changed.
    #[inline(never)]
    fn filter_nested(&self, value: &mut Value) -> bool {
        // Path rules whose segments matched so far, as indices into `paths`; all are candidates at the root.
        let all: Vec<usize> = (0..self.inner.paths.len()).collect();
        self.walk(value, 0, 0, &all)
    }

    /// A filtered copy of `value`; the original is untouched. Copied only down to
    /// [`MAX_VALUE_DEPTH`] (see [`filter_in_place`](Self::filter_in_place)).
    pub fn filtered(&self, value: &Value) -> Value {
        let mut copy = depth::clone_bounded(value, &self.inner.too_deep);
        self.filter_in_place(&mut copy);
        copy
    }

    /// How many objects or arrays nested deeper than [`MAX_VALUE_DEPTH`] this filter (and its
    /// clones) replaced by [`DEPTH_MASK`].
    ///
    /// ```
    /// use tasker_telemetry::filter::{DEPTH_MASK, MAX_VALUE_DEPTH, ParameterFilter};
    /// use serde_json::{json, Value};
    ///
    /// let mut deep = json!(1);
    /// for _ in 0..MAX_VALUE_DEPTH + 5 {
    ///     deep = Value::Array(vec![deep]);
    /// }
    /// let filter = ParameterFilter::tasker_default();
    /// let copy = filter.filtered(&deep);
    /// let mut innermost = &copy;
    /// while let Value::Array(items) = innermost {
    ///     innermost = &items[0];
    /// }
    /// assert_eq!(innermost, &json!(DEPTH_MASK));
    /// assert_eq!(filter.depth_truncations(), 1);
    /// ```
    pub fn depth_truncations(&self) -> u64 {
        self.inner
            .too_deep
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The value to record for a flat field (span attribute, log field, metric label): the mask if
    /// the key is sensitive, otherwise `value` itself, borrowed.
    ///
    /// A dotted key such as `tasker.context.password` is also checked segment by segment and
    /// against the path rules, since sinks flatten nested data into dotted names.
    ///
    /// A value that is the JSON text of an object or an array (what
    /// `tracing::info!(inputs = %step.inputs())` records) is filtered like a payload, with `key`
    /// as its root, and re-serialised when something in it was masked: structured data logged
    /// as text must not carry its secrets past the filter. Other text is left alone.
    ///
    /// ```
    /// use tasker_telemetry::ParameterFilter;
    ///
    /// let filter = ParameterFilter::tasker_default();
    /// assert_eq!(filter.filter_field("api_token", "t0k3n"), "[FILTERED]");
    /// assert_eq!(
    ///     filter.filter_field("inputs", r#"{"cart": 7, "user": {"Password": "hunter2"}}"#),
    ///     r#"{"cart":7,"user":{"Password":"[FILTERED]"}}"#,
    /// );
    /// assert_eq!(filter.filter_field("note", "{not json"), "{not json");
    /// ```
    pub fn filter_field<'a>(&self, key: &str, value: &'a str) -> Cow<'a, str> {
        if self.is_sensitive_field_key(key) {
            return Cow::Owned(self.inner.mask.clone());
        }
        self.filter_text(key, value)
    }

    /// [`filter_field`](Self::filter_field) for a key already known not to be sensitive: JSON
    /// text is filtered inside, other text scrubbed.
    #[inline]
    pub(crate) fn filter_text<'a>(&self, key: &str, value: &'a str) -> Cow<'a, str> {
        if self.is_empty() {
            return Cow::Borrowed(value);
        }
        if looks_like_json_container(value) {
            return self.filter_json_text(key, value);
        }
        self.scrub(value)
    }

    /// Whether a flat field's key (possibly dotted) names a sensitive value.
    ///
    /// Sinks ask this for the same few keys again and again (every span's `tasker.task_id`, every
    /// log line's `step_name`), and the answer costs a scan of every rule, so each thread keeps
    /// the answers it worked out (a bounded map, emptied when full).
    pub(crate) fn is_sensitive_field_key(&self, key: &str) -> bool {
        thread_local! {
            /// The answers this thread worked out: (the filter they belong to, key -> sensitive).
            /// Read only here, by the sinks' key checks made on this thread.
            static DECIDED: std::cell::RefCell<(u64, DecidedKeys)> =
                std::cell::RefCell::new((u64::MAX, HashMap::default()));
        }
        const CAPACITY: usize = 1024;
        let cached = DECIDED.try_with(|decided| {
            let Ok(mut decided) = decided.try_borrow_mut() else {
                return None;
            };
            let (filter, map) = &mut *decided;
            if *filter != self.inner.id {
                *filter = self.inner.id;
                map.clear();
            }
            if let Some(&sensitive) = map.get(key) {
                return Some(sensitive);
            }
            let sensitive = self.decide_field_key(key);
            if map.len() >= CAPACITY {
                map.clear();
            }
            map.insert(key.into(), sensitive);
            Some(sensitive)
        });
        match cached {
            Ok(Some(sensitive)) => sensitive,
            _ => self.decide_field_key(key),
        }
    }

    fn decide_field_key(&self, key: &str) -> bool {
        self.is_sensitive_key(key)
            || (key.contains('.')
                && (key.split('.').any(|segment| self.is_sensitive_key(segment))
                    || self.path_rule_covers(key.split('.'))))
    }

    #[cold]
    fn filter_json_text<'a>(&self, key: &str, text: &'a str) -> Cow<'a, str> {
        // Text that only looks like JSON (nested past serde_json's limit, a number out of range,
        // a lone surrogate escape) is still text, and scanned as text: never passed through.
        let Ok(parsed) = serde_json::from_str::<Value>(text) else {
            return self.scrub(text);
        };
        // Filtered under its field name, so that path rules written from the field's root
        // (`inputs.card.number` for the field `inputs`) apply as they would to a payload.
        let mut rooted = Value::Object(serde_json::Map::from_iter([(key.to_owned(), parsed)]));
        if !self.filter_nested(&mut rooted) {
            return Cow::Borrowed(text);
        }
        match rooted {
            Value::Object(mut map) => map
                .remove(key)
                .map_or(Cow::Borrowed(text), |v| Cow::Owned(v.to_string())),
            _ => Cow::Borrowed(text),
        }
    }

    /// Whether some path rule matches a prefix of `path` (the value at that prefix is masked,
    /// and with it everything below).
    fn path_rule_covers<'k, I>(&self, path: I) -> bool
    where
        I: Iterator<Item = &'k str> + Clone,
    {
        self.inner.paths.iter().any(|rule| {
            let mut keys = path.clone();
            rule.iter()
                .all(|segment| keys.next().is_some_and(|key| segment_matches(segment, key)))
        })
    }

    /// Filters a container: `depth` counts keys from the root (for path rules, which see
    /// through arrays), `nesting` counts containers. Whether anything changed.
    fn walk(&self, value: &mut Value, depth: usize, nesting: usize, active: &[usize]) -> bool {
        if nesting >= MAX_VALUE_DEPTH {
            self.replace(value, DEPTH_MASK);
            self.inner
                .too_deep
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return true;
        }
        let mut changed = false;
        match value {
            Value::Object(map) => {
                let mut next = Vec::new();
                for (key, child) in map.iter_mut() {
                    if self.is_sensitive_key(key) {
                        self.replace(child, &self.inner.mask);
                        changed = true;
                        continue;
                    }
                    next.clear();
                    let mut complete = false;
                    for &index in active {
                        let rule = &self.inner.paths[index];
                        if rule
                            .get(depth)
                            .is_some_and(|segment| segment_matches(segment, key))
                        {
                            if rule.len() == depth + 1 {
                                complete = true;
                                break;
                            }
                            next.push(index);
                        }
                    }
                    if complete {
                        self.replace(child, &self.inner.mask);
                        changed = true;
                    } else {
                        changed |= self.walk_child(child, depth + 1, nesting + 1, &next);
                    }
                }
            }
            // Arrays are transparent to paths: their elements sit at the same depth.
            Value::Array(items) => {
                for item in items {
                    changed |= self.walk_child(item, depth, nesting + 1, active);
                }
            }
            _ => {}
        }
        changed
    }

    #[inline]
    fn walk_child(
        &self,
        child: &mut Value,
        depth: usize,
        nesting: usize,
        active: &[usize],
    ) -> bool {
        match child {
            Value::Object(_) | Value::Array(_) => self.walk(child, depth, nesting, active),
            Value::String(text) if self.inner.scanner.is_some() => self.scrub_string(text),
            _ => false,
        }
    }

    /// Replaces `value` by the text `with`; what it held is dropped without recursion.
    fn replace(&self, value: &mut Value, with: &str) {
        depth::drop_deep(std::mem::replace(value, Value::String(with.to_owned())));
    }

    /// Scrubs `text` in place; whether anything was found.
    fn scrub_string(&self, text: &mut String) -> bool {
        match self.scrub(text) {
            Cow::Owned(scrubbed) => {
                *text = scrubbed;
                true
            }
            Cow::Borrowed(_) => false,
        }
    }
}

impl Default for ParameterFilter {
    /// Same as [`ParameterFilter::tasker_default`]: filtering is on unless switched off explicitly.
    fn default() -> Self {
        Self::tasker_default()
    }
}

/// Whether `text` may be the JSON of an object or an array (checked before paying for a parse):
/// the only text a non-empty filter changes under a key that is not sensitive. Hot loops ask
/// this before asking [`ParameterFilter::filter_text`] for a filtered copy.
#[inline]
pub(crate) fn looks_like_json_container(text: &str) -> bool {
    // Most values (ids, names) start with an ASCII character that is neither a bracket nor
    // whitespace: the first byte settles them, where trimming decodes characters at both ends
    // (every exported step span's five texts pass through here on the export thread).
    match text.as_bytes().first() {
        None => false,
        Some(&byte)
            if byte.is_ascii()
                && byte != b'{'
                && byte != b'['
                && !char::from(byte).is_whitespace() =>
        {
            false
        }
        Some(_) => trimmed_is_json_container(text),
    }
}

/// The rest of [`looks_like_json_container`], out of line: few texts get this far.
#[cold]
fn trimmed_is_json_container(text: &str) -> bool {
    let trimmed = text.trim();
    (trimmed.starts_with('{') && trimmed.ends_with('}'))
        || (trimmed.starts_with('[') && trimmed.ends_with(']'))
}

fn segment_matches(segment: &str, key: &str) -> bool {
    segment == "*" || segment.eq_ignore_ascii_case(key)
}

/// Case-insensitive substring test on bytes; `needle` is already lowercase.
fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len()
        && haystack
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
}

fn parse_rule(index: usize, text: &str) -> Result<FilterRule, FilterError> {
    if text.trim().is_empty() {
        return Err(FilterError::EmptyRule { index });
    }
    if let Some(rest) = text.strip_prefix('/')
        && let Some(close) = rest.rfind('/')
    {
        return parse_regex(text, &rest[..close], &rest[close + 1..]);
    }
    if text.contains('.') {
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(FilterError::EmptyPathSegment {
                rule: text.to_owned(),
            });
        }
        return Ok(FilterRule::Path(segments));
    }
    Ok(FilterRule::KeySubstring(text.to_owned()))
}

/// The deepest nesting of groups and repetitions a `/.../` rule may use. The regex compiler
/// recurses once per level; its default limit (250) let `/a?++++…/` overflow a 2 MiB thread
/// stack in a debug build (found by `fuzz/`, target `filter`), and a rule on key names never
/// needs more than a few levels.
const REGEX_NEST_LIMIT: u32 = 32;

fn parse_regex(rule: &str, pattern: &str, flags: &str) -> Result<FilterRule, FilterError> {
    let invalid = |message: String| FilterError::InvalidRegex {
        rule: rule.to_owned(),
        message,
    };
    let case_insensitive = match flags {
        "" => false,
        "i" => true,
        other => {
            return Err(invalid(format!(
                "unsupported flags {other:?}, only `i` is accepted"
            )));
        }
    };
    if pattern.is_empty() {
        // `//` would match every key and mask everything, which is never what was meant.
        return Err(invalid(
            "the pattern between the slashes is empty".to_owned(),
        ));
    }
    // The flag goes inline, so that the pattern's text says everything the filter's set of
    // patterns is built from.
    let pattern = if case_insensitive {
        Cow::Owned(format!("(?i){pattern}"))
    } else {
        Cow::Borrowed(pattern)
    };
    RegexBuilder::new(&pattern)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .map(FilterRule::KeyPattern)
        .map_err(|error| invalid(regex_reason(&error)))
}

/// The regex crate's syntax errors span several lines (pattern, caret, reason); keep the reason so
/// the error stays one line in logs. The rule text is reported alongside it.
fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .map_or_else(
            || text.split_whitespace().collect::<Vec<_>>().join(" "),
            str::to_owned,
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn cached_key_decisions_belong_to_their_filter() {
        let strict = ParameterFilter::new(["token"], "[F]").unwrap();
        let lax = ParameterFilter::new(["password"], "[F]").unwrap();
        for _ in 0..3 {
            assert!(strict.is_sensitive_field_key("tasker.api_token"));
            assert!(!lax.is_sensitive_field_key("tasker.api_token"));
            assert!(lax.is_sensitive_field_key("user.Password"));
            assert!(!strict.is_sensitive_field_key("user.Password"));
        }
    }

    #[test]
    fn filter_is_send_sync_and_cheap_to_clone() {
        assert_send_sync::<ParameterFilter>();
        let a = ParameterFilter::tasker_default();
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
    }

    #[test]
    fn default_keys() {
        let filter = ParameterFilter::tasker_default();
        let cases: &[(&str, bool)] = &[
            ("user_email", true),
            ("email", true),
            ("password", true),
            ("password_confirmation", true),
            ("access_token", true),
            ("api_key", true),
            ("ssn", true),
            ("client_secret", true),
            ("encrypted_data", true),
            ("salt", true),
            ("certificate_pem", true),
            ("otp_code", true),
            ("hotpath", true), // Tasker's list is substrings; accepted over-matching.
            ("PASSWORD", true),
            ("Password", true),
            ("api_KEY", true),
            ("USER_EMAIL", true),
            ("name", false),
            ("amount", false),
            ("keyboard", false), // "_key" needs the underscore.
            ("key", false),
            ("task_id", false),
            ("step_name", false),
            ("", false),
        ];
        for &(key, expected) in cases {
            assert_eq!(filter.is_sensitive_key(key), expected, "key {key:?}");
        }
    }

    #[test]
    fn plain_key_rule_matches_keyboard() {
        let filter = ParameterFilter::new(["key"], DEFAULT_FILTER_MASK).unwrap();
        assert!(filter.is_sensitive_key("keyboard"));
        assert!(filter.is_sensitive_key("KEYBOARD"));
    }

    #[test]
    fn filter_in_place_table() {
        let filter = ParameterFilter::tasker_default();
        let cases = [
            // flat
            (
                json!({"name": "n", "password": "p"}),
                json!({"name": "n", "password": "[FILTERED]"}),
            ),
            // nested objects
            (
                json!({"user": {"profile": {"email": "e", "age": 3}}}),
                json!({"user": {"profile": {"email": "[FILTERED]", "age": 3}}}),
            ),
            // arrays of objects
            (
                json!({"users": [{"email": "a"}, {"email": "b", "id": 1}]}),
                json!({"users": [{"email": "[FILTERED]"}, {"email": "[FILTERED]", "id": 1}]}),
            ),
            // arrays of arrays of objects
            (
                json!([[{"token": 1}], [{"x": [{"secret": true}]}]]),
                json!([[{"token": "[FILTERED]"}], [{"x": [{"secret": "[FILTERED]"}]}]]),
            ),
            // non-string values, objects and arrays under sensitive keys become the mask
            (
                json!({"ssn": 123, "otp": null, "secret": {"a": 1}, "tokens": [1, 2], "salt": 1.5}),
                json!({"ssn": "[FILTERED]", "otp": "[FILTERED]", "secret": "[FILTERED]",
                       "tokens": "[FILTERED]", "salt": "[FILTERED]"}),
            ),
            // case variants
            (
                json!({"PASSWORD": 1, "Password": 2, "api_KEY": 3, "Api_Key": 4}),
                json!({"PASSWORD": "[FILTERED]", "Password": "[FILTERED]",
                       "api_KEY": "[FILTERED]", "Api_Key": "[FILTERED]"}),
            ),
            // scalars and untouched structures
            (json!("password"), json!("password")),
            (json!(42), json!(42)),
            (
                json!({"keyboard": "qwerty", "amount": 10}),
                json!({"keyboard": "qwerty", "amount": 10}),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(filter.filtered(&input), expected, "input {input}");
        }
    }

    #[test]
    fn untouched_value_keeps_order_and_equality() {
        let filter = ParameterFilter::tasker_default();
        let text = r#"{"zeta":1,"alpha":{"y":[1,{"b":2,"a":3}],"x":null},"mid":"m"}"#;
        let original: Value = serde_json::from_str(text).unwrap();
        let mut value = original.clone();
        filter.filter_in_place(&mut value);
        assert_eq!(value, original);
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            serde_json::to_string(&original).unwrap()
        );
    }

    #[test]
    fn dotted_paths() {
        let filter = ParameterFilter::new(
            ["customer.cards.number", "order.*.cvv", "meta.Internal"],
            DEFAULT_FILTER_MASK,
        )
        .unwrap();
        let cases = [
            // arrays are transparent
            (
                json!({"customer": {"cards": [{"number": "4111", "brand": "visa"}]}}),
                json!({"customer": {"cards": [{"number": "[FILTERED]", "brand": "visa"}]}}),
            ),
            // the path is anchored at the root
            (
                json!({"other": {"customer": {"cards": {"number": 1}}}}),
                json!({"other": {"customer": {"cards": {"number": 1}}}}),
            ),
            // wildcard segment
            (
                json!({"order": {"a": {"cvv": 1}, "b": {"cvv": 2, "n": 3}}}),
                json!({"order": {"a": {"cvv": "[FILTERED]"}, "b": {"cvv": "[FILTERED]", "n": 3}}}),
            ),
            // case-insensitive, whole subtree masked
            (
                json!({"META": {"internal": {"deep": 1}}, "number": 5}),
                json!({"META": {"internal": "[FILTERED]"}, "number": 5}),
            ),
            // a path rule does not match a key alone
            (
                json!({"number": 1, "cvv": 2}),
                json!({"number": 1, "cvv": 2}),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(filter.filtered(&input), expected, "input {input}");
        }
        assert!(filter.is_sensitive_path(&["customer", "cards", "number"]));
        assert!(filter.is_sensitive_path(&["Customer", "CARDS", "number", "below"]));
        assert!(!filter.is_sensitive_path(&["customer", "cards"]));
        assert!(!filter.is_sensitive_key("number"));
        assert!(filter.is_sensitive_path(&["order", "anything", "cvv"]));
    }

    #[test]
    fn regex_rules() {
        let filter =
            ParameterFilter::new(["/^api[-_]?key$/i", "/^X-Secret/"], DEFAULT_FILTER_MASK).unwrap();
        let cases: &[(&str, bool)] = &[
            ("api_key", true),
            ("API-KEY", true),
            ("apikey", true),
            ("my_api_key", false),
            ("X-Secret-Header", true),
            ("x-secret-header", false), // no `i` flag
            ("name", false),
        ];
        for &(key, expected) in cases {
            assert_eq!(filter.is_sensitive_key(key), expected, "key {key:?}");
        }
        assert_eq!(
            filter.filtered(&json!({"outer": {"ApiKey": "k", "v": 1}})),
            json!({"outer": {"ApiKey": "[FILTERED]", "v": 1}})
        );
        // a regex containing dots is still a regex, not a path
        let dotted = ParameterFilter::new([r"/^a\.b$/"], "*").unwrap();
        assert!(matches!(dotted.rules()[0], FilterRule::KeyPattern(_)));
        assert!(dotted.is_sensitive_key("a.b"));
    }

    #[test]
    fn rule_kinds_are_parsed() {
        let filter = ParameterFilter::new(["token", "a.b", "/x/i"], "*").unwrap();
        assert!(matches!(&filter.rules()[0], FilterRule::KeySubstring(s) if s == "token"));
        assert!(matches!(&filter.rules()[1], FilterRule::Path(p) if p == &["a", "b"]));
        assert!(matches!(&filter.rules()[2], FilterRule::KeyPattern(_)));
    }

    #[test]
    fn invalid_inputs_are_typed_errors() {
        let cases: Vec<(Vec<&str>, &str, FilterError)> = vec![
            (vec!["token", ""], "m", FilterError::EmptyRule { index: 1 }),
            (vec!["  "], "m", FilterError::EmptyRule { index: 0 }),
            (
                vec!["a..b"],
                "m",
                FilterError::EmptyPathSegment {
                    rule: "a..b".into(),
                },
            ),
            (
                vec![".a"],
                "m",
                FilterError::EmptyPathSegment { rule: ".a".into() },
            ),
            (vec!["token"], "", FilterError::EmptyMask),
        ];
        for (rules, mask, expected) in cases {
            assert_eq!(
                ParameterFilter::new(rules.clone(), mask).unwrap_err(),
                expected,
                "rules {rules:?}"
            );
        }
    }

    #[test]
    fn invalid_regex_names_rule_and_reason() {
        for rule in ["/api[/", "/x/g", "//"] {
            let error = ParameterFilter::new([rule], "m").unwrap_err();
            match &error {
                FilterError::InvalidRegex { rule: r, message } => {
                    assert_eq!(r, rule);
                    assert!(!message.is_empty() && !message.contains('\n'), "{message}");
                }
                other => panic!("unexpected {other:?}"),
            }
            let text = error.to_string();
            assert!(text.contains(rule), "{text}");
            assert!(text.contains("/pattern/i"), "{text}");
        }
    }

    #[test]
    fn deeply_nested_regex_is_an_error_not_a_stack_overflow() {
        // On this 2 MiB test thread the regex crate's own limit (250) overflowed the stack.
        let stacked = format!("/a?{}/", "+".repeat(200));
        let grouped = format!("/{}a{}/", "(".repeat(200), ")".repeat(200));
        for rule in [stacked, grouped] {
            assert!(matches!(
                ParameterFilter::new([&rule], "m"),
                Err(FilterError::InvalidRegex { .. })
            ));
        }
        let nested = format!("/{}key{}/", "(?:".repeat(12), ")+".repeat(12));
        assert!(ParameterFilter::new([nested], "m").is_ok());
    }

    #[test]
    fn custom_mask_and_fields() {
        let filter =
            ParameterFilter::new(DEFAULT_FILTER_PARAMETERS.iter().copied(), "***").unwrap();
        assert_eq!(filter.mask(), "***");
        assert_eq!(
            filter.filtered(&json!({"token": "t"})),
            json!({"token": "***"})
        );
        assert_eq!(filter.filter_field("access_token", "t"), "***");
        assert!(matches!(
            filter.filter_field("step_name", "s"),
            Cow::Borrowed("s")
        ));
        assert_eq!(filter.filter_field("tasker.context.password", "p"), "***");
        assert_eq!(filter.filter_field("tasker.step_name", "s"), "s");
        let paths = ParameterFilter::new(["ctx.card"], "#").unwrap();
        assert_eq!(paths.filter_field("ctx.card.number", "4111"), "#");
        assert_eq!(paths.filter_field("card", "4111"), "4111");
    }

    #[test]
    fn json_text_fields_are_filtered_like_payloads() {
        let filter = ParameterFilter::tasker_default();
        let cases: &[(&str, &str, &str)] = &[
            // nested, arrays, case variants
            (
                "inputs",
                r#"{"a": [{"API_KEY": "k"}, {"b": {"Email": ["x"]}}], "n": 1}"#,
                r#"{"a":[{"API_KEY":"[FILTERED]"},{"b":{"Email":"[FILTERED]"}}],"n":1}"#,
            ),
            (
                "results",
                r#"[{"otp": 1}, 2]"#,
                r#"[{"otp":"[FILTERED]"},2]"#,
            ),
            // nothing sensitive: the original text, untouched (spacing included)
            ("inputs", r#"{"a": 1,  "b": [2]}"#, r#"{"a": 1,  "b": [2]}"#),
            // not JSON, or a scalar: untouched
            ("note", "{password}", "{password}"),
            ("note", r#""password""#, r#""password""#),
            ("note", "[1, 2", "[1, 2"),
        ];
        for &(key, value, expected) in cases {
            assert_eq!(filter.filter_field(key, value), expected, "{key} = {value}");
        }
        assert!(matches!(
            filter.filter_field("inputs", r#"{"a": 1}"#),
            Cow::Borrowed(_)
        ));
        // path rules apply from the field's name
        let paths = ParameterFilter::new(["inputs.card.number"], "#").unwrap();
        assert_eq!(
            paths.filter_field("inputs", r#"{"card": {"number": 4111, "brand": "v"}}"#),
            r##"{"card":{"brand":"v","number":"#"}}"##
        );
        assert_eq!(
            paths.filter_field("other", r#"{"card": {"number": 4111}}"#),
            r#"{"card": {"number": 4111}}"#
        );
        assert_eq!(
            ParameterFilter::none().filter_field("x", r#"{"password": 1}"#),
            r#"{"password": 1}"#
        );
    }

    #[test]
    fn none_filters_nothing() {
        let filter = ParameterFilter::none();
        assert!(filter.is_empty());
        assert_eq!(filter.mask(), DEFAULT_FILTER_MASK);
        let value = json!({"password": "p"});
        assert_eq!(filter.filtered(&value), value);
        assert_eq!(filter.filter_field("password", "p"), "p");
    }

    #[test]
    fn from_rules_degenerate_rules_are_harmless() {
        let filter = ParameterFilter::from_rules(
            vec![
                FilterRule::KeySubstring(String::new()),
                FilterRule::Path(Vec::new()),
            ],
            "",
        )
        .with_value_detection(ValueDetection::off());
        assert!(filter.is_empty());
        assert_eq!(filter.mask(), DEFAULT_FILTER_MASK);
        assert!(!filter.is_sensitive_key("anything"));
        assert_eq!(filter.rules().len(), 2);
    }

    #[test]
    fn json_containers_are_recognised_whatever_the_first_byte() {
        // The first-byte shortcut must agree with trimming every kind of whitespace.
        let by_trimming = |text: &str| {
            let t = text.trim();
            (t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']'))
        };
        for text in [
            "",
            "{}",
            "[1]",
            "  {\"a\": 1} ",
            "\t[1]\n",
            "\u{b}{\"vertical_tab\": 1}",
            "\u{c}[2]",
            "\u{85}{\"next_line\": 1}",
            "\u{a0}[3]",
            "\u{2003}{}",
            "\u{1}{}",
            "order-42",
            "x{}",
            "{",
            "[",
            "é[]",
        ] {
            assert_eq!(
                looks_like_json_container(text),
                by_trimming(text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn rules_matched_together_decide_as_each_rule_alone() {
        let mut rules: Vec<String> = (0..10_000).map(|i| format!("zq{i:x}w")).collect();
        rules.extend([
            "passw".into(),
            "/^api[-_]?key$/i".into(),
            "/^x-[0-9]+$/".into(),
        ]);
        let filter = ParameterFilter::new(&rules, "*").unwrap();
        let alone = |key: &str| {
            let lower = key.to_ascii_lowercase();
            rules.iter().any(|rule| match rule.strip_prefix('/') {
                Some(pattern) if pattern.ends_with("/i") => {
                    Regex::new(&format!("(?i){}", &pattern[..pattern.len() - 2]))
                        .unwrap()
                        .is_match(key)
                }
                Some(pattern) => Regex::new(&pattern[..pattern.len() - 1])
                    .unwrap()
                    .is_match(key),
                None => lower.contains(rule.as_str()),
            })
        };
        for key in [
            "amount",
            "ZQ1fW",
            "xzq2710wy",
            "zq2710",
            "Passwd",
            "API_KEY",
            "api-key",
            "apikeys",
            "x-42",
            "X-42",
            "x-",
            "customer",
            "zq0w",
            "ZQ270FW",
        ] {
            assert_eq!(filter.is_sensitive_key(key), alone(key), "{key}");
        }
    }
}
