//! The proxy's Prometheus metrics. Every name is here (those `ferryctl`
//! reads come from [`ferry_control::metrics::proxy`]); labels come from
//! small fixed sets (mode, upstream, status class, S3 error code) plus the
//! attached buckets, whose number the operator controls.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;

use metrics::{Counter, Histogram, counter, gauge, histogram};

pub use ferry_control::metrics::proxy::{MIGRATE_READS, REQUESTS, UPSTREAM_ERRORS};

pub const DURATION: &str = "ferry_proxy_request_duration_seconds";
pub const BYTES_IN: &str = "ferry_proxy_received_bytes_total";
pub const BYTES_OUT: &str = "ferry_proxy_sent_bytes_total";
pub const REFUSED: &str = "ferry_proxy_refused_requests_total";
pub const BUCKET_MODE: &str = "ferry_proxy_bucket_mode";
pub const FLEET_IN_CONTACT: &str = "ferry_fleet_in_contact";

/// One finished request.
pub struct RequestRecord<'a> {
    /// The attached bucket, or `-`.
    pub bucket: &'a str,
    /// `ferry_s3::S3Op::name`: a fixed set.
    pub operation: &'static str,
    pub mode: &'static str,
    pub upstream: &'static str,
    pub status: u16,
    pub elapsed: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

fn status_class(status: u16) -> &'static str {
    match status {
        0 => "none",
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// A request's labels besides its bucket: operation, mode, upstream,
/// status class.
type RequestLabels = (&'static str, &'static str, &'static str, &'static str);

/// The metrics one kind of request updates.
struct RequestHandles {
    requests: Counter,
    duration: Histogram,
    bytes_in: Counter,
    bytes_out: Counter,
}

impl RequestHandles {
    fn new(bucket: &str, (operation, mode, upstream, status): RequestLabels) -> Self {
        RequestHandles {
            requests: counter!(
                REQUESTS,
                "bucket" => bucket.to_owned(),
                "operation" => operation,
                "mode" => mode,
                "upstream" => upstream,
                "status" => status
            ),
            duration: histogram!(DURATION, "mode" => mode, "upstream" => upstream),
            bytes_in: counter!(BYTES_IN, "upstream" => upstream),
            bytes_out: counter!(BYTES_OUT, "upstream" => upstream),
        }
    }
}

thread_local! {
    /// Each worker thread's handles, by bucket, then labels. Looking a
    /// metric up in the registry (its labels copied, hashed and compared)
    /// cost more than the request's other bookkeeping together; the label
    /// sets are bounded (see the module's head) and the recorder keeps
    /// every metric for the process's life, so a handle stays good.
    static REQUEST_HANDLES: RefCell<foldhash::HashMap<String, Vec<(RequestLabels, RequestHandles)>>> =
        RefCell::default();
    static CONNECTION_HANDLES: RefCell<Vec<((&'static str, bool), Counter)>> =
        RefCell::default();
}

pub fn request(r: &RequestRecord<'_>) {
    let labels = (r.operation, r.mode, r.upstream, status_class(r.status));
    REQUEST_HANDLES.with_borrow_mut(|by_bucket| {
        let seen = match by_bucket.get_mut(r.bucket) {
            Some(seen) => seen,
            None => by_bucket.entry(r.bucket.to_owned()).or_default(),
        };
        let i = match seen.iter().position(|(l, _)| *l == labels) {
            Some(i) => i,
            None => {
                seen.push((labels, RequestHandles::new(r.bucket, labels)));
                seen.len() - 1
            }
        };
        let h = &seen[i].1;
        h.requests.increment(1);
        h.duration.record(r.elapsed.as_secs_f64());
        h.bytes_in.increment(r.bytes_in);
        h.bytes_out.increment(r.bytes_out);
    });
}

/// A request the proxy answered itself with an S3 error (bad signature,
/// missing grant, malformed request).
pub fn refused(code: &'static str) {
    counter!(REFUSED, "code" => code).increment(1);
}

pub fn upstream_error(upstream: &'static str, class: &'static str) {
    counter!(UPSTREAM_ERRORS, "upstream" => upstream, "class" => class).increment(1);
}

/// Pingora's error type for an upstream whose name did not resolve
/// (`upstream::resolve`): class `dns`.
pub const DNS_ERROR: pingora::ErrorType = pingora::ErrorType::Custom("DNSError");

/// The class of an upstream failure: a fixed set.
pub fn error_class(e: &pingora::ErrorType) -> &'static str {
    use pingora::ErrorType as E;
    match e {
        e if *e == DNS_ERROR => "dns",
        E::ConnectTimedout | E::ReadTimedout | E::WriteTimedout | E::TLSHandshakeTimedout => {
            "timeout"
        }
        E::ConnectRefused | E::ConnectNoRoute | E::ConnectError | E::BindError => "connect",
        E::TLSHandshakeFailure | E::InvalidCert => "tls",
        E::ConnectionClosed | E::ReadError | E::WriteError => "broken",
        _ => "other",
    }
}

pub const TLS_HANDSHAKES: &str = "ferry_proxy_tls_handshakes_total";

/// A TLS client hello: answered with a certificate, or not (no loaded
/// certificate covers the name).
pub fn tls_handshake(certificate: bool) {
    let result = if certificate { "ok" } else { "no_certificate" };
    counter!(TLS_HANDSHAKES, "result" => result).increment(1);
}

pub const UPSTREAM_CONNECTIONS: &str = "ferry_proxy_upstream_connections_total";

/// A request proxied upstream took a pooled connection (`reused`), or
/// opened one: the share reused is what keeps small requests cheap.
pub fn upstream_connection(upstream: &'static str, reused: bool) {
    CONNECTION_HANDLES.with_borrow_mut(|seen| {
        let key = (upstream, reused);
        if let Some((_, c)) = seen.iter().find(|(k, _)| *k == key) {
            c.increment(1);
            return;
        }
        let label = if reused { "true" } else { "false" };
        let c = counter!(UPSTREAM_CONNECTIONS, "upstream" => upstream, "reused" => label);
        c.increment(1);
        seen.push((key, c));
    });
}

/// 0 ready, 1 forward, 2 migrate: one gauge per attached bucket.
pub fn bucket_mode(bucket: &str, mode: ferry_control::Mode) {
    let v = match mode {
        ferry_control::Mode::Ready => 0.0,
        ferry_control::Mode::Forward => 1.0,
        ferry_control::Mode::Migrate => 2.0,
    };
    gauge!(BUCKET_MODE, "bucket" => bucket.to_owned()).set(v);
}

/// The request latency's histogram buckets, in seconds: from a cached HEAD
/// on loopback (under a millisecond) to a large upload (a minute). Buckets,
/// not a summary, so that a fleet's p99 can be computed across proxies.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// In a fleet: whether this proxy's lease is renewed and it takes writes.
pub fn fleet_in_contact(in_contact: bool) {
    gauge!(FLEET_IN_CONTACT).set(f64::from(u8::from(in_contact)));
}

/// Installs the recorder and returns the HTTP exporter to run; call inside
/// a Tokio runtime.
pub fn install(addr: SocketAddr) -> Result<metrics_exporter_prometheus::ExporterFuture, String> {
    let (recorder, exporter) = metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(DURATION.to_owned()),
            DURATION_BUCKETS,
        )
        .map_err(|e| format!("metrics buckets: {e}"))?
        .build()
        .map_err(|e| format!("metrics on {addr}: {e}"))?;
    metrics::set_global_recorder(recorder).map_err(|e| format!("metrics recorder: {e}"))?;
    Ok(exporter)
}

pub const CERT_EXPIRY: &str = "ferry_proxy_certificate_expiry_timestamp_seconds";

/// When a certificate of cert_dir stops being valid (Unix seconds), by its
/// file name (the operator's files: a bounded set).
pub fn certificate_expiry(file: &str, not_after: i64) {
    gauge!(CERT_EXPIRY, "file" => file.to_owned()).set(not_after as f64);
}

/// A migrate-mode GET or HEAD, by who served it: `target` (already
/// migrated), `source` (the fallback) or `unavailable` (the source could
/// not answer: a 503). target / (target + source) is the share of reads
/// already served by the target.
pub fn migrate_read(bucket: &str, served_by: &'static str) {
    counter!(MIGRATE_READS, "bucket" => bucket.to_owned(), "served_by" => served_by).increment(1);
}

pub const MIGRATE_PROMOTED: &str = "ferry_proxy_migrate_promoted_objects_total";

/// Migrate mode: an object copied from the source to the target ahead of
/// a change to its tags, ACL, retention, legal hold or restore.
pub fn migrate_promoted(bucket: &str) {
    counter!(MIGRATE_PROMOTED, "bucket" => bucket.to_owned()).increment(1);
}
