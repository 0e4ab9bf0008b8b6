//! Running `rclone copy` between two stores, configured through the
//! environment only (no config file).

use std::ffi::OsString;
use std::path::Path;

use ferry_harness::Store;

use crate::bench::{DEST_BUCKET, SRC_BUCKET};
use crate::proc::{self, Child, Timed};

/// `--transfers 64 --checkers 16`.
pub const TUNED: &[&str] = &["--transfers", "64", "--checkers", "16"];

fn remote_env(name: &str, store: &Store) -> Vec<(String, String)> {
    let p = format!("RCLONE_CONFIG_{name}_");
    vec![
        (format!("{p}TYPE"), "s3".into()),
        (format!("{p}PROVIDER"), "Other".into()),
        (format!("{p}ENDPOINT"), store.endpoint.clone()),
        (format!("{p}ACCESS_KEY_ID"), store.access_key.clone()),
        (format!("{p}SECRET_ACCESS_KEY"), store.secret_key.clone()),
        (format!("{p}REGION"), store.region.clone()),
        (format!("{p}FORCE_PATH_STYLE"), "true".into()),
    ]
}

/// `rclone copy src:SRC_BUCKET dst:DEST_BUCKET [extra]`. The harness drops
/// `AWS_CA_BUNDLE` from the child's environment (rclone 1.60 fails on every
/// S3 remote when it is set).
pub fn run(
    bin: &Path,
    src: &Store,
    dest: &Store,
    extra: &[&str],
    work: &Path,
) -> anyhow::Result<Timed> {
    std::fs::create_dir_all(work)?;
    let log = tempfile::Builder::new()
        .prefix("rclone-")
        .suffix(".log")
        .tempfile_in(work)?
        .keep()?
        .1;
    let mut args: Vec<OsString> = vec![
        "copy".into(),
        format!("src:{SRC_BUCKET}").into(),
        format!("dst:{DEST_BUCKET}").into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    let mut envs = remote_env("SRC", src);
    envs.extend(remote_env("DST", dest));
    // A config path that does not exist: only the environment configures.
    envs.push((
        "RCLONE_CONFIG".into(),
        work.join("no-rclone.conf").display().to_string(),
    ));
    proc::run(Child {
        program: bin,
        args,
        envs,
        log,
    })
}

/// `rclone version`'s first line.
pub fn describe(bin: &Path) -> String {
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("version");
    ferry_harness::apply_loopback_env(&mut cmd);
    cmd.output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| format!("{} (version unknown)", bin.display()))
}
