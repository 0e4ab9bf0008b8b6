//! The copy engine behind `s3migrate` (and, later, the agent's migrate
//! jobs): preflight, probes, passes, verify.

pub mod args;
pub mod body;
pub mod control;
pub mod copy;
pub mod entries;
pub mod intents;
pub mod journal;
pub mod ledger;
pub mod metrics;
pub mod partition;
pub mod probe;
pub mod progress;
pub mod records;
pub mod repair;
pub mod retry;
mod run_pass;
pub mod s3;
pub mod throttle;
pub mod verify;
mod watch;
pub mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

pub use args::Args;
pub use control::Control;
use copy::Copier;
pub use ferry_control::{MigrateOptions, VerifyReport};
use partition::Partition;
use probe::Caps;

use crate::retry::RetryPolicy;
use crate::s3::{Endpoint, ErrorClass, S3Error, build_client};
use crate::throttle::Limiter;
use ferry_control::keylist::{self, KeyListWriter};

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad input, found before anything was written. Exit code 2.
    #[error("{0}")]
    Input(String),
    /// The run started but could not go on (a listing failed for good, the
    /// dest folder cannot be written). Exit code 1.
    #[error("{0}")]
    Fatal(String),
    /// Stopped on request; migrate.log holds a clean checkpoint. Exit code 1.
    #[error("cancelled; resume with --start-after set to the last line of migrate.log")]
    Cancelled,
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Input(_) => 2,
            Self::Fatal(_) | Self::Cancelled => 1,
        }
    }
}

fn input(msg: impl Into<String>) -> RunError {
    RunError::Input(msg.into())
}

/// One pass's object counts: the job API's type, so that the summary a
/// pass writes is the one the agent reads.
pub use ferry_control::PassCounts as Counts;

/// The per-pass summary, written as JSON into the dest folder.
#[derive(Debug, Clone, Serialize)]
pub struct PassSummary {
    pub version: u32,
    pub run_id: String,
    pub pass: u32,
    pub dry_run: bool,
    pub started_at: String,
    pub elapsed_secs: f64,
    /// False when the pass stopped before the end of the key space.
    pub complete: bool,
    pub start_after: Option<String>,
    pub last_key: Option<String>,
    pub objects: Counts,
    pub bytes_downloaded: u64,
    pub bytes_uploaded: u64,
    pub tags_dropped: u64,
    pub errors_by_class: BTreeMap<String, u64>,
    pub progress: String,
    /// The delete-journal reconcile at the end of the pass, with
    /// `--delete-journal` (absent in a dry run, or a pass that stopped early).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal: Option<journal::JournalSummary>,
}

#[derive(Debug, Default)]
pub struct RunReport {
    pub passes: Vec<PassSummary>,
    pub verify: Option<VerifyReport>,
    pub repair: Option<repair::RepairSummary>,
}

/// Everything a pass needs, resolved and checked.
pub(crate) struct Plan {
    pub job: MigrateOptions,
    pub run_id: String,
    pub src: Endpoint,
    pub dest: Endpoint,
    pub src_folder: Option<PathBuf>,
    pub dest_folder: PathBuf,
    pub start_after: Option<String>,
    pub partition: Partition,
    pub copier: Arc<Copier>,
    pub caps: Caps,
    pub conditional: bool,
    pub control: Arc<Control>,
    pub journal: Option<journal::Journal>,
}

fn read_secret(
    value: &Option<String>,
    file: &Option<PathBuf>,
    what: &str,
) -> Result<String, RunError> {
    if let Some(v) = value {
        return Ok(v.clone());
    }
    let path = file.as_ref().ok_or_else(|| {
        input(format!(
            "--{what}-secret or --{what}-secret-file is required"
        ))
    })?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        input(format!(
            "cannot read --{what}-secret-file {}: {e}",
            path.display()
        ))
    })?;
    let line = text.lines().next().unwrap_or("").trim().to_owned();
    if line.is_empty() {
        return Err(input(format!(
            "--{what}-secret-file {} is empty",
            path.display()
        )));
    }
    Ok(line)
}

/// What a failed HeadBucket means, in one line an operator can act on.
fn explain_bucket_error(side: &str, ep: &Endpoint, e: &S3Error) -> String {
    let what = format!("{side} bucket '{}' at {}", ep.bucket, ep.url);
    match e.class {
        ErrorClass::AccessDenied => format!(
            "{what}: access denied (HTTP 403): the {side} key or secret is wrong, or the key has no access to the bucket"
        ),
        ErrorClass::NotFound | ErrorClass::NoSuchBucket => {
            format!("{what}: no such bucket (HTTP 404)")
        }
        ErrorClass::Connection | ErrorClass::Timeout => {
            format!("{what}: cannot reach the endpoint: {}", e.message)
        }
        _ => format!("{what}: {e}"),
    }
}

async fn check_bucket(
    side: &str,
    ep: &Endpoint,
    client: &aws_sdk_s3::Client,
) -> Result<(), RunError> {
    RetryPolicy {
        attempts: 2,
        ..Default::default()
    }
    .run(|| async {
        client
            .head_bucket()
            .bucket(&ep.bucket)
            .send()
            .await
            .map_err(S3Error::from_sdk)
    })
    .await
    .map(|_| ())
    .map_err(|e| input(explain_bucket_error(side, ep, &e)))
}

/// The run's name in the files it leaves in the dest folder (pass
/// summaries, set-aside logs): its start time, to the millisecond, so that
/// the names sort in run order. Two runs can start within one second (a
/// resumed agent job stopped again at once); a second run must never
/// overwrite the first one's summary, so a name already taken gets a suffix.
fn run_id(dest_folder: &Path) -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
    );
    let base = now.format(&fmt).unwrap_or_else(|_| "run".to_owned());
    let taken: Vec<String> = std::fs::read_dir(dest_folder)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let used = |id: &str| {
        taken
            .iter()
            .any(|n| n.starts_with(&format!("summary-{id}-p")) || n.contains(&format!(".{id}.")))
    };
    (1u32..)
        .map(|i| match i {
            1 => base.clone(),
            i => format!("{base}-{i}"),
        })
        .find(|id| !used(id))
        .expect("an unused run id")
}

/// The bytes of a CA file flag, if given.
fn read_ca(path: &Option<PathBuf>, flag: &str) -> Result<Option<Vec<u8>>, RunError> {
    path.as_ref()
        .map(|p| std::fs::read(p).map_err(|e| input(format!("{flag} {}: {e}", p.display()))))
        .transpose()
}

/// Turns failed.log into a key-list folder: sorted, unique keys.
fn failed_to_folder(dest_folder: &Path, out: &Path) -> Result<u64, RunError> {
    let log = dest_folder.join(ledger::FAILED_LOG);
    let text = std::fs::read_to_string(&log).map_err(|e| {
        input(format!(
            "--failed-to-folder: cannot read {}: {e}",
            log.display()
        ))
    })?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let field = line.split('\t').next().unwrap_or("");
        let key = keylist::unescape(field)
            .map_err(|why| input(format!("{}:{}: {why}", log.display(), i + 1)))?;
        keys.push(key);
    }
    keys.sort_unstable();
    keys.dedup();
    let mut w =
        KeyListWriter::replace(out, "failed-").map_err(|e| RunError::Fatal(e.to_string()))?;
    for k in &keys {
        w.push(k).map_err(|e| RunError::Fatal(e.to_string()))?;
    }
    w.finish().map_err(|e| RunError::Fatal(e.to_string()))?;
    Ok(keys.len() as u64)
}

/// Runs the whole job: checks, probes, passes, verify.
pub async fn run(args: Args) -> Result<RunReport, RunError> {
    run_with(args, Control::new()).await
}

/// As `run`, steered through `control` (pause, resume, cancel, progress).
pub async fn run_with(args: Args, control: Arc<Control>) -> Result<RunReport, RunError> {
    args.job.check().map_err(input)?;
    let job = &args.job;
    let start_after = match &job.start_after {
        Some(line) => {
            Some(keylist::unescape(line).map_err(|why| input(format!("--start-after: {why}")))?)
        }
        None => None,
    };
    let dest_folder = job
        .dest_folder
        .clone()
        .ok_or_else(|| input("--dest-folder is required"))?;
    let src = Endpoint {
        url: job.src_url.clone(),
        bucket: job.src_bucket.clone(),
        access_key: job.src_key.clone(),
        secret_key: read_secret(&args.src_secret, &args.src_secret_file, "src")?,
        region: job.src_region.clone(),
        ca_pem: read_ca(&job.src_ca_file, "--src-ca-file")?,
    };
    let dest = Endpoint {
        url: job.dest_url.clone(),
        bucket: job.dest_bucket.clone(),
        access_key: job.dest_key.clone(),
        secret_key: read_secret(&args.dest_secret, &args.dest_secret_file, "dest")?,
        region: job.dest_region.clone(),
        ca_pem: read_ca(&job.dest_ca_file, "--dest-ca-file")?,
    };
    if dest_folder.exists() && !dest_folder.is_dir() {
        return Err(input(format!(
            "--dest-folder {} is not a directory",
            dest_folder.display()
        )));
    }
    // Key lists are read through once up front: a malformed or unreadable
    // list is refused before anything is written.
    if let Some(folder) = &job.src_folder {
        keylist::validate(folder).map_err(|e| input(format!("--src-folder: {e}")))?;
    }
    if let Some(_reader) = entries::dest_key_lists(&dest_folder)
        .map_err(|e| input(format!("--dest-folder key lists: {e}")))?
    {
        keylist::validate(&dest_folder)
            .map_err(|e| input(format!("--dest-folder key lists: {e}")))?;
    }
    if job.failed_to_folder.is_some() && !dest_folder.join(ledger::FAILED_LOG).exists() {
        return Err(input(format!(
            "--failed-to-folder: there is no {} in {}",
            ledger::FAILED_LOG,
            dest_folder.display()
        )));
    }

    let src_client = build_client(&src).map_err(|e| input(format!("--src-ca-file: {e}")))?;
    let dest_client = build_client(&dest).map_err(|e| input(format!("--dest-ca-file: {e}")))?;
    check_bucket("source", &src, &src_client).await?;
    check_bucket("destination", &dest, &dest_client).await?;
    // Before the probes, which write: a bad journal must leave nothing behind.
    if let Some(j) = &job.delete_journal {
        journal::check(&dest_client, j, &dest.bucket, &dest.url)
            .await
            .map_err(input)?;
    }

    // A repair writes, so it needs to know what the destination honours.
    let caps = if job.dry_run || (job.verify_only && !job.repair) {
        Caps::assumed()
    } else {
        probe::probe(&dest_client, &dest.bucket)
            .await
            .map_err(|e| input(format!("probing the destination failed: {e}")))?
    };
    let conditional = caps.conditional();
    if !conditional {
        if !job.allow_overwrite {
            return Err(input(format!(
                "the destination ignores {}, so s3migrate cannot guarantee it never overwrites a newer client write; rerun with --allow-overwrite to accept that risk",
                caps.conditional_gap()
            )));
        }
        eprintln!(
            "s3migrate: warning: the destination ignores {}; with --allow-overwrite the no-lost-write guarantee is off",
            caps.conditional_gap()
        );
    }

    let journal = job.delete_journal.clone().map(|bucket| {
        let mode = journal::DeleteMode::choose(caps.if_match_delete, job.allow_overwrite);
        match mode {
            journal::DeleteMode::IfMatch => {}
            journal::DeleteMode::Compare => eprintln!(
                "s3migrate: warning: the destination ignores If-Match on DeleteObject; with --allow-overwrite, a copy of a key deleted by a client is removed after a HEAD shows it is still the copier's, which can race a client's write"
            ),
            journal::DeleteMode::Report => eprintln!(
                "s3migrate: warning: the destination ignores If-Match on DeleteObject; a copy of a key deleted by a client cannot be removed safely and will fail the pass (--allow-overwrite accepts the race)"
            ),
        }
        journal::Journal { bucket, mode }
    });

    std::fs::create_dir_all(&dest_folder).map_err(|e| {
        input(format!(
            "cannot create --dest-folder {}: {e}",
            dest_folder.display()
        ))
    })?;
    if let Some(addr) = args.metrics_addr {
        metrics::install(addr).map_err(|e| input(e.to_string()))?;
    }
    let run_id = run_id(&dest_folder);
    let src_folder = match &job.failed_to_folder {
        Some(out) => {
            let n = failed_to_folder(&dest_folder, out)?;
            eprintln!(
                "s3migrate: {n} keys from failed.log written to {}; copying them now",
                out.display()
            );
            ledger::rotate(&dest_folder, ledger::FAILED_LOG, &run_id)
                .map_err(|e| RunError::Fatal(format!("rotating failed.log: {e}")))?;
            Some(out.clone())
        }
        None => job.src_folder.clone(),
    };

    let copier = Arc::new(Copier {
        src: src_client,
        src_bucket: src.bucket.clone(),
        dest: dest_client,
        dest_bucket: dest.bucket.clone(),
        retry: RetryPolicy {
            attempts: job.retries.max(1),
            ..Default::default()
        },
        requests: job.max_requests_per_sec.map(|r| Arc::new(Limiter::new(r))),
        bytes: job.max_bytes_per_sec.map(|r| Arc::new(Limiter::new(r))),
        stats: Arc::default(),
        part_size: job.part_size_bytes.max(5 * 1024 * 1024),
        part_threads: job.part_threads,
        dest_tagging: caps.tagging,
        #[cfg(feature = "test-hooks")]
        test_pause: args.test_pause_before_put.clone().map(Arc::new),
        intents: None,
        journal_bucket: job.delete_journal.clone(),
    });
    let plan = Plan {
        dest_folder: dest_folder.clone(),
        partition: Partition {
            count: job.hash_count,
            value: job.hash_value,
        },
        job: args.job,
        run_id,
        src,
        dest,
        src_folder,
        start_after,
        copier,
        caps,
        conditional,
        control,
        journal,
    };
    run_passes(plan).await
}

async fn run_passes(mut plan: Plan) -> Result<RunReport, RunError> {
    let mut report = RunReport::default();
    if !plan.job.verify_only {
        for pass in 1..=plan.job.passes {
            let start_after = if pass == 1 {
                plan.start_after.clone()
            } else {
                None
            };
            let summary = run_pass::run(&mut plan, pass, start_after).await?;
            let changed = summary.objects.copied > 0 || summary.objects.fail > 0;
            report.passes.push(summary);
            if plan.control.is_cancelled() {
                return Err(RunError::Cancelled);
            }
            if !changed || plan.job.dry_run {
                break;
            }
        }
    }
    if plan.job.verify {
        let mut verified = verify::run(&plan).await?;
        if plan.job.repair && verified.problems() > 0 {
            let pass = report.passes.len() as u32 + 1;
            let (done, summary) = repair::run(&mut plan, pass).await?;
            report.passes.extend(summary);
            report.repair = Some(done);
            verified = verify::run(&plan).await?;
        }
        report.verify = Some(verified);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::run_id;

    #[test]
    fn a_run_id_taken_in_the_folder_gets_a_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let first = run_id(dir.path());
        std::fs::write(dir.path().join(format!("summary-{first}-p1.json")), "{}").unwrap();
        let second = run_id(dir.path());
        // The clock may have ticked between the calls; if not, the name
        // must differ anyway.
        assert_ne!(first, second);
        std::fs::write(dir.path().join(format!("failed.{second}.log")), "").unwrap();
        let third = run_id(dir.path());
        assert!(third != first && third != second, "{third}");
    }
}
