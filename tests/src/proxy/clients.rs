//! The command-line S3 clients (awscli, rclone) the tests drive, pointed
//! at a store or at the proxy.

use std::process::{Command, Output};
use std::time::Duration;

use crate::Store;
use serde_json::Value;

use super::*;

/// How long one client command may take; a workload has a few dozen.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// Where a client points, and as whom.
#[derive(Clone, Copy)]
pub struct Endpoint<'a> {
    pub url: &'a str,
    pub key: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
}

impl<'a> Endpoint<'a> {
    pub fn store(s: &'a Store) -> Endpoint<'a> {
        Endpoint {
            url: &s.endpoint,
            key: &s.access_key,
            secret: &s.secret_key,
            region: &s.region,
        }
    }

    pub fn proxy(p: &'a Proxy) -> Endpoint<'a> {
        Endpoint {
            url: &p.http,
            key: ALICE.access_key,
            secret: ALICE.secret,
            region: "garage",
        }
    }

    pub fn host_port(&self) -> &str {
        authority(self.url)
    }
}

/// Runs a client command; panics with its output if it fails.
pub fn ok(what: &str, cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn run(cmd: &mut Command) -> Output {
    crate::apply_loopback_env(cmd);
    output_within(cmd, COMMAND_LIMIT)
}

pub struct Aws<'a> {
    ep: Endpoint<'a>,
    cfg: tempfile::TempDir,
}

impl<'a> Aws<'a> {
    pub fn new(ep: Endpoint<'a>) -> Aws<'a> {
        let cfg = tempfile::tempdir().unwrap();
        std::fs::write(
            cfg.path().join("config"),
            "[default]\nmax_attempts = 1\ns3 =\n    addressing_style = path\n    signature_version = s3v4\n    multipart_threshold = 8MB\n    multipart_chunksize = 5MB\n",
        )
        .unwrap();
        Aws { ep, cfg }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("aws");
        c.arg("--endpoint-url").arg(self.ep.url).args(args);
        for v in [
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "AWS_REGION",
        ] {
            c.env_remove(v);
        }
        c.env("AWS_CONFIG_FILE", self.cfg.path().join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.cfg.path().join("none"))
            .env("AWS_ACCESS_KEY_ID", self.ep.key)
            .env("AWS_SECRET_ACCESS_KEY", self.ep.secret)
            .env("AWS_DEFAULT_REGION", self.ep.region)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "");
        c
    }

    pub fn ok(&self, args: &[&str]) -> String {
        ok(&format!("aws {args:?}"), &mut self.cmd(args))
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        if out.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("aws {args:?}: {e}: {out}"))
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run(&mut self.cmd(args))
    }
}

pub struct Rclone<'a> {
    ep: Endpoint<'a>,
    dir: tempfile::TempDir,
}

impl<'a> Rclone<'a> {
    pub fn new(ep: Endpoint<'a>) -> Rclone<'a> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rclone.conf"), "").unwrap();
        Rclone { ep, dir }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("rclone");
        c.args(args)
            .args([
                "--s3-no-check-bucket",
                "--retries",
                "1",
                "--low-level-retries",
                "1",
            ])
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .env("RCLONE_CONFIG", self.dir.path().join("rclone.conf"))
            .env("RCLONE_CONFIG_X_TYPE", "s3")
            .env("RCLONE_CONFIG_X_PROVIDER", "Other")
            .env("RCLONE_CONFIG_X_ENV_AUTH", "false")
            .env("RCLONE_CONFIG_X_ACCESS_KEY_ID", self.ep.key)
            .env("RCLONE_CONFIG_X_SECRET_ACCESS_KEY", self.ep.secret)
            .env("RCLONE_CONFIG_X_ENDPOINT", self.ep.url)
            .env("RCLONE_CONFIG_X_REGION", self.ep.region)
            .env("RCLONE_CONFIG_X_FORCE_PATH_STYLE", "true");
        c
    }

    pub fn ok(&self, args: &[&str]) -> String {
        ok(&format!("rclone {args:?}"), &mut self.cmd(args))
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("rclone {args:?}: {e}: {out}"))
    }
}
