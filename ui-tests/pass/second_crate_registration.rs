// Handlers and subscribers defined in another crate are registered in this binary's catalog
// once the crate is linked. A crate nothing else refers to is not linked, so name it:
// `use other_crate as _;`.
use tasker_telemetry::event::names;
use tasker_telemetry::payload::TaskPayload;
use tasker_telemetry::{catalog, Publisher};
use tasker_telemetry_linked_handlers as _;

fn main() {
    let handler = catalog::handlers()
        .into_iter()
        .find(|h| h.name == "reserve_inventory")
        .expect("the linked crate's handler is registered");
    assert_eq!(handler.retry_limit, Some(2));
    assert!(handler.type_path.starts_with("tasker_telemetry_linked_handlers::"));

    let publisher = Publisher::new();
    let wired = publisher.subscribe_registered().unwrap();
    assert_eq!(wired.len(), 1, "the linked crate's subscriber is wired");
    publisher.publish_with(names::TASK_COMPLETED, || TaskPayload::new("1", "t"));
    assert_eq!(wired[0].stats().delivered, 1);
}
