//! The names of the proxy's metrics that `ferryctl` reads back from its
//! metrics endpoint (`status`, `check idle`): one name for the proxy that
//! exports them and the tool that reads them. The proxy's other names
//! are in its own `metrics` module.

pub mod proxy {
    /// Requests, by bucket, operation, mode, upstream and status class.
    pub const REQUESTS: &str = "ferry_proxy_requests_total";
    /// Failed requests to an upstream, by upstream and error class.
    pub const UPSTREAM_ERRORS: &str = "ferry_proxy_upstream_errors_total";
    /// Migrate-mode reads, by bucket and who served them.
    pub const MIGRATE_READS: &str = "ferry_proxy_migrate_reads_total";
}
