//! What migrate mode decides about one key from both sides before a
//! request goes on to the target:
//! - a sub-resource write (tags, ACL, retention, legal hold, restore) of a
//!   key only on the source first promotes the object to the target, so
//!   that the change lands on the object clients read and never touches
//!   the source;
//! - a conditional PutObject (`If-None-Match: *`, `If-Match`) is judged
//!   against the object clients see, the target's, else the source's, and
//!   the write to the target is itself conditional, so that neither a
//!   concurrent client nor the copier is overwritten.

use super::Services;
use super::transfer::{PutIf, Transfer};
use crate::s3error::{Code, S3Error};
use crate::upstream::fetch::{Body, Request, Side};

/// One key on both sides.
pub struct Key {
    pub target: Side,
    pub source: Side,
    /// Canonical paths of the object (no query) on each side.
    pub target_object: String,
    pub source_object: String,
}

/// The ETag of the object at `object` on `side`, `None` if absent. A side
/// that fails is a 503: absence is never guessed.
pub(super) async fn head(
    svc: &Services,
    side: &Side,
    object: &str,
) -> Result<Option<String>, S3Error> {
    let mut r = svc
        .fetcher
        .send(
            side,
            Request {
                method: "HEAD",
                target: object,
                headers: Vec::new(),
                body: Body::Empty,
            },
        )
        .await?;
    let status = r.status;
    let etag = r.header_str("etag").map(str::to_owned);
    let _ = r.body(64 * 1024).await;
    svc.fetcher.release(r).await;
    match status {
        200 => Ok(Some(etag.unwrap_or_default())),
        404 => Ok(None),
        s => Err(crate::upstream::fetch::unavailable(
            side.label,
            format!("HTTP {s} to a HEAD of the object"),
        )),
    }
}

/// Copies the object to the target if it is only on the source, with its
/// tags when `with_tags` (a change to its ACL, retention, legal hold or
/// restore keeps them; a change to its tags replaces them anyway).
/// Nothing happens when it is on the target already, or on neither side
/// (the target then answers the request with its own NoSuchKey).
pub async fn promote(svc: &Services, k: &Key, with_tags: bool) -> Result<(), S3Error> {
    if head(svc, &k.target, &k.target_object).await?.is_some() {
        return Ok(());
    }
    let copied = Transfer {
        from: &k.source,
        from_object: &k.source_object,
        to: &k.target,
        to_object: &k.target_object,
        headers: None,
        read_if: Vec::new(),
        put_if: PutIf::Absent,
        whole: true,
        with_tags,
    }
    .run(svc)
    .await;
    match copied {
        Ok(_) => {
            crate::metrics::migrate_promoted(&k.target.bucket);
            Ok(())
        }
        // A client or the copier wrote it meanwhile: it is on the target.
        Err(e) if e.code == Code::PreconditionFailed => Ok(()),
        // Deleted from the source meanwhile: nothing to promote.
        Err(e) if e.code == Code::NoSuchKey => Ok(()),
        Err(e) => Err(e),
    }
}

/// The conditional headers of a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
}

impl Conditions {
    pub fn any(&self) -> bool {
        self.if_match.is_some() || self.if_none_match.is_some()
    }

    /// The conditions among a request's headers.
    pub fn of(headers: &[(String, String)]) -> Conditions {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        Conditions {
            if_match: get("if-match"),
            if_none_match: get("if-none-match"),
        }
    }
}

/// A write the merged view allowed ([`Verdict::CreateOnly`]) goes to the
/// target as a create.
pub fn as_create_only(headers: &mut Vec<(String, String)>) {
    headers.retain(|(n, _)| n != "if-match" && n != "if-none-match");
    headers.push(("if-none-match".into(), "*".into()));
}

/// How a conditional write goes on to the target.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Unchanged: the target holds the key and judges the conditions
    /// itself, or there were none.
    AsSent,
    /// The condition held on the source's object: the write goes to the
    /// target as a create (`If-None-Match: *` in place of `If-Match`), so
    /// that a copy the copier makes meanwhile is not overwritten.
    CreateOnly,
}

/// Where the object clients see lives, and its ETag: the target's, else
/// the source's; `None` when neither has it.
async fn current(svc: &Services, k: &Key) -> Result<Option<(Sided, String)>, S3Error> {
    if let Some(etag) = head(svc, &k.target, &k.target_object).await? {
        return Ok(Some((Sided::Target, etag)));
    }
    Ok(head(svc, &k.source, &k.source_object)
        .await?
        .map(|etag| (Sided::Source, etag)))
}

/// Which side holds the object clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sided {
    Target,
    Source,
}

/// Judges `c` on the object clients see (the target's, else the
/// source's): `If-None-Match: *` fails if there is one, `If-Match` unless
/// there is one with that ETag. Returns that object's ETag, which the
/// write's own condition on the target then carries, so that a write
/// landing meanwhile is neither overwritten nor deleted.
pub async fn judge_current(
    svc: &Services,
    k: &Key,
    c: &Conditions,
) -> Result<Option<String>, S3Error> {
    let now = current(svc, k).await?.map(|(_, etag)| etag);
    if c.if_none_match.as_deref().is_some_and(|v| v.trim() == "*") && now.is_some() {
        return Err(precondition_failed());
    }
    match (&c.if_match, &now) {
        (Some(_), None) => Err(S3Error::new(
            Code::NoSuchKey,
            "The specified key does not exist.",
        )),
        (Some(want), Some(etag)) if !etag_matches(want, etag) => Err(precondition_failed()),
        _ => Ok(now),
    }
}

fn precondition_failed() -> S3Error {
    S3Error::new(
        Code::PreconditionFailed,
        "At least one of the pre-conditions you specified did not hold",
    )
}

fn etag_matches(list: &str, etag: &str) -> bool {
    let bare = |t: &str| {
        t.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_owned()
    };
    list.split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

/// Judges a write's conditions against the merged view: the target's
/// object, else the source's.
pub async fn judge(svc: &Services, k: &Key, c: &Conditions) -> Result<Verdict, S3Error> {
    if !c.any() || head(svc, &k.target, &k.target_object).await?.is_some() {
        return Ok(Verdict::AsSent);
    }
    let on_source = head(svc, &k.source, &k.source_object).await?;
    match (on_source, &c.if_match) {
        (Some(_), _) if c.if_none_match.as_deref().is_some_and(|v| v.trim() == "*") => {
            Err(precondition_failed())
        }
        (Some(etag), Some(want)) if !etag_matches(want, &etag) => Err(precondition_failed()),
        (Some(_), Some(_)) => Ok(Verdict::CreateOnly),
        (None, Some(_)) => Err(S3Error::new(
            Code::NoSuchKey,
            "The specified key does not exist.",
        )),
        // Absent on both sides: the target's own `If-None-Match` holds
        // against anyone who writes it meanwhile.
        _ => Ok(Verdict::AsSent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_lists_compare_without_quotes() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("abc", "\"abc\""));
        assert!(etag_matches("\"x\", \"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }
}
