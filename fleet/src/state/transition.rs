//! The mode rules, as pure functions (the whole matrix is tested below).
//!
//! | from \ to | ready | forward | migrate |
//! |---|---|---|---|
//! | ready | no change | yes | refused: pass through forward |
//! | forward | yes (rollback) | no change | yes |
//! | migrate | `--force` only (reverse copy first) | `--force` only (reverse copy first) | no change |
//!
//! Detach: ready yes; forward refused (roll back to ready first); migrate
//! once `ferryctl verify` has passed and recorded it, or with `--force`.

use ferry_control::{Mode, codes};

/// An allowed mode change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Already in that mode: nothing to save.
    NoChange,
    Change,
}

/// A refused mode change. The message is one line for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error(
        "cannot go from ready straight to migrate: set forward mode first \
         (ready -> forward -> migrate), so that clients reach the source through the \
         proxy before writes start landing on the target"
    )]
    SkipsForward,
    #[error(
        "leaving migrate mode for {to} is refused without --force: since migrate mode was \
         set, client writes have gone to the target only, so the source lacks them; roll back \
         by reverse copy (target -> source): `block`, `ferryctl rollback plan BUCKET --run`, \
         then `update --mode {to} --force` and `unblock`"
    )]
    ReverseCopyRequired { to: Mode },
}

impl TransitionError {
    /// The control-API error code.
    pub fn code(&self) -> &'static str {
        match self {
            TransitionError::SkipsForward => codes::INVALID_TRANSITION,
            TransitionError::ReverseCopyRequired { .. } => codes::REVERSE_COPY_REQUIRED,
        }
    }
}

/// May a bucket in mode `from` be set to `to`?
pub fn check_transition(from: Mode, to: Mode, force: bool) -> Result<Transition, TransitionError> {
    use Mode::*;
    match (from, to) {
        (Ready, Ready) | (Forward, Forward) | (Migrate, Migrate) => Ok(Transition::NoChange),
        (Ready, Forward) | (Forward, Migrate) | (Forward, Ready) => Ok(Transition::Change),
        (Ready, Migrate) => Err(TransitionError::SkipsForward),
        (Migrate, Ready | Forward) if force => Ok(Transition::Change),
        (Migrate, to) => Err(TransitionError::ReverseCopyRequired { to }),
    }
}

/// A refused detach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DetachError {
    #[error(
        "cannot detach in forward mode: clients are served from the source through this \
         proxy; roll back with `update --mode ready` first, then detach"
    )]
    Forwarding,
    #[error(
        "detach in migrate mode needs a passing verify since migrate mode was set: run \
         `ferryctl verify <bucket>` (it records the pass), or `detach --force` if you have \
         checked the copy another way"
    )]
    NotVerified,
}

impl DetachError {
    pub fn code(&self) -> &'static str {
        codes::DETACH_REFUSED
    }
}

/// May a bucket in mode `mode` be detached, `verified` or not?
pub fn check_detach(mode: Mode, verified: bool, force: bool) -> Result<(), DetachError> {
    match mode {
        Mode::Ready => Ok(()),
        Mode::Forward => Err(DetachError::Forwarding),
        Mode::Migrate if force || verified => Ok(()),
        Mode::Migrate => Err(DetachError::NotVerified),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Mode::*;

    #[test]
    fn full_transition_matrix() {
        use Transition::*;
        type Want = Result<Transition, TransitionError>;
        let skip = Err(TransitionError::SkipsForward);
        let reverse = |to| Err(TransitionError::ReverseCopyRequired { to });
        // (from, to, want without force, want with force)
        let matrix: [(Mode, Mode, Want, Want); 9] = [
            (Ready, Ready, Ok(NoChange), Ok(NoChange)),
            (Ready, Forward, Ok(Change), Ok(Change)),
            (Ready, Migrate, skip, skip),
            (Forward, Ready, Ok(Change), Ok(Change)),
            (Forward, Forward, Ok(NoChange), Ok(NoChange)),
            (Forward, Migrate, Ok(Change), Ok(Change)),
            (Migrate, Ready, reverse(Ready), Ok(Change)),
            (Migrate, Forward, reverse(Forward), Ok(Change)),
            (Migrate, Migrate, Ok(NoChange), Ok(NoChange)),
        ];
        for (from, to, plain, forced) in matrix {
            assert_eq!(check_transition(from, to, false), plain, "{from} -> {to}");
            assert_eq!(
                check_transition(from, to, true),
                forced,
                "{from} -> {to} --force"
            );
        }
    }

    #[test]
    fn full_detach_matrix() {
        let matrix = [
            (Ready, Ok(()), Ok(())),
            (
                Forward,
                Err(DetachError::Forwarding),
                Err(DetachError::Forwarding),
            ),
            (Migrate, Err(DetachError::NotVerified), Ok(())),
        ];
        for (mode, plain, forced) in matrix {
            assert_eq!(check_detach(mode, false, false), plain, "{mode}");
            assert_eq!(check_detach(mode, false, true), forced, "{mode} --force");
            let verified = if mode == Migrate { Ok(()) } else { plain };
            assert_eq!(check_detach(mode, true, false), verified, "{mode} verified");
        }
    }

    #[test]
    fn refusals_explain_what_to_do() {
        let e = check_transition(Migrate, Ready, false).unwrap_err();
        assert_eq!(e.code(), codes::REVERSE_COPY_REQUIRED);
        let msg = e.to_string();
        for want in [
            "reverse copy",
            "target -> source",
            "rollback plan",
            "--mode ready --force",
        ] {
            assert!(msg.contains(want), "{want:?} in {msg}");
        }
        assert_eq!(
            check_transition(Ready, Migrate, true).unwrap_err().code(),
            codes::INVALID_TRANSITION
        );
        let msg = check_detach(Migrate, false, false).unwrap_err().to_string();
        assert!(
            msg.contains("ferryctl verify") && msg.contains("--force"),
            "{msg}"
        );
        for e in [
            TransitionError::SkipsForward.to_string(),
            TransitionError::ReverseCopyRequired { to: Forward }.to_string(),
            DetachError::Forwarding.to_string(),
            DetachError::NotVerified.to_string(),
        ] {
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }
}
