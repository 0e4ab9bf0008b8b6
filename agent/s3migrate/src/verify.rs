//! `--verify`: account for every key of this process's share, by a
//! merge-join of the source's and the destination's listings, streamed.
//! A key on both sides is
//! - equal by size and ETag, or by content (SHA-256) where an ETag is a
//!   multipart one that the copy could not reproduce;
//! - newer on the destination by a client (with `--delete-journal`, that
//!   is, in a live migration): it differs, and the destination holds no
//!   write of the copier's (its ETag is in no record or intent); in migrate
//!   mode clients write the target, so that is the newest object, and
//!   fine;
//! - a problem: different while the destination still holds the copier's
//!   write (a copy that went wrong or went stale).
//!
//! A key only on the source is `missing`. A key only on the destination
//! (compared only against a live listing of the source, never against a
//! key list, which may be partial) is a client's new key in a live
//! migration, unless it is the copier's own write: then the source lost it
//! after the copy, outside the proxy (a delete in forward mode, say), and it
//! is `extra`. With `--delete-journal`, a copier's write of a key a client
//! deleted, still on the destination, is `resurrected`.
//!
//! Problems go to verify.log in the dest folder and fail the run. Verify also
//! leaves key lists for the next step, under DEST/verify/: `repair` (the
//! keys to copy again), `extra` (the copier's copies to remove again) and
//! `client-writes` (what clients wrote on the destination: what a rollback
//! must carry back to the source).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::copy::is_multipart_etag;
use super::entries::{Entry, head_entry};
use super::journal::{self, DeleteMode};
use super::records::{self, Record};
use super::run_pass::{dest_listing, source_stream};
use super::{Plan, RunError};
use crate::s3::{ErrorClass, S3Error};
use ferry_control::jobs::{VERIFY_EXAMPLES, VerifyProblem, VerifyReport};
use ferry_control::keylist::{self, KeyListWriter};
use ferry_s3::durable;

pub const VERIFY_LOG: &str = "verify.log";
pub const SUMMARY: &str = "verify-summary.json";

/// The key lists verify leaves in the dest folder.
#[derive(Debug, Clone, Copy)]
pub enum List {
    /// Missing or different on the destination: `--repair` copies them.
    Repair,
    /// The copier's copies of keys the source no longer holds: `--repair`
    /// removes them, if they are still the copier's.
    Extra,
    /// Written on the destination by clients: the reverse copy of a
    /// rollback carries them to the source.
    ClientWrites,
}

impl List {
    fn name(self) -> &'static str {
        match self {
            List::Repair => "repair",
            List::Extra => "extra",
            List::ClientWrites => "client-writes",
        }
    }

    pub fn dir(self, dest_folder: &Path) -> PathBuf {
        dest_folder.join("verify").join(self.name())
    }
}

/// Problems that another copy of the key fixes.
const COPY_AGAIN: [&str; 6] = [
    "missing",
    "size",
    "etag",
    "content",
    "source-error",
    "dest-error",
];

enum Verdict {
    Equal,
    EqualByContent,
    ClientNewer,
    ClientNew,
    Problem(&'static str, String),
}

/// One key's verify: judged from the listings alone, or by a check that may
/// read either side.
enum Work {
    Judged(Verdict),
    Both(Box<Both>),
}

/// A key the source lists, and what the destination and the copier's
/// records hold of it.
struct Both {
    src: Entry,
    dest: Option<Entry>,
    rec: Option<Record>,
    intent: Option<String>,
}

async fn sha256_of(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<String, S3Error> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(S3Error::from_sdk)?;
    let mut body = out.body;
    let mut h = Sha256::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| S3Error::new(ErrorClass::Connection, e.to_string()))?;
        h.update(&chunk);
    }
    Ok(hex::encode(h.finalize()))
}

/// Is `etag` one the copier wrote, per its record or intent of the key?
fn copiers(etag: Option<&str>, rec: Option<&Record>, intent: Option<&str>) -> bool {
    etag.is_some_and(|e| rec.is_some_and(|r| r.dest_etag == e) || intent == Some(e))
}

async fn judge(plan: Arc<PlanRef>, key: String, work: Work) -> (String, Verdict) {
    let v = match work {
        Work::Judged(v) => v,
        Work::Both(b) => check(&plan, *b).await,
    };
    (key, v)
}

async fn check(plan: &PlanRef, both: Both) -> Verdict {
    let Both {
        src,
        dest,
        rec,
        intent,
    } = both;
    let key = src.key.clone();
    let c = &plan.copier;
    let src = if src.etag.is_some() {
        Some(src)
    } else {
        match head_entry(&c.src, &c.src_bucket, &key).await {
            Ok(s) => s,
            Err(e) => return Verdict::Problem("source-error", e.to_string()),
        }
    };
    let Some(src) = src else {
        return Verdict::Problem("source-gone", "listed but no longer on the source".into());
    };
    let Some(dest) = dest else {
        return Verdict::Problem("missing", "not on the destination".into());
    };
    let differs = src.size != dest.size || src.etag != dest.etag;
    if plan.client_writes
        && differs
        && dest.etag.is_some()
        && !copiers(dest.etag.as_deref(), rec.as_ref(), intent.as_deref())
    {
        return Verdict::ClientNewer;
    }
    if src.size != dest.size {
        return Verdict::Problem(
            "size",
            format!(
                "source {} bytes, destination {} bytes",
                src.size.unwrap_or(0),
                dest.size.unwrap_or(0)
            ),
        );
    }
    if src.etag == dest.etag {
        return Verdict::Equal;
    }
    let multipart = src.etag.as_deref().is_some_and(is_multipart_etag)
        || dest.etag.as_deref().is_some_and(is_multipart_etag);
    if !multipart {
        return Verdict::Problem(
            "etag",
            format!(
                "source ETag {}, destination ETag {}",
                src.etag.unwrap_or_default(),
                dest.etag.unwrap_or_default()
            ),
        );
    }
    // ETags of different part layouts cannot be compared: compare content.
    let recorded = rec
        .filter(|r| {
            Some(&r.src_etag) == src.etag.as_ref() && Some(&r.dest_etag) == dest.etag.as_ref()
        })
        .and_then(|r| r.sha256);
    let src_hash = match recorded {
        Some(h) => h,
        None => match sha256_of(&c.src, &c.src_bucket, &key).await {
            Ok(h) => h,
            Err(e) => return Verdict::Problem("source-error", e.to_string()),
        },
    };
    match sha256_of(&c.dest, &c.dest_bucket, &key).await {
        Ok(h) if h == src_hash => Verdict::EqualByContent,
        Ok(_) => Verdict::Problem("content", "content differs (SHA-256)".into()),
        Err(e) => Verdict::Problem("dest-error", e.to_string()),
    }
}

/// A key only the destination lists.
fn only_on_dest(
    dest: &Entry,
    rec: Option<&Record>,
    intent: Option<&str>,
    client_writes: bool,
) -> Verdict {
    if copiers(dest.etag.as_deref(), rec, intent) {
        return Verdict::Problem(
            "extra",
            "the copier's copy of a key the source no longer holds: it was deleted on the source \
             outside migrate mode (in forward mode, or behind the proxy)"
                .into(),
        );
    }
    if client_writes {
        return Verdict::ClientNew;
    }
    Verdict::Problem(
        "extra",
        "on the destination only, and not written by the copier; without a delete journal \
         nothing else writes it"
            .into(),
    )
}

/// The parts of a plan a verify task needs.
struct PlanRef {
    copier: Arc<super::copy::Copier>,
    /// Clients write the destination (a live migration, with the delete
    /// journal): a difference that is no write of the copier's is theirs.
    /// Without the journal nothing but the copier writes it, and every
    /// difference is a problem.
    client_writes: bool,
}

/// Where each verdict goes: the report, verify.log and the key lists.
struct Tally {
    report: VerifyReport,
    log: std::fs::File,
    lists: [KeyListWriter; 3],
}

impl Tally {
    fn create(dest_folder: &Path) -> Result<Tally, String> {
        let log = std::fs::File::create(dest_folder.join(VERIFY_LOG)).map_err(|e| e.to_string())?;
        let list = |l: List| {
            KeyListWriter::replace(&l.dir(dest_folder), &format!("{}-", l.name()))
                .map_err(|e| e.to_string())
        };
        Ok(Tally {
            report: VerifyReport::default(),
            log,
            // In the order of `List`'s variants, which index it.
            lists: [
                list(List::Repair)?,
                list(List::Extra)?,
                list(List::ClientWrites)?,
            ],
        })
    }

    /// `listed`: the verdict comes in key order, so its key may join a
    /// list (the journal's verdicts come after, out of order).
    fn add(&mut self, key: String, v: Verdict, listed: bool) -> Result<(), String> {
        let r = &mut self.report;
        r.checked += 1;
        let list = match v {
            Verdict::Equal => {
                r.equal += 1;
                None
            }
            Verdict::EqualByContent => {
                r.by_content += 1;
                None
            }
            Verdict::ClientNewer => {
                r.client_newer += 1;
                Some(List::ClientWrites)
            }
            Verdict::ClientNew => {
                r.client_new += 1;
                Some(List::ClientWrites)
            }
            Verdict::Problem(class, message) => {
                *r.problems_by_class.entry(class.to_owned()).or_default() += 1;
                let message = message.replace(['\t', '\n'], " ");
                writeln!(self.log, "{}\t{class}\t{message}", keylist::escape(&key))
                    .map_err(|e| e.to_string())?;
                let list = match class {
                    "extra" => Some(List::Extra),
                    c if COPY_AGAIN.contains(&c) => Some(List::Repair),
                    _ => None,
                };
                if r.examples.len() < VERIFY_EXAMPLES {
                    r.examples.push(VerifyProblem {
                        key: key.clone(),
                        class: class.to_owned(),
                        message,
                    });
                }
                list
            }
        };
        if let Some(l) = list.filter(|_| listed) {
            self.lists[l as usize]
                .push(&key)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn finish(self, dest_folder: &Path) -> Result<VerifyReport, String> {
        let Tally {
            mut report,
            log,
            lists,
        } = self;
        for w in lists {
            w.finish().map_err(|e| e.to_string())?;
        }
        log.sync_all().map_err(|e| e.to_string())?;
        report.finished_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let json = serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?;
        durable::write(&dest_folder.join(SUMMARY), &json, None).map_err(|e| e.to_string())?;
        Ok(report)
    }
}

pub(crate) async fn run(plan: &Plan) -> Result<VerifyReport, RunError> {
    let fatal = |e: &dyn std::fmt::Display| RunError::Fatal(format!("verify: {e}"));
    let mut src = source_stream(plan, None)?;
    // Always the live listing: key lists carry no ETags.
    let mut dest = dest_listing(plan, None);
    // Keys only on the destination count only against the whole source.
    let merge = plan.src_folder.is_none();
    let mut recs = records::open(&plan.dest_folder).map_err(|e| fatal(&e))?;
    let pref = Arc::new(PlanRef {
        copier: plan.copier.clone(),
        client_writes: plan.journal.is_some(),
    });
    // Read once, at the start: journalled keys are judged by the reconcile
    // below, not as extras, and the reconcile settles the same entries
    // (every entry is a GET). A delete made while verify runs is the next
    // verify's; a copier running meanwhile settles it in its own pass.
    let journalled = match &plan.journal {
        Some(j) => Some(
            journal::load_for(&plan.copier, j)
                .await
                .map_err(|e| fatal(&e))?,
        ),
        None => None,
    };
    let is_journalled = |key: &str| {
        journalled
            .as_ref()
            .is_some_and(|l| l.keys.contains_key(key))
    };
    let mut tally = Tally::create(&plan.dest_folder).map_err(|e| fatal(&e))?;
    // Writes whose records a kill may have lost.
    let intents = super::intents::load(&plan.dest_folder).map_err(|e| fatal(&e))?;
    let mut inflight = futures::stream::FuturesOrdered::new();
    let limit = plan.job.threads.max(1);
    loop {
        let entry = src.next().await.map_err(|e| fatal(&e))?;
        let upto = entry.as_ref().map(|e| e.key.as_str());
        while merge && let Some(d) = dest.next_below(upto).await.map_err(|e| fatal(&e))? {
            if !plan.partition.owns(&d.key) {
                continue;
            }
            let r = recs.seek(&d.key).await.map_err(|e| fatal(&e))?;
            let intent = intents.get(&d.key).map(String::as_str);
            if is_journalled(&d.key) && copiers(d.etag.as_deref(), r.as_ref(), intent) {
                continue;
            }
            let v = only_on_dest(&d, r.as_ref(), intent, pref.client_writes);
            inflight.push_back(judge(pref.clone(), d.key, Work::Judged(v)));
        }
        let Some(entry) = entry else { break };
        // A journalled key the source still lists is live (its delete did
        // not happen): it is checked like any other.
        if !plan.partition.owns(&entry.key) {
            continue;
        }
        let d = dest.seek(&entry.key).await.map_err(|e| fatal(&e))?;
        let rec = recs.seek(&entry.key).await.map_err(|e| fatal(&e))?;
        let key = entry.key.clone();
        let work = Work::Both(Box::new(Both {
            src: entry,
            dest: d,
            rec,
            intent: intents.get(&key).cloned(),
        }));
        inflight.push_back(judge(pref.clone(), key, work));
        while inflight.len() >= limit
            && let Some((k, v)) = inflight.next().await
        {
            tally.add(k, v, true).map_err(|e| fatal(&e))?;
        }
    }
    while let Some((k, v)) = inflight.next().await {
        tally.add(k, v, true).map_err(|e| fatal(&e))?;
    }
    if let Some(loaded) = journalled {
        // The reconcile's own judgement, in the mode that never deletes: a
        // copier's write of a deleted key still on the destination fails
        // verify (invariant 2).
        let (_, unsettled) = journal::reconcile_loaded(
            &plan.copier,
            DeleteMode::Report,
            loaded,
            plan.partition,
            &plan.dest_folder,
            limit,
            &Default::default(),
        )
        .await
        .map_err(|e| fatal(&e))?;
        for u in unsettled {
            let v = if u.class == "unreconciled-delete" {
                Verdict::Problem(
                    "resurrected",
                    "a client deleted it (delete journal), but the copier's copy is still on the destination".into(),
                )
            } else {
                Verdict::Problem("journal", format!("{}: {}", u.class, u.message))
            };
            tally.add(u.key, v, false).map_err(|e| fatal(&e))?;
        }
    }
    tally.finish(&plan.dest_folder).map_err(|e| fatal(&e))
}
