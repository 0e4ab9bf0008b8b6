//! The rules every bucket change obeys, wherever it is made (the proxy's
//! admin API on a single host, or `ferryctl` and the proxies on etcd): what
//! an attach must hold, which buckets a selector names, and the refusals
//! the control API answers with.

use std::collections::BTreeMap;

use ferry_control::socket::server::Refusal;
use ferry_control::{
    AttachRequest, HashShare, Mark, Mode, ModeChange, Selector, UpdateRequest, codes,
};
use time::OffsetDateTime;

use crate::state::{
    Bucket, BucketTable, Phase, SharesVerified, Transition, Verified, check_transition,
};

/// Region of a source when attach names none.
pub const DEFAULT_SOURCE_REGION: &str = "us-east-1";

/// 404: `bucket` is not attached.
pub fn not_attached(bucket: &str) -> Refusal {
    Refusal::new(
        404,
        codes::NO_SUCH_BUCKET,
        format!("bucket {bucket:?} is not attached"),
    )
}

pub fn already_attached(bucket: &str) -> Refusal {
    Refusal::new(
        409,
        codes::ALREADY_ATTACHED,
        format!("bucket {bucket:?} is already attached (detach it first to change its source)"),
    )
}

pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Applies `mark` to `b`, or says why not. No fence: no route changes
/// with a mark (a block refuses every request alike).
pub fn mark(b: &mut Bucket, mark: Mark, now: OffsetDateTime) -> Result<(), Refusal> {
    refuse_if_fencing(b)?;
    match mark {
        Mark::Verified(pass) => {
            if b.mode != Mode::Migrate {
                return Err(Refusal::new(
                    409,
                    codes::INVALID_TRANSITION,
                    format!(
                        "bucket {}: a verify is recorded only in migrate mode, and it is in {} \
                         mode (detach from ready mode needs none)",
                        b.bucket, b.mode
                    ),
                ));
            }
            if let Some(share) = pass.share.filter(|s| s.value >= s.count) {
                return Err(Refusal::invalid(format!(
                    "hash share {share}: the value must be below the count"
                )));
            }
            let verified = Verified {
                at: now,
                summary: pass.summary,
            };
            match pass.share {
                Some(share) if share.count > 1 => share_verified(b, share, verified),
                _ => {
                    b.verified = Some(verified);
                    b.verified_shares = None;
                }
            }
        }
        Mark::Block => b.blocked = true,
        Mark::Unblock => b.blocked = false,
    }
    Ok(())
}

/// Records the passing verify of one hash share; once every share of the
/// same count has passed, the whole bucket has. A share of another count
/// (the copy partitioned anew) starts the record again.
fn share_verified(b: &mut Bucket, share: HashShare, pass: Verified) {
    let at = pass.at;
    let shares = match &mut b.verified_shares {
        Some(s) if s.count == share.count => s,
        other => other.insert(SharesVerified {
            count: share.count,
            passed: BTreeMap::new(),
        }),
    };
    shares.passed.insert(share.value, pass);
    if shares.passed.len() == share.count as usize {
        let each: Vec<String> = shares
            .passed
            .iter()
            .map(|(v, p)| format!("{v}/{}: {}", share.count, p.summary))
            .collect();
        b.verified = Some(Verified {
            at,
            summary: format!("every hash share passed ({})", each.join("; ")),
        });
        b.verified_shares = None;
    }
}

/// `http://host:9000/` and `http://host:9000` are the same source.
pub fn normalize_url(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// The buckets `selector` names. A URL selects the buckets attached with
/// that source URL; a URL of the target itself (one of `target_urls`: a
/// proxy's own, as in the seed's rollback step `update --url
/// <target-cluster-url> --mode ready`) selects every attached bucket.
pub fn select(
    table: &BucketTable,
    selector: &Selector,
    target_urls: &[String],
) -> Result<Vec<String>, Refusal> {
    let names: Vec<String> = match selector {
        Selector::Url(u)
            if target_urls
                .iter()
                .any(|t| normalize_url(t) == normalize_url(u)) =>
        {
            table.buckets.keys().cloned().collect()
        }
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

/// The buckets an update selects (see [`select`]), each with its change,
/// all allowed; or
/// the refusal of the first that is not (and how many more are refused).
/// A bucket whose fenced change is under way refuses any other.
pub fn check_update(
    table: &BucketTable,
    req: &UpdateRequest,
    target_urls: &[String],
) -> Result<Vec<(ModeChange, Transition)>, Refusal> {
    let selected = select(table, &req.selector, target_urls)?;
    let mut refusals = Vec::new();
    let mut changes = Vec::with_capacity(selected.len());
    for name in &selected {
        let b = &table.buckets[name];
        refuse_if_fencing(b)?;
        match check_transition(b.mode, req.mode, req.force) {
            Ok(t) => changes.push((
                ModeChange {
                    bucket: name.clone(),
                    from: b.mode,
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
    Ok(changes)
}

/// 409: a fenced change of the bucket is under way; it refuses any other.
pub fn refuse_if_fencing(b: &Bucket) -> Result<(), Refusal> {
    if b.phase == Phase::Fencing {
        return Err(Refusal::new(
            409,
            codes::CONFLICT,
            format!(
                "bucket {}: a change to {} mode (epoch {}) is under way; wait for it to finish \
                 (`show` tells its phase)",
                b.bucket, b.mode, b.epoch
            ),
        ));
    }
    Ok(())
}

/// 422: the source bucket did not check out at attach.
pub fn source_check_failed(bucket: &str, why: &str) -> Refusal {
    Refusal::new(
        422,
        codes::SOURCE_CHECK_FAILED,
        format!("attach {bucket}: {why}"),
    )
}

/// 503: the source's uploads could not be listed for migrate mode.
pub fn uploads_unlisted(bucket: &str, why: &str) -> Refusal {
    Refusal::new(
        503,
        codes::INTERNAL,
        format!("bucket {bucket}: cannot list the source's uploads: {why}"),
    )
}

pub fn validate_attach(req: AttachRequest, now: OffsetDateTime) -> Result<Bucket, Refusal> {
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
        epoch: 0,
        phase: Phase::Active,
        leaving: None,
        verified: None,
        verified_shares: None,
        blocked: false,
    })
}

/// Why `url` is not an `http://` or `https://` endpoint (scheme, host,
/// optional port; no user info, path, query or fragment).
pub fn check_endpoint_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!("{url:?}: scheme {other:?} is not http or https"));
        }
        None => return Err(format!("{url:?}: no scheme (expected http:// or https://)")),
    }
    let authority = uri.authority().ok_or_else(|| format!("{url:?}: no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "{url:?}: user info in the URL is not allowed (credentials go in their own fields)"
        ));
    }
    if authority.host().is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() || url.contains('#') {
        return Err(format!(
            "{url:?}: an S3 endpoint is scheme://host[:port] with no path or query"
        ));
    }
    Ok(())
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

    #[test]
    fn a_url_selects_its_sources_buckets_and_the_targets_url_selects_all() {
        let now = now();
        let mut table = BucketTable::default();
        for (bucket, url) in [("aaa", "http://src1:9000"), ("bbb", "http://src2:9000/")] {
            let mut r = req(bucket);
            r.source_url = url.into();
            table
                .buckets
                .insert(bucket.into(), validate_attach(r, now).unwrap());
        }
        let target = ["https://s3.target.example:443".to_owned()];
        let url = |u: &str| Selector::Url(u.into());
        assert_eq!(
            select(&table, &url("http://src2:9000"), &target).unwrap(),
            ["bbb"]
        );
        assert_eq!(
            select(&table, &url("https://s3.target.example:443/"), &target).unwrap(),
            ["aaa", "bbb"]
        );
        let e = select(&table, &url("https://s3.target.example:443"), &[]).unwrap_err();
        assert_eq!(e.error.code, codes::NO_SUCH_BUCKET);
    }

    fn pass(summary: &str, share: Option<(u32, u32)>) -> Mark {
        Mark::Verified(ferry_control::VerifiedRequest {
            summary: summary.into(),
            share: share.map(|(value, count)| HashShare { value, count }),
        })
    }

    #[test]
    fn a_bucket_is_verified_once_every_hash_share_has_passed() {
        let now = now();
        let mut b = validate_attach(req("photos"), now).unwrap();
        b.mode = Mode::Migrate;
        let detachable =
            |b: &Bucket| crate::state::check_detach(b.mode, b.verified.is_some(), false).is_ok();

        mark(&mut b, pass("share one", Some((1, 3))), now).unwrap();
        assert!(b.verified.is_none() && !detachable(&b));
        // The same share again, and one of another partition, which starts
        // the record again.
        mark(&mut b, pass("share one again", Some((1, 3))), now).unwrap();
        mark(&mut b, pass("share zero of two", Some((0, 2))), now).unwrap();
        assert_eq!(b.view().shares_verified, ["0/2"]);
        assert!(!detachable(&b));
        let e = mark(&mut b, pass("no such share", Some((2, 2))), now).unwrap_err();
        assert_eq!(e.status, 400, "{e:?}");

        mark(&mut b, pass("share one of two", Some((1, 2))), now).unwrap();
        let v = b.view();
        assert!(v.shares_verified.is_empty(), "{v:?}");
        let summary = v.verified.unwrap();
        assert!(
            summary.contains("0/2: share zero of two") && summary.contains("1/2: share one of two"),
            "{summary}"
        );
        assert!(detachable(&b));

        // A mode change forgets it all.
        b.clear_verified();
        assert!(b.verified.is_none() && b.verified_shares.is_none());
        // A verify of the whole bucket (one share of one) is enough alone.
        mark(&mut b, pass("whole", Some((0, 1))), now).unwrap();
        assert!(detachable(&b));
    }
}
