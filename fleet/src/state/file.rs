//! [`FileStore`]: the bucket table in one local JSON file, written crash-safe
//! (tmp file, fsync, rename, fsync of the folder) with mode 0600, because it
//! holds the sources' secrets.

// The state file is read at start and written by the admin API through
// spawn_blocking (admin/mod.rs); never on the request path.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;

use ferry_s3::durable::write_atomic;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{BucketTable, STATE_VERSION, StateError, StateStore};

/// The bucket table in a local file.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> FileStore {
        FileStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, op: &'static str) -> impl FnOnce(io::Error) -> StateError + '_ {
        move |source| StateError::Io {
            path: self.path.clone(),
            op,
            source,
        }
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

impl StateStore for FileStore {
    fn load(&self) -> Result<BucketTable, StateError> {
        let text = match fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BucketTable::default()),
            Err(e) => return Err(self.io("read")(e)),
        };
        let mode = fs::metadata(&self.path)
            .map_err(self.io("stat"))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(StateError::Invalid {
                path: self.path.clone(),
                detail: format!(
                    "holds source secrets but has mode {mode:04o}; run `chmod 600 {}`",
                    self.path.display()
                ),
            });
        }
        let invalid = |e: serde_json::Error| StateError::Invalid {
            path: self.path.clone(),
            detail: format!("not a Ferry state file: {e}"),
        };
        let VersionOnly { version } = serde_json::from_slice(&text).map_err(invalid)?;
        if version > STATE_VERSION {
            return Err(StateError::TooNew {
                path: self.path.clone(),
                found: version,
            });
        }
        let table: BucketTable = serde_json::from_slice(&text).map_err(invalid)?;
        if let Some((key, b)) = table.buckets.iter().find(|(k, b)| **k != b.bucket) {
            return Err(StateError::Invalid {
                path: self.path.clone(),
                detail: format!("entry {key:?} describes bucket {:?}", b.bucket),
            });
        }
        Ok(table)
    }

    fn save(&self, t: &BucketTable) -> Result<(), StateError> {
        let mut data = serde_json::to_vec_pretty(t).map_err(|e| StateError::Invalid {
            path: self.path.clone(),
            detail: format!("cannot encode: {e}"),
        })?;
        data.push(b'\n');
        // Mode 0600: the file holds the sources' secrets.
        write_atomic(&self.path, &data, Some(0o600)).map_err(|(step, e)| self.io(step.as_str())(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::bucket;
    use ferry_control::Mode;

    fn table() -> BucketTable {
        let mut t = BucketTable::default();
        for (name, mode) in [("alpha", Mode::Ready), ("beta", Mode::Migrate)] {
            t.buckets.insert(name.into(), bucket(name, mode));
        }
        t.buckets.get_mut("beta").unwrap().source_uploads = vec![super::super::SourceUpload {
            key: "big/file".into(),
            upload_id: "u-1".into(),
        }];
        t.buckets.get_mut("alpha").unwrap().tls_cert_pem =
            Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into());
        t
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn missing_file_is_an_empty_table() {
        let dir = tempfile::tempdir().unwrap();
        let t = FileStore::new(dir.path().join("state.json"))
            .load()
            .unwrap();
        assert_eq!(t, BucketTable::default());
        assert_eq!(t.version, STATE_VERSION);
    }

    #[test]
    fn round_trip_is_private_and_leaves_no_tmp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let store = FileStore::new(&path);
        let t = table();
        store.save(&t).unwrap();
        assert_eq!(store.load().unwrap(), t);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(names(dir.path()), ["state.json"]);

        // A second save replaces the file whole.
        let mut t2 = t.clone();
        t2.buckets.remove("alpha");
        store.save(&t2).unwrap();
        assert_eq!(store.load().unwrap(), t2);
        assert_eq!(names(dir.path()), ["state.json"]);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
    }

    #[test]
    fn leftover_tmp_file_with_wide_mode_does_not_leak_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let store = FileStore::new(&path);
        let tmp = ferry_s3::durable::tmp_path(store.path());
        fs::write(&tmp, "half a write").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        store.save(&table()).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(names(dir.path()), ["state.json"]);
    }

    #[test]
    fn save_failure_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let store = FileStore::new(&path);
        store.save(&table()).unwrap();
        // A folder where the tmp file should go makes its creation fail.
        fs::create_dir(ferry_s3::durable::tmp_path(store.path())).unwrap();
        let e = store.save(&BucketTable::default()).unwrap_err();
        assert!(e.to_string().contains("state.json"), "{e}");
        assert_eq!(store.load().unwrap(), table());
    }

    #[test]
    fn refuses_newer_versions_corrupt_files_and_wide_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let store = FileStore::new(&path);
        let write = |text: &str, mode: u32| {
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        };
        write(r#"{"version": 2, "buckets": {}}"#, 0o600);
        assert!(matches!(
            store.load(),
            Err(StateError::TooNew { found: 2, .. })
        ));
        write("{not json", 0o600);
        assert!(matches!(store.load(), Err(StateError::Invalid { .. })));
        write(r#"{"version": 1, "buckets": {}}"#, 0o644);
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        write(r#"{"version": 1, "buckets": {}}"#, 0o600);
        assert_eq!(store.load().unwrap(), BucketTable::default());

        let mut t = table();
        let b = t.buckets.remove("alpha").unwrap();
        t.buckets.insert("other".into(), b);
        write(&serde_json::to_string(&t).unwrap(), 0o600);
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains("\"other\""), "{e}");
    }
}
