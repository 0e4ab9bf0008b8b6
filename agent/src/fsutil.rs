//! Crash-safe files: write a temporary file, fsync it, rename it into
//! place, fsync the directory. A reader sees the old file or the new one,
//! never a torn mix, whatever kills the process.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

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
