//! The stores, the running `ferry-proxy` in front of the target (alone,
//! with a state file, or one of a fleet on etcd), and the `ferryctl` calls
//! that attach the benchmark's buckets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use ferry_harness::proxy::launch::{self, write_private};
use ferry_harness::{Store, random_hex};

use crate::callgrind::{self, Callgrind};

/// Bucket in ready mode: the proxy sends it to the target.
pub const READY_BUCKET: &str = "bench-ready";
/// Bucket in forward mode: the proxy sends it to the source.
pub const FORWARD_BUCKET: &str = "bench-forward";
/// Bucket in migrate mode: split between the target and the source.
pub const MIGRATE_BUCKET: &str = "bench-migrate";
/// On the target only, never attached: the migrate bucket's listing keys
/// all in one store, the direct reference for a merged page.
pub const UNION_BUCKET: &str = "bench-union";
/// `--fleet`'s bucket, attached to the fleet and to a proxy with a state
/// file, switched between forward and ready mode.
pub const FLEET_BUCKET: &str = "bench-fleet";
/// The proxy's delete journal on the target; migrate mode is refused
/// without one.
pub const JOURNAL_BUCKET: &str = "bench-journal";

/// The client user of the users file, with write on the benchmark's
/// buckets.
pub struct ClientUser {
    pub access_key: String,
    pub secret: String,
}

/// `ferry-proxy` running in front of `target`, with its own work dir.
pub struct Proxy {
    pub dir: tempfile::TempDir,
    pub http: String,
    /// Its Prometheus endpoint's port (`metrics_addr`).
    pub metrics_port: u16,
    pub socket: PathBuf,
    pub user: ClientUser,
    ctl: Ferryctl,
    child: Child,
}

/// The buckets of the mode runs, which [`Proxy::start`]'s user may write.
pub const MODE_BUCKETS: [&str; 3] = [READY_BUCKET, FORWARD_BUCKET, MIGRATE_BUCKET];

impl Proxy {
    /// A proxy whose bucket table is its state file, its user with write
    /// on the mode runs' buckets; under callgrind with `cg`.
    pub fn start(
        bin: &Path,
        ferryctl: &Path,
        target: &Store,
        cg: Option<&Callgrind>,
    ) -> anyhow::Result<Proxy> {
        Self::start_with(bin, ferryctl, target, &MODE_BUCKETS, None, cg)
    }

    /// Writes the config, users file (one user with write on `buckets`)
    /// and target secret, starts the proxy with `FERRY_LOG=warn` and waits
    /// until it listens. With `state`, the config's `[state]` section and
    /// no `state_file`: the proxy is a member of that fleet.
    pub fn start_with(
        bin: &Path,
        ferryctl: &Path,
        target: &Store,
        buckets: &[&str],
        state: Option<&str>,
        cg: Option<&Callgrind>,
    ) -> anyhow::Result<Proxy> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-bench-proxy-")
            .tempdir()
            .context("create the proxy's work dir")?;
        let d = dir.path();
        let user = ClientUser {
            access_key: format!("GKbench{}", random_hex(8)),
            secret: random_hex(20),
        };
        let grants: String = buckets
            .iter()
            .map(|b| format!("{b} = \"write\"\n"))
            .collect();
        write_private(
            &d.join("users.toml"),
            &format!(
                "[[user]]\nname = \"bench\"\naccess_key = \"{}\"\nsecret = \"{}\"\n[user.buckets]\n{grants}",
                user.access_key, user.secret
            ),
        )?;
        // Migrate mode is refused without a delete journal.
        let metrics_port = ferry_harness::free_port()?;
        let layout = launch::write_config(
            d,
            target,
            &format!(
                "journal_bucket = \"{JOURNAL_BUCKET}\"\nmetrics_addr = \"127.0.0.1:{metrics_port}\"\n"
            ),
        )?;
        if let Some(state) = state {
            launch::join_fleet_config(&layout.config, state)?;
        }
        let log = std::fs::File::create(d.join("proxy.log")).context("create proxy.log")?;
        let mut cmd = callgrind::command(bin, cg);
        cmd.arg("--config")
            .arg(&layout.config)
            .env("FERRY_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        ferry_harness::apply_loopback_env(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let mut p = Proxy {
            dir,
            http: layout.http,
            metrics_port,
            ctl: Ferryctl::socket(ferryctl, &layout.socket),
            socket: layout.socket,
            user,
            child,
        };
        launch::wait_listening(&mut p.child, &p.http, &p.socket, p.dir.path())?;
        Ok(p)
    }

    /// Upstream connections so far: (reused, opened), from the proxy's
    /// `ferry_proxy_upstream_connections_total`.
    pub fn upstream_connections(&self) -> (u64, u64) {
        let text = ferry_harness::proxy::scrape(self.metrics_port);
        let mut counts = (0, 0);
        for line in text
            .lines()
            .filter(|l| l.starts_with("ferry_proxy_upstream_connections_total{"))
        {
            let n = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
            if line.contains("reused=\"true\"") {
                counts.0 += n;
            } else {
                counts.1 += n;
            }
        }
        counts
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        launch::read_log(self.dir.path())
    }

    /// Attaches `bucket` through this proxy's socket, then sets `modes`
    /// in turn (see [`Ferryctl::attach`]).
    pub fn attach(&self, bucket: &str, source: &Store, modes: &[&str]) -> anyhow::Result<()> {
        self.ctl.attach(self.dir.path(), bucket, source, modes)
    }

    /// Whether the proxy is still running (it should be, all along).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(st) = self.child.try_wait()? {
            bail!(
                "ferry-proxy exited with {st} during the run:\n{}",
                self.log()
            );
        }
        Ok(())
    }

    /// Keeps the work dir on disk (after the proxy stops); its path.
    pub fn keep(&mut self) -> PathBuf {
        self.dir.disable_cleanup(true);
        self.dir.path().to_owned()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // TERM: ferry-proxy drains, then exits.
        ferry_benches::stop::stop(&mut self.child, "TERM", Duration::from_secs(10));
    }
}

/// `ferryctl`, and where its bucket verbs go: one proxy's socket, or a
/// fleet's etcd (`--etcd`).
pub struct Ferryctl {
    bin: PathBuf,
    to: Reach,
}

enum Reach {
    Socket(PathBuf),
    /// Comma-separated client URLs.
    Etcd(String),
}

impl Ferryctl {
    pub fn socket(bin: &Path, socket: &Path) -> Ferryctl {
        Ferryctl {
            bin: bin.to_owned(),
            to: Reach::Socket(socket.to_owned()),
        }
    }

    pub fn etcd(bin: &Path, endpoints: &[String]) -> Ferryctl {
        Ferryctl {
            bin: bin.to_owned(),
            to: Reach::Etcd(endpoints.join(",")),
        }
    }

    /// Runs `ferryctl ARGS`; its stdout, or an error with its output.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = match &self.to {
            Reach::Socket(socket) => launch::ferryctl(&self.bin, socket, args),
            Reach::Etcd(urls) => {
                let mut c = Command::new(&self.bin);
                c.arg("--etcd").arg(urls).args(args);
                c
            }
        };
        ferry_harness::apply_loopback_env(&mut cmd);
        let out = cmd
            .output()
            .with_context(|| format!("run {}", self.bin.display()))?;
        ensure!(
            out.status.success(),
            "ferryctl {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Attaches `bucket` with the source's own credentials (plain http;
    /// the secret file goes to `dir`), then sets each of `modes` in turn
    /// (the proxy takes migrate only from forward), and checks the last.
    pub fn attach(
        &self,
        dir: &Path,
        bucket: &str,
        source: &Store,
        modes: &[&str],
    ) -> anyhow::Result<()> {
        let attach = launch::attach_args(dir, bucket, source)?;
        self.run(&attach.iter().map(String::as_str).collect::<Vec<_>>())?;
        for mode in modes {
            self.run(&launch::set_mode_args(bucket, mode))?;
        }
        let mode = modes.last().context("no mode to set")?;
        let show = self.run(&["s3", "bucket", "migrate", "show", bucket, "--json"])?;
        ensure!(
            show.contains(&format!("\"mode\":\"{mode}\""))
                || show.contains(&format!("\"mode\": \"{mode}\"")),
            "{bucket} is not in {mode} mode after the update: {show}"
        );
        Ok(())
    }
}
