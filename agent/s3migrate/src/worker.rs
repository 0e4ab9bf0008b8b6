//! The per-key decision: compare what each side holds, then copy, skip or
//! report. This is where the no-lost-write rule lives:
//!
//! - a key only on the source is created with `If-None-Match: *`;
//! - a key on both sides with the same size and ETag exists already;
//! - a key the copier wrote earlier (per its records) whose source changed
//!   is replaced with `If-Match: <the ETag the copier wrote>`;
//! - any other key on the destination belongs to someone else and is never
//!   overwritten (`skip up`), except by `--overwrite-differing`, the
//!   reverse copy of a rollback.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::copy::{Cond, Copier, Side, SideError};
use super::entries::Entry;
use super::ledger::Outcome;
use super::probe::Caps;
use super::records::Record;
use crate::s3::ErrorClass;

pub struct Policy {
    pub caps: Caps,
    pub dry_run: bool,
    /// Conditional writes are honoured by the destination; when false (and
    /// the operator allowed it) writes go out unconditionally.
    pub conditional: bool,
    /// `--overwrite-differing`: someone else's different object is
    /// replaced, on the condition that it is still the one seen.
    pub overwrite_differing: bool,
}

pub struct Work {
    pub src: Entry,
    pub dest: Option<Entry>,
    pub rec: Option<Record>,
}

enum Plan {
    Done(Outcome),
    Copy(Cond, Option<String>),
}

pub async fn handle(copier: Arc<Copier>, policy: Arc<Policy>, w: Work) -> Outcome {
    let key = w.src.key.clone();
    let outcome = match plan(&copier, &policy, w).await {
        Ok(Plan::Done(o)) => o,
        Ok(Plan::Copy(_, _)) if policy.dry_run => Outcome::WouldCopy,
        Ok(Plan::Copy(cond, etag)) => {
            let cond = if policy.conditional { cond } else { Cond::None };
            match copier.copy(&key, etag.as_deref(), &cond).await {
                Ok(rec) => Outcome::Copied(rec),
                Err(e) => from_error(e),
            }
        }
        Err(e) => from_error(e),
    };
    count(&copier.stats, &outcome);
    outcome
}

fn from_error(e: SideError) -> Outcome {
    match (e.side, e.err.class) {
        (Side::Source, ErrorClass::NotFound) => Outcome::SkipDn,
        (Side::Dest, ErrorClass::PreconditionFailed) => Outcome::SkipUp,
        _ => Outcome::Failed {
            class: e.class(),
            message: e.to_string(),
        },
    }
}

fn count(stats: &super::progress::Stats, o: &Outcome) {
    let c = match o {
        Outcome::Ign => &stats.ign,
        Outcome::Exist => &stats.exist,
        Outcome::Copied(_) => {
            stats.dnld.fetch_add(1, Relaxed);
            &stats.upld
        }
        Outcome::WouldCopy => &stats.would_copy,
        Outcome::SkipDn => &stats.skip_dn,
        Outcome::SkipUp => &stats.skip_up,
        Outcome::Failed { .. } => &stats.fail,
    };
    c.fetch_add(1, Relaxed);
}

async fn head(copier: &Copier, side: Side, key: &str) -> Result<Option<Entry>, SideError> {
    copier
        .head_entry(side, key)
        .await
        .map_err(|err| SideError { side, err })
}

async fn plan(copier: &Copier, policy: &Policy, w: Work) -> Result<Plan, SideError> {
    let key = w.src.key.clone();
    let key = key.as_str();
    if let Some(why) = policy.caps.unrepresentable(key) {
        return Ok(Plan::Done(Outcome::Failed {
            class: "unrepresentable".to_owned(),
            message: why.to_owned(),
        }));
    }
    let Some(mut dest) = w.dest else {
        // Only on the source (as far as the destination's list knows): no
        // HEAD, straight to the copy. If-None-Match catches a list that was
        // stale.
        return Ok(Plan::Copy(Cond::Create, w.src.etag));
    };
    let mut src = w.src;
    if src.etag.is_none() {
        match head(copier, Side::Source, key).await? {
            Some(e) => src = e,
            None => return Ok(Plan::Done(Outcome::SkipDn)),
        }
    }
    if dest.etag.is_none() {
        match head(copier, Side::Dest, key).await? {
            Some(e) => dest = e,
            None => return Ok(Plan::Copy(Cond::Create, src.etag)),
        }
    }
    if let Some(rec) = &w.rec
        && dest.etag.as_deref() == Some(rec.dest_etag.as_str())
    {
        // The destination still holds the copier's own write.
        if src.etag.as_deref() == Some(rec.src_etag.as_str()) {
            return Ok(Plan::Done(Outcome::Exist));
        }
        return Ok(Plan::Copy(Cond::Replace(rec.dest_etag.clone()), src.etag));
    }
    if dest.size == src.size && dest.etag == src.etag {
        return Ok(Plan::Done(Outcome::Exist));
    }
    // Someone else's object: a client wrote it, and it is newer than the
    // copier's view of the source. Never overwritten, but in the reverse
    // copy of a rollback, whose bucket is blocked to clients.
    match dest.etag {
        Some(etag) if policy.overwrite_differing => Ok(Plan::Copy(Cond::Replace(etag), src.etag)),
        _ => Ok(Plan::Done(Outcome::SkipUp)),
    }
}
