//! The job state machine as a pure function: what a user's verb does to a
//! job in a given state, given what its live run (if any) can do. The
//! manager applies the answer (saves the state, tells the run, logs); the
//! proxy's mode changes are decided the same way
//! (`proxy/src/state/transition.rs`).
//!
//! `queued → running ⇄ paused`, then `completed`, `failed` or `cancelled`;
//! a failed job may be resumed (see [`JobState`]).

use ferry_control::JobState;

/// What a user asks of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Pause,
    Resume,
    Cancel,
}

/// What the job's current run can be told, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// No run: queued, paused across a restart, or ended.
    None,
    /// A scan: it cannot pause or stop midway.
    Fixed,
    /// A watch: it can stop after its current set, not pause.
    Stoppable,
    /// A copy: it can pause, resume and stop at a checkpoint.
    Steerable,
}

/// What the manager does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The job is already where the verb leads.
    Nothing,
    /// A queued job is paused: it will not start until resumed.
    PauseQueued,
    /// The run stops handing out work; the job is paused.
    PauseRun,
    /// The paused run goes on; the job is running.
    ResumeRun,
    /// The job is queued again, to run from its checkpoint (`failed`: its
    /// error is cleared).
    Requeue { failed: bool },
    /// The job has no run: it is cancelled now.
    CancelNow,
    /// The run is told to stop; the job is cancelled when it ends.
    StopRun,
}

impl Step {
    /// The state the job is in once the step is taken (`StopRun` leaves the
    /// state to the run's end).
    pub fn next(self, now: JobState) -> JobState {
        match self {
            Step::Nothing | Step::StopRun => now,
            Step::PauseQueued | Step::PauseRun => JobState::Paused,
            Step::ResumeRun => JobState::Running,
            Step::Requeue { .. } => JobState::Queued,
            Step::CancelNow => JobState::Cancelled,
        }
    }
}

/// Why a verb is refused (409).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Pausing a run that cannot pause (a scan or a watch).
    CannotPauseMidway,
    /// Cancelling a run that cannot stop (a scan).
    CannotStopMidway,
    /// The verb does not apply to this state.
    WrongState(JobState),
}

/// The step `verb` takes from `state` with `run`, or why it is refused.
pub fn transition(state: JobState, verb: Verb, run: Run) -> Result<Step, Refused> {
    use JobState::*;
    match (verb, state, run) {
        (Verb::Pause, Paused, _) => Ok(Step::Nothing),
        (Verb::Pause, Queued, _) => Ok(Step::PauseQueued),
        (Verb::Pause, Running, Run::Steerable) => Ok(Step::PauseRun),
        (Verb::Pause, Running, _) => Err(Refused::CannotPauseMidway),
        (Verb::Resume, Running | Queued, _) => Ok(Step::Nothing),
        (Verb::Resume, Paused, Run::Steerable) => Ok(Step::ResumeRun),
        (Verb::Resume, Paused, _) => Ok(Step::Requeue { failed: false }),
        (Verb::Resume, Failed, _) => Ok(Step::Requeue { failed: true }),
        (Verb::Cancel, Cancelled, _) => Ok(Step::Nothing),
        (Verb::Cancel, s, _) if s.is_final() => Err(Refused::WrongState(s)),
        (Verb::Cancel, _, Run::None) => Ok(Step::CancelNow),
        (Verb::Cancel, _, Run::Fixed) => Err(Refused::CannotStopMidway),
        (Verb::Cancel, _, Run::Stoppable | Run::Steerable) => Ok(Step::StopRun),
        (Verb::Pause | Verb::Resume, s, _) => Err(Refused::WrongState(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    const RUNS: [Run; 4] = [Run::None, Run::Fixed, Run::Stoppable, Run::Steerable];
    const VERBS: [Verb; 3] = [Verb::Pause, Verb::Resume, Verb::Cancel];

    #[test]
    fn a_copy_pauses_resumes_and_cancels_at_a_checkpoint() {
        let copy = Run::Steerable;
        assert_eq!(transition(Running, Verb::Pause, copy), Ok(Step::PauseRun));
        assert_eq!(transition(Paused, Verb::Resume, copy), Ok(Step::ResumeRun));
        assert_eq!(transition(Running, Verb::Cancel, copy), Ok(Step::StopRun));
        assert_eq!(transition(Paused, Verb::Cancel, copy), Ok(Step::StopRun));
    }

    #[test]
    fn scans_and_watches_cannot_pause_and_a_scan_cannot_stop() {
        for run in [Run::Fixed, Run::Stoppable] {
            assert_eq!(
                transition(Running, Verb::Pause, run),
                Err(Refused::CannotPauseMidway)
            );
        }
        assert_eq!(
            transition(Running, Verb::Cancel, Run::Fixed),
            Err(Refused::CannotStopMidway)
        );
        assert_eq!(
            transition(Running, Verb::Cancel, Run::Stoppable),
            Ok(Step::StopRun)
        );
    }

    #[test]
    fn without_a_run_a_job_is_queued_or_cancelled_at_once() {
        assert_eq!(
            transition(Queued, Verb::Pause, Run::None),
            Ok(Step::PauseQueued)
        );
        // Paused across a restart: its run is gone, so it queues.
        assert_eq!(
            transition(Paused, Verb::Resume, Run::None),
            Ok(Step::Requeue { failed: false })
        );
        assert_eq!(
            transition(Failed, Verb::Resume, Run::None),
            Ok(Step::Requeue { failed: true })
        );
        for s in [Queued, Paused] {
            assert_eq!(transition(s, Verb::Cancel, Run::None), Ok(Step::CancelNow));
        }
    }

    #[test]
    fn asking_for_the_state_a_job_is_in_changes_nothing() {
        for run in RUNS {
            assert_eq!(transition(Paused, Verb::Pause, run), Ok(Step::Nothing));
            assert_eq!(transition(Cancelled, Verb::Cancel, run), Ok(Step::Nothing));
            for s in [Running, Queued] {
                assert_eq!(transition(s, Verb::Resume, run), Ok(Step::Nothing));
            }
        }
    }

    #[test]
    fn completed_and_cancelled_are_final() {
        for run in RUNS {
            for verb in VERBS {
                for s in [Completed, Cancelled] {
                    let step = transition(s, verb, run);
                    assert!(
                        step == Ok(Step::Nothing) || step == Err(Refused::WrongState(s)),
                        "{verb:?} on {s}: {step:?}"
                    );
                }
            }
            // Failed is final too, but may be resumed.
            assert_eq!(
                transition(Failed, Verb::Pause, run),
                Err(Refused::WrongState(Failed))
            );
            assert_eq!(
                transition(Failed, Verb::Cancel, run),
                Err(Refused::WrongState(Failed))
            );
        }
    }

    #[test]
    fn every_step_lands_in_a_state_the_machine_allows() {
        for s in JobState::ALL {
            for verb in VERBS {
                for run in RUNS {
                    let Ok(step) = transition(s, verb, run) else {
                        continue;
                    };
                    let next = step.next(s);
                    let allowed = match (s, next) {
                        (a, b) if a == b => true,
                        (Queued, Paused) => true,
                        (Queued | Running | Paused, Cancelled) => true,
                        (Running, Paused) => true,
                        (Paused, Running | Queued) => true,
                        (Failed, Queued) => true,
                        _ => false,
                    };
                    assert!(allowed, "{verb:?} with {run:?}: {s} -> {next}");
                }
            }
        }
    }
}
