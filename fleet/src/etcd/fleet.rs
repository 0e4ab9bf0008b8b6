//! [`Fleet`]: the bucket verbs on etcd. Each change is a transaction that
//! compares the bucket key's revision, so two runs cannot interleave; a
//! mode change is fenced (docs/proxy.md, "Fleet"):
//!
//! 1. the new mode is written with `phase = fencing` and the next epoch;
//! 2. each live proxy stops writes to the bucket, drains the ones in
//!    flight, and acknowledges the epoch under its lease;
//! 3. once every live proxy has (a proxy whose lease expired is no longer
//!    live), the source's uploads are snapshotted for a switch to migrate
//!    mode, and `phase = active` puts the mode in force.
//!
//! If step 2 outlasts the fence timeout, the bucket goes back to its old
//! mode under a new epoch, and the refusal names the proxies that did not
//! answer.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use ferry_control::socket::server::Refusal;
use ferry_control::{
    AttachRequest, BucketView, Mark, MemberView, Mode, ModeChange, Selector, UpdateRequest,
    UpdateResponse, codes,
};
use time::OffsetDateTime;

use super::{Ack, EtcdConfig, FleetError, Keys, MemberInfo, Resend, resent};
use crate::rules::{
    self, already_attached, check_update, not_attached, now, refuse_if_fencing,
    source_check_failed, uploads_unlisted, validate_attach,
};
use crate::source_check::{SourceCheck, refuse_open_uploads};
use crate::state::{Bucket, BucketTable, Phase, Transition, check_detach, rfc3339};

/// How often the fence's acknowledgements are polled.
const ACK_POLL: Duration = Duration::from_millis(25);

/// What an update is doing, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The fence is written: these proxies must acknowledge `epoch`.
    Fencing {
        buckets: Vec<(String, u64)>,
        members: Vec<String>,
    },
    /// Still waiting for these proxies.
    Waiting { members: Vec<String> },
    /// Every live proxy acknowledged; the new mode is being put in force.
    Fenced { members: Vec<String> },
    /// A fence begun long ago by an update that died is taken over.
    TakingOver {
        bucket: String,
        epoch: u64,
        since: String,
    },
}

/// The fleet's buckets in etcd, and the verbs that change them.
pub struct Fleet {
    client: Client,
    keys: Keys,
    fence_timeout: Duration,
    source_check: Box<dyn SourceCheck>,
}

/// A bucket record and the revision it was read at.
struct Read {
    bucket: Bucket,
    mod_revision: i64,
}

impl Fleet {
    pub async fn connect(
        config: &EtcdConfig,
        source_check: Box<dyn SourceCheck>,
    ) -> Result<Fleet, FleetError> {
        Ok(Fleet::new(config.connect().await?, config, source_check))
    }

    pub fn new(client: Client, config: &EtcdConfig, source_check: Box<dyn SourceCheck>) -> Fleet {
        Fleet {
            client,
            keys: config.keys(),
            fence_timeout: config.fence_timeout(),
            source_check,
        }
    }

    /// Every key under `prefix`.
    async fn get_prefix(&self, prefix: &str) -> Result<etcd_client::GetResponse, FleetError> {
        let opts = GetOptions::new().with_prefix();
        Ok(resent(Resend::Idempotent, || {
            let (mut c, opts) = (self.client.clone(), opts.clone());
            async move { c.get(prefix, Some(opts)).await }
        })
        .await?)
    }

    async fn txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse, etcd_client::Error> {
        resent(Resend::CompareAndSwap, || {
            let (mut c, txn) = (self.client.clone(), txn.clone());
            async move { c.txn(txn).await }
        })
        .await
    }

    async fn read_all(&self) -> Result<(BTreeMap<String, Read>, i64), FleetError> {
        let prefix = self.keys.buckets();
        let resp = self.get_prefix(&prefix).await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        let mut out = BTreeMap::new();
        for kv in resp.kvs() {
            let bucket = decode_bucket(&prefix, kv)?;
            out.insert(
                bucket.bucket.clone(),
                Read {
                    bucket,
                    mod_revision: kv.mod_revision(),
                },
            );
        }
        Ok((out, revision))
    }

    pub async fn list(&self) -> Result<Vec<BucketView>, Refusal> {
        let (reads, _) = self.read_all().await.map_err(unavailable)?;
        Ok(reads.values().map(|r| r.bucket.view()).collect())
    }

    /// One bucket, with each live proxy and the epoch it applies.
    pub async fn show(&self, bucket: &str) -> Result<BucketView, Refusal> {
        let (reads, _) = self.read_all().await.map_err(unavailable)?;
        let r = reads.get(bucket).ok_or_else(|| not_attached(bucket))?;
        let mut view = r.bucket.view();
        view.members = self.member_views(bucket).await?;
        Ok(view)
    }

    /// Each live proxy and the epoch of `bucket` it applies.
    pub async fn member_views(&self, bucket: &str) -> Result<Vec<MemberView>, Refusal> {
        let members = self.members().await.map_err(unavailable)?;
        let acks = self.acks().await.map_err(unavailable)?;
        Ok(members
            .into_iter()
            .map(|id| {
                let ack = acks.get(&(bucket.to_owned(), id.clone()));
                MemberView {
                    epoch: ack.map(|a| a.epoch),
                    phase: ack.map(|a| a.phase.as_str().to_owned()),
                    id,
                }
            })
            .collect())
    }

    /// The ids of the live proxies (their lease keys exist).
    pub async fn members(&self) -> Result<Vec<String>, FleetError> {
        Ok(self
            .member_infos()
            .await?
            .into_iter()
            .map(|m| m.id)
            .collect())
    }

    async fn member_infos(&self) -> Result<Vec<MemberInfo>, FleetError> {
        let prefix = self.keys.members();
        let resp = self.get_prefix(&prefix).await?;
        resp.kvs().iter().map(decode).collect()
    }

    /// Every acknowledgement, by (bucket, member).
    async fn acks(&self) -> Result<BTreeMap<(String, String), Ack>, FleetError> {
        let prefix = self.keys.acks();
        let resp = self.get_prefix(&prefix).await?;
        let mut out = BTreeMap::new();
        for kv in resp.kvs() {
            let key = kv_key(kv)?;
            let Some((bucket, id)) = key
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            out.insert((bucket.to_owned(), id.to_owned()), decode(kv)?);
        }
        Ok(out)
    }

    /// Attach a bucket in ready mode, if no record of it exists.
    pub async fn attach(&self, req: AttachRequest) -> Result<BucketView, Refusal> {
        let bucket = validate_attach(req, now())?;
        self.source_check
            .check(&bucket)
            .await
            .map_err(|why| source_check_failed(&bucket.bucket, &why))?;
        let key = self.keys.bucket(&bucket.bucket);
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), encode(&bucket), None)]);
        let resp = self.txn(txn).await.map_err(unconfirmed)?;
        if !resp.succeeded() {
            return Err(already_attached(&bucket.bucket));
        }
        tracing::info!(bucket = %bucket.bucket, source_url = %bucket.source_url, "bucket attached in the fleet (ready mode)");
        Ok(bucket.view())
    }

    /// Detach a bucket (the same rules as a single proxy's), unless a mode
    /// change of it is under way.
    pub async fn detach(&self, bucket: &str, force: bool) -> Result<BucketView, Refusal> {
        let (reads, _) = self.read_all().await.map_err(unavailable)?;
        let r = reads.get(bucket).ok_or_else(|| not_attached(bucket))?;
        refuse_if_fencing(&r.bucket)?;
        check_detach(r.bucket.mode, r.bucket.verified.is_some(), force)
            .map_err(|e| Refusal::new(409, e.code(), format!("bucket {bucket}: {e}")))?;
        if !force {
            refuse_open_uploads(&*self.source_check, &r.bucket).await?;
        }
        let key = self.keys.bucket(bucket);
        let txn = Txn::new()
            .when([unchanged(key.as_str(), r.mod_revision)])
            .and_then([
                TxnOp::delete(key.as_str(), None),
                TxnOp::delete(
                    self.keys.bucket_acks(bucket).as_str(),
                    Some(etcd_client::DeleteOptions::new().with_prefix()),
                ),
            ]);
        let resp = self.txn(txn).await.map_err(unconfirmed)?;
        if !resp.succeeded() {
            return Err(conflict(bucket));
        }
        tracing::info!(bucket, mode = %r.bucket.mode, force, "bucket detached from the fleet");
        Ok(r.bucket.view())
    }

    /// Marks one bucket (`rules::mark`), if no one changed it meanwhile.
    pub async fn mark(&self, bucket: &str, mark: Mark) -> Result<BucketView, Refusal> {
        let (reads, _) = self.read_all().await.map_err(unavailable)?;
        let r = reads.get(bucket).ok_or_else(|| not_attached(bucket))?;
        let mut b = r.bucket.clone();
        rules::mark(&mut b, mark, now())?;
        let key = self.keys.bucket(bucket);
        let txn = Txn::new()
            .when([unchanged(key.as_str(), r.mod_revision)])
            .and_then([TxnOp::put(key.as_str(), encode(&b), None)]);
        if !self.txn(txn).await.map_err(unconfirmed)?.succeeded() {
            return Err(conflict(bucket));
        }
        Ok(b.view())
    }

    /// Change the mode of the selected buckets, all or nothing, fenced.
    /// `progress` hears each step (ferryctl prints them).
    pub async fn update(
        &self,
        req: UpdateRequest,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<UpdateResponse, Refusal> {
        let (mut reads, _) = self.read_all().await.map_err(unavailable)?;
        let abandoned = self.take_over_abandoned(&mut reads, progress);
        let mut table = BucketTable::default();
        for (name, r) in &reads {
            table.buckets.insert(name.clone(), r.bucket.clone());
        }
        let target_urls: Vec<String> = match req.selector {
            Selector::Url(_) => self
                .member_infos()
                .await
                .map_err(unavailable)?
                .into_iter()
                .flat_map(|m| m.target_urls)
                .collect(),
            _ => Vec::new(),
        };
        let changes = check_update(&table, &req, &target_urls)?;
        // A bucket taken over is fenced again even into the mode it is
        // in, so that its record leaves the abandoned fence.
        let moving: Vec<&Read> = changes
            .iter()
            .filter(|(c, t)| *t == Transition::Change || abandoned.contains(&c.bucket))
            .map(|(c, _)| &reads[&c.bucket])
            .collect();
        let changes: Vec<ModeChange> = changes.into_iter().map(|(c, _)| c).collect();
        if moving.is_empty() {
            return Ok(UpdateResponse {
                changes,
                fenced_at: None,
            });
        }

        // 1. The fence.
        let at = now();
        let fencing: Vec<Bucket> = moving
            .iter()
            .map(|r| {
                let mut b = r.bucket.clone();
                b.leaving = Some(b.mode);
                b.mode = req.mode;
                b.clear_verified();
                b.phase = Phase::Fencing;
                b.epoch += 1;
                b.updated_at = at;
                b
            })
            .collect();
        let revs: Vec<i64> = moving.iter().map(|r| r.mod_revision).collect();
        let fence_rev = self.swap(&fencing, &revs).await?;
        let members = self.members().await.map_err(unavailable)?;
        progress(Progress::Fencing {
            buckets: fencing
                .iter()
                .map(|b| (b.bucket.clone(), b.epoch))
                .collect(),
            members: members.clone(),
        });

        // 2. Every live proxy drains and acknowledges.
        let acked = match self.await_acks(&fencing, progress).await {
            Ok(members) => members,
            Err(why) => {
                self.roll_back(&fencing, fence_rev).await;
                return Err(why);
            }
        };
        let fenced_at = OffsetDateTime::now_utc();
        progress(Progress::Fenced { members: acked });

        // 3. The source-upload snapshot, once for the fleet, now that no
        // proxy can begin an upload on the source; then the mode in force.
        let mut active = Vec::with_capacity(fencing.len());
        for b in &fencing {
            let mut b = b.clone();
            if b.mode == Mode::Migrate {
                match self.source_check.uploads(&b).await {
                    Ok(u) => b.source_uploads = u,
                    Err(why) => {
                        self.roll_back(&fencing, fence_rev).await;
                        return Err(uploads_unlisted(
                            &b.bucket,
                            &format!("{why}; the change was rolled back"),
                        ));
                    }
                }
            } else {
                b.source_uploads.clear();
            }
            b.phase = Phase::Active;
            b.leaving = None;
            active.push(b);
        }
        self.swap(&active, &vec![fence_rev; active.len()]).await?;
        for b in &active {
            tracing::info!(bucket = %b.bucket, to = %b.mode, epoch = b.epoch, force = req.force, "fleet mode changed");
        }
        Ok(UpdateResponse {
            changes,
            fenced_at: Some(rfc3339(fenced_at)),
        })
    }

    /// A fence whose update died (ferryctl killed, its host lost) would hold
    /// the bucket's writes forever. One begun more than twice the fence
    /// timeout ago is abandoned: the bucket is read as active in the mode
    /// it was leaving (the mode every proxy still routes by), so that this
    /// update proceeds from there. The compare-and-swap on the revision
    /// keeps two takers from both proceeding. Returns the buckets taken.
    fn take_over_abandoned(
        &self,
        reads: &mut BTreeMap<String, Read>,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> BTreeSet<String> {
        let limit = time::Duration::try_from(self.fence_timeout * 2).unwrap_or(time::Duration::MAX);
        let mut taken = BTreeSet::new();
        for r in reads.values_mut() {
            let b = &mut r.bucket;
            if b.phase != Phase::Fencing || now() - b.updated_at <= limit {
                continue;
            }
            progress(Progress::TakingOver {
                bucket: b.bucket.clone(),
                epoch: b.epoch,
                since: rfc3339(b.updated_at),
            });
            b.mode = b.leaving.take().unwrap_or(b.mode);
            b.phase = Phase::Active;
            taken.insert(b.bucket.clone());
        }
        taken
    }

    /// Writes `buckets` if each key is still at its revision in `revs`;
    /// returns the new revision.
    async fn swap(&self, buckets: &[Bucket], revs: &[i64]) -> Result<i64, Refusal> {
        let compares: Vec<Compare> = buckets
            .iter()
            .zip(revs)
            .map(|(b, rev)| unchanged(self.keys.bucket(&b.bucket), *rev))
            .collect();
        let puts: Vec<TxnOp> = buckets
            .iter()
            .map(|b| TxnOp::put(self.keys.bucket(&b.bucket), encode(b), None))
            .collect();
        let resp = self
            .txn(Txn::new().when(compares).and_then(puts))
            .await
            .map_err(unconfirmed)?;
        if !resp.succeeded() {
            let names: Vec<&str> = buckets.iter().map(|b| b.bucket.as_str()).collect();
            return Err(conflict(&names.join(", ")));
        }
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Waits until every live proxy acknowledges each bucket's epoch;
    /// returns who did. A member that leaves (its lease expired) is no
    /// longer waited for.
    async fn await_acks(
        &self,
        fencing: &[Bucket],
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Vec<String>, Refusal> {
        let deadline = Instant::now() + self.fence_timeout;
        let mut reported: Option<BTreeSet<String>> = None;
        loop {
            // An etcd member going down mid-fence is retried, within the
            // timeout.
            let state = async { Ok::<_, FleetError>((self.members().await?, self.acks().await?)) };
            let (members, acks) = match state.await {
                Ok(s) => s,
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(error = %e, "reading the fence's acknowledgements; retrying");
                    tokio::time::sleep(ACK_POLL).await;
                    continue;
                }
                Err(e) => return Err(unavailable(e)),
            };
            let waiting: BTreeSet<String> = members
                .iter()
                .filter(|id| {
                    fencing.iter().any(|b| {
                        acks.get(&(b.bucket.clone(), (*id).clone()))
                            .is_none_or(|a| a.epoch < b.epoch)
                    })
                })
                .cloned()
                .collect();
            if waiting.is_empty() {
                return Ok(members);
            }
            if Instant::now() >= deadline {
                let names: Vec<&str> = fencing.iter().map(|b| b.bucket.as_str()).collect();
                return Err(Refusal::new(
                    504,
                    codes::FENCE_TIMEOUT,
                    format!(
                        "bucket {}: these proxies did not acknowledge the fence within {} s: {}; \
                         the mode change was rolled back (is each of them running and in \
                         contact with etcd? a proxy that is down leaves the fleet when its \
                         lease expires)",
                        names.join(", "),
                        self.fence_timeout.as_secs(),
                        waiting.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            if reported.as_ref() != Some(&waiting) {
                progress(Progress::Waiting {
                    members: waiting.iter().cloned().collect(),
                });
                reported = Some(waiting);
            }
            tokio::time::sleep(ACK_POLL).await;
        }
    }

    /// Puts the fenced buckets back in their old mode, under a new epoch
    /// (so that every proxy applies it as a change). Best effort: if even
    /// that fails, the fence stays, writes stay refused, and the operator
    /// is told to run the update again.
    async fn roll_back(&self, fencing: &[Bucket], fence_rev: i64) {
        let back: Vec<Bucket> = fencing
            .iter()
            .map(|b| {
                let mut b = b.clone();
                b.mode = b.leaving.take().unwrap_or(b.mode);
                b.phase = Phase::Active;
                b.epoch += 1;
                b
            })
            .collect();
        if let Err(e) = self.swap(&back, &vec![fence_rev; back.len()]).await {
            tracing::error!(error = %e, "the fence could not be rolled back; writes to these buckets stay refused until an update succeeds");
        }
    }
}

fn conflict(buckets: &str) -> Refusal {
    Refusal::new(
        409,
        codes::CONFLICT,
        format!(
            "bucket {buckets}: changed by someone else during this request (another ferryctl?); \
             nothing was changed by this one: look at `show` and run it again if still needed"
        ),
    )
}

fn unavailable(e: FleetError) -> Refusal {
    Refusal::new(
        503,
        codes::FLEET_UNAVAILABLE,
        format!("{e}; nothing changed"),
    )
}

/// A compare-and-swap that etcd did not confirm. If it cannot have been
/// applied, nothing changed; after a leader change in flight it may have.
fn unconfirmed(e: etcd_client::Error) -> Refusal {
    if super::may_resend(&e, Resend::CompareAndSwap) {
        return unavailable(e.into());
    }
    Refusal::new(
        503,
        codes::FLEET_UNAVAILABLE,
        format!(
            "etcd did not confirm the change ({e}); it may or may not have been made: look at \
             `show` (a mode change left fencing is taken over by the next update)"
        ),
    )
}

/// A transaction's guard: `key` is still at revision `rev` (nobody
/// changed it since it was read).
fn unchanged(key: impl Into<Vec<u8>>, rev: i64) -> Compare {
    Compare::mod_revision(key, CompareOp::Equal, rev)
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("state records always serialize")
}

fn kv_key(kv: &etcd_client::KeyValue) -> Result<&str, FleetError> {
    kv.key_str().map_err(|e| FleetError::Invalid {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        detail: e.to_string(),
    })
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(
    kv: &etcd_client::KeyValue,
) -> Result<T, FleetError> {
    serde_json::from_slice(kv.value()).map_err(|e| FleetError::Invalid {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        detail: format!("not a Ferry record: {e}"),
    })
}

/// A bucket record, checked to be the one its key names.
pub(super) fn decode_bucket(
    prefix: &str,
    kv: &etcd_client::KeyValue,
) -> Result<Bucket, FleetError> {
    let key = kv_key(kv)?;
    let b: Bucket = decode(kv)?;
    if key.strip_prefix(prefix) != Some(b.bucket.as_str()) {
        return Err(FleetError::Invalid {
            key: key.to_owned(),
            detail: format!("describes bucket {:?}", b.bucket),
        });
    }
    Ok(b)
}
