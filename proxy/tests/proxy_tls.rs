//! TLS: the certificate is chosen by SNI, and a replaced certificate file
//! is served without a restart. Checked with curl --resolve, which verifies
//! the presented certificate against the one we expect.

// A test runs no request path: proxy/clippy.toml's rule against
// blocking file calls is not for it.
#![allow(clippy::disallowed_methods)]

use ferry_harness::proxy as common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ferry_harness::Store;

/// A self-signed certificate (its own CA) for `names`, chain and key in
/// one PEM file; returns the certificate alone for curl's --cacert.
fn make_cert(dir: &Path, file: &str, names: &[&str], serial: u32) -> std::path::PathBuf {
    let key = dir.join(format!("{file}.key"));
    let crt = dir.join(format!("{file}.crt"));
    let san = names
        .iter()
        .map(|n| format!("DNS:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .args([
            "-subj",
            &format!("/CN={}", names[0]),
            "-addext",
            &format!("subjectAltName={san}"),
        ])
        .args(["-set_serial", &serial.to_string()])
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(st.success(), "openssl failed");
    crt
}

fn install(certs: &Path, work: &Path, file: &str) {
    let mut pem = std::fs::read(work.join(format!("{file}.crt"))).unwrap();
    pem.extend(std::fs::read(work.join(format!("{file}.key"))).unwrap());
    // Write then rename, as a cert tool would, so the proxy never reads half.
    let tmp = certs.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, pem).unwrap();
    std::fs::rename(&tmp, certs.join(format!("{file}.pem"))).unwrap();
}

/// Whether curl, trusting only `ca`, accepts the proxy's certificate for
/// `host`.
fn curl_trusts(port: u16, host: &str, ca: &Path) -> bool {
    let mut c = Command::new("curl");
    c.args(["-s", "-o", "/dev/null", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .arg(format!("https://{host}:{port}/"));
    ferry_harness::apply_loopback_env(&mut c);
    c.status().unwrap().success()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn certificate_by_sni_and_live_replacement() {
    let target = Store::garage().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let work = d.join("work");
    let certs = d.join("certs");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&certs).unwrap();
    let alpha = make_cert(&work, "alpha", &["s3.alpha.test", "*.s3.alpha.test"], 101);
    let beta = make_cert(&work, "beta", &["beta.example.test"], 202);
    install(&certs, &work, "alpha");
    install(&certs, &work, "beta");

    write_private(&d.join("target.secret"), &target.secret_key);
    write_private(&d.join("users.toml"), "");
    let port = free_port();
    let mport = free_port();
    let config = d.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "https_addr = \"127.0.0.1:{port}\"\nmetrics_addr = \"127.0.0.1:{mport}\"\ncert_dir = \"{}\"\nusers_file = \"{}\"\nstate_file = \"{}\"\nsocket_path = \"{}\"\nsocket_group = \"root\"\n\n[target]\nurl = \"{}\"\nregion = \"{}\"\naccess_key = \"{}\"\nsecret_file = \"{}\"\n",
            certs.display(),
            d.join("users.toml").display(),
            d.join("state.json").display(),
            d.join("proxy.sock").display(),
            target.endpoint,
            target.region,
            target.access_key,
            d.join("target.secret").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(d.join("proxy.log")).unwrap();
    let _proxy = Killed(
        Command::new(proxy_bin())
            .arg("--config")
            .arg(&config)
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "proxy did not listen: {}",
            std::fs::read_to_string(d.join("proxy.log")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Every handshake with a name the proxy has a certificate for is
    // counted, the ones the client then rejects included.
    let handshakes = std::cell::Cell::new(0u32);
    let trusts = |host: &str, ca: &Path| {
        handshakes.set(handshakes.get() + 1);
        curl_trusts(port, host, ca)
    };

    // Each name gets its own certificate, and only that one.
    assert!(trusts("photos.s3.alpha.test", &alpha));
    assert!(!trusts("photos.s3.alpha.test", &beta));
    assert!(trusts("beta.example.test", &beta));
    assert!(!trusts("beta.example.test", &alpha));

    // Replace alpha's certificate in place: served without a restart.
    let alpha2 = make_cert(&work, "alpha", &["s3.alpha.test", "*.s3.alpha.test"], 103);
    install(&certs, &work, "alpha");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !trusts("photos.s3.alpha.test", &alpha2) {
        assert!(
            Instant::now() < deadline,
            "the replaced certificate was not picked up: {}",
            std::fs::read_to_string(d.join("proxy.log")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(trusts("beta.example.test", &beta));

    // A broken file keeps the old certificates in service.
    std::fs::write(certs.join("broken.pem"), "not a certificate").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(trusts("photos.s3.alpha.test", &alpha2));

    // Every handshake is counted, the first ones too: the recorder is
    // installed before the proxy listens.
    let m = scrape(mport);
    assert_eq!(
        value(&m, "ferry_proxy_tls_handshakes_total{result=\"ok\"}"),
        f64::from(handshakes.get()),
        "{m}"
    );
}
