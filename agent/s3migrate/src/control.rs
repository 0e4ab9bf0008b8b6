//! Steering a running copy from outside: pause, resume, cancel, and read
//! its live counters. The `s3migrate` CLI cancels on TERM/INT; the agent
//! daemon drives its jobs through this.
//!
//! Cancel stops handing out keys; keys in flight finish and the ledger
//! writes them, so migrate.log ends at a clean watermark (a checkpoint).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::progress::{Snapshot, Stats};

#[derive(Default)]
pub struct Control {
    cancelled: AtomicBool,
    paused: AtomicBool,
    wake: Notify,
    pass: AtomicU32,
    stats: Mutex<Option<Arc<Stats>>>,
}

impl Control {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Waits while paused; returns false if cancelled.
    pub(crate) async fn gate(&self) -> bool {
        loop {
            let woken = self.wake.notified();
            if self.is_cancelled() {
                return false;
            }
            if !self.is_paused() {
                return true;
            }
            woken.await;
        }
    }

    pub(crate) fn start_pass(&self, pass: u32, stats: Arc<Stats>) {
        self.pass.store(pass, Ordering::SeqCst);
        *self.stats.lock().expect("control lock") = Some(stats);
    }

    /// The current pass number and its counters, once a pass has started.
    pub fn snapshot(&self) -> Option<(u32, Snapshot)> {
        let stats = self.stats.lock().expect("control lock").clone()?;
        Some((self.pass.load(Ordering::SeqCst), stats.snapshot()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pause_holds_until_resume_or_cancel() {
        let c = Control::new();
        c.pause();
        let c2 = c.clone();
        let waiter = tokio::spawn(async move { c2.gate().await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        c.resume();
        assert!(waiter.await.unwrap());
        c.pause();
        let c3 = c.clone();
        let waiter = tokio::spawn(async move { c3.gate().await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        c.cancel();
        assert!(!waiter.await.unwrap());
    }
}
