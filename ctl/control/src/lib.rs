//! What Ferry's programs share: the control API (so that both daemons and
//! `ferryctl` agree on one schema) with the small blocking client
//! `ferryctl` speaks it with; the job options, which are also s3migrate's
//! and s3find's command lines ([`jobs`], [`cli`]); the admin socket both
//! daemons serve ([`socket`]); and the formats both engines read: key
//! lists ([`keylist`]) and the proxy's delete journal ([`journal`]); the
//! users file ([`users`]) and the rule for files that hold secrets
//! ([`private_file`]); the names of the proxy's metrics `ferryctl` reads
//! ([`metrics`]).

pub mod api;
pub mod cli;
pub mod client;
mod job_client;
pub mod jobs;
pub mod journal;
pub mod keylist;
pub mod metrics;
pub mod private_file;
pub mod socket;
pub mod users;

pub use api::{
    ApiError, AttachRequest, BucketList, BucketView, HashShare, Mark, MemberView, Mode, ModeChange,
    Selector, UpdateRequest, UpdateResponse, VerifiedRequest, check_bucket_name, codes,
};
pub use client::{Client, ClientError, DEFAULT_AGENT_SOCKET, DEFAULT_PROXY_SOCKET, RawResponse};
pub use jobs::{
    FindOptions, FollowUp, JobKind, JobList, JobLogs, JobSecrets, JobSpec, JobState, JobStatus,
    JobView, MigrateOptions, PassCounts, PassSummaryView, StartJobRequest, VerifyProblem,
    VerifyReport,
};
