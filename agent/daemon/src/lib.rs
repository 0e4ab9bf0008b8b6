//! The `ferry-agent` daemon: runs s3find scans and watches and s3migrate
//! copies as
//! jobs, steered over an admin socket (HTTP/1.1 + JSON, the schema in
//! [`ferry_control::jobs`]), with Prometheus metrics.
//!
//! - [`config`]: the TOML config, validated before anything binds.
//! - [`store`]: each job's folder (`spec.json`, `secrets.json` 0600,
//!   `state.json`, `job.log`), written crash-safe.
//! - [`transition`]: the job state machine, a pure function of a job's
//!   state, a user's verb and what its run can do.
//! - [`manager`]: the job table, the scheduler (`max_running_jobs`), and
//!   applying [`transition`]'s steps; restart and shutdown.
//! - [`run`]: one run of a job as the manager sees it, whatever its kind,
//!   and the one handle ([`run::Steer`]) it pauses, resumes and stops it
//!   by; [`runner`]: checks and makes the runs, by kind;
//!   [`migrate_job`], [`find_job`], [`watch_job`]: one run on each engine.
//! - `http`: the admin API on the Unix socket (peer checked by
//!   [`ferry_control::socket`], exactly as the proxy's).
//! - [`metrics`]: every metric name.
//!
//! Durability: a job's state is saved before the API acknowledges a change.
//! After a crash or `kill -9`, jobs that were running resume by themselves
//! from their migrate.log watermark; paused ones stay paused; finished ones
//! stay finished. On TERM every copy checkpoints (as a cancel does) and is
//! recorded as interrupted, to resume at the next start; every watch
//! finishes its current set and restarts at the next start.

pub mod config;
pub mod find_job;
mod http;
pub mod joblog;
pub mod manager;
pub mod metrics;
pub mod migrate_job;
pub mod run;
pub mod runner;
pub mod store;
pub mod transition;
pub mod watch_job;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use ferry_control::socket::server::Refusal;

pub use config::{Config, ConfigError};
pub use manager::Manager;

/// How one run of a job ended.
#[derive(Debug)]
pub enum RunEnd {
    /// Every key handled (a copy), or the list written (a scan).
    Completed {
        find: Option<ferry_control::jobs::FindSummaryView>,
    },
    /// Could not run or finish, or finished with failed keys.
    Failed(String),
    /// Stopped on request (cancel or agent stop) at a clean checkpoint.
    Stopped,
}

/// What a running job shows while it runs.
#[derive(Debug, Default)]
pub struct LiveInfo {
    progress: Mutex<Option<String>>,
}

impl LiveInfo {
    pub fn set_progress(&self, line: String) {
        *self.progress.lock().expect("live info lock") = Some(line);
    }

    pub fn progress(&self) -> Option<String> {
        self.progress.lock().expect("live info lock").clone()
    }
}

/// Now, RFC 3339 in UTC, whole seconds.
pub fn now_rfc3339() -> String {
    let t = time::OffsetDateTime::now_utc();
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Parse an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// A spec on one line for logs. Specs hold no secret by construction.
pub fn describe(spec: &ferry_control::JobSpec) -> String {
    serde_json::to_string(spec).expect("specs serialize")
}

/// Run the agent until TERM or INT: load the jobs, bind the socket, serve
/// the API and metrics, resume the jobs that were running. `config_path`
/// is read again on HUP (only `max_running_jobs` changes live).
pub async fn run(config_path: PathBuf, config: Config) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};

    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => return Err("cannot install the signal handlers".into()),
    };
    let manager = Manager::open(&config).map_err(|e| e.to_string())?;
    let listener = ferry_control::socket::bind(&config.socket_path, &config.socket_group)
        .map_err(|e| e.to_string())?;
    let access = ferry_control::socket::AccessPolicy::new(&config.socket_group);
    if let Some(addr) = config.metrics_addr {
        let exporter = metrics::install(addr)?;
        tokio::spawn(async move {
            if let Err(e) = exporter.await {
                tracing::error!(error = ?e, "metrics endpoint stopped");
            }
        });
    }
    tracing::info!(
        socket = %config.socket_path.display(),
        state_dir = %config.state_dir.display(),
        jobs = manager.job_count(),
        "ferry-agent ready"
    );
    manager.schedule();
    let server = tokio::spawn(http::serve(manager.clone(), access, listener));
    let ticker = tokio::spawn(manager.clone().publish_metrics_forever());

    let grace = loop {
        tokio::select! {
            _ = term.recv() => break Duration::from_secs(config.shutdown_grace_secs),
            _ = int.recv() => break Duration::ZERO,
            _ = hup.recv() => reload(&config_path, &config, &manager),
        }
    };
    // Stop taking requests, then checkpoint every job.
    server.abort();
    let signal = if grace.is_zero() { "INT" } else { "TERM" };
    manager.shutdown(grace, signal).await;
    ticker.abort();
    remove_socket(&config.socket_path);
    Ok(())
}

fn reload(path: &Path, running: &Config, manager: &Arc<Manager>) {
    match Config::load(path) {
        Ok(new) => {
            if new.max_running_jobs != running.max_running_jobs {
                tracing::info!(
                    max_running_jobs = new.max_running_jobs,
                    "config reloaded: max_running_jobs changed"
                );
            }
            let mut rest = new.clone();
            rest.max_running_jobs = running.max_running_jobs;
            if rest != *running {
                tracing::warn!(
                    "config reloaded: only max_running_jobs changes without a restart; the other changes wait for the next start"
                );
            }
            manager.set_max_running(new.max_running_jobs);
            manager.schedule();
        }
        Err(e) => tracing::error!(error = %e, "config reload failed; keeping the running config"),
    }
}

fn remove_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}
