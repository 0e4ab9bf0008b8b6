//! Binding an admin socket: replace a stale socket file, bind, mode 0660,
//! group `socket_group` (when that group exists).

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::unistd::{Group, chown};
use tokio::net::UnixListener;

/// Why the admin socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("admin socket {}: {problem}", path.display())]
pub struct BindError {
    pub path: PathBuf,
    pub problem: String,
}

/// Bind the admin socket at `path` for group `group`. Call it from inside a
/// tokio runtime. A socket file left by an earlier run is replaced; a live
/// one (another process answers on it) or a file that is not a socket is
/// refused.
pub fn bind(path: &Path, group: &str) -> Result<UnixListener, BindError> {
    let err = |problem: String| BindError {
        path: path.to_owned(),
        problem,
    };
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(err(
                    "another process is serving this socket (is the daemon already running?)"
                        .into(),
                ));
            }
            fs::remove_file(path)
                .map_err(|e| err(format!("cannot remove the stale socket: {e}")))?;
        }
        Ok(_) => {
            return Err(err(
                "exists and is not a socket; refusing to remove it".into()
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e.to_string())),
    }
    let listener = UnixListener::bind(path).map_err(|e| err(format!("cannot bind: {e}")))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o660))
        .map_err(|e| err(format!("cannot set mode 0660: {e}")))?;
    match Group::from_name(group) {
        Ok(Some(g)) => chown(path, None, Some(g.gid))
            .map_err(|e| err(format!("cannot give it to group {group}: {e}")))?,
        Ok(None) => tracing::warn!(
            socket = %path.display(),
            group,
            "group does not exist; the admin socket stays its owner's"
        ),
        Err(e) => {
            tracing::warn!(socket = %path.display(), group, error = %e, "cannot look up the group")
        }
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[tokio::test]
    async fn binds_with_mode_and_group_and_replaces_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        // A stale socket: bound once, its listener gone.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let l = bind(&path, "root").unwrap();
        let m = fs::metadata(&path).unwrap();
        assert_eq!(m.mode() & 0o777, 0o660);
        assert_eq!(m.gid(), 0);

        // A live one is refused.
        let e = bind(&path, "root").unwrap_err();
        assert!(e.to_string().contains("another process"), "{e}");
        drop(l);

        // A regular file is never removed.
        let file = dir.path().join("not-a-socket");
        fs::write(&file, "x").unwrap();
        let e = bind(&file, "root").unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(fs::read(&file).unwrap(), b"x");
    }
}
