//! The ordered record of a pass: migrate.log, failed.log and the records of
//! what was written.
//!
//! Workers finish keys out of order. The ledger holds finished keys until
//! every key before them is finished too, then appends them in key order, so
//! migrate.log's last line is always a safe `--start-after`, even after
//! `kill -9`. Each flush writes failed.log and the records before
//! migrate.log: a key that appears in migrate.log has its failure or its
//! record on disk already. The window semaphore caps how far workers may run
//! ahead of the watermark, which bounds the ledger's memory when one large
//! object holds the watermark back.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLUSH_EVERY: Duration = Duration::from_millis(200);

use tokio::sync::{Semaphore, mpsc};

use super::records::Record;
use ferry_control::keylist;
use ferry_s3::durable;

pub const MIGRATE_LOG: &str = "migrate.log";
pub const FAILED_LOG: &str = "failed.log";

/// How one key's handling ended.
#[derive(Debug)]
pub enum Outcome {
    /// Another process's share (`--hash-value`).
    Ign,
    Exist,
    Copied(Record),
    WouldCopy,
    SkipDn,
    SkipUp,
    Failed {
        class: String,
        message: String,
    },
}

#[derive(Debug)]
pub struct Done {
    pub seq: u64,
    pub key: String,
    pub outcome: Outcome,
}

/// Where a pass writes. `None` paths (a dry run) write nothing.
pub struct LedgerFiles {
    pub migrate_log: Option<PathBuf>,
    pub failed_log: Option<PathBuf>,
    pub records: Option<PathBuf>,
}

#[derive(Debug, Default)]
pub struct LedgerReport {
    pub last_line: Option<String>,
    pub errors_by_class: BTreeMap<String, u64>,
}

struct Sink {
    path: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
    sync: bool,
}

impl Sink {
    fn new(path: Option<PathBuf>, sync: bool) -> Option<Self> {
        path.map(|path| Self {
            path,
            file: None,
            buf: Vec::new(),
            sync,
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            self.file = Some(durable::open_append_repaired(&self.path)?);
        }
        let f = self.file.as_mut().expect("opened");
        // One write per flush: a kill leaves only whole lines behind.
        f.write_all(&self.buf)?;
        if self.sync {
            f.sync_data()?;
        }
        self.buf.clear();
        Ok(())
    }
}

pub async fn run(
    mut rx: mpsc::Receiver<Done>,
    files: LedgerFiles,
    window: Arc<Semaphore>,
) -> io::Result<LedgerReport> {
    // failed.log is synced before migrate.log moves past a failed key: a
    // power cut must not leave a key in migrate.log whose failure is lost.
    let mut failed = Sink::new(files.failed_log, true);
    let mut records = Sink::new(files.records, false);
    let mut migrate = Sink::new(files.migrate_log, false);
    let mut pending: HashMap<u64, Done> = HashMap::new();
    let mut next = 0u64;
    let mut report = LedgerReport::default();
    let mut last_flush = Instant::now();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    while open {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(d) => { pending.insert(d.seq, d); }
                None => open = false,
            },
            _ = tick.tick() => {}
        }
        let mut advanced = 0;
        while let Some(d) = pending.remove(&next) {
            next += 1;
            advanced += 1;
            let line = keylist::escape(&d.key);
            match &d.outcome {
                Outcome::Ign => continue,
                Outcome::Failed { class, message } => {
                    *report.errors_by_class.entry(class.clone()).or_default() += 1;
                    if let Some(s) = failed.as_mut() {
                        let msg = message.replace(['\t', '\n', '\r'], " ");
                        writeln!(s.buf, "{line}\t{class}\t{msg}")?;
                    }
                }
                Outcome::Copied(rec) => {
                    if let Some(s) = records.as_mut() {
                        s.buf.extend_from_slice(rec.to_line().as_bytes());
                    }
                }
                _ => {}
            }
            if let Some(s) = migrate.as_mut() {
                s.buf.extend_from_slice(line.as_bytes());
                s.buf.push(b'\n');
            }
            report.last_line = Some(line);
        }
        if advanced > 0 {
            window.add_permits(advanced);
        }
        let big = migrate.as_ref().is_some_and(|s| s.buf.len() > 256 * 1024);
        if big || !open || last_flush.elapsed() >= FLUSH_EVERY {
            last_flush = Instant::now();
            for s in [&mut failed, &mut records, &mut migrate]
                .into_iter()
                .flatten()
            {
                s.flush()?;
            }
        }
    }
    if !pending.is_empty() {
        return Err(io::Error::other(format!(
            "{} keys finished after a gap at sequence {next}: a worker was lost",
            pending.len()
        )));
    }
    Ok(report)
}

/// Moves a log aside before a fresh pass, keeping it as history.
pub fn rotate(dest_folder: &Path, name: &str, run_id: &str) -> io::Result<()> {
    let p = dest_folder.join(name);
    if p.exists() {
        let (stem, ext) = name.rsplit_once('.').unwrap_or((name, "log"));
        std::fs::rename(&p, dest_folder.join(format!("{stem}.{run_id}.{ext}")))?;
    }
    Ok(())
}
