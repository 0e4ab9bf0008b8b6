//! `ferryctl job …`: the agent's jobs (start, list, show, pause, resume,
//! cancel, logs) over its admin socket.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use ferry_control::jobs::WatchOptions;
use ferry_control::{
    Client, FindOptions, FollowUp, JobSecrets, JobSpec, JobView, MigrateOptions, StartJobRequest,
};

use crate::failure::Failure;
use crate::output::{Output, print_rows, print_table};

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Queue a job; it runs as soon as the agent has a free slot.
    Start {
        #[command(subcommand)]
        kind: StartKind,
    },
    /// Every job, by id.
    List,
    /// One job: its state, its progress line (the WEKA format for a copy)
    /// and its pass summaries.
    Show { id: u64 },
    /// Pause a queued or running copy: no new keys are handed out; the
    /// ones in flight finish.
    Pause { id: u64 },
    /// Resume a paused job (or a failed one, from its checkpoint).
    Resume { id: u64 },
    /// Cancel a job: a copy checkpoints migrate.log, a watch finishes its
    /// current set; then it stops for good.
    Cancel { id: u64 },
    /// Copy again just the keys a stopped copy job failed (its failed.log),
    /// as a new job with the same options and secrets, in the same folder.
    Retry { id: u64 },
    /// The last lines of the job's log.
    Logs {
        id: u64,
        /// How many lines (at most 10000).
        #[arg(long, default_value_t = 100, value_name = "N")]
        lines: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum StartKind {
    /// An s3migrate copy, with s3migrate's flags. Secrets come from
    /// --src-secret-file/--dest-secret-file or S3MIGRATE_SRC_SECRET /
    /// S3MIGRATE_DEST_SECRET, never from the command line.
    Migrate {
        #[command(flatten)]
        opts: Box<MigrateOptions>,
        #[command(flatten)]
        secrets: SecretFiles,
    },
    /// An s3find scan of DIRECTORY into key-list chunks in OUTPUT_DIR.
    Find {
        #[command(flatten)]
        opts: FindOptions,
        /// The bucket this directory holds, for `job list` and metric
        /// labels. Default: the directory's name.
        #[arg(long, value_name = "BUCKET")]
        bucket: Option<String>,
    },
    /// An s3find watch of DIRECTORY: the full list in OUTPUT_DIR, then
    /// every --interval seconds an incremental set in OUTPUT_DIR/incr/.
    /// Runs until cancelled.
    Watch {
        #[command(flatten)]
        opts: WatchOptions,
    },
}

#[derive(Args, Debug)]
pub struct SecretFiles {
    /// File holding the source secret (its first line). Default: the
    /// environment variable S3MIGRATE_SRC_SECRET.
    #[arg(long, value_name = "FILE")]
    src_secret_file: Option<PathBuf>,
    /// File holding the destination secret (its first line). Default: the
    /// environment variable S3MIGRATE_DEST_SECRET.
    #[arg(long, value_name = "FILE")]
    dest_secret_file: Option<PathBuf>,
}

/// Flags refused before parsing: secrets on the command line.
pub const REFUSED_SECRET_FLAGS: [&str; 2] = ["--src-secret", "--dest-secret"];

pub fn run(client: &Client, out: Output, command: JobCommand) -> Result<(), Failure> {
    match command {
        JobCommand::Start { kind } => {
            let req = match kind {
                StartKind::Migrate { mut opts, secrets } => {
                    for p in [
                        &mut opts.src_folder,
                        &mut opts.dest_folder,
                        &mut opts.failed_to_folder,
                        &mut opts.src_ca_file,
                        &mut opts.dest_ca_file,
                    ]
                    .into_iter()
                    .flatten()
                    {
                        *p = absolute(p)?;
                    }
                    let secrets = JobSecrets {
                        src_secret: Some(secret(
                            &secrets.src_secret_file,
                            "--src-secret-file",
                            "S3MIGRATE_SRC_SECRET",
                        )?),
                        dest_secret: Some(secret(
                            &secrets.dest_secret_file,
                            "--dest-secret-file",
                            "S3MIGRATE_DEST_SECRET",
                        )?),
                    };
                    let spec = JobSpec::Migrate(*opts);
                    StartJobRequest { spec, secrets }
                }
                StartKind::Find { mut opts, bucket } => {
                    opts.bucket = bucket;
                    opts.directory = absolute(&opts.directory)?;
                    opts.output_dir = absolute(&opts.output_dir)?;
                    let spec = JobSpec::Find(opts);
                    let secrets = JobSecrets::default();
                    StartJobRequest { spec, secrets }
                }
                StartKind::Watch { mut opts } => {
                    opts.directory = absolute(&opts.directory)?;
                    opts.output_dir = absolute(&opts.output_dir)?;
                    let spec = JobSpec::Watch(opts);
                    let secrets = JobSecrets::default();
                    StartJobRequest { spec, secrets }
                }
            };
            out.emit(&client.start_job(&req)?, |v| {
                println!(
                    "job {} {} ({} {}); folder {}",
                    v.status.id, v.status.state, v.status.kind, v.status.bucket, v.folder
                )
            });
        }
        JobCommand::List => out.emit(&client.jobs()?, |j| print_list(j)),
        JobCommand::Show { id } => out.emit(&client.job(id)?, print_show),
        JobCommand::Pause { id } => out.emit(&client.pause_job(id)?, said),
        JobCommand::Resume { id } => out.emit(&client.resume_job(id)?, said),
        JobCommand::Cancel { id } => out.emit(&client.cancel_job(id)?, said),
        JobCommand::Retry { id } => out.emit(&client.follow_up(id, FollowUp::Retry)?, |v| {
            println!(
                "job {}: retrying the failed keys of job {id}; {} in {}",
                v.status.id, v.status.state, v.folder
            )
        }),
        JobCommand::Logs { id, lines } => out.emit(&client.job_logs(id, lines)?, |logs| {
            for l in &logs.lines {
                println!("{l}");
            }
        }),
    }
    Ok(())
}

fn said(v: &JobView) {
    println!("job {}: {}", v.status.id, v.status.state);
}

/// The secret from its file (first line), else from the environment.
fn secret(file: &Option<PathBuf>, flag: &str, env: &str) -> Result<String, Failure> {
    let value = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("{flag} {}: {e}", path.display())))?,
        None => std::env::var(env).map_err(|_| {
            Failure::Usage(format!(
                "no secret: give {flag} FILE or set {env} (never the secret itself on the \
                 command line)"
            ))
        })?,
    };
    let line = value.lines().next().unwrap_or_default().trim().to_owned();
    if line.is_empty() {
        return Err(Failure::Usage(format!("the secret for {flag} is empty")));
    }
    Ok(line)
}

/// Paths go to the agent absolute: it does not share our working folder.
fn absolute(p: &Path) -> Result<PathBuf, Failure> {
    std::path::absolute(p).map_err(|e| Failure::Usage(format!("{}: {e}", p.display())))
}

fn print_show(v: &JobView) {
    let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".to_owned());
    let mut rows = vec![
        ("id", v.status.id.to_string()),
        ("kind", v.status.kind.to_string()),
        ("bucket", v.status.bucket.clone()),
        ("state", v.status.state.to_string()),
        ("created at", v.status.created_at.clone()),
        ("started at", or_dash(&v.status.started_at)),
        ("updated at", v.status.updated_at.clone()),
        ("finished at", or_dash(&v.status.finished_at)),
        ("runs", v.status.attempts.to_string()),
        ("folder", v.folder.clone()),
    ];
    if let Some(i) = &v.status.interrupted {
        rows.push(("interrupted", i.clone()));
    }
    if let Some(e) = &v.status.last_error {
        rows.push(("last error", e.clone()));
    }
    if let Some(f) = &v.status.find {
        rows.push((
            "scan",
            format!(
                "files={} dirs={} skipped={} errors={} chunks={} in {:.1}s",
                f.files, f.dirs, f.skipped, f.errors, f.chunks, f.elapsed_secs
            ),
        ));
    }
    if let Some(w) = &v.watch {
        rows.push((
            "watch",
            format!(
                "sets={} (last {}) changed={} deleted={} held-back={} rescans={} state-files={} in {:.1}s",
                w.sets,
                w.last_set.as_deref().unwrap_or("none"),
                w.changed,
                w.deleted,
                w.held_back,
                w.rescans,
                w.state_files,
                w.elapsed_secs
            ),
        ));
        rows.push((
            "initial scan",
            format!(
                "files={} chunks={} watched-dirs={} unwatched-dirs={}",
                w.initial_files, w.initial_chunks, w.watched_dirs, w.unwatched_dirs
            ),
        ));
    }
    rows.push(("progress", or_dash(&v.status.progress)));
    print_rows(13, &rows);
    if v.passes.is_empty() {
        return;
    }
    println!("passes:");
    for p in &v.passes {
        let o = &p.objects;
        println!(
            "  pass {} (run {}{}{}): {} in {:.1}s",
            p.pass,
            p.run_id,
            if p.complete { "" } else { ", stopped early" },
            if p.dry_run { ", dry run" } else { "" },
            o.line(),
            p.elapsed_secs
        );
        for (class, n) in &p.errors_by_class {
            println!("    failed {class}: {n}");
        }
        if !p.progress.is_empty() {
            println!("    {}", p.progress);
        }
    }
}

fn print_list(jobs: &[JobView]) {
    let header = ["ID", "KIND", "BUCKET", "STATE", "RUNS", "UPDATED"];
    let rows: Vec<[String; 6]> = jobs
        .iter()
        .map(|v| {
            [
                v.status.id.to_string(),
                v.status.kind.to_string(),
                v.status.bucket.clone(),
                v.status.state.to_string(),
                v.status.attempts.to_string(),
                v.status.updated_at.clone(),
            ]
        })
        .collect();
    print_table(header, &rows);
}
