//! Upstream TLS to an https source is verified against the bucket's own
//! certificate, given at attach: a source that presents another
//! certificate gets 503, never a silent connection.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ferry_harness::Store;

fn openssl(args: &[&str]) {
    let st = Command::new("openssl")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "openssl {args:?}");
}

/// A CA, and a leaf for 127.0.0.1 signed by it. Returns (ca, leaf, key).
fn ca_and_leaf(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |ext: &str| dir.join(format!("{name}.{ext}"));
    let s = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let (ca, ca_key) = (p("ca.crt"), p("ca.key"));
    let mut a = vec!["req", "-x509", "-days", "2", "-subj"];
    let subj = format!("/CN={name} test CA");
    a.push(&subj);
    a.extend(ec);
    let (sca, scak) = (s(&ca), s(&ca_key));
    a.extend(["-keyout", &scak, "-out", &sca]);
    openssl(&a);
    let (csr, key, crt, ext) = (p("csr"), p("key"), p("crt"), p("ext"));
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let (scsr, skey, scrt, sext) = (s(&csr), s(&key), s(&crt), s(&ext));
    let mut b = vec!["req", "-subj", "/CN=127.0.0.1"];
    b.extend(ec);
    b.extend(["-keyout", &skey, "-out", &scsr]);
    openssl(&b);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &scsr,
        "-CA",
        &sca,
        "-CAkey",
        &scak,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &sext,
        "-out",
        &scrt,
    ]);
    (ca, crt, key)
}

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn https_moto(port: u16, crt: &Path, key: &Path) -> Moto {
    let child = Command::new(ferry_harness::moto_server_bin())
        .args(["-H", "127.0.0.1", "-p", &port.to_string(), "-c"])
        .arg(crt)
        .arg("-k")
        .arg(key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto over TLS did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    Moto(child)
}

/// boto3 against `endpoint`, trusting `ca`; prints what `code` prints.
fn py(endpoint: &str, ca: &str, key: &str, secret: &str, code: &str) -> (bool, String) {
    let script = format!(
        "import boto3\nfrom botocore.config import Config\ns3=boto3.client('s3',endpoint_url='{endpoint}',aws_access_key_id='{key}',aws_secret_access_key='{secret}',region_name='us-east-1',verify={ca},config=Config(s3={{'addressing_style':'path'}},retries={{'max_attempts':1}}))\n{code}"
    );
    let mut c = Command::new(python());
    c.args(["-c", &script]);
    ferry_harness::apply_loopback_env(&mut c);
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn https_source_is_verified_against_the_attached_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (good_ca, good_crt, good_key) = ca_and_leaf(dir.path(), "good");
    let (_, other_crt, other_key) = ca_and_leaf(dir.path(), "other");
    let port = free_port();
    let source_url = format!("https://127.0.0.1:{port}");
    let moto = https_moto(port, &good_crt, &good_key);
    let ca = format!("'{}'", good_ca.display());
    let (ok, text) = py(
        &source_url,
        &ca,
        "src",
        "src-secret",
        "s3.create_bucket(Bucket='photos')",
    );
    assert!(ok, "{text}");

    let target = Store::garage().unwrap();
    target.create_bucket("photos").unwrap();
    let proxy = Proxy::start(&target, "photos");
    let secret = proxy.dir.path().join("src.secret");
    write_private(&secret, "src-secret");
    proxy.ferryctl_ok(&[
        "s3",
        "bucket",
        "migrate",
        "attach",
        "photos",
        &source_url,
        good_ca.to_str().unwrap(),
        "--s3-key",
        "src",
        "--s3-secret-file",
        secret.to_str().unwrap(),
    ]);
    proxy.set_mode("photos", "forward");

    let through = |code: &str| py(&proxy.http, "None", ALICE.access_key, ALICE.secret, code);
    let (ok, text) = through("s3.put_object(Bucket='photos', Key='k', Body=b'over verified TLS')");
    assert!(ok, "{text}");
    let (ok, text) = py(
        &source_url,
        &ca,
        "src",
        "src-secret",
        "print(s3.get_object(Bucket='photos', Key='k')['Body'].read())",
    );
    assert!(ok && text.contains("over verified TLS"), "{text}");

    // The source now presents a certificate the bucket was not attached
    // with: the proxy refuses to talk to it.
    drop(moto);
    let _moto = https_moto(port, &other_crt, &other_key);
    let (ok, text) = through("s3.get_object(Bucket='photos', Key='k')");
    assert!(
        !ok,
        "the proxy trusted a certificate it was not given: {text}"
    );
    assert!(
        text.contains("503") || text.contains("ServiceUnavailable"),
        "{text}"
    );
}
