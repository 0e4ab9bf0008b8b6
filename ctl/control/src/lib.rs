//! Types shared by `ferryctl`, `ferry-proxy` and `ferry-agent`: the control
//! API lives here so that both daemons and the CLI agree on one schema, with
//! the small blocking client `ferryctl` uses to speak it, and the admin
//! socket both daemons serve ([`socket`]).

pub mod api;
pub mod cli;
pub mod client;
mod job_client;
pub mod jobs;
pub mod journal;
pub mod keylist;
pub mod socket;

pub use api::{
    ApiError, AttachRequest, BucketList, BucketView, Mode, ModeChange, Selector, UpdateRequest,
    UpdateResponse, check_bucket_name, codes,
};
pub use client::{Client, ClientError, DEFAULT_AGENT_SOCKET, DEFAULT_PROXY_SOCKET, RawResponse};
pub use jobs::{
    FindOptions, JobKind, JobList, JobLogs, JobSecrets, JobSpec, JobState, JobView, MigrateOptions,
    PassSummaryView, StartJobRequest,
};
