//! docs/runbook.md, walked: one bucket's whole migration with the real
//! ferry-proxy (https by SNI, with a delete journal), the real ferry-agent,
//! a Garage source and a moto target, a DNS server on loopback, and every
//! step through `ferryctl --output json`, its answer parsed.

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use ferry_harness::agent::{Agent, live_copy_args, secret_file};
use ferry_harness::dns::DnsServer;
use ferry_harness::ferryctl::{Run, run};
use ferry_harness::proxy::Proxy;
use ferry_harness::s3migrate::{data, etags, garage_source, rt};
use ferry_harness::tls::TestIssuer;
use ferry_harness::{Store, free_port};

const BUCKET: &str = "photos";
const JOURNAL: &str = "ferry-journal";
const HOST: &str = "photos.s3.ferry.test";
const KEYS: u64 = 120;

/// `ferryctl --socket PROXY --agent-socket AGENT --output json ARGS…`,
/// parsed; exit 0 asserted.
fn step(proxy: &Proxy, agent: &Agent, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferryctl"));
    cmd.arg("--socket")
        .arg(&proxy.socket)
        .arg("--agent-socket")
        .arg(&agent.socket)
        .args(["--output", "json"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out: Run = run(cmd, "");
    eprintln!("ferryctl {args:?}: {}\n{}", out.code, out.stderr);
    out.ok().json()
}

#[track_caller]
fn passed(report: &serde_json::Value) {
    assert_eq!(report["ok"], true, "{report:#}");
    let items = report["items"].as_array().expect("a check's items");
    assert!(!items.is_empty(), "{report:#}");
    assert!(items.iter().all(|i| i["status"] == "pass"), "{report:#}");
}

#[test]
fn the_runbook_end_to_end() {
    let rt = rt();
    // Garage as the source: it knows no key of the client users', which is
    // how access to it is "restricted" here; moto as the target enforces
    // conditional writes.
    let source = garage_source(
        BUCKET,
        (0..KEYS).map(|i| (format!("p/{i:04}"), data(i, 2048))),
    );
    let target = Store::moto().unwrap();
    target.create_bucket(BUCKET).unwrap();
    target.create_bucket(JOURNAL).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ca = TestIssuer::new(dir.path(), "runbook").unwrap();
    let certs = ca
        .cert_dir(dir.path(), &[HOST, "s3.ferry.test"], -1..90)
        .unwrap();
    let https = free_port().unwrap();
    let metrics = free_port().unwrap();
    let proxy = Proxy::start_with(
        &target,
        BUCKET,
        &format!(
            "https_addr = \"127.0.0.1:{https}\"\ncert_dir = \"{}\"\njournal_bucket = \"{JOURNAL}\"\n\
             metrics_addr = \"127.0.0.1:{metrics}\"\n",
            certs.display()
        ),
    );
    let agent = Agent::start("");
    let users = proxy.dir.path().join("users.toml");
    let users = users.to_str().unwrap();
    let ca_file = ca.ca.to_str().unwrap();
    let endpoint = format!("127.0.0.1:{https}");
    let proxy_url = format!("https://{endpoint}");
    // The copier reads the source with a user that may only read.
    let (copier_key, copier_secret) = source.read_only_key(BUCKET).unwrap();
    let source_secret = secret_file(dir.path(), "source.secret", &copier_secret);
    let target_secret = secret_file(dir.path(), "target.secret", &target.secret_key);
    let ctl = |args: &[&str]| step(&proxy, &agent, args, &[]);
    let dns = DnsServer::start().unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    dns.set(HOST, &[ip("127.0.0.2")], 30);
    let ns = dns.addr().to_string();

    // Phase 1: preflight (the bucket is not attached yet), attach,
    // certificate, DNS records.
    let preflight = ctl(&[
        "check",
        "preflight",
        BUCKET,
        "--source-url",
        &source.endpoint,
        "--source-region",
        &source.region,
        "--source-key",
        &copier_key,
        "--source-secret-file",
        source_secret.to_str().unwrap(),
        "--target-url",
        &target.endpoint,
        "--target-region",
        &target.region,
        "--target-key",
        &target.access_key,
        "--target-secret-file",
        target_secret.to_str().unwrap(),
        "--journal-bucket",
        JOURNAL,
        "--users-file",
        users,
        "--tls-endpoint",
        &endpoint,
        "--names",
        &format!("{HOST},s3.ferry.test"),
        "--ca-file",
        ca_file,
        "--hostname",
        HOST,
        "--nameserver",
        &ns,
    ]);
    assert_eq!(preflight["ok"], true, "{preflight:#}");
    let failed_or_warned: Vec<&str> = preflight["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] != "pass")
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    // Reminders only: what S3 cannot tell, and what the read-only user
    // may not read.
    for name in &failed_or_warned {
        assert!(
            [
                "target free space",
                "users",
                "source lifecycle",
                "source policy"
            ]
            .contains(name),
            "{name}: {preflight:#}"
        );
    }
    proxy.attach(BUCKET, &source);
    let view = ctl(&["s3", "bucket", "migrate", "show", BUCKET]);
    assert_eq!(view["mode"], "ready");
    passed(&ctl(&[
        "check",
        "tls",
        &endpoint,
        "--names",
        "photos.s3.ferry.test,s3.ferry.test",
        "--ca-file",
        ca_file,
    ]));

    // Phase 2: forward mode, checked through the proxy by hostname, then
    // DNS moved to the target (the proxy's loopback address).
    let changes = ctl(&[
        "s3", "bucket", "migrate", "update", "--bucket", BUCKET, "--mode", "forward",
    ]);
    assert_eq!(changes["changes"][0]["to"], "forward", "{changes:#}");
    passed(&ctl(&[
        "check",
        "forward",
        BUCKET,
        "--proxy",
        &proxy_url,
        "--hostnames",
        &format!("{HOST},s3.ferry.test"),
        "--ca-file",
        ca_file,
        "--users-file",
        users,
        "--source-key",
        &copier_key,
        "--source-secret-file",
        source_secret.to_str().unwrap(),
    ]));
    dns.set(HOST, &[ip("127.0.0.1")], 30);
    dns.set("photos-src.s3.ferry.test", &[ip("127.0.0.2")], 300);
    dns.set("photos-dst.s3.ferry.test", &[ip("127.0.0.1")], 300);
    passed(&ctl(&[
        "check",
        "dns",
        HOST,
        "--target-ips",
        "127.0.0.1",
        "--source-record",
        "photos-src.s3.ferry.test",
        "--source-ips",
        "127.0.0.2",
        "--target-record",
        "photos-dst.s3.ferry.test",
        "--nameserver",
        &ns,
        "--watch",
        "--interval",
        "1",
        "--timeout",
        "30",
    ]));

    // Phase 3: the source idle but for the proxy, restriction checked,
    // migrate mode (which checks it again), clients write, the copy runs
    // on the agent.
    passed(&ctl(&[
        "check",
        "idle",
        BUCKET,
        "--proxy-metrics",
        &format!("http://127.0.0.1:{metrics}/metrics"),
        "--source-metrics",
        &source.metrics_url().unwrap(),
        "--seconds",
        "1",
    ]));
    let restricted = ctl(&[
        "check",
        "restricted",
        BUCKET,
        "--proxy",
        &proxy_url,
        "--hostname",
        HOST,
        "--ca-file",
        ca_file,
        "--users-file",
        users,
    ]);
    passed(&restricted);
    let changes = ctl(&[
        "s3",
        "bucket",
        "migrate",
        "update",
        "--bucket",
        BUCKET,
        "--mode",
        "migrate",
        "--users-file",
        users,
    ]);
    assert_eq!(changes["changes"][0]["to"], "migrate", "{changes:#}");
    let client = proxy.client(&source.region);
    let rewritten = b"written by a client in migrate mode".to_vec();
    rt.block_on(async {
        client
            .put_object()
            .bucket(BUCKET)
            .key("p/0007")
            .body(ByteStream::from(rewritten.clone()))
            .send()
            .await
            .unwrap();
        client
            .put_object()
            .bucket(BUCKET)
            .key("new/one")
            .body(ByteStream::from_static(b"new"))
            .send()
            .await
            .unwrap();
        client
            .delete_object()
            .bucket(BUCKET)
            .key("p/0011")
            .send()
            .await
            .unwrap();
    });

    // Before the copy a read falls back to the source; after it, the
    // target serves it.
    let read = |key: &str| {
        rt.block_on(ferry_harness::get_bytes(&client, BUCKET, key))
            .unwrap()
    };
    assert_eq!(read("p/0002"), data(2, 2048));

    let mut copy = live_copy_args(
        &source,
        (&copier_key, &source_secret),
        &target,
        &target_secret,
        BUCKET,
        JOURNAL,
    );
    copy.extend(["--passes", "2"].map(str::to_owned));
    let job = ctl(&copy.iter().map(String::as_str).collect::<Vec<_>>());
    let id = job["id"].as_u64().unwrap();
    let copy = agent.wait_state(id, "completed", Duration::from_secs(180));
    assert_eq!(copy["passes"][0]["objects"]["fail"], 0, "{copy:#}");
    assert_eq!(read("p/0003"), data(3, 2048));

    // The whole picture: the mode, the job and its progress line, the
    // reads by who served them.
    let status = ctl(&[
        "status",
        "--proxy-metrics",
        &format!("http://127.0.0.1:{metrics}/metrics"),
    ]);
    let b = &status["buckets"][0];
    assert_eq!(
        (&b["bucket"], &b["mode"]),
        (&BUCKET.into(), &"migrate".into()),
        "{status:#}"
    );
    assert_eq!(b["reads"]["source"], 1, "{status:#}");
    assert_eq!(b["reads"]["target"], 1, "{status:#}");
    let jobs = status["jobs"].as_array().unwrap();
    let line = jobs.iter().find(|j| j["id"] == id).expect("the copy job");
    assert_eq!(line["state"], "completed", "{status:#}");
    assert!(
        line["progress"].as_str().unwrap().starts_with("obj="),
        "{status:#}"
    );

    // Phase 4: verify (on the agent, recorded on the bucket), then detach,
    // which needs no --force after it.
    let verify = ctl(&["verify", BUCKET]);
    assert_eq!(verify["ok"], true, "{verify:#}");
    assert_eq!(verify["recorded"], true, "{verify:#}");
    assert_eq!(verify["verify"]["client_newer"], 1, "{verify:#}");
    assert_eq!(verify["verify"]["client_new"], 1, "{verify:#}");
    assert_eq!(verify["source_uploads_open"], 0, "{verify:#}");
    let detached = ctl(&["s3", "bucket", "migrate", "detach", BUCKET]);
    assert_eq!(detached["bucket"], BUCKET);
    let list = ctl(&["s3", "bucket", "migrate", "list"]);
    assert_eq!(list, serde_json::json!([]));

    // What clients see on the target alone: every source key, but the one
    // a client deleted; the client's rewrite and new key.
    let on_target = etags(&rt, &target.client(), BUCKET);
    let on_source = etags(&rt, &source.client(), BUCKET);
    assert!(
        !on_target.contains_key("p/0011"),
        "a client's delete came back"
    );
    assert!(on_target.contains_key("new/one"));
    for (k, v) in &on_source {
        if k == "p/0007" || k == "p/0011" {
            continue;
        }
        assert_eq!(on_target.get(k), Some(v), "{k}");
    }
    let got = rt.block_on(ferry_harness::get_bytes(&target.client(), BUCKET, "p/0007"));
    assert_eq!(
        got.unwrap(),
        rewritten,
        "the copy overwrote a client's write"
    );
}
