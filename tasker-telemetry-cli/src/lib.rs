//! The `tasker-telemetry` command: the event catalog, the operator's dashboards and rules, a
//! subscriber scaffold, and a doctor for a deployment's telemetry settings.
//!
//! ```text
//! cargo install --locked --path tasker-telemetry-cli
//! tasker-telemetry catalog [--json | --markdown]
//! tasker-telemetry dashboards --out DIR [--failure-ratio 0.05] [--alert-for 5m] [--objective STEP=250ms]...
//! tasker-telemetry scaffold subscriber NAME [--events task.completed,step.failed] [--metrics] [--out DIR]
//! tasker-telemetry doctor [--config FILE] [--metrics-url URL]
//! ```
//!
//! The command sits on top of the runtime and uses only its public API. The catalog is what the
//! binary links: the installed command knows every built-in event, but none of your handlers or
//! subscribers. To list yours (and to generate dashboards with their objectives), link them into
//! the command: a binary in your crate whose `main` is [`main`]:
//!
//! ```no_run
//! // src/bin/tasker-telemetry.rs, in the crate that declares your handlers.
//! fn main() -> std::process::ExitCode {
//!     tasker_telemetry_cli::main()
//! }
//! ```
//!
//! # Exit codes
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done; for `doctor`, every check passed (or was skipped, with the reason printed) |
//! | 1 | `doctor`: at least one check failed (each failure is printed with its diagnosis) |
//! | 2 | the command line is wrong (unknown subcommand, flag or value) |
//! | 3 | the configuration (file or environment) is invalid |
//! | 4 | a file could not be read or written, or an unknown event was named |

mod catalog;
mod dashboards;
mod doctor;
mod exit;
mod scaffold;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use exit::Exit;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "tasker-telemetry",
    version,
    about = "The tasker-telemetry catalog, operator artefacts, scaffolds and doctor.",
    after_help = "Exit codes: 0 done (doctor: every check passed); 1 a doctor check failed; 2 bad command line; 3 invalid configuration; 4 a file could not be read or written, or an unknown event was named."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lists every event, step handler and subscriber linked into this binary.
    Catalog(catalog::CatalogArgs),
    /// Writes the Grafana dashboard and the Prometheus recording and alerting rules.
    Dashboards(dashboards::DashboardsArgs),
    /// Writes a new module to start from.
    #[command(subcommand)]
    Scaffold(ScaffoldCommand),
    /// Prints the effective configuration and checks the endpoints it names.
    Doctor(doctor::DoctorArgs),
}

#[derive(Debug, Subcommand)]
enum ScaffoldCommand {
    /// A subscriber module: `#[subscribe_to]` on a struct with one handler per event.
    Subscriber(scaffold::SubscriberArgs),
}

/// Where a subcommand writes: its standard output and error.
pub(crate) struct Output<'a> {
    pub(crate) out: &'a mut dyn Write,
    pub(crate) err: &'a mut dyn Write,
}

/// Runs the command with the process's arguments, printing to its standard output and error.
///
/// Call it from a binary of your own to link your handlers and subscribers into the command
/// (see the [crate documentation](crate)).
pub fn main() -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run(std::env::args_os(), &mut stdout.lock(), &mut stderr.lock()).into()
}

/// Runs the command with `args` (the first is the program's name), writing to `out` and `err`.
///
/// ```
/// use tasker_telemetry_cli::{Exit, run};
///
/// let (mut out, mut err) = (Vec::new(), Vec::new());
/// let exit = run(["tasker-telemetry", "catalog", "--json"], &mut out, &mut err);
/// assert_eq!(exit, Exit::Ok);
/// let catalog: serde_json::Value = serde_json::from_slice(&out).unwrap();
/// assert!(catalog["events"].as_array().unwrap().len() > 50);
///
/// let exit = run(["tasker-telemetry", "catalgo"], &mut out, &mut err);
/// assert_eq!(exit, Exit::Usage);
/// assert!(String::from_utf8_lossy(&err).contains("catalog"));
/// ```
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> Exit
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let rendered = error.render().to_string();
            return if error.use_stderr() {
                let _ = write!(err, "{rendered}");
                Exit::Usage
            } else {
                // --help and --version.
                let _ = write!(out, "{rendered}");
                Exit::Ok
            };
        }
    };
    let mut output = Output { out, err };
    let exit = match cli.command {
        Command::Catalog(args) => catalog::run(&args, &mut output),
        Command::Dashboards(args) => dashboards::run(&args, &mut output),
        Command::Scaffold(ScaffoldCommand::Subscriber(args)) => scaffold::run(&args, &mut output),
        Command::Doctor(args) => doctor::run(&args, &mut output),
    };
    let _ = output.out.flush();
    exit
}
