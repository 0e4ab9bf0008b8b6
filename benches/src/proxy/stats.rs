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

/// Median, least and most of `v`; `None` when empty.
pub fn spread(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((median, v[0], v[n - 1]))
}

/// `v` as "median (least–most)", or with `signed` "+median (+least to
/// +most)"; "—" when empty.
pub fn spread_text(v: &[f64], signed: bool, decimals: usize) -> String {
    match spread(v.to_vec()) {
        Some((m, lo, hi)) if signed => {
            format!("{m:+.decimals$} ({lo:+.decimals$} to {hi:+.decimals$})")
        }
        Some((m, lo, hi)) => format!("{m:.decimals$} ({lo:.decimals$}–{hi:.decimals$})"),
        None => "—".into(),
    }
}

/// `f` of `a`'s and `b`'s figures, round by round, for the rounds both
/// have. Round i of the two ran back to back (`Bench::cases`), so each
/// figure is free of what the machine did between rounds, which moves a
/// pooled p50 or CPU per request on these shared cores by more than the
/// proxy does.
fn by_round(
    a: Vec<Option<f64>>,
    b: Vec<Option<f64>>,
    f: impl Fn(f64, f64) -> Option<f64>,
) -> Vec<f64> {
    a.into_iter()
        .zip(b)
        .filter_map(|(a, b)| f(a?, b?))
        .collect()
}

/// `a`'s p50 over `b`'s, round by round.
pub fn p50_ratios(a: &Series, b: &Series) -> Vec<f64> {
    by_round(a.p50_by_round_ms(), b.p50_by_round_ms(), |a, b| {
        (b > 0.0).then(|| a / b)
    })
}

/// `a`'s p50 less `b`'s, ms, round by round.
pub fn p50_differences(a: &Series, b: &Series) -> Vec<f64> {
    by_round(a.p50_by_round_ms(), b.p50_by_round_ms(), |a, b| Some(a - b))
}

/// The CPU per request of `a`'s proxy less `b`'s, µs, round by round.
pub fn proxy_cpu_differences(a: &Series, b: &Series) -> Vec<f64> {
    by_round(
        a.proxy_cpu_us_by_round(),
        b.proxy_cpu_us_by_round(),
        |a, b| Some(a - b),
    )
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

    /// The proxy's CPU per successful request of each round, µs.
    pub fn proxy_cpu_us_by_round(&self) -> Vec<Option<f64>> {
        self.runs
            .iter()
            .map(|r| (r.ok() > 0).then(|| r.cpu.proxy_secs * 1e6 / r.ok() as f64))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn series(rounds: &[&[u64]]) -> Series {
        let mut s = Series::new("p");
        s.runs = rounds
            .iter()
            .map(|lat| Run {
                lat_us: lat.to_vec(),
                ..Run::default()
            })
            .collect();
        s
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(spread(vec![4.0, 1.0, 3.0, 2.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(spread(vec![5.0, 1.0, 3.0]), Some((3.0, 1.0, 5.0)));
        assert_eq!(spread(Vec::new()), None);
    }

    #[test]
    fn ratios_pair_the_rounds_and_skip_an_empty_one() {
        // The machine slows down in round 2; the proxy stays 1.1× direct.
        let direct = series(&[&[1000, 1000, 1000], &[2000], &[]]);
        let proxy = series(&[&[1100], &[2200, 2200, 2200], &[500]]);
        let r = p50_ratios(&proxy, &direct);
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r.iter().all(|v| (v - 1.1).abs() < 1e-9), "{r:?}");
        // Pooled, the path that ran more requests in the slow round looks
        // twice as slow.
        let pooled = proxy.p50_ms().unwrap() / direct.p50_ms().unwrap();
        assert!((pooled - 2.2).abs() < 1e-9, "{pooled}");
        let d = p50_differences(&proxy, &direct);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            (d[0] - 0.1).abs() < 1e-9 && (d[1] - 0.2).abs() < 1e-9,
            "{d:?}"
        );
    }

    #[test]
    fn cpu_differences_pair_the_rounds() {
        // Round 2 is busier: both spend more per request, the proxy always
        // 10 µs more than the floor.
        let with_cpu = |rounds: &[(usize, f64)]| {
            let mut s = Series::new("p");
            s.runs = rounds
                .iter()
                .map(|&(n, secs)| Run {
                    lat_us: vec![1; n],
                    cpu: CpuUse {
                        proxy_secs: secs,
                        ..CpuUse::default()
                    },
                    ..Run::default()
                })
                .collect();
            s
        };
        let proxy = with_cpu(&[(1000, 0.110), (100, 0.030), (0, 0.0)]);
        let floor = with_cpu(&[(100, 0.010), (1000, 0.290), (10, 0.001)]);
        let d = proxy_cpu_differences(&proxy, &floor);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().all(|v| (v - 10.0).abs() < 1e-9), "{d:?}");
        // Pooled, the floor's busy round makes the proxy look cheaper.
        let pooled = |s: &Series| s.cpu().proxy_secs * 1e6 / s.ok() as f64;
        assert!(pooled(&proxy) - pooled(&floor) < 0.0);
    }
}
