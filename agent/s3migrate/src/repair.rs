//! `--repair`: settle what a verify found, with the copier's own rules, so
//! that a second verify can pass. The keys to copy again (verify's `repair`
//! list) get one more pass, which writes only where the no-lost-write rule
//! allows; the copier's copies of keys the source no longer holds (its
//! `extra` list) are removed as the delete journal's reconcile removes a
//! resurrected copy: only while they are still the copier's own write.
//! Problems repair cannot settle stay, and the second verify reports them.

use serde::Serialize;

use super::journal::{self, DeleteMode, Fate, Unsettled};
use super::verify::List;
use super::{PassSummary, Plan, RunError, intents, records, run_pass};
use ferry_control::keylist::{self, KeyListReader};

/// What `--repair` did, in the run's report and the job's log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairSummary {
    /// Keys copied again (missing or different): one pass over them.
    pub copied_again: u64,
    /// The copier's copies of keys gone from the source, removed.
    pub removed: u64,
    /// Keys of the `extra` list that were no longer the copier's (a client
    /// wrote them since), or already gone: left as they are.
    pub left: u64,
    /// Could not be settled; in failed.log.
    pub unsettled: u64,
}

impl std::fmt::Display for RepairSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "repair: copied-again={} removed={} left={} unsettled={}",
            self.copied_again, self.removed, self.left, self.unsettled
        )
    }
}

fn fatal(e: impl std::fmt::Display) -> RunError {
    RunError::Fatal(format!("repair: {e}"))
}

/// Runs the repair after a verify that found problems; `pass` numbers the
/// copy pass, whose summary is returned with what was done.
pub(crate) async fn run(
    plan: &mut Plan,
    pass: u32,
) -> Result<(RepairSummary, Option<PassSummary>), RunError> {
    let mut sum = RepairSummary::default();
    let again = List::Repair.dir(&plan.dest_folder);
    sum.copied_again = match again.exists() {
        true => keylist::validate(&again).map_err(fatal)?,
        false => 0,
    };
    let summary = if sum.copied_again > 0 {
        // The pass reads the repair list; verify then reads the source as
        // the job asked again.
        let asked = plan.src_folder.replace(again);
        let r = run_pass::run(plan, pass, None).await;
        plan.src_folder = asked;
        Some(r?)
    } else {
        None
    };

    let mode = DeleteMode::choose(plan.caps.if_match_delete, plan.job.allow_overwrite);
    let mut reader =
        KeyListReader::open_optional(&List::Extra.dir(&plan.dest_folder)).map_err(fatal)?;
    let mut recs = records::open(&plan.dest_folder).map_err(fatal)?;
    let intents = intents::load(&plan.dest_folder).map_err(fatal)?;
    let mut unsettled = Vec::new();
    while let Some(key) = reader.next_key().map_err(fatal)? {
        let rec = recs.seek(&key).await.map_err(fatal)?;
        let mut etags: Vec<String> = intents.get(&key).cloned().into_iter().collect();
        etags.extend(rec.map(|r| r.dest_etag).filter(|e| !etags.contains(e)));
        match journal::settle(&plan.copier, mode, "gone from the source", &key, &etags).await {
            Fate::Removed => sum.removed += 1,
            Fate::Live | Fate::Absent | Fate::Kept => sum.left += 1,
            Fate::Unsettled(class, message) => unsettled.push(Unsettled {
                key,
                class,
                message,
            }),
        }
    }
    // A resurrected copy (a journalled key) is the pass's reconcile's to
    // remove; without a pass, reconcile here.
    if summary.is_none()
        && let Some(j) = &plan.journal
    {
        let threads = plan.job.threads;
        let (_, more) =
            journal::reconcile(&plan.copier, j, plan.partition, &plan.dest_folder, threads)
                .await
                .map_err(fatal)?;
        unsettled.extend(more);
    }
    sum.unsettled = unsettled.len() as u64;
    journal::append_failed(&plan.dest_folder, &unsettled).map_err(fatal)?;
    Ok((sum, summary))
}
