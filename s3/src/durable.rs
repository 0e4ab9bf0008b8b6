//! Crash-safe files: write a temporary file beside the target, fsync it,
//! rename it into place, fsync the folder. A reader sees the old file or
//! the new one, never a torn mix, whatever kills the process; a failed
//! write leaves the old file as it was.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
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
}
