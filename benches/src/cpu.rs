//! Where the CPU went during a run: the stores, the tool, and everything
//! else on the machine (other people's builds and tests share it too, and
//! a run they disturbed should say so).

use std::path::Path;

use ferry_harness::Store;

/// USER_HZ: the unit of /proc CPU counters on Linux.
const TICKS_PER_SEC: f64 = 100.0;

/// CPU used during a run, in seconds, and how busy the machine was.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// Share of all cores busy (everything on the machine).
    pub machine_busy: Option<f64>,
    /// The Garage processes of the stores involved.
    pub stores_secs: Option<f64>,
    /// Everything that is neither the stores, the tool, nor this benchmark.
    pub other_secs: Option<f64>,
}

/// Counters at the start of a run.
pub struct CpuWatch {
    machine: Option<(u64, u64)>,
    stores: Vec<(u32, u64)>,
    own: Option<u64>,
}

impl CpuWatch {
    pub fn start(stores: &[&Store]) -> CpuWatch {
        let pids: Vec<u32> = stores.iter().flat_map(|s| garage_pids(s)).collect();
        CpuWatch {
            machine: machine_ticks(),
            stores: pids
                .into_iter()
                .filter_map(|p| Some((p, process_ticks(p)?)))
                .collect(),
            own: process_ticks(std::process::id()),
        }
    }

    /// `tool_secs`: the tool's own CPU (a child process), if it had one.
    pub fn stop(&self, tool_secs: Option<f64>) -> CpuUse {
        let machine = match (self.machine, machine_ticks()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some((b1.saturating_sub(b0), t1 - t0)),
            _ => None,
        };
        let stores: Option<u64> = (!self.stores.is_empty()).then(|| {
            self.stores
                .iter()
                .map(|&(p, t0)| process_ticks(p).map_or(0, |t1| t1.saturating_sub(t0)))
                .sum()
        });
        let own = match (self.own, process_ticks(std::process::id())) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let secs = |t: u64| t as f64 / TICKS_PER_SEC;
        let other = match (machine, stores, own) {
            (Some((busy, _)), Some(st), Some(own)) => {
                Some((secs(busy) - secs(st) - secs(own) - tool_secs.unwrap_or(0.0)).max(0.0))
            }
            _ => None,
        };
        CpuUse {
            machine_busy: machine.map(|(busy, total)| busy as f64 / total as f64),
            stores_secs: stores.map(secs),
            other_secs: other,
        }
    }
}

/// This process's user + system CPU seconds.
pub fn own_secs() -> Option<f64> {
    process_ticks(std::process::id()).map(|t| t as f64 / TICKS_PER_SEC)
}

/// (busy, total) ticks of all cores, from /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// utime + stime of a process, in ticks.
fn process_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = text.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The Garage server of `store`: the process whose command line names the
/// config in the store's directory.
fn garage_pids(store: &Store) -> Vec<u32> {
    let Some(dir) = store.log_path().parent() else {
        return Vec::new();
    };
    let config = dir.join("garage.toml");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| cmdline_names(*pid, &config))
        .collect()
}

fn cmdline_names(pid: u32, path: &Path) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let want = path.as_os_str().as_encoded_bytes();
    raw.split(|&b| b == 0).any(|arg| arg == want)
}
