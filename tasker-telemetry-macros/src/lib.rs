//! Procedural macros for [`tasker-telemetry`](https://docs.rs/tasker-telemetry).
//!
//! Do not depend on this crate directly: `tasker-telemetry` re-exports every macro, and the
//! generated code names only `::tasker_telemetry::__private_v0_1` paths (or `crate = path`'s).

mod catalog_names;
// The event-name rules are the runtime's own file: one source for both crates.
mod ctxt;
mod derive_event;
// So is the duration grammar of `objective = "250ms"`.
#[path = "../../tasker-telemetry/src/operator/duration.rs"]
mod duration;
#[cfg(test)]
mod expansion_snapshots;
mod fallback;
#[path = "../../tasker-telemetry/src/event/rules.rs"]
mod rules;
mod step_handler;
mod subscribe_to;
mod type_name;

use proc_macro::TokenStream;

/// Makes a step handler from an impl block defining `process()`, or from a free function. See
/// `tasker_telemetry::step_handler` for the documentation.
#[proc_macro_attribute]
pub fn step_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    step_handler::expand(args.into(), input.into()).into()
}

/// Turns an inherent `impl` block into a subscriber of the named events. See
/// `tasker_telemetry::subscribe_to` for the documentation.
#[proc_macro_attribute]
pub fn subscribe_to(args: TokenStream, input: TokenStream) -> TokenStream {
    subscribe_to::expand(args.into(), input.into()).into()
}

/// Derives `EventPayload` for a custom event's payload struct. See `tasker_telemetry::Event`.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    derive_event::expand(input.into()).into()
}

/// The runtime module generated code names, versioned with this crate (the runtime pins this
/// crate with `=`, so a mismatch cannot build).
#[cfg(test)]
mod private_path {
    #[test]
    fn the_private_module_is_named_for_this_version() {
        let version = env!("CARGO_PKG_VERSION");
        let mut parts = version.split('.');
        let (major, minor) = (parts.next().unwrap(), parts.next().unwrap());
        let expected = format!("__private_v{major}_{minor}");
        let source = include_str!("step_handler/expand.rs");
        assert!(
            source.contains(&format!("::{expected}::")),
            "rename `__private_v*` to `{expected}` in both crates for version {version}"
        );
    }
}
