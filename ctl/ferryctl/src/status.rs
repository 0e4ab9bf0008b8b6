//! `ferryctl status`: the whole picture on one screen: each bucket's mode
//! (from the proxy or the fleet), the agent's jobs with their progress
//! lines, the share of migrate-mode reads the target served against the
//! source fallback, and the errors to look at.

use clap::Args;
use ferry_control::{BucketView, Client, JobState, JobView};
use serde::Serialize;

use crate::bucket::Daemon;
use crate::failure::Failure;
use crate::output::{Output, print_table};
use crate::prom::{Counts, add, by_label, fetch, samples};
use ferry_control::metrics::proxy::{MIGRATE_READS, UPSTREAM_ERRORS};

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Each proxy's metrics endpoint (its `metrics_addr`), as
    /// http://HOST:PORT/metrics, comma-separated: the reads served by the
    /// target against the source, and upstream errors, summed.
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    proxy_metrics: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Status {
    buckets: Vec<BucketStatus>,
    /// The agent's jobs; `None` when it could not be asked (`agent_error`).
    jobs: Option<Vec<JobLine>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_error: Option<String>,
    /// Upstream errors since the proxies started, by `side/class`.
    upstream_errors: Counts,
    /// One line per thing to look at.
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct BucketStatus {
    #[serde(flatten)]
    view: BucketView,
    /// Migrate-mode GET/HEAD since the proxies started, by who served it:
    /// `target`, `source` (the fallback), `unavailable`.
    reads: Counts,
    /// target / (target + source), when there were such reads.
    target_read_share: Option<f64>,
}

#[derive(Debug, Serialize)]
struct JobLine {
    id: u64,
    kind: String,
    bucket: String,
    state: JobState,
    progress: Option<String>,
    last_error: Option<String>,
}

pub fn run(
    daemon: &Daemon<'_>,
    agent: &Client,
    out: Output,
    args: StatusArgs,
) -> Result<(), Failure> {
    let views = daemon.list()?;
    let mut metrics = Vec::new();
    let mut errors = Vec::new();
    for url in &args.proxy_metrics {
        match fetch(url) {
            Ok(text) => metrics.push(text),
            Err(e) => errors.push(format!("metrics not read: {}", e.message())),
        }
    }
    let sum = |name: &str, label: &str, filter: &[(&str, &str)]| {
        let mut all = Counts::new();
        for text in &metrics {
            add(&mut all, by_label(text, name, label, filter));
        }
        all
    };
    let buckets: Vec<BucketStatus> = views
        .into_iter()
        .map(|view| {
            let reads = sum(MIGRATE_READS, "served_by", &[("bucket", &view.bucket)]);
            let (t, s) = (
                reads.get("target").copied().unwrap_or(0),
                reads.get("source").copied().unwrap_or(0),
            );
            if reads.get("unavailable").is_some_and(|n| *n > 0) {
                errors.push(format!(
                    "{}: {} reads answered 503 because the source could not answer",
                    view.bucket, reads["unavailable"]
                ));
            }
            if view.blocked {
                errors.push(format!("{}: blocked (clients get 503)", view.bucket));
            }
            BucketStatus {
                target_read_share: (t + s > 0).then(|| t as f64 / (t + s) as f64),
                reads,
                view,
            }
        })
        .collect();
    let mut upstream_errors = Counts::new();
    for s in metrics
        .iter()
        .flat_map(|text| samples(text, UPSTREAM_ERRORS))
    {
        let side = s.label("upstream").unwrap_or("-");
        let class = s.label("class").unwrap_or("-");
        *upstream_errors
            .entry(format!("{side}/{class}"))
            .or_default() += s.value;
    }
    let (jobs, agent_error) = match agent.jobs() {
        Ok(jobs) => (Some(jobs.iter().map(job_line).collect::<Vec<_>>()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    for j in jobs.iter().flatten() {
        if let Some(e) = &j.last_error
            && j.state == JobState::Failed
        {
            errors.push(format!("job {} ({}): {e}", j.id, j.bucket));
        }
    }
    let status = Status {
        buckets,
        jobs,
        agent_error,
        upstream_errors,
        errors,
    };
    out.emit(&status, print);
    Ok(())
}

fn job_line(j: &JobView) -> JobLine {
    JobLine {
        id: j.status.id,
        kind: j.status.kind.to_string(),
        bucket: j.status.bucket.clone(),
        state: j.status.state,
        progress: j.status.progress.clone(),
        last_error: j.status.last_error.clone(),
    }
}

fn print(s: &Status) {
    let rows: Vec<[String; 6]> = s
        .buckets
        .iter()
        .map(|b| {
            let v = &b.view;
            [
                v.bucket.clone(),
                format!(
                    "{}{}",
                    v.mode,
                    if v.phase == "active" {
                        ""
                    } else {
                        " (fencing)"
                    }
                ),
                if v.blocked { "yes" } else { "no" }.to_owned(),
                v.verified_at.clone().unwrap_or_else(|| "no".into()),
                v.source_uploads_open.to_string(),
                match b.target_read_share {
                    Some(share) => format!(
                        "{:.1}% ({} of {})",
                        share * 100.0,
                        b.reads.get("target").copied().unwrap_or(0),
                        b.reads.get("target").copied().unwrap_or(0)
                            + b.reads.get("source").copied().unwrap_or(0)
                    ),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    print_table(
        [
            "BUCKET",
            "MODE",
            "BLOCKED",
            "VERIFIED",
            "SOURCE UPLOADS",
            "READS FROM TARGET",
        ],
        &rows,
    );
    println!();
    match (&s.jobs, &s.agent_error) {
        (Some(jobs), _) => {
            let rows: Vec<[String; 5]> = jobs
                .iter()
                .map(|j| {
                    [
                        j.id.to_string(),
                        j.kind.clone(),
                        j.bucket.clone(),
                        j.state.to_string(),
                        j.progress.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(["JOB", "KIND", "BUCKET", "STATE", "PROGRESS"], &rows);
        }
        (None, e) => println!(
            "jobs: the agent was not reached: {}",
            e.as_deref().unwrap_or("")
        ),
    }
    if !s.upstream_errors.is_empty() {
        let list: Vec<String> = s
            .upstream_errors
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!("\nupstream errors: {}", list.join(", "));
    }
    if !s.errors.is_empty() {
        println!("\nto look at:");
        for e in &s.errors {
            println!("  {e}");
        }
    }
}
