//! The `tasker-telemetry` command (see the `tasker_telemetry_cli` crate).

fn main() -> std::process::ExitCode {
    tasker_telemetry_cli::main()
}
