//! `ferryctl check preflight` against real stores: a Garage source with
//! a read-only copier user, a moto target (which honours conditional
//! writes), and then each unsafe setup failing its item by name.

use std::process::Command;

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter,
};
use ferry_harness::Store;
use ferry_harness::agent::secret_file;
use ferry_harness::ferryctl::{Run, run};
use ferry_harness::s3migrate::{data, garage_source, rt};

const BUCKET: &str = "photos";
const JOURNAL: &str = "ferry-journal";

struct Pair {
    source: Store,
    target: Store,
    dir: tempfile::TempDir,
}

impl Pair {
    /// `check preflight BUCKET` with the source read by `source_key`, the
    /// target at `target`; no proxy runs (`--source-url` given).
    fn preflight(&self, source_key: (&str, &str), target: &Store) -> Run {
        let d = self.dir.path();
        let src_secret = secret_file(d, "src.secret", source_key.1);
        let dst_secret = secret_file(d, "dst.secret", &target.secret_key);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferryctl"));
        cmd.arg("--socket")
            .arg(d.join("no-proxy.sock"))
            .args(["--output", "json", "check", "preflight", BUCKET])
            .args(["--source-url", &self.source.endpoint])
            .args(["--source-region", &self.source.region])
            .args(["--source-key", source_key.0])
            .arg("--source-secret-file")
            .arg(&src_secret)
            .args(["--target-url", &target.endpoint])
            .args(["--target-region", &target.region])
            .args(["--target-key", &target.access_key])
            .arg("--target-secret-file")
            .arg(&dst_secret)
            .args(["--journal-bucket", JOURNAL])
            .arg("--users-file")
            .arg(d.join("users.toml"));
        let out = run(cmd, "");
        eprintln!(
            "preflight: exit {}\n{}\n{}",
            out.code, out.stdout, out.stderr
        );
        out
    }
}

/// Each item's status, by name.
fn statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    report["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn status_of<'a>(items: &'a [(String, String)], name: &str) -> &'a str {
    items
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s.as_str())
        .unwrap_or_else(|| panic!("no item {name:?} in {items:?}"))
}

#[test]
fn preflight_passes_a_ready_pair_and_fails_each_unsafe_item_by_name() {
    let rt = rt();
    let source = garage_source(BUCKET, (0..12).map(|i| (format!("p/{i}"), data(i, 100))));
    let (ro_key, ro_secret) = source.read_only_key(BUCKET).unwrap();
    let target = Store::moto().unwrap();
    target.create_bucket(BUCKET).unwrap();
    target.create_bucket(JOURNAL).unwrap();
    let pair = Pair {
        source,
        target,
        dir: tempfile::tempdir().unwrap(),
    };
    let users = secret_file(
        pair.dir.path(),
        "users.toml",
        &format!(
            "[[user]]\nname = \"alice\"\naccess_key = \"AKALICE\"\nsecret = \"alice-secret\"\n\
             [user.buckets]\n{BUCKET} = \"write\"\n"
        ),
    );
    assert!(users.exists());

    // Ready: every item passes or only reminds.
    let ok = pair
        .preflight((&ro_key, &ro_secret), &pair.target)
        .ok()
        .json();
    assert_eq!(ok["ok"], true, "{ok:#}");
    let items = statuses(&ok);
    for name in [
        "source read",
        "source read-only",
        "source size",
        "target bucket",
        "target lifecycle",
        "target write",
        "target conditional put",
        "journal bucket",
    ] {
        assert_eq!(status_of(&items, name), "pass", "{name}: {ok:#}");
    }
    assert_eq!(status_of(&items, "target free space"), "warn");
    let detail = |name: &str| {
        ok["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        detail("source size").starts_with("12 objects, 1200 bytes"),
        "{ok:#}"
    );
    assert!(detail("target free space").contains("1320 bytes"), "{ok:#}");
    assert!(detail("users").contains("alice"), "{ok:#}");

    // A copier user that may write the source, and a target that holds
    // objects and ignores If-None-Match (Garage): each fails by name.
    let owner = (
        pair.source.access_key.clone(),
        pair.source.secret_key.clone(),
    );
    let bad = pair.preflight((&owner.0, &owner.1), &pair.source);
    assert_eq!(bad.code, 1, "{bad:?}");
    let report = bad.json();
    assert_eq!(report["ok"], false);
    let items = statuses(&report);
    for name in [
        "source read-only",
        "target bucket",
        "target conditional put",
    ] {
        assert_eq!(status_of(&items, name), "fail", "{name}: {report:#}");
    }

    // Lifecycle rules on the target would expire copied objects.
    rt.block_on(
        pair.target
            .client()
            .put_bucket_lifecycle_configuration()
            .bucket(BUCKET)
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .rules(
                        LifecycleRule::builder()
                            .id("expire-tmp")
                            .status(ExpirationStatus::Enabled)
                            .filter(LifecycleRuleFilter::builder().prefix("tmp/").build())
                            .expiration(LifecycleExpiration::builder().days(1).build())
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send(),
    )
    .unwrap();
    let lc = pair.preflight((&ro_key, &ro_secret), &pair.target);
    assert_eq!(lc.code, 1, "{lc:?}");
    let report = lc.json();
    assert_eq!(
        status_of(&statuses(&report), "target lifecycle"),
        "fail",
        "{report:#}"
    );
}
