//! The command's exit codes, documented in the crate's documentation and `--help`.

use std::process::ExitCode;

/// How the command ended.
///
/// ```
/// use tasker_telemetry_cli::Exit;
///
/// assert_eq!(Exit::CheckFailed.code(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// 0: done; for `doctor`, every check passed or was skipped.
    Ok,
    /// 1: `doctor` found at least one check failing.
    CheckFailed,
    /// 2: the command line is wrong.
    Usage,
    /// 3: the configuration (file or environment) is invalid.
    Config,
    /// 4: a file could not be read or written, or an unknown event was named.
    Failed,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::CheckFailed => 1,
            Self::Usage => 2,
            Self::Config => 3,
            Self::Failed => 4,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}
