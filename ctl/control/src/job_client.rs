//! The agent's job routes on [`Client`] (see [`crate::jobs`] for the schema).

use crate::client::{Client, ClientError};
use crate::jobs::{JobList, JobLogs, JobView, StartJobRequest};

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

    /// `POST /v1/jobs/{id}/retry`: a new copy of the failed keys of copy
    /// job `id`; answers the new job.
    pub fn retry_job(&self, id: u64) -> Result<JobView, ClientError> {
        self.call("POST", &format!("/v1/jobs/{id}/retry"), None::<&()>)
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
