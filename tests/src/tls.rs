//! TLS test fixtures: a throwaway CA with a leaf for 127.0.0.1 (made with
//! the `openssl` CLI), and moto serving S3 over https with that leaf.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A CA and a leaf for `127.0.0.1` that it signed, valid for two days.
pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Make `NAME.ca.crt`, `NAME.crt` and `NAME.key` in `dir` (P-256 keys).
pub fn test_ca(dir: &Path, name: &str) -> anyhow::Result<TestCa> {
    let p = |ext: &str| dir.join(format!("{name}.{ext}"));
    let (ca, ca_key) = (p("ca.crt"), p("ca.key"));
    let (csr, key, cert, ext) = (p("csr"), p("key"), p("crt"), p("ext"));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let subject = format!("/CN={name} test CA");
    openssl(|c| {
        c.args(["req", "-x509", "-days", "2", "-subj", &subject])
            .args(ec)
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca)
    })?;
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )?;
    openssl(|c| {
        c.args(["req", "-subj", "/CN=127.0.0.1"])
            .args(ec)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
    })?;
    openssl(|c| {
        c.args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert)
    })?;
    Ok(TestCa { ca, cert, key })
}

fn openssl(args: impl FnOnce(&mut Command) -> &mut Command) -> anyhow::Result<()> {
    let mut c = Command::new("openssl");
    args(&mut c);
    let out = c.output().context("run openssl")?;
    if !out.status.success() {
        bail!(
            "{c:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `moto_server` over https on `port`; killed on drop.
pub struct HttpsMoto {
    child: Child,
    /// `https://127.0.0.1:PORT`
    pub endpoint: String,
}

impl HttpsMoto {
    pub fn start(port: u16, cert: &Path, key: &Path) -> anyhow::Result<HttpsMoto> {
        let child = Command::new(crate::moto_server_bin())
            .args(["-H", "127.0.0.1", "-p", &port.to_string(), "-c"])
            .arg(cert)
            .arg("-k")
            .arg(key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start moto_server over TLS")?;
        let moto = HttpsMoto {
            child,
            endpoint: format!("https://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("moto over TLS did not listen on {port} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // It accepts before its TLS context is ready.
        std::thread::sleep(Duration::from_millis(300));
        Ok(moto)
    }
}

impl Drop for HttpsMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway CA (made with rcgen) that signs leaves with any names and
/// any validity window, expired ones included.
pub struct TestIssuer {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    /// The CA certificate (PEM), for `--ca-file` or `--cacert`.
    pub ca: PathBuf,
}

impl TestIssuer {
    /// A proxy's `cert_dir`, made as `dir/certs` holding one certificate of
    /// this CA for `names` (`s3.pem`); its path.
    pub fn cert_dir(
        &self,
        dir: &Path,
        names: &[&str],
        days: std::ops::Range<i64>,
    ) -> anyhow::Result<PathBuf> {
        let certs = dir.join("certs");
        std::fs::create_dir(&certs)?;
        std::fs::write(certs.join("s3.pem"), self.leaf_pem(names, days)?)?;
        Ok(certs)
    }

    /// A CA named `name`; its certificate is written to `dir/NAME.ca.crt`.
    pub fn new(dir: &Path, name: &str) -> anyhow::Result<TestIssuer> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let issuer = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate()?)?;
        let ca = dir.join(format!("{name}.ca.crt"));
        std::fs::write(&ca, issuer.pem())?;
        Ok(TestIssuer { issuer, ca })
    }

    /// A leaf for `names` (DNS names or IP addresses), valid from `days`
    /// (relative to now; negative is past) start to end: its certificate
    /// then its key, in one PEM string (as the proxy's `cert_dir` wants).
    pub fn leaf_pem(&self, names: &[&str], days: std::ops::Range<i64>) -> anyhow::Result<String> {
        let now = time::OffsetDateTime::now_utc();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or("leaf"),
        );
        params.not_before = now + time::Duration::days(days.start);
        params.not_after = now + time::Duration::days(days.end);
        let key = rcgen::KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(format!("{}{}", cert.pem(), key.serialize_pem()))
    }
}
