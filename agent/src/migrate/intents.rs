//! The intent log: every write the copier is about to make to the
//! destination, on disk before the write is sent.
//!
//! Records (`records.rs`) say what the copier wrote, but they are written
//! in key order behind the migrate.log watermark, so a copier killed with
//! `kill -9` may have written objects whose records never reached disk. If
//! a client deleted such a key in migrate mode after the copier read it,
//! the copy that landed is a resurrection, and without a record nothing
//! would know it is the copier's own and may be removed. So each write is
//! logged here first, with the ETag it will produce, and the journal
//! reconcile treats an intent like a record (`DeleteObject If-Match` that
//! ETag: a client's later write has another ETag and is kept).
//!
//! Invariant: every object the copier ever wrote to the destination is
//! named by a durable record or a durable intent. Intents are fsynced in
//! groups (every waiting write shares one fsync), and the log is emptied
//! only at the end of a pass, once the records are fsynced too.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, oneshot};

use crate::fsutil;
use crate::keylist;

pub const FILE: &str = "intents.log";

/// One write about to be sent.
struct Intent {
    line: Vec<u8>,
    done: oneshot::Sender<io::Result<()>>,
}

/// The writer of `<dest-folder>/intents.log`; cheap to clone.
#[derive(Clone)]
pub struct IntentLog {
    tx: mpsc::Sender<Intent>,
}

impl IntentLog {
    /// Opens (appending) the log in `dest_folder`, and starts its writer.
    pub fn open(dest_folder: &Path) -> io::Result<IntentLog> {
        let path = dest_folder.join(FILE);
        let file = fsutil::open_append_repaired(&path)?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(write_groups(file, rx));
        Ok(IntentLog { tx })
    }

    /// Returns once the intent to write `key`, producing `etag`, is on
    /// disk.
    pub async fn record(&self, key: &str, etag: &str) -> io::Result<()> {
        let line = format!("{}\t{etag}\n", keylist::escape(key)).into_bytes();
        let (done, wait) = oneshot::channel();
        let gone = || io::Error::other("the intent log's writer has stopped");
        self.tx
            .send(Intent { line, done })
            .await
            .map_err(|_| gone())?;
        wait.await.map_err(|_| gone())?
    }
}

/// Writes what is queued as one group: one write, one fsync, then every
/// waiter of the group is released.
async fn write_groups(file: File, mut rx: mpsc::Receiver<Intent>) {
    let mut file = Some(file);
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        let buf: Vec<u8> = group.iter().flat_map(|i| i.line.iter().copied()).collect();
        let mut f = file
            .take()
            .expect("the file is handed back after each group");
        let (f, r) = tokio::task::spawn_blocking(move || {
            let r = f.write_all(&buf).and_then(|()| f.sync_data());
            (f, r)
        })
        .await
        .expect("the intent writer does not panic");
        file = Some(f);
        for i in group {
            let r = match &r {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            let _ = i.done.send(r);
        }
    }
}

/// The intents in `dest_folder`: key to the ETag of its latest intent.
pub fn load(dest_folder: &Path) -> io::Result<BTreeMap<String, String>> {
    let f = match File::open(dest_folder.join(FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let mut out = BTreeMap::new();
    for line in BufReader::new(f).lines() {
        let line = line?;
        // A torn last line (a power cut mid-write) names no write: its
        // fsync never returned, so its PUT was never sent.
        let Some((key, etag)) = line.split_once('\t') else {
            continue;
        };
        if let Ok(key) = keylist::unescape(key) {
            out.insert(key, etag.to_owned());
        }
    }
    Ok(out)
}

/// Empties the log once every write it names has a durable record.
pub fn clear(dest_folder: &Path) -> io::Result<()> {
    fsutil::write_atomic(&dest_folder.join(FILE), b"")
}

/// Where the log lives.
pub fn path(dest_folder: &Path) -> PathBuf {
    dest_folder.join(FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn intents_are_on_disk_when_record_returns_and_clear_empties() {
        let d = tempfile::tempdir().unwrap();
        let log = IntentLog::open(d.path()).unwrap();
        let writes: Vec<_> = (0..50)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(
                    async move { log.record(&format!("k {i}%\n"), &format!("e{i}")).await },
                )
            })
            .collect();
        for w in writes {
            w.await.unwrap().unwrap();
        }
        log.record("k 3%\n", "newer").await.unwrap();
        let got = load(d.path()).unwrap();
        assert_eq!(got.len(), 50);
        assert_eq!(got["k 3%\n"], "newer");
        assert_eq!(got["k 49%\n"], "e49");
        clear(d.path()).unwrap();
        assert!(load(d.path()).unwrap().is_empty());
        assert!(path(d.path()).exists());
    }
}
