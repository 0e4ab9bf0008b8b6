//! What one run measured, and the figures of several runs of one path.

use std::time::Duration;

use crate::cpu::CpuUse;
use crate::mem::MemSeen;

/// One timed run of one path.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Latency of each successful request, µs (small: the request; large:
    /// the whole object).
    pub lat_us: Vec<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Body bytes moved by the successful requests.
    pub bytes: u64,
    pub wall: Duration,
    pub cpu: CpuUse,
}

impl Run {
    pub fn ok(&self) -> u64 {
        self.lat_us.len() as u64
    }
}

/// Every run of one path in one case (its rounds).
#[derive(Debug, Clone)]
pub struct Series {
    pub path: String,
    pub runs: Vec<Run>,
    /// Through the proxy: its upstream connections during the runs,
    /// (reused, opened).
    pub upstream: Option<(u64, u64)>,
    /// When the case watched memory (`--many-clients`): the proxy's RSS
    /// and this process's connections to the path's port during its runs.
    pub mem: Option<MemSeen>,
}

/// The `q` quantile (0..=1) of sorted `v`, nearest rank.
fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn sorted(v: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let mut v: Vec<u64> = v.into_iter().collect();
    v.sort_unstable();
    v
}

impl Series {
    pub fn new(path: impl Into<String>) -> Series {
        Series {
            path: path.into(),
            runs: Vec::new(),
            upstream: None,
            mem: None,
        }
    }

    /// A series of one run whose only figures are `lat_us` (durations of
    /// anything, µs), for their quantiles.
    pub fn of_latencies(path: impl Into<String>, lat_us: Vec<u64>) -> Series {
        Series {
            path: path.into(),
            runs: vec![Run {
                lat_us,
                ..Run::default()
            }],
            upstream: None,
            mem: None,
        }
    }

    pub fn ok(&self) -> u64 {
        self.runs.iter().map(Run::ok).sum()
    }

    /// The share of upstream connections the proxy took from its pool.
    pub fn reuse(&self) -> Option<f64> {
        let (reused, opened) = self.upstream?;
        let all = reused + opened;
        (all > 0).then(|| reused as f64 / all as f64)
    }

    pub fn errors(&self) -> u64 {
        self.runs.iter().map(|r| r.errors).sum()
    }

    pub fn first_error(&self) -> Option<&str> {
        self.runs.iter().find_map(|r| r.first_error.as_deref())
    }

    pub fn wall_secs(&self) -> f64 {
        self.runs.iter().map(|r| r.wall.as_secs_f64()).sum()
    }

    /// Latency quantile over all rounds, ms.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let all = sorted(self.runs.iter().flat_map(|r| r.lat_us.iter().copied()));
        quantile(&all, q).map(|us| us as f64 / 1000.0)
    }

    pub fn p50_ms(&self) -> Option<f64> {
        self.quantile_ms(0.50)
    }

    pub fn p99_ms(&self) -> Option<f64> {
        self.quantile_ms(0.99)
    }

    pub fn max_ms(&self) -> Option<f64> {
        self.quantile_ms(1.0)
    }

    /// The p50 of each round, ms.
    pub fn p50_by_round_ms(&self) -> Vec<Option<f64>> {
        self.runs
            .iter()
            .map(|r| quantile(&sorted(r.lat_us.iter().copied()), 0.5).map(|us| us as f64 / 1000.0))
            .collect()
    }

    /// Successful requests per second over all rounds.
    pub fn rate(&self) -> Option<f64> {
        let w = self.wall_secs();
        (w > 0.0 && self.ok() > 0).then(|| self.ok() as f64 / w)
    }

    /// MB/s (10^6 bytes) over all rounds.
    pub fn mb_per_sec(&self) -> Option<f64> {
        let w = self.wall_secs();
        let b: u64 = self.runs.iter().map(|r| r.bytes).sum();
        (w > 0.0 && b > 0).then(|| b as f64 / 1e6 / w)
    }

    /// MB/s of each round.
    pub fn mb_per_sec_by_round(&self) -> Vec<Option<f64>> {
        self.runs
            .iter()
            .map(|r| {
                let w = r.wall.as_secs_f64();
                (w > 0.0 && r.bytes > 0).then(|| r.bytes as f64 / 1e6 / w)
            })
            .collect()
    }

    /// CPU of all rounds together.
    pub fn cpu(&self) -> CpuUse {
        let mut c = CpuUse::default();
        for r in &self.runs {
            c.add(&r.cpu);
        }
        c
    }
}
