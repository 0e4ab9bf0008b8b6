//! How a benchmark binary ends: the whole error chain on stderr, named
//! after the binary, and a failing exit code.

use std::process::ExitCode;

/// The exit of `program` after `result`.
pub fn exit(program: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
