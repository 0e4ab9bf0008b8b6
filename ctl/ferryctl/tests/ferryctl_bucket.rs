//! `ferryctl s3 bucket migrate …` end to end: the real binary against the
//! proxy's real admin server (in-process, on a temp socket and state file).

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{FERRYCTL, Proxy, SECRET, TARGET_URL, run};
use ferry_control::{BucketView, Mode};

const SRC: &str = "http://127.0.0.1:9000";

fn update(p: &Proxy, args: &[&str]) -> common::Run {
    let mut all = vec!["s3", "bucket", "migrate", "update"];
    all.extend_from_slice(args);
    p.ferryctl(&all)
}

fn show_json(p: &Proxy, bucket: &str) -> BucketView {
    let out = p
        .ferryctl(&["s3", "bucket", "migrate", "show", bucket, "--json"])
        .ok();
    serde_json::from_str(&out.stdout).expect("show --json prints a BucketView")
}

#[test]
fn attach_then_show_never_reveals_the_secret() {
    let p = Proxy::start();
    let out = p.attach("photos", SRC).ok();
    assert!(out.stdout.contains("attached photos"), "{out:?}");
    p.assert_persisted();

    let text = p
        .ferryctl(&["s3", "bucket", "migrate", "show", "photos"])
        .ok();
    for want in ["photos", "ready", SRC, "AKSRC", "tls cert:", "none"] {
        assert!(text.stdout.contains(want), "{want:?} in {}", text.stdout);
    }
    assert!(!text.stdout.contains(SECRET), "{}", text.stdout);

    let json = p
        .ferryctl(&["s3", "bucket", "migrate", "show", "photos", "--json"])
        .ok();
    assert!(!json.stdout.contains(SECRET));
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert!(
        keys.iter().all(|k| !k.contains("secret")),
        "no secret field: {keys:?}"
    );
    assert_eq!(value["mode"], "ready");
    assert_eq!(value["source_bucket"], "photos");
    assert_eq!(value["source_region"], "us-east-1");
    assert_eq!(value["source_uploads_open"], 0);

    // The state file holds the secret (it must, to reach the source) and is
    // private.
    let mode = std::fs::metadata(&p.state_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(p.admin.table().buckets["photos"].source_secret, SECRET);
}

#[test]
fn attach_reads_the_secret_from_stdin_and_takes_source_and_region() {
    let p = Proxy::start();
    p.ferryctl_with_input(
        &[
            "s3",
            "bucket",
            "migrate",
            "attach",
            "logs",
            "https://source.example:9443",
            "-",
            "--source",
            "old-logs",
            "--region",
            "eu-west-1",
            "--s3-key",
            "AK2",
            "--s3-secret-stdin",
        ],
        "stdin-secret-value\n",
    )
    .ok();
    let v = show_json(&p, "logs");
    assert_eq!(v.source_bucket, "old-logs");
    assert_eq!(v.source_region, "eu-west-1");
    assert_eq!(v.source_url, "https://source.example:9443");
    assert_eq!(v.source_access_key, "AK2");
    assert_eq!(
        p.admin.table().buckets["logs"].source_secret,
        "stdin-secret-value"
    );
    p.assert_persisted();
}

#[test]
fn attach_embeds_a_pem_certificate() {
    let p = Proxy::start();
    let cert = p.dir.path().join("source.pem");
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let secret = p.secret_file.to_str().unwrap();
    p.ferryctl(&[
        "s3",
        "bucket",
        "migrate",
        "attach",
        "certs",
        "https://127.0.0.1:9443",
        cert.to_str().unwrap(),
        "--s3-key",
        "AK",
        "--s3-secret-file",
        secret,
    ])
    .ok();
    assert_eq!(show_json(&p, "certs").tls_cert, "embedded");
    p.assert_persisted();

    // A file that is not PEM is refused before anything is sent.
    std::fs::write(&cert, "not a certificate").unwrap();
    let out = p
        .ferryctl(&[
            "s3",
            "bucket",
            "migrate",
            "attach",
            "other",
            "https://127.0.0.1:9443",
            cert.to_str().unwrap(),
            "--s3-key",
            "AK",
            "--s3-secret-file",
            secret,
        ])
        .usage_error();
    assert!(out.stderr.contains("PEM"), "{out:?}");
}

#[test]
fn attach_twice_and_bad_names_are_refused() {
    let p = Proxy::start();
    p.attach("photos", SRC).ok();
    let out = p.attach("photos", "http://127.0.0.1:9001").refused();
    assert!(out.stderr.contains("already attached"), "{out:?}");
    let out = p.attach("Bad_Name", SRC).refused();
    assert!(out.stderr.contains("not valid"), "{out:?}");
    let out = p.attach("fine", "ftp://127.0.0.1").refused();
    assert!(out.stderr.contains("http or https"), "{out:?}");
    assert_eq!(show_json(&p, "photos").source_url, SRC);
    assert_eq!(p.admin.table().buckets.len(), 1);
    p.assert_persisted();
}

#[test]
fn update_goes_forward_then_migrate_and_survives_restart() {
    let p = Proxy::start();
    p.attach("photos", SRC).ok();
    let attached = show_json(&p, "photos");

    let out = update(&p, &["--bucket", "photos", "--mode", "forward"]).ok();
    assert_eq!(out.stdout.trim(), "photos: ready -> forward");
    p.assert_persisted();
    assert_eq!(p.reloaded().buckets["photos"].mode, Mode::Forward);

    let out = update(&p, &["--bucket", "photos", "--mode", "migrate"]).ok();
    assert_eq!(out.stdout.trim(), "photos: forward -> migrate");
    p.assert_persisted();
    let v = show_json(&p, "photos");
    assert_eq!(v.mode, Mode::Migrate);
    assert_eq!(v.attached_at, attached.attached_at);
    assert_eq!(v.source_uploads_open, 0);

    // Same mode again: no change, nothing rewritten.
    let before = std::fs::read(&p.state_file).unwrap();
    let out = update(&p, &["--bucket", "photos", "--mode", "migrate"]).ok();
    assert!(out.stdout.contains("already in migrate mode"), "{out:?}");
    assert_eq!(std::fs::read(&p.state_file).unwrap(), before);
}

#[test]
fn ready_to_migrate_must_pass_through_forward() {
    let p = Proxy::start();
    p.attach("photos", SRC).ok();
    for force in [false, true] {
        let mut args = vec!["--bucket", "photos", "--mode", "migrate"];
        if force {
            args.push("--force");
        }
        let out = update(&p, &args).refused();
        assert!(out.stderr.contains("forward mode first"), "{out:?}");
        assert!(out.stderr.contains("InvalidTransition"), "{out:?}");
    }
    // For scripts: the refusal as JSON on stdout, with the same exit code.
    let out = p
        .ferryctl(&[
            "--output", "json", "s3", "bucket", "migrate", "update", "--bucket", "photos",
            "--mode", "migrate",
        ])
        .refused();
    let json = out.json();
    assert_eq!(json["error"]["code"], "InvalidTransition", "{out:?}");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("forward mode first")),
        "{out:?}"
    );
    assert_eq!(json["exit_code"], 1, "{out:?}");
    assert_eq!(show_json(&p, "photos").mode, Mode::Ready);
    p.assert_persisted();
}

#[test]
fn migrate_to_ready_needs_force_and_explains_the_reverse_copy() {
    let p = Proxy::start();
    p.attach("photos", SRC).ok();
    update(&p, &["--bucket", "photos", "--mode", "forward"]).ok();
    update(&p, &["--bucket", "photos", "--mode", "migrate"]).ok();
    let before = p.reloaded();

    let out = update(&p, &["--bucket", "photos", "--mode", "ready"]).refused();
    let first = out.stderr.lines().next().unwrap();
    for want in [
        "reverse copy",
        "target -> source",
        "rollback plan",
        "--force",
        "ReverseCopyRequired",
    ] {
        assert!(
            first.contains(want),
            "{want:?} in the one-line refusal {first:?}"
        );
    }
    // …followed by the steps.
    for step in [
        "block BUCKET",
        "rollback plan BUCKET --run",
        "unblock BUCKET",
    ] {
        assert!(out.stderr.contains(step), "{step:?} in {}", out.stderr);
    }
    assert_eq!(show_json(&p, "photos").mode, Mode::Migrate);
    assert_eq!(p.reloaded(), before, "a refused update changes nothing");

    // migrate -> forward is the same rollback.
    let out = update(&p, &["--bucket", "photos", "--mode", "forward"]).refused();
    assert!(out.stderr.contains("reverse copy"), "{out:?}");

    let out = update(&p, &["--bucket", "photos", "--mode", "ready", "--force"]).ok();
    assert_eq!(out.stdout.trim(), "photos: migrate -> ready");
    p.assert_persisted();
    assert_eq!(p.reloaded().buckets["photos"].mode, Mode::Ready);
}

#[test]
fn forward_to_ready_is_a_plain_rollback() {
    let p = Proxy::start();
    p.attach("photos", SRC).ok();
    update(&p, &["--bucket", "photos", "--mode", "forward"]).ok();
    let out = update(&p, &["--bucket", "photos", "--mode", "ready"]).ok();
    assert_eq!(out.stdout.trim(), "photos: forward -> ready");
    p.assert_persisted();
}

#[test]
fn detach_rules() {
    let p = Proxy::start();
    let detach = |args: &[&str]| {
        let mut all = vec!["s3", "bucket", "migrate", "detach"];
        all.extend_from_slice(args);
        p.ferryctl(&all)
    };

    // Ready: allowed.
    p.attach("ready-one", SRC).ok();
    let out = detach(&["ready-one"]).ok();
    assert!(out.stdout.contains("detached ready-one"), "{out:?}");
    p.assert_persisted();
    assert!(p.reloaded().buckets.is_empty());

    // Forward: refused, with or without --force.
    p.attach("fwd", SRC).ok();
    update(&p, &["--bucket", "fwd", "--mode", "forward"]).ok();
    for args in [&["fwd"][..], &["fwd", "--force"][..]] {
        let out = detach(args).refused();
        assert!(out.stderr.contains("--mode ready"), "{out:?}");
        assert!(out.stderr.contains("DetachRefused"), "{out:?}");
    }
    assert_eq!(p.reloaded().buckets["fwd"].mode, Mode::Forward);

    // Migrate: only with --force (verify is a later feature).
    update(&p, &["--bucket", "fwd", "--mode", "migrate"]).ok();
    let out = detach(&["fwd"]).refused();
    assert!(out.stderr.contains("verify"), "{out:?}");
    assert!(out.stderr.contains("--force"), "{out:?}");
    assert!(p.reloaded().buckets.contains_key("fwd"));
    detach(&["fwd", "--force"]).ok();
    p.assert_persisted();
    assert!(p.reloaded().buckets.is_empty());

    // Not attached.
    let out = detach(&["never-attached"]).refused();
    assert!(out.stderr.contains("not attached"), "{out:?}");
}

#[test]
fn list_and_update_by_url_and_all() {
    let p = Proxy::start();
    let other = "http://127.0.0.1:9001";
    p.attach("alpha", SRC).ok();
    p.attach("beta", &format!("{SRC}/")).ok();
    p.attach("gamma", other).ok();

    let out = p.ferryctl(&["s3", "bucket", "migrate", "list"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "header and three rows: {}", out.stdout);
    assert!(lines[0].starts_with("BUCKET") && lines[0].contains("MODE"));
    for (line, name) in lines[1..].iter().zip(["alpha", "beta", "gamma"]) {
        assert!(line.starts_with(name) && line.contains("ready"), "{line}");
    }

    // --url picks the buckets of one source (a trailing / does not matter).
    let out = update(&p, &["--url", &format!("{SRC}/"), "--mode", "forward"]).ok();
    assert_eq!(
        out.stdout,
        "alpha: ready -> forward\nbeta: ready -> forward\n"
    );
    p.assert_persisted();

    // --all is all or nothing: gamma may not skip forward, so nobody moves.
    let out = update(&p, &["--all", "--mode", "migrate"]).refused();
    assert!(out.stderr.contains("bucket gamma"), "{out:?}");
    let list = p
        .ferryctl(&["s3", "bucket", "migrate", "list", "--json"])
        .ok();
    let views: Vec<BucketView> = serde_json::from_str(&list.stdout).unwrap();
    let modes: Vec<(&str, Mode)> = views.iter().map(|v| (v.bucket.as_str(), v.mode)).collect();
    assert_eq!(
        modes,
        [
            ("alpha", Mode::Forward),
            ("beta", Mode::Forward),
            ("gamma", Mode::Ready)
        ]
    );
    assert!(!list.stdout.contains(SECRET));

    let out = update(&p, &["--all", "--mode", "forward"]).ok();
    assert!(
        out.stdout.contains("alpha: already in forward mode"),
        "{out:?}"
    );
    assert!(out.stdout.contains("gamma: ready -> forward"), "{out:?}");
    p.assert_persisted();

    let out = update(&p, &["--url", "http://10.0.0.1:1", "--mode", "ready"]).refused();
    assert!(
        out.stderr.contains("no attached bucket has source URL"),
        "{out:?}"
    );

    // The seed's rollback step: the target's own URL selects every bucket.
    let out = update(&p, &["--url", &format!("{TARGET_URL}/"), "--mode", "ready"]).ok();
    assert_eq!(
        out.stdout,
        "alpha: forward -> ready\nbeta: forward -> ready\ngamma: forward -> ready\n"
    );
    p.assert_persisted();
}

#[test]
fn failed_save_answers_an_error_and_changes_nothing() {
    let p = Proxy::start();
    p.attach("photos", SRC).ok();
    let before = p.admin.table();

    // The state folder becomes a regular file: every save now fails
    // (ENOTDIR), even for root.
    let state_dir = p.state_file.parent().unwrap();
    let moved = p.dir.path().join("state.moved");
    std::fs::rename(state_dir, &moved).unwrap();
    std::fs::write(state_dir, "in the way").unwrap();

    let out = update(&p, &["--bucket", "photos", "--mode", "forward"]).refused();
    assert!(out.stderr.contains("StateSaveFailed"), "{out:?}");
    assert!(out.stderr.contains("nothing changed"), "{out:?}");
    assert!(
        out.stderr.contains("buckets.json"),
        "names the file: {out:?}"
    );
    let out = p.attach("more", SRC).refused();
    assert!(out.stderr.contains("StateSaveFailed"), "{out:?}");
    let out = p
        .ferryctl(&["s3", "bucket", "migrate", "detach", "photos"])
        .refused();
    assert!(out.stderr.contains("StateSaveFailed"), "{out:?}");

    assert_eq!(show_json(&p, "photos").mode, Mode::Ready);
    assert_eq!(p.admin.table(), before, "the served table is unchanged");
    assert_eq!(
        common::reload(&moved.join("buckets.json")),
        *before,
        "and so is the saved one"
    );

    // Once the folder is back, changes are saved again.
    std::fs::remove_file(state_dir).unwrap();
    std::fs::rename(&moved, state_dir).unwrap();
    update(&p, &["--bucket", "photos", "--mode", "forward"]).ok();
    p.assert_persisted();
}

#[test]
fn usage_errors_exit_2_and_an_unreachable_daemon_3() {
    let p = Proxy::start();
    // No selector; two selectors; a bad mode.
    update(&p, &["--mode", "forward"]).usage_error();
    update(&p, &["--mode", "forward", "--all", "--bucket", "b"]).usage_error();
    update(&p, &["--mode", "sideways", "--all"]).usage_error();

    // The secret never goes on the command line.
    let out = p
        .ferryctl(&[
            "s3",
            "bucket",
            "migrate",
            "attach",
            "b1",
            SRC,
            "none",
            "--s3-key",
            "AK",
            "--s3-secret",
            "shown-in-ps",
        ])
        .usage_error();
    assert!(out.stderr.contains("--s3-secret-file"), "{out:?}");
    // No secret at all, or an empty one.
    p.ferryctl(&[
        "s3", "bucket", "migrate", "attach", "b1", SRC, "none", "--s3-key", "AK",
    ])
    .usage_error();
    let out = p
        .ferryctl_with_input(
            &[
                "s3",
                "bucket",
                "migrate",
                "attach",
                "b1",
                SRC,
                "none",
                "--s3-key",
                "AK",
                "--s3-secret-stdin",
            ],
            "\n",
        )
        .usage_error();
    assert!(out.stderr.contains("empty"), "{out:?}");
    assert!(p.admin.table().buckets.is_empty());

    // Nothing listening: exit 3, the socket named, and a hint.
    for args in [
        &["s3", "bucket", "migrate", "list"][..],
        &["job", "list"][..],
    ] {
        let mut cmd = std::process::Command::new(FERRYCTL);
        cmd.args(["--socket", "/nonexistent/ferry.sock"])
            .args(["--agent-socket", "/nonexistent/ferry.sock"])
            .args(args);
        let out = run(cmd, "").unreachable();
        assert!(
            out.stderr
                .contains("cannot connect to /nonexistent/ferry.sock"),
            "{out:?}"
        );
        assert!(out.stderr.contains("is the service running?"), "{out:?}");
    }
    // With --output json the failure is also JSON on stdout.
    let mut cmd = std::process::Command::new(FERRYCTL);
    cmd.args(["--socket", "/nonexistent/ferry.sock", "--output", "json"])
        .args(["s3", "bucket", "migrate", "show", "photos"]);
    let out = run(cmd, "").unreachable();
    let json = out.json();
    assert_eq!(json["error"]["code"], "Unreachable", "{out:?}");
    assert_eq!(json["exit_code"], 3, "{out:?}");

    // Job control needs a verb.
    p.ferryctl(&["job"]).usage_error();
}

#[test]
fn socket_comes_from_the_environment() {
    let p = Proxy::start();
    p.attach("photos", SRC).ok();
    let mut cmd = std::process::Command::new(FERRYCTL);
    cmd.args(["s3", "bucket", "migrate", "list", "--json"])
        .env("FERRY_PROXY_SOCKET", &p.socket);
    let out = run(cmd, "").ok();
    assert!(out.stdout.contains("\"photos\""), "{out:?}");
}
