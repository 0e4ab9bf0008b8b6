//! `ferryctl verify` and `ferryctl rollback plan`: both run a verify of
//! the bucket on the agent, as a follow-up of the bucket's copy job (its
//! folder holds the records that tell the copier's writes from the
//! clients'), and act on what it found.

use std::time::Duration;

use clap::{Args, Subcommand};
use ferry_control::{
    BucketView, Client, FollowUp, HashShare, JobSpec, JobState, JobView, Mark, MigrateOptions,
    Mode, VerifiedRequest, VerifyReport,
};
use serde::Serialize;

use crate::bucket::Daemon;
use crate::failure::Failure;
use crate::output::{Output, print_rows};

/// How often a job is polled while ferryctl waits for it.
const POLL: Duration = Duration::from_millis(500);

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The bucket (its name on the target).
    bucket: String,
    /// Fix what verify finds, then verify again: copy again what is missing
    /// or different, and remove the copier's copies of keys the source no
    /// longer holds (never a client's write).
    #[arg(long)]
    repair: bool,
    #[command(flatten)]
    job: JobArg,
}

#[derive(Args, Debug)]
pub struct JobArg {
    /// The bucket's copy job on the agent whose folder (records, secrets,
    /// endpoints) to use [default: its latest copy job].
    #[arg(long, value_name = "ID")]
    job: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum RollbackCommand {
    /// The reverse copy of a rollback from migrate mode: what clients
    /// wrote on the target since the switch (the keys whose target object
    /// is no write of the copier's), found by a verify. Printed; with
    /// --run, copied to the source, replacing what differs there (the
    /// bucket must be blocked).
    Plan(PlanArgs),
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    bucket: String,
    /// Start the reverse copy and wait for it.
    #[arg(long)]
    run: bool,
    #[command(flatten)]
    job: JobArg,
}

/// What `ferryctl verify` prints.
#[derive(Debug, Serialize)]
struct Verified {
    bucket: String,
    ok: bool,
    /// The verify job on the agent, and the copy job it followed.
    job: u64,
    copy_job: u64,
    /// `k/N`: the hash share verified (the copy job's).
    share: String,
    verify: VerifyReport,
    /// Multipart uploads begun on the source before migrate mode, still
    /// open there.
    source_uploads_open: usize,
    /// The pass was recorded on the bucket (of the whole bucket, or of
    /// this share).
    recorded: bool,
    /// The whole bucket has now passed (every share of a partitioned copy),
    /// so that detach needs no --force.
    bucket_verified: bool,
    /// Of a partitioned copy: the shares passed so far (`k/N`).
    shares_verified: Vec<String>,
    verify_log: String,
}

/// What `ferryctl rollback plan` prints.
#[derive(Debug, Serialize)]
struct Plan {
    bucket: String,
    /// The verify job that found the client writes.
    job: u64,
    /// Keys clients wrote on the target: rewritten, and new.
    client_newer: u64,
    client_new: u64,
    /// Where the list is, on the agent's host.
    list: String,
    /// With --run: the reverse copy job.
    reverse: Option<JobView>,
}

pub fn verify(
    daemon: &Daemon<'_>,
    agent: &Client,
    out: Output,
    args: VerifyArgs,
) -> Result<(), Failure> {
    let view = daemon.show(&args.bucket)?;
    let (copy, o) = copy_job(agent, &args.bucket, args.job.job)?;
    let what = if args.repair {
        FollowUp::Repair
    } else {
        FollowUp::Verify
    };
    let done = run_follow_up(agent, &copy, what, out)?;
    let report = verify_report(&done)?;
    let share = format!("{}/{}", o.hash_value, o.hash_count);
    let ok = report.problems() == 0
        && view.source_uploads_open == 0
        && done.status.state == JobState::Completed;
    let recorded = ok && view.mode == Mode::Migrate;
    let after = if recorded {
        let pass = VerifiedRequest {
            summary: format!("job {}: {report}", done.status.id),
            share: (o.hash_count > 1).then_some(HashShare {
                value: o.hash_value,
                count: o.hash_count,
            }),
        };
        daemon.mark(&args.bucket, Mark::Verified(pass))?
    } else {
        view.clone()
    };
    let result = Verified {
        bucket: args.bucket.clone(),
        ok,
        job: done.status.id,
        copy_job: copy.status.id,
        share,
        verify_log: format!("{}/verify.log", done.folder),
        verify: report,
        source_uploads_open: view.source_uploads_open,
        recorded,
        bucket_verified: after.verified.is_some(),
        shares_verified: after.shares_verified,
    };
    out.emit(&result, print_verified);
    if recorded && !result.bucket_verified {
        eprintln!(
            "ferryctl: note: this verify covers hash share {} only; shares passed so far: {}. \
             Detach needs no --force once every share has passed.",
            result.share,
            result.shares_verified.join(", ")
        );
    }
    if ok {
        return Ok(());
    }
    Err(Failure::CheckFailed(format!(
        "verify of {} failed: {} problems, {} uploads still open on the source; see {}{}",
        result.bucket,
        result.verify.problems(),
        result.source_uploads_open,
        result.verify_log,
        if args.repair {
            ""
        } else {
            " (`ferryctl verify BUCKET --repair` fixes what a copy can)"
        }
    )))
}

pub fn rollback(
    daemon: &Daemon<'_>,
    agent: &Client,
    out: Output,
    command: RollbackCommand,
) -> Result<(), Failure> {
    let RollbackCommand::Plan(args) = command;
    let view = daemon.show(&args.bucket)?;
    if view.mode != Mode::Migrate {
        return Err(Failure::CheckFailed(format!(
            "bucket {} is in {} mode: only migrate mode needs a reverse copy (from forward \
             mode, `update --mode ready` is the whole rollback)",
            view.bucket, view.mode
        )));
    }
    if args.run && !view.blocked {
        return Err(Failure::CheckFailed(format!(
            "block the bucket first (`ferryctl s3 bucket migrate block {}`): the reverse copy \
             replaces objects on the source, and a client write meanwhile would be lost",
            view.bucket
        )));
    }
    let (copy, _) = copy_job(agent, &args.bucket, args.job.job)?;
    let done = run_follow_up(agent, &copy, FollowUp::Verify, out)?;
    let report = verify_report(&done)?;
    let mut plan = Plan {
        bucket: view.bucket.clone(),
        job: done.status.id,
        client_newer: report.client_newer,
        client_new: report.client_new,
        list: format!("{}/verify/client-writes", done.folder),
        reverse: None,
    };
    let writes = plan.client_newer + plan.client_new;
    if args.run && writes > 0 {
        let reverse = run_follow_up(agent, &copy, FollowUp::Reverse, out)?;
        let failed = reverse.passes.iter().map(|p| p.objects.fail).sum::<u64>();
        let ok = reverse.status.state == JobState::Completed && failed == 0;
        let id = reverse.status.id;
        plan.reverse = Some(reverse);
        if !ok {
            out.emit(&plan, |p| print_plan(p, &view));
            return Err(Failure::CheckFailed(format!(
                "the reverse copy (job {id}) did not finish cleanly: see `ferryctl job show \
                 {id}`; the bucket stays blocked"
            )));
        }
    }
    out.emit(&plan, |p| print_plan(p, &view));
    Ok(())
}

/// The bucket's copy job and its options: the one given, or the latest
/// copy into the bucket that is not a rollback's reverse copy.
fn copy_job(
    agent: &Client,
    bucket: &str,
    id: Option<u64>,
) -> Result<(JobView, MigrateOptions), Failure> {
    let copy = |j: JobView| match &j.spec {
        JobSpec::Migrate(o) if o.dest_bucket == bucket && !o.overwrite_differing => {
            let o = o.clone();
            Some((j, o))
        }
        _ => None,
    };
    match id {
        Some(id) => copy(agent.job(id)?).ok_or_else(|| {
            Failure::Usage(format!("job {id} is not a copy job into bucket {bucket}"))
        }),
        None => agent
            .jobs()?
            .into_iter()
            .filter_map(copy)
            .max_by_key(|(j, _)| j.status.id)
            .ok_or_else(|| {
                Failure::CheckFailed(format!(
                    "the agent has no copy job into bucket {bucket}: its folder holds the \
                     records that tell the copier's writes from the clients', so start the copy \
                     first (`ferryctl job start migrate …`), or name one with --job"
                ))
            }),
    }
}

/// Starts `what` after `copy` and waits for it to stop.
fn run_follow_up(
    agent: &Client,
    copy: &JobView,
    what: FollowUp,
    out: Output,
) -> Result<JobView, Failure> {
    let job = agent.follow_up(copy.status.id, what)?;
    if out == Output::Text {
        eprintln!(
            "ferryctl: job {} ({} of copy job {}) started; waiting for it",
            job.status.id,
            what.as_str(),
            copy.status.id
        );
    }
    loop {
        let j = agent.job(job.status.id)?;
        if j.status.state.is_final() {
            return Ok(j);
        }
        std::thread::sleep(POLL);
    }
}

fn verify_report(job: &JobView) -> Result<VerifyReport, Failure> {
    job.verify.clone().ok_or_else(|| {
        Failure::CheckFailed(format!(
            "job {} ended {} without a verify: {}",
            job.status.id,
            job.status.state,
            job.status.last_error.as_deref().unwrap_or("no error given")
        ))
    })
}

fn print_verified(v: &Verified) {
    let r = &v.verify;
    let mut rows = vec![
        ("bucket", v.bucket.clone()),
        ("result", if v.ok { "pass" } else { "FAIL" }.to_owned()),
        ("job", format!("{} (after copy job {})", v.job, v.copy_job)),
        ("hash share", v.share.clone()),
        ("checked", r.checked.to_string()),
        ("equal", (r.equal + r.by_content).to_string()),
        (
            "client writes",
            format!("{} rewritten, {} new", r.client_newer, r.client_new),
        ),
        ("source uploads open", v.source_uploads_open.to_string()),
        ("recorded", v.recorded.to_string()),
        ("bucket verified", v.bucket_verified.to_string()),
    ];
    for (class, n) in &r.problems_by_class {
        rows.push(("problem", format!("{class}: {n}")));
    }
    print_rows(20, &rows);
    for p in &r.examples {
        println!("  {}\t{}\t{}", p.class, p.key, p.message);
    }
    if r.problems() > 0 {
        println!("every difference: {}", v.verify_log);
    }
}

fn print_plan(p: &Plan, view: &BucketView) {
    println!(
        "{}: clients wrote {} keys on the target since migrate mode ({} rewritten, {} new); \
         their deletes already reached the source",
        p.bucket,
        p.client_newer + p.client_new,
        p.client_newer,
        p.client_new
    );
    println!("the list (on the agent's host): {}", p.list);
    match &p.reverse {
        Some(j) => {
            println!(
                "reverse copy: job {} {}: {}",
                j.status.id,
                j.status.state,
                j.status.progress.as_deref().unwrap_or("")
            );
            println!(
                "next: ferryctl s3 bucket migrate update --bucket {0} --mode ready --force; \
                 then ferryctl s3 bucket migrate unblock {0}",
                p.bucket
            );
        }
        None if !view.blocked => println!(
            "next: ferryctl s3 bucket migrate block {0}; ferryctl rollback plan {0} --run",
            p.bucket
        ),
        None => println!("next: ferryctl rollback plan {} --run", p.bucket),
    }
}
