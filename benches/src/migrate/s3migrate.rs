//! Running `s3migrate` between two stores.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ferry_harness::Store;

use crate::bench::{DEST_BUCKET, SRC_BUCKET};
use crate::proc::{self, Child, Timed};

/// Where the keys come from.
pub enum Source<'a> {
    /// `--src-list`: ListObjectsV2 of the source bucket.
    List,
    /// `--src-folder DIR`: a folder of sorted key-list chunks.
    Folder(&'a Path),
}

pub struct Options<'a> {
    pub source: Source<'a>,
    pub threads: usize,
    pub part_threads: Option<usize>,
    pub dry_run: bool,
    /// `--delete-journal BUCKET`.
    pub journal: Option<&'a str>,
}

/// The fields of the pass summary the report uses.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub copied: u64,
    pub fail: u64,
    pub elapsed_secs: f64,
    pub bytes_uploaded: u64,
    pub progress: String,
}

/// Run one copy (or dry run) from `src/SRC_BUCKET` to `dest/DEST_BUCKET`,
/// with a fresh empty dest folder under `work`.
pub fn run(
    bin: &Path,
    src: &Store,
    dest: &Store,
    opts: &Options<'_>,
    work: &Path,
) -> anyhow::Result<(Timed, Summary)> {
    std::fs::create_dir_all(work)?;
    let folder = tempfile::Builder::new()
        .prefix("s3migrate-dest-folder-")
        .tempdir_in(work)?
        .keep();
    let mut args: Vec<OsString> = Vec::new();
    let mut flag = |k: &str, v: &str| {
        args.push(k.into());
        args.push(v.into());
    };
    flag("--src-url", &src.endpoint);
    flag("--src-bucket", SRC_BUCKET);
    flag("--src-key", &src.access_key);
    flag("--src-region", &src.region);
    flag("--dest-url", &dest.endpoint);
    flag("--dest-bucket", DEST_BUCKET);
    flag("--dest-key", &dest.access_key);
    flag("--dest-region", &dest.region);
    flag("--threads", &opts.threads.to_string());
    if let Some(p) = opts.part_threads {
        flag("--part-threads", &p.to_string());
    }
    if let Some(j) = opts.journal {
        flag("--delete-journal", j);
    }
    args.push("--dest-folder".into());
    args.push(folder.clone().into());
    match opts.source {
        Source::List => args.push("--src-list".into()),
        Source::Folder(dir) => {
            args.push("--src-folder".into());
            args.push(dir.into());
        }
    }
    // Garage ignores If-None-Match: without this s3migrate refuses to run.
    args.push("--allow-overwrite".into());
    if opts.dry_run {
        args.push("--dry-run".into());
    }
    let timed = proc::run(Child {
        program: bin,
        args,
        envs: vec![
            ("S3MIGRATE_SRC_SECRET".into(), src.secret_key.clone()),
            ("S3MIGRATE_DEST_SECRET".into(), dest.secret_key.clone()),
        ],
        log: folder.with_extension("log"),
    })?;
    let summary = read_summary(&folder).with_context(|| {
        format!(
            "s3migrate ({}) left no readable summary in {}; its output:\n{}",
            timed.status,
            folder.display(),
            proc::log_tail(&timed.log, 20)
        )
    })?;
    Ok((timed, summary))
}

/// The last pass's `summary-*.json` in the dest folder.
fn read_summary(folder: &Path) -> anyhow::Result<Summary> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("summary-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    let path = files.last().context("no summary-*.json")?;
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)
        .with_context(|| format!("parse {}", path.display()))?;
    let u = |ptr: &str| {
        v.pointer(ptr)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    Ok(Summary {
        copied: u("/objects/copied"),
        fail: u("/objects/fail"),
        elapsed_secs: v
            .pointer("/elapsed_secs")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0),
        bytes_uploaded: u("/bytes_uploaded"),
        progress: v
            .pointer("/progress")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

/// `s3migrate --version`, and when the binary was built.
pub fn describe(bin: &Path) -> String {
    let version = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let built = std::fs::metadata(bin)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| {
            time::OffsetDateTime::from(t)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        })
        .unwrap_or_default();
    format!("{version} (binary built {built})")
}
