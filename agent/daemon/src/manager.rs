//! The job table and its state machine.
//!
//! ```text
//! queued ──> running ──> completed | failed | cancelled
//!   │  ^       │  ^
//!   v  │       v  │
//!   paused <───┘  │        failed ──resume──> queued
//!   └─────────────┘
//! ```
//!
//! Every change is saved (`state.json`, crash-safe) before the API answers.
//! At most `max_running_jobs` jobs have a live run; a paused job keeps its
//! run (and its slot) while the agent runs. A run that ends takes the
//! job's next state from how it ended and why it was stopped: a user's
//! cancel makes it `cancelled`; an agent stop leaves it `running` (or
//! `paused`) with an `interrupted` note, to resume at the next start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ferry_control::keylist;
use ferry_control::{
    FollowUp, JobLogs, JobSpec, JobState, JobView, MigrateOptions, StartJobRequest, codes,
};
use tokio::sync::watch;

use super::metrics::{self, JobLabels};
use super::store::{self, JobRecord, Store, StoreError};
use super::{
    Config, LiveInfo, Refusal, RunEnd, describe, joblog, migrate_job, now_rfc3339, watch_job,
};

use crate::run::{Common, Steer};
use crate::runner::{self, runner};
use crate::transition::{Refused, Run, Step, Verb, transition};

/// Lines `logs` returns unless asked, and at most.
pub const DEFAULT_LOG_LINES: usize = 100;
pub const MAX_LOG_LINES: usize = 10_000;
/// How long `cancel` waits for a copy to checkpoint before it answers.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// Why a live run was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cancel,
    Shutdown,
}

struct Live {
    /// What the run can be told.
    steer: Steer,
    info: Arc<LiveInfo>,
    stop: Option<Stop>,
    /// Turns true when the run has ended and its end is recorded.
    ended: watch::Receiver<bool>,
}

struct Job {
    rec: JobRecord,
    spec: JobSpec,
    dir: PathBuf,
    labels: JobLabels,
    live: Option<Live>,
}

impl Job {
    /// What the job's run can be told, for [`transition`].
    fn run(&self) -> Run {
        self.live.as_ref().map_or(Run::None, |l| l.steer.can())
    }

    /// The live run's handle; `transition` allowed the step only if there
    /// is one.
    fn steer(&self) -> &Steer {
        &self.live.as_ref().expect("a live run").steer
    }
}

/// `verb`, which [`transition`] refused, as the API's 409.
fn refused(job: &Job, verb: Verb, why: Refused) -> Refusal {
    let (id, kind) = (job.rec.status.id, job.rec.status.kind);
    conflict(match (why, verb) {
        (Refused::CannotPauseMidway, _) => {
            format!("job {id} is a {kind} job: it cannot pause midway")
        }
        (Refused::CannotStopMidway, _) => {
            format!("job {id} is a running {kind} job: it cannot stop midway; let it finish")
        }
        (Refused::WrongState(s), Verb::Pause) => {
            format!("job {id} is {s}; only a queued or running job can be paused")
        }
        (Refused::WrongState(s), Verb::Resume) => {
            format!("job {id} is {s}; only a paused or failed job can be resumed")
        }
        (Refused::WrongState(s), Verb::Cancel) => {
            format!("job {id} is {s} already; it cannot be cancelled")
        }
    })
}

impl Job {
    fn log(&self, message: &str) {
        joblog::append(&self.dir.join(store::LOG_FILE), message);
    }
}

struct Inner {
    jobs: BTreeMap<u64, Job>,
    last_id: u64,
}

/// The agent's jobs.
pub struct Manager {
    store: Store,
    max_running: AtomicUsize,
    stopping: AtomicBool,
    inner: Mutex<Inner>,
}

/// What a view needs, taken under the lock; the disk is read after.
struct ViewParts {
    rec: JobRecord,
    spec: JobSpec,
    progress: Option<String>,
}

impl ViewParts {
    fn into_view(self) -> JobView {
        let passes = match &self.spec {
            JobSpec::Migrate(_) => {
                migrate_job::pass_summaries(&self.rec.folder, &self.rec.status.created_at)
            }
            _ => Vec::new(),
        };
        let verify = match &self.spec {
            JobSpec::Migrate(o) if o.verify => {
                migrate_job::verify_summary(&self.rec.folder, &self.rec.status.created_at)
            }
            _ => None,
        };
        let watch = match &self.spec {
            JobSpec::Watch(_) => watch_job::summary(&self.rec.folder),
            _ => None,
        };
        let mut status = self.rec.status;
        status.progress = self.progress.or(status.progress);
        JobView {
            status,
            passes,
            verify,
            watch,
            folder: self.rec.folder.to_string_lossy().into_owned(),
            spec: self.spec,
        }
    }
}

fn no_such_job(id: u64) -> Refusal {
    Refusal::new(404, codes::NO_SUCH_JOB, format!("no job has id {id}"))
}

fn conflict(message: String) -> Refusal {
    Refusal::new(409, codes::INVALID_JOB_STATE, message)
}

fn save(job: &Job) -> Result<(), Refusal> {
    store::save_state(&job.dir, &job.rec).map_err(|e| {
        tracing::error!(job = job.rec.status.id, error = %e, "job state not saved");
        Refusal::new(
            500,
            codes::STATE_SAVE_FAILED,
            format!("job state not saved: {e}"),
        )
    })
}

impl Manager {
    /// Load every job under `config.state_dir`. Jobs found running (the
    /// agent stopped under them) are resumed by [`Manager::schedule`].
    pub fn open(config: &Config) -> Result<Arc<Manager>, StoreError> {
        let store = Store::open(&config.state_dir)?;
        let (ids, last_id) = store.scan()?;
        let mut jobs = BTreeMap::new();
        for id in ids {
            let dir = store.job_dir(id);
            let loaded = store::load_spec(&dir).and_then(|s| Ok((s, store::load_state(&dir)?)));
            let (spec, rec) = match loaded {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(job = id, error = %e, "cannot load the job; leaving it alone");
                    continue;
                }
            };
            let labels = JobLabels::new(id, rec.status.kind, &rec.status.bucket);
            let mut job = Job {
                rec,
                spec,
                dir,
                labels,
                live: None,
            };
            if job.rec.status.state == JobState::Running && job.rec.cancel_requested {
                // Cancelled, then the agent stopped before the checkpoint
                // was recorded: migrate.log is a checkpoint whatever the
                // moment, so the cancel stands.
                finish(&mut job, JobState::Cancelled);
                job.log("cancelled (the agent stopped while the job was checkpointing)");
                save(&job).ok();
            } else if job.rec.status.state == JobState::Running
                && job.rec.status.interrupted.is_none()
            {
                job.log("the agent stopped without a checkpoint (a crash or kill -9); resuming from the job's log");
            }
            metrics::job_state(&job.labels, job.rec.status.state);
            jobs.insert(id, job);
        }
        Ok(Arc::new(Manager {
            store,
            max_running: AtomicUsize::new(config.max_running_jobs.max(1)),
            stopping: AtomicBool::new(false),
            inner: Mutex::new(Inner { jobs, last_id }),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("job table lock")
    }

    pub fn job_count(&self) -> usize {
        self.lock().jobs.len()
    }

    pub fn set_max_running(&self, n: usize) {
        self.max_running.store(n.max(1), Ordering::SeqCst);
    }

    fn refuse_if_stopping(&self) -> Result<(), Refusal> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(Refusal::new(
                503,
                codes::SHUTTING_DOWN,
                "the agent is stopping and takes no changes",
            ));
        }
        Ok(())
    }

    /// Queue a job. Its options are checked as its engine's CLI would.
    pub fn start(self: &Arc<Self>, req: StartJobRequest) -> Result<JobView, Refusal> {
        self.refuse_if_stopping()?;
        let StartJobRequest { spec, secrets } = req;
        runner::check(&spec, &secrets).map_err(Refusal::invalid)?;

        let mut inner = self.lock();
        let id = inner.last_id + 1;
        let dir = self.store.job_dir(id);
        let folder = match &spec {
            JobSpec::Migrate(o) => o
                .dest_folder
                .clone()
                .unwrap_or_else(|| dir.join(store::DEST_DIR)),
            JobSpec::Find(o) => o.output_dir.clone(),
            JobSpec::Watch(o) => o.output_dir.clone(),
        };
        if let Some(other) = inner
            .jobs
            .values()
            .find(|j| !j.rec.status.state.is_final() && j.rec.folder == folder)
        {
            return Err(conflict(format!(
                "job {} ({}) already works in {}; two jobs must not share a folder",
                other.rec.status.id,
                other.rec.status.state,
                folder.display()
            )));
        }
        if let JobSpec::Migrate(o) = &spec
            && o.dest_folder.is_some()
        {
            migrate_job::set_aside_old_log(o, &folder, id).map_err(|e| {
                Refusal::internal(format!(
                    "cannot set aside the old logs in {}: {e}",
                    folder.display()
                ))
            })?;
        }
        let rec = JobRecord::new(id, spec.kind(), spec.bucket_label(), now_rfc3339(), folder);
        let dir = self.store.create(&rec, &spec, &secrets).map_err(|e| {
            Refusal::new(
                500,
                codes::STATE_SAVE_FAILED,
                format!("job not created: {e}"),
            )
        })?;
        inner.last_id = id;
        let job = Job {
            labels: JobLabels::new(id, rec.status.kind, &rec.status.bucket),
            rec,
            spec,
            dir,
            live: None,
        };
        job.log(&format!("created: {}", describe(&job.spec)));
        tracing::info!(job = id, kind = %job.rec.status.kind, bucket = %job.rec.status.bucket, "job created");
        metrics::job_state(&job.labels, job.rec.status.state);
        inner.jobs.insert(id, job);
        drop(inner);
        self.schedule();
        self.show(id)
    }

    /// A new copy job made from copy job `id` (see [`FollowUp`]): the same
    /// secrets, and its dest folder, where the records of what the copier
    /// wrote are. A retry's key list (`--failed-to-folder`) goes in the old
    /// job's folder, so that it stays with what it came from.
    pub fn follow_up(self: &Arc<Self>, id: u64, what: FollowUp) -> Result<JobView, Refusal> {
        self.refuse_if_stopping()?;
        let (spec, dir, folder, state, next_id) = {
            let inner = self.lock();
            let job = inner.jobs.get(&id).ok_or_else(|| no_such_job(id))?;
            (
                job.spec.clone(),
                job.dir.clone(),
                job.rec.folder.clone(),
                job.rec.status.state,
                inner.last_id + 1,
            )
        };
        let JobSpec::Migrate(o) = spec else {
            return Err(conflict(format!(
                "job {id} is a {}: only a copy job can be followed by a {}",
                spec.kind(),
                what.as_str()
            )));
        };
        if !state.is_final() {
            return Err(conflict(format!(
                "job {id} is {state}: start a {} once it has stopped (or cancel it)",
                what.as_str()
            )));
        }
        let nonempty = |path: &Path| std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        let mut secrets = store::load_secrets(&dir)
            .map_err(|e| Refusal::internal(format!("job {id}'s secrets: {e}")))?;
        let o = match what {
            FollowUp::Retry => {
                let failed_log = folder.join(s3migrate::ledger::FAILED_LOG);
                if !nonempty(&failed_log) {
                    return Err(conflict(format!(
                        "job {id} has no failed keys to retry ({} is empty or absent)",
                        failed_log.display()
                    )));
                }
                MigrateOptions {
                    failed_to_folder: Some(dir.join(format!("retry-{next_id}"))),
                    ..again(o, folder)
                }
            }
            FollowUp::Verify | FollowUp::Repair => MigrateOptions {
                verify: true,
                verify_only: true,
                repair: what == FollowUp::Repair,
                // Keys only on the destination count only against the
                // whole source, never a key list.
                src_list: true,
                ..again(o, folder)
            },
            FollowUp::Reverse => {
                let writes = s3migrate::verify::List::ClientWrites.dir(&folder);
                if keylist::validate(&writes).is_err() {
                    return Err(conflict(format!(
                        "job {id}'s folder has no list of client writes ({}): verify the bucket \
                         first (a verify follow-up of job {id}), and a reverse copy has nothing \
                         to do if clients wrote nothing",
                        writes.display()
                    )));
                }
                std::mem::swap(&mut secrets.src_secret, &mut secrets.dest_secret);
                MigrateOptions {
                    src_url: o.dest_url.clone(),
                    src_bucket: o.dest_bucket.clone(),
                    src_key: o.dest_key.clone(),
                    src_region: o.dest_region.clone(),
                    dest_url: o.src_url.clone(),
                    dest_bucket: o.src_bucket.clone(),
                    dest_key: o.src_key.clone(),
                    dest_region: o.src_region.clone(),
                    src_ca_file: o.dest_ca_file.clone(),
                    dest_ca_file: o.src_ca_file.clone(),
                    src_folder: Some(writes),
                    // Its own folder: its records are of the source.
                    dest_folder: None,
                    delete_journal: None,
                    // The bucket is blocked: no client writes either side.
                    overwrite_differing: true,
                    allow_overwrite: true,
                    ..again(o, PathBuf::new())
                }
            }
        };
        let view = self.start(StartJobRequest {
            spec: JobSpec::Migrate(o),
            secrets,
        })?;
        if let Some(job) = self.lock().jobs.get(&id) {
            job.log(&format!("{}: job {}", what.as_str(), view.status.id));
        }
        Ok(view)
    }

    /// Every job, by id.
    pub fn list(&self) -> Vec<JobView> {
        let parts: Vec<ViewParts> = self.lock().jobs.values().map(parts).collect();
        parts.into_iter().map(ViewParts::into_view).collect()
    }

    pub fn show(&self, id: u64) -> Result<JobView, Refusal> {
        let p = parts(self.lock().jobs.get(&id).ok_or_else(|| no_such_job(id))?);
        Ok(p.into_view())
    }

    /// The last `lines` lines of the job's log.
    pub fn logs(&self, id: u64, lines: usize) -> Result<JobLogs, Refusal> {
        let dir = self
            .lock()
            .jobs
            .get(&id)
            .ok_or_else(|| no_such_job(id))?
            .dir
            .clone();
        let (lines, truncated) = joblog::tail(&dir.join(store::LOG_FILE), lines.min(MAX_LOG_LINES))
            .map_err(|e| Refusal::internal(format!("cannot read the job's log: {e}")))?;
        Ok(JobLogs {
            id,
            lines,
            truncated,
        })
    }

    pub fn pause(self: &Arc<Self>, id: u64) -> Result<JobView, Refusal> {
        self.refuse_if_stopping()?;
        let mut inner = self.lock();
        let job = inner.jobs.get_mut(&id).ok_or_else(|| no_such_job(id))?;
        let step = transition(job.rec.status.state, Verb::Pause, job.run())
            .map_err(|r| refused(job, Verb::Pause, r))?;
        match step {
            Step::PauseQueued => {
                set_state(job, step.next(job.rec.status.state));
                save(job)?;
                job.log("paused (it was queued)");
            }
            Step::PauseRun => {
                set_state(job, step.next(job.rec.status.state));
                save(job)?;
                job.steer().pause();
                job.log("paused: no new keys are handed out; the ones in flight finish");
            }
            _ => {}
        }
        metrics::job_state(&job.labels, job.rec.status.state);
        let p = parts(job);
        drop(inner);
        Ok(p.into_view())
    }

    pub fn resume(self: &Arc<Self>, id: u64) -> Result<JobView, Refusal> {
        self.refuse_if_stopping()?;
        let mut inner = self.lock();
        let job = inner.jobs.get(&id).ok_or_else(|| no_such_job(id))?;
        if job.rec.status.state == JobState::Failed
            && let Some(other) = inner.jobs.values().find(|j| {
                j.rec.status.id != id
                    && !j.rec.status.state.is_final()
                    && j.rec.folder == job.rec.folder
            })
        {
            return Err(conflict(format!(
                "job {} ({}) works in {} now; two jobs must not share a folder",
                other.rec.status.id,
                other.rec.status.state,
                other.rec.folder.display()
            )));
        }
        let job = inner.jobs.get_mut(&id).expect("found above");
        let step = transition(job.rec.status.state, Verb::Resume, job.run())
            .map_err(|r| refused(job, Verb::Resume, r))?;
        let requeued = matches!(step, Step::Requeue { .. });
        match step {
            Step::ResumeRun => {
                set_state(job, step.next(job.rec.status.state));
                save(job)?;
                job.steer().resume();
                job.log("resumed");
            }
            Step::Requeue { failed: false } => {
                set_state(job, step.next(job.rec.status.state));
                save(job)?;
                job.log("resumed: queued to run from its checkpoint");
            }
            Step::Requeue { failed: true } => {
                set_state(job, step.next(job.rec.status.state));
                job.rec.status.finished_at = None;
                job.rec.status.last_error = None;
                save(job)?;
                job.log("resumed after a failure: queued to run from its checkpoint");
            }
            _ => {}
        }
        metrics::job_state(&job.labels, job.rec.status.state);
        drop(inner);
        if requeued {
            self.schedule();
        }
        self.show(id)
    }

    /// Cancel a job. A running copy checkpoints first (the keys in flight
    /// finish); the answer waits for that, up to a limit.
    pub async fn cancel(self: &Arc<Self>, id: u64) -> Result<JobView, Refusal> {
        self.refuse_if_stopping()?;
        let mut ended = {
            let mut inner = self.lock();
            let job = inner.jobs.get_mut(&id).ok_or_else(|| no_such_job(id))?;
            let state = job.rec.status.state;
            match transition(state, Verb::Cancel, job.run())
                .map_err(|r| refused(job, Verb::Cancel, r))?
            {
                Step::CancelNow => {
                    finish(job, JobState::Cancelled);
                    save(job)?;
                    job.log(&format!("cancelled (it was {state})"));
                    metrics::job_state(&job.labels, job.rec.status.state);
                    return self.show_locked(&inner, id);
                }
                Step::StopRun => {
                    let live = job.live.as_mut().expect("a run to stop");
                    live.stop = Some(Stop::Cancel);
                    let ended = live.ended.clone();
                    let steer = live.steer.clone();
                    job.rec.cancel_requested = true;
                    job.rec.status.updated_at = now_rfc3339();
                    save(job)?;
                    if let Some(how) = steer.stop() {
                        job.log(&format!("cancelling: {how}"));
                    }
                    ended
                }
                _ => return self.show_locked(&inner, id),
            }
        };
        let _ = tokio::time::timeout(CANCEL_WAIT, ended.wait_for(|e| *e)).await;
        self.show(id)
    }

    fn show_locked(&self, inner: &Inner, id: u64) -> Result<JobView, Refusal> {
        let p = parts(inner.jobs.get(&id).ok_or_else(|| no_such_job(id))?);
        Ok(p.into_view())
    }

    /// Start runs while slots are free: jobs an earlier agent left running
    /// first, then the queue by id. Running jobs beyond the limit (after
    /// the limit was lowered) go back to the queue.
    pub fn schedule(self: &Arc<Self>) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        let max = self.max_running.load(Ordering::SeqCst);
        let mut inner = self.lock();
        let mut running = inner.jobs.values().filter(|j| j.live.is_some()).count();
        let mut order: Vec<u64> = inner
            .jobs
            .values()
            .filter(|j| j.live.is_none() && j.rec.status.state == JobState::Running)
            .map(|j| j.rec.status.id)
            .collect();
        order.extend(
            inner
                .jobs
                .values()
                .filter(|j| j.rec.status.state == JobState::Queued)
                .map(|j| j.rec.status.id),
        );
        for id in order {
            let job = inner.jobs.get_mut(&id).expect("listed above");
            if running >= max {
                if job.rec.status.state == JobState::Running {
                    set_state(job, JobState::Queued);
                    let _ = save(job);
                    job.log("queued: more jobs were running than max_running_jobs allows");
                }
                continue;
            }
            self.launch(job);
            running += 1;
        }
    }

    /// Start one run of `job`.
    fn launch(self: &Arc<Self>, job: &mut Job) {
        let earlier_runs = job.rec.status.attempts;
        job.rec.status.attempts += 1;
        set_state(job, JobState::Running);
        job.rec.status.started_at.get_or_insert_with(now_rfc3339);
        job.rec.status.interrupted = None;
        job.rec.status.last_error = None;
        if save(job).is_err() {
            // Run anyway: the state on disk says queued or running, and
            // both resume the job after a restart.
            job.log("warning: the job's state could not be saved");
        }
        job.log(&format!("run {} started", job.rec.status.attempts));
        metrics::job_state(&job.labels, job.rec.status.state);
        let (ended_tx, ended) = watch::channel(false);
        let info = Arc::new(LiveInfo::default());
        let id = job.rec.status.id;
        let mgr = self.clone();
        let (steer, run) = runner(
            &job.spec,
            Common {
                job_dir: job.dir.clone(),
                folder: job.rec.folder.clone(),
                created_at: job.rec.status.created_at.clone(),
                earlier_runs,
                live: info.clone(),
                labels: job.labels.clone(),
            },
        );
        job.live = Some(Live {
            steer,
            info,
            stop: None,
            ended,
        });
        tokio::spawn(async move {
            let end = run.await;
            mgr.run_ended(id, end);
            let _ = ended_tx.send(true);
        });
    }

    /// Record how a run ended, then fill the freed slot.
    fn run_ended(self: &Arc<Self>, id: u64, end: RunEnd) {
        {
            let mut inner = self.lock();
            let Some(job) = inner.jobs.get_mut(&id) else {
                return;
            };
            let live = job.live.take();
            let stop = live.as_ref().and_then(|l| l.stop);
            if let Some(line) = live.as_ref().and_then(|l| l.info.progress()) {
                job.rec.status.progress = Some(line);
            }
            match end {
                RunEnd::Completed { find } => {
                    job.rec.status.find = find;
                    finish(job, JobState::Completed);
                    job.log("completed");
                }
                RunEnd::Failed(why) => {
                    finish(job, JobState::Failed);
                    job.log(&format!("failed: {why}"));
                    tracing::warn!(job = id, error = %why, "job failed");
                    job.rec.status.last_error = Some(why);
                }
                RunEnd::Stopped if stop == Some(Stop::Shutdown) && !job.rec.cancel_requested => {
                    let at = last_key(&job.rec.folder);
                    let note = format!(
                        "the agent stopped at {}: checkpointed{at}; {}",
                        now_rfc3339(),
                        after_stop(job.rec.status.state)
                    );
                    job.log(&note);
                    job.rec.status.interrupted = Some(note);
                    job.rec.status.updated_at = now_rfc3339();
                }
                RunEnd::Stopped if stop == Some(Stop::Cancel) || job.rec.cancel_requested => {
                    finish(job, JobState::Cancelled);
                    let at = last_key(&job.rec.folder);
                    job.log(&format!("cancelled: checkpointed{at}"));
                }
                RunEnd::Stopped => {
                    finish(job, JobState::Failed);
                    job.rec.status.last_error = Some("the run stopped unexpectedly".into());
                    job.log("failed: the run stopped unexpectedly");
                }
            }
            let _ = save(job);
            metrics::job_state(&job.labels, job.rec.status.state);
            tracing::info!(job = id, state = %job.rec.status.state, "job run ended");
        }
        self.schedule();
    }

    /// Stop: take no more changes, checkpoint every copy (as a cancel,
    /// but recorded as interrupted, to resume at the next start), wait up
    /// to `grace` for them, and note the runs that were cut.
    pub async fn shutdown(self: &Arc<Self>, grace: Duration, signal: &str) {
        self.stopping.store(true, Ordering::SeqCst);
        let mut waits = Vec::new();
        {
            let mut inner = self.lock();
            for job in inner.jobs.values_mut() {
                let Some(live) = job.live.as_mut() else {
                    continue;
                };
                live.stop = Some(Stop::Shutdown);
                if live.steer.stop().is_some() {
                    waits.push(live.ended.clone());
                }
            }
        }
        let live = waits.len();
        if live > 0 {
            tracing::info!(
                signal,
                jobs = live,
                grace_secs = grace.as_secs(),
                "stopping: checkpointing the running copies and watches"
            );
        }
        let all = futures::future::join_all(waits.iter_mut().map(|w| async move {
            let _ = w.wait_for(|e| *e).await;
        }));
        let _ = tokio::time::timeout(grace, all).await;

        let mut inner = self.lock();
        for job in inner.jobs.values_mut() {
            if job.live.is_none() {
                continue;
            }
            // A scan, or a copy that did not checkpoint in time: its
            // watermark is safe whatever the moment; it runs again.
            let at = last_key(&job.rec.folder);
            let note = format!(
                "the agent stopped ({signal}) at {} before this run finished; cut{at}; {}",
                now_rfc3339(),
                after_stop(job.rec.status.state)
            );
            job.log(&note);
            tracing::warn!(job = job.rec.status.id, "run cut at shutdown");
            job.rec.status.interrupted = Some(note);
            job.rec.status.updated_at = now_rfc3339();
            let _ = save(job);
        }
        tracing::info!(signal, "ferry-agent stopped");
    }

    /// Publishes the job counts every few seconds, forever.
    pub async fn publish_metrics_forever(self: Arc<Self>) {
        loop {
            let counts: Vec<(JobState, usize)> = {
                let inner = self.lock();
                JobState::ALL
                    .iter()
                    .map(|s| {
                        (
                            *s,
                            inner
                                .jobs
                                .values()
                                .filter(|j| j.rec.status.state == *s)
                                .count(),
                        )
                    })
                    .collect()
            };
            metrics::job_counts(&counts);
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}

/// `o` run again in `folder`: every key of the share, from the start, and
/// only copies (what each follow-up sets on top).
fn again(o: MigrateOptions, folder: PathBuf) -> MigrateOptions {
    MigrateOptions {
        dest_folder: Some(folder),
        src_folder: None,
        src_list: false,
        failed_to_folder: None,
        start_after: None,
        first: None,
        dry_run: false,
        verify: false,
        verify_only: false,
        repair: false,
        overwrite_differing: false,
        ..o
    }
}

fn parts(job: &Job) -> ViewParts {
    ViewParts {
        rec: job.rec.clone(),
        spec: job.spec.clone(),
        progress: job.live.as_ref().and_then(|l| l.info.progress()),
    }
}

/// What becomes of a job whose run an agent stop ended.
fn after_stop(state: JobState) -> &'static str {
    if state == JobState::Paused {
        "it stays paused"
    } else {
        "it resumes by itself when the agent starts"
    }
}

fn set_state(job: &mut Job, state: JobState) {
    job.rec.status.state = state;
    job.rec.status.updated_at = now_rfc3339();
}

fn finish(job: &mut Job, state: JobState) {
    set_state(job, state);
    job.rec.status.finished_at = Some(job.rec.status.updated_at.clone());
}

/// ` at <last line of migrate.log>`, when there is one.
fn last_key(folder: &Path) -> String {
    match ferry_s3::durable::last_line(&folder.join(s3migrate::ledger::MIGRATE_LOG)) {
        Ok(Some(l)) => format!(" at {l:?}"),
        _ => String::new(),
    }
}
