//! The macros crate keeps its own copy of the built-in names (it cannot depend on the runtime);
//! this keeps the copy equal to the runtime catalog.

#[allow(dead_code)]
#[path = "../tasker-telemetry-macros/src/catalog_names.rs"]
mod copy;

// `copy` names the rules as the macro crate does, `crate::rules`.
#[path = "../tasker-telemetry/src/event/rules.rs"]
mod rules;

#[test]
fn the_macros_know_exactly_the_runtime_catalog() {
    let runtime: Vec<&str> = tasker_telemetry::catalog::builtin_events()
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(copy::BUILTIN_EVENTS, runtime.as_slice());
    for name in runtime {
        assert!(rules::in_builtin_namespace(name), "{name}");
    }
}
