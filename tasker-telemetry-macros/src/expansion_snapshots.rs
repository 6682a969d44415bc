//! Snapshot tests of the macros' output for representative inputs, so that every change to an
//! expansion shows up in review as a diff of `snapshots/*.expanded.rs`.
//!
//! `UPDATE_SNAPSHOTS=1 cargo test -p tasker-telemetry-macros` rewrites the files after an
//! intended change.

use std::path::PathBuf;

use proc_macro2::TokenStream;
use quote::quote;

fn check(name: &str, expanded: TokenStream) {
    let file = syn::parse2::<syn::File>(expanded)
        .unwrap_or_else(|e| panic!("{name}: expansion does not parse: {e}"));
    let pretty = prettyplease::unparse(&file);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("snapshots")
        .join(format!("{name}.expanded.rs"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &pretty).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    assert!(
        committed == pretty,
        "the expansion of {name} changed; review it and run with UPDATE_SNAPSHOTS=1 to accept:\n{pretty}"
    );
}

#[test]
fn step_handler_sync_impl() {
    check(
        "step_handler_sync_impl",
        crate::step_handler::expand(
            quote!(retry_limit = 3),
            quote! {
                impl ProcessPayment {
                    fn process(&self, task: &Task, step: &Step) -> Result<Charge, PaymentError> {
                        charge(task, step)
                    }
                }
            },
        ),
    );
}

#[test]
fn step_handler_async_fn() {
    check(
        "step_handler_async_fn",
        crate::step_handler::expand(
            quote!(),
            quote! {
                pub async fn fetch_cart(task: &Task, step: &Step) -> Result<Cart, StepError> {
                    load(task.context()).await
                }
            },
        ),
    );
}

#[test]
fn subscribe_to_names_patterns_and_types() {
    check(
        "subscribe_to",
        crate::subscribe_to::expand(
            quote!("task.completed", "step.*" => handle_step, FraudFlagged),
            quote! {
                impl Pager {
                    fn handle_task_completed(&self, event: &Event<'_>) {}
                    fn handle_step(&self, event: &Event<'_>) {}
                    fn handle_fraud_flagged(&self, event: &Event<'_>) {}
                }
            },
        ),
    );
}

#[test]
fn derive_event() {
    check(
        "derive_event",
        crate::derive_event::expand(quote! {
            /// A fraud check flagged an order.
            #[event(name = "orders.fraud_flagged")]
            struct FraudFlagged {
                /// The flagged order.
                order_id: u64,
            }
        }),
    );
}
