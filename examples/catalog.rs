//! Prints the event catalog: every built-in Tasker event, a custom event declared here, and the
//! registered handlers and subscribers.
//!
//! `cargo run --example catalog` prints Markdown; `cargo run --example catalog -- --json` prints
//! JSON.

use std::io::Write;

use tasker_telemetry::catalog::{self, Catalog, CustomEvent};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    catalog::register_event(
        CustomEvent::new(
            "order.fraud_check_flagged",
            "A fraud check flagged an order for review.",
        )
        .field("order_id", "string", "The flagged order.")
        .field("score", "number", "The fraud score, from 0 to 1."),
    )?;

    let catalog = Catalog::snapshot();
    let rendered = if std::env::args().any(|a| a == "--json") {
        serde_json::to_string_pretty(&catalog.to_json())?
    } else {
        catalog.to_markdown()
    };
    let mut out = std::io::stdout().lock();
    out.write_all(rendered.as_bytes())?;
    out.write_all(b"\n")?;
    Ok(())
}
