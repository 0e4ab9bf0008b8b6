//! A proxy's side of the fleet: it registers under a lease, keeps the
//! bucket table current by watch, acknowledges each epoch it applies (a
//! fencing epoch only once its writes to the old side have drained), and
//! fails writes closed when it loses etcd.
//!
//! The contact rule: the lease is renewed every `ttl / 5`. etcd drops the
//! lease no sooner than `ttl` after the last renewal it received, which is
//! after the proxy sent it. The proxy counts from the send, and once
//! `ttl / 2` has passed without a confirmed renewal it refuses writes for
//! every attached bucket. So a proxy cut off from etcd stops writing at
//! least `ttl / 2` before the rest of the fleet stops waiting for it, and
//! that half is the time its last writes have to finish (docs/proxy.md,
//! "Fleet").

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};

use super::fleet::decode_bucket;
use super::{Ack, EtcdConfig, FleetError, Keys, MemberInfo, Resend, resent};
use crate::state::{BucketTable, Phase};

/// What the member drives in the proxy.
#[async_trait]
pub trait Local: Send + Sync + 'static {
    /// Puts `table` in force on the request path. `in_contact: false`:
    /// writes to every attached bucket are refused.
    fn apply(&self, table: Arc<BucketTable>, in_contact: bool);
    /// Returns once no write to `bucket` that was admitted before the last
    /// [`Local::apply`] is still in flight.
    async fn drained(&self, bucket: &str);
    /// The target's URLs through this proxy, registered with it (see
    /// [`MemberInfo::target_urls`]).
    fn target_urls(&self) -> Vec<String>;
}

/// A running member; dropping it does not stop it, [`MemberHandle::leave`]
/// does.
#[derive(Clone)]
pub struct MemberHandle {
    shared: Arc<Shared>,
}

impl MemberHandle {
    /// The member's id in the fleet.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Leaves the fleet at once (revokes the lease), so that a mode change
    /// does not wait for this proxy's lease to expire.
    pub async fn leave(&self) {
        let lease = self.shared.lease.load(Ordering::SeqCst) as i64;
        if lease == 0 {
            return;
        }
        let revoked = resent(Resend::Idempotent, || {
            let mut c = self.shared.client.clone();
            async move { c.lease_revoke(lease).await }
        });
        match revoked.await {
            Ok(_) => tracing::info!(member = %self.shared.id, "left the fleet"),
            Err(e) => {
                tracing::warn!(member = %self.shared.id, error = %e, "cannot leave the fleet; its lease will expire")
            }
        }
    }
}

struct Shared {
    id: String,
    client: Client,
    keys: Keys,
    ttl: Duration,
    local: Arc<dyn Local>,
    in_contact: AtomicBool,
    /// Serializes contact changes and table applications, so that the
    /// last one applied is the current one.
    apply: Mutex<()>,
    /// When the last renewal that etcd confirmed was sent, in milliseconds
    /// since `base`. Read by the contact watchdog, which runs apart from
    /// the session loop so that no slow etcd call can delay it.
    renewed_ms: AtomicU64,
    base: Instant,
    lease: AtomicU64,
    /// The table in force and the acknowledgements written for it.
    table: Mutex<Arc<BucketTable>>,
    acked: Mutex<HashMap<String, Ack>>,
    /// Bumped by each new lease: acknowledgements of an older one are
    /// dropped (the new lease acknowledges everything again).
    session: AtomicU64,
}

/// How long a starting proxy tries to join before it gives up.
const JOIN_LIMIT: Duration = Duration::from_secs(30);

/// Joins the fleet: registers, loads the table and puts it in force before
/// returning, so that the proxy never serves a request from an empty table.
/// Then keeps it current in the background.
pub async fn join(config: &EtcdConfig, local: Arc<dyn Local>) -> Result<MemberHandle, FleetError> {
    let client = config.connect().await?;
    let id = match &config.member_id {
        Some(id) => id.clone(),
        None => host_name()?,
    };
    let shared = Arc::new(Shared {
        id,
        client,
        keys: config.keys(),
        ttl: config.lease_ttl(),
        local,
        in_contact: AtomicBool::new(false),
        apply: Mutex::new(()),
        renewed_ms: AtomicU64::new(0),
        base: Instant::now(),
        lease: AtomicU64::new(0),
        table: Mutex::new(Arc::new(BucketTable::default())),
        acked: Mutex::new(HashMap::new()),
        session: AtomicU64::new(0),
    });
    // etcd may be electing a leader, or one of its members down: try for a
    // while before giving up (the unit restarts the proxy).
    let deadline = Instant::now() + JOIN_LIMIT;
    let first = loop {
        match shared.establish().await {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(error = %e, "cannot join the fleet yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let handle = MemberHandle {
        shared: shared.clone(),
    };
    tokio::spawn(shared.clone().watchdog());
    tokio::spawn(shared.run(first));
    Ok(handle)
}

fn host_name() -> Result<String, FleetError> {
    let name = nix::unistd::gethostname()
        .map_err(|e| FleetError::Config(format!("cannot read the host name: {e}")))?;
    let name = name.to_string_lossy().into_owned();
    super::check_member_id(&name).map_err(|e| {
        FleetError::Config(format!(
            "the host name is not a usable member_id ({e}); set member_id"
        ))
    })?;
    Ok(name)
}

/// One lease: the member key and the watch live as long as it does.
struct Session {
    lease: i64,
    /// The watch starts after this revision.
    revision: i64,
}

impl Shared {
    /// A new lease, the member key under it, and the whole table loaded and
    /// applied.
    async fn establish(self: &Arc<Self>) -> Result<Session, FleetError> {
        let sent = Instant::now();
        let ttl = self.ttl.as_secs() as i64;
        let lease = resent(Resend::Idempotent, || {
            let mut c = self.client.clone();
            async move { c.lease_grant(ttl, None).await }
        })
        .await?
        .id();
        self.lease.store(lease as u64, Ordering::SeqCst);
        let info = MemberInfo {
            id: self.id.clone(),
            pid: std::process::id(),
            registered_at: crate::state::rfc3339(crate::rules::now()),
            target_urls: self.local.target_urls(),
        };
        // Registered before loading: a fence written before this load is
        // seen by it; one written after it waits for this member's ack.
        let (key, value) = (
            self.keys.member(&self.id),
            serde_json::to_vec(&info).expect("member info serializes"),
        );
        resent(Resend::Idempotent, || {
            let (mut c, key, value) = (self.client.clone(), key.clone(), value.clone());
            async move {
                c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                    .await
            }
        })
        .await?;
        let revision = self.load().await?;
        self.session.fetch_add(1, Ordering::SeqCst);
        self.acked.lock().expect("acked lock").clear();
        self.renewed(sent);
        self.set_contact(true);
        self.ack_all();
        tracing::info!(member = %self.id, lease, revision, "joined the fleet");
        Ok(Session { lease, revision })
    }

    /// Reads every bucket record and applies the table; returns the
    /// revision it was read at.
    async fn load(self: &Arc<Self>) -> Result<i64, FleetError> {
        let prefix = self.keys.buckets();
        let opts = GetOptions::new().with_prefix();
        let resp = resent(Resend::Idempotent, || {
            let (mut c, opts, prefix) = (self.client.clone(), opts.clone(), prefix.as_str());
            async move { c.get(prefix, Some(opts)).await }
        })
        .await?;
        let mut table = BucketTable::default();
        for kv in resp.kvs() {
            match decode_bucket(&prefix, kv) {
                Ok(b) => {
                    table.buckets.insert(b.bucket.clone(), b);
                }
                // Never guess at a record: without it the bucket would
                // look unattached and pass through to the target.
                Err(e) => return Err(e),
            }
        }
        *self.table.lock().expect("table lock") = Arc::new(table);
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// A renewal sent at `sent` was confirmed.
    fn renewed(&self, sent: Instant) {
        let ms = sent.duration_since(self.base).as_millis() as u64;
        self.renewed_ms.fetch_max(ms, Ordering::SeqCst);
    }

    /// How long since the last confirmed renewal was sent.
    fn silence(&self) -> Duration {
        let renewed = self.base + Duration::from_millis(self.renewed_ms.load(Ordering::SeqCst));
        renewed.elapsed()
    }

    /// Fails writes closed once `ttl / 2` passes without a confirmed
    /// renewal (the module's contact rule).
    async fn watchdog(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if self.in_contact.load(Ordering::SeqCst) && self.silence() >= self.ttl / 2 {
                self.set_contact(false);
            }
        }
    }

    fn set_contact(&self, in_contact: bool) {
        let _apply = self.apply.lock().expect("apply lock");
        let was = self.in_contact.swap(in_contact, Ordering::SeqCst);
        let table = self.table.lock().expect("table lock").clone();
        self.local.apply(table, in_contact);
        if was != in_contact {
            if in_contact {
                tracing::info!(member = %self.id, "in contact with etcd: writes to attached buckets resume");
            } else {
                tracing::error!(member = %self.id, "lost contact with etcd: writes to attached buckets are refused (503 SlowDown) until it is back");
            }
        }
    }

    /// Applies the current table and acknowledges each bucket whose epoch
    /// or phase this member has not acknowledged yet.
    fn ack_all(self: &Arc<Self>) {
        let table = self.table.lock().expect("table lock").clone();
        {
            let _apply = self.apply.lock().expect("apply lock");
            self.local
                .apply(table.clone(), self.in_contact.load(Ordering::SeqCst));
        }
        let session = self.session.load(Ordering::SeqCst);
        let mut acked = self.acked.lock().expect("acked lock");
        acked.retain(|bucket, _| table.buckets.contains_key(bucket));
        for b in table.buckets.values() {
            let ack = Ack {
                epoch: b.epoch,
                phase: b.phase,
            };
            if acked.get(&b.bucket) == Some(&ack) {
                continue;
            }
            acked.insert(b.bucket.clone(), ack);
            tokio::spawn(self.clone().acknowledge(b.bucket.clone(), ack, session));
        }
    }

    /// Writes one acknowledgement under the lease, after the drain for a
    /// fencing epoch. Retried until it lands, or a newer epoch or lease
    /// makes it moot.
    async fn acknowledge(self: Arc<Self>, bucket: String, ack: Ack, session: u64) {
        if ack.phase == Phase::Fencing {
            self.local.drained(&bucket).await;
        }
        let value = serde_json::to_vec(&ack).expect("acks serialize");
        loop {
            let current = self.session.load(Ordering::SeqCst) == session
                && self.acked.lock().expect("acked lock").get(&bucket) == Some(&ack);
            if !current {
                return;
            }
            let lease = self.lease.load(Ordering::SeqCst) as i64;
            let put = self
                .client
                .clone()
                .put(
                    self.keys.ack(&bucket, &self.id),
                    value.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                )
                .await;
            match put {
                Ok(_) => {
                    tracing::info!(member = %self.id, bucket, epoch = ack.epoch, phase = ack.phase.as_str(), "epoch acknowledged");
                    return;
                }
                Err(e) => {
                    tracing::warn!(member = %self.id, bucket, error = %e, "acknowledgement not written; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Forever: keep the lease, follow the watch, keep contact; on a lost
    /// lease, fail closed and join again.
    async fn run(self: Arc<Self>, first: Session) {
        let mut session = Some(first);
        loop {
            let s = match session.take() {
                Some(s) => s,
                None => match self.establish().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(member = %self.id, error = %e, "cannot join the fleet; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                },
            };
            let why = self.follow(s).await;
            self.set_contact(false);
            tracing::warn!(member = %self.id, why, "fleet session ended; joining again");
        }
    }

    /// Runs one session until its lease is lost. Returns why.
    async fn follow(self: &Arc<Self>, mut s: Session) -> String {
        let renew_every = self.ttl / 5;
        let mut keepalive = None;
        let mut watch = None;
        let mut renew = tokio::time::interval(renew_every);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut last_sent = Instant::now();
        loop {
            if watch.is_none() {
                let opts = WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(s.revision + 1);
                let prefix = self.keys.buckets();
                let watched = resent(Resend::Idempotent, || {
                    let (mut c, opts, prefix) =
                        (self.client.clone(), opts.clone(), prefix.as_str());
                    async move { c.watch(prefix, Some(opts)).await }
                });
                match watched.await {
                    Ok(w) => watch = Some(w),
                    Err(e) => {
                        tracing::warn!(member = %self.id, error = %e, "cannot watch the buckets; retrying")
                    }
                }
            }
            tokio::select! {
                _ = renew.tick() => {
                    if keepalive.is_none() {
                        let opened = resent(Resend::Idempotent, || {
                            let (mut c, lease) = (self.client.clone(), s.lease);
                            async move { c.lease_keep_alive(lease).await }
                        });
                        match opened.await {
                            Ok(k) => keepalive = Some(k),
                            Err(e) => tracing::warn!(member = %self.id, error = %e, "cannot renew the lease; retrying"),
                        }
                    }
                    if let Some((keeper, _)) = keepalive.as_mut() {
                        last_sent = Instant::now();
                        if keeper.keep_alive().await.is_err() {
                            keepalive = None;
                        }
                    }
                }
                resp = next_keepalive(&mut keepalive) => match resp {
                    Some(ttl) if ttl > 0 => {
                        self.renewed(last_sent);
                        if !self.in_contact.load(Ordering::SeqCst) && self.silence() < self.ttl / 2 {
                            self.set_contact(true);
                        }
                    }
                    Some(_) => return "the lease expired".into(),
                    None => keepalive = None,
                },
                resp = next_watch(&mut watch) => match resp {
                    Ok(Some(r)) if r.compact_revision() > 0 || r.canceled() => {
                        watch = None;
                        match self.load().await {
                            Ok(rev) => { s.revision = rev; self.ack_all(); }
                            Err(e) => tracing::warn!(member = %self.id, error = %e, "cannot reload the buckets"),
                        }
                    }
                    Ok(Some(r)) => {
                        if let Some(h) = r.header() {
                            s.revision = s.revision.max(h.revision());
                        }
                        if !r.events().is_empty() {
                            self.apply_events(r.events());
                        }
                    }
                    Ok(None) | Err(_) => watch = None,
                },
                _ = tick.tick() => {
                    let silent = self.silence();
                    if silent >= self.ttl {
                        return format!("no renewal confirmed for {} s (the lease's TTL)", silent.as_secs());
                    }
                }
            }
        }
    }

    fn apply_events(self: &Arc<Self>, events: &[etcd_client::Event]) {
        let prefix = self.keys.buckets();
        {
            let mut guard = self.table.lock().expect("table lock");
            let mut table = BucketTable::clone(&guard);
            for ev in events {
                let Some(kv) = ev.kv() else { continue };
                match ev.event_type() {
                    EventType::Put => match decode_bucket(&prefix, kv) {
                        Ok(b) => {
                            table.buckets.insert(b.bucket.clone(), b);
                        }
                        Err(e) => {
                            // Keep the last good record rather than drop
                            // the bucket (which would pass it through).
                            tracing::error!(member = %self.id, error = %e, "ignoring a bucket record");
                        }
                    },
                    EventType::Delete => {
                        let key = String::from_utf8_lossy(kv.key());
                        if let Some(name) = key.strip_prefix(prefix.as_str()) {
                            table.buckets.remove(name);
                        }
                    }
                }
            }
            *guard = Arc::new(table);
        }
        self.ack_all();
    }
}

async fn next_keepalive(
    k: &mut Option<(etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream)>,
) -> Option<i64> {
    match k {
        Some((_, stream)) => match stream.message().await {
            Ok(Some(r)) => Some(r.ttl()),
            Ok(None) | Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

async fn next_watch(
    w: &mut Option<etcd_client::WatchStream>,
) -> Result<Option<etcd_client::WatchResponse>, etcd_client::Error> {
    match w {
        Some(w) => w.message().await,
        None => std::future::pending().await,
    }
}
