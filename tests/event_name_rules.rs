//! One source for the event-name rules: the grammar's edge cases get the same verdict from every
//! run-time entry point (the catalog, the configuration's `filtered_events`, the publisher); the
//! macros compile the same rules file, and their unit tests send the same table through
//! `#[subscribe_to]`'s and `#[derive(Event)]`'s checks.

use tasker_telemetry::catalog::{self, CatalogError, CustomEvent};
use tasker_telemetry::publisher::{Publisher, SubscribeError};
use tasker_telemetry::{TelemetryConfig, subscriber};

#[path = "../tasker-telemetry/src/event/rules.rs"]
mod rules;

#[test]
fn every_entry_point_gives_the_grammar_the_same_verdict() {
    for &(text, valid_name, valid_pattern) in rules::EDGE_CASES {
        // The catalog: a custom event by that name.
        let registered = catalog::register_event(CustomEvent::new(text, "an edge case"));
        let grammar_refused = matches!(
            registered,
            Err(CatalogError::MissingDot { .. } | CatalogError::InvalidName { .. })
        );
        assert_eq!(
            !grammar_refused, valid_name,
            "catalog on {text:?}: {registered:?}"
        );

        // The configuration: muting it.
        let mut config = TelemetryConfig::default();
        config.filtered_events = vec![text.to_owned()];
        assert_eq!(
            config.validate().is_ok(),
            valid_pattern,
            "filtered_events on {text:?}"
        );

        // The publisher: subscribing to it (registered above when valid, so a valid name is
        // known; a pattern that matches nothing is a different error).
        let subscribed = Publisher::new().subscribe(&[text], subscriber::from_fn("edge", |_| {}));
        let refused = matches!(subscribed, Err(SubscribeError::InvalidPattern { .. }));
        assert_eq!(
            !refused,
            valid_pattern,
            "publisher on {text:?}: {:?}",
            subscribed.err()
        );
    }
}

#[test]
fn a_name_the_catalog_registers_can_be_muted_and_subscribed() {
    let name = "billing.Refund-Issued";
    catalog::register_event(CustomEvent::new(name, "mixed case and a hyphen")).unwrap();
    let mut config = TelemetryConfig::default();
    config.filtered_events = vec![name.to_owned()];
    tasker_telemetry::Telemetry::new(config).expect("filtered_events accepts it");
    Publisher::new()
        .subscribe(&[name], subscriber::from_fn("s", |_| {}))
        .expect("the publisher accepts it");
}
