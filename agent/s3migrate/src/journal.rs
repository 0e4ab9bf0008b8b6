//! The copier's side of the delete journal (`--delete-journal`), which keeps
//! invariant 2, no resurrection: an object a client deleted in migrate mode
//! never reappears because the copier read it just before the delete.
//!
//! The proxy writes one entry per deleted key into a reserved bucket on the
//! destination store (format: `ferry_control::journal`), and removes it once a
//! later client write of that key lands. The copier
//!
//! - copies, during a pass, every key the source lists, journalled or not:
//!   a journalled key the source still holds is live (its delete failed,
//!   and the client was told so, or has not reached the source yet), and
//!   skipping it would lose it at detach;
//! - after the pass, reads the journal afresh and, for each journalled key
//!   that is gone from the source, removes any copy of it that is still the
//!   copier's own write, judged by the destination ETag of its latest
//!   intent (`intents`) or record. It never deletes blindly: a key without
//!   either, or whose destination ETag differs, is the client's and is
//!   kept; a key still on the source is live and kept.
//!
//! How it removes depends on the destination ([`DeleteMode`]). Where it
//! cannot be sure, the key is reported in failed.log and the pass is not
//! complete.
//!
//! An ETag match cannot tell the copier's stale bytes from a client's later
//! write of the very same bytes; that case is only reachable if the proxy
//! failed to remove the entry after that write, and removing identical bytes
//! is then the lesser harm.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use aws_sdk_s3::Client;
use futures::StreamExt;
use serde::Serialize;

use super::copy::{Copier, Side};
use super::intents;
use super::partition::Partition;
use super::records;
use crate::retry::RetryPolicy;
use crate::s3::{ErrorClass, S3Error};
use ferry_control::journal::{Entry, prefix};
use ferry_control::keylist;
use ferry_s3::durable;

/// Journal entries read at once; each is one small GET.
const READ_AHEAD: usize = 16;

/// How a resurrected copy is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// DeleteObject with `If-Match: <the ETag the copier wrote>`: the store
    /// itself refuses if a client wrote since.
    IfMatch,
    /// HEAD, compare with the record, then an unconditional DELETE. A client
    /// write between the HEAD and the DELETE would be lost; only with
    /// `--allow-overwrite`, where the operator accepted that risk.
    Compare,
    /// The store ignores `If-Match` on DELETE and the operator did not
    /// accept the race: a resurrected copy is reported, never removed.
    Report,
}

impl DeleteMode {
    pub fn choose(if_match_delete: bool, allow_overwrite: bool) -> Self {
        match (if_match_delete, allow_overwrite) {
            (true, _) => Self::IfMatch,
            (false, true) => Self::Compare,
            (false, false) => Self::Report,
        }
    }
}

/// The journal as the copier reads it.
#[derive(Debug, Clone)]
pub struct Journal {
    pub bucket: String,
    pub mode: DeleteMode,
}

/// What the reconcile at the end of a pass found, in the pass summary.
/// `entries == not_mine + no_record + live + absent + kept + removed + unreconciled`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JournalSummary {
    pub entries: u64,
    /// Keys of another process's share (`--hash-value`): its copier has the
    /// records to judge them.
    pub not_mine: u64,
    /// The copier never wrote the key (no record, no intent): nothing of
    /// its own to undo.
    pub no_record: u64,
    /// Still on the source: the delete did not happen there (it failed, or
    /// is still under way), so the key is live, and the copier's copy of it
    /// stays.
    pub live: u64,
    /// Not on the destination: already as the client left it.
    pub absent: u64,
    /// On the destination but not the copier's write: the client's, kept.
    pub kept: u64,
    /// The copier's own write of a deleted key, removed again: by the
    /// journal watch moments after it landed (`watch`), or here.
    pub removed: u64,
    /// Of `removed`, those the journal watch removed during the pass.
    pub removed_during_pass: u64,
    /// Could not be settled (see failed.log); the pass is not complete.
    pub unreconciled: u64,
}

/// A key (or a journal entry) the reconcile could not settle.
pub struct Unsettled {
    pub key: String,
    pub class: String,
    pub message: String,
}

/// Entries of `dest_bucket`'s journal: raw key to entry name, plus the
/// entries that could not be read as valid ones.
///
/// Held in memory: the journal holds only the deletes of the migration
/// window, and entry names are hashes, so no listing order helps.
pub struct Loaded {
    pub keys: BTreeMap<String, String>,
    pub bad: Vec<Unsettled>,
}

/// Preflight: the journal bucket must be listable with the destination
/// credentials. One line for the operator on failure.
pub async fn check(
    client: &Client,
    bucket: &str,
    dest_bucket: &str,
    url: &str,
) -> Result<(), String> {
    let what = format!("--delete-journal bucket '{bucket}' at {url}");
    if bucket == dest_bucket {
        return Err(format!(
            "{what}: the journal must be a reserved bucket, never the migrating bucket"
        ));
    }
    let r = RetryPolicy {
        attempts: 2,
        ..Default::default()
    }
    .run(|| async {
        client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix(dest_bucket))
            .max_keys(1)
            .send()
            .await
            .map_err(S3Error::from_sdk)
    })
    .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) => Err(match e.class {
            ErrorClass::AccessDenied => format!(
                "{what}: access denied (HTTP 403): the destination key cannot list the journal"
            ),
            ErrorClass::NotFound | ErrorClass::NoSuchBucket => {
                format!("{what}: no such bucket (HTTP 404)")
            }
            _ => format!("{what}: cannot list it: {e}"),
        }),
    }
}

/// Reads every entry of `dest_bucket` from the journal, now.
pub async fn load(
    client: &Client,
    journal_bucket: &str,
    dest_bucket: &str,
    retry: RetryPolicy,
) -> Result<Loaded, S3Error> {
    let (names, _) = list_names(client, journal_bucket, dest_bucket, retry).await?;
    let bodies: Vec<(String, EntryBody)> = futures::stream::iter(names)
        .map(|name| async move {
            let body = retry
                .run(|| read_entry(client, journal_bucket, &name))
                .await;
            (name, body)
        })
        .buffer_unordered(READ_AHEAD)
        .collect()
        .await;
    let mut out = Loaded {
        keys: BTreeMap::new(),
        bad: Vec::new(),
    };
    for (name, body) in bodies {
        // Gone between the listing and the GET: the proxy removed it after a
        // client write, so the key is the client's again.
        let Some(body) = body? else { continue };
        match Entry::parse(&name, &body) {
            Ok(e) => {
                out.keys.insert(e.key, name);
            }
            Err(why) => out.bad.push(Unsettled {
                key: name,
                class: "journal-bad-entry".to_owned(),
                message: format!("{why}; cannot tell which key it protects"),
            }),
        }
    }
    Ok(out)
}

/// The names of `dest_bucket`'s entries in the journal, now, and how many
/// listing pages that took.
pub async fn list_names(
    client: &Client,
    journal_bucket: &str,
    dest_bucket: &str,
    retry: RetryPolicy,
) -> Result<(Vec<String>, usize), S3Error> {
    let pfx = prefix(dest_bucket);
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = retry
            .run(|| {
                let req = client
                    .list_objects_v2()
                    .bucket(journal_bucket)
                    .prefix(&pfx)
                    .set_continuation_token(token.clone());
                async move { req.send().await.map_err(S3Error::from_sdk) }
            })
            .await?;
        pages += 1;
        names.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
            _ => return Ok((names, pages)),
        }
    }
}

/// An entry's bytes; `None` when it was removed after the listing.
type EntryBody = Result<Option<Vec<u8>>, S3Error>;

async fn read_entry(client: &Client, bucket: &str, name: &str) -> EntryBody {
    let out = match client.get_object().bucket(bucket).key(name).send().await {
        Ok(o) => o,
        Err(e) => {
            let e = S3Error::from_sdk(e);
            return if e.is(ErrorClass::NotFound) {
                Ok(None)
            } else {
                Err(e)
            };
        }
    };
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| S3Error::new(ErrorClass::Connection, e.to_string()))?;
    Ok(Some(body.into_bytes().to_vec()))
}

pub(crate) enum Fate {
    Live,
    Absent,
    Kept,
    Removed,
    Unsettled(String, String),
}

/// Settles every journalled key of this process's share against what the
/// copier wrote. Runs after the pass's copies have all ended and their
/// records are on disk.
pub async fn reconcile(
    copier: &Copier,
    journal: &Journal,
    partition: Partition,
    dest_folder: &Path,
    threads: usize,
) -> Result<(JournalSummary, Vec<Unsettled>), String> {
    let loaded = load_for(copier, journal).await?;
    reconcile_loaded(
        copier,
        journal.mode,
        loaded,
        partition,
        dest_folder,
        threads,
        &BTreeSet::new(),
    )
    .await
}

/// The journal's entries of the copier's bucket, read now.
pub async fn load_for(copier: &Copier, journal: &Journal) -> Result<Loaded, String> {
    load(
        &copier.dest,
        &journal.bucket,
        &copier.dest_bucket,
        copier.retry,
    )
    .await
    .map_err(|e| format!("reading the delete journal '{}': {e}", journal.bucket))
}

/// As [`reconcile`], with the journal as the caller read it, and the keys
/// the journal watch removed during the pass (found absent now, they count
/// as removed).
pub async fn reconcile_loaded(
    copier: &Copier,
    mode: DeleteMode,
    loaded: Loaded,
    partition: Partition,
    dest_folder: &Path,
    threads: usize,
    removed_during_pass: &BTreeSet<String>,
) -> Result<(JournalSummary, Vec<Unsettled>), String> {
    let mut sum = JournalSummary {
        entries: (loaded.keys.len() + loaded.bad.len()) as u64,
        ..Default::default()
    };
    let mut unsettled = loaded.bad;
    // Records are a sorted stream; the journal's keys are sorted too, so one
    // forward sweep pairs them. An intent is newer than any record of its
    // key: it names a write whose record a kill may have lost.
    let mut recs = records::open(dest_folder).map_err(|e| e.to_string())?;
    let intents = intents::load(dest_folder)
        .map_err(|e| format!("reading {}: {e}", intents::path(dest_folder).display()))?;
    let mut mine: Vec<(String, Vec<String>)> = Vec::new();
    for key in loaded.keys.into_keys() {
        if !partition.owns(&key) {
            sum.not_mine += 1;
            continue;
        }
        // Every ETag the copier may have left: its intent's (a prediction,
        // which a store that does not write MD5 ETags misses) and its
        // record's (what the store answered).
        let rec = recs.seek(&key).await.map_err(|e| e.to_string())?;
        let mut etags: Vec<String> = intents.get(&key).cloned().into_iter().collect();
        etags.extend(rec.map(|r| r.dest_etag).filter(|e| !etags.contains(e)));
        match etags.is_empty() {
            true => sum.no_record += 1,
            false => mine.push((key, etags)),
        }
    }
    let fates: Vec<(String, Fate)> = futures::stream::iter(mine)
        .map(|(key, etags)| async move {
            let fate = settle(copier, mode, JOURNALLED, &key, &etags).await;
            (key, fate)
        })
        .buffer_unordered(threads.max(1))
        .collect()
        .await;
    for (key, fate) in fates {
        match fate {
            Fate::Live => sum.live += 1,
            Fate::Absent if removed_during_pass.contains(&key) => {
                sum.removed += 1;
                sum.removed_during_pass += 1;
            }
            Fate::Absent => sum.absent += 1,
            Fate::Kept => sum.kept += 1,
            Fate::Removed => sum.removed += 1,
            Fate::Unsettled(class, message) => unsettled.push(Unsettled {
                key,
                class,
                message,
            }),
        }
    }
    sum.unreconciled = unsettled.len() as u64;
    unsettled.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((sum, unsettled))
}

/// The journal's reason to remove a key, in the messages of [`settle`].
pub(crate) const JOURNALLED: &str = "deleted by a client (journal)";

/// Settles one key that should no longer be on the destination (`why`
/// says why, for the messages) and whose last write by the copier produced
/// one of `etags`: it is removed only if it is gone from the source and
/// still the copier's.
pub(crate) async fn settle(
    copier: &Copier,
    mode: DeleteMode,
    why: &str,
    key: &str,
    etags: &[String],
) -> Fate {
    let failed = |what: &str, e: S3Error| {
        Fate::Unsettled(
            format!("reconcile-dest-{}", e.class.as_str()),
            format!("{why}, and {what} failed: {e}"),
        )
    };
    // A journalled key still on the source was never deleted there: the
    // delete failed (the client was told so) or is still under way (it
    // will delete the target's copy after the source's). Either way the
    // copy is right, and removing it would hide a live key.
    match copier.head_entry(Side::Source, key).await {
        Ok(Some(_)) => return Fate::Live,
        Ok(None) => {}
        Err(e) => {
            return Fate::Unsettled(
                format!("reconcile-src-{}", e.class.as_str()),
                format!("{why}, and the source HEAD failed: {e}"),
            );
        }
    }
    if mode == DeleteMode::IfMatch {
        for dest_etag in etags {
            match delete_dest(copier, key, Some(dest_etag)).await {
                Ok(()) => return Fate::Removed,
                Err(e) if e.is(ErrorClass::NotFound) => return Fate::Absent,
                // Not this write of the copier's: try the next one.
                Err(e) if e.is(ErrorClass::PreconditionFailed) => {}
                Err(e) => return failed("the conditional DELETE", e),
            }
        }
        // None of the copier's writes: a client wrote the key since.
        return Fate::Kept;
    }
    let etag = match copier.head_entry(Side::Dest, key).await {
        Ok(Some(h)) => h.etag,
        Ok(None) => return Fate::Absent,
        Err(e) => return failed("the HEAD", e),
    };
    let Some(dest_etag) = etags.iter().find(|e| etag.as_deref() == Some(e.as_str())) else {
        return Fate::Kept;
    };
    if mode == DeleteMode::Report {
        return Fate::Unsettled(
            "unreconciled-delete".to_owned(),
            format!(
                "{why}, but the destination still holds the copier's copy (ETag {dest_etag}), and it ignores If-Match on DeleteObject, so it cannot be removed without risking a client's later write; remove it by hand, or rerun with --allow-overwrite to accept that risk"
            ),
        );
    }
    match delete_dest(copier, key, None).await {
        Ok(()) => Fate::Removed,
        Err(e) if e.is(ErrorClass::NotFound) => Fate::Absent,
        Err(e) => failed("the DELETE", e),
    }
}

/// DELETE of `key` on the destination, if its ETag is `if_match` when
/// given, once the rate limit allows, retried as the policy says.
async fn delete_dest(copier: &Copier, key: &str, if_match: Option<&str>) -> Result<(), S3Error> {
    copier
        .retry
        .run(|| async {
            copier.gate().await;
            copier
                .dest
                .delete_object()
                .bucket(&copier.dest_bucket)
                .key(key)
                .set_if_match(if_match.map(|etag| format!("\"{etag}\"")))
                .send()
                .await
                .map(drop)
                .map_err(S3Error::from_sdk)
        })
        .await
}

/// Appends the unsettled keys to failed.log, synced, as the ledger writes
/// its own failures: `--failed-to-folder` then retries them, and the retry
/// pass reconciles again.
pub fn append_failed(dest_folder: &Path, unsettled: &[Unsettled]) -> std::io::Result<()> {
    if unsettled.is_empty() {
        return Ok(());
    }
    let mut buf = Vec::new();
    for u in unsettled {
        let msg = u.message.replace(['\t', '\n', '\r'], " ");
        writeln!(buf, "{}\t{}\t{msg}", keylist::escape(&u.key), u.class)?;
    }
    let mut f = durable::open_append_repaired(&dest_folder.join(super::ledger::FAILED_LOG))?;
    f.write_all(&buf)?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one combination no harness store can show end to end (conditional
    /// writes honoured, conditional DELETE ignored): it must report, never
    /// delete.
    #[test]
    fn delete_mode_never_deletes_unconditionally_without_consent() {
        assert_eq!(DeleteMode::choose(true, false), DeleteMode::IfMatch);
        assert_eq!(DeleteMode::choose(true, true), DeleteMode::IfMatch);
        assert_eq!(DeleteMode::choose(false, true), DeleteMode::Compare);
        assert_eq!(DeleteMode::choose(false, false), DeleteMode::Report);
    }
}
