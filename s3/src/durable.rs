//! Crash-safe files: write a temporary file beside the target, fsync it,
//! rename it into place, fsync the folder. A reader sees the old file or
//! the new one, never a torn mix, whatever kills the process; a failed
//! write leaves the old file as it was. And append-only logs whose torn
//! tail is cut on open.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Which step of [`write_atomic`] failed, for an error that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CreateTmp,
    SetMode,
    Write,
    Fsync,
    Rename,
    FsyncFolder,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::CreateTmp => "create its temporary file",
            Step::SetMode => "set the mode of its temporary file",
            Step::Write => "write",
            Step::Fsync => "fsync",
            Step::Rename => "rename into place",
            Step::FsyncFolder => "fsync its folder",
        }
    }
}

/// The temporary file a write of `path` goes through: a hidden name in the
/// same folder, so that the rename is atomic.
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    path.with_file_name(format!(".{name}.tmp"))
}

fn folder(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Replaces `path` with `data`, crash-safe. `mode` (such as 0o600 for a
/// file that holds secrets) is set on the new file before any byte is
/// written, also when a leftover temporary file had another mode.
pub fn write_atomic(path: &Path, data: &[u8], mode: Option<u32>) -> Result<(), (Step, io::Error)> {
    let tmp = tmp_path(path);
    let written = write_tmp(&tmp, data, mode)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| (Step::Rename, e)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(folder(path)).map_err(|e| (Step::FsyncFolder, e))
}

/// [`write_atomic`] with the failed step in an [`io::Error`]'s text, for
/// callers that report I/O errors as they come.
pub fn write(path: &Path, data: &[u8], mode: Option<u32>) -> io::Result<()> {
    write_atomic(path, data, mode)
        .map_err(|(step, e)| io::Error::new(e.kind(), format!("{}: {e}", step.as_str())))
}

fn write_tmp(tmp: &Path, data: &[u8], mode: Option<u32>) -> Result<(), (Step, io::Error)> {
    let mut open = OpenOptions::new();
    open.write(true).create(true).truncate(true);
    if let Some(m) = mode {
        open.mode(m);
    }
    let mut f = open.open(tmp).map_err(|e| (Step::CreateTmp, e))?;
    if let Some(m) = mode {
        // open() keeps the mode of a file that was already there.
        f.set_permissions(fs::Permissions::from_mode(m))
            .map_err(|e| (Step::SetMode, e))?;
    }
    f.write_all(data).map_err(|e| (Step::Write, e))?;
    f.sync_all().map_err(|e| (Step::Fsync, e))
}

/// Makes a rename or a new file in `dir` durable.
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
    fn replaces_whole_with_the_mode_asked_and_no_tmp_left() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        // A leftover temporary file, world-readable, from a crash.
        fs::write(tmp_path(&p), b"torn").unwrap();
        fs::set_permissions(tmp_path(&p), fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&p, b"one", Some(0o600)).unwrap();
        write_atomic(&p, b"two", Some(0o600)).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"old", None).unwrap();
        // A folder where the temporary file must go makes the write fail.
        fs::create_dir(tmp_path(&p)).unwrap();
        let (step, _) = write_atomic(&p, b"new", None).unwrap_err();
        assert_eq!(step, Step::CreateTmp);
        assert_eq!(fs::read(&p).unwrap(), b"old");
    }

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
