//! `S3SourceCheck` (HeadBucket at attach time) against a real Garage, which
//! checks signatures: an existing bucket passes; a missing bucket, a wrong
//! secret and an unreachable source are refused with a clear reason.

use ferry_control::Mode;
use ferry_harness::Store;
use ferry_proxy::admin::{S3SourceCheck, SourceCheck};
use ferry_proxy::state::{Bucket, Phase};
use time::OffsetDateTime;

fn bucket(store: &Store, source_bucket: &str, secret: &str) -> Bucket {
    let now = OffsetDateTime::now_utc();
    Bucket {
        bucket: "target-name".into(),
        source_bucket: source_bucket.into(),
        source_url: store.endpoint.clone(),
        source_region: store.region.clone(),
        source_access_key: store.access_key.clone(),
        source_secret: secret.into(),
        tls_cert_pem: None,
        mode: Mode::Ready,
        attached_at: now,
        updated_at: now,
        source_uploads: vec![],
        epoch: 0,
        phase: Phase::Active,
        leaving: None,
        verified: None,
        verified_shares: None,
        blocked: false,
    }
}

fn check(b: &Bucket) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(S3SourceCheck.check(b))
}

#[test]
fn head_bucket_accepts_a_reachable_bucket_and_refuses_the_rest() {
    let store = Store::garage().expect("start Garage (scripts/setup installs it)");
    store.create_bucket("src-photos").unwrap();

    check(&bucket(&store, "src-photos", &store.secret_key)).expect("existing bucket");

    let e = check(&bucket(&store, "src-missing", &store.secret_key)).unwrap_err();
    assert!(e.contains("src-missing") && e.contains("404"), "{e}");

    let e = check(&bucket(&store, "src-photos", &store.wrong_secret())).unwrap_err();
    assert!(e.contains("403") && e.contains("secret"), "{e}");
    assert!(
        !e.contains(&store.wrong_secret()),
        "never echo the secret: {e}"
    );
}

#[test]
fn an_unreachable_source_is_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let now = OffsetDateTime::now_utc();
    let b = Bucket {
        bucket: "b-1".into(),
        source_bucket: "b-1".into(),
        source_url: format!("http://127.0.0.1:{port}"),
        source_region: "us-east-1".into(),
        source_access_key: "AK".into(),
        source_secret: "SK".into(),
        tls_cert_pem: None,
        mode: Mode::Ready,
        attached_at: now,
        updated_at: now,
        source_uploads: vec![],
        epoch: 0,
        phase: Phase::Active,
        leaving: None,
        verified: None,
        verified_shares: None,
        blocked: false,
    };
    let e = check(&b).unwrap_err();
    assert!(e.contains("cannot reach the source"), "{e}");
    assert!(e.contains(&port.to_string()), "{e}");
}
