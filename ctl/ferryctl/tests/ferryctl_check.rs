//! `ferryctl check tls` against a real ferry-proxy serving certificates by
//! SNI, and `ferryctl check dns` against a DNS server on loopback whose
//! records the test sets and flips.

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use ferry_harness::dns::DnsServer;
use ferry_harness::ferryctl::{Run, run};
use ferry_harness::proxy::Proxy;
use ferry_harness::tls::TestIssuer;
use ferry_harness::{Store, free_port};

const FERRYCTL: &str = env!("CARGO_BIN_EXE_ferryctl");

fn ferryctl(args: &[&str]) -> Run {
    let mut cmd = Command::new(FERRYCTL);
    cmd.args(args);
    run(cmd, "")
}

/// The item named `name` in a `--output json` report.
fn item(report: &serde_json::Value, name: &str) -> serde_json::Value {
    report["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no item {name:?} in {report:#}"))
}

#[track_caller]
fn assert_item(report: &serde_json::Value, name: &str, status: &str, detail: &str) {
    let i = item(report, name);
    assert_eq!(i["status"], status, "{name}: {report:#}");
    assert!(
        i["detail"].as_str().is_some_and(|d| d.contains(detail)),
        "{name}: {detail:?} in {report:#}"
    );
}

#[test]
fn check_tls_passes_a_covering_certificate_and_fails_a_missing_san_or_an_expired_one() {
    let target = Store::moto().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let ca = TestIssuer::new(dir.path(), "check").unwrap();
    // The proxy serves, by SNI, the first certificate covering the name,
    // else the first one (by file name): `a-good.pem`.
    let install = |file: &str, names: &[&str], days: std::ops::Range<i64>| {
        std::fs::write(certs.join(file), ca.leaf_pem(names, days).unwrap()).unwrap();
    };
    install(
        "a-good.pem",
        &["photos.s3.ferry.test", "s3.ferry.test"],
        -1..90,
    );
    install("b-expired.pem", &["old.s3.ferry.test"], -30..-2);
    install("c-soon.pem", &["soon.s3.ferry.test"], -80..5);
    let port = free_port().unwrap();
    let _proxy = Proxy::start_with(
        &target,
        "photos",
        &format!(
            "https_addr = \"127.0.0.1:{port}\"\ncert_dir = \"{}\"\n",
            certs.display()
        ),
    );
    let endpoint = format!("127.0.0.1:{port}");
    let ca_file = ca.ca.to_str().unwrap();
    let check = |names: &str, ca_file: &str| {
        ferryctl(&[
            "--output",
            "json",
            "check",
            "tls",
            &endpoint,
            "--names",
            names,
            "--ca-file",
            ca_file,
        ])
    };

    // Covering, trusted, valid: every item passes, exit 0.
    let out = check("photos.s3.ferry.test,s3.ferry.test", ca_file).ok();
    let report = out.json();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["items"].as_array().unwrap().len(), 6, "{report:#}");
    for name in ["photos.s3.ferry.test", "s3.ferry.test"] {
        assert_item(&report, &format!("{name}: chain"), "pass", "trusted");
        assert_item(&report, &format!("{name}: san"), "pass", name);
        assert_item(&report, &format!("{name}: validity"), "pass", "valid until");
    }

    // A name no certificate covers: the SAN item fails and says what the
    // served certificate does cover; exit 1.
    let out = check("photos.s3.ferry.test,videos.s3.ferry.test", ca_file).refused();
    let report = out.json();
    assert_eq!(report["ok"], false, "{report:#}");
    assert_item(&report, "photos.s3.ferry.test: san", "pass", "covers");
    assert_item(
        &report,
        "videos.s3.ferry.test: san",
        "fail",
        "does not cover videos.s3.ferry.test; its SAN holds: DNS:photos.s3.ferry.test, DNS:s3.ferry.test",
    );
    assert!(out.stderr.contains("videos.s3.ferry.test: san"), "{out:?}");

    // Expired: the validity item fails (the chain itself is still trusted).
    let report = check("old.s3.ferry.test", ca_file).refused().json();
    assert_item(&report, "old.s3.ferry.test: validity", "fail", "expired at");
    assert_item(&report, "old.s3.ferry.test: chain", "pass", "trusted");

    // Five days left: a warning, not a failure (exit 0).
    let report = check("soon.s3.ferry.test", ca_file).ok().json();
    assert_item(
        &report,
        "soon.s3.ferry.test: validity",
        "warn",
        "renew it before then",
    );

    // Another CA: the chain fails.
    let other = TestIssuer::new(dir.path(), "other").unwrap();
    let report = check("photos.s3.ferry.test", other.ca.to_str().unwrap())
        .refused()
        .json();
    assert_item(
        &report,
        "photos.s3.ferry.test: chain",
        "fail",
        "not trusted by",
    );

    // Nothing listening: the handshake item fails with the reason.
    let closed = format!("127.0.0.1:{}", free_port().unwrap());
    let out = ferryctl(&["check", "tls", &closed, "--names", "s3.ferry.test"]).refused();
    assert!(out.stdout.contains("s3.ferry.test: handshake"), "{out:?}");
    assert!(out.stdout.contains("result: FAIL"), "{out:?}");
}

const HOST: &str = "photos.s3.ferry.test";
const SOURCE_RECORD: &str = "photos-src.s3.ferry.test";
const TARGET_RECORD: &str = "photos-dst.s3.ferry.test";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The records as they should be after the cutover's DNS step.
fn cut_over(dns: &DnsServer) {
    dns.set(HOST, &[ip("127.0.0.21"), ip("127.0.0.22")], 30);
    dns.set(SOURCE_RECORD, &[ip("127.0.0.11")], 300);
    dns.set(TARGET_RECORD, &[ip("127.0.0.21"), ip("127.0.0.22")], 300);
}

fn check_dns(dns: &DnsServer, extra: &[&str]) -> Run {
    let ns = dns.addr().to_string();
    let mut args = vec![
        "--output",
        "json",
        "check",
        "dns",
        HOST,
        "--target-ips",
        "127.0.0.21,127.0.0.22",
        "--source-record",
        SOURCE_RECORD,
        "--source-ips",
        "127.0.0.11",
        "--target-record",
        TARGET_RECORD,
        "--nameserver",
        &ns,
    ];
    args.extend_from_slice(extra);
    ferryctl(&args)
}

#[test]
fn check_dns_passes_correct_records_and_names_each_fault() {
    let dns = DnsServer::start().unwrap();
    cut_over(&dns);
    let report = check_dns(&dns, &[]).ok().json();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_item(
        &report,
        &format!("{HOST}: answers"),
        "pass",
        "127.0.0.21, 127.0.0.22",
    );
    assert_item(&report, &format!("{HOST}: ttl"), "pass", "TTL 30 s");
    assert_item(
        &report,
        &format!("{SOURCE_RECORD}: persistent record"),
        "pass",
        "127.0.0.11",
    );
    assert_item(
        &report,
        &format!("{TARGET_RECORD}: persistent record"),
        "pass",
        "127.0.0.21",
    );

    // A stale A record: one answer still on the source.
    dns.set(HOST, &[ip("127.0.0.21"), ip("127.0.0.11")], 30);
    let report = check_dns(&dns, &[]).refused().json();
    assert_item(
        &report,
        &format!("{HOST}: answers"),
        "fail",
        "127.0.0.11 not a target IP",
    );
    cut_over(&dns);

    // A high TTL.
    dns.set(HOST, &[ip("127.0.0.21")], 3600);
    let report = check_dns(&dns, &[]).refused().json();
    assert_item(
        &report,
        &format!("{HOST}: ttl"),
        "fail",
        "TTL 3600 s is above 30 s",
    );
    assert_item(&report, &format!("{HOST}: answers"), "pass", "127.0.0.21");
    // …which a higher limit accepts.
    check_dns(&dns, &["--max-ttl", "3600"]).ok();
    cut_over(&dns);

    // A persistent record moved: the source's now points at the target.
    dns.set(SOURCE_RECORD, &[ip("127.0.0.21")], 300);
    let report = check_dns(&dns, &[]).refused().json();
    assert_item(
        &report,
        &format!("{SOURCE_RECORD}: persistent record"),
        "fail",
        "127.0.0.21 not a source IP",
    );
    cut_over(&dns);

    // A name that does not resolve at all.
    let ns = dns.addr().to_string();
    let out = ferryctl(&[
        "check",
        "dns",
        "nothing.s3.ferry.test",
        "--target-ips",
        "127.0.0.21",
        "--nameserver",
        &ns,
    ])
    .refused();
    assert!(out.stdout.contains("does not resolve"), "{out:?}");
}

#[test]
fn check_dns_watch_passes_once_the_record_flips() {
    let dns = DnsServer::start().unwrap();
    cut_over(&dns);
    dns.set(HOST, &[ip("127.0.0.11")], 30);

    // Without the flip, --watch gives up at its timeout, failing.
    let out = check_dns(&dns, &["--watch", "--interval", "1", "--timeout", "2"]).refused();
    assert_item(
        &out.json(),
        &format!("{HOST}: answers"),
        "fail",
        "127.0.0.11",
    );

    let watcher = std::thread::scope(|s| {
        let watcher =
            s.spawn(|| check_dns(&dns, &["--watch", "--interval", "1", "--timeout", "60"]));
        std::thread::sleep(Duration::from_secs(3));
        assert!(!watcher.is_finished(), "--watch returned before the flip");
        dns.set(HOST, &[ip("127.0.0.21"), ip("127.0.0.22")], 30);
        watcher.join().unwrap()
    });
    let report = watcher.ok().json();
    assert_eq!(report["ok"], true, "{report:#}");
}

#[test]
fn completions_and_man_pages_come_from_the_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let out = ferryctl(&["generate", "completions", shell]).ok();
        for word in ["retry", "check", "dns", "--target-ips", "--output"] {
            assert!(out.stdout.contains(word), "{shell}: {word:?} missing");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man1");
    ferryctl(&["generate", "man", man.to_str().unwrap()]).ok();
    let page = |name: &str| {
        std::fs::read_to_string(man.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    assert!(page("ferryctl.1").contains("Exit codes"));
    for (name, flag) in [
        ("ferryctl-check-tls.1", "\\-\\-names"),
        ("ferryctl-check-dns.1", "\\-\\-watch"),
        ("ferryctl-job-retry.1", "failed"),
        ("ferryctl-s3-bucket-migrate-update.1", "\\-\\-mode"),
    ] {
        let text = page(name);
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{name}: not roff"
        );
        assert!(text.contains(flag), "{name}: {flag:?} missing:\n{text}");
    }
}

/// `ferryctl --socket PROXY --output json ARGS…`.
fn via(proxy: &Proxy, args: &[&str]) -> Run {
    let mut cmd = Command::new(FERRYCTL);
    cmd.arg("--socket")
        .arg(&proxy.socket)
        .args(["--output", "json"])
        .args(args);
    run(cmd, "")
}

fn users_file(proxy: &Proxy) -> String {
    proxy
        .dir
        .path()
        .join("users.toml")
        .to_str()
        .unwrap()
        .to_owned()
}

fn keys(store: &Store, bucket: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(ferry_harness::list_keys(&store.client(), bucket))
        .unwrap()
}

#[test]
fn check_forward_passes_in_forward_mode_and_names_the_failing_step_in_ready_mode() {
    // moto as the source takes the client user's own key, as a source does
    // until access is restricted.
    let source = Store::moto().unwrap();
    source.create_bucket("photos").unwrap();
    let target = Store::moto().unwrap();
    target.create_bucket("photos").unwrap();
    let proxy = Proxy::start(&target, "photos");
    proxy.attach("photos", &source);
    let users = users_file(&proxy);
    let check = || {
        via(
            &proxy,
            &[
                "check",
                "forward",
                "photos",
                "--proxy",
                &proxy.http,
                "--hostnames",
                "photos.s3.ferry.test,s3.ferry.test",
                "--users-file",
                &users,
            ],
        )
    };

    // Ready mode: the probe lands on the target, not the source.
    let report = check().refused().json();
    assert_item(&report, "mode", "fail", "ready mode");
    assert_item(
        &report,
        "photos.s3.ferry.test: on source",
        "fail",
        "did not reach the source",
    );
    assert!(
        keys(&target, "photos").is_empty(),
        "probe left on the target"
    );

    proxy.set_mode("photos", "forward");
    let report = check().ok().json();
    for host in ["photos.s3.ferry.test", "s3.ferry.test"] {
        for step in [
            "write",
            "read",
            "list",
            "on source",
            "delete",
            "deleted on source",
        ] {
            assert_eq!(
                item(&report, &format!("{host}: {step}"))["status"],
                "pass",
                "{report:#}"
            );
        }
    }
    assert!(
        keys(&source, "photos").is_empty(),
        "probe left on the source"
    );
    assert!(
        keys(&target, "photos").is_empty(),
        "probe left on the target"
    );
}

/// `check restricted photos` through `proxy`, as its users file's alice.
fn check_restricted(proxy: &Proxy) -> Run {
    let users = users_file(proxy);
    via(
        proxy,
        &[
            "check",
            "restricted",
            "photos",
            "--proxy",
            &proxy.http,
            "--users-file",
            &users,
        ],
    )
}

#[test]
fn check_restricted_fails_while_the_source_takes_client_writes_and_then_migrate_needs_force() {
    // moto takes any key: clients can still write the source.
    let open = Store::moto().unwrap();
    open.create_bucket("photos").unwrap();
    let target = Store::moto().unwrap();
    target.create_bucket("photos").unwrap();
    // Migrate mode needs the delete journal's bucket on the target.
    target.create_bucket("ferry-journal").unwrap();
    let journal = "journal_bucket = \"ferry-journal\"\n";
    let proxy = Proxy::start_with(&target, "photos", journal);
    proxy.attach("photos", &open);
    proxy.set_mode("photos", "forward");
    let users = users_file(&proxy);
    let report = check_restricted(&proxy).refused().json();
    assert_item(
        &report,
        "client write to source",
        "fail",
        "the source accepted client user alice's write",
    );
    assert_item(
        &report,
        "migration credentials",
        "pass",
        "reaches the source",
    );
    assert!(
        keys(&open, "photos").is_empty(),
        "the probe was deleted again"
    );

    // update --mode migrate runs the check and refuses; --force switches.
    let update = |force: bool| {
        let mut args = vec![
            "s3",
            "bucket",
            "migrate",
            "update",
            "--bucket",
            "photos",
            "--mode",
            "migrate",
            "--users-file",
            &users,
        ];
        if force {
            args.push("--force");
        }
        via(&proxy, &args)
    };
    let out = update(false).refused();
    assert!(
        out.stderr.contains("not switching to migrate mode"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("accepted client user alice's write"),
        "{out:?}"
    );
    let show = via(&proxy, &["s3", "bucket", "migrate", "show", "photos"])
        .ok()
        .json();
    assert_eq!(show["mode"], "forward", "a refused update changes nothing");
    update(true).ok();

    // Garage knows no key of alice's: her write is refused (403), while
    // the proxy's migration key still works. The check passes, and so
    // does update --mode migrate.
    let closed = Store::garage().unwrap();
    closed.create_bucket("photos").unwrap();
    let proxy = Proxy::start_with(&target, "photos", journal);
    proxy.attach("photos", &closed);
    proxy.set_mode("photos", "forward");
    let users = users_file(&proxy);
    let report = check_restricted(&proxy).ok().json();
    assert_item(&report, "client write to source", "pass", "(403)");
    assert_item(
        &report,
        "migration credentials",
        "pass",
        "reaches the source",
    );
    via(
        &proxy,
        &[
            "s3",
            "bucket",
            "migrate",
            "update",
            "--bucket",
            "photos",
            "--mode",
            "migrate",
            "--users-file",
            &users,
        ],
    )
    .ok();
}
