//! The parameter filter as the span exporter applies it: to span, span-event and link
//! attributes, on the export thread, before any exporter sees them.
//!
//! Every step span carries the same eight keys, which the filter would otherwise look up (hash
//! and compare) per attribute per span. Their decisions are made once, when the exporter is
//! built, and recognised afterwards by address: [`step_span`](super::step_span) writes them
//! from the one static [`STEP_KEYS`], so each exported span's keys point at the same
//! bytes. A key at another address, even with the same text, takes the ordinary path.

use std::borrow::Cow;

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

use super::{STEP_KEYS, StepKeys};
use crate::filter::ParameterFilter;

/// A [`ParameterFilter`] with the step span's keys decided in advance.
#[derive(Debug, Clone)]
pub(super) struct AttributeFilter {
    filter: ParameterFilter,
    /// Each step key, and whether the filter masks its value.
    decided: [(&'static str, bool); StepKeys::COUNT],
    /// Whether the filter masks none of the step keys.
    step_keys_clear: bool,
}

impl AttributeFilter {
    pub(super) fn new(filter: ParameterFilter) -> Self {
        let decided = STEP_KEYS
            .all()
            .map(|key| (key, filter.is_sensitive_field_key(key)));
        let step_keys_clear = decided.iter().all(|&(_, sensitive)| !sensitive);
        Self {
            filter,
            decided,
            step_keys_clear,
        }
    }

    /// Masks what the filter says is sensitive in `span`: a sensitive key's value of any type
    /// becomes the mask, JSON text is filtered inside (see [`ParameterFilter::filter_field`]),
    /// and the secrets value detection finds in other texts and in the status description
    /// are masked.
    pub(super) fn apply(&self, span: &mut SpanData) {
        if self.filter.is_empty() {
            return;
        }
        if let Cow::Owned(masked) = self.filter.scrub(&span.name) {
            span.name = masked.into();
        }
        self.apply_to(&mut span.attributes);
        if let opentelemetry::trace::Status::Error { description } = &span.status
            && let Cow::Owned(masked) = self.filter.scrub(description)
        {
            span.status = opentelemetry::trace::Status::error(masked);
        }
        // Most events (a step's lifecycle moments) and links carry no attributes: skipping
        // them here saves a call each.
        for event in &mut span.events.events {
            // tracing-opentelemetry names an event by its message: free text.
            if let Cow::Owned(masked) = self.filter.scrub(&event.name) {
                event.name = masked.into();
            }
            if !event.attributes.is_empty() {
                self.apply_to(&mut event.attributes);
            }
        }
        for link in &mut span.links.links {
            if !link.attributes.is_empty() {
                self.apply_to(&mut link.attributes);
            }
        }
    }

    fn apply_to(&self, attributes: &mut [KeyValue]) {
        // A step span's own attributes come first, all eight, when no one added any before the
        // span ended: with none of their keys sensitive, only their texts need looking at.
        let own = if self.step_keys_clear && self.lead_with_step_keys(attributes) {
            for attribute in &mut attributes[..StepKeys::COUNT] {
                self.filter_if_json(attribute);
            }
            StepKeys::COUNT
        } else {
            0
        };
        for (position, attribute) in attributes.iter_mut().enumerate().skip(own) {
            let key = attribute.key.as_str();
            let sensitive = match self.decided_for(position, key) {
                Some(sensitive) => sensitive,
                None => self.filter.is_sensitive_field_key(key),
            };
            if sensitive {
                self.mask(attribute);
            } else {
                self.filter_if_json(attribute);
            }
        }
    }

    /// Whether `attributes` start with the step keys' own statics, in [`StepKeys::all`]'s
    /// order.
    #[inline]
    fn lead_with_step_keys(&self, attributes: &[KeyValue]) -> bool {
        attributes.len() >= StepKeys::COUNT
            && self
                .decided
                .iter()
                .zip(attributes)
                .all(|(&(own, _), attribute)| same_static(own, attribute.key.as_str()))
    }

    /// Filters `attribute`'s text under a key that is not sensitive: JSON text inside, other
    /// text scrubbed of the secrets value detection finds (see
    /// [`ParameterFilter::filter_text`]), each text of an array of texts likewise.
    #[inline]
    fn filter_if_json(&self, attribute: &mut KeyValue) {
        match &attribute.value {
            Value::String(_) => self.filter_inside(attribute),
            Value::Array(opentelemetry::Array::String(_)) => self.filter_texts(attribute),
            _ => {}
        }
    }

    fn filter_inside(&self, attribute: &mut KeyValue) {
        if let Value::String(text) = &attribute.value
            && let Cow::Owned(masked) = self
                .filter
                .filter_text(attribute.key.as_str(), text.as_str())
        {
            attribute.value = Value::String(masked.into());
        }
    }

    #[cold]
    fn filter_texts(&self, attribute: &mut KeyValue) {
        if let Value::Array(opentelemetry::Array::String(texts)) = &mut attribute.value {
            for text in texts {
                if let Cow::Owned(masked) = self
                    .filter
                    .filter_text(attribute.key.as_str(), text.as_str())
                {
                    *text = masked.into();
                }
            }
        }
    }

    /// Replaces a sensitive key's value, of any type: a number, a boolean or an array under a
    /// sensitive key is as secret as text. Out of line, as few attributes get here.
    #[cold]
    fn mask(&self, attribute: &mut KeyValue) {
        attribute.value = Value::String(self.filter.mask().to_owned().into());
    }

    /// The advance decision for `key`, if it is one of the step keys' own statics.
    ///
    /// A step span lists the keys in [`StepKeys::all`]'s order, so the key at `position` is
    /// looked for there first: one compare per attribute instead of a scan.
    #[inline]
    fn decided_for(&self, position: usize, key: &str) -> Option<bool> {
        match self.decided.get(position) {
            Some(&(own, sensitive)) if same_static(own, key) => Some(sensitive),
            _ => self.decided_elsewhere(key),
        }
    }

    /// [`decided_for`](Self::decided_for)'s scan, out of line: a step span never needs it, and
    /// inlined it kept every step key in registers or on the stack for the whole loop.
    #[cold]
    #[inline(never)]
    fn decided_elsewhere(&self, key: &str) -> Option<bool> {
        self.decided
            .iter()
            .find(|(own, _)| same_static(own, key))
            .map(|&(_, sensitive)| sensitive)
    }
}

/// Whether `key` is the static `own` itself. Equal address and length mean the same bytes: no
/// other string can live inside a static.
#[inline]
fn same_static(own: &'static str, key: &str) -> bool {
    std::ptr::eq(own.as_ptr(), key.as_ptr()) && own.len() == key.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::ParameterFilter;

    fn step_key(text: &str) -> &'static str {
        STEP_KEYS
            .all()
            .into_iter()
            .find(|key| *key == text)
            .expect("a step key")
    }

    fn masks(filter: &AttributeFilter, attributes: Vec<KeyValue>) -> Vec<String> {
        let mut attributes = attributes;
        filter.apply_to(&mut attributes);
        attributes.iter().map(|kv| kv.value.to_string()).collect()
    }

    #[test]
    fn step_keys_are_decided_by_the_filter_in_advance() {
        // A filter that names a step key: its static must be masked like any other key.
        let filter =
            AttributeFilter::new(ParameterFilter::new(["task_name"], "[X]").expect("valid"));
        let values = masks(
            &filter,
            vec![
                KeyValue::new(step_key("tasker.task_name"), "checkout"),
                KeyValue::new(step_key("tasker.task_id"), "42"),
            ],
        );
        assert_eq!(values, ["[X]", "42"]);
    }

    #[test]
    fn keys_in_the_step_spans_order_and_out_of_it_get_their_own_decisions() {
        let filter =
            AttributeFilter::new(ParameterFilter::new(["step_name"], "[X]").expect("valid"));
        let in_order: Vec<KeyValue> = STEP_KEYS
            .all()
            .into_iter()
            .map(|key| KeyValue::new(key, "v"))
            .collect();
        let masked_at = |attributes: Vec<KeyValue>| -> Vec<&'static str> {
            let keys: Vec<_> = attributes.iter().map(|kv| kv.key.clone()).collect();
            masks(&filter, attributes)
                .iter()
                .zip(keys)
                .filter(|(value, _)| *value == "[X]")
                .map(|(_, key)| step_key(key.as_str()))
                .collect()
        };
        assert_eq!(masked_at(in_order.clone()), ["tasker.step_name"]);
        // Shifted by one, every key sits at another key's place: the decisions follow the keys.
        let mut shifted = in_order;
        shifted.rotate_left(1);
        assert_eq!(masked_at(shifted), ["tasker.step_name"]);
    }

    #[test]
    fn a_key_with_a_step_keys_text_elsewhere_takes_the_ordinary_path() {
        let filter =
            AttributeFilter::new(ParameterFilter::new(["task_name"], "[X]").expect("valid"));
        let owned: String = "tasker.task_name".to_owned();
        let values = masks(
            &filter,
            vec![
                KeyValue::new(owned, "checkout"),
                KeyValue::new("api_token", "t0k3n"),
            ],
        );
        assert_eq!(values, ["[X]", "t0k3n"]);
    }

    #[test]
    fn json_text_under_a_step_key_is_still_filtered_inside() {
        let filter = AttributeFilter::new(ParameterFilter::tasker_default());
        let key = step_key("tasker.step_name");
        let values = masks(
            &filter,
            vec![KeyValue::new(key, r#"{"password": "hunter2"}"#)],
        );
        assert_eq!(values, [r#"{"password":"[FILTERED]"}"#]);
    }

    #[test]
    fn a_step_spans_own_attributes_in_order_still_have_json_text_filtered_inside() {
        let filter = AttributeFilter::new(ParameterFilter::tasker_default());
        let mut attributes: Vec<KeyValue> = STEP_KEYS
            .all()
            .into_iter()
            .map(|key| KeyValue::new(key, "v"))
            .collect();
        attributes[3].value = r#"{"password": "hunter2"}"#.into();
        // Past the step span's own eight, each key gets its own decision again.
        attributes.push(KeyValue::new("api_token", "t0k3n"));
        attributes.push(KeyValue::new(
            step_key("tasker.task_id"),
            r#"[{"token": 1}]"#,
        ));
        let values = masks(&filter, attributes);
        assert_eq!(values[3], r#"{"password":"[FILTERED]"}"#);
        assert_eq!(values[8..], ["[FILTERED]", r#"[{"token":"[FILTERED]"}]"#]);
        assert!(values[..3].iter().chain(&values[4..8]).all(|v| v == "v"));
    }

    #[test]
    fn event_and_link_attributes_are_filtered_and_any_value_under_a_sensitive_key_is_masked() {
        use opentelemetry::trace::{Event, Link, SpanContext, SpanKind, Status};
        use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
        use std::time::SystemTime;

        let filter = AttributeFilter::new(ParameterFilter::tasker_default());
        let mut events = SpanEvents::default();
        events
            .events
            .push(Event::new("plain", SystemTime::UNIX_EPOCH, Vec::new(), 0));
        events.events.push(Event::new(
            "step.failed",
            SystemTime::UNIX_EPOCH,
            vec![
                KeyValue::new("exception.message", r#"{"password": "hunter2"}"#),
                KeyValue::new("api_token", 42_i64),
            ],
            0,
        ));
        let mut links = SpanLinks::default();
        links.links.push(Link::new(
            SpanContext::empty_context(),
            vec![KeyValue::new("user_email", "a@example.com")],
            0,
        ));
        let mut span = SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: opentelemetry::trace::SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "work".into(),
            start_time: SystemTime::UNIX_EPOCH,
            end_time: SystemTime::UNIX_EPOCH,
            attributes: vec![KeyValue::new("retry_secret", true)],
            dropped_attributes_count: 0,
            events,
            links,
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        };
        filter.apply(&mut span);
        let text = |attributes: &[KeyValue]| -> Vec<String> {
            attributes.iter().map(|kv| kv.value.to_string()).collect()
        };
        assert_eq!(text(&span.attributes), ["[FILTERED]"]);
        assert!(span.events.events[0].attributes.is_empty());
        assert_eq!(
            text(&span.events.events[1].attributes),
            [r#"{"password":"[FILTERED]"}"#, "[FILTERED]"]
        );
        assert_eq!(text(&span.links.links[0].attributes), ["[FILTERED]"]);
    }
}
