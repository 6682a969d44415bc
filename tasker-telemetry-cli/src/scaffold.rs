//! `scaffold subscriber`: writes a subscriber module that compiles as it is, as Tasker's
//! `rails generate tasker:subscriber NAME --events ... [--metrics]` did: one `handle_*` method
//! per event reading the event through the subscriber helpers, and with `--metrics`, counters
//! and a duration histogram registered on the telemetry's metrics registry.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use heck::{ToSnakeCase as _, ToUpperCamelCase as _};
use tasker_telemetry::catalog::{self, EventDescriptor};
use tasker_telemetry::payload::PayloadKind;

use crate::{Exit, Output};

/// The events a scaffold subscribes to when `--events` names none.
const DEFAULT_EVENTS: &[&str] = &[
    "task.completed",
    "task.failed",
    "step.completed",
    "step.failed",
];

/// `scaffold subscriber NAME [--events ...] [--metrics] [--out DIR] [--force]`.
#[derive(Debug, Args)]
pub(crate) struct SubscriberArgs {
    /// The subscriber's name, in snake_case (`order_audit`) or CamelCase (`OrderAudit`): the
    /// module is `<snake_case>.rs`, the type `<CamelCase>`.
    name: String,
    /// The events to subscribe to, comma-separated or repeated; default
    /// task.completed,task.failed,step.completed,step.failed.
    #[arg(long, value_name = "EVENT", value_delimiter = ',')]
    events: Vec<String>,
    /// Record metrics: an events counter, a duration histogram and an error counter by error
    /// type, registered on `Telemetry::metrics()`.
    #[arg(long)]
    metrics: bool,
    /// The directory to write the module into.
    #[arg(long, value_name = "DIR", default_value = "src/subscribers")]
    out: PathBuf,
    /// Replace the module if it exists.
    #[arg(long)]
    force: bool,
}

/// A subscriber's names: its module (file) and its type.
#[derive(Debug, PartialEq, Eq)]
struct Names {
    module: String,
    type_name: String,
}

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe",
    "use", "where", "while", "abstract", "become", "box", "do", "final", "macro", "override",
    "priv", "try", "typeof", "unsized", "virtual", "yield",
];

fn names(name: &str) -> Result<Names, String> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "the subscriber's name must be a Rust identifier in snake_case or CamelCase (letters, digits, `_`, starting with a letter), got {name:?}"
        ));
    }
    let module = name.to_snake_case();
    let type_name = module.to_upper_camel_case();
    if KEYWORDS.contains(&module.as_str()) {
        return Err(format!(
            "{module:?} is a Rust keyword and cannot name a module: choose another name"
        ));
    }
    Ok(Names { module, type_name })
}

/// The catalog's descriptor of each event named, or why one is unknown.
fn events(named: &[String]) -> Result<Vec<EventDescriptor>, String> {
    let wanted: Vec<&str> = if named.is_empty() {
        DEFAULT_EVENTS.to_vec()
    } else {
        named.iter().map(|e| e.trim()).collect()
    };
    let known = catalog::events();
    let mut found: Vec<EventDescriptor> = Vec::new();
    for name in wanted {
        let Some(descriptor) = known.iter().find(|d| d.name.as_str() == name) else {
            let hint = match catalog::suggest(name) {
                Some(s) => format!("did you mean {s:?}?"),
                None => "`tasker-telemetry catalog` lists them".to_owned(),
            };
            return Err(format!(
                "unknown event {name:?}: {hint} (custom events are known to a command built from your crate: see `tasker_telemetry_cli::main`)"
            ));
        };
        if !found.iter().any(|d| d.name == descriptor.name) {
            found.push(*descriptor);
        }
    }
    Ok(found)
}

pub(crate) fn run(args: &SubscriberArgs, output: &mut Output<'_>) -> Exit {
    let plan = names(&args.name).and_then(|n| Ok((n, events(&args.events)?)));
    let (names, events) = match plan {
        Ok(plan) => plan,
        Err(message) => {
            let _ = writeln!(
                output.err,
                "tasker-telemetry scaffold subscriber: {message}"
            );
            return Exit::Usage;
        }
    };
    let path = args.out.join(format!("{}.rs", names.module));
    if path.exists() && !args.force {
        let _ = writeln!(
            output.err,
            "tasker-telemetry scaffold subscriber: {} exists; pass --force to replace it",
            path.display()
        );
        return Exit::Failed;
    }
    let source = rustfmt(render(&names, &events, args.metrics));
    let written = std::fs::create_dir_all(&args.out).and_then(|()| std::fs::write(&path, source));
    if let Err(error) = written {
        let _ = writeln!(
            output.err,
            "tasker-telemetry scaffold subscriber: cannot write {}: {error}",
            path.display()
        );
        return Exit::Failed;
    }
    let _ = writeln!(output.out, "{}", path.display());
    let _ = writeln!(
        output.out,
        "add `mod {};` beside it (in {}/mod.rs or your crate root){}",
        names.module,
        args.out.display(),
        if args.metrics {
            format!(
                ", then call `{}::{}::subscribe(&telemetry)?` once at start-up",
                names.module, names.type_name
            )
        } else {
            ", then `telemetry.publisher().subscribe_registered()?` subscribes it".to_owned()
        }
    );
    Exit::Ok
}

/// `source` as rustfmt formats it, when rustfmt is on `PATH` (it comes with cargo); as written
/// otherwise, which compiles the same.
fn rustfmt(source: String) -> String {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let child = Command::new("rustfmt")
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return source;
    };
    let fed = child
        .stdin
        .take()
        .is_some_and(|mut stdin| stdin.write_all(source.as_bytes()).is_ok());
    match child.wait_with_output() {
        Ok(out) if fed && out.status.success() && !out.stdout.is_empty() => {
            String::from_utf8(out.stdout).unwrap_or(source)
        }
        _ => source,
    }
}

/// One `handle_*` method per event, documented with the catalog's description, its body
/// written by `body`.
fn handlers(
    out: &mut String,
    events: &[EventDescriptor],
    body: impl Fn(&EventDescriptor) -> String,
) {
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "    /// `{}`: {}.\n    fn {}(&self, event: &Event<'_>) {{\n{}    }}",
            e.name.as_str(),
            summary(e),
            method(e),
            body(e)
        );
    }
}

fn method(event: &EventDescriptor) -> String {
    format!("handle_{}", event.name.as_str().replace('.', "_"))
}

fn quoted_list(events: &[EventDescriptor]) -> String {
    events
        .iter()
        .map(|e| format!("{:?}", e.name.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_failure(event: &EventDescriptor) -> bool {
    event.payload == PayloadKind::Error
}

fn is_timed(event: &EventDescriptor) -> bool {
    matches!(event.payload, PayloadKind::Task | PayloadKind::Step) || is_failure(event)
}

/// One line of doc text: the description's first sentence, without a trailing period.
fn summary(event: &EventDescriptor) -> String {
    event
        .description
        .split(". ")
        .next()
        .unwrap_or("")
        .trim_end_matches('.')
        .replace('\n', " ")
}

fn render(names: &Names, events: &[EventDescriptor], metrics: bool) -> String {
    let Names { module, type_name } = names;
    let listed = events
        .iter()
        .map(|e| format!("`{}`", e.name.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = String::new();
    let command = format!(
        "tasker-telemetry scaffold subscriber {module} --events {}{}",
        events
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        if metrics { " --metrics" } else { "" }
    );
    let _ = writeln!(out, "//! `{type_name}`: a subscriber to {listed}.");
    let _ = writeln!(out, "//!");
    let _ = writeln!(out, "//! Written by `{command}`.");
    if metrics {
        out.push_str(
            "//! Its metrics are registered on the telemetry's registry, so it is subscribed by hand:\n\
             //! call `subscribe(&telemetry)` once at start-up.\n",
        );
        out.push_str(
            "\nuse tasker_telemetry::metrics::{CounterVec, HistogramVec, MetricsError, MetricsRegistry};\n\
             use tasker_telemetry::publisher::SubscriptionHandle;\n\
             use tasker_telemetry::subscriber::helpers;\n\
             use tasker_telemetry::{Event, Telemetry, subscribe_to};\n\n",
        );
        let _ = writeln!(
            out,
            "/// Counts {listed} and records their durations and error types."
        );
        let _ = writeln!(out, "#[derive(Debug)]\npub struct {type_name} {{");
        let _ = writeln!(
            out,
            "    /// `{module}_events_total{{event, task_name, step_name}}`.\n    events: CounterVec,"
        );
        let _ = writeln!(
            out,
            "    /// `{module}_duration_seconds{{event, task_name, step_name}}`.\n    durations: HistogramVec,"
        );
        let _ = writeln!(
            out,
            "    /// `{module}_errors_total{{event, error_type, final_failure}}`.\n    errors: CounterVec,\n}}\n"
        );
        let _ = writeln!(
            out,
            "#[subscribe_to({}, register = false)]\nimpl {type_name} {{",
            quoted_list(events)
        );
        handlers(&mut out, events, |e| {
            format!("        self.record(event, {});\n", is_failure(e))
        });
        out.push_str("}\n\n");
        let _ = writeln!(out, "impl {type_name} {{");
        let _ = writeln!(
            out,
            "    /// The events it subscribes to.\n    pub const EVENTS: &'static [&'static str] = &[{}];\n",
            quoted_list(events)
        );
        let _ = writeln!(
            out,
            "    /// Registers its metric families on `registry`.\n    ///\n    /// # Errors\n    /// When a family of the same name but another type or labels is already registered.\n    pub fn new(registry: &MetricsRegistry) -> Result<Self, MetricsError> {{\n        Ok(Self {{\n            events: registry.counter(\n                \"{module}_events_total\",\n                \"Events {type_name} received.\",\n                &[\"event\", \"task_name\", \"step_name\"],\n            )?,\n            durations: registry.histogram(\n                \"{module}_duration_seconds\",\n                \"Execution durations of the events {type_name} received.\",\n                Some(\"seconds\"),\n                &[\"event\", \"task_name\", \"step_name\"],\n                None,\n            )?,\n            errors: registry.counter(\n                \"{module}_errors_total\",\n                \"Failures {type_name} received, by error type.\",\n                &[\"event\", \"error_type\", \"final_failure\"],\n            )?,\n        }})\n    }}\n"
        );
        let _ = writeln!(
            out,
            "    /// Registers its metrics on `telemetry`'s registry and subscribes it to [`Self::EVENTS`].\n    ///\n    /// # Errors\n    /// As [`new`](Self::new), or when the publisher refuses the subscription.\n    pub fn subscribe(\n        telemetry: &Telemetry,\n    ) -> Result<SubscriptionHandle, Box<dyn std::error::Error + Send + Sync>> {{\n        let subscriber = Self::new(telemetry.metrics())?;\n        Ok(telemetry.publisher().subscribe(Self::EVENTS, subscriber)?)\n    }}\n"
        );
        out.push_str(
            "    /// Counts `event`, records its duration, and for a failure (`failed`) its error type.\n\
             \x20   fn record(&self, event: &Event<'_>, failed: bool) {\n\
             \x20       let attributes = helpers::core_attributes(event);\n\
             \x20       let event_type = attributes.event_type;\n\
             \x20       let labels = [\n\
             \x20           event_type,\n\
             \x20           attributes.task_name.unwrap_or(\"\"),\n\
             \x20           attributes.step_name.unwrap_or(\"\"),\n\
             \x20       ];\n\
             \x20       self.events.with(&labels).inc();\n\
             \x20       let timing = helpers::timing_metrics(event);\n\
             \x20       if timing.execution_duration > 0.0 {\n\
             \x20           self.durations.with(&labels).observe(timing.execution_duration);\n\
             \x20       }\n\
             \x20       if failed {\n\
             \x20           let error = helpers::error_metrics(event);\n\
             \x20           let final_failure = if error.final_failure { \"true\" } else { \"false\" };\n\
             \x20           self.errors\n\
             \x20               .with(&[event_type, error.error_type.as_str(), final_failure])\n\
             \x20               .inc();\n\
             \x20       }\n\
             \x20   }\n\
             }\n",
        );
        return out;
    }
    out.push_str(
        "//! `#[subscribe_to]` registers it: `telemetry.publisher().subscribe_registered()` subscribes\n\
         //! it, built with `Default`.\n",
    );
    out.push_str("\nuse tasker_telemetry::subscriber::helpers;\nuse tasker_telemetry::{Event, subscribe_to};\n\n");
    let _ = writeln!(out, "/// Receives {listed}.");
    let _ = writeln!(
        out,
        "#[derive(Debug, Default)]\npub struct {type_name};\n\n#[subscribe_to({})]\nimpl {type_name} {{",
        quoted_list(events)
    );
    handlers(&mut out, events, |e| {
        let mut body = "        let attributes = helpers::core_attributes(event);\n".to_owned();
        let (read, fields) = if is_failure(e) {
            body.push_str("        let error = helpers::error_metrics(event);\n");
            (
                "(attributes, error)",
                ", `error.error_type`, `error.final_failure`",
            )
        } else if is_timed(e) {
            body.push_str("        let timing = helpers::timing_metrics(event);\n");
            ("(attributes, timing)", ", `timing.execution_duration`")
        } else {
            ("attributes", "")
        };
        let _ = writeln!(
            body,
            "        // Handle `{}` here: `attributes.task_id`, `attributes.step_name`{fields}.\n        let _ = {read};",
            e.name.as_str()
        );
        body
    });
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_snake_and_camel_case_and_refuse_the_rest() {
        assert_eq!(
            names("order_audit").unwrap(),
            Names {
                module: "order_audit".into(),
                type_name: "OrderAudit".into()
            }
        );
        assert_eq!(names("OrderAudit").unwrap(), names("order_audit").unwrap());
        for bad in ["", "9lives", "order-audit", "mod", "café"] {
            assert!(names(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_events_are_refused_with_the_nearest_name() {
        let error = events(&["task.complete".to_owned()]).unwrap_err();
        assert!(error.contains("did you mean \"task.completed\""), "{error}");
        assert_eq!(events(&[]).unwrap().len(), DEFAULT_EVENTS.len());
    }
}
