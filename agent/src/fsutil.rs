//! Crash-safe files: write a temporary file, fsync it, rename it into
//! place, fsync the directory. A reader sees the old file or the new one,
//! never a torn mix, whatever kills the process (`ferry_s3::durable`); and
//! append-only logs whose torn tail is cut on open.

use ferry_s3::durable;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// `ferry_s3::durable::write_atomic`, with the failed step in the error.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, data, None)
}

/// As [`write_atomic`], the new file with `mode` from its first byte.
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: Option<u32>) -> io::Result<()> {
    durable::write_atomic(path, data, mode)
        .map_err(|(step, e)| io::Error::new(e.kind(), format!("{}: {e}", step.as_str())))
}

pub use durable::sync_dir;

/// Opens a log for appending. A process killed mid-write can only leave
/// whole lines (each batch is one `write`), but a power cut can leave a torn
/// tail: cut it back to the last newline, so the log's last line is always a
/// whole key. Reads only the tail, however large the log.
pub fn open_append_repaired(path: &Path) -> io::Result<File> {
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let len = f.metadata()?.len();
    if len > 0 {
        let mut end = len;
        let mut block = vec![0u8; 64 * 1024];
        let keep = loop {
            let start = end.saturating_sub(block.len() as u64);
            let n = (end - start) as usize;
            f.seek(SeekFrom::Start(start))?;
            f.read_exact(&mut block[..n])?;
            if end == len && block[n - 1] == b'\n' {
                break len;
            }
            if let Some(i) = block[..n].iter().rposition(|&b| b == b'\n') {
                break start + i as u64 + 1;
            }
            if start == 0 {
                break 0;
            }
            end = start;
        };
        if keep != len {
            f.set_len(keep)?;
            f.sync_all()?;
        }
    }
    Ok(f)
}

/// The last line of a text file, read from its tail.
pub fn last_line(path: &Path) -> io::Result<Option<String>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let take = len.min(8 * 1024);
    f.seek(SeekFrom::Start(len - take))?;
    let mut buf = Vec::with_capacity(take as usize);
    f.read_to_end(&mut buf)?;
    let trimmed = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let line = match trimmed.iter().rposition(|&b| b == b'\n') {
        Some(i) => &trimmed[i + 1..],
        None if take == len => trimmed,
        None => return Ok(None),
    };
    if line.is_empty() {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(line).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;

    #[test]
    fn torn_tail_is_cut_to_last_whole_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("migrate.log");
        fs::write(&p, "a\nb\nhalf").unwrap();
        let mut f = open_append_repaired(&p).unwrap();
        f.write_all(b"c\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "a\nb\nc\n");
        assert_eq!(last_line(&p).unwrap().as_deref(), Some("c"));
    }
}
