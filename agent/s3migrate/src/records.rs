//! What the copier wrote: for each key, the source ETag it copied and the
//! destination ETag its write produced.
//!
//! A later pass rewrites a key whose source changed only with
//! `If-Match: <the destination ETag recorded here>`, so an object a client
//! wrote on the destination since is never replaced. The records are written
//! in key order (they advance with the migrate.log watermark), one file per
//! run and pass under `<dest-folder>/records/`, and read back as a k-way
//! merge of all files, the newest file winning, so no pass ever holds them
//! all in memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::entries::{Keyed, SortedStream};
use ferry_control::keylist::{self, KeyListError};

pub const DIR: &str = "records";

/// Fsyncs every records file in `dest_folder`, and their folder: the
/// records name the copier's writes once the intent log is emptied.
pub fn sync(dest_folder: &Path) -> io::Result<()> {
    let dir = dir(dest_folder);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries {
        File::open(e?.path())?.sync_all()?;
    }
    ferry_s3::durable::sync_dir(&dir)
}
pub const SUFFIX: &str = ".rec";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    pub key: String,
    pub src_etag: String,
    pub dest_etag: String,
    pub size: u64,
    /// SHA-256 of the content, kept when the destination ETag cannot be
    /// compared with the source's (a multipart layout that could not be
    /// reproduced).
    pub sha256: Option<String>,
}

impl Keyed for Record {
    fn key(&self) -> &str {
        &self.key
    }
}

impl Record {
    pub fn to_line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\n",
            keylist::escape(&self.key),
            self.src_etag,
            self.dest_etag,
            self.size,
            self.sha256.as_deref().unwrap_or("-")
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let mut f = line.split('\t');
        let key = keylist::unescape(f.next()?).ok()?;
        let src_etag = f.next()?.to_owned();
        let dest_etag = f.next()?.to_owned();
        let size = f.next()?.parse().ok()?;
        let sha256 = match f.next()? {
            "-" => None,
            s => Some(s.to_owned()),
        };
        Some(Self {
            key,
            src_etag,
            dest_etag,
            size,
            sha256,
        })
    }
}

pub fn dir(dest_folder: &Path) -> PathBuf {
    dest_folder.join(DIR)
}

fn record_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd {
                let p = e?.path();
                if p.extension().is_some_and(|x| x == &SUFFIX[1..]) {
                    files.push(p);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Names start with the run's UTC timestamp: name order is age order.
    files.sort();
    Ok(files)
}

struct Cursor {
    path: PathBuf,
    reader: BufReader<File>,
    line: String,
    lineno: u64,
}

impl Cursor {
    fn next(&mut self) -> Result<Option<Record>, KeyListError> {
        self.line.clear();
        let n = self
            .reader
            .read_line(&mut self.line)
            .map_err(|source| KeyListError::Read {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 || !self.line.ends_with('\n') {
            // A torn last line (power cut) is a record never written.
            return Ok(None);
        }
        self.lineno += 1;
        Record::parse(self.line.trim_end_matches('\n'))
            .map(Some)
            .ok_or_else(|| KeyListError::Malformed {
                path: self.path.clone(),
                line: self.lineno,
                why: "bad record line",
            })
    }
}

/// Every record, in key order; for a key recorded more than once, the
/// newest.
pub fn open(dest_folder: &Path) -> Result<SortedStream<Record>, KeyListError> {
    let d = dir(dest_folder);
    let files = record_files(&d).map_err(|source| KeyListError::Folder {
        path: d.clone(),
        source,
    })?;
    let mut cursors = Vec::new();
    for path in files {
        let f = File::open(&path).map_err(|source| KeyListError::Read {
            path: path.clone(),
            source,
        })?;
        cursors.push(Cursor {
            path,
            reader: BufReader::new(f),
            line: String::new(),
            lineno: 0,
        });
    }
    // Heap of (key, newest-first rank, record); ties on key pop the newest
    // file first and the older ones are skipped.
    let mut heap: BinaryHeap<Reverse<(String, Reverse<usize>, Record)>> = BinaryHeap::new();
    let mut primed = false;
    let mut last: Option<String> = None;
    Ok(SortedStream::from_blocking(move || {
        if !primed {
            primed = true;
            for (i, c) in cursors.iter_mut().enumerate() {
                if let Some(r) = c.next()? {
                    heap.push(Reverse((r.key.clone(), Reverse(i), r)));
                }
            }
        }
        loop {
            let Some(Reverse((key, Reverse(i), rec))) = heap.pop() else {
                return Ok(None);
            };
            if let Some(r) = cursors[i].next()? {
                heap.push(Reverse((r.key.clone(), Reverse(i), r)));
            }
            if last.as_deref() == Some(key.as_str()) {
                continue;
            }
            last = Some(key);
            return Ok(Some(rec));
        }
    }))
}
