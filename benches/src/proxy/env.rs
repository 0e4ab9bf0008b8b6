//! The stores, the running `ferry-proxy` in front of the target, and the
//! `ferryctl` calls that attach the benchmark's buckets.

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use ferry_harness::Store;

/// Bucket in ready mode: the proxy sends it to the target.
pub const READY_BUCKET: &str = "bench-ready";
/// Bucket in forward mode: the proxy sends it to the source.
pub const FORWARD_BUCKET: &str = "bench-forward";
/// Bucket in migrate mode: split between the target and the source.
pub const MIGRATE_BUCKET: &str = "bench-migrate";
/// On the target only, never attached: the migrate bucket's listing keys
/// all in one store, the direct reference for a merged page.
pub const UNION_BUCKET: &str = "bench-union";
/// The proxy's delete journal on the target; migrate mode is refused
/// without one.
pub const JOURNAL_BUCKET: &str = "bench-journal";

/// The client user of the users file, with write on both buckets.
pub struct ClientUser {
    pub access_key: String,
    pub secret: String,
}

/// A binary given on the command line, else next to this one, else in
/// `$CARGO_TARGET_DIR/release`; an error naming where it was looked for.
pub fn locate_bin(given: Option<&Path>, name: &str, package: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        ensure!(p.is_file(), "{name}: {} does not exist", p.display());
        return Ok(p.to_owned());
    }
    let mut tried = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.to_owned()))
    {
        tried.push(dir.join(name));
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR").filter(|t| !t.is_empty()) {
        tried.push(Path::new(&t).join("release").join(name));
    }
    if let Some(p) = tried.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    bail!(
        "{name} is missing (looked at {}): build it with `cargo build --release -p {package}` \
         (benches/run-proxy does), or pass its path",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))
}

/// A pseudo-random hex string (no rand dependency: time and pid seeded).
fn token(n: usize) -> String {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ ((std::process::id() as u64) << 32)
        | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x % 16) as u32, 16).unwrap_or('0')
        })
        .collect()
}

/// `ferry-proxy` running in front of `target`, with its own work dir.
pub struct Proxy {
    pub dir: tempfile::TempDir,
    pub http: String,
    pub socket: PathBuf,
    pub user: ClientUser,
    ferryctl: PathBuf,
    child: Child,
}

impl Proxy {
    /// Writes the config, users file (one user with write on the attached
    /// benchmark buckets) and target secret, starts the proxy with `FERRY_LOG=warn`
    /// and waits until it listens.
    pub fn start(bin: &Path, ferryctl: &Path, target: &Store) -> anyhow::Result<Proxy> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-bench-proxy-")
            .tempdir()
            .context("create the proxy's work dir")?;
        let d = dir.path();
        let user = ClientUser {
            access_key: format!("GKbench{}", token(16)),
            secret: token(40),
        };
        write_private(&d.join("target.secret"), &target.secret_key)?;
        write_private(
            &d.join("users.toml"),
            &format!(
                "[[user]]\nname = \"bench\"\naccess_key = \"{}\"\nsecret = \"{}\"\n[user.buckets]\n\
                 {READY_BUCKET} = \"write\"\n{FORWARD_BUCKET} = \"write\"\n\
                 {MIGRATE_BUCKET} = \"write\"\n",
                user.access_key, user.secret
            ),
        )?;
        let port = free_port()?;
        let socket = d.join("proxy.sock");
        let config = d.join("proxy.toml");
        std::fs::write(
            &config,
            format!(
                "http_addr = \"127.0.0.1:{port}\"\nusers_file = \"{users}\"\nstate_file = \"{state}\"\n\
                 socket_path = \"{sock}\"\nsocket_group = \"root\"\n\
                 journal_bucket = \"{JOURNAL_BUCKET}\"\n\n[target]\nurl = \"{url}\"\n\
                 region = \"{region}\"\naccess_key = \"{key}\"\nsecret_file = \"{secret}\"\n",
                users = d.join("users.toml").display(),
                state = d.join("state.json").display(),
                sock = socket.display(),
                url = target.endpoint,
                region = target.region,
                key = target.access_key,
                secret = d.join("target.secret").display(),
            ),
        )
        .context("write proxy.toml")?;
        let log = std::fs::File::create(d.join("proxy.log")).context("create proxy.log")?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(&config)
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
            http: format!("http://127.0.0.1:{port}"),
            socket,
            user,
            ferryctl: ferryctl.to_owned(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() && p.socket.exists() {
                return Ok(p);
            }
            if let Some(st) = p.child.try_wait()? {
                bail!("ferry-proxy exited with {st}:\n{}", p.log());
            }
            if Instant::now() > deadline {
                bail!("ferry-proxy did not come up within 20 s:\n{}", p.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }

    fn ferryctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new(&self.ferryctl);
        cmd.arg("--socket").arg(&self.socket).args(args);
        ferry_harness::apply_loopback_env(&mut cmd);
        let out = cmd
            .output()
            .with_context(|| format!("run {}", self.ferryctl.display()))?;
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

    /// Attaches `bucket` with the source's own credentials (plain http),
    /// then sets each of `modes` in turn (the proxy takes migrate only from
    /// forward).
    pub fn attach(&self, bucket: &str, source: &Store, modes: &[&str]) -> anyhow::Result<()> {
        let secret = self.dir.path().join(format!("{bucket}.source.secret"));
        write_private(&secret, &source.secret_key)?;
        let secret = secret.to_str().context("work dir path is not UTF-8")?;
        self.ferryctl(&[
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
            secret,
            "--region",
            &source.region,
        ])?;
        for mode in modes {
            self.ferryctl(&[
                "s3", "bucket", "migrate", "update", "--bucket", bucket, "--mode", mode,
            ])?;
        }
        let mode = modes.last().context("no mode to set")?;
        let show = self.ferryctl(&["s3", "bucket", "migrate", "show", bucket, "--json"])?;
        ensure!(
            show.contains(&format!("\"mode\":\"{mode}\""))
                || show.contains(&format!("\"mode\": \"{mode}\"")),
            "{bucket} is not in {mode} mode after the update: {show}"
        );
        Ok(())
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
