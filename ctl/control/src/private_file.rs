//! Files that hold secrets (a secret file, the users file): refused unless
//! only their owner may read them, so that a secret never sits where group
//! or others can read it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Refuse a secret-bearing file that group or others may access: it must be
/// a regular file with mode 0600 or stricter.
pub fn check_private_file(path: &Path) -> Result<(), String> {
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} holds secrets but has mode {mode:04o}, which lets group or others read or \
             change it; run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// Read a secret file: private (see [`check_private_file`]), first line,
/// surrounding whitespace trimmed, not empty.
pub fn read_secret_file(path: &Path) -> Result<String, String> {
    check_private_file(path)?;
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let secret = text.lines().next().unwrap_or_default().trim();
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(secret.to_owned())
}
