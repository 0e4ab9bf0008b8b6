//! The agent's Prometheus metrics (`metrics_addr`). Every name is here.
//! Labels are bounded: `job_id` (an id; not `job`, which Prometheus sets
//! to the scrape job's name), `kind`, `bucket`, and small fixed sets
//! (`result`, `direction`, `class`, `state`, `change`).
//!
//! Copy gauges describe the job's current pass (they restart at each pass,
//! as the progress line does); the failure classes come from its latest
//! pass summary. The copy engine's own process-wide `ferry_migrate_*`
//! gauges are dropped here: with several jobs in one process they would
//! mix, and the per-job `ferry_agent_migrate_*` ones say the same per job.

use std::net::SocketAddr;

use ferry_control::jobs::FindSummaryView;
use ferry_control::{JobKind, JobState, PassSummaryView};
use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit, gauge,
};
use metrics_exporter_prometheus::{ExporterFuture, PrometheusBuilder, PrometheusRecorder};

use s3migrate::progress::Snapshot;

/// Jobs by state (`state`).
pub const JOBS: &str = "ferry_agent_jobs";
/// 1 for the job's current state, 0 for the others (`state`).
pub const JOB_STATE: &str = "ferry_agent_job_state";
/// Objects of the current pass, by `result`: seen, ignored, existing,
/// copied, failed, skipped_source_gone, skipped_dest_newer.
pub const MIGRATE_OBJECTS: &str = "ferry_agent_migrate_objects";
/// Body bytes of the current pass, by `direction` (download, upload).
pub const MIGRATE_BYTES: &str = "ferry_agent_migrate_bytes";
/// Objects copied per second, over the last few seconds.
pub const MIGRATE_OBJECT_RATE: &str = "ferry_agent_migrate_objects_per_second";
/// Bytes uploaded per second, over the last few seconds.
pub const MIGRATE_BYTE_RATE: &str = "ferry_agent_migrate_bytes_per_second";
/// Keys of the pass not handled yet (known with a key-list source).
pub const MIGRATE_REMAINING: &str = "ferry_agent_migrate_remaining_objects";
/// Objects being copied right now.
pub const MIGRATE_WORK: &str = "ferry_agent_migrate_work_in_flight";
/// The pass running (1 is the full pass).
pub const MIGRATE_PASS: &str = "ferry_agent_migrate_pass";
/// Failed keys of the latest finished pass, by error `class`.
pub const MIGRATE_FAILURES: &str = "ferry_agent_migrate_failures";
/// Files a scan has found so far (its keys).
pub const FIND_FILES: &str = "ferry_agent_find_scanned_files";
/// Key-list chunk files a finished scan wrote.
pub const FIND_CHUNKS: &str = "ferry_agent_find_chunks_written";
/// Incremental sets a watch has written (this run).
pub const WATCH_SETS: &str = "ferry_agent_watch_sets_written";
/// Keys a watch has reported in its sets (this run), by `change`
/// (`changed`, `deleted`).
pub const WATCH_KEYS: &str = "ferry_agent_watch_keys_reported";

/// Names the engine publishes for itself (see the module doc).
const ENGINE_PREFIX: &str = "ferry_migrate_";

/// The labels of one job.
#[derive(Debug, Clone)]
pub struct JobLabels {
    pub job: String,
    pub kind: &'static str,
    pub bucket: String,
}

impl JobLabels {
    pub fn new(id: u64, kind: JobKind, bucket: &str) -> JobLabels {
        JobLabels {
            job: id.to_string(),
            kind: kind.as_str(),
            bucket: bucket.to_owned(),
        }
    }

    fn gauge(&self, name: &'static str) -> Gauge {
        gauge!(name, "job_id" => self.job.clone(), "kind" => self.kind, "bucket" => self.bucket.clone())
    }

    fn gauge_with(&self, name: &'static str, label: &'static str, value: String) -> Gauge {
        gauge!(name, "job_id" => self.job.clone(), "kind" => self.kind, "bucket" => self.bucket.clone(), label => value)
    }
}

/// Serves metrics on `addr`. Call inside the runtime; spawn the future.
pub fn install(addr: SocketAddr) -> Result<ExporterFuture, String> {
    let (recorder, exporter) = PrometheusBuilder::new()
        .with_http_listener(addr)
        .build()
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    metrics::set_global_recorder(AgentRecorder(recorder))
        .map_err(|e| format!("metrics recorder: {e}"))?;
    Ok(exporter)
}

/// The job's state, as one-hot gauges.
pub fn job_state(l: &JobLabels, state: JobState) {
    for s in JobState::ALL {
        l.gauge_with(JOB_STATE, "state", s.as_str().to_owned())
            .set(if s == state { 1.0 } else { 0.0 });
    }
}

/// Jobs by state, across the agent.
pub fn job_counts(counts: &[(JobState, usize)]) {
    for (s, n) in counts {
        gauge!(JOBS, "state" => s.as_str()).set(*n as f64);
    }
}

/// Rates over a recent window, computed by the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rates {
    pub objects_per_sec: f64,
    pub bytes_per_sec: f64,
}

/// A copy's live counters.
pub fn migrate_progress(l: &JobLabels, pass: u32, s: &Snapshot, rates: Rates) {
    l.gauge(MIGRATE_PASS).set(pass as f64);
    for (result, v) in s.by_result() {
        l.gauge_with(MIGRATE_OBJECTS, "result", result.to_owned())
            .set(v as f64);
    }
    l.gauge_with(MIGRATE_BYTES, "direction", "download".to_owned())
        .set(s.dl_bytes as f64);
    l.gauge_with(MIGRATE_BYTES, "direction", "upload".to_owned())
        .set(s.ul_bytes as f64);
    let total = s.total_hint.max(s.obj);
    l.gauge(MIGRATE_REMAINING)
        .set(total.saturating_sub(s.handled()) as f64);
    l.gauge(MIGRATE_WORK).set(s.work as f64);
    l.gauge(MIGRATE_OBJECT_RATE).set(rates.objects_per_sec);
    l.gauge(MIGRATE_BYTE_RATE).set(rates.bytes_per_sec);
}

/// A copy that is not running: nothing in flight, no rate.
pub fn migrate_idle(l: &JobLabels) {
    l.gauge(MIGRATE_WORK).set(0.0);
    l.gauge(MIGRATE_OBJECT_RATE).set(0.0);
    l.gauge(MIGRATE_BYTE_RATE).set(0.0);
}

/// The failure classes of the latest pass summary.
pub fn migrate_failures(l: &JobLabels, last: &PassSummaryView) {
    for (class, n) in &last.errors_by_class {
        l.gauge_with(MIGRATE_FAILURES, "class", class.clone())
            .set(*n as f64);
    }
}

/// A scan's live file count.
pub fn find_progress(l: &JobLabels, files: u64) {
    l.gauge(FIND_FILES).set(files as f64);
}

/// A finished scan.
pub fn find_done(l: &JobLabels, s: &FindSummaryView) {
    l.gauge(FIND_FILES).set(s.files as f64);
    l.gauge(FIND_CHUNKS).set(s.chunks as f64);
}

/// A watch's sets so far.
pub fn watch_sets(l: &JobLabels, s: &ferry_control::jobs::WatchSummaryView) {
    l.gauge(WATCH_SETS).set(s.sets as f64);
    l.gauge_with(WATCH_KEYS, "change", "changed".to_owned())
        .set(s.changed as f64);
    l.gauge_with(WATCH_KEYS, "change", "deleted".to_owned())
        .set(s.deleted as f64);
}

/// The Prometheus recorder, minus the engine's process-wide names.
struct AgentRecorder(PrometheusRecorder);

fn engine(name: &str) -> bool {
    name.starts_with(ENGINE_PREFIX)
}

impl Recorder for AgentRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if !engine(key.as_str()) {
            self.0.describe_counter(key, unit, description);
        }
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if !engine(key.as_str()) {
            self.0.describe_gauge(key, unit, description);
        }
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if !engine(key.as_str()) {
            self.0.describe_histogram(key, unit, description);
        }
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        if engine(key.name()) {
            return Counter::noop();
        }
        self.0.register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        if engine(key.name()) {
            return Gauge::noop();
        }
        self.0.register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        if engine(key.name()) {
            return Histogram::noop();
        }
        self.0.register_histogram(key, metadata)
    }
}
