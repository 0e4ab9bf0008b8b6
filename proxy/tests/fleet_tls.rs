//! A fleet on an etcd that serves its clients over TLS, asks them for a
//! certificate, and has auth enabled: the proxy and ferryctl reach it with
//! the `[state]` section's `etcd_ca_file`, `etcd_cert_file`/`etcd_key_file`,
//! `etcd_user` and `etcd_password_file`; a wrong password and a password
//! file others can read are refused, each saying so.

// A test runs no request path: proxy/clippy.toml's rule against
// blocking file calls is not for it.
#![allow(clippy::disallowed_methods)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use ferry_harness::Store;
use ferry_harness::etcd::{EtcdCluster, EtcdTls};
use ferry_harness::proxy::migrate::{BUCKET, JOURNAL, contents, status};
use ferry_harness::proxy::{Proxy, free_port, launch, output_within, write_private};
use ferry_harness::tls::{TestCa, test_ca};

const PASSWORD: &str = "etcd-root-password-0123456789";

/// The `[state]` lines that reach `etcd` over TLS as `root` with the
/// password in `password_file` (no `member_id`).
fn state_lines(etcd: &EtcdCluster, ca: &TestCa, password_file: &Path) -> String {
    let list: Vec<String> = etcd
        .endpoints()
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect();
    format!(
        "etcd_endpoints = [{}]\netcd_ca_file = \"{}\"\netcd_cert_file = \"{}\"\n\
         etcd_key_file = \"{}\"\netcd_user = \"root\"\netcd_password_file = \"{}\"\n\
         lease_ttl_secs = 3\n",
        list.join(", "),
        ca.ca.display(),
        ca.cert.display(),
        ca.key.display(),
        password_file.display()
    )
}

/// etcd-client's options for the test's own client: the CA, and the
/// members' certificate as the client's (they ask for one).
fn tls_options(ca: &TestCa) -> etcd_client::ConnectOptions {
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap();
    etcd_client::ConnectOptions::new().with_tls(
        etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(read(&ca.ca)))
            .identity(etcd_client::Identity::from_pem(
                read(&ca.cert),
                read(&ca.key),
            )),
    )
}

/// `ferryctl --config CONFIG ARGS`, printed.
fn ferryctl(config: &Path, args: &[&str]) -> Output {
    let out = Command::new(ferry_harness::ferryctl_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        // Never a proxy's socket: a fleet's verbs go to etcd.
        .arg("--socket")
        .arg("/nonexistent/ferry.sock")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!(
        "ferryctl --config {} {args:?} -> {:?}\n{}{}",
        config.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ferryctl_ok(config: &Path, args: &[&str]) -> String {
    let out = ferryctl(config, args);
    assert!(out.status.success(), "ferryctl {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a proxy on `config` (the good proxy's, with its listeners moved
/// and `etcd_password_file` replaced) and returns what it printed, once it
/// has exited non-zero; fails the test if it starts serving instead.
fn proxy_refused(good_config: &Path, dir: &Path, name: &str, password_file: &Path) -> String {
    let text: String = std::fs::read_to_string(good_config)
        .unwrap()
        .lines()
        .map(|l| {
            let l = if l.starts_with("http_addr =") {
                format!("http_addr = \"127.0.0.1:{}\"", free_port())
            } else if l.starts_with("socket_path =") {
                format!(
                    "socket_path = \"{}\"",
                    dir.join(format!("{name}.sock")).display()
                )
            } else if l.starts_with("etcd_password_file =") {
                format!("etcd_password_file = \"{}\"", password_file.display())
            } else if l.starts_with("member_id =") {
                format!("member_id = \"{name}\"")
            } else {
                l.to_owned()
            };
            format!("{l}\n")
        })
        .collect();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, text).unwrap();
    // A refused proxy exits on its own; one that hangs is killed.
    let out = output_within(
        Command::new(ferry_harness::proxy_bin())
            .arg("--config")
            .arg(&config)
            .env("FERRY_LOG", "info"),
        Duration::from_secs(30),
    );
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("proxy {name} -> {}\n{said}", out.status);
    assert!(
        !out.status.success(),
        "proxy {name} exited with {}",
        out.status
    );
    said
}

/// The ids of the members `show` lists.
fn member_ids(v: &serde_json::Value) -> Vec<&str> {
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect()
}

#[test]
fn a_fleet_on_etcd_with_tls_and_auth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = test_ca(d, "etcd").unwrap();
    let etcd = EtcdCluster::start_tls(3, EtcdTls::from(&ca).with_client_cert_auth());
    assert!(etcd.endpoint(0).starts_with("https://"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Auth on, through etcd-client over TLS: user root (role root), then
    // a client without credentials is refused. (With client certificates,
    // etcd takes a token-less client to be the user its certificate's CN
    // names, "127.0.0.1" here, which has no permission.)
    rt.block_on(async {
        let mut c = etcd_client::Client::connect(etcd.endpoints(), Some(tls_options(&ca)))
            .await
            .unwrap();
        c.user_add("root", PASSWORD, None).await.unwrap();
        c.user_grant_role("root", "root").await.unwrap();
        c.auth_enable().await.unwrap();
        let anonymous = c.get("/ferry/v1/buckets/", None).await.unwrap_err();
        eprintln!("a client without credentials, auth enabled: {anonymous}");
        assert!(
            anonymous.to_string().contains("permission denied"),
            "{anonymous}"
        );
    });

    let source = Store::garage().unwrap();
    source.create_bucket(BUCKET).unwrap();
    let target = Store::moto().unwrap();
    target.create_bucket(BUCKET).unwrap();
    target.create_bucket(JOURNAL).unwrap();

    let password = d.join("etcd.password");
    write_private(&password, &format!("{PASSWORD}\n"));
    let state = state_lines(&etcd, &ca, &password);
    let proxy = Proxy::start_in_fleet(
        &target,
        BUCKET,
        &format!("journal_bucket = \"{JOURNAL}\"\n"),
        &format!("{state}member_id = \"p0\"\n"),
    );
    let ctl = d.join("ferryctl.toml");
    std::fs::write(&ctl, format!("[state]\n{state}fence_timeout_secs = 20\n")).unwrap();

    // attach, then forward mode, fenced across the fleet (p0 acknowledges
    // over its TLS and authenticated session).
    let args = launch::attach_args(d, BUCKET, &source).unwrap();
    ferryctl_ok(&ctl, &args.iter().map(String::as_str).collect::<Vec<_>>());
    // Longer than the members' auth token life (the harness sets 2 s): the
    // proxy's token expires while it is idle, and it must log in again to
    // acknowledge the fence.
    std::thread::sleep(Duration::from_secs(4));
    let out = ferryctl_ok(
        &ctl,
        &[
            "s3", "bucket", "migrate", "update", "--bucket", BUCKET, "--mode", "forward", "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["fenced_at"].is_string(), "{v}");

    // A write through the proxy lands on the source.
    let c = proxy.client(&target.region);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = rt.block_on(
            c.put_object()
                .bucket(BUCKET)
                .key("over-tls")
                .body(ByteStream::from_static(b"data"))
                .send(),
        );
        match r {
            Ok(_) => break,
            // The fence, until p0 has applied the new mode.
            Err(e) if status(&e) == Some(503) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("PUT over-tls: {e:?}\n{}", proxy.log()),
        }
    }
    assert_eq!(
        rt.block_on(contents(&source))
            .get("over-tls")
            .map(Vec::as_slice),
        Some(&b"data"[..])
    );
    assert!(!rt.block_on(contents(&target)).contains_key("over-tls"));

    let show = |config: &Path| -> serde_json::Value {
        let out = ferryctl_ok(
            config,
            &["s3", "bucket", "migrate", "show", BUCKET, "--json"],
        );
        serde_json::from_str(&out).unwrap()
    };
    let v = show(&ctl);
    assert_eq!(v["mode"], "forward", "{v}");
    assert_eq!(member_ids(&v), ["p0"], "{v}");

    // What ferryctl and a proxy each say when their password is the one in
    // `password_file`: both must be refused.
    let refused_by_both = |name: &str, password_file: &Path| -> [String; 2] {
        let config = d.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!("[state]\n{}", state_lines(&etcd, &ca, password_file)),
        )
        .unwrap();
        let out = ferryctl(
            &config,
            &["s3", "bucket", "migrate", "show", BUCKET, "--json"],
        );
        assert!(!out.status.success(), "ferryctl with the {name} password");
        [
            String::from_utf8_lossy(&out.stderr).into_owned(),
            proxy_refused(&proxy.config, d, name, password_file),
        ]
    };

    // A wrong password.
    let wrong = d.join("wrong.password");
    write_private(&wrong, "not-the-password\n");
    for said in refused_by_both("wrong", &wrong) {
        assert!(
            said.contains("authentication failed, invalid user ID or password"),
            "{said}"
        );
    }

    // A password file others can read: refused before it is read.
    let open = d.join("open.password");
    std::fs::write(&open, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let want = format!("chmod 600 {}", open.display());
    for said in refused_by_both("open", &open) {
        assert!(said.contains("mode 0644") && said.contains(&want), "{said}");
    }

    // Neither joined: the fleet is still p0 alone.
    let v = show(&ctl);
    assert_eq!(member_ids(&v), ["p0"], "{v}");
}
