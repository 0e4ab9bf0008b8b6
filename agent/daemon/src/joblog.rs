//! `job.log`: one line per event (`<RFC 3339> <message>`), appended with
//! one `write` per line, and read back from its tail for `ferryctl job logs`.
//! Nothing secret is ever written here: callers log specs through
//! [`super::describe`], never a raw engine `Args`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::now_rfc3339;

/// Largest tail read back, whatever the number of lines asked for.
const MAX_TAIL_BYTES: u64 = 4 << 20;

/// Appends one line. A log that cannot be written is reported, never
/// fatal: the job's state is in `state.json`.
pub fn append(path: &Path, message: &str) {
    let mut line = format!("{} {}", now_rfc3339(), message.replace('\n', " "));
    line.push('\n');
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(log = %path.display(), error = %e, "cannot write the job log");
    }
}

/// The last `n` lines of the log, and whether there are more.
pub fn tail(path: &Path, n: usize) -> io::Result<(Vec<String>, bool)> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), false)),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let take = len.min(MAX_TAIL_BYTES);
    f.seek(SeekFrom::Start(len - take))?;
    let mut buf = Vec::with_capacity(take as usize);
    f.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.lines().collect();
    // A cut first line is not a line.
    if take < len && !lines.is_empty() {
        lines.remove(0);
    }
    let more = lines.len() > n || take < len;
    let start = lines.len().saturating_sub(n);
    Ok((
        lines[start..].iter().map(|l| (*l).to_owned()).collect(),
        more,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_tails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("job.log");
        assert_eq!(tail(&p, 5).unwrap(), (vec![], false));
        for i in 0..10 {
            append(&p, &format!("event {i}\nwith a newline"));
        }
        let (lines, more) = tail(&p, 3).unwrap();
        assert!(more);
        assert_eq!(lines.len(), 3);
        assert!(lines[2].ends_with(" event 9 with a newline"), "{lines:?}");
        let (all, more) = tail(&p, 100).unwrap();
        assert_eq!((all.len(), more), (10, false));
    }
}
