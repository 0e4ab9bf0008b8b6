//! Phase 4 and the rollback from migrate mode, through `ferryctl --output
//! json`: `verify` (and `--repair`) against planted differences, the
//! recorded pass that lets detach go without --force; `block`, `rollback
//! plan --run` and `unblock`. The real proxy (with a delete journal) and
//! agent, a Garage source and a moto target.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use ferry_harness::agent::{Agent, secret_file};
use ferry_harness::ferryctl::{Run, run};
use ferry_harness::proxy::Proxy;
use ferry_harness::s3migrate::{data, garage_source, rt};
use ferry_harness::{Store, get_bytes};

const BUCKET: &str = "photos";
const JOURNAL: &str = "ferry-journal";
const KEYS: u64 = 30;

struct Migration {
    rt: tokio::runtime::Runtime,
    source: Store,
    target: Store,
    proxy: Proxy,
    agent: Agent,
    _dir: tempfile::TempDir,
    source_secret: String,
    target_secret: String,
}

impl Migration {
    /// A bucket of KEYS objects on the source, attached, in migrate mode,
    /// copied by a job on the agent.
    fn copied() -> Migration {
        let rt = rt();
        let source = garage_source(
            BUCKET,
            (0..KEYS).map(|i| (key(i), data(i, 1000 + i as usize))),
        );
        let target = Store::moto().unwrap();
        target.create_bucket(BUCKET).unwrap();
        target.create_bucket(JOURNAL).unwrap();
        let proxy = Proxy::start_with(
            &target,
            BUCKET,
            &format!("journal_bucket = \"{JOURNAL}\"\n"),
        );
        let agent = Agent::start("");
        let dir = tempfile::tempdir().unwrap();
        let source_secret = secret_file(dir.path(), "source.secret", &source.secret_key);
        let target_secret = secret_file(dir.path(), "target.secret", &target.secret_key);
        let m = Migration {
            rt,
            source_secret: source_secret.to_str().unwrap().to_owned(),
            target_secret: target_secret.to_str().unwrap().to_owned(),
            source,
            target,
            proxy,
            agent,
            _dir: dir,
        };
        m.proxy.attach(BUCKET, &m.source);
        m.ok(&[
            "s3", "bucket", "migrate", "update", "--bucket", BUCKET, "--mode", "forward",
        ]);
        m.ok(&[
            "s3", "bucket", "migrate", "update", "--bucket", BUCKET, "--mode", "migrate",
        ]);
        let job = m.ok(&[
            "job",
            "start",
            "migrate",
            "--src-url",
            &m.source.endpoint,
            "--src-bucket",
            BUCKET,
            "--src-key",
            &m.source.access_key,
            "--src-region",
            &m.source.region,
            "--src-secret-file",
            &m.source_secret,
            "--src-list",
            "--dest-url",
            &m.target.endpoint,
            "--dest-bucket",
            BUCKET,
            "--dest-key",
            &m.target.access_key,
            "--dest-region",
            &m.target.region,
            "--dest-secret-file",
            &m.target_secret,
            "--delete-journal",
            JOURNAL,
        ]);
        let id = job["id"].as_u64().unwrap();
        let done = m
            .agent
            .wait_state(id, "completed", Duration::from_secs(180));
        assert_eq!(done["passes"][0]["objects"]["copied"], KEYS, "{done:#}");
        m
    }

    /// `ferryctl --output json ARGS…` against this proxy and agent.
    fn ctl(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferryctl"));
        cmd.arg("--socket")
            .arg(&self.proxy.socket)
            .arg("--agent-socket")
            .arg(&self.agent.socket)
            .args(["--output", "json"])
            .args(args);
        let out = run(cmd, "");
        eprintln!("ferryctl {args:?}: exit {}\n{}", out.code, out.stderr);
        out
    }

    fn ok(&self, args: &[&str]) -> serde_json::Value {
        self.ctl(args).ok().json()
    }

    /// Every key and its bytes, as `client` lists and reads the bucket.
    fn contents(&self, client: &aws_sdk_s3::Client) -> BTreeMap<String, Vec<u8>> {
        self.rt.block_on(async {
            let mut out = BTreeMap::new();
            let mut pages = client
                .list_objects_v2()
                .bucket(BUCKET)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                for o in page.unwrap().contents() {
                    let k = o.key().unwrap().to_owned();
                    let body = get_bytes(client, BUCKET, &k).await.unwrap();
                    out.insert(k, body.to_vec());
                }
            }
            out
        })
    }

    fn put(&self, client: &aws_sdk_s3::Client, key: &str, body: &[u8]) {
        self.rt
            .block_on(
                client
                    .put_object()
                    .bucket(BUCKET)
                    .key(key)
                    .body(ByteStream::from(body.to_vec()))
                    .send(),
            )
            .unwrap();
    }

    fn delete(&self, client: &aws_sdk_s3::Client, key: &str) {
        self.rt
            .block_on(client.delete_object().bucket(BUCKET).key(key).send())
            .unwrap();
    }
}

fn key(i: u64) -> String {
    format!("k/{i:04}")
}

#[test]
fn verify_finds_planted_differences_and_passes_after_repair() {
    let m = Migration::copied();
    let client = m.proxy.client(&m.source.region);
    // Clients in migrate mode: a rewrite, a new key and a delete, each
    // accounted for by verify, never reported.
    m.put(&client, &key(7), b"a client's rewrite");
    m.put(&client, "new/one", b"a client's new key");
    m.delete(&client, &key(9));
    // Planted behind the proxy: a key lost on the target, a key altered
    // on the source after the copy, and a key deleted on the source after
    // the copy (the target keeps the copier's copy: an extra).
    m.delete(&m.target.client(), &key(3));
    m.put(&m.source.client(), &key(5), b"altered on the source");
    m.delete(&m.source.client(), &key(12));

    let failed = m.ctl(&["verify", BUCKET]);
    assert_eq!(failed.code, 1, "{failed:?}");
    let report = failed.json();
    assert_eq!(report["ok"], false, "{report:#}");
    assert_eq!(report["recorded"], false, "{report:#}");
    let v = &report["verify"];
    let classes = v["problems_by_class"].as_object().unwrap();
    assert_eq!(classes.get("missing"), Some(&1.into()), "{v:#}");
    assert_eq!(classes.get("extra"), Some(&1.into()), "{v:#}");
    assert_eq!(
        classes.get("size").or(classes.get("etag")),
        Some(&1.into()),
        "{v:#}"
    );
    assert_eq!(
        classes.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        3,
        "{v:#}"
    );
    assert_eq!(v["client_newer"], 1, "{v:#}");
    assert_eq!(v["client_new"], 1, "{v:#}");
    let named: Vec<(&str, &str)> = v["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["key"].as_str().unwrap(), p["class"].as_str().unwrap()))
        .collect();
    assert!(named.contains(&(&key(3), "missing")), "{named:?}");
    assert!(named.contains(&(&key(12), "extra")), "{named:?}");
    assert!(named.iter().any(|(k, _)| *k == key(5)), "{named:?}");

    // Not verified: detach is refused without --force.
    let refused = m
        .ctl(&["s3", "bucket", "migrate", "detach", BUCKET])
        .refused();
    assert!(refused.stderr.contains("ferryctl verify"), "{refused:?}");

    let repaired = m.ok(&["verify", BUCKET, "--repair"]);
    assert_eq!(repaired["ok"], true, "{repaired:#}");
    assert_eq!(repaired["recorded"], true, "{repaired:#}");
    let shown = m.ok(&["s3", "bucket", "migrate", "show", BUCKET]);
    assert!(shown["verified_at"].is_string(), "{shown:#}");

    // The target now holds what clients see: the source's objects, the
    // clients' writes, not the deleted keys.
    let target = m.contents(&m.target.client());
    let source = m.contents(&m.source.client());
    assert_eq!(target.get(&key(3)), source.get(&key(3)));
    assert_eq!(target[&key(5)], b"altered on the source");
    assert!(!target.contains_key(&key(12)), "the extra copy stayed");
    assert!(!target.contains_key(&key(9)), "a client's delete came back");
    assert_eq!(target[&key(7)], b"a client's rewrite");
    assert_eq!(target["new/one"], b"a client's new key");

    let detached = m.ok(&["s3", "bucket", "migrate", "detach", BUCKET]);
    assert_eq!(detached["bucket"], BUCKET);
}

#[test]
fn rollback_from_migrate_mode_leaves_the_source_as_clients_saw_the_bucket() {
    let m = Migration::copied();
    let client = m.proxy.client(&m.source.region);
    m.put(&client, &key(1), b"rewritten in migrate mode");
    m.put(&client, "new/a", b"new in migrate mode");
    m.put(&client, "new/b", b"new, then deleted");
    m.delete(&client, "new/b");
    m.delete(&client, &key(2));
    let seen = m.contents(&client);
    assert!(!seen.contains_key(&key(2)) && seen.contains_key("new/a"));

    // A plan without --run changes nothing and names the client writes.
    let plan = m.ok(&["rollback", "plan", BUCKET]);
    assert_eq!(plan["client_newer"], 1, "{plan:#}");
    assert_eq!(plan["client_new"], 1, "{plan:#}");
    assert!(plan["reverse"].is_null(), "{plan:#}");
    // --run needs the bucket blocked.
    m.ctl(&["rollback", "plan", BUCKET, "--run"]).refused();

    let blocked = m.ok(&["s3", "bucket", "migrate", "block", BUCKET]);
    assert_eq!(blocked["blocked"], true, "{blocked:#}");
    let err =
        m.rt.block_on(client.get_object().bucket(BUCKET).key(key(4)).send())
            .expect_err("a blocked bucket serves no client");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(503),
        "{err:?}"
    );

    let ran = m.ok(&["rollback", "plan", BUCKET, "--run"]);
    assert_eq!(ran["reverse"]["state"], "completed", "{ran:#}");
    assert_eq!(
        m.contents(&m.source.client()),
        seen,
        "the source is not what clients saw"
    );

    let back = m.ok(&[
        "s3", "bucket", "migrate", "update", "--bucket", BUCKET, "--mode", "ready", "--force",
    ]);
    assert_eq!(back["changes"][0]["to"], "ready", "{back:#}");
    let open = m.ok(&["s3", "bucket", "migrate", "unblock", BUCKET]);
    assert_eq!(open["blocked"], false, "{open:#}");
    m.ok(&["s3", "bucket", "migrate", "detach", BUCKET]);
}

/// Detach from migrate mode also waits for the multipart uploads begun on
/// the source before the switch (their parts and completion still go
/// there): refused while one is open, allowed once it has ended.
#[test]
fn detach_waits_for_an_upload_begun_on_the_source() {
    let rt = rt();
    let source = Store::garage().unwrap();
    source.create_bucket(BUCKET).unwrap();
    let target = Store::moto().unwrap();
    target.create_bucket(BUCKET).unwrap();
    target.create_bucket(JOURNAL).unwrap();
    let proxy = Proxy::start_with(
        &target,
        BUCKET,
        &format!("journal_bucket = \"{JOURNAL}\"\n"),
    );
    proxy.attach(BUCKET, &source);
    proxy.set_mode(BUCKET, "forward");
    let upload = rt
        .block_on(
            source
                .client()
                .create_multipart_upload()
                .bucket(BUCKET)
                .key("big/one")
                .send(),
        )
        .unwrap();
    let upload_id = upload.upload_id().unwrap().to_owned();
    proxy.set_mode(BUCKET, "migrate");
    // As a passing `ferryctl verify` records it.
    ferry_control::Client::new(&proxy.socket)
        .mark(
            BUCKET,
            &ferry_control::Mark::Verified(ferry_control::VerifiedRequest {
                summary: "test".into(),
                share: None,
            }),
        )
        .unwrap();
    let detach = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferryctl"));
        cmd.arg("--socket")
            .arg(&proxy.socket)
            .args(["s3", "bucket", "migrate", "detach", BUCKET]);
        run(cmd, "")
    };
    let refused = detach().refused();
    assert!(
        refused
            .stderr
            .contains("1 multipart uploads begun on the source"),
        "{refused:?}"
    );
    rt.block_on(
        source
            .client()
            .abort_multipart_upload()
            .bucket(BUCKET)
            .key("big/one")
            .upload_id(&upload_id)
            .send(),
    )
    .unwrap();
    detach().ok();
}
