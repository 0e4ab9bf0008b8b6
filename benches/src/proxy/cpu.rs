//! Where the CPU went during a run: the client (this process), the proxy,
//! the Garage stores, and everything else on the machine (other people's
//! builds and tests share the cores, and a run they disturbed should say
//! so).

use ferry_benches::procstat::{TICKS_PER_SEC, garage_pids, machine_ticks, process_ticks};
use ferry_harness::Store;

/// CPU seconds used during a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub wall_secs: f64,
    /// All cores, everything on the machine.
    pub machine_secs: f64,
    /// Share of all cores busy.
    pub machine_busy: f64,
    pub client_secs: f64,
    pub proxy_secs: f64,
    pub stores_secs: f64,
}

impl CpuUse {
    /// Busy cores that were neither the client, the proxy nor the stores;
    /// `None` when /proc/stat counted less machine time than those
    /// processes used (seen on this VM now and then: the counters cannot
    /// be trusted for that run).
    pub fn other_cores(&self) -> Option<f64> {
        let known = self.client_secs + self.proxy_secs + self.stores_secs;
        if self.machine_secs + 0.05 < known * 0.9 {
            return None;
        }
        Some(((self.machine_secs - known) / self.wall_secs.max(1e-9)).max(0.0))
    }

    pub fn add(&mut self, o: &CpuUse) {
        let busy_secs = self.machine_busy * self.wall_secs + o.machine_busy * o.wall_secs;
        self.wall_secs += o.wall_secs;
        self.machine_secs += o.machine_secs;
        self.machine_busy = busy_secs / self.wall_secs.max(1e-9);
        self.client_secs += o.client_secs;
        self.proxy_secs += o.proxy_secs;
        self.stores_secs += o.stores_secs;
    }
}

/// The processes to watch: the proxies (their CPU is summed), and the
/// Garage servers of the stores.
#[derive(Clone)]
pub struct Watched {
    pub proxies: Vec<u32>,
    pub stores: Vec<u32>,
}

impl Watched {
    pub fn new(proxies: &[u32], stores: &[&Store]) -> Watched {
        Watched {
            proxies: proxies.to_vec(),
            stores: stores.iter().flat_map(|s| garage_pids(s)).collect(),
        }
    }
}

/// CPU ticks of `pids` now, each.
fn ticks_of(pids: &[u32]) -> Vec<(u32, u64)> {
    pids.iter()
        .map(|&p| (p, process_ticks(p).unwrap_or(0)))
        .collect()
}

/// Counters at the start of a run.
pub struct CpuWatch {
    started: std::time::Instant,
    machine: (u64, u64),
    client: u64,
    proxies: Vec<(u32, u64)>,
    stores: Vec<(u32, u64)>,
}

impl CpuWatch {
    pub fn start(w: &Watched) -> CpuWatch {
        CpuWatch {
            started: std::time::Instant::now(),
            machine: machine_ticks().unwrap_or_default(),
            client: process_ticks(std::process::id()).unwrap_or(0),
            proxies: ticks_of(&w.proxies),
            stores: ticks_of(&w.stores),
        }
    }

    pub fn stop(&self) -> CpuUse {
        let wall = self.started.elapsed().as_secs_f64();
        let (b1, t1) = machine_ticks().unwrap_or_default();
        let (b0, t0) = self.machine;
        let secs = |t: u64| t as f64 / TICKS_PER_SEC;
        let delta = |pid: u32, t0: u64| process_ticks(pid).map_or(0, |t| t.saturating_sub(t0));
        let used = |v: &[(u32, u64)]| secs(v.iter().map(|&(p, t)| delta(p, t)).sum());
        CpuUse {
            wall_secs: wall,
            machine_secs: secs(b1.saturating_sub(b0)),
            machine_busy: if t1 > t0 {
                b1.saturating_sub(b0) as f64 / (t1 - t0) as f64
            } else {
                0.0
            },
            client_secs: secs(delta(std::process::id(), self.client)),
            proxy_secs: used(&self.proxies),
            stores_secs: used(&self.stores),
        }
    }
}
