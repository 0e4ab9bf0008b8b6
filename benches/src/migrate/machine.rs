//! What the benchmark ran on, for the report's header.

use std::path::Path;

use ferry_benches::host::{Host, garage_version};

pub struct Machine {
    pub host: Host,
    pub mem_gib: f64,
    pub garage: String,
    pub rclone: String,
    pub s3migrate: String,
}

impl Machine {
    pub fn describe(s3migrate: &Path, rclone: &Path) -> Machine {
        let mem_kib: f64 = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            host: Host::describe(),
            mem_gib: mem_kib / 1024.0 / 1024.0,
            garage: garage_version(),
            rclone: crate::rclone::describe(rclone),
            s3migrate: crate::s3migrate::describe(s3migrate),
        }
    }
}
