//! Where the CPU went during a run: the stores, the tool, and everything
//! else on the machine (other people's builds and tests share it too, and
//! a run they disturbed should say so).

use ferry_benches::procstat::{TICKS_PER_SEC, garage_pids, machine_ticks, process_ticks};
use ferry_harness::Store;

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
