//! A copy job on the s3migrate engine: its arguments (the job's options are
//! s3migrate's, checked by the same rules),
//! where a resumed run starts, and one run with its progress ticker.
//!
//! A resumed run (after a restart, a crash, or a pause that outlived the
//! agent) starts after the last line of the job's migrate.log, its
//! watermark. Passes already complete (their summaries say so) are not run
//! again, and `--first` counts the keys already handled.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_control::{JobSecrets, MigrateOptions, PassSummaryView, VerifyReport};

use super::metrics::{self, Rates};
use super::{RunEnd, joblog, parse_rfc3339};
use crate::run::Common;
use ferry_control::keylist;
use ferry_s3::durable;
use s3migrate::ledger::{FAILED_LOG, MIGRATE_LOG};
use s3migrate::partition::Partition;
use s3migrate::{self, Args, Control, RunError, progress};

/// The engine prints its own progress on the agent's stderr at most this
/// often (once a day: only a pass's first and last line); the job's log
/// gets the job's own lines instead.
const ENGINE_PROGRESS_SECS: u64 = 24 * 3600;
/// The window of the rates in the metrics.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Where a run starts, as worked out from the job's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// `--start-after` (a migrate.log line).
    pub start_after: Option<String>,
    /// Passes still to run.
    pub passes: u32,
    /// `--first`, less the keys already handled in this pass.
    pub first: Option<u64>,
    /// `--failed-to-folder` already turned failed.log into this key list:
    /// read it as `--src-folder`.
    pub failed_list_ready: bool,
    /// Every pass is complete: only verify (if asked) is left.
    pub passes_done: bool,
}

impl Resume {
    /// The first run: the spec as given.
    pub fn first_run(o: &MigrateOptions) -> Resume {
        Resume {
            start_after: o.start_after.clone(),
            passes: o.passes,
            first: o.first,
            failed_list_ready: false,
            passes_done: false,
        }
    }
}

/// Check a spec before a job is created: s3migrate's own rules
/// ([`MigrateOptions::check`]), and absolute paths.
pub fn check(o: &MigrateOptions) -> Result<(), String> {
    for (flag, p) in [
        ("--src-folder", o.src_folder.as_deref()),
        ("--dest-folder", o.dest_folder.as_deref()),
        ("--failed-to-folder", o.failed_to_folder.as_deref()),
        ("--src-ca-file", o.src_ca_file.as_deref()),
        ("--dest-ca-file", o.dest_ca_file.as_deref()),
    ] {
        if let Some(p) = p
            && !p.is_absolute()
        {
            return Err(format!(
                "{flag} {} is relative; the agent needs an absolute path",
                p.display()
            ));
        }
    }
    o.check()
}

/// The engine's arguments for one run, secrets included: the spec, with
/// where this run starts.
pub fn engine_args(
    o: &MigrateOptions,
    secrets: &JobSecrets,
    dest_folder: &Path,
    resume: &Resume,
) -> Result<Args, String> {
    let secret = |s: &Option<String>, which: &str| {
        s.clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("the job has no {which} secret"))
    };
    let mut job = o.clone();
    job.dest_folder = Some(dest_folder.to_owned());
    if resume.failed_list_ready {
        // An earlier run turned failed.log into this key list: it is the
        // source now.
        job.src_folder = job.failed_to_folder.take();
    }
    job.start_after.clone_from(&resume.start_after);
    job.first = resume.first;
    job.passes = resume.passes.max(1);
    job.verify_only = o.verify_only || (resume.passes_done && o.verify);
    job.progress_interval_secs = ENGINE_PROGRESS_SECS;
    Ok(Args::for_job(
        job,
        secret(&secrets.src_secret, "source")?,
        secret(&secrets.dest_secret, "destination")?,
    ))
}

/// The pass summaries in `folder` that a job created at `created_at`
/// wrote, oldest first. Unreadable ones are skipped.
pub fn pass_summaries(folder: &Path, created_at: &str) -> Vec<PassSummaryView> {
    let since = parse_rfc3339(created_at);
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut out: Vec<(time::OffsetDateTime, PassSummaryView)> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("summary-") && n.ends_with(".json")
        })
        .filter_map(|e| {
            let s: PassSummaryView = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            let t = parse_rfc3339(&s.started_at)?;
            Some((t, s))
        })
        // Summaries from before the job (a shared dest folder) are not its.
        // The job's time has whole seconds; the engine's has nanoseconds.
        .filter(|(t, _)| since.is_none_or(|since| *t >= since))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.pass.cmp(&b.1.pass)));
    out.into_iter().map(|(_, s)| s).collect()
}

/// The folder's last verify, if it ended after `created_at` (a job's
/// creation: an older verify in a shared folder is not the job's).
pub fn verify_summary(folder: &Path, created_at: &str) -> Option<VerifyReport> {
    let path = folder.join(s3migrate::verify::SUMMARY);
    let v: VerifyReport = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let since = parse_rfc3339(created_at);
    let at = parse_rfc3339(&v.finished_at)?;
    since.is_none_or(|since| at >= since).then_some(v)
}

/// Where a resumed run starts: after the watermark, with the passes left.
pub fn plan_resume(o: &MigrateOptions, folder: &Path, created_at: &str) -> Result<Resume, String> {
    let mut r = Resume::first_run(o);
    if o.dry_run || o.verify_only {
        // Nothing is recorded: run it again as given.
        return Ok(r);
    }
    let summaries = pass_summaries(folder, created_at);
    let done = summaries
        .iter()
        .filter(|s| s.complete && !s.dry_run)
        .count() as u32;
    if done >= o.passes {
        if let Some(last) = summaries.iter().rfind(|s| s.complete)
            && last.objects.fail > 0
        {
            return Err(format!(
                "every pass is complete, and {} keys failed in the last one; start a job with \
                 --failed-to-folder to retry them",
                last.objects.fail
            ));
        }
        r.passes_done = true;
        return Ok(r);
    }
    r.passes = o.passes - done;
    let log = folder.join(MIGRATE_LOG);
    let mut watermark = durable::last_line(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    // A migrate.log that ends where the last complete pass ended belongs to
    // that pass: the next pass starts from the top.
    if let Some(last) = summaries.last()
        && last.complete
        && last.last_key == watermark
    {
        watermark = None;
    }
    r.start_after = match watermark {
        Some(w) => Some(w),
        None if done == 0 => o.start_after.clone(),
        None => None,
    };
    if let (Some(first), Some(_)) = (o.first, &r.start_after) {
        let handled = owned_lines(&log, o)?;
        r.first = Some(first.saturating_sub(handled));
    }
    if let Some(list) = &o.failed_to_folder {
        r.failed_list_ready = keylist::chunk_files(list).is_ok_and(|c| !c.is_empty());
    }
    Ok(r)
}

/// Keys of this job's share in migrate.log (what `--first` counts).
fn owned_lines(log: &Path, o: &MigrateOptions) -> Result<u64, String> {
    let part = Partition {
        count: o.hash_count,
        value: o.hash_value,
    };
    let f = match std::fs::File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("{}: {e}", log.display())),
    };
    let mut n = 0;
    for line in BufReader::new(f).lines() {
        let line = line.map_err(|e| format!("{}: {e}", log.display()))?;
        if keylist::unescape(&line).is_ok_and(|k| part.owns(&k)) {
            n += 1;
        }
    }
    Ok(n)
}

/// Before a job's first run: an older migrate.log in a dest folder given
/// by the spec belongs to an earlier run. Set it aside (as the engine
/// would at the pass start), so that a crash before the first key is
/// written can never resume from that run's watermark.
pub fn set_aside_old_log(o: &MigrateOptions, folder: &Path, id: u64) -> std::io::Result<()> {
    if o.start_after.is_some() || o.dry_run || o.verify_only {
        return Ok(());
    }
    let label = format!("before-job-{id}");
    for name in [MIGRATE_LOG, FAILED_LOG] {
        if o.failed_to_folder.is_some() && name == FAILED_LOG {
            // --failed-to-folder reads it.
            continue;
        }
        s3migrate::ledger::rotate(folder, name, &label)?;
    }
    Ok(())
}

/// One run's inputs.
pub struct RunInput {
    pub opts: MigrateOptions,
    pub control: Arc<Control>,
    pub common: Common,
}

/// One run of a copy job, to its end.
pub async fn run(input: RunInput) -> RunEnd {
    let log = input.common.log();
    let prepared = {
        let (o, dir, folder, created) = (
            input.opts.clone(),
            input.common.job_dir.clone(),
            input.common.folder.clone(),
            input.common.created_at.clone(),
        );
        let first = !input.common.rerun();
        tokio::task::spawn_blocking(move || prepare(&o, &dir, &folder, &created, first)).await
    };
    let (args, resume) = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return RunEnd::Failed(e),
        Err(e) => return RunEnd::Failed(format!("preparing the run failed: {e}")),
    };
    if resume.passes_done && !input.opts.verify {
        joblog::append(&log, "every pass is complete already");
        return RunEnd::Completed { find: None };
    }
    joblog::append(
        &log,
        &match &resume.start_after {
            Some(s) if input.common.rerun() => format!(
                "resuming: {} pass(es) to go, starting after {s:?} (the watermark)",
                resume.passes
            ),
            _ if resume.passes_done => "every pass is complete: verifying".to_owned(),
            _ => format!("copying: {} pass(es)", resume.passes),
        },
    );
    let every = Duration::from_secs(input.opts.progress_interval_secs.max(1));
    let result = drive(args, &input, &log, every).await;
    // The last pass's final counts (a short pass may end between ticks).
    if let Some((pass, snap)) = input.control.snapshot() {
        metrics::migrate_progress(&input.common.labels, pass, &snap, Rates::default());
    }
    metrics::migrate_idle(&input.common.labels);
    let summaries = pass_summaries(&input.common.folder, &input.common.created_at);
    if let Some(last) = summaries.last() {
        metrics::migrate_failures(&input.common.labels, last);
    }
    match result {
        Ok(report) => {
            for p in &report.passes {
                joblog::append(
                    &log,
                    &format!(
                        "pass {} done in {:.1}s: obj={} ign={} exist={} copied={} fail={} skip(dn={} up={}); {}",
                        p.pass,
                        p.elapsed_secs,
                        p.objects.obj,
                        p.objects.ign,
                        p.objects.exist,
                        p.objects.copied,
                        p.objects.fail,
                        p.objects.skip_dn,
                        p.objects.skip_up,
                        p.progress
                    ),
                );
                if let Some(line) = (!p.progress.is_empty()).then(|| p.progress.clone()) {
                    input.common.live.set_progress(line);
                }
            }
            let failed = report.passes.last().map_or(0, |p| p.objects.fail);
            let differences = report.verify.as_ref().map_or(0, |v| v.problems());
            if let Some(r) = &report.repair {
                joblog::append(&log, &r.to_string());
            }
            if let Some(v) = &report.verify {
                joblog::append(&log, &v.to_string());
            }
            let folder = input.common.folder.display();
            match (failed, differences) {
                (0, 0) => RunEnd::Completed { find: None },
                (f, 0) => RunEnd::Failed(format!(
                    "{f} keys failed; see {folder}/failed.log (start a job with --failed-to-folder to retry them)"
                )),
                (_, d) => RunEnd::Failed(format!(
                    "verify found {d} differences; see {folder}/verify.log"
                )),
            }
        }
        Err(RunError::Cancelled) => RunEnd::Stopped,
        Err(e) => RunEnd::Failed(e.to_string()),
    }
}

/// Reads the secrets and works out where the run starts.
fn prepare(
    o: &MigrateOptions,
    job_dir: &Path,
    folder: &Path,
    created_at: &str,
    first: bool,
) -> Result<(Args, Resume), String> {
    let secrets = super::store::load_secrets(job_dir).map_err(|e| e.to_string())?;
    let resume = if first {
        Resume::first_run(o)
    } else {
        plan_resume(o, folder, created_at)?
    };
    let args = engine_args(o, &secrets, folder, &resume)?;
    Ok((args, resume))
}

/// Runs the engine, publishing its progress every second and logging it
/// every `every`.
async fn drive(
    args: Args,
    input: &RunInput,
    log: &Path,
    every: Duration,
) -> Result<s3migrate::RunReport, RunError> {
    let run = s3migrate::run_with(args, input.control.clone());
    tokio::pin!(run);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut pass: Option<(u32, Instant)> = None;
    let mut window: VecDeque<(Instant, u64, u64)> = VecDeque::new();
    let mut logged: Option<Instant> = None;
    let mut paused_logged = false;
    loop {
        let finished = tokio::select! {
            r = &mut run => Some(r),
            _ = tick.tick() => None,
        };
        let Some((n, snap)) = input.control.snapshot() else {
            match finished {
                Some(r) => return r,
                None => continue,
            }
        };
        let now = Instant::now();
        if let Some(r) = finished {
            // A run stopped between ticks (TERM, cancel, a short pass)
            // still leaves its last counts on the job, where the
            // checkpoint note and `job show` are read from.
            let started = pass.filter(|(p, _)| *p == n).map_or(now, |(_, t)| t);
            input
                .common
                .live
                .set_progress(progress::line(&snap, now - started));
            return r;
        }
        let started = match pass {
            Some((p, t)) if p == n => t,
            _ => {
                joblog::append(log, &format!("pass {n} started"));
                window.clear();
                pass = Some((n, now));
                now
            }
        };
        let line = progress::line(&snap, now - started);
        input.common.live.set_progress(line.clone());
        window.push_back((now, snap.upld, snap.ul_bytes));
        while window
            .front()
            .is_some_and(|(t, _, _)| now - *t > RATE_WINDOW)
        {
            window.pop_front();
        }
        let rates = match window.front() {
            Some((t, o, b)) if now > *t => {
                let dt = (now - *t).as_secs_f64();
                Rates {
                    objects_per_sec: snap.upld.saturating_sub(*o) as f64 / dt,
                    bytes_per_sec: snap.ul_bytes.saturating_sub(*b) as f64 / dt,
                }
            }
            _ => Rates::default(),
        };
        metrics::migrate_progress(&input.common.labels, n, &snap, rates);
        if input.control.is_paused() {
            if !paused_logged {
                joblog::append(log, &format!("paused: {line}"));
                paused_logged = true;
            }
            continue;
        }
        paused_logged = false;
        if logged.is_none_or(|t| now - t >= every) {
            joblog::append(log, &line);
            logged = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn opts() -> MigrateOptions {
        serde_json::from_value(serde_json::json!({
            "src_url": "http://127.0.0.1:1", "src_bucket": "sb", "src_key": "ak",
            "dest_url": "http://127.0.0.1:2", "dest_bucket": "db", "dest_key": "ak2",
            "src_list": true,
        }))
        .unwrap()
    }

    fn secrets() -> JobSecrets {
        JobSecrets {
            src_secret: Some("s1".into()),
            dest_secret: Some("s2".into()),
        }
    }

    #[test]
    fn spec_defaults_are_s3migrates() {
        use clap::Parser;
        // The same defaults as the CLI given only the required flags.
        let cli = Args::try_parse_from([
            "s3migrate",
            "--src-url=http://127.0.0.1:1",
            "--src-bucket=sb",
            "--src-key=ak",
            "--src-secret=s1",
            "--src-list",
            "--dest-url=http://127.0.0.1:2",
            "--dest-bucket=db",
            "--dest-key=ak2",
            "--dest-secret=s2",
            "--dest-folder=/f",
        ])
        .unwrap();
        let dest = PathBuf::from("/f");
        let mut ours =
            engine_args(&opts(), &secrets(), &dest, &Resume::first_run(&opts())).unwrap();
        ours.job.progress_interval_secs = cli.job.progress_interval_secs;
        assert_eq!(format!("{ours:?}"), format!("{cli:?}"));
    }

    #[test]
    fn the_delete_journal_reaches_the_engine() {
        let mut o = opts();
        o.delete_journal = Some("ferry-journal".into());
        let dest = PathBuf::from("/f");
        let a = engine_args(&o, &secrets(), &dest, &Resume::first_run(&o)).unwrap();
        assert_eq!(a.job.delete_journal.as_deref(), Some("ferry-journal"));
    }

    #[test]
    fn every_s3migrate_flag_has_an_option() {
        use clap::CommandFactory;
        // Given by the agent itself, not by the spec.
        let not_in_spec = [
            "src-secret",
            "src-secret-file",
            "dest-secret",
            "dest-secret-file",
            "metrics-addr",
            "help",
            "version",
        ];
        let spec = clap::Command::new("x");
        let spec = <MigrateOptions as clap::Args>::augment_args(spec);
        let ours: Vec<String> = spec
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_owned))
            .collect();
        for a in Args::command().get_arguments() {
            let Some(long) = a.get_long() else { continue };
            if not_in_spec.contains(&long) {
                continue;
            }
            assert!(
                ours.iter().any(|o| o == long),
                "s3migrate --{long} has no job option"
            );
        }
    }

    #[test]
    fn checks_use_s3migrates_rules() {
        check(&opts()).unwrap();
        let mut o = opts();
        o.src_list = false;
        let e = check(&o).unwrap_err();
        assert!(e.contains("src-folder"), "{e}");
        let mut o = opts();
        o.hash_value = 3;
        o.hash_count = 2;
        assert!(check(&o).unwrap_err().contains("--hash-value"));
        let mut o = opts();
        o.src_folder = Some("lists".into());
        o.src_list = false;
        assert!(check(&o).unwrap_err().contains("relative"));
        let mut o = opts();
        o.verify_only = true;
        assert!(check(&o).is_err(), "--verify-only requires --verify");
        let mut o = opts();
        o.start_after = Some("-starts-with-a-dash".into());
        check(&o).unwrap();
    }

    #[test]
    fn secrets_come_from_the_secrets_not_the_spec() {
        let dest = PathBuf::from("/f");
        let a = engine_args(&opts(), &secrets(), &dest, &Resume::first_run(&opts())).unwrap();
        assert_eq!(a.src_secret.as_deref(), Some("s1"));
        assert_eq!(a.dest_secret.as_deref(), Some("s2"));
        let e = engine_args(
            &opts(),
            &JobSecrets::default(),
            &dest,
            &Resume::first_run(&opts()),
        )
        .unwrap_err();
        assert!(e.contains("no source secret"), "{e}");
    }

    fn summary(pass: u32, complete: bool, last_key: &str) -> serde_json::Value {
        serde_json::json!({
            "version": 1, "run_id": "r", "pass": pass, "dry_run": false,
            "started_at": format!("2030-01-01T00:00:0{pass}.5Z"), "elapsed_secs": 1.0,
            "complete": complete, "start_after": null, "last_key": last_key,
            "objects": {"obj": 0, "ign": 0, "exist": 0, "copied": 0, "fail": 0, "skip_dn": 0, "skip_up": 0},
            "bytes_downloaded": 0, "bytes_uploaded": 0, "tags_dropped": 0,
            "errors_by_class": {}, "progress": ""
        })
    }

    #[test]
    fn resume_starts_after_the_watermark_with_the_passes_left() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path();
        let created = "2030-01-01T00:00:00Z";
        let mut o = opts();
        o.passes = 3;
        o.first = Some(10);
        o.start_after = Some("a".into());
        // Killed in pass 1 before any key: the spec's start.
        let r = plan_resume(&o, f, created).unwrap();
        assert_eq!(r.start_after.as_deref(), Some("a"));
        assert_eq!((r.passes, r.first), (3, Some(10)));
        // Killed in pass 1 after four keys.
        std::fs::write(f.join(MIGRATE_LOG), "b\nc\nd\ne\n").unwrap();
        let r = plan_resume(&o, f, created).unwrap();
        assert_eq!(r.start_after.as_deref(), Some("e"));
        assert_eq!((r.passes, r.first), (3, Some(6)));
        // Pass 1 complete, pass 2 not begun: pass 2 starts from the top.
        let s1 = serde_json::to_vec(&summary(1, true, "e")).unwrap();
        std::fs::write(f.join("summary-r-p1.json"), s1).unwrap();
        let r = plan_resume(&o, f, created).unwrap();
        assert_eq!((r.start_after.as_deref(), r.passes), (None, 2));
        // Pass 2 under way.
        std::fs::write(f.join(MIGRATE_LOG), "b\n").unwrap();
        let r = plan_resume(&o, f, created).unwrap();
        assert_eq!((r.start_after.as_deref(), r.passes), (Some("b"), 2));
        // A partial summary does not count; a summary older than the job
        // is not its own.
        let s2 = serde_json::to_vec(&summary(2, false, "b")).unwrap();
        std::fs::write(f.join("summary-r-p2.json"), s2).unwrap();
        let r = plan_resume(&o, f, "2030-01-01T00:00:02Z").unwrap();
        assert_eq!((r.start_after.as_deref(), r.passes), (Some("b"), 3));
        // All passes complete.
        o.passes = 1;
        assert!(plan_resume(&o, f, created).unwrap().passes_done);
    }
}
