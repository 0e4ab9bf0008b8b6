//! `plan` without a Pingora session: a request head, a bucket table and
//! users in, a plan or a refusal out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::migrate::proxied::Before;
use crate::resign::{RequestLine, canonical_target, sign_request};

const KEY: &str = "AKIDALICE";
const SECRET: &str = "alice-secret";

/// Buckets and users, as `directory::LiveDirectory` would hold them.
#[derive(Default)]
struct Table {
    buckets: HashMap<String, Arc<Attached>>,
    /// Alice's grants: bucket, and whether she may write.
    grants: HashMap<String, bool>,
}

impl Directory for Table {
    fn attached(&self, bucket: &str) -> Option<Arc<Attached>> {
        self.buckets.get(bucket).cloned()
    }

    fn secret(&self, access_key: &str) -> Option<String> {
        (access_key == KEY).then(|| SECRET.to_owned())
    }

    fn allowed(&self, access_key: &str, bucket: &str, write: bool) -> bool {
        access_key == KEY && self.grants.get(bucket).is_some_and(|w| *w || !write)
    }
}

fn settings() -> Settings {
    Settings {
        target: Upstream::from_url("http://127.0.0.1:3900").unwrap(),
        target_creds: Arc::new(creds("AKIDTARGET", "target-secret")),
        s3_domains: vec!["s3.example.com".into()],
        max_clock_skew_secs: 900,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(60),
    }
}

fn creds(access_key: &str, secret: &str) -> UpstreamCreds {
    UpstreamCreds {
        access_key: access_key.into(),
        secret: secret.into(),
        region: "us-east-1".into(),
    }
}

/// `photos`, attached in `mode` with its objects in `photos-src` on the
/// source; alice may write it.
fn table(mode: Mode) -> Table {
    let att = Attached {
        mode,
        source: Upstream::from_url("http://127.0.0.1:9000").unwrap(),
        source_bucket: "photos-src".into(),
        source_creds: Arc::new(creds("AKIDSOURCE", "source-secret")),
        source_uploads: Arc::from([]),
        generation: 1,
        blocked: false,
    };
    Table {
        buckets: HashMap::from([("photos".to_owned(), Arc::new(att))]),
        grants: HashMap::from([("photos".to_owned(), true)]),
    }
}

/// A request signed by alice with `secret`, path-style.
fn signed(method: &str, path: &str, query: &str, secret: &str) -> RequestHeader {
    signed_with(method, path, query, secret, &[])
}

fn signed_with(
    method: &str,
    path: &str,
    query: &str,
    secret: &str,
    extra: &[(&str, &str)],
) -> RequestHeader {
    let host = "proxy.local";
    let mut headers = vec![("host".to_owned(), host.to_owned())];
    headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    let target = canonical_target(path, query).unwrap();
    let line = RequestLine {
        method,
        target: &target,
    };
    let view: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let add = sign_request(
        &line,
        &view,
        "UNSIGNED-PAYLOAD",
        &creds(KEY, secret),
        SystemTime::now(),
    )
    .unwrap();
    headers.extend(add.map(|(n, v)| (n.to_owned(), v)));
    let uri = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let mut req = RequestHeader::build(method, uri.as_bytes(), None).unwrap();
    for (n, v) in headers {
        req.append_header(n, v).unwrap();
    }
    req
}

fn run(t: &Table, req: &RequestHeader) -> Planned {
    let settings = settings();
    let journal = Journal::new(
        "ferry-journal",
        settings.target.clone(),
        settings.target_creds.clone(),
    );
    let env = Env {
        settings: &settings,
        directory: t,
        journal: Some(&journal),
        now: time::OffsetDateTime::now_utc(),
    };
    plan(&env, req)
}

fn refusal(p: Planned) -> Code {
    match p.result {
        Err(e) => e.code,
        Ok((plan, _)) => panic!(
            "planned ({}, {}), not refused",
            plan.mode(),
            plan.upstream()
        ),
    }
}

fn planned(p: Planned) -> Plan {
    match p.result {
        Ok((plan, _)) => plan,
        Err(e) => panic!("refused: {:?} {}", e.code, e.message),
    }
}

#[test]
fn an_unknown_operation_is_refused() {
    let p = run(
        &table(Mode::Ready),
        &signed("PATCH", "/photos/a", "", SECRET),
    );
    assert_eq!(p.operation, Some("Unknown"));
    assert_eq!(p.bucket.as_deref(), Some("photos"));
    assert_eq!(refusal(p), Code::NotImplemented);
}

#[test]
fn a_bad_signature_is_refused() {
    for mode in [Mode::Ready, Mode::Forward, Mode::Migrate] {
        let req = signed("GET", "/photos/a", "", "not-alice-secret");
        assert_eq!(
            refusal(run(&table(mode), &req)),
            Code::SignatureDoesNotMatch
        );
    }
}

#[test]
fn an_anonymous_request_is_refused() {
    let req = RequestHeader::build("GET", b"/photos/a", None).unwrap();
    assert_eq!(refusal(run(&table(Mode::Ready), &req)), Code::AccessDenied);
}

#[test]
fn a_write_without_a_write_grant_is_refused() {
    let mut t = table(Mode::Ready);
    t.grants.insert("photos".into(), false);
    let req = signed("PUT", "/photos/a", "", SECRET);
    assert_eq!(refusal(run(&t, &req)), Code::AccessDenied);
    let req = signed("GET", "/photos/a", "", SECRET);
    assert!(run(&t, &req).result.is_ok());
}

#[test]
fn bucket_configuration_is_refused() {
    let req = signed("PUT", "/photos", "policy", SECRET);
    let p = run(&table(Mode::Ready), &req);
    assert_eq!(p.operation, Some("PutBucketPolicy"));
    assert_eq!(refusal(p), Code::AccessDenied);
}

#[test]
fn a_routing_header_given_twice_is_refused() {
    let req = signed_with(
        "PUT",
        "/photos/a",
        "",
        SECRET,
        &[("if-match", "\"a\""), ("if-match", "\"b\"")],
    );
    assert_eq!(
        refusal(run(&table(Mode::Ready), &req)),
        Code::InvalidArgument
    );
}

#[test]
fn another_header_given_twice_is_planned() {
    let req = signed_with(
        "PUT",
        "/photos/a",
        "",
        SECRET,
        &[("x-amz-meta-a", "1"), ("x-amz-meta-a", "2")],
    );
    assert!(matches!(
        planned(run(&table(Mode::Ready), &req)),
        Plan::Resign { .. }
    ));
}

#[test]
fn the_journal_bucket_is_refused() {
    let req = signed("GET", "/ferry-journal/x", "", SECRET);
    assert_eq!(refusal(run(&table(Mode::Ready), &req)), Code::AccessDenied);
}

#[test]
fn an_unattached_bucket_passes_through_unauthenticated() {
    let req = RequestHeader::build("GET", b"/other/a", None).unwrap();
    let p = run(&table(Mode::Migrate), &req);
    assert_eq!(p.bucket, None);
    assert_eq!(p.operation, Some("GetObject"));
    assert!(matches!(planned(p), Plan::PassThrough));
}

#[test]
fn a_write_in_forward_mode_goes_to_the_source() {
    let p = run(
        &table(Mode::Forward),
        &signed("PUT", "/photos/a%20b", "", SECRET),
    );
    assert_eq!(p.operation, Some("PutObject"));
    let plan = planned(p);
    assert_eq!((plan.mode(), plan.upstream()), ("forward", "source"));
    let Plan::Resign { out, .. } = plan else {
        panic!("not re-signed to one side");
    };
    assert_eq!(out.label, "source");
    assert_eq!(out.upstream.authority, "127.0.0.1:9000");
    assert_eq!(out.creds.access_key, "AKIDSOURCE");
    assert_eq!(out.target, "/photos-src/a%20b");
    assert!(!out.create_only);
}

#[test]
fn a_read_in_ready_mode_goes_to_the_target() {
    let p = run(&table(Mode::Ready), &signed("GET", "/photos/a", "", SECRET));
    let Plan::Resign { out, .. } = planned(p) else {
        panic!("not re-signed to one side");
    };
    assert_eq!(out.label, "target");
    assert_eq!(out.creds.access_key, "AKIDTARGET");
    assert_eq!(out.target, "/photos/a");
}

#[test]
fn a_read_in_migrate_mode_is_served_target_then_source() {
    let p = run(
        &table(Mode::Migrate),
        &signed("GET", "/photos/a", "", SECRET),
    );
    assert_eq!(p.operation, Some("GetObject"));
    let plan = planned(p);
    assert_eq!((plan.mode(), plan.upstream()), ("migrate", "both"));
    let Plan::Migrate(migrate::Request::Serve(call)) = plan else {
        panic!("not served by migrate mode");
    };
    assert_eq!(call.op, migrate::Op::Read);
    assert_eq!(
        (call.target.label, call.target_path.as_str()),
        ("target", "/photos/a")
    );
    assert_eq!(
        (call.source.label, call.source_path.as_str()),
        ("source", "/photos-src/a")
    );
    assert_eq!(call.source.upstream.authority, "127.0.0.1:9000");
}

#[test]
fn a_delete_of_tags_is_not_a_delete() {
    let req = signed("DELETE", "/photos/a", "tagging", SECRET);
    let p = run(&table(Mode::Migrate), &req);
    assert_eq!(p.operation, Some("DeleteObjectTagging"));
    let Plan::Migrate(migrate::Request::Proxy(proxied)) = planned(p) else {
        panic!("not proxied");
    };
    // Promoted without the source's tags, then to the target; the key is
    // not journalled as deleted.
    assert!(matches!(proxied.before, Some(Before::Promote(_, false))));
    assert_eq!(proxied.clears_journal, None);
    assert_eq!(proxied.out.label, "target");
    assert_eq!(proxied.out.target, "/photos/a?tagging=");
    // A real delete is served from both sides.
    let p = run(
        &table(Mode::Migrate),
        &signed("DELETE", "/photos/a", "", SECRET),
    );
    let Plan::Migrate(migrate::Request::Serve(call)) = planned(p) else {
        panic!("not served by migrate mode");
    };
    assert_eq!(call.op, migrate::Op::Delete);
}

#[test]
fn a_conditional_write_in_migrate_mode_is_judged_on_both_sides() {
    let req = signed_with("PUT", "/photos/a", "", SECRET, &[("if-none-match", "*")]);
    let Plan::Migrate(migrate::Request::Proxy(proxied)) = planned(run(&table(Mode::Migrate), &req))
    else {
        panic!("not proxied");
    };
    assert!(matches!(proxied.before, Some(Before::Judge(..))));
    assert_eq!(
        proxied.clears_journal,
        Some(("photos".to_owned(), "a".to_owned()))
    );
}

#[test]
fn a_copy_from_another_source_in_forward_mode_is_refused() {
    let mut t = table(Mode::Forward);
    let mut other = Attached::clone(&t.buckets["photos"]);
    other.source = Upstream::from_url("http://127.0.0.1:9100").unwrap();
    t.buckets.insert("other".into(), Arc::new(other));
    t.grants.insert("other".into(), false);
    let req = signed_with(
        "PUT",
        "/photos/a",
        "",
        SECRET,
        &[("x-amz-copy-source", "/other/b")],
    );
    let p = run(&t, &req);
    assert_eq!(p.operation, Some("CopyObject"));
    assert_eq!(refusal(p), Code::NotImplemented);
}
