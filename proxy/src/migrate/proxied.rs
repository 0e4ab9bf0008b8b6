//! Migrate-mode requests that Pingora proxies to one side (a PUT, a
//! sub-resource write, an upload part): what is decided from both sides
//! before the request goes upstream, and what a successful write voids
//! after.

use std::sync::Arc;

use super::{Services, merged, uploads};
use crate::outbound::Outbound;
use crate::s3error::S3Error;

/// A proxied migrate-mode request, as planned.
pub struct Proxied {
    pub out: Outbound,
    pub before: Option<Before>,
    /// The bucket and key whose journalled delete a successful write voids.
    pub clears_journal: Option<(String, String)>,
}

/// Migrate mode's steps before a proxied request goes upstream.
pub enum Before {
    /// An upload part goes to the source instead if its upload is there.
    Part(PartRoute),
    /// A sub-resource write: a key only on the source is promoted first.
    /// `bool`: the source's tags come along (not for a change of tags).
    Promote(merged::Key, bool),
    /// A conditional write, judged against both sides.
    Judge(merged::Key, merged::Conditions),
}

/// The source alternative of an upload part.
pub struct PartRoute {
    pub upload_id: String,
    pub source_target: String,
    pub key: merged::Key,
    pub source_uploads: Arc<[String]>,
}

/// What is left to do once the upstream has answered a proxied request.
pub struct AfterWrite {
    svc: Arc<Services>,
    clears_journal: Option<(String, String)>,
}

impl AfterWrite {
    /// A successful write voids a journalled delete of its key. False when
    /// that failed: the delete still stands, so the client must be told to
    /// retry the write, which clears it.
    pub async fn cleared(&self, status: u16) -> bool {
        let (Some((bucket, key)), Some(journal)) = (&self.clears_journal, &self.svc.journal) else {
            return true;
        };
        if !(200..300).contains(&status) {
            return true;
        }
        match journal.clear(&self.svc.fetcher, bucket, key).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(key, error = %e, "a write could not clear the delete journal");
                false
            }
        }
    }
}

/// Runs the step before the request goes upstream; the request may move
/// to the other side.
pub(super) async fn before(
    svc: &Arc<Services>,
    p: Proxied,
) -> Result<(Outbound, AfterWrite), S3Error> {
    let mut out = p.out;
    match p.before {
        Some(Before::Part(part)) => route_part(svc, &mut out, part).await?,
        Some(Before::Promote(k, with_tags)) => merged::promote(svc, &k, with_tags).await?,
        Some(Before::Judge(k, c)) => {
            out.create_only = merged::judge(svc, &k, &c).await? == merged::Verdict::CreateOnly;
        }
        None => {}
    }
    let after = AfterWrite {
        svc: svc.clone(),
        clears_journal: p.clears_journal,
    };
    Ok((out, after))
}

/// Sends an upload part to the source when its upload is there.
async fn route_part(svc: &Services, r: &mut Outbound, p: PartRoute) -> Result<(), S3Error> {
    let paths = uploads::UploadPaths {
        source_uploads: &p.source_uploads,
        target: &p.key.target,
        source: &p.key.source,
        target_object: &p.key.target_object,
        source_object: &p.key.source_object,
    };
    if uploads::part_on_source(svc, &paths, &p.upload_id).await? {
        let enc = |b: &str| ferry_s3::percent::uri_encode(b.as_bytes(), false);
        r.copy_source = r.copy_source.take().map(|cs| {
            let rest = cs
                .strip_prefix(&format!("/{}", enc(&p.key.target.bucket)))
                .unwrap_or(&cs);
            format!("/{}{rest}", enc(&p.key.source.bucket))
        });
        r.label = "source";
        r.upstream = p.key.source.upstream;
        r.creds = p.key.source.creds;
        r.target = p.source_target;
    }
    Ok(())
}
