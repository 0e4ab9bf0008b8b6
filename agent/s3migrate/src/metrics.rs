//! Prometheus metrics of `s3migrate` (`--metrics-addr`). Every name is here;
//! labels come from small fixed sets.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::gauge;

use super::progress::Snapshot;

pub const OBJECTS: &str = "ferry_migrate_objects";
pub const BYTES: &str = "ferry_migrate_bytes";
pub const WORK_IN_FLIGHT: &str = "ferry_migrate_work_in_flight";
pub const REMAINING: &str = "ferry_migrate_remaining_objects";
pub const OBJECT_RATE: &str = "ferry_migrate_objects_per_second";
pub const BYTE_RATE: &str = "ferry_migrate_bytes_per_second";
pub const PASS: &str = "ferry_migrate_pass";
pub const PASS_SECONDS: &str = "ferry_migrate_pass_duration_seconds";
pub const PASS_FAILURES: &str = "ferry_migrate_pass_failures";

pub fn install(addr: SocketAddr) -> anyhow::Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))
}

/// Publishes the current pass's counters; called on every progress tick.
pub fn publish(pass: u32, s: &Snapshot, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(0.001);
    gauge!(PASS).set(pass as f64);
    let dry_run = ("would_copy", s.would_copy);
    for (result, v) in s.by_result().into_iter().chain([dry_run]) {
        gauge!(OBJECTS, "result" => result).set(v as f64);
    }
    gauge!(BYTES, "direction" => "download").set(s.dl_bytes as f64);
    gauge!(BYTES, "direction" => "upload").set(s.ul_bytes as f64);
    gauge!(WORK_IN_FLIGHT).set(s.work as f64);
    let total = s.total_hint.max(s.obj);
    gauge!(REMAINING).set(total.saturating_sub(s.handled()) as f64);
    gauge!(OBJECT_RATE).set(s.upld as f64 / secs);
    gauge!(BYTE_RATE).set(s.ul_bytes as f64 / secs);
}

pub fn pass_done(elapsed: Duration, errors: &std::collections::BTreeMap<String, u64>) {
    gauge!(PASS_SECONDS).set(elapsed.as_secs_f64());
    for (class, n) in errors {
        gauge!(PASS_FAILURES, "class" => class.clone()).set(*n as f64);
    }
}
