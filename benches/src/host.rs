//! The machine a benchmark ran on, for a report's header.

/// When and on what: the reports print these as they are.
pub struct Host {
    pub date: String,
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
}

impl Host {
    pub fn describe() -> Host {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown CPU".into());
        Host {
            date: time::OffsetDateTime::now_utc()
                .format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute] UTC"
                ))
                .unwrap_or_default(),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }
}

/// `garage --version` of the harness's Garage, empty when it cannot run.
pub fn garage_version() -> String {
    std::process::Command::new(ferry_harness::garage_bin())
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The first line of `etcd --version` (`$ETCD_BIN`, else `etcd` on PATH,
/// as the harness runs it), empty when it cannot run.
pub fn etcd_version() -> String {
    let bin = std::env::var_os("ETCD_BIN")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "etcd".into());
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_owned())
        })
        .unwrap_or_default()
}
