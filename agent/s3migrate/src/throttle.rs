//! Rate limits for `--max-bytes-per-sec` and `--max-requests-per-sec`: a
//! shared GCRA limiter. Callers reserve an amount and sleep for as long as
//! the reservation says, so the long-run rate holds with a one-second burst.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Limiter {
    per_unit: Duration,
    burst: Duration,
    tat: Mutex<Instant>,
}

impl Limiter {
    pub fn new(rate_per_sec: u64) -> Self {
        let rate = rate_per_sec.max(1);
        Self {
            per_unit: Duration::from_nanos(1_000_000_000 / rate).max(Duration::from_nanos(1)),
            burst: Duration::from_secs(1),
            tat: Mutex::new(Instant::now()),
        }
    }

    /// How long to wait before using `units`.
    pub fn reserve(&self, units: u64) -> Duration {
        let now = Instant::now();
        let mut tat = self.tat.lock().expect("limiter lock");
        let start = (*tat).max(now);
        *tat = start
            + self
                .per_unit
                .saturating_mul(units.min(u32::MAX as u64) as u32);
        (*tat - now).saturating_sub(self.burst)
    }

    pub async fn acquire(&self, units: u64) {
        let wait = self.reserve(units);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_run_rate_holds() {
        let l = Limiter::new(100);
        // 1 s of burst is free; the next 100 units cost about a second.
        assert!(l.reserve(100).is_zero());
        let w = l.reserve(100);
        assert!(
            w > Duration::from_millis(900) && w <= Duration::from_millis(1000),
            "{w:?}"
        );
    }
}
