//! A run as the manager sees it, whatever its kind: what it is given
//! ([`Common`]) and the one handle the manager steers it by ([`Steer`]).
//! Each kind runs in its own module ([`crate::runner`] makes the run).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use s3migrate::Control;

use crate::LiveInfo;
use crate::joblog;
use crate::metrics::JobLabels;
use crate::transition::Run;

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

impl Common {
    /// The job's log.
    pub fn log(&self) -> PathBuf {
        self.job_dir.join(crate::store::LOG_FILE)
    }

    /// An earlier run of the job was cut (an agent stop, a crash) or
    /// failed: this one continues it.
    pub fn rerun(&self) -> bool {
        self.earlier_runs > 0
    }

    /// On a rerun, `line` in the job's log: how this run goes on.
    pub fn note_rerun(&self, line: &str) {
        if self.rerun() {
            joblog::append(&self.log(), line);
        }
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
