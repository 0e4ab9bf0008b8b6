//! Running a copier as a child process and measuring it: wall time, peak
//! RSS and CPU time (from GNU time).

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

pub const GNU_TIME: &str = "/usr/bin/time";

/// What one child process run cost.
#[derive(Debug, Clone)]
pub struct Timed {
    pub wall: Duration,
    pub status: ExitStatus,
    /// Peak resident set size of the child, KiB.
    pub max_rss_kib: Option<u64>,
    /// User + system CPU seconds of the child.
    pub cpu_secs: Option<f64>,
    /// The child's stdout and stderr.
    pub log: PathBuf,
}

/// A command to measure.
pub struct Child<'a> {
    pub program: &'a Path,
    pub args: Vec<OsString>,
    pub envs: Vec<(String, String)>,
    pub log: PathBuf,
}

/// Run `child` under GNU time, its output to its log file, and wait.
pub fn run(child: Child<'_>) -> anyhow::Result<Timed> {
    anyhow::ensure!(
        Path::new(GNU_TIME).is_file(),
        "{GNU_TIME} is missing: install Debian's `time` package (apt-get install time)"
    );
    let time_file = child.log.with_extension("time");
    let log =
        File::create(&child.log).with_context(|| format!("create {}", child.log.display()))?;
    let mut cmd = Command::new(GNU_TIME);
    cmd.arg("-f")
        .arg("%M %U %S")
        .arg("-o")
        .arg(&time_file)
        .arg(child.program)
        .args(&child.args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    ferry_harness::apply_loopback_env(&mut cmd);
    for (k, v) in &child.envs {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("run {}", child.program.display()))?;
    let wall = started.elapsed();
    let (max_rss_kib, cpu_secs) = read_time_file(&time_file);
    Ok(Timed {
        wall,
        status,
        max_rss_kib,
        cpu_secs,
        log: child.log,
    })
}

/// GNU time writes "Command exited with non-zero status N" first when the
/// child fails; the format line is the last one.
fn read_time_file(path: &Path) -> (Option<u64>, Option<f64>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (None, None);
    };
    let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) else {
        return (None, None);
    };
    let fields: Vec<&str> = line.split_whitespace().collect();
    let rss = fields.first().and_then(|f| f.parse().ok());
    let cpu = match (
        fields.get(1).and_then(|f| f.parse::<f64>().ok()),
        fields.get(2).and_then(|f| f.parse::<f64>().ok()),
    ) {
        (Some(u), Some(s)) => Some(u + s),
        _ => None,
    };
    (rss, cpu)
}

/// The last lines of a log, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_file_last_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(
            &p,
            "Command exited with non-zero status 1\n12345 1.50 0.25\n",
        )
        .unwrap();
        let (rss, cpu) = super::read_time_file(&p);
        assert_eq!(rss, Some(12345));
        assert!((cpu.unwrap() - 1.75).abs() < 1e-9);
    }
}
