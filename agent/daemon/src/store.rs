//! A job's files under `STATE_DIR/jobs/<id>/`, each written crash-safe
//! (tmp, fsync, rename, fsync of the folder) with a `version` field:
//!
//! - `spec.json`: the job's kind and options, never a secret;
//! - `secrets.json`: the secrets it was started with, mode 0600 from the
//!   moment it is created; never returned by the API, never logged;
//! - `state.json`: where the job is ([`JobRecord`]);
//! - `job.log`: what happened, appended ([`super::joblog`]).
//!
//! A new job's folder is built as `jobs/.new-<id>` and renamed into place
//! whole, so a crash never leaves a job without its spec or state.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use ferry_control::jobs::JobStatus;
use ferry_control::{JobKind, JobSecrets, JobSpec};
use serde::{Deserialize, Serialize};

use ferry_s3::durable;

/// Layout version of `spec.json`, `secrets.json` and `state.json`.
pub const VERSION: u32 = 1;

pub const SPEC_FILE: &str = "spec.json";
pub const SECRETS_FILE: &str = "secrets.json";
pub const STATE_FILE: &str = "state.json";
pub const LOG_FILE: &str = "job.log";
/// A copy job's dest folder unless its spec names one.
pub const DEST_DIR: &str = "dest";
const NEW_PREFIX: &str = ".new-";

/// `state.json`: a job's state, as it survives a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRecord {
    pub version: u32,
    #[serde(flatten)]
    pub status: JobStatus,
    /// A user asked to cancel; the run was told to checkpoint and stop. A
    /// job found running with this set after a restart is cancelled, not
    /// resumed.
    #[serde(default)]
    pub cancel_requested: bool,
    /// The copy's dest folder, or the scan's output folder.
    pub folder: PathBuf,
}

impl JobRecord {
    /// A new job's record, made at `now`: queued, never run.
    pub fn new(id: u64, kind: JobKind, bucket: String, now: String, folder: PathBuf) -> JobRecord {
        JobRecord {
            version: VERSION,
            status: JobStatus::new(id, kind, bucket, now),
            cancel_requested: false,
            folder,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    version: u32,
    spec: JobSpec,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    version: u32,
    src_secret: Option<String>,
    dest_secret: Option<String>,
}

/// Why a job's files could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {problem}", path.display())]
    Bad { path: PathBuf, problem: String },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The `jobs/` folder of a state dir.
#[derive(Debug, Clone)]
pub struct Store {
    jobs: PathBuf,
}

impl Store {
    /// Creates `STATE_DIR/jobs` (mode 0700) if missing.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let jobs = state_dir.join("jobs");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&jobs)
            .map_err(io_at(&jobs))?;
        Ok(Store { jobs })
    }

    pub fn job_dir(&self, id: u64) -> PathBuf {
        self.jobs.join(id.to_string())
    }

    /// Every job's folder id, and the highest id ever used (unfinished
    /// `.new-` folders included, so an id is never reused).
    pub fn scan(&self) -> Result<(Vec<u64>, u64), StoreError> {
        let mut ids = Vec::new();
        let mut max = 0;
        for entry in fs::read_dir(&self.jobs).map_err(io_at(&self.jobs))? {
            let entry = entry.map_err(io_at(&self.jobs))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = name.strip_prefix(NEW_PREFIX) {
                if let Ok(n) = n.parse::<u64>() {
                    max = max.max(n);
                    // A creation cut short: the job was never acknowledged.
                    let _ = fs::remove_dir_all(entry.path());
                }
            } else if let Ok(n) = name.parse::<u64>() {
                max = max.max(n);
                ids.push(n);
            }
        }
        ids.sort_unstable();
        Ok((ids, max))
    }

    /// Writes a new job's folder whole: spec, secrets (0600), state, an
    /// empty log, then renames it into place.
    pub fn create(
        &self,
        record: &JobRecord,
        spec: &JobSpec,
        secrets: &JobSecrets,
    ) -> Result<PathBuf, StoreError> {
        let tmp = self.jobs.join(format!("{NEW_PREFIX}{}", record.status.id));
        let _ = fs::remove_dir_all(&tmp);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(io_at(&tmp))?;
        write_json(
            &tmp.join(SPEC_FILE),
            &SpecFile {
                version: VERSION,
                spec: spec.clone(),
            },
        )?;
        write_private(
            &tmp.join(SECRETS_FILE),
            &serde_json::to_vec_pretty(&SecretsFile {
                version: VERSION,
                src_secret: secrets.src_secret.clone(),
                dest_secret: secrets.dest_secret.clone(),
            })
            .expect("secrets serialize"),
        )?;
        write_json(&tmp.join(STATE_FILE), record)?;
        let log = tmp.join(LOG_FILE);
        fs::File::create(&log).map_err(io_at(&log))?;
        durable::sync_dir(&tmp).map_err(io_at(&tmp))?;
        let dir = self.job_dir(record.status.id);
        fs::rename(&tmp, &dir).map_err(io_at(&dir))?;
        durable::sync_dir(&self.jobs).map_err(io_at(&self.jobs))?;
        Ok(dir)
    }
}

pub fn load_spec(dir: &Path) -> Result<JobSpec, StoreError> {
    let f: SpecFile = read_json(&dir.join(SPEC_FILE))?;
    check_version(&dir.join(SPEC_FILE), f.version)?;
    Ok(f.spec)
}

pub fn load_secrets(dir: &Path) -> Result<JobSecrets, StoreError> {
    let path = dir.join(SECRETS_FILE);
    let f: SecretsFile = read_json(&path)?;
    check_version(&path, f.version)?;
    Ok(JobSecrets {
        src_secret: f.src_secret,
        dest_secret: f.dest_secret,
    })
}

pub fn load_state(dir: &Path) -> Result<JobRecord, StoreError> {
    let path = dir.join(STATE_FILE);
    let r: JobRecord = read_json(&path)?;
    check_version(&path, r.version)?;
    Ok(r)
}

/// Saves `state.json` crash-safe.
pub fn save_state(dir: &Path, record: &JobRecord) -> Result<(), StoreError> {
    write_json(&dir.join(STATE_FILE), record)
}

fn check_version(path: &Path, v: u32) -> Result<(), StoreError> {
    if v == VERSION {
        return Ok(());
    }
    Err(StoreError::Bad {
        path: path.to_owned(),
        problem: format!("layout version {v}, this agent reads version {VERSION}"),
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let bytes = fs::read(path).map_err(io_at(path))?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Bad {
        path: path.to_owned(),
        problem: e.to_string(),
    })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let json = serde_json::to_vec_pretty(value).expect("job files serialize");
    durable::write(path, &json, None).map_err(io_at(path))
}

/// As [`durable::write_atomic`], but the file is mode 0600 from its first
/// byte: it holds secrets.
fn write_private(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    durable::write(path, data, Some(0o600)).map_err(io_at(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn record(id: u64, folder: PathBuf) -> JobRecord {
        JobRecord::new(
            id,
            JobKind::Find,
            "b".into(),
            "2025-01-01T00:00:00Z".into(),
            folder,
        )
    }

    #[test]
    fn create_load_and_secrets_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let spec: JobSpec =
            serde_json::from_str(r#"{"kind":"find","directory":"/d","output_dir":"/o"}"#).unwrap();
        let secrets = JobSecrets {
            src_secret: Some("s3cr3t-value".into()),
            dest_secret: None,
        };
        let r = record(7, dir.path().join("o"));
        let jd = store.create(&r, &spec, &secrets).unwrap();
        assert_eq!(jd, store.job_dir(7));
        assert_eq!(load_spec(&jd).unwrap(), spec);
        assert_eq!(load_state(&jd).unwrap(), r);
        assert_eq!(load_secrets(&jd).unwrap(), secrets);
        let mode = fs::metadata(jd.join(SECRETS_FILE)).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
        for f in [SPEC_FILE, STATE_FILE] {
            let text = fs::read_to_string(jd.join(f)).unwrap();
            assert!(!text.contains("s3cr3t-value"), "{f}: {text}");
        }

        // A creation cut short is cleaned up, and its id never reused.
        fs::create_dir(dir.path().join("jobs/.new-9")).unwrap();
        let (ids, max) = store.scan().unwrap();
        assert_eq!((ids, max), (vec![7], 9));
        assert!(!dir.path().join("jobs/.new-9").exists());
    }

    /// The shared [`JobStatus`] is flattened: `state.json` keeps the flat
    /// layout of version 1 that agents before it wrote, and still refuses
    /// a field it does not know.
    #[test]
    fn version_1_layout_loads_and_an_unknown_field_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let written_before = r#"{"version":1,"id":4,"kind":"migrate","bucket":"b",
            "state":"running","created_at":"2025-01-01T00:00:00Z","started_at":null,
            "updated_at":"2025-01-01T00:00:01Z","finished_at":null,"attempts":2,
            "cancel_requested":false,"interrupted":"agent stopped","last_error":null,
            "progress":"1 of 2","find":null,"folder":"/d"}"#;
        fs::write(dir.path().join(STATE_FILE), written_before).unwrap();
        let r = load_state(dir.path()).unwrap();
        assert_eq!(
            (r.status.id, r.status.kind, r.status.attempts),
            (4, JobKind::Migrate, 2)
        );
        assert_eq!(r.status.interrupted.as_deref(), Some("agent stopped"));
        assert_eq!(r.folder, PathBuf::from("/d"));

        let with_extra = written_before.replace(r#""folder""#, r#""owner":"x","folder""#);
        fs::write(dir.path().join(STATE_FILE), with_extra).unwrap();
        let e = load_state(dir.path()).unwrap_err();
        assert!(e.to_string().contains("owner"), "{e}");
    }

    #[test]
    fn unknown_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = record(1, dir.path().to_owned());
        r.version = 99;
        save_state(dir.path(), &r).unwrap();
        let e = load_state(dir.path()).unwrap_err();
        assert!(e.to_string().contains("version 99"), "{e}");
    }
}
