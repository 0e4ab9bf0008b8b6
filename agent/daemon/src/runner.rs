//! One run of a job, whatever its kind: the manager makes it with
//! [`runner`], steers it through one handle ([`Steer`]: pause, resume,
//! stop) and hears how it ended. The kinds differ only here and in their
//! own modules ([`crate::migrate_job`], [`crate::find_job`],
//! [`crate::watch_job`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferry_control::{JobSecrets, JobSpec};
use futures::future::BoxFuture;
use s3migrate::Control;

use crate::metrics::JobLabels;
use crate::transition::Run;
use crate::{LiveInfo, RunEnd, find_job, migrate_job, watch_job};

/// What every run gets, whatever its kind.
pub struct Common {
    pub job_dir: PathBuf,
    /// Where the run writes (a copy's dest folder).
    pub folder: PathBuf,
    pub created_at: String,
    /// Runs of the job before this one.
    pub earlier_runs: u32,
    pub live: Arc<LiveInfo>,
    pub labels: JobLabels,
}

/// One run, ready to go.
pub trait JobRunner: Send {
    /// The handle the manager steers the run by.
    fn steer(&self) -> Steer;
    /// Runs to the end.
    fn run(self: Box<Self>) -> BoxFuture<'static, RunEnd>;
}

/// Checks a job before it is created, as its engine would, so that a job
/// that can never run is refused at `start`.
pub fn check(spec: &JobSpec, secrets: &JobSecrets) -> Result<(), String> {
    if let JobSpec::Migrate(o) = spec {
        for (s, which) in [
            (&secrets.src_secret, "source (src_secret)"),
            (&secrets.dest_secret, "destination (dest_secret)"),
        ] {
            if s.as_deref().is_none_or(str::is_empty) {
                return Err(format!("the {which} secret is missing"));
            }
        }
        return migrate_job::check(o);
    }
    if secrets.src_secret.is_some() || secrets.dest_secret.is_some() {
        return Err(format!("a {} job takes no secrets", spec.kind()));
    }
    let (bucket, directory, output_dir) = match spec {
        JobSpec::Find(o) => (&o.bucket, &o.directory, &o.output_dir),
        JobSpec::Watch(o) => (&o.bucket, &o.directory, &o.output_dir),
        JobSpec::Migrate(_) => unreachable!("checked above"),
    };
    if let Some(b) = bucket {
        ferry_control::check_bucket_name(b)?;
    }
    check_scan_dirs(directory, output_dir)?;
    match spec {
        JobSpec::Find(o) => find_job::options(o, false).map(drop),
        JobSpec::Watch(o) => watch_job::options(o, false).map(drop),
        JobSpec::Migrate(_) => unreachable!("checked above"),
    }
}

/// A scan's places: DIRECTORY and OUTPUT_DIR absolute (the agent has no
/// working directory of the caller's), DIRECTORY a directory.
fn check_scan_dirs(directory: &Path, output_dir: &Path) -> Result<(), String> {
    for (what, p) in [("DIRECTORY", directory), ("OUTPUT_DIR", output_dir)] {
        if !p.is_absolute() {
            return Err(format!(
                "{what} {} is relative; the agent needs an absolute path",
                p.display()
            ));
        }
    }
    match std::fs::metadata(directory) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "DIRECTORY {}: not a directory",
            directory.display()
        )),
        Err(e) => Err(format!("DIRECTORY {}: {e}", directory.display())),
    }
}

/// The run of `spec`.
pub fn runner(spec: &JobSpec, common: Common) -> Box<dyn JobRunner> {
    match spec {
        JobSpec::Migrate(o) => Box::new(migrate_job::RunInput {
            opts: o.clone(),
            control: Control::new(),
            common,
        }),
        JobSpec::Find(o) => Box::new(find_job::RunInput {
            opts: o.clone(),
            common,
        }),
        JobSpec::Watch(o) => Box::new(watch_job::RunInput {
            opts: o.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            common,
        }),
    }
}

/// How the manager steers a live run: one handle for every kind, each
/// doing what its engine can.
#[derive(Clone)]
pub enum Steer {
    /// A scan: it cannot pause or stop midway.
    Fixed,
    /// A watch: set, it ends after its current set.
    Watch(Arc<AtomicBool>),
    /// A copy: pauses, resumes, and stops at a checkpoint.
    Copy(Arc<Control>),
}

impl Steer {
    /// What the run can be told, for [`crate::transition::transition`].
    pub fn can(&self) -> Run {
        match self {
            Steer::Fixed => Run::Fixed,
            Steer::Watch(_) => Run::Stoppable,
            Steer::Copy(_) => Run::Steerable,
        }
    }

    /// Stops handing out work (a copy; the others cannot pause, which
    /// [`crate::transition::transition`] refuses before this is called).
    pub fn pause(&self) {
        if let Steer::Copy(c) = self {
            c.pause();
        }
    }

    pub fn resume(&self) {
        if let Steer::Copy(c) = self {
            c.resume();
        }
    }

    /// Asks the run to end at its next checkpoint, and says how it will,
    /// for the job's log; `None`: it cannot stop midway.
    pub fn stop(&self) -> Option<&'static str> {
        match self {
            Steer::Fixed => None,
            Steer::Watch(flag) => {
                flag.store(true, Ordering::SeqCst);
                Some("the watch finishes its current set, then stops")
            }
            Steer::Copy(c) => {
                c.cancel();
                Some("the keys in flight finish, then migrate.log is checkpointed")
            }
        }
    }
}
