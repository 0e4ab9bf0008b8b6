//! A real Prometheus (Debian's package) on 127.0.0.1, with a config the
//! test writes, and its HTTP API's answers as JSON.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tempfile::TempDir;

use crate::http;
use crate::ports::free_port;
use crate::process::ServerProcess;

/// Where Debian's package puts them.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const PROMTOOL: &str = "/usr/bin/promtool";

pub struct Prometheus {
    pub port: u16,
    // Field order: the server is killed before its directory goes.
    server: ServerProcess,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (prometheus.yml text), and waits
    /// until its API answers.
    pub fn start(config: &str) -> anyhow::Result<Prometheus> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-prometheus-")
            .tempdir()?;
        let path = dir.path().join("prometheus.yml");
        std::fs::write(&path, config)?;
        let port = free_port()?;
        let args: Vec<OsString> = vec![
            format!("--config.file={}", path.display()).into(),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()).into(),
            format!("--web.listen-address=127.0.0.1:{port}").into(),
            "--log.level=warn".into(),
        ];
        let mut server = ServerProcess::new(
            "prometheus",
            PathBuf::from(PROMETHEUS),
            args,
            dir.path().join("prometheus.log"),
        );
        server.start()?;
        server.wait_until("Prometheus's API", Duration::from_secs(30), || {
            Ok(http::get(port, "/-/ready")?.status == 200)
        })?;
        Ok(Prometheus { port, server, dir })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `GET /api/v1/<path>`'s JSON answer, whatever its status.
    pub fn api(&mut self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.server.ensure_alive()?;
        let r = http::get(self.port, &format!("/api/v1/{path}"))?;
        serde_json::from_str(&r.body)
            .with_context(|| format!("/api/v1/{path}: HTTP {}: {}", r.status, r.body))
    }

    /// An instant query of `expr`.
    pub fn query(&mut self, expr: &str) -> anyhow::Result<serde_json::Value> {
        self.api(&format!("query?query={}", encode(expr)))
    }

    /// A range query of `expr` over the last `secs` seconds, one point a
    /// second: what a dashboard's graph asks.
    pub fn query_range(&mut self, expr: &str, secs: u64) -> anyhow::Result<serde_json::Value> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        self.api(&format!(
            "query_range?query={}&start={}&end={now}&step=1",
            encode(expr),
            now - secs
        ))
    }
}

/// The shipped packaging/prometheus/prometheus.yml, scraping the proxy's
/// metrics on `proxy` and the agents' on `agents`, with the shipped rule
/// file and a one-second interval; each edit must find what it replaces.
pub fn shipped_config(proxy: u16, agents: &[u16]) -> String {
    let mut text = std::fs::read_to_string(packaging("prometheus/prometheus.yml")).unwrap();
    let agents: Vec<String> = agents.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    for (from, to) in [
        ("127.0.0.1:9464", format!("127.0.0.1:{proxy}")),
        ("127.0.0.1:9465", agents.join("\", \"")),
        (
            "/etc/prometheus/ferry-alerts.yml",
            packaging("prometheus/ferry-alerts.yml")
                .display()
                .to_string(),
        ),
        ("scrape_interval: 15s", "scrape_interval: 1s".to_owned()),
        (
            "evaluation_interval: 15s",
            "evaluation_interval: 1s".to_owned(),
        ),
    ] {
        assert!(text.contains(from), "the shipped config has no {from:?}");
        text = text.replace(from, &to);
    }
    text
}

/// Draws the shipped Grafana dashboards from `prometheus`'s last `secs`
/// seconds into `out` (packaging/grafana/render.py, which needs
/// matplotlib): docs/dashboards' pictures.
pub fn draw_dashboards(prometheus: &Prometheus, secs: u64, out: &Path) -> anyhow::Result<()> {
    let grafana = packaging("grafana");
    let status = std::process::Command::new(crate::python_bin())
        .arg(grafana.join("render.py"))
        .arg(format!("http://127.0.0.1:{}", prometheus.port))
        .arg(secs.to_string())
        .arg(out)
        .arg(grafana.join("ferry-proxy.json"))
        .arg(grafana.join("ferry-migration.json"))
        .status()?;
    anyhow::ensure!(status.success(), "render.py: {status}");
    Ok(())
}

fn packaging(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(path)
}

/// Percent-encodes all but the unreserved characters.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
