//! Shared helpers for the s3migrate end-to-end tests: real stores from
//! ferry-harness, the real `s3migrate` binary.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use crate::{Store, StoreKind};
use bytes::Bytes;

pub use crate::s3migrate_bin;

/// Why a test that holds copies with FERRY_TEST_PAUSE_BEFORE_PUT saw none
/// held: the hook is compiled only with s3migrate's `test-hooks` feature,
/// which `cargo test --workspace` (or `-p s3migrate`) turns on, and a plain
/// `cargo build` does not.
pub const PAUSE_HOOK_HINT: &str = "s3migrate holds copies only when built with its test-hooks \
     feature: run the tests with `cargo test --workspace`, not after a plain `cargo build -p s3migrate`";

/// An `s3migrate` command with every required flag but the source mode.
/// Secrets go through the environment, as an operator should pass them.
/// Garage ignores conditional writes, so a Garage destination gets
/// `--allow-overwrite`; see `s3migrate_strict` for one without.
pub fn s3migrate(
    src: &Store,
    src_bucket: &str,
    dest: &Store,
    dest_bucket: &str,
    folder: &Path,
) -> Command {
    let mut c = s3migrate_strict(src, src_bucket, dest, dest_bucket, folder);
    if dest.kind == StoreKind::Garage {
        c.arg("--allow-overwrite");
    }
    c
}

pub fn s3migrate_strict(
    src: &Store,
    src_bucket: &str,
    dest: &Store,
    dest_bucket: &str,
    folder: &Path,
) -> Command {
    let mut c = Command::new(crate::s3migrate_bin());
    c.env_clear();
    for (k, v) in std::env::vars_os() {
        if k != "AWS_CA_BUNDLE" {
            c.env(k, v);
        }
    }
    for (side, store, bucket) in [("src", src, src_bucket), ("dest", dest, dest_bucket)] {
        c.args([
            format!("--{side}-url"),
            store.endpoint.clone(),
            format!("--{side}-bucket"),
            bucket.to_owned(),
            format!("--{side}-key"),
            store.access_key.clone(),
            format!("--{side}-region"),
            store.region.clone(),
        ])
        .env(
            format!("S3MIGRATE_{}_SECRET", side.to_uppercase()),
            &store.secret_key,
        );
    }
    c.arg("--dest-folder")
        .arg(folder)
        .args(["--progress-interval-secs", "1", "--threads", "16"]);
    c
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run s3migrate");
    eprintln!(
        "s3migrate exit={:?}\n--- stdout\n{}\n--- stderr (tail)\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        tail(&String::from_utf8_lossy(&out.stderr), 30)
    );
    out
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Deterministic bytes of a given length, different per seed.
pub fn data(seed: u64, len: usize) -> Bytes {
    Bytes::from(crate::xorshift_bytes(seed, len))
}

/// Writes a key-list folder (s3find's format) holding `keys`, sorted.
pub fn write_key_list(dir: &Path, keys: &[String]) {
    let mut sorted = keys.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut w = ferry_control::keylist::KeyListWriter::create(dir, "chunk-").unwrap();
    for k in &sorted {
        w.push(k).unwrap();
    }
    w.finish().unwrap();
}

/// The latest pass summary in a dest folder.
pub fn last_summary(folder: &Path) -> serde_json::Value {
    let mut names: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            (n.starts_with("summary-") && n.ends_with(".json")).then_some(n)
        })
        .collect();
    names.sort();
    let last = names.last().expect("a summary file");
    serde_json::from_slice(&std::fs::read(folder.join(last)).unwrap()).unwrap()
}

/// Asserts `obj == ign + exist + copied + fail + skip` in a summary and
/// returns the object counts.
pub fn counts(summary: &serde_json::Value) -> serde_json::Value {
    let o = summary["objects"].clone();
    let g = |k: &str| o[k].as_u64().unwrap();
    assert_eq!(
        g("obj"),
        g("ign") + g("exist") + g("copied") + g("fail") + g("skip_dn") + g("skip_up"),
        "counts do not add up: {o}"
    );
    o
}

pub fn migrate_log(folder: &Path) -> Vec<String> {
    std::fs::read_to_string(folder.join("migrate.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Two stores with a bucket each (names differ so a mix-up shows).
pub fn pair(src: StoreKind, dest: StoreKind) -> (Store, Store) {
    let s = Store::start(src).expect("start source store");
    s.create_bucket("src-bucket").unwrap();
    let d = Store::start(dest).expect("start dest store");
    d.create_bucket("dest-bucket").unwrap();
    (s, d)
}

/// A migration's source: a Garage store holding `bucket` with `objects`.
pub fn garage_source(bucket: &str, objects: impl IntoIterator<Item = (String, Bytes)>) -> Store {
    let source = Store::garage().unwrap();
    source.create_bucket(bucket).unwrap();
    rt().block_on(crate::put_objects(&source.client(), bucket, objects, 16))
        .unwrap();
    source
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Every key of a bucket with its size and ETag, as listed.
pub fn etags(
    rt: &tokio::runtime::Runtime,
    client: &aws_sdk_s3::Client,
    bucket: &str,
) -> BTreeMap<String, (i64, String)> {
    rt.block_on(async {
        let mut out = BTreeMap::new();
        let mut token = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(bucket)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            for o in page.contents() {
                out.insert(
                    o.key().unwrap().to_owned(),
                    (o.size().unwrap(), o.e_tag().unwrap().to_owned()),
                );
            }
            match page.next_continuation_token() {
                Some(t) => token = Some(t.to_owned()),
                None => return out,
            }
        }
    })
}
