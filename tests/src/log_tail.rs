//! The end of a server's log, for a test's failure message.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Last `lines` lines of a (possibly large) file, lossily decoded.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    const MAX: u64 = 16 * 1024;
    let read = || -> std::io::Result<String> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(MAX)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read log: {e})"),
    }
}
