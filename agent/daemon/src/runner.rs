//! One run of a job, whatever its kind: the manager makes it with
//! [`runner`], steers it through one handle ([`Steer`]: pause, resume,
//! stop) and hears how it ended. The kinds differ only here and in their
//! own modules ([`crate::migrate_job`], [`crate::find_job`],
//! [`crate::watch_job`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferry_control::JobSpec;
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
