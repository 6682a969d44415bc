//! `init_with` installs the process-wide telemetry once; a second call is a typed error.
//! (Its own test binary: the global can be installed only once per process.)

use tasker_telemetry::{Error, Telemetry, TelemetryConfig, init_with, is_enabled};

#[test]
fn init_installs_once_and_applies_the_switch() {
    let config = TelemetryConfig::builder()
        .service_name("init-test")
        .enabled(false)
        .build()
        .unwrap();
    let guard = init_with(config).expect("first init");
    assert_eq!(guard.telemetry().config().service_name, "init-test");
    assert!(std::ptr::eq(guard.telemetry(), Telemetry::global()));
    assert!(
        !is_enabled(),
        "enabled = false switches instrumentation off"
    );

    let again = init_with(TelemetryConfig::default()).unwrap_err();
    assert_eq!(again, Error::AlreadyInitialized);
}

#[test]
fn unknown_filtered_events_are_refused_with_a_suggestion() {
    let config = TelemetryConfig::builder()
        .filtered_events(["step.complted"])
        .build()
        .unwrap();
    let err = Telemetry::new(config).unwrap_err();
    assert_eq!(
        err,
        Error::UnknownFilteredEvent {
            name: "step.complted".into(),
            suggestion: Some("step.completed")
        }
    );
    assert!(err.to_string().contains("filtered_events"));
}
