//! Exponential backoff with full jitter. Only errors whose class says a
//! retry may help are retried; 412 and other 4xx are final.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::s3::S3Error;

/// Errors that know whether another attempt may help.
pub trait Retryable: std::fmt::Display {
    fn retryable(&self) -> bool;
}

impl Retryable for S3Error {
    fn retryable(&self) -> bool {
        self.class.retryable()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.min(16));
        let ceiling = exp.min(self.cap);
        let nanos = rand::rng().random_range(0..=ceiling.as_nanos() as u64);
        Duration::from_nanos(nanos)
    }

    /// Runs `op` until it succeeds, fails finally, or attempts run out. Each
    /// call of `op` must redo the whole operation from scratch.
    pub async fn run<T, E, F, Fut>(&self, mut op: F) -> Result<T, E>
    where
        E: Retryable,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.retryable() && attempt + 1 < self.attempts => {
                    tracing::debug!(error = %e, attempt, "retrying");
                    tokio::time::sleep(self.delay(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
