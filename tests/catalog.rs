//! The catalog collects link-time registrations (as the macros emit them), runtime custom events,
//! and renders everything as Markdown and JSON.

use tasker_telemetry::__private_v0_1::inventory;
use tasker_telemetry::catalog::{
    self, Catalog, CatalogError, CustomEventDeclaration, EventSource, HandlerDescriptor,
    SubscriberDescriptor,
};
use tasker_telemetry::payload::FieldDescriptor;

inventory::submit! {
    HandlerDescriptor {
        name: "fetch_cart",
        type_path: "e2e::FetchCart",
        retry_limit: Some(3),
        objective: None,
        file: file!(),
        line: line!(),
    }
}

inventory::submit! {
    SubscriberDescriptor {
        name: "pager",
        type_path: "e2e::Pager",
        events: &["step.failed", "task.*"],
        file: file!(),
        line: line!(),
        constructor: None,
    }
}

inventory::submit! {
    CustomEventDeclaration {
        name: "inventory.restocked",
        description: "A product was restocked.",
        fields: &[FieldDescriptor::new("sku", "string", "The product restocked.")],
        file: file!(),
        line: line!(),
    }
}

inventory::submit! {
    CustomEventDeclaration {
        name: "workflow.sneaky",
        description: "Breaks the reserved-namespace rule.",
        fields: &[],
        file: file!(),
        line: line!(),
    }
}

#[test]
fn link_time_registrations_are_listed() {
    let handlers = catalog::handlers();
    assert_eq!(handlers.len(), 1);
    assert_eq!(
        (handlers[0].name, handlers[0].retry_limit),
        ("fetch_cart", Some(3))
    );
    let subscribers = catalog::subscribers();
    assert_eq!(subscribers[0].events, ["step.failed", "task.*"]);

    let restocked =
        catalog::event("inventory.restocked").expect("declared event is in the catalog");
    assert_eq!(restocked.source, EventSource::Custom);
    assert_eq!(restocked.fields[0].name, "sku");

    let errors = catalog::declaration_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0.name, "workflow.sneaky");
    assert!(matches!(
        errors[0].1,
        CatalogError::ReservedNamespace { .. }
    ));
    assert!(catalog::event("workflow.sneaky").is_none());
}

#[test]
fn renders_list_every_event_handler_and_subscriber() {
    let catalog = Catalog::snapshot();
    let md = catalog.to_markdown();
    let json = catalog.to_json();
    let names: Vec<&str> = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for event in catalog::events() {
        assert!(
            md.contains(&format!("| `{}` |", event.name)),
            "{}",
            event.name
        );
        assert!(names.contains(&event.name.as_str()), "{}", event.name);
    }
    assert!(names.contains(&"inventory.restocked"));
    assert!(md.contains("| `fetch_cart` | `e2e::FetchCart` | 3 |"));
    assert!(md.contains("`pager`"));
    assert_eq!(json["handlers"][0]["name"], "fetch_cart");
    assert_eq!(json["subscribers"][0]["events"][1], "task.*");
    let reserved = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "task.retry_requested")
        .unwrap();
    assert_eq!(reserved["source"]["kind"], "reserved");
    assert!(reserved["source"]["reason"].as_str().unwrap().len() > 10);
}

/// The names exactly as Tasker spells them (its constants files), in one list.
const TASKER_NAMES: &[&str] = &[
    "task.initialize_requested",
    "task.start_requested",
    "task.completed",
    "task.failed",
    "task.retry_requested",
    "task.cancelled",
    "task.resolved_manually",
    "task.before_transition",
    "step.initialize_requested",
    "step.execution_requested",
    "step.before_handle",
    "step.handle",
    "step.completed",
    "step.failed",
    "step.retry_requested",
    "step.cancelled",
    "step.resolved_manually",
    "step.before_transition",
    "workflow.task_started",
    "workflow.task_completed",
    "workflow.task_failed",
    "workflow.step_completed",
    "workflow.step_failed",
    "workflow.step_execution_failed",
    "workflow.viable_steps_discovered",
    "workflow.viable_steps_batch_ready",
    "workflow.no_viable_steps",
    "workflow.orchestration_requested",
    "workflow.task_finalization_started",
    "workflow.task_finalization_completed",
    "workflow.steps_execution_started",
    "workflow.steps_execution_completed",
    "workflow.task_reenqueue_started",
    "workflow.task_reenqueue_requested",
    "workflow.task_reenqueue_failed",
    "workflow.task_reenqueue_delayed",
    "workflow.task_state_unclear",
    "observability.task.enqueue",
    "observability.task.handle",
    "observability.task.finalize",
    "observability.step.handle",
    "observability.step.find_viable",
    "observability.step.backoff",
    "observability.step.skip",
    "observability.step.max_retries_reached",
    "tasker.telemetry.cache_synced",
    "tasker.telemetry.export_requested",
    "tasker.telemetry.export_completed",
    "tasker.telemetry.export_failed",
    "tasker.telemetry.plugin_registered",
    "tasker.telemetry.plugin_unregistered",
    "performance.slow_operation",
    "memory.spike_detected",
];

#[test]
fn builtin_names_match_tasker_exactly_and_are_unique() {
    let builtin: Vec<&str> = catalog::builtin_events()
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(builtin, TASKER_NAMES);
    let mut sorted = builtin.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), builtin.len(), "duplicate built-in names");
    for d in catalog::builtin_events() {
        match d.source {
            EventSource::Published { by } => assert!(!by.is_empty()),
            EventSource::Reserved { reason } => assert!(!reason.is_empty(), "{}", d.name),
            EventSource::Custom => panic!("{} is built in", d.name),
        }
        assert!(!d.description.is_empty(), "{}", d.name);
    }
}
