//! The write gate of each attached bucket, in a fleet: how a proxy stops
//! writes to a bucket, and knows when the ones in flight have ended.
//!
//! A gate holds the bucket's routing generation (its epoch and phase, see
//! [`generation`]) and whether it is fenced, in one atomic word. A write
//! takes a [`WriteGuard`] after it is planned and holds it until the
//! request ends: it counts itself in, then reads the gate, and is refused
//! if the bucket is fenced or was planned from another generation (a plan
//! made from the fencing table must not write once the new mode is in
//! force). The member puts a new table in force and then sets the gate,
//! and a fence waits for the count to reach zero. All of it is
//! sequentially consistent, so either a write sees the fence or the
//! fence's wait sees the write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ferry_fleet::state::{Bucket, Phase};

/// A bucket's routing generation: its epoch, and whether that epoch's mode
/// is in force. Each fenced change moves it twice (fencing, then active).
pub fn generation(b: &Bucket) -> u64 {
    b.epoch * 2 + u64::from(b.phase == Phase::Active)
}

#[derive(Default)]
struct Gate {
    in_flight: AtomicUsize,
    /// `generation << 1 | fenced`.
    state: AtomicU64,
}

/// Every attached bucket's gate. Gates are never removed: the buckets are a
/// small set the operator controls, and a gate dropped under a write in
/// flight would hide that write from a later drain.
#[derive(Default)]
pub struct WriteGates {
    gates: RwLock<HashMap<String, Arc<Gate>>>,
}

/// A write in flight; dropping it counts it out.
pub struct WriteGuard(Arc<Gate>);

impl Drop for WriteGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The write was refused: the bucket is fenced, or changed since the
/// request was planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fenced;

impl WriteGates {
    fn gate(&self, bucket: &str) -> Arc<Gate> {
        if let Some(g) = self.gates.read().expect("gates lock").get(bucket) {
            return g.clone();
        }
        self.gates
            .write()
            .expect("gates lock")
            .entry(bucket.to_owned())
            .or_default()
            .clone()
    }

    /// Admits one write to `bucket`, planned at `generation`.
    pub fn enter(&self, bucket: &str, generation: u64) -> Result<WriteGuard, Fenced> {
        let gate = self.gate(bucket);
        gate.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = WriteGuard(gate);
        if guard.0.state.load(Ordering::SeqCst) != generation << 1 {
            return Err(Fenced);
        }
        Ok(guard)
    }

    /// Sets `bucket`'s gate: its generation, and whether writes are fenced.
    pub fn set(&self, bucket: &str, generation: u64, fenced: bool) {
        self.gate(bucket)
            .state
            .store(generation << 1 | u64::from(fenced), Ordering::SeqCst);
    }

    /// Returns once no write admitted to `bucket` is in flight.
    pub async fn drained(&self, bucket: &str) {
        let gate = self.gate(bucket);
        let mut wait = Duration::from_millis(1);
        while gate.in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fence_refuses_new_writes_and_waits_for_those_in_flight() {
        let gates = Arc::new(WriteGates::default());
        gates.set("photos", 1, false);
        gates.set("other", 1, false);
        let before = gates.enter("photos", 1).unwrap();
        gates.set("photos", 2, true);
        assert_eq!(gates.enter("photos", 2).err(), Some(Fenced));
        assert!(gates.enter("other", 1).is_ok(), "other buckets are open");

        let g = gates.clone();
        let drained = tokio::spawn(async move { g.drained("photos").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !drained.is_finished(),
            "a write admitted before the fence is in flight"
        );
        drop(before);
        tokio::time::timeout(Duration::from_secs(5), drained)
            .await
            .expect("drained once the write ended")
            .unwrap();

        gates.set("photos", 3, false);
        assert!(gates.enter("photos", 3).is_ok());
        assert_eq!(
            gates.enter("photos", 2).err(),
            Some(Fenced),
            "a write planned from the fencing table never runs once the new mode is in force"
        );
        assert_eq!(
            gates.enter("unknown", 1).err(),
            Some(Fenced),
            "a bucket the member has not set is closed"
        );
    }
}
