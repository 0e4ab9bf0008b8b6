//! The admin API: attach, update, detach, show and list buckets, as
//! HTTP/1.1 + JSON on a Unix socket (`ferryctl` is its client; the schema is
//! in `ferry_control::api`).
//!
//! [`Admin`] owns the bucket table. The request path reads it with
//! [`Admin::table`], one consistent snapshot per request.
//!
//! - On a single host, every change is saved through the [`StateStore`]
//!   before the new table is swapped in and before the API answers; if the
//!   save fails, the API answers 500 and the table stays as it was.
//! - In a fleet, changes go to etcd through [`Fleet`] (fenced, as
//!   `ferryctl --etcd` makes them), and the table is the one the fleet
//!   member puts in force ([`Admin::put_in_force`]) as the watch delivers
//!   it.

mod http;
mod target_check;

pub use target_check::{TargetCheck, TargetStore};

use std::sync::Arc;

use arc_swap::ArcSwap;
use ferry_control::{
    AttachRequest, BucketView, Mark, Mode, ModeChange, UpdateRequest, UpdateResponse, codes,
};

use crate::state::{Bucket, BucketTable, StateError, StateStore, Transition, check_detach};
use ferry_fleet::etcd::{Fleet, Progress};
use ferry_fleet::rules::{
    self as rules, already_attached, check_update, not_attached, now, source_check_failed,
    uploads_unlisted, validate_attach,
};

// The socket and its peer check are shared with ferry-agent.
pub use ferry_control::socket::server::Refusal;
pub use ferry_control::socket::{AccessPolicy, BindError, bind};
pub use ferry_fleet::rules::DEFAULT_SOURCE_REGION;
pub use ferry_fleet::source_check::{NoCheck, S3SourceCheck, SourceCheck};
use ferry_fleet::source_check::{refuse_open_uploads, uploads_open};

/// Where changes are made.
enum Store {
    File(Arc<dyn StateStore>),
    Fleet(Box<Fleet>),
}

/// The bucket table, its store, and the admin API over them.
pub struct Admin {
    store: Store,
    table: ArcSwap<BucketTable>,
    source_check: Box<dyn SourceCheck>,
    access: AccessPolicy,
    /// Serializes changes: each one reads the table, saves, then swaps.
    write: tokio::sync::Mutex<()>,
    /// The proxy's migrate-mode services: the delete journal that detach
    /// clears. `None` in tests of the table alone.
    migrate: Option<Arc<crate::migrate::Services>>,
    /// What attach checks on the target. `None` in tests of the table
    /// alone.
    target_check: Option<TargetCheck>,
    /// The target's URLs through this proxy: `update --url` with one of
    /// them selects every bucket (the seed's rollback step).
    target_urls: Vec<String>,
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
        Ok(Admin::with_store(
            Store::File(Arc::from(store)),
            table,
            source_check,
            socket_group,
        ))
    }

    /// A fleet member's admin API: changes go to `fleet`; the table is
    /// empty until the member puts the fleet's in force, which it does
    /// before the proxy serves.
    pub fn fleet(fleet: Fleet, source_check: Box<dyn SourceCheck>, socket_group: &str) -> Admin {
        Admin::with_store(
            Store::Fleet(Box::new(fleet)),
            BucketTable::default(),
            source_check,
            socket_group,
        )
    }

    fn with_store(
        store: Store,
        table: BucketTable,
        source_check: Box<dyn SourceCheck>,
        socket_group: &str,
    ) -> Admin {
        Admin {
            store,
            table: ArcSwap::from_pointee(table),
            source_check,
            access: AccessPolicy::new(socket_group),
            write: tokio::sync::Mutex::new(()),
            migrate: None,
            target_check: None,
            target_urls: Vec::new(),
        }
    }

    /// Puts a fleet's table in force on the request path.
    pub fn put_in_force(&self, table: Arc<BucketTable>) {
        self.table.store(table);
    }

    /// Gives the admin API the delete journal: migrate mode is refused
    /// without one, and detach removes the bucket's entries.
    pub fn with_migrate(mut self, svc: Arc<crate::migrate::Services>) -> Admin {
        self.migrate = Some(svc);
        self
    }

    pub fn with_target_check(mut self, check: TargetCheck) -> Admin {
        self.target_check = Some(check);
        self
    }

    pub fn with_target_urls(mut self, urls: Vec<String>) -> Admin {
        self.target_urls = urls;
        self
    }

    pub fn target_urls(&self) -> &[String] {
        &self.target_urls
    }

    /// The current table: read it once per request.
    pub fn table(&self) -> Arc<BucketTable> {
        self.table.load_full()
    }

    /// Whether `table` is the table in force: a pointer comparison, which,
    /// unlike [`Admin::table`], takes no reference that every request
    /// would count up and down.
    pub fn is_current(&self, table: &Arc<BucketTable>) -> bool {
        Arc::ptr_eq(&self.table.load(), table)
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
        if let Store::Fleet(fleet) = &self.store {
            view.members = fleet.member_views(bucket).await?;
        }
        // If the source cannot say, the snapshot stands.
        match uploads_open(&*self.source_check, b).await {
            Ok(n) => view.source_uploads_open = n,
            Err(e) => tracing::warn!(bucket, error = %e, "cannot list the source's uploads"),
        }
        Ok(view)
    }

    /// Attach a bucket in ready mode, once its source and target buckets
    /// check out; the answer carries what the target check warns of.
    pub async fn attach(&self, req: AttachRequest) -> Result<BucketView, Refusal> {
        ferry_control::check_bucket_name(&req.bucket).map_err(Refusal::invalid)?;
        let warnings = match &self.target_check {
            Some(t) => t.check(&req.bucket).await?,
            None => Vec::new(),
        };
        for w in &warnings {
            tracing::warn!(bucket = %req.bucket, "attach: {w}");
        }
        let mut view = self.attach_checked(req).await?;
        view.warnings = warnings;
        Ok(view)
    }

    async fn attach_checked(&self, req: AttachRequest) -> Result<BucketView, Refusal> {
        let store = match &self.store {
            Store::Fleet(fleet) => return fleet.attach(req).await,
            Store::File(store) => store,
        };
        let now = now();
        let bucket = validate_attach(req, now)?;
        if self.table().get(&bucket.bucket).is_some() {
            return Err(already_attached(&bucket.bucket));
        }
        // Outside the write lock: the source may be slow to answer.
        self.source_check
            .check(&bucket)
            .await
            .map_err(|why| source_check_failed(&bucket.bucket, &why))?;

        let _guard = self.write.lock().await;
        let mut next = BucketTable::clone(&self.table());
        if next.buckets.contains_key(&bucket.bucket) {
            return Err(already_attached(&bucket.bucket));
        }
        let view = bucket.view();
        next.buckets.insert(bucket.bucket.clone(), bucket);
        self.commit(store, next).await?;
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
        let needs_journal = req.mode == Mode::Migrate
            && self
                .migrate
                .as_ref()
                .is_some_and(|svc| svc.journal.is_none());
        let no_journal = || {
            Refusal::new(
                409,
                codes::INTERNAL,
                "migrate mode needs a delete journal: set journal_bucket in the proxy config \
                 (a bucket on the target that clients do not use), then restart the proxy",
            )
        };
        let _guard = self.write.lock().await;
        let store = match &self.store {
            // The fleet checks the change against etcd's state, not this
            // proxy's copy of it.
            Store::Fleet(_) if needs_journal => return Err(no_journal()),
            Store::Fleet(fleet) => return fleet.update(req, &log_progress).await,
            Store::File(store) => store,
        };
        let mut next = BucketTable::clone(&self.table());
        let changes = check_update(&next, &req, &self.target_urls)?;
        if needs_journal && changes.iter().any(|(c, _)| c.from != Mode::Migrate) {
            return Err(no_journal());
        }
        let now = now();
        let mut changed = false;
        for (c, _) in changes.iter().filter(|(_, t)| *t == Transition::Change) {
            let uploads = if c.to == Mode::Migrate {
                self.source_check
                    .uploads(&next.buckets[&c.bucket])
                    .await
                    .map_err(|why| uploads_unlisted(&c.bucket, &why))?
            } else {
                Vec::new()
            };
            let b = next.buckets.get_mut(&c.bucket).expect("selected above");
            b.mode = c.to;
            b.clear_verified();
            b.updated_at = now;
            b.source_uploads = uploads;
            changed = true;
        }
        let changes: Vec<ModeChange> = changes.into_iter().map(|(c, _)| c).collect();
        if changed {
            self.commit(store, next).await?;
            for c in changes.iter().filter(|c| c.from != c.to) {
                tracing::info!(bucket = %c.bucket, from = %c.from, to = %c.to, force = req.force, "mode changed");
            }
        }
        Ok(UpdateResponse {
            changes,
            fenced_at: None,
        })
    }

    /// Detach a bucket (ready mode; migrate mode once verified and the
    /// source's uploads have ended, or with `force`).
    pub async fn detach(&self, bucket: &str, force: bool) -> Result<BucketView, Refusal> {
        let removed = match &self.store {
            Store::Fleet(fleet) => fleet.detach(bucket, force).await?,
            Store::File(store) => {
                // Outside the write lock, as the source may be slow to
                // answer.
                if let Some(b) = self.table().get(bucket).filter(|_| !force) {
                    refuse_open_uploads(&*self.source_check, b).await?;
                }
                // The purge below may take long on a large journal: the
                // lock must not hold up an emergency `update` of another
                // bucket.
                let _guard = self.write.lock().await;
                let mut next = BucketTable::clone(&self.table());
                let b = next
                    .buckets
                    .get(bucket)
                    .ok_or_else(|| not_attached(bucket))?;
                check_detach(b.mode, b.verified.is_some(), force)
                    .map_err(|e| Refusal::new(409, e.code(), format!("bucket {bucket}: {e}")))?;

                let removed = next.buckets.remove(bucket).expect("checked above");
                self.commit(store, next).await?;
                removed.view()
            }
        };
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
        Ok(removed)
    }

    /// Marks one bucket: a passing verify, a block, an unblock.
    pub async fn mark(&self, bucket: &str, mark: Mark) -> Result<BucketView, Refusal> {
        let what = format!("{mark:?}");
        let view = match &self.store {
            Store::Fleet(fleet) => fleet.mark(bucket, mark).await?,
            Store::File(store) => {
                let _guard = self.write.lock().await;
                let mut next = BucketTable::clone(&self.table());
                let b = next
                    .buckets
                    .get_mut(bucket)
                    .ok_or_else(|| not_attached(bucket))?;
                rules::mark(b, mark, now())?;
                let view = b.view();
                self.commit(store, next).await?;
                view
            }
        };
        tracing::info!(bucket, mark = %what, "bucket marked");
        Ok(view)
    }

    /// Save `next`, then make it the current table. Called with the write
    /// lock held. On a failed save the current table is untouched.
    async fn commit(&self, store: &Arc<dyn StateStore>, next: BucketTable) -> Result<(), Refusal> {
        let next = Arc::new(next);
        let store = store.clone();
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

/// A fenced change's steps, in the proxy's log.
fn log_progress(p: Progress) {
    match p {
        Progress::Fencing { buckets, members } => {
            tracing::info!(
                ?buckets,
                ?members,
                "fencing: waiting for the fleet's proxies"
            )
        }
        Progress::Waiting { members } => tracing::info!(?members, "fencing: still waiting"),
        Progress::Fenced { members } => {
            tracing::info!(?members, "fenced: putting the new mode in force")
        }
        Progress::TakingOver {
            bucket,
            epoch,
            since,
        } => tracing::warn!(bucket, epoch, since, "taking over an abandoned fence"),
    }
}
