//! The admin API: attach, update, detach, show and list buckets, as
//! HTTP/1.1 + JSON on a Unix socket (`ferryctl` is its client; the schema is
//! in `ferry_control::api`).
//!
//! [`Admin`] owns the bucket table. The request path reads it with
//! [`Admin::table`], one consistent snapshot per request. Every change is
//! saved through the [`StateStore`] before the new table is swapped in and
//! before the API answers; if the save fails, the API answers 500 and the
//! table stays as it was.

mod http;
mod source_check;

use std::sync::Arc;

use arc_swap::ArcSwap;
use ferry_control::{
    AttachRequest, BucketView, Mode, ModeChange, Selector, UpdateRequest, UpdateResponse, codes,
};
use time::OffsetDateTime;

use crate::config::check_endpoint_url;
use crate::state::{
    Bucket, BucketTable, SourceUpload, StateError, StateStore, Transition, check_detach,
    check_transition,
};

// The socket and its peer check are shared with ferry-agent.
pub use ferry_control::socket::server::Refusal;
pub use ferry_control::socket::{AccessPolicy, BindError, bind};
pub use source_check::{NoCheck, S3SourceCheck, SourceCheck};

/// Region of a source when attach names none.
pub const DEFAULT_SOURCE_REGION: &str = "us-east-1";

/// 404: `bucket` is not attached.
fn not_attached(bucket: &str) -> Refusal {
    Refusal::new(
        404,
        codes::NO_SUCH_BUCKET,
        format!("bucket {bucket:?} is not attached"),
    )
}

/// The bucket table, its store, and the admin API over them.
pub struct Admin {
    store: Arc<dyn StateStore>,
    table: ArcSwap<BucketTable>,
    source_check: Box<dyn SourceCheck>,
    access: AccessPolicy,
    /// Serializes changes: each one reads the table, saves, then swaps.
    write: tokio::sync::Mutex<()>,
    /// The proxy's migrate-mode services: the delete journal that detach
    /// clears. `None` in tests of the table alone.
    migrate: Option<Arc<crate::migrate::Services>>,
}

impl Admin {
    /// Load the table from `store`. `source_check` vets each attach;
    /// `socket_group` names the group whose members may use the socket
    /// (besides root).
    pub fn new(
        store: Box<dyn StateStore>,
        source_check: Box<dyn SourceCheck>,
        socket_group: &str,
    ) -> Result<Admin, StateError> {
        let table = store.load()?;
        Ok(Admin {
            store: Arc::from(store),
            table: ArcSwap::from_pointee(table),
            source_check,
            access: AccessPolicy::new(socket_group),
            write: tokio::sync::Mutex::new(()),
            migrate: None,
        })
    }

    /// Gives the admin API the delete journal: migrate mode is refused
    /// without one, and detach removes the bucket's entries.
    pub fn with_migrate(mut self, svc: Arc<crate::migrate::Services>) -> Admin {
        self.migrate = Some(svc);
        self
    }

    /// The current table: read it once per request.
    pub fn table(&self) -> Arc<BucketTable> {
        self.table.load_full()
    }

    /// Who may use the socket.
    pub fn access(&self) -> &AccessPolicy {
        &self.access
    }

    /// Every attached bucket, by name.
    pub fn list(&self) -> Vec<BucketView> {
        self.table().buckets.values().map(Bucket::view).collect()
    }

    pub async fn show(&self, bucket: &str) -> Result<BucketView, Refusal> {
        let table = self.table();
        let b = table.get(bucket).ok_or_else(|| not_attached(bucket))?;
        let mut view = b.view();
        // Of the snapshotted source uploads, those the source still has
        // open (completed or aborted ones are done with the source). If the
        // source cannot say, the snapshot stands.
        if !b.source_uploads.is_empty() {
            match self.source_check.uploads(b).await {
                Ok(live) => {
                    view.source_uploads_open = b
                        .source_uploads
                        .iter()
                        .filter(|u| live.iter().any(|l| l.upload_id == u.upload_id))
                        .count();
                }
                Err(e) => tracing::warn!(bucket, error = %e, "cannot list the source's uploads"),
            }
        }
        Ok(view)
    }

    /// Attach a bucket in ready mode, once its source bucket checks out.
    pub async fn attach(&self, req: AttachRequest) -> Result<BucketView, Refusal> {
        let now = now();
        let bucket = validate_attach(req, now)?;
        if self.table().get(&bucket.bucket).is_some() {
            return Err(already_attached(&bucket.bucket));
        }
        // Outside the write lock: the source may be slow to answer.
        self.source_check.check(&bucket).await.map_err(|why| {
            Refusal::new(
                422,
                codes::SOURCE_CHECK_FAILED,
                format!("attach {}: {why}", bucket.bucket),
            )
        })?;

        let _guard = self.write.lock().await;
        let mut next = BucketTable::clone(&self.table());
        if next.buckets.contains_key(&bucket.bucket) {
            return Err(already_attached(&bucket.bucket));
        }
        let view = bucket.view();
        next.buckets.insert(bucket.bucket.clone(), bucket);
        self.commit(next).await?;
        tracing::info!(
            bucket = %view.bucket,
            source_url = %view.source_url,
            source_bucket = %view.source_bucket,
            "bucket attached (ready mode)"
        );
        Ok(view)
    }

    /// Change the mode of the selected buckets, all or nothing.
    pub async fn update(&self, req: UpdateRequest) -> Result<UpdateResponse, Refusal> {
        let _guard = self.write.lock().await;
        let mut next = BucketTable::clone(&self.table());
        let selected = select(&next, &req.selector)?;

        let mut refusals = Vec::new();
        let mut changes = Vec::with_capacity(selected.len());
        for name in &selected {
            let from = next.buckets[name].mode;
            match check_transition(from, req.mode, req.force) {
                Ok(t) => changes.push((
                    ModeChange {
                        bucket: name.clone(),
                        from,
                        to: req.mode,
                    },
                    t,
                )),
                Err(e) => refusals.push((name, e)),
            }
        }
        if let Some((name, e)) = refusals.first() {
            let more = match refusals.len() {
                1 => String::new(),
                n => format!(" (and {} more buckets refused; nothing changed)", n - 1),
            };
            return Err(Refusal::new(
                409,
                e.code(),
                format!("bucket {name}: {e}{more}"),
            ));
        }

        if req.mode == Mode::Migrate
            && let Some(svc) = &self.migrate
            && svc.journal.is_none()
            && changes.iter().any(|(c, _)| c.from != Mode::Migrate)
        {
            return Err(Refusal::new(
                409,
                codes::INTERNAL,
                "migrate mode needs a delete journal: set journal_bucket in the proxy config \
                 (a bucket on the target that clients do not use), then restart the proxy"
                    .to_owned(),
            ));
        }
        let now = now();
        let mut changed = false;
        for (c, _) in changes.iter().filter(|(_, t)| *t == Transition::Change) {
            let uploads = if c.to == Mode::Migrate {
                self.snapshot_source_uploads(&next.buckets[&c.bucket])
                    .await
                    .map_err(|why| {
                        Refusal::new(
                            503,
                            codes::INTERNAL,
                            format!(
                                "bucket {}: cannot list the source's uploads: {why}",
                                c.bucket
                            ),
                        )
                    })?
            } else {
                Vec::new()
            };
            let b = next.buckets.get_mut(&c.bucket).expect("selected above");
            b.mode = c.to;
            b.updated_at = now;
            b.source_uploads = uploads;
            changed = true;
        }
        let changes: Vec<ModeChange> = changes.into_iter().map(|(c, _)| c).collect();
        if changed {
            self.commit(next).await?;
            for c in changes.iter().filter(|c| c.from != c.to) {
                tracing::info!(bucket = %c.bucket, from = %c.from, to = %c.to, force = req.force, "mode changed");
            }
        }
        Ok(UpdateResponse { changes })
    }

    /// Detach a bucket (ready mode; migrate mode only with `force`).
    pub async fn detach(&self, bucket: &str, force: bool) -> Result<BucketView, Refusal> {
        let guard = self.write.lock().await;
        let mut next = BucketTable::clone(&self.table());
        let b = next
            .buckets
            .get(bucket)
            .ok_or_else(|| not_attached(bucket))?;
        check_detach(b.mode, force)
            .map_err(|e| Refusal::new(409, e.code(), format!("bucket {bucket}: {e}")))?;
        let removed = next.buckets.remove(bucket).expect("checked above");
        self.commit(next).await?;
        // The purge may take long on a large journal: it must not hold up
        // an emergency `update` of another bucket.
        drop(guard);
        // After the commit: no delete is journalled for a detached bucket,
        // so what is removed stays removed. A failure leaves entries that
        // no copier of a detached bucket reads; say so, do not fail.
        if let Some(svc) = &self.migrate
            && let Some(j) = &svc.journal
        {
            match j.purge(&svc.fetcher, bucket).await {
                Ok(n) => tracing::info!(bucket, entries = n, "delete journal cleared"),
                Err(e) => tracing::warn!(bucket, error = %e, "delete journal entries left behind"),
            }
        }
        tracing::info!(bucket, mode = %removed.mode, force, "bucket detached");
        Ok(removed.view())
    }

    /// The source's in-flight multipart uploads, taken as migrate mode is
    /// set, so that their parts and completion keep going to the source.
    async fn snapshot_source_uploads(&self, bucket: &Bucket) -> Result<Vec<SourceUpload>, String> {
        self.source_check.uploads(bucket).await
    }

    /// Save `next`, then make it the current table. Called with the write
    /// lock held. On a failed save the current table is untouched.
    async fn commit(&self, next: BucketTable) -> Result<(), Refusal> {
        let next = Arc::new(next);
        let store = self.store.clone();
        let to_save = next.clone();
        let saved = tokio::task::spawn_blocking(move || store.save(&to_save))
            .await
            .map_err(|e| {
                Refusal::new(
                    500,
                    codes::INTERNAL,
                    format!("the state save task failed: {e}"),
                )
            })?;
        if let Err(e) = saved {
            tracing::error!(error = %e, "bucket state not saved; nothing changed");
            return Err(Refusal::new(
                500,
                codes::STATE_SAVE_FAILED,
                format!("nothing changed: {e}"),
            ));
        }
        self.table.store(next);
        Ok(())
    }
}

fn already_attached(bucket: &str) -> Refusal {
    Refusal::new(
        409,
        codes::ALREADY_ATTACHED,
        format!("bucket {bucket:?} is already attached (detach it first to change its source)"),
    )
}

fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// `http://host:9000/` and `http://host:9000` are the same source.
fn normalize_url(url: &str) -> &str {
    url.trim_end_matches('/')
}

fn select(table: &BucketTable, selector: &Selector) -> Result<Vec<String>, Refusal> {
    let names: Vec<String> = match selector {
        Selector::Bucket(b) => {
            if !table.buckets.contains_key(b) {
                return Err(not_attached(b));
            }
            vec![b.clone()]
        }
        Selector::Url(u) => table
            .buckets
            .values()
            .filter(|b| normalize_url(&b.source_url) == normalize_url(u))
            .map(|b| b.bucket.clone())
            .collect(),
        Selector::All => table.buckets.keys().cloned().collect(),
    };
    if names.is_empty() {
        let what = match selector {
            Selector::Url(u) => format!("no attached bucket has source URL {u}"),
            _ => "no bucket is attached".to_owned(),
        };
        return Err(Refusal::new(404, codes::NO_SUCH_BUCKET, what));
    }
    Ok(names)
}

fn validate_attach(req: AttachRequest, now: OffsetDateTime) -> Result<Bucket, Refusal> {
    ferry_control::check_bucket_name(&req.bucket).map_err(Refusal::invalid)?;
    let source_bucket = req.source_bucket.unwrap_or_else(|| req.bucket.clone());
    ferry_control::check_bucket_name(&source_bucket)
        .map_err(|e| Refusal::invalid(format!("source {e}")))?;
    check_endpoint_url(&req.source_url).map_err(|e| Refusal::invalid(format!("source URL {e}")))?;
    let source_url = normalize_url(&req.source_url).to_owned();
    let region = req
        .source_region
        .unwrap_or_else(|| DEFAULT_SOURCE_REGION.to_owned());
    if region.trim().is_empty() || region.chars().any(char::is_whitespace) {
        return Err(Refusal::invalid(format!(
            "source region {region:?} is not valid"
        )));
    }
    if req.access_key.is_empty() || req.access_key.chars().any(char::is_whitespace) {
        return Err(Refusal::invalid(
            "the source access key is empty or contains whitespace",
        ));
    }
    if req.secret.is_empty() {
        return Err(Refusal::invalid("the source secret is empty"));
    }
    if let Some(pem) = &req.tls_cert_pem {
        if source_url.starts_with("http://") {
            return Err(Refusal::invalid(format!(
                "a TLS certificate was given for the plain-http source {source_url}; give none \
                 (`-`), or an https:// URL"
            )));
        }
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(Refusal::invalid(
                "the TLS certificate is not PEM (no -----BEGIN CERTIFICATE-----)",
            ));
        }
    }
    Ok(Bucket {
        bucket: req.bucket,
        source_bucket,
        source_url,
        source_region: region,
        source_access_key: req.access_key,
        source_secret: req.secret,
        tls_cert_pem: req.tls_cert_pem,
        mode: Mode::Ready,
        attached_at: now,
        updated_at: now,
        source_uploads: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(bucket: &str) -> AttachRequest {
        AttachRequest {
            bucket: bucket.into(),
            source_url: "http://127.0.0.1:9000/".into(),
            source_bucket: None,
            source_region: None,
            access_key: "AK".into(),
            secret: "SK".into(),
            tls_cert_pem: None,
        }
    }

    #[test]
    fn attach_validation() {
        let now = now();
        let b = validate_attach(req("photos"), now).unwrap();
        assert_eq!(b.source_bucket, "photos");
        assert_eq!(b.source_url, "http://127.0.0.1:9000");
        assert_eq!(b.source_region, DEFAULT_SOURCE_REGION);
        assert_eq!(b.mode, Mode::Ready);

        type Edit = fn(&mut AttachRequest);
        let bad: [(Edit, &str); 8] = [
            (|r| r.bucket = "Bad_Name".into(), "bucket name"),
            (|r| r.source_bucket = Some("x".into()), "source bucket name"),
            (|r| r.source_url = "ftp://h".into(), "scheme"),
            (|r| r.source_url = "h:9000".into(), "source URL"),
            (|r| r.secret.clear(), "secret is empty"),
            (|r| r.access_key = "A K".into(), "access key"),
            (
                |r| r.tls_cert_pem = Some("-----BEGIN CERTIFICATE-----".into()),
                "plain-http",
            ),
            (
                |r| {
                    r.source_url = "https://h".into();
                    r.tls_cert_pem = Some("garbage".into());
                },
                "not PEM",
            ),
        ];
        for (edit, want) in bad {
            let mut r = req("photos");
            edit(&mut r);
            let e = validate_attach(r, now).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.error.message.contains(want), "{want:?} in {e}");
        }
    }
}
