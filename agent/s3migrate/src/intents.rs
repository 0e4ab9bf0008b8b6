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
//! only at the end of a settled pass, once every records file and their
//! folder are fsynced too. A log that was not emptied (a pass that could
//! not settle) is compacted to the latest intent per key when it is next
//! opened, so it stays as small as the keys it names.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, oneshot};

use ferry_control::keylist;
use ferry_s3::durable;

pub const FILE: &str = "intents.log";

/// The shortest time between the starts of two groups' fsyncs.
const PACE: std::time::Duration = std::time::Duration::from_millis(5);

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
    /// Opens the log in `dest_folder` for appending, compacted to the
    /// latest intent per key, and starts its writer.
    pub fn open(dest_folder: &Path) -> io::Result<IntentLog> {
        let path = dest_folder.join(FILE);
        let kept = load(dest_folder)?;
        if !kept.is_empty() {
            let mut text = Vec::new();
            for (key, etag) in &kept {
                text.extend(line(key, etag));
            }
            durable::write(&path, &text, None)?;
        }
        let file = durable::open_append_repaired(&path)?;
        // The file's name must be as durable as what is written to it.
        durable::sync_dir(dest_folder)?;
        let len = file.metadata()?.len();
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(write_groups(file, len, rx));
        Ok(IntentLog { tx })
    }

    /// Returns once the intent to write `key`, producing `etag`, is on
    /// disk.
    pub async fn record(&self, key: &str, etag: &str) -> io::Result<()> {
        let line = line(key, etag);
        let (done, wait) = oneshot::channel();
        let gone = || io::Error::other("the intent log's writer has stopped");
        self.tx
            .send(Intent { line, done })
            .await
            .map_err(|_| gone())?;
        wait.await.map_err(|_| gone())?
    }
}

fn line(key: &str, etag: &str) -> Vec<u8> {
    format!("{}\t{etag}\n", keylist::escape(key)).into_bytes()
}

/// Writes what is queued as one group: one write, one fsync, then every
/// waiter of the group is released. A group that fails is cut off the
/// file again, so that the next group does not follow a torn line; if
/// even that fails, every later intent fails too.
///
/// Groups start at most one per [`PACE`]: a fast disk would otherwise
/// sync about once per write, and each fsync costs the copier kernel CPU
/// (measured: one fdatasync per copied 4 KiB object, and s3migrate's CPU
/// per object up by a third). A copy whose source listed its ETag writes
/// its intent during its GET, so the wait is hidden there.
async fn write_groups(file: File, len: u64, mut rx: mpsc::Receiver<Intent>) {
    let mut state = Some((file, len));
    let mut next = tokio::time::Instant::now();
    while let Some(first) = rx.recv().await {
        tokio::time::sleep_until(next).await;
        next = tokio::time::Instant::now() + PACE;
        let mut group = vec![first];
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        let buf: Vec<u8> = group.iter().flat_map(|i| i.line.iter().copied()).collect();
        let r = match state.take() {
            None => Err(io::Error::other(
                "an earlier write failed and could not be undone",
            )),
            Some((mut f, len)) => {
                let (back, r) = tokio::task::spawn_blocking(move || {
                    match f.write_all(&buf).and_then(|()| f.sync_data()) {
                        Ok(()) => (Some((f, len + buf.len() as u64)), Ok(())),
                        Err(e) => {
                            let undone = f.set_len(len).and_then(|()| f.sync_data());
                            (undone.ok().map(|()| (f, len)), Err(e))
                        }
                    }
                })
                .await
                .expect("the intent writer does not panic");
                state = back;
                r
            }
        };
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
    durable::write(&dest_folder.join(FILE), b"", None)
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

    #[tokio::test]
    async fn an_unsettled_log_is_compacted_when_next_opened() {
        let d = tempfile::tempdir().unwrap();
        let log = IntentLog::open(d.path()).unwrap();
        for etag in ["e1", "e2", "e3"] {
            log.record("k", etag).await.unwrap();
        }
        log.record("other", "x").await.unwrap();
        drop(log);
        let lines = || std::fs::read_to_string(path(d.path())).unwrap();
        assert_eq!(lines().lines().count(), 4);
        let log = IntentLog::open(d.path()).unwrap();
        assert_eq!(lines(), "k\te3\nother\tx\n");
        log.record("k", "e4").await.unwrap();
        assert_eq!(load(d.path()).unwrap()["k"], "e4");
    }
}
