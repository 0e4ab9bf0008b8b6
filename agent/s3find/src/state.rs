//! The watch mode's memory of the tree: every file of a full scan as a
//! record (key, size, change time, mtime), sorted by key, in one file on
//! disk (`OUTPUT_DIR/s3find-watch.state`). Two full scans are compared by
//! merging two sorted streams of records, so memory stays bounded whatever
//! the tree holds.
//!
//! A record is the key's bytes, a `0` byte, then size, change time
//! (max(mtime, ctime), the time the `--later-than` filter uses) and mtime,
//! each 8 bytes big-endian. A key never holds a `0` byte (a path cannot), so
//! records sort exactly as their keys do, and the scan's external sort
//! orders them unchanged.
//!
//! The file is a magic line, then records framed as in a sort run
//! (`[u16 little-endian length][record]`). It is written to a temporary
//! name, synced and renamed. While it is written, every
//! [`INDEX_EVERY`]th record's key and offset go into an in-memory sparse
//! index, so a few keys (those an event names) can be looked up without
//! reading the whole file: about one index entry per 256 files.

use std::collections::BTreeMap;
use std::fs::{self, File, Metadata};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Bound;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::filter::to_nanos;
use super::{FindError, io_err};
use ferry_s3::durable;

/// The first line of a state file.
const MAGIC: &[u8] = b"s3find-watch-state 1\n";
/// Bytes after the key in a record: the `0` separator and three numbers.
pub const META_BYTES: usize = 1 + 3 * 8;
/// One index entry per this many records.
pub const INDEX_EVERY: u64 = 256;

/// What a scan knows about a file besides its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub size: u64,
    /// max(mtime, ctime), Unix nanoseconds.
    pub changed: i64,
    /// mtime, Unix nanoseconds: the file is still being written while it
    /// is recent.
    pub mtime: i64,
}

fn clamp_nanos(n: i128) -> i64 {
    n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl Meta {
    /// From an `lstat`.
    pub fn of(m: &Metadata) -> Self {
        let mtime = to_nanos(m.mtime(), m.mtime_nsec());
        let ctime = to_nanos(m.ctime(), m.ctime_nsec());
        Self {
            size: m.len(),
            changed: clamp_nanos(mtime.max(ctime)),
            mtime: clamp_nanos(mtime),
        }
    }

    /// Whether a file with `other` counts as unchanged since `self`: same
    /// size, same max(mtime, ctime). A write, a rename, a chmod all move
    /// the change time.
    pub fn same(&self, other: &Meta) -> bool {
        self.size == other.size && self.changed == other.changed
    }
}

/// Appends the record of `key` to `buf`.
pub fn encode_record(buf: &mut Vec<u8>, key: &[u8], meta: &Meta) {
    buf.extend_from_slice(key);
    buf.push(0);
    buf.extend_from_slice(&meta.size.to_be_bytes());
    buf.extend_from_slice(&meta.changed.to_be_bytes());
    buf.extend_from_slice(&meta.mtime.to_be_bytes());
}

/// Splits a record into its key and metadata.
pub fn decode_record(rec: &[u8]) -> Option<(&[u8], Meta)> {
    let cut = rec.len().checked_sub(META_BYTES)?;
    let (key, meta) = rec.split_at(cut);
    if meta[0] != 0 {
        return None;
    }
    let num = |i: usize| -> [u8; 8] { meta[1 + 8 * i..9 + 8 * i].try_into().expect("8 bytes") };
    Some((
        key,
        Meta {
            size: u64::from_be_bytes(num(0)),
            changed: i64::from_be_bytes(num(1)),
            mtime: i64::from_be_bytes(num(2)),
        },
    ))
}

/// A half-open range of keys, `[lo, hi)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyRange {
    pub lo: String,
    pub hi: String,
}

impl KeyRange {
    /// Just `key`: no key holds a `0` byte, so none sorts between `key`
    /// and `key\0`.
    pub fn exact(key: &str) -> Self {
        Self {
            lo: key.to_owned(),
            hi: format!("{key}\0"),
        }
    }

    /// Every key below the directory `dir` (`dir/...`): `[dir/, dir0)`, as
    /// `0` is the byte after `/`.
    pub fn below(dir: &str) -> Self {
        Self {
            lo: format!("{dir}/"),
            hi: format!("{dir}0"),
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.lo.as_str() <= key && key < self.hi.as_str()
    }
}

/// Sorts ranges and joins those that overlap or touch.
pub fn normalize(mut ranges: Vec<KeyRange>) -> Vec<KeyRange> {
    ranges.sort();
    let mut out: Vec<KeyRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.lo <= last.hi => {
                if r.hi > last.hi {
                    last.hi = r.hi;
                }
            }
            _ => out.push(r),
        }
    }
    out
}

/// Writes a state file, building its index.
pub struct StateWriter {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    pos: u64,
    records: u64,
    index: Vec<(Box<str>, u64)>,
    buf: Vec<u8>,
}

impl StateWriter {
    pub fn create(path: &Path) -> Result<Self, FindError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dir.join(format!(".{name}.tmp"));
        let file = File::create(&tmp).map_err(io_err("cannot create", &tmp))?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        out.write_all(MAGIC).map_err(io_err("cannot write", &tmp))?;
        Ok(Self {
            out,
            tmp,
            path: path.to_owned(),
            pos: MAGIC.len() as u64,
            records: 0,
            index: Vec::new(),
            buf: Vec::new(),
        })
    }

    /// Appends a record; keys must come in increasing order.
    pub fn push(&mut self, key: &str, meta: &Meta) -> Result<(), FindError> {
        if self.records.is_multiple_of(INDEX_EVERY) {
            self.index.push((key.into(), self.pos));
        }
        self.buf.clear();
        encode_record(&mut self.buf, key.as_bytes(), meta);
        let len = u16::try_from(self.buf.len())
            .map_err(|_| FindError::Internal("a state record is longer than 65,535 bytes"))?;
        let tmp = &self.tmp;
        self.out
            .write_all(&len.to_le_bytes())
            .and_then(|()| self.out.write_all(&self.buf))
            .map_err(io_err("cannot write", tmp))?;
        self.pos += 2 + self.buf.len() as u64;
        self.records += 1;
        Ok(())
    }

    /// Syncs the file and renames it into place.
    pub fn finish(mut self) -> Result<State, FindError> {
        self.out
            .flush()
            .map_err(io_err("cannot write", &self.tmp))?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(io_err("cannot sync", &self.tmp))?;
        fs::rename(&self.tmp, &self.path)
            .map_err(io_err("cannot rename into place", &self.path))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        durable::sync_dir(dir).map_err(io_err("cannot sync", dir))?;
        // (Drop now finds no temporary file to remove.)
        Ok(State {
            path: self.path.clone(),
            index: std::mem::take(&mut self.index),
            records: self.records,
        })
    }
}

impl Drop for StateWriter {
    /// An unfinished state file is never left under a name that is read.
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// A finished state file and its index. The default is the empty state
/// of no file at all.
#[derive(Debug, Default)]
pub struct State {
    path: PathBuf,
    index: Vec<(Box<str>, u64)>,
    records: u64,
}

impl State {
    /// Files in the state.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Reads every record, in order (`None`: the empty default state).
    pub fn stream(&self) -> Result<Option<StateReader>, FindError> {
        if self.path.as_os_str().is_empty() {
            return Ok(None);
        }
        StateReader::open(&self.path).map(Some)
    }

    /// The records whose keys fall in `ranges` (normalized: sorted,
    /// disjoint). Reads one index stride per range at most, plus the
    /// records in the range.
    pub fn lookup(&self, ranges: &[KeyRange]) -> Result<BTreeMap<String, Meta>, FindError> {
        let mut found = BTreeMap::new();
        if ranges.is_empty() || self.records == 0 {
            return Ok(found);
        }
        let mut r = StateReader::open(&self.path)?;
        let mut head = r.next_record()?;
        for range in ranges {
            // The last index entry at or before the range's start.
            let i = self
                .index
                .partition_point(|(k, _)| **k <= *range.lo)
                .saturating_sub(1);
            let at = self.index[i].1;
            let behind = head.as_ref().is_some_and(|(k, _)| *k < range.lo);
            if behind && at > r.record_pos {
                r.seek(at)?;
                head = r.next_record()?;
            }
            while let Some((k, m)) = head.take() {
                if k < range.lo {
                    head = r.next_record()?;
                    continue;
                }
                if k >= range.hi {
                    head = Some((k, m));
                    break;
                }
                found.insert(k, m);
                head = r.next_record()?;
            }
        }
        Ok(found)
    }
}

/// Reads a state file record by record.
pub struct StateReader {
    input: BufReader<File>,
    path: PathBuf,
    /// Offset of the next record.
    pos: u64,
    /// Offset of the record last returned.
    record_pos: u64,
    buf: Vec<u8>,
}

impl StateReader {
    /// Opens a state file, checking its first line.
    pub fn open(path: &Path) -> Result<Self, FindError> {
        let file = File::open(path).map_err(io_err("cannot open", path))?;
        let mut input = BufReader::with_capacity(256 * 1024, file);
        let mut magic = vec![0u8; MAGIC.len()];
        input
            .read_exact(&mut magic)
            .map_err(io_err("not an s3find watch state file", path))?;
        if magic != MAGIC {
            return Err(FindError::Io {
                what: "not an s3find watch state file",
                path: path.to_owned(),
                source: io::Error::new(io::ErrorKind::InvalidData, "bad first line"),
            });
        }
        Ok(Self {
            input,
            path: path.to_owned(),
            pos: MAGIC.len() as u64,
            record_pos: MAGIC.len() as u64,
            buf: Vec::new(),
        })
    }

    fn seek(&mut self, pos: u64) -> Result<(), FindError> {
        self.input
            .seek(SeekFrom::Start(pos))
            .map_err(io_err("cannot read", &self.path))?;
        self.pos = pos;
        Ok(())
    }

    /// The next record, or `None` at the end.
    pub fn next_record(&mut self) -> Result<Option<(String, Meta)>, FindError> {
        let path = &self.path;
        let bad = |why: &'static str| FindError::Io {
            what: "corrupt s3find watch state file",
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, why),
        };
        if self
            .input
            .fill_buf()
            .map_err(io_err("cannot read", path))?
            .is_empty()
        {
            return Ok(None);
        }
        let mut len = [0u8; 2];
        self.input
            .read_exact(&mut len)
            .map_err(|_| bad("truncated record"))?;
        let len = usize::from(u16::from_le_bytes(len));
        self.buf.resize(len, 0);
        self.input
            .read_exact(&mut self.buf)
            .map_err(|_| bad("truncated record"))?;
        self.record_pos = self.pos;
        self.pos += 2 + len as u64;
        let (key, meta) = decode_record(&self.buf).ok_or_else(|| bad("malformed record"))?;
        let key = std::str::from_utf8(key).map_err(|_| bad("key is not UTF-8"))?;
        Ok(Some((key.to_owned(), meta)))
    }
}

/// The state as the incremental sets have told it so far: the state file
/// with the changes reported since it was written laid over it (`None`:
/// deleted). Streams in key order.
pub struct View<'a> {
    base: Option<StateReader>,
    base_head: Option<(String, Meta)>,
    overlay: std::collections::btree_map::Iter<'a, String, Option<Meta>>,
    over_head: Option<(&'a String, &'a Option<Meta>)>,
}

impl<'a> View<'a> {
    pub fn new(
        mut base: Option<StateReader>,
        overlay: &'a BTreeMap<String, Option<Meta>>,
    ) -> Result<Self, FindError> {
        let base_head = match &mut base {
            Some(b) => b.next_record()?,
            None => None,
        };
        let mut overlay = overlay.iter();
        let over_head = overlay.next();
        Ok(Self {
            base,
            base_head,
            overlay,
            over_head,
        })
    }

    fn advance_base(&mut self) -> Result<(), FindError> {
        self.base_head = match &mut self.base {
            Some(b) => b.next_record()?,
            None => None,
        };
        Ok(())
    }

    /// The next record in key order.
    pub fn next_record(&mut self) -> Result<Option<(String, Meta)>, FindError> {
        loop {
            let order = match (&self.base_head, &self.over_head) {
                (None, None) => return Ok(None),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((b, _)), Some((o, _))) => b.as_str().cmp(o.as_str()),
            };
            if order == std::cmp::Ordering::Less {
                let head = self.base_head.take();
                self.advance_base()?;
                return Ok(head);
            }
            if order == std::cmp::Ordering::Equal {
                self.advance_base()?;
            }
            let (k, m) = self.over_head.expect("compared above");
            self.over_head = self.overlay.next();
            if let Some(m) = m {
                return Ok(Some((k.clone(), *m)));
            }
        }
    }
}

/// The changes reported from events since the state file was written,
/// appended after each set (`OUTPUT_DIR/s3find-watch.journal`), so that a
/// restarted watch compares its first scan with what was really told. It
/// is removed before a new state file takes the old one's place. Entries
/// are framed as state records, with a tag byte first: `C` and a record
/// (created or modified), or `D` and a key (deleted).
pub struct Journal {
    path: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
}

const JOURNAL_MAGIC: &[u8] = b"s3find-watch-journal 1\n";

impl Journal {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            file: None,
            buf: Vec::new(),
        }
    }

    /// Appends entries and syncs them.
    pub fn append(&mut self, entries: &[(String, Option<Meta>)]) -> Result<(), FindError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        if self.file.is_none() {
            let f = File::options()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(io_err("cannot open", &self.path))?;
            let len = f
                .metadata()
                .map_err(io_err("cannot stat", &self.path))?
                .len();
            if len == 0 {
                self.buf.extend_from_slice(JOURNAL_MAGIC);
            }
            self.file = Some(f);
        }
        let mut entry = Vec::new();
        for (key, meta) in entries {
            entry.clear();
            match meta {
                Some(m) => {
                    entry.push(b'C');
                    encode_record(&mut entry, key.as_bytes(), m);
                }
                None => {
                    entry.push(b'D');
                    entry.extend_from_slice(key.as_bytes());
                }
            }
            let len = u16::try_from(entry.len())
                .map_err(|_| FindError::Internal("a journal entry is longer than 65,535 bytes"))?;
            self.buf.extend_from_slice(&len.to_le_bytes());
            self.buf.extend_from_slice(&entry);
        }
        let f = self.file.as_mut().expect("opened above");
        f.write_all(&self.buf)
            .and_then(|()| f.sync_data())
            .map_err(io_err("cannot write", &self.path))
    }

    /// Removes the journal: a new state file is about to hold its changes.
    pub fn clear(&mut self) -> Result<(), FindError> {
        self.file = None;
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("cannot remove", &self.path)(e)),
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        durable::sync_dir(dir).map_err(io_err("cannot sync", dir))
    }

    /// Reads a journal (none: nothing); later entries win. A torn last
    /// entry (a crash mid-append) is ignored: its set is reported again.
    pub fn load(path: &Path) -> Result<BTreeMap<String, Option<Meta>>, FindError> {
        let mut out = BTreeMap::new();
        let data = match fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("cannot read", path)(e)),
        };
        let Some(mut rest) = data.strip_prefix(JOURNAL_MAGIC) else {
            return Err(FindError::Io {
                what: "not an s3find watch journal",
                path: path.to_owned(),
                source: io::Error::new(io::ErrorKind::InvalidData, "bad first line"),
            });
        };
        while let Some((len, tail)) = rest.split_first_chunk::<2>() {
            let len = usize::from(u16::from_le_bytes(*len));
            let Some(entry) = tail.get(..len) else { break };
            rest = &tail[len..];
            let (key, meta) = match entry.split_first() {
                Some((b'C', rec)) => match decode_record(rec) {
                    Some((k, m)) => (k, Some(m)),
                    None => break,
                },
                Some((b'D', k)) => (k, None),
                _ => break,
            };
            let Ok(key) = std::str::from_utf8(key) else {
                break;
            };
            out.insert(key.to_owned(), meta);
        }
        Ok(out)
    }
}

/// The overlay's entries in `ranges`, laid over `base` (records of the
/// state file in the same ranges).
pub fn overlay_ranges(
    base: &mut BTreeMap<String, Meta>,
    overlay: &BTreeMap<String, Option<Meta>>,
    ranges: &[KeyRange],
) {
    for r in ranges {
        let span = overlay.range::<str, _>((
            Bound::Included(r.lo.as_str()),
            Bound::Excluded(r.hi.as_str()),
        ));
        for (k, m) in span {
            match m {
                Some(m) => base.insert(k.clone(), *m),
                None => base.remove(k),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(n: u64) -> Meta {
        Meta {
            size: n,
            changed: n as i64 * 10,
            mtime: -(n as i64),
        }
    }

    fn write(dir: &Path, keys: &[String]) -> State {
        let mut w = StateWriter::create(&dir.join("state")).unwrap();
        for (i, k) in keys.iter().enumerate() {
            w.push(k, &meta(i as u64)).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn records_sort_as_their_keys() {
        let mut keys = vec!["a", "a/b", "a-b", "a.txt", "a0", "ab", "\u{e9}", "Z"];
        let mut recs: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| {
                let mut b = Vec::new();
                encode_record(&mut b, k.as_bytes(), &meta(u64::MAX - k.len() as u64));
                b
            })
            .collect();
        keys.sort();
        recs.sort();
        let back: Vec<&str> = recs
            .iter()
            .map(|r| std::str::from_utf8(decode_record(r).unwrap().0).unwrap())
            .collect();
        assert_eq!(back, keys);
    }

    #[test]
    fn stream_and_lookup_agree_with_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys: Vec<String> = (0..3000)
            .map(|i| format!("d{:02}/f{i:05}", i % 37))
            .collect();
        keys.extend(["d05".into(), "d05.txt".into(), "d050/x".into()]);
        keys.sort();
        let st = write(dir.path(), &keys);
        assert_eq!(st.records(), keys.len() as u64);
        let mut r = st.stream().unwrap().unwrap();
        let mut all = Vec::new();
        while let Some((k, m)) = r.next_record().unwrap() {
            all.push((k, m));
        }
        assert_eq!(all.len(), keys.len());
        let ranges = normalize(vec![
            KeyRange::below("d05"),
            KeyRange::exact("d05"),
            KeyRange::exact("d36/f00036"),
            KeyRange::exact("nope"),
            KeyRange::below("d36"),
            KeyRange::exact("d00/f00000"),
        ]);
        let got = st.lookup(&ranges).unwrap();
        let want: BTreeMap<String, Meta> = all
            .into_iter()
            .filter(|(k, _)| ranges.iter().any(|r| r.contains(k)))
            .collect();
        assert!(want.contains_key("d05") && !want.contains_key("d05.txt"));
        assert!(!want.contains_key("d050/x"));
        assert!(want.len() > 150, "{}", want.len());
        assert_eq!(got, want);
    }

    #[test]
    fn view_lays_the_overlay_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<String> = ["a", "b", "c", "e"].map(String::from).to_vec();
        let st = write(dir.path(), &keys);
        let mut over = BTreeMap::new();
        over.insert("b".to_owned(), None);
        over.insert("c".to_owned(), Some(meta(99)));
        over.insert("d".to_owned(), Some(meta(98)));
        over.insert("f".to_owned(), None);
        let mut v = View::new(st.stream().unwrap(), &over).unwrap();
        let mut got = Vec::new();
        while let Some((k, m)) = v.next_record().unwrap() {
            got.push((k, m.size));
        }
        assert_eq!(
            got,
            [
                ("a".into(), 0),
                ("c".into(), 99),
                ("d".into(), 98),
                ("e".into(), 3)
            ]
        );
    }

    #[test]
    fn journal_replays_and_ignores_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal");
        assert!(Journal::load(&p).unwrap().is_empty());
        let mut j = Journal::new(&p);
        j.append(&[("a".into(), Some(meta(1))), ("b".into(), None)])
            .unwrap();
        j.append(&[("a".into(), None), ("c%\n".into(), Some(meta(3)))])
            .unwrap();
        let mut torn = fs::read(&p).unwrap();
        torn.extend_from_slice(&[9, 0, b'C', b'x']);
        fs::write(&p, &torn).unwrap();
        let got = Journal::load(&p).unwrap();
        let want: BTreeMap<String, Option<Meta>> = [
            ("a".to_owned(), None),
            ("b".to_owned(), None),
            ("c%\n".to_owned(), Some(meta(3))),
        ]
        .into();
        assert_eq!(got, want);
        j.clear().unwrap();
        assert!(!p.exists());
        j.clear().unwrap();
    }

    #[test]
    fn a_torn_or_foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        fs::write(&p, b"something else\n").unwrap();
        assert!(StateReader::open(&p).is_err());
        let mut torn = MAGIC.to_vec();
        torn.extend_from_slice(&[40, 0, b'a']);
        fs::write(&p, &torn).unwrap();
        assert!(StateReader::open(&p).unwrap().next_record().is_err());
    }
}
