//! The agent's job routes on [`Client`] (see [`crate::jobs`] for the schema).

use crate::client::{Client, ClientError};
use crate::jobs::{FollowUp, JobList, JobLogs, JobView, StartJobRequest};

impl Client {
    /// `POST /v1/jobs`: queue a job; answers it as created.
    pub fn start_job(&self, req: &StartJobRequest) -> Result<JobView, ClientError> {
        self.call("POST", "/v1/jobs", Some(req))
    }

    /// `GET /v1/jobs`, by id.
    pub fn jobs(&self) -> Result<Vec<JobView>, ClientError> {
        Ok(self.call::<JobList>("GET", "/v1/jobs", None::<&()>)?.jobs)
    }

    /// `GET /v1/jobs/{id}`.
    pub fn job(&self, id: u64) -> Result<JobView, ClientError> {
        self.call("GET", &format!("/v1/jobs/{id}"), None::<&()>)
    }

    /// `POST /v1/jobs/{id}/pause`.
    pub fn pause_job(&self, id: u64) -> Result<JobView, ClientError> {
        self.call("POST", &format!("/v1/jobs/{id}/pause"), None::<&()>)
    }

    /// `POST /v1/jobs/{id}/resume`.
    pub fn resume_job(&self, id: u64) -> Result<JobView, ClientError> {
        self.call("POST", &format!("/v1/jobs/{id}/resume"), None::<&()>)
    }

    /// `POST /v1/jobs/{id}/cancel`.
    pub fn cancel_job(&self, id: u64) -> Result<JobView, ClientError> {
        self.call("POST", &format!("/v1/jobs/{id}/cancel"), None::<&()>)
    }

    /// `POST /v1/jobs/{id}/{retry|verify|repair|reverse}`: a new copy job
    /// made from copy job `id` ([`FollowUp`]); answers the new job.
    pub fn follow_up(&self, id: u64, what: FollowUp) -> Result<JobView, ClientError> {
        self.call(
            "POST",
            &format!("/v1/jobs/{id}/{}", what.as_str()),
            None::<&()>,
        )
    }

    /// `GET /v1/jobs/{id}/logs?lines=N`: the last `lines` lines of its log.
    pub fn job_logs(&self, id: u64, lines: usize) -> Result<JobLogs, ClientError> {
        self.call(
            "GET",
            &format!("/v1/jobs/{id}/logs?lines={lines}"),
            None::<&()>,
        )
    }
}
