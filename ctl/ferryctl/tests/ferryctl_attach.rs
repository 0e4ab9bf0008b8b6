//! Attach checks the target side through the real proxy: a bucket missing
//! on the target is refused; one that holds objects, a missing journal
//! bucket and a certificate that does not cover the bucket's hostnames are
//! each a warning in the answer and on stderr.

use ferry_harness::Store;
use ferry_harness::proxy::{Proxy, launch};
use ferry_harness::tls::TestIssuer;

#[test]
fn attach_refuses_a_missing_target_bucket_and_warns_of_the_rest() {
    let source = Store::garage().unwrap();
    let target = Store::moto().unwrap();
    for b in ["photos", "filled", "missing"] {
        source.create_bucket(b).unwrap();
    }
    target.create_bucket("photos").unwrap();
    target.create_bucket("filled").unwrap();
    ferry_harness::s3migrate::rt()
        .block_on(
            target
                .client()
                .put_object()
                .bucket("filled")
                .key("already/here")
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
                .send(),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestIssuer::new(dir.path(), "attach").unwrap();
    let certs = ca
        .cert_dir(
            dir.path(),
            &["photos.s3.ferry.test", "s3.ferry.test"],
            -1..90,
        )
        .unwrap();
    let https = ferry_harness::free_port().unwrap();
    // The journal's bucket is never made. The harness serves the domain
    // s3.ferry.test.
    let proxy = Proxy::start_with(
        &target,
        "photos",
        &format!(
            "https_addr = \"127.0.0.1:{https}\"\ncert_dir = \"{}\"\n\
             journal_bucket = \"ferry-journal\"\n",
            certs.display()
        ),
    );
    let attach = |bucket: &str| {
        let mut args = vec!["--output".to_owned(), "json".to_owned()];
        args.extend(launch::attach_args(proxy.dir.path(), bucket, &source).unwrap());
        proxy.ferryctl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let missing = attach("missing");
    assert_eq!(missing.status.code(), Some(1));
    let refusal: serde_json::Value = serde_json::from_slice(&missing.stdout).unwrap();
    assert_eq!(refusal["error"]["code"], "TargetCheckFailed", "{refusal:#}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist on the target"),
        "{refusal:#}"
    );

    let photos = attach("photos");
    assert!(photos.status.success());
    let view: serde_json::Value = serde_json::from_slice(&photos.stdout).unwrap();
    let warnings: Vec<&str> = view["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("ferry-journal"), "{warnings:?}");

    let filled = attach("filled");
    assert!(filled.status.success());
    let view: serde_json::Value = serde_json::from_slice(&filled.stdout).unwrap();
    let warnings = view["warnings"].to_string();
    assert!(warnings.contains("already holds objects"), "{warnings}");
    assert!(warnings.contains("already/here"), "{warnings}");
    assert!(
        warnings.contains("no loaded certificate covers filled.s3.ferry.test"),
        "{warnings}"
    );
    // Text output: each warning on stderr.
    let text = proxy.ferryctl(&["s3", "bucket", "migrate", "detach", "filled"]);
    assert!(text.status.success());
    let again = proxy.ferryctl(
        &launch::attach_args(proxy.dir.path(), "filled", &source)
            .unwrap()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("ferryctl: warning: the target bucket filled already holds objects"),
        "{stderr}"
    );
}
