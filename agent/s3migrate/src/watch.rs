//! The journal watch: each of the pass's own writes is looked up in the
//! delete journal moments after it lands, and a copy that brought a deleted
//! key back is removed at once rather than at the pass's end.
//!
//! A copy whose source GET came before a client's delete, and whose PUT
//! landed after the proxy deleted the target's object, brings the key back.
//! The reconcile at the end of the pass (`journal`) removes it, but a pass
//! over millions of keys ends hours later, and clients would list and read
//! the deleted key all that while. The proxy journals a delete before it
//! deletes anywhere, so such a write finds its entry as soon as it has
//! landed; the watch then settles it as the reconcile would
//! (`journal::settle`: removed only if gone from the source and still the
//! copier's own write).
//!
//! The watch shortens the window; the reconcile remains the guarantee. A
//! write the watch could not look up or settle (a failed request, a full
//! backlog, a kill) is settled by the reconcile, which reads the whole
//! journal afresh, and only the reconcile reports unsettled keys.
//!
//! Cost: lookups go in rounds, at most one per [`ROUND`]. A round HEADs
//! each write's entry, or lists the journal, whichever takes fewer
//! requests, judged by the page count of the last listing; so the watch
//! adds at most one request per write, and one listing per round while the
//! journal is small.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::copy::Copier;
use super::journal::{self, Fate, Journal};
use crate::s3::S3Error;
use ferry_control::journal::entry_name;

/// The shortest time between two rounds of lookups.
pub const ROUND: Duration = Duration::from_millis(200);
/// Landed writes waiting for a round; beyond that, writes are left to the
/// reconcile, so that the watch never slows the copy.
const BACKLOG: usize = 16_384;

/// One landed write: its key and the ETag the destination gave it.
type Landed = (String, String);

/// The running watch of one pass.
pub struct Watch {
    tx: mpsc::Sender<Landed>,
    task: JoinHandle<BTreeSet<String>>,
}

impl Watch {
    pub fn start(copier: Arc<Copier>, journal: Journal, threads: usize) -> Watch {
        let (tx, rx) = mpsc::channel(BACKLOG);
        let task = tokio::spawn(run(copier, journal, threads.max(1), rx));
        Watch { tx, task }
    }

    /// A handle for the workers.
    pub fn sender(&self) -> Sender {
        Sender(self.tx.clone())
    }

    /// Settles what is still waiting and returns the keys the watch
    /// removed. Call once every worker has ended.
    pub async fn finish(self) -> Result<BTreeSet<String>, tokio::task::JoinError> {
        drop(self.tx);
        self.task.await
    }
}

/// Where workers report their landed writes.
#[derive(Clone)]
pub struct Sender(mpsc::Sender<Landed>);

impl Sender {
    pub fn landed(&self, key: &str, dest_etag: &str) {
        // Full: the reconcile settles it instead.
        let _ = self.0.try_send((key.to_owned(), dest_etag.to_owned()));
    }
}

async fn run(
    copier: Arc<Copier>,
    journal: Journal,
    threads: usize,
    mut rx: mpsc::Receiver<Landed>,
) -> BTreeSet<String> {
    let mut removed = BTreeSet::new();
    // The journal's length in listing pages, as last seen.
    let mut pages = 1;
    while let Some(first) = rx.recv().await {
        let started = Instant::now();
        let mut batch = vec![first];
        while let Ok(w) = rx.try_recv() {
            batch.push(w);
        }
        #[cfg(feature = "test-hooks")]
        test_hold(&copier).await;
        // A failed lookup leaves its writes to the reconcile.
        if let Ok(found) = journalled(&copier, &journal, threads, batch, &mut pages).await {
            let fates = futures::stream::iter(found)
                .map(|(key, etag)| {
                    let copier = &copier;
                    async move {
                        let fate = journal::settle(
                            copier,
                            journal.mode,
                            journal::JOURNALLED,
                            &key,
                            &[etag],
                        )
                        .await;
                        (key, fate)
                    }
                })
                .buffer_unordered(threads)
                .collect::<Vec<_>>()
                .await;
            removed.extend(
                fates
                    .into_iter()
                    .filter_map(|(k, f)| matches!(f, Fate::Removed).then_some(k)),
            );
        }
        tokio::time::sleep_until(started + ROUND).await;
    }
    removed
}

/// The writes of `batch` whose keys have a journal entry now.
async fn journalled(
    copier: &Copier,
    journal: &Journal,
    threads: usize,
    batch: Vec<Landed>,
    pages: &mut usize,
) -> Result<Vec<Landed>, S3Error> {
    if batch.len() <= *pages {
        let heads = futures::stream::iter(batch)
            .map(|w| async move { Ok(copier.journalled(&w.0).await?.then_some(w)) })
            .buffer_unordered(threads)
            .collect::<Vec<_>>()
            .await;
        return heads.into_iter().filter_map(Result::transpose).collect();
    }
    copier.gate().await;
    let (names, n) = journal::list_names(
        &copier.dest,
        &journal.bucket,
        &copier.dest_bucket,
        copier.retry,
    )
    .await?;
    *pages = n;
    let names: HashSet<String> = names.into_iter().collect();
    Ok(batch
        .into_iter()
        .filter(|w| names.contains(&entry_name(&copier.dest_bucket, &w.0)))
        .collect())
}

/// TEST ONLY: while `<dir>/watch.hold` exists in the directory of
/// FERRY_TEST_PAUSE_BEFORE_PUT (see `copy::test_pause`), the watch looks
/// nothing up, so that a test can put a client's write between a stale
/// copy and its settling, or kill the copier with the stale copy in place.
#[cfg(feature = "test-hooks")]
async fn test_hold(copier: &Copier) {
    let Some(dir) = &copier.test_pause else {
        return;
    };
    let hold = dir.join("watch.hold");
    while tokio::fs::try_exists(&hold).await.unwrap_or(false) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
