//! One pass over the key space: merge-join source, destination and records,
//! hand each key to a worker, and let the ledger write the results in order.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::entries::{self, EntryStream, StreamError};
use super::intents::{self, IntentLog};
use super::ledger::{self, Done, LedgerFiles, Outcome};
use super::progress::{self, Printer, Stats};
use super::watch::Watch;
use super::worker::{self, Policy, Work};
use super::{Counts, PassSummary, Plan, RunError, journal, metrics, records};
use ferry_control::keylist::{self, KeyListReader};
use ferry_s3::durable;

/// How far workers may run ahead of the migrate.log watermark.
const WINDOW: usize = 100_000;

fn fatal(e: impl std::fmt::Display) -> RunError {
    RunError::Fatal(e.to_string())
}

pub(crate) fn source_stream(
    plan: &Plan,
    start_after: Option<String>,
) -> Result<EntryStream, RunError> {
    Ok(match &plan.src_folder {
        Some(folder) => {
            let reader = KeyListReader::open(folder).map_err(fatal)?;
            EntryStream::from_folder(reader, start_after)
        }
        None => EntryStream::from_listing(
            plan.copier.src.clone(),
            plan.src.bucket.clone(),
            start_after,
            plan.copier.retry,
        ),
    })
}

pub(crate) fn dest_listing(plan: &Plan, start_after: Option<String>) -> EntryStream {
    EntryStream::from_listing(
        plan.copier.dest.clone(),
        plan.dest.bucket.clone(),
        start_after,
        plan.copier.retry,
    )
}

fn count_keys(plan: &Plan, start_after: Option<&str>) -> u64 {
    let Some(folder) = &plan.src_folder else {
        return 0;
    };
    let Ok(mut r) = KeyListReader::open(folder) else {
        return 0;
    };
    let mut n = 0;
    while let Ok(Some(k)) = r.next_key() {
        if start_after.is_none_or(|s| k.as_str() > s) {
            n += 1;
        }
    }
    n
}

pub(crate) async fn run(
    plan: &mut Plan,
    pass: u32,
    start_after: Option<String>,
) -> Result<PassSummary, RunError> {
    let label = format!("{}-p{pass}", plan.run_id);
    let dry = plan.job.dry_run;
    let folder = plan.dest_folder.clone();
    if start_after.is_none() && !dry {
        // A fresh pass starts fresh logs; the old ones stay as history.
        for name in [ledger::MIGRATE_LOG, ledger::FAILED_LOG] {
            ledger::rotate(&folder, name, &label).map_err(fatal)?;
        }
    }
    let stats = Arc::new(Stats::default());
    // Each pass counts from zero. With a delete journal, every write is
    // logged before it is sent, so that the reconcile knows the copier's
    // own writes even when a kill lost their records.
    let intents = match plan.journal.is_some() && !dry {
        true => Some(IntentLog::open(&folder).map_err(fatal)?),
        false => None,
    };
    let copier = Arc::new(super::copy::Copier {
        stats: stats.clone(),
        intents,
        ..(*plan.copier).clone()
    });
    let mut total = count_keys(plan, start_after.as_deref());
    if let Some(first) = plan.job.first
        && plan.partition.count <= 1
    {
        total = total.min(first);
    }
    stats.total_hint.store(total, Relaxed);
    plan.control.start_pass(pass, stats.clone());

    let mut src = source_stream(plan, start_after.clone())?;
    let mut dest = match entries::dest_key_lists(&folder).map_err(fatal)? {
        Some(reader) => EntryStream::from_folder(reader, start_after.clone()),
        None => dest_listing(plan, start_after.clone()),
    };
    let mut recs = records::open(&folder).map_err(fatal)?;
    // Journalled keys are copied like any other: a key the source still
    // lists is live (its delete failed, or has not reached the source
    // yet), and skipping it would lose it at detach. A copy that lands
    // after the delete is removed by the watch moments later, or else by
    // the reconcile at the end of the pass.
    let watch = match &plan.journal {
        Some(j) if !dry => Some(Watch::start(copier.clone(), j.clone(), plan.job.threads)),
        _ => None,
    };

    let files = if dry {
        LedgerFiles {
            migrate_log: None,
            failed_log: None,
            records: None,
        }
    } else {
        LedgerFiles {
            migrate_log: Some(folder.join(ledger::MIGRATE_LOG)),
            failed_log: Some(folder.join(ledger::FAILED_LOG)),
            records: Some(records::dir(&folder).join(format!("{label}{}", records::SUFFIX))),
        }
    };
    let window = Arc::new(Semaphore::new(WINDOW));
    let (done_tx, done_rx) = mpsc::channel::<Done>(4096);
    let ledger_task = tokio::spawn(ledger::run(done_rx, files, window.clone()));

    let policy = Arc::new(Policy {
        caps: plan.caps.clone(),
        dry_run: dry,
        conditional: plan.conditional,
        overwrite_differing: plan.job.overwrite_differing,
    });
    let threads = Arc::new(Semaphore::new(plan.job.threads));
    let started = Instant::now();
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();

    let progress_stats = stats.clone();
    let interval = Duration::from_secs(plan.job.progress_interval_secs.max(1));
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let progress_task = tokio::spawn(async move {
        let mut printer = Printer::new(interval);
        let mut tick = tokio::time::interval(printer.tick());
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let snap = progress_stats.snapshot();
                    metrics::publish(pass, &snap, started.elapsed());
                    printer.maybe_print(&progress::line(&snap, started.elapsed()));
                }
                _ = &mut stop_rx => {
                    let snap = progress_stats.snapshot();
                    metrics::publish(pass, &snap, started.elapsed());
                    let line = progress::line(&snap, started.elapsed());
                    printer.finish(&line);
                    return line;
                }
            }
        }
    });

    let mut tasks = JoinSet::new();
    let mut seq = 0u64;
    let mut mine = 0u64;
    let mut stream_error: Option<StreamError> = None;
    loop {
        // A ledger that died (a full disk under the dest folder) must stop
        // the pass: copying on without recording would lose the watermark.
        if done_tx.is_closed() || !plan.control.gate().await {
            break;
        }
        let entry = match src.next().await {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => {
                stream_error = Some(e);
                break;
            }
        };
        if start_after
            .as_deref()
            .is_some_and(|s| entry.key.as_str() <= s)
        {
            continue;
        }
        let owned = plan.partition.owns(&entry.key);
        if owned && plan.job.first.is_some_and(|f| mine >= f) {
            break;
        }
        window.acquire().await.map_err(fatal)?.forget();
        stats.obj.fetch_add(1, Relaxed);
        let this = seq;
        seq += 1;
        if !owned {
            stats.ign.fetch_add(1, Relaxed);
            let done = Done {
                seq: this,
                key: entry.key,
                outcome: Outcome::Ign,
            };
            if done_tx.send(done).await.is_err() {
                break;
            }
            continue;
        }
        mine += 1;
        let d = match dest.seek(&entry.key).await {
            Ok(d) => d,
            Err(e) => {
                stream_error = Some(e);
                stats.obj.fetch_sub(1, Relaxed);
                break;
            }
        };
        let rec = match recs.seek(&entry.key).await {
            Ok(r) => r,
            Err(e) => {
                stream_error = Some(e);
                stats.obj.fetch_sub(1, Relaxed);
                break;
            }
        };
        let permit = threads.clone().acquire_owned().await.map_err(fatal)?;
        let (copier, policy, tx, stats) = (
            copier.clone(),
            policy.clone(),
            done_tx.clone(),
            stats.clone(),
        );
        let watched = watch.as_ref().map(Watch::sender);
        tasks.spawn(async move {
            stats.work.fetch_add(1, Relaxed);
            let key = entry.key.clone();
            let w = Work {
                src: entry,
                dest: d,
                rec,
            };
            let outcome = worker::handle(copier, policy, w).await;
            if let (Some(watch), Outcome::Copied(rec)) = (&watched, &outcome) {
                watch.landed(&key, &rec.dest_etag);
            }
            stats.work.fetch_sub(1, Relaxed);
            drop(permit);
            let _ = tx
                .send(Done {
                    seq: this,
                    key,
                    outcome,
                })
                .await;
        });
        // Reap finished tasks as we go so the set stays small.
        while let Some(r) = tasks.try_join_next() {
            r.map_err(fatal)?;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(fatal)?;
    }
    let removed_during_pass = match watch {
        Some(w) => w.finish().await.map_err(fatal)?,
        None => Default::default(),
    };
    drop(done_tx);
    let mut ledger_report = ledger_task
        .await
        .map_err(fatal)?
        .map_err(|e| RunError::Fatal(format!("writing the logs in {}: {e}", folder.display())))?;
    // Every copy of the pass has ended and its record is on disk: settle the
    // journal, read afresh so that deletes made during the pass count. A
    // pass that stopped early is incomplete anyway, and a dry run must not
    // delete.
    let stopped = stream_error.is_some() || plan.control.is_cancelled();
    let mut journal_summary = None;
    let mut unsettled = 0;
    let mut journal_error = None;
    if let Some(j) = plan.journal.as_ref().filter(|_| !dry && !stopped) {
        let settled = match journal::load_for(&copier, j).await {
            Ok(loaded) => {
                journal::reconcile_loaded(
                    &copier,
                    j.mode,
                    loaded,
                    plan.partition,
                    &folder,
                    plan.job.threads,
                    &removed_during_pass,
                )
                .await
            }
            Err(e) => Err(e),
        };
        let (sum, keys) = match settled {
            Ok(r) => r,
            Err(e) => {
                // Still write the summary: it must say the pass is not
                // complete.
                journal_error = Some(e);
                Default::default()
            }
        };
        journal::append_failed(&folder, &keys).map_err(|e| {
            RunError::Fatal(format!("writing failed.log in {}: {e}", folder.display()))
        })?;
        for k in &keys {
            *ledger_report
                .errors_by_class
                .entry(k.class.clone())
                .or_default() += 1;
        }
        unsettled = keys.len();
        journal_summary = journal_error.is_none().then_some(sum);
        if unsettled == 0 && journal_error.is_none() {
            // Every write is settled and has its record: make the records
            // durable (every run's, and their folder), then the intents
            // are no longer needed.
            records::sync(&folder).map_err(fatal)?;
            intents::clear(&folder).map_err(fatal)?;
        }
    }
    let _ = stop_tx.send(());
    let progress_line = progress_task.await.map_err(fatal)?;
    let elapsed = started.elapsed();
    metrics::pass_done(elapsed, &ledger_report.errors_by_class);

    let s = stats.snapshot();
    let summary = PassSummary {
        version: 1,
        run_id: plan.run_id.clone(),
        pass,
        dry_run: dry,
        started_at,
        elapsed_secs: elapsed.as_secs_f64(),
        // Not complete while a journalled delete is unsettled (invariant 2).
        complete: !stopped && unsettled == 0 && journal_error.is_none(),
        start_after: start_after.as_deref().map(keylist::escape),
        last_key: ledger_report.last_line.clone(),
        objects: Counts {
            obj: s.obj,
            ign: s.ign,
            exist: s.exist,
            copied: if dry { s.would_copy } else { s.upld },
            fail: s.fail,
            skip_dn: s.skip_dn,
            skip_up: s.skip_up,
        },
        bytes_downloaded: s.dl_bytes,
        bytes_uploaded: s.ul_bytes,
        tags_dropped: s.tags_dropped,
        errors_by_class: ledger_report.errors_by_class,
        progress: progress_line,
        journal: journal_summary,
    };
    let json = serde_json::to_vec_pretty(&summary).map_err(fatal)?;
    let name = if dry {
        format!("summary-{label}-dry-run.json")
    } else {
        format!("summary-{label}.json")
    };
    durable::write(&folder.join(name), &json, None).map_err(fatal)?;
    if let Some(e) = stream_error {
        return Err(RunError::Fatal(format!(
            "pass {pass} stopped early: {e}; resume with --start-after set to the last line of migrate.log"
        )));
    }
    if let Some(e) = journal_error {
        return Err(RunError::Fatal(format!(
            "pass {pass}: cannot reconcile the delete journal, so a deleted key may have come back: {e}"
        )));
    }
    if unsettled > 0 {
        // An error, not a count: the object counts stay exact, and every
        // caller (CLI or agent job) sees the run fail.
        return Err(RunError::Fatal(format!(
            "pass {pass}: {unsettled} journalled deletes could not be reconciled, so a deleted key may have come back; see {}/{} and the pass summary",
            folder.display(),
            ledger::FAILED_LOG
        )));
    }
    Ok(summary)
}
