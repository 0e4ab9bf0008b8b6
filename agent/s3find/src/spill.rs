//! Sorted runs: the in-memory sort buffer, and its spill files on disk.
//!
//! A run file is a sequence of records `[length: u16 little-endian][key
//! bytes]`, in byte order. No escaping is needed (the length frames the
//! key), and a key can be at most `u16::MAX` bytes. Run files are scratch:
//! they are not synced, and a crashed scan is simply run again.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::{FindError, io_err};

/// Longest key a run can hold.
pub const MAX_RUN_KEY: usize = u16::MAX as usize;

/// Bytes of bookkeeping per key in [`RunBuffer`] (one packed span).
pub const PER_KEY_OVERHEAD: usize = std::mem::size_of::<u64>();

const LEN_BITS: u32 = 16;
const LEN_MASK: u64 = (1 << LEN_BITS) - 1;
const GROW_MIN_BYTES: usize = 64 * 1024;
const GROW_MIN_SPANS: usize = 4 * 1024;

/// Keys in memory, under a byte budget: one arena of key bytes plus one
/// packed `u64` (offset << 16 | length) per key. The budget bounds the
/// buffers' *capacity*, so it bounds what is really allocated, not just
/// what is used.
pub struct RunBuffer {
    arena: Vec<u8>,
    spans: Vec<u64>,
    budget: usize,
}

impl RunBuffer {
    pub fn new(budget: usize) -> Self {
        Self {
            arena: Vec::new(),
            spans: Vec::new(),
            budget,
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes allocated for keys and spans.
    pub fn allocated(&self) -> usize {
        self.arena.capacity() + self.spans.capacity() * PER_KEY_OVERHEAD
    }

    /// Adds a key, growing the buffers only within the budget. Returns
    /// `false` when the key does not fit: spill, `clear`, and push again.
    /// An empty buffer always takes the key, whatever the budget.
    pub fn try_push(&mut self, key: &[u8]) -> bool {
        assert!(key.len() <= MAX_RUN_KEY, "key longer than a run can hold");
        let (len, cap) = (self.arena.len(), self.arena.capacity());
        let need_arena = (len + key.len()).saturating_sub(cap);
        let need_spans = usize::from(self.spans.len() == self.spans.capacity());
        if need_arena > 0 || need_spans > 0 {
            let left = self.budget.saturating_sub(self.allocated());
            let need = need_arena + need_spans * PER_KEY_OVERHEAD;
            if need > left && !self.is_empty() {
                return false;
            }
            // Grow by half again (at least a minimum step), clipped to what
            // is left of the budget, but always by at least what this key
            // needs.
            let mut more_arena = if need_arena > 0 {
                (cap / 2).max(GROW_MIN_BYTES).max(need_arena)
            } else {
                0
            };
            let mut more_spans = if need_spans > 0 {
                (self.spans.capacity() / 2).max(GROW_MIN_SPANS)
            } else {
                0
            };
            if more_arena + more_spans * PER_KEY_OVERHEAD > left {
                let spare = left.saturating_sub(need);
                match (need_arena > 0, need_spans > 0) {
                    (true, true) => {
                        more_arena = need_arena + spare / 2;
                        more_spans = 1 + spare / 2 / PER_KEY_OVERHEAD;
                    }
                    (true, false) => more_arena = need_arena + spare,
                    _ => more_spans = 1 + spare / PER_KEY_OVERHEAD,
                }
            }
            self.arena.reserve_exact(cap + more_arena - len);
            let (slen, scap) = (self.spans.len(), self.spans.capacity());
            self.spans.reserve_exact(scap + more_spans - slen);
        }
        let off = self.arena.len() as u64;
        self.arena.extend_from_slice(key);
        self.spans.push((off << LEN_BITS) | key.len() as u64);
        true
    }

    fn key(&self, span: u64) -> &[u8] {
        let off = (span >> LEN_BITS) as usize;
        let len = (span & LEN_MASK) as usize;
        &self.arena[off..off + len]
    }

    /// Sorts the keys by their bytes.
    pub fn sort(&mut self) {
        let arena = &self.arena;
        let key = |span: u64| {
            let off = (span >> LEN_BITS) as usize;
            &arena[off..off + (span & LEN_MASK) as usize]
        };
        self.spans.sort_unstable_by(|a, b| key(*a).cmp(key(*b)));
    }

    /// The keys in their current order (sorted after [`RunBuffer::sort`]).
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.spans.iter().map(|s| self.key(*s))
    }

    /// Forgets the keys, keeping the allocation for the next run.
    pub fn clear(&mut self) {
        self.arena.clear();
        self.spans.clear();
    }
}

/// Writes one run file.
pub struct RunWriter {
    out: BufWriter<File>,
    path: PathBuf,
    bytes: u64,
}

impl RunWriter {
    pub fn create(path: &Path, buf_bytes: usize) -> Result<Self, FindError> {
        let file = File::create(path).map_err(io_err("cannot create sort run", path))?;
        Ok(Self {
            out: BufWriter::with_capacity(buf_bytes, file),
            path: path.to_owned(),
            bytes: 0,
        })
    }

    pub fn push(&mut self, key: &[u8]) -> Result<(), FindError> {
        let len = u16::try_from(key.len()).expect("key length checked by the caller");
        let path = &self.path;
        self.out
            .write_all(&len.to_le_bytes())
            .and_then(|()| self.out.write_all(key))
            .map_err(io_err("cannot write sort run", path))?;
        self.bytes += 2 + key.len() as u64;
        Ok(())
    }

    /// Flushes the run; returns its path and size.
    pub fn finish(mut self) -> Result<(PathBuf, u64), FindError> {
        let path = &self.path;
        self.out
            .flush()
            .map_err(io_err("cannot write sort run", path))?;
        Ok((self.path, self.bytes))
    }
}

/// Reads one run file back, key by key.
pub struct RunReader {
    input: BufReader<File>,
    path: PathBuf,
}

impl RunReader {
    pub fn open(path: &Path, buf_bytes: usize) -> Result<Self, FindError> {
        let file = File::open(path).map_err(io_err("cannot open sort run", path))?;
        Ok(Self {
            input: BufReader::with_capacity(buf_bytes, file),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the next key into `buf`; `false` at the end of the run.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<bool, FindError> {
        let path = &self.path;
        let at_end = self
            .input
            .fill_buf()
            .map_err(io_err("cannot read sort run", path))?
            .is_empty();
        if at_end {
            return Ok(false);
        }
        let mut len = [0u8; 2];
        self.input
            .read_exact(&mut len)
            .map_err(io_err("truncated sort run", path))?;
        buf.clear();
        buf.resize(usize::from(u16::from_le_bytes(len)), 0);
        self.input
            .read_exact(buf)
            .map_err(io_err("truncated sort run", path))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_sorts_by_bytes_and_stays_in_budget() {
        let mut b = RunBuffer::new(256 * 1024);
        let mut n = 0u32;
        while b.try_push(format!("k{:07}", (n * 7919) % 100_003).as_bytes()) {
            n += 1;
        }
        assert!(n > 10_000, "a 256 KiB buffer holds more than {n} keys");
        assert!(b.allocated() <= 256 * 1024, "allocated {}", b.allocated());
        b.sort();
        let keys: Vec<&[u8]> = b.iter().collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(keys.len(), n as usize);
        b.clear();
        assert!(b.is_empty());
        assert!(b.try_push(b"again"));
    }

    #[test]
    fn byte_order_not_char_order() {
        let mut b = RunBuffer::new(1 << 20);
        for k in ["é", "z", "e\u{301}", "Z", "a b", "a/b", "a\nb", "~"] {
            assert!(b.try_push(k.as_bytes()));
        }
        b.sort();
        let got: Vec<&[u8]> = b.iter().collect();
        let mut want: Vec<&[u8]> = ["é", "z", "e\u{301}", "Z", "a b", "a/b", "a\nb", "~"]
            .iter()
            .map(|s| s.as_bytes())
            .collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(got[0], b"Z", "uppercase sorts before lowercase in bytes");
    }

    #[test]
    fn tiny_budget_still_takes_one_key() {
        let mut b = RunBuffer::new(1);
        assert!(b.try_push(b"only"));
        assert!(!b.try_push(b"second"));
    }

    #[test]
    fn run_file_round_trips_any_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run");
        let keys: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"a\r\n%".to_vec(),
            vec![0xff; 1024],
            "ü".as_bytes().to_vec(),
        ];
        let mut w = RunWriter::create(&p, 16).unwrap();
        for k in &keys {
            w.push(k).unwrap();
        }
        let (_, bytes) = w.finish().unwrap();
        assert_eq!(bytes, keys.iter().map(|k| 2 + k.len() as u64).sum::<u64>());
        let mut r = RunReader::open(&p, 16).unwrap();
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while r.next_into(&mut buf).unwrap() {
            got.push(buf.clone());
        }
        assert_eq!(got, keys);
    }

    #[test]
    fn truncated_run_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run");
        std::fs::write(&p, [5, 0, b'a', b'b']).unwrap();
        let mut r = RunReader::open(&p, 16).unwrap();
        assert!(r.next_into(&mut Vec::new()).is_err());
    }
}
