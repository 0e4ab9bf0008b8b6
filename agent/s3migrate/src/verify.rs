//! `--verify`: account for every source key of this process's share on the
//! destination, by size and ETag, or by content (SHA-256) where an ETag is a
//! multipart one that the copy could not reproduce. A key is
//! - equal (or equal by content);
//! - newer on the destination by a client (with `--delete-journal`, that
//!   is, in a live migration): it differs, and the destination holds no
//!   write of the copier's (its ETag is in no record or intent); in migrate
//!   mode clients write the target, so that is the newest object, and
//!   fine;
//! - a problem: missing, or different while the destination still holds the
//!   copier's write (a copy that went wrong or went stale).
//!
//! Keys a client deleted are not listed by the source and so not checked;
//! with `--delete-journal`, a copier's write of such a key, still on the
//! destination, is a problem too (`resurrected`). Problems go to verify.log
//! in the dest folder and fail the run; everything else exits 0.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::copy::is_multipart_etag;
use super::entries::{Entry, head_entry};
use super::journal::{self, DeleteMode, Journal};
use super::records::{self, Record};
use super::run_pass::{dest_listing, source_stream};
use super::{Plan, RunError};
use crate::s3::{ErrorClass, S3Error};
use ferry_control::keylist;

pub const VERIFY_LOG: &str = "verify.log";

#[derive(Debug, Default, Clone, Serialize)]
pub struct VerifyReport {
    pub checked: u64,
    pub equal: u64,
    pub by_content: u64,
    /// Different on the destination, written there by a client.
    pub client_newer: u64,
    pub problems_by_class: BTreeMap<String, u64>,
}

impl VerifyReport {
    pub fn problems(&self) -> u64 {
        self.problems_by_class.values().sum()
    }
}

impl std::fmt::Display for VerifyReport {
    /// The one-line summary s3migrate prints and the agent's job log keeps.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "verify: checked={} equal={} equal-by-content={} client-newer={} problems={}",
            self.checked,
            self.equal,
            self.by_content,
            self.client_newer,
            self.problems()
        )
    }
}

enum Verdict {
    Equal,
    EqualByContent,
    ClientNewer,
    Problem(&'static str, String),
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

async fn check(
    plan: Arc<PlanRef>,
    src: Entry,
    dest: Option<Entry>,
    rec: Option<Record>,
    intent: Option<String>,
) -> Verdict {
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
    // The copier's writes of the key: a destination object that is none of
    // them is a client's.
    let copiers = |etag: &Option<String>| {
        rec.as_ref()
            .is_some_and(|r| Some(&r.dest_etag) == etag.as_ref())
            || intent.is_some() && intent == *etag
    };
    let differs = src.size != dest.size || src.etag != dest.etag;
    if plan.client_writes && differs && !copiers(&dest.etag) && dest.etag.is_some() {
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

/// The parts of a plan a verify task needs.
struct PlanRef {
    copier: Arc<super::copy::Copier>,
    /// Clients write the destination (a live migration, with the delete
    /// journal): a difference that is no write of the copier's is theirs.
    /// Without the journal nothing but the copier writes it, and every
    /// difference is a problem.
    client_writes: bool,
}

pub(crate) async fn run(plan: &Plan) -> Result<VerifyReport, RunError> {
    let fatal = |e: &dyn std::fmt::Display| RunError::Fatal(format!("verify: {e}"));
    let mut src = source_stream(plan, None)?;
    // Always the live listing: key lists carry no ETags.
    let mut dest = dest_listing(plan, None);
    let mut recs = records::open(&plan.dest_folder).map_err(|e| fatal(&e))?;
    let pref = Arc::new(PlanRef {
        copier: plan.copier.clone(),
        client_writes: plan.journal.is_some(),
    });
    let log_path = plan.dest_folder.join(VERIFY_LOG);
    let mut log = std::fs::File::create(&log_path).map_err(|e| fatal(&e))?;
    let mut report = VerifyReport::default();
    // Writes whose records a kill may have lost.
    let intents = super::intents::load(&plan.dest_folder).map_err(|e| fatal(&e))?;
    let mut inflight = futures::stream::FuturesOrdered::new();
    let limit = plan.job.threads.max(1);
    let mut finish = |report: &mut VerifyReport, key: String, v: Verdict| -> std::io::Result<()> {
        report.checked += 1;
        match v {
            Verdict::Equal => report.equal += 1,
            Verdict::EqualByContent => report.by_content += 1,
            Verdict::ClientNewer => report.client_newer += 1,
            Verdict::Problem(class, msg) => {
                *report
                    .problems_by_class
                    .entry(class.to_owned())
                    .or_default() += 1;
                writeln!(
                    log,
                    "{}\t{class}\t{}",
                    keylist::escape(&key),
                    msg.replace(['\t', '\n'], " ")
                )?;
            }
        }
        Ok(())
    };
    loop {
        let entry = match src.next().await {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => return Err(fatal(&e)),
        };
        // A journalled key the source still lists is live (its delete did
        // not happen): it is checked like any other.
        if !plan.partition.owns(&entry.key) {
            continue;
        }
        let d = dest.seek(&entry.key).await.map_err(|e| fatal(&e))?;
        let r = recs.seek(&entry.key).await.map_err(|e| fatal(&e))?;
        let key = entry.key.clone();
        let p = pref.clone();
        let intent = intents.get(&key).cloned();
        inflight.push_back(async move { (key, check(p, entry, d, r, intent).await) });
        if inflight.len() >= limit
            && let Some((k, v)) = inflight.next().await
        {
            finish(&mut report, k, v).map_err(|e| fatal(&e))?;
        }
    }
    while let Some((k, v)) = inflight.next().await {
        finish(&mut report, k, v).map_err(|e| fatal(&e))?;
    }
    if let Some(j) = &plan.journal {
        // The reconcile's own judgement, in the mode that never deletes: a
        // copier's write of a deleted key still on the destination fails
        // verify (invariant 2).
        let look = Journal {
            bucket: j.bucket.clone(),
            mode: DeleteMode::Report,
        };
        let (_, unsettled) = journal::reconcile(
            &plan.copier,
            &look,
            plan.partition,
            &plan.dest_folder,
            limit,
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
            finish(&mut report, u.key, v).map_err(|e| fatal(&e))?;
        }
    }
    log.sync_all().map_err(|e| fatal(&e))?;
    let json = serde_json::to_vec_pretty(&report).map_err(|e| fatal(&e))?;
    ferry_s3::durable::write(&plan.dest_folder.join("verify-summary.json"), &json, None)
        .map_err(|e| fatal(&e))?;
    Ok(report)
}
