//! A single-node Garage: its config, its CLI, and its admin endpoint.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::env::apply_loopback_env;
use crate::http;
use crate::ports::free_port;
use crate::process::{ServerProcess, missing_binary_error};
use crate::secrets::random_hex;

pub const REGION: &str = "garage";
const KEY_NAME: &str = "ferry-test";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// The Prometheus counter Garage increments once per S3 request, labelled
/// with the S3 operation (`api_endpoint="HeadObject"`), errors included.
pub const REQUEST_COUNTER: &str = "api_s3_request_counter";

pub struct GarageNode {
    bin: PathBuf,
    config: PathBuf,
    pub s3_port: u16,
    admin_port: u16,
    rpc_port: u16,
    pub access_key: String,
    pub secret_key: String,
}

impl GarageNode {
    /// Write a config into `dir` (ports picked now) and describe the server.
    pub fn prepare(dir: &Path) -> anyhow::Result<(GarageNode, ServerProcess)> {
        let bin = crate::bins::garage_bin();
        let (rpc_port, s3_port, admin_port) = (free_port()?, free_port()?, free_port()?);
        let config = dir.join("garage.toml");
        let text = format!(
            r#"metadata_dir = {meta}
data_dir = {data}
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
"#,
            meta = toml_str(&dir.join("meta"))?,
            data = toml_str(&dir.join("data"))?,
            secret = random_hex(32),
        );
        std::fs::write(&config, text).with_context(|| format!("write {}", config.display()))?;
        let args: Vec<OsString> = vec!["-c".into(), config.clone().into(), "server".into()];
        let server = ServerProcess::new("garage", bin.clone(), args, dir.join("garage.log"))
            .env("NO_COLOR", "1");
        let node = GarageNode {
            bin,
            config,
            s3_port,
            admin_port,
            rpc_port,
            access_key: format!("GK{}", random_hex(12)),
            secret_key: random_hex(32),
        };
        Ok((node, server))
    }

    /// First start: assign the layout, import the key, wait until ready.
    pub fn initialize(&self, server: &mut ServerProcess) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        // `garage node id` reads the node key from disk and can answer before
        // the server listens, so first wait for the RPC and admin listeners.
        server.wait_until("RPC listener", READY_TIMEOUT, || {
            Ok(TcpStream::connect((Ipv4Addr::LOCALHOST, self.rpc_port)).is_ok())
        })?;
        server.wait_until("admin API", READY_TIMEOUT, || {
            http::get(self.admin_port, "/health").map(|_| true)
        })?;
        let node_id = self.cli_retrying(deadline, &["node", "id", "-q"]);
        let setup = || -> anyhow::Result<()> {
            let node_id = node_id?;
            let node_id = node_id.trim();
            let id = node_id.split('@').next().unwrap_or(node_id);
            anyhow::ensure!(!id.is_empty(), "`garage node id -q` printed nothing");
            self.cli_retrying(deadline, &["layout", "assign", "-z", "dc1", "-c", "1G", id])?;
            self.cli_retrying(deadline, &["layout", "apply", "--version", "1"])?;
            self.cli_retrying(
                deadline,
                &[
                    "key",
                    "import",
                    "--yes",
                    "-n",
                    KEY_NAME,
                    &self.access_key,
                    &self.secret_key,
                ],
            )?;
            Ok(())
        };
        setup().map_err(|e| anyhow::anyhow!("{e:#}\n{}", server.log_tail()))?;
        let left = deadline.saturating_duration_since(Instant::now());
        self.wait_ready(server, left.max(Duration::from_secs(5)))
    }

    /// [`GarageNode::cli`], retried until `deadline` while it fails only
    /// because it could not reach the node (so the command had no effect).
    fn cli_retrying(&self, deadline: Instant, args: &[&str]) -> anyhow::Result<String> {
        loop {
            match self.cli(args) {
                Ok(out) => return Ok(out),
                Err(e) if Instant::now() < deadline && is_connect_error(&e) => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Ready: the admin health check says fully operational (200) and the S3
    /// port answers HTTP.
    pub fn wait_ready(&self, server: &mut ServerProcess, timeout: Duration) -> anyhow::Result<()> {
        server.wait_until("health check", timeout, || {
            Ok(http::get(self.admin_port, "/health")?.status == 200)
        })?;
        server.wait_until("S3 API", timeout, || {
            http::get(self.s3_port, "/").map(|_| true)
        })
    }

    pub fn default_ready_timeout() -> Duration {
        READY_TIMEOUT
    }

    /// `garage bucket create NAME` and allow our key to read, write and own it.
    pub fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        self.cli(&["bucket", "create", name])?;
        self.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            name,
            "--key",
            &self.access_key,
        ])?;
        Ok(())
    }

    /// Imports the key `access_key`/`secret` and lets it only read
    /// `bucket` (a copier's read-only source user).
    pub fn read_only_key(
        &self,
        bucket: &str,
        access_key: &str,
        secret: &str,
    ) -> anyhow::Result<()> {
        self.cli(&[
            "key", "import", "--yes", "-n", access_key, access_key, secret,
        ])?;
        self.cli(&["bucket", "allow", "--read", bucket, "--key", access_key])?;
        Ok(())
    }

    /// The admin API's Prometheus endpoint (`api_s3_request_counter`).
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.admin_port)
    }

    /// Per-operation S3 request counts from the admin `/metrics` endpoint.
    pub fn request_counts(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let resp = http::get(self.admin_port, "/metrics").context("read Garage /metrics")?;
        anyhow::ensure!(
            resp.status == 200,
            "Garage /metrics answered HTTP {}: {}",
            resp.status,
            resp.body.chars().take(300).collect::<String>()
        );
        parse_request_counts(&resp.body)
    }

    /// Run `garage -c CONFIG ARGS...`, bounded by a timeout; stdout on success.
    fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        apply_loopback_env(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| missing_binary_error("garage", &self.bin, e))?;
        let mut out = child.stdout.take().context("garage stdout")?;
        let mut err = child.stderr.take().context("garage stderr")?;
        let out_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + CLI_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        match status {
            Some(s) if s.success() => Ok(stdout),
            Some(s) => anyhow::bail!(
                "`garage {}` failed with {s}: {}{}",
                args.join(" "),
                stderr.trim(),
                stdout.trim()
            ),
            None => anyhow::bail!(
                "`garage {}` did not finish within {CLI_TIMEOUT:?}",
                args.join(" ")
            ),
        }
    }
}

/// Sum `api_s3_request_counter` samples by their `api_endpoint` label.
pub fn parse_request_counts(metrics: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    let prefix = format!("{REQUEST_COUNTER}{{");
    for line in metrics.lines().filter(|l| l.starts_with(&prefix)) {
        let (labels, value) = line[prefix.len()..]
            .split_once('}')
            .with_context(|| format!("malformed metric line {line:?}"))?;
        let endpoint = labels
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("api_endpoint=\""))
            .and_then(|v| v.strip_suffix('"'))
            .with_context(|| format!("no api_endpoint label in {line:?}"))?;
        let value: f64 = value
            .split_whitespace()
            .next()
            .with_context(|| format!("no value in {line:?}"))?
            .parse()
            .with_context(|| format!("bad value in {line:?}"))?;
        anyhow::ensure!(
            value >= 0.0 && value.fract() == 0.0,
            "counter is not a whole number: {line:?}"
        );
        *counts.entry(endpoint.to_owned()).or_insert(0) += value as u64;
    }
    Ok(counts)
}

fn is_connect_error(e: &anyhow::Error) -> bool {
    let msg = format!("{e:#}");
    msg.contains("Unable to connect") || msg.contains("Connection refused")
}

fn toml_str(path: &Path) -> anyhow::Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("temp path is not UTF-8: {}", path.display()))?;
    Ok(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_request_counter_lines() {
        let text = "# HELP api_s3_request_counter Number of API calls\n\
            # TYPE api_s3_request_counter counter\n\
            api_s3_request_counter{api_endpoint=\"HeadObject\"} 2\n\
            api_s3_request_counter{api_endpoint=\"PutObject\"} 15\n\
            api_s3_error_counter{api_endpoint=\"HeadObject\",status_code=\"404\"} 2\n\
            api_s3_request_duration_bucket{api_endpoint=\"HeadObject\",le=\"0.001\"} 2\n";
        let counts = super::parse_request_counts(text).unwrap();
        assert_eq!(counts.len(), 2);
        assert_eq!(counts["HeadObject"], 2);
        assert_eq!(counts["PutObject"], 15);
        assert!(super::parse_request_counts("api_s3_request_counter{x=\"y\"} 1").is_err());
    }
}
