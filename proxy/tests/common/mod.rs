//! A running `ferry-proxy` in front of a real target store, with a real
//! source store, driven by the real `ferryctl`.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_harness::Store;

pub const PROXY: &str = env!("CARGO_BIN_EXE_ferry-proxy");

/// `ferryctl` is another crate's binary: `cargo test --workspace` builds it
/// next to this test's own directory.
pub fn ferryctl_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join("ferryctl");
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build -p ferry-ctl` first)",
        p.display()
    );
    p
}

pub fn python() -> PathBuf {
    let p = ferry_harness::moto_server_bin()
        .parent()
        .unwrap()
        .join("python");
    assert!(p.exists(), "{} is missing: run scripts/setup", p.display());
    p
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

pub struct Client {
    pub name: &'static str,
    pub access_key: &'static str,
    pub secret: &'static str,
}

pub const ALICE: Client = Client {
    name: "alice",
    access_key: "GKalice0000000000000000",
    secret: "alice-secret-0123456789abcdef",
};
/// Read-only on the bucket.
pub const BOB: Client = Client {
    name: "bob",
    access_key: "GKbob000000000000000000",
    secret: "bob-secret-0123456789abcdef",
};

pub struct Proxy {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub http: String,
    child: Option<Child>,
}

impl Proxy {
    /// Writes a config for `target` and starts the proxy.
    pub fn start(target: &Store, bucket: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_private(&d.join("target.secret"), &target.secret_key);
        write_private(
            &d.join("users.toml"),
            &format!(
                "[[user]]\nname = \"{}\"\naccess_key = \"{}\"\nsecret = \"{}\"\n[user.buckets]\n{bucket} = \"write\"\n\n\
                 [[user]]\nname = \"{}\"\naccess_key = \"{}\"\nsecret = \"{}\"\n[user.buckets]\n{bucket} = \"read\"\n",
                ALICE.name, ALICE.access_key, ALICE.secret, BOB.name, BOB.access_key, BOB.secret
            ),
        );
        let port = free_port();
        let socket = d.join("proxy.sock");
        let config = d.join("proxy.toml");
        std::fs::write(
            &config,
            format!(
                "http_addr = \"127.0.0.1:{port}\"\nusers_file = \"{users}\"\nstate_file = \"{state}\"\nsocket_path = \"{sock}\"\nsocket_group = \"root\"\ns3_domains = [\"s3.ferry.test\"]\n\n[target]\nurl = \"{url}\"\nregion = \"{region}\"\naccess_key = \"{key}\"\nsecret_file = \"{secret}\"\n",
                users = d.join("users.toml").display(),
                state = d.join("state.json").display(),
                sock = socket.display(),
                url = target.endpoint,
                region = target.region,
                key = target.access_key,
                secret = d.join("target.secret").display(),
            ),
        )
        .unwrap();
        let mut p = Proxy {
            dir,
            config,
            socket,
            http: format!("http://127.0.0.1:{port}"),
            child: None,
        };
        p.spawn();
        p
    }

    pub fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("proxy.log")).unwrap();
        let child = Command::new(PROXY)
            .arg("--config")
            .arg(&self.config)
            .env("FERRY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr = self.http.trim_start_matches("http://").to_owned();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(&addr).is_ok() && self.socket.exists() {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("ferry-proxy exited with {st}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ferry-proxy did not come up: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }

    /// SIGKILL: no chance to save anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn ferryctl(&self, args: &[&str]) -> Output {
        let out = Command::new(ferryctl_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        eprintln!(
            "ferryctl {args:?} -> {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn ferryctl_ok(&self, args: &[&str]) -> String {
        let out = self.ferryctl(args);
        assert!(out.status.success(), "ferryctl {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Attaches `bucket` with the source's own credentials (the forwarding
    /// user), plain http.
    pub fn attach(&self, bucket: &str, source: &Store) {
        let secret = self.dir.path().join(format!("{bucket}.source.secret"));
        write_private(&secret, &source.secret_key);
        self.ferryctl_ok(&[
            "s3",
            "bucket",
            "migrate",
            "attach",
            bucket,
            &source.endpoint,
            "none",
            "--s3-key",
            &source.access_key,
            "--s3-secret-file",
            secret.to_str().unwrap(),
            "--region",
            &source.region,
        ]);
    }

    pub fn set_mode(&self, bucket: &str, mode: &str) {
        self.ferryctl_ok(&[
            "s3", "bucket", "migrate", "update", "--bucket", bucket, "--mode", mode,
        ]);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs tests/clients/workload.py with boto3; returns its JSON summary.
pub fn boto3_workload(
    endpoint: &str,
    bucket: &str,
    key: &str,
    secret: &str,
    region: &str,
    prefix: &str,
) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/workload.py");
    let mut c = Command::new(python());
    c.arg(script)
        .args([endpoint, bucket, key, secret, region, prefix]);
    ferry_harness::apply_loopback_env(&mut c);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "boto3 workload against {endpoint} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A workload summary with its key prefix taken out, so runs under
/// different prefixes compare equal.
pub fn normalized(v: &serde_json::Value, prefix: &str) -> String {
    v.to_string().replace(prefix, "<p>")
}
