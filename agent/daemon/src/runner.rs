//! Where the job kinds meet: a job is checked before it is created
//! ([`check`]) and each run made ([`runner`]) here, by kind; the manager
//! knows only [`crate::run`]'s types. Each kind's run is in its own module
//! ([`crate::migrate_job`], [`crate::find_job`], [`crate::watch_job`]).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ferry_control::{JobSecrets, JobSpec};
use s3migrate::Control;

use futures::future::BoxFuture;

use crate::RunEnd;
use crate::run::{Common, Steer};
use crate::{find_job, migrate_job, watch_job};

/// Checks a job before it is created, as its engine would, so that a job
/// that can never run is refused at `start`.
pub fn check(spec: &JobSpec, secrets: &JobSecrets) -> Result<(), String> {
    if let JobSpec::Migrate(o) = spec {
        for (s, which) in [
            (&secrets.src_secret, "source (src_secret)"),
            (&secrets.dest_secret, "destination (dest_secret)"),
        ] {
            if s.as_deref().is_none_or(str::is_empty) {
                return Err(format!("the {which} secret is missing"));
            }
        }
        return migrate_job::check(o);
    }
    if secrets.src_secret.is_some() || secrets.dest_secret.is_some() {
        return Err(format!("a {} job takes no secrets", spec.kind()));
    }
    let (bucket, directory, output_dir) = match spec {
        JobSpec::Find(o) => (&o.bucket, &o.directory, &o.output_dir),
        JobSpec::Watch(o) => (&o.bucket, &o.directory, &o.output_dir),
        JobSpec::Migrate(_) => unreachable!("checked above"),
    };
    if let Some(b) = bucket {
        ferry_control::check_bucket_name(b)?;
    }
    check_scan_dirs(directory, output_dir)?;
    match spec {
        JobSpec::Find(o) => find_job::options(o, false).map(drop),
        JobSpec::Watch(o) => watch_job::options(o, false).map(drop),
        JobSpec::Migrate(_) => unreachable!("checked above"),
    }
}

/// A scan's places: DIRECTORY and OUTPUT_DIR absolute (the agent has no
/// working directory of the caller's), DIRECTORY a directory.
fn check_scan_dirs(directory: &Path, output_dir: &Path) -> Result<(), String> {
    for (what, p) in [("DIRECTORY", directory), ("OUTPUT_DIR", output_dir)] {
        if !p.is_absolute() {
            return Err(format!(
                "{what} {} is relative; the agent needs an absolute path",
                p.display()
            ));
        }
    }
    match std::fs::metadata(directory) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "DIRECTORY {}: not a directory",
            directory.display()
        )),
        Err(e) => Err(format!("DIRECTORY {}: {e}", directory.display())),
    }
}

/// The run of `spec`, ready to go, and the handle the manager steers it by.
pub fn runner(spec: &JobSpec, common: Common) -> (Steer, BoxFuture<'static, RunEnd>) {
    match spec {
        JobSpec::Migrate(o) => {
            let control = Control::new();
            let input = migrate_job::RunInput {
                opts: o.clone(),
                control: control.clone(),
                common,
            };
            (Steer::Copy(control), Box::pin(migrate_job::run(input)))
        }
        JobSpec::Find(o) => (Steer::Fixed, Box::pin(find_job::run(o.clone(), common))),
        JobSpec::Watch(o) => {
            let stop = Arc::new(AtomicBool::new(false));
            let run = watch_job::run(o.clone(), stop.clone(), common);
            (Steer::Watch(stop), Box::pin(run))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_directory_is_absolute_and_there() {
        for kind in ["find", "watch"] {
            let spec = |dir: &str| -> JobSpec {
                serde_json::from_value(
                    serde_json::json!({"kind": kind, "directory": dir, "output_dir": "/l"}),
                )
                .unwrap()
            };
            let refusal = |dir: &str| check(&spec(dir), &Default::default()).unwrap_err();
            assert!(refusal("mnt").contains("relative"), "{kind}");
            assert!(
                refusal("/nonexistent-xyz").contains("nonexistent-xyz"),
                "{kind}"
            );
        }
    }
}
