//! Why a command failed, and the exit code each reason gives. The codes
//! are a contract with scripts; `--help` and docs/ferryctl.md list them.

use ferry_control::{ApiError, ClientError, codes};
use serde::Serialize;

/// What went wrong, by exit code.
#[derive(Debug)]
pub enum Failure {
    /// Exit 1 (4 for a conflict, 3 when the fleet's etcd was not reached):
    /// the daemon or the fleet refused.
    Refused(ApiError),
    /// Exit 1: a check ran and failed; its report is already printed.
    CheckFailed(String),
    /// Exit 2: bad usage, unreadable input or config.
    Usage(String),
    /// Exit 3: the daemon (or etcd) could not be reached, or gave no proper
    /// answer.
    Unreachable(String),
}

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_UNREACHABLE: u8 = 3;
/// Another change of the bucket was made or is under way.
pub const EXIT_CONFLICT: u8 = 4;

/// For `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 done (every check passed); 1 refused, or a \
     check failed (the reason on stderr); 2 usage, input or config error; 3 the daemon or \
     etcd could not be reached (is the service running? is your user in group `ferry`?); \
     4 conflict: another change of the bucket was made or is under way, and this one changed \
     nothing (see `show`, then run it again).";

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Refused(e) if e.code == codes::CONFLICT => EXIT_CONFLICT,
            Failure::Refused(e) if e.code == codes::FLEET_UNAVAILABLE => EXIT_UNREACHABLE,
            Failure::Refused(_) | Failure::CheckFailed(_) => EXIT_FAILED,
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Unreachable(_) => EXIT_UNREACHABLE,
        }
    }

    /// The failure as `--output json` prints it on stdout; none for a
    /// failed check, whose report is already there.
    pub fn json(&self) -> Option<FailureJson<'_>> {
        let (code, message) = match self {
            Failure::Refused(e) => (e.code.as_str(), e.message.as_str()),
            Failure::CheckFailed(_) => return None,
            Failure::Usage(m) => ("Usage", m.as_str()),
            Failure::Unreachable(m) => ("Unreachable", m.as_str()),
        };
        Some(FailureJson {
            error: ErrorJson { code, message },
            exit_code: self.exit_code(),
        })
    }

    pub fn message(&self) -> String {
        match self {
            Failure::Refused(e) => e.to_string(),
            Failure::CheckFailed(m) | Failure::Usage(m) | Failure::Unreachable(m) => m.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct FailureJson<'a> {
    error: ErrorJson<'a>,
    exit_code: u8,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    code: &'a str,
    message: &'a str,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        match e {
            ClientError::Api { error, .. } => Failure::Refused(error),
            other => Failure::Unreachable(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_reason() {
        let refused = |code| Failure::Refused(ApiError::new(code, "x"));
        assert_eq!(refused(codes::INVALID_TRANSITION).exit_code(), 1);
        assert_eq!(refused(codes::CONFLICT).exit_code(), 4);
        assert_eq!(refused(codes::FLEET_UNAVAILABLE).exit_code(), 3);
        assert_eq!(Failure::CheckFailed("x".into()).exit_code(), 1);
        assert_eq!(Failure::Usage("x".into()).exit_code(), 2);
        assert_eq!(Failure::Unreachable("x".into()).exit_code(), 3);
    }
}
