//! External sort with bounded memory: keys collect in a [`RunBuffer`] up to
//! the memory budget; a full buffer is sorted and spilled to a run file;
//! at the end the runs are merged ([`super::merge`]). If everything fits
//! in one buffer, nothing touches the disk.
//!
//! Memory: the buffer's budget during the scan; during the merge, one read
//! buffer per run, sized so that all of them together stay within the same
//! budget. When there are more runs than the fan-in allows, runs are first
//! merged in groups into bigger runs (one more pass over the data each
//! time), so the number of open files and read buffers stays bounded too.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::FindError;
use super::merge;
use super::spill::{MAX_RUN_KEY, RunBuffer, RunReader, RunWriter};

/// Smallest budget [`ExternalSorter`] accepts: below this, read and write
/// buffers alone would not fit.
pub const MIN_MEMORY_BYTES: usize = 256 * 1024;
/// Most runs merged at once.
pub const MAX_FAN_IN: usize = 128;
const MIN_IO_BUF: usize = 8 * 1024;
const MAX_IO_BUF: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct SortConfig {
    /// Bytes for keys in memory (key bytes plus 8 bytes per key).
    pub memory_bytes: usize,
    /// Most runs merged at once; `None` picks from the budget (at most
    /// [`MAX_FAN_IN`]). Tests set it low to exercise multi-level merges.
    pub fan_in: Option<usize>,
}

impl SortConfig {
    pub fn with_memory(memory_bytes: usize) -> Self {
        Self {
            memory_bytes,
            fan_in: None,
        }
    }
}

/// What the sort did, for the summary.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SortStats {
    /// The memory budget, in bytes.
    pub memory_limit_bytes: u64,
    /// Sorted runs written to disk during the scan (0: all in memory).
    pub runs_spilled: u64,
    /// Bytes written to those runs.
    pub spilled_bytes: u64,
    /// Intermediate merge levels before the final merge (0: one merge).
    pub intermediate_merges: u64,
    /// Keys emitted, in order, duplicates dropped.
    pub keys: u64,
}

/// Sorts any number of keys (byte order, duplicates dropped) in bounded
/// memory, spilling to run files in `dir`.
pub struct ExternalSorter {
    dir: PathBuf,
    buf: RunBuffer,
    runs: Vec<PathBuf>,
    next_run: u64,
    fan_in: usize,
    io_buf: usize,
    stats: SortStats,
}

impl ExternalSorter {
    /// `dir` must exist; it should be empty and private to this sorter
    /// (run files are named `run-NNNNNN`). It is left for the caller to
    /// remove.
    pub fn new(dir: &Path, cfg: SortConfig) -> Self {
        let budget = cfg.memory_bytes.max(MIN_MEMORY_BYTES);
        let fan_in = cfg
            .fan_in
            .unwrap_or(budget / (64 * 1024))
            .clamp(2, MAX_FAN_IN);
        let io_buf = (budget / (fan_in + 1)).clamp(MIN_IO_BUF, MAX_IO_BUF);
        Self {
            dir: dir.to_owned(),
            buf: RunBuffer::new(budget),
            runs: Vec::new(),
            next_run: 0,
            fan_in,
            io_buf,
            stats: SortStats {
                memory_limit_bytes: budget as u64,
                ..SortStats::default()
            },
        }
    }

    /// Adds a key (at most 65,535 bytes).
    pub fn push(&mut self, key: &[u8]) -> Result<(), FindError> {
        if key.len() > MAX_RUN_KEY {
            return Err(FindError::Internal("key longer than 65,535 bytes"));
        }
        if !self.buf.try_push(key) {
            self.spill()?;
            let pushed = self.buf.try_push(key);
            debug_assert!(pushed, "an empty buffer takes any key");
        }
        Ok(())
    }

    /// Runs spilled so far.
    pub fn runs_spilled(&self) -> u64 {
        self.stats.runs_spilled
    }

    fn new_run_path(&mut self) -> PathBuf {
        self.next_run += 1;
        self.dir.join(format!("run-{:06}", self.next_run))
    }

    fn spill(&mut self) -> Result<(), FindError> {
        self.buf.sort();
        let path = self.new_run_path();
        let mut w = RunWriter::create(&path, self.io_buf)?;
        let mut prev: Option<&[u8]> = None;
        for k in self.buf.iter() {
            if prev != Some(k) {
                w.push(k)?;
            }
            prev = Some(k);
        }
        let (path, bytes) = w.finish()?;
        self.stats.runs_spilled += 1;
        self.stats.spilled_bytes += bytes;
        self.runs.push(path);
        self.buf.clear();
        Ok(())
    }

    /// Emits every key once, in byte order.
    pub fn finish(
        mut self,
        emit: &mut dyn FnMut(&[u8]) -> Result<(), FindError>,
    ) -> Result<SortStats, FindError> {
        if self.runs.is_empty() {
            // Everything fit in memory: no disk at all.
            self.buf.sort();
            let mut prev: Option<&[u8]> = None;
            for k in self.buf.iter() {
                if prev != Some(k) {
                    emit(k)?;
                    self.stats.keys += 1;
                }
                prev = Some(k);
            }
            return Ok(self.stats);
        }
        if !self.buf.is_empty() {
            // Spill the last buffer too, so that the merge's read buffers
            // are the only memory in use while merging.
            self.spill()?;
        }
        self.buf = RunBuffer::new(0);
        while self.runs.len() > self.fan_in {
            self.merge_level()?;
            self.stats.intermediate_merges += 1;
        }
        let runs = std::mem::take(&mut self.runs);
        let readers = open_all(&runs, self.io_buf)?;
        self.stats.keys = merge::merge(readers, emit)?;
        remove_all(&runs);
        Ok(self.stats)
    }

    /// Merges the runs in groups of `fan_in` into fewer, bigger runs.
    fn merge_level(&mut self) -> Result<(), FindError> {
        let runs = std::mem::take(&mut self.runs);
        for group in runs.chunks(self.fan_in) {
            if group.len() == 1 {
                self.runs.push(group[0].clone());
                continue;
            }
            let path = self.new_run_path();
            let mut w = RunWriter::create(&path, self.io_buf)?;
            merge::merge(open_all(group, self.io_buf)?, &mut |k| w.push(k))?;
            let (path, _) = w.finish()?;
            remove_all(group);
            self.runs.push(path);
        }
        Ok(())
    }
}

fn open_all(runs: &[PathBuf], io_buf: usize) -> Result<Vec<RunReader>, FindError> {
    runs.iter().map(|p| RunReader::open(p, io_buf)).collect()
}

/// Best effort: the whole scratch folder is removed at the end anyway.
fn remove_all(runs: &[PathBuf]) {
    for r in runs {
        let _ = fs::remove_file(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sort_all(keys: &[String], cfg: SortConfig) -> (Vec<String>, SortStats, usize) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ExternalSorter::new(dir.path(), cfg);
        for k in keys {
            s.push(k.as_bytes()).unwrap();
        }
        let mut out = Vec::new();
        let stats = s
            .finish(&mut |k| {
                out.push(String::from_utf8(k.to_vec()).unwrap());
                Ok(())
            })
            .unwrap();
        let left = fs::read_dir(dir.path()).unwrap().count();
        (out, stats, left)
    }

    fn keys(n: usize) -> Vec<String> {
        let mut x: u64 = 0x9E37_79B9;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("d{:03}/f-{:016x}-{i}", x % 997, x)
            })
            .collect()
    }

    #[test]
    fn fits_in_memory_without_runs() {
        let k = keys(1000);
        let (out, stats, left) = sort_all(&k, SortConfig::with_memory(1 << 20));
        let mut want = k.clone();
        want.sort();
        assert_eq!(out, want);
        assert_eq!(stats.runs_spilled, 0);
        assert_eq!(left, 0);
    }

    #[test]
    fn spills_and_merges_with_duplicates() {
        let mut k = keys(40_000);
        k.extend(keys(5_000)); // the same 5,000 again, in another run
        let (out, stats, left) = sort_all(&k, SortConfig::with_memory(MIN_MEMORY_BYTES));
        let mut want = k.clone();
        want.sort();
        want.dedup();
        assert_eq!(out.len(), 40_000);
        assert_eq!(out, want);
        assert!(stats.runs_spilled > 1, "{stats:?}");
        assert_eq!(stats.keys, 40_000);
        assert_eq!(left, 0, "run files are removed after the merge");
    }

    #[test]
    fn multi_level_merge_when_runs_exceed_fan_in() {
        let k = keys(60_000);
        let cfg = SortConfig {
            memory_bytes: MIN_MEMORY_BYTES,
            fan_in: Some(2),
        };
        let (out, stats, left) = sort_all(&k, cfg);
        let mut want = k.clone();
        want.sort();
        assert_eq!(out, want);
        assert!(stats.runs_spilled > 4, "{stats:?}");
        assert!(stats.intermediate_merges >= 2, "{stats:?}");
        assert_eq!(left, 0);
    }
}
