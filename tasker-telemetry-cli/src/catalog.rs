//! `catalog`: every event, step handler and subscriber linked into the binary, as text,
//! Markdown or JSON (the runtime's own renderings).

use std::fmt::Write as _;

use clap::Args;
use tasker_telemetry::catalog::{Catalog, EventSource};

use crate::{Exit, Output};

/// `catalog [--json | --markdown]`.
#[derive(Debug, Args)]
pub(crate) struct CatalogArgs {
    /// As JSON: `{"events": [...], "handlers": [...], "subscribers": [...]}`.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// As a Markdown document, one table per event category.
    #[arg(long)]
    markdown: bool,
}

pub(crate) fn run(args: &CatalogArgs, output: &mut Output<'_>) -> Exit {
    let catalog = Catalog::snapshot();
    let text = if args.json {
        let mut text = serde_json::to_string_pretty(&catalog.to_json()).unwrap_or_default();
        text.push('\n');
        text
    } else if args.markdown {
        catalog.to_markdown()
    } else {
        plain(&catalog)
    };
    match output.out.write_all(text.as_bytes()) {
        Ok(()) => Exit::Ok,
        Err(_) => Exit::Failed,
    }
}

/// One line per entry, aligned.
fn plain(catalog: &Catalog) -> String {
    let mut out = String::new();
    let width = catalog
        .events
        .iter()
        .map(|e| e.name.as_str().len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(out, "events ({}):", catalog.events.len());
    for e in &catalog.events {
        let source = match e.source {
            EventSource::Published { by } => format!("published by {by}"),
            EventSource::Reserved { reason } => format!("reserved: {reason}"),
            EventSource::Custom => "custom".to_owned(),
        };
        let _ = writeln!(out, "  {:width$}  {source}", e.name.as_str());
    }
    let _ = writeln!(out, "\nstep handlers ({}):", catalog.handlers.len());
    for h in &catalog.handlers {
        let mut line = format!("  {}  {}", h.name, h.type_path);
        if let Some(limit) = h.retry_limit {
            let _ = write!(line, "  retry_limit {limit}");
        }
        if let Some(objective) = h.objective {
            let _ = write!(line, "  objective {objective:?}");
        }
        let _ = writeln!(out, "{line}  ({}:{})", h.file, h.line);
    }
    let _ = writeln!(out, "\nsubscribers ({}):", catalog.subscribers.len());
    for s in &catalog.subscribers {
        let _ = writeln!(
            out,
            "  {}  {}  [{}]  ({}:{})",
            s.name,
            s.type_path,
            s.events.join(", "),
            s.file,
            s.line
        );
    }
    if catalog.handlers.is_empty() && catalog.subscribers.is_empty() {
        out.push_str(
            "\nNo handler or subscriber is linked into this binary. To list yours, run the command from\n\
             a binary of your crate: fn main() -> std::process::ExitCode { tasker_telemetry_cli::main() }\n",
        );
    }
    out
}
