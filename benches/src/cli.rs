//! How a benchmark binary ends: its report on stdout (and in `--out`), the
//! whole error chain on stderr, named after the binary, and a failing exit
//! code.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

/// Prints `program`'s report, and writes it to `out` too when given.
pub fn publish(program: &str, text: &str, out: Option<&Path>) -> anyhow::Result<()> {
    print!("{text}");
    if let Some(out) = out {
        std::fs::write(out, text).with_context(|| format!("write {}", out.display()))?;
        eprintln!("{program}: report written to {}", out.display());
    }
    Ok(())
}

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
