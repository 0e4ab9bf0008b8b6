//! Launching a `ferry-proxy` in front of a target store and driving it with
//! `ferryctl`: the steps the proxy tests ([`super::Proxy`]) and
//! `bench-proxy` share. These return errors rather than panic, because the
//! benchmark reports them; the tests unwrap.

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::Store;

/// How long a proxy may take to listen on both its TCP port and its socket.
const START_LIMIT: Duration = Duration::from_secs(20);

/// Writes `text` readable by its owner only: the proxy refuses a secret or
/// users file that others can read.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))
}

/// Where a proxy listens, and its config file.
pub struct Layout {
    pub config: PathBuf,
    pub socket: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub http: String,
}

/// The log of the proxy whose work dir is `dir`.
pub fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("proxy.log")).unwrap_or_default()
}

/// Writes, in `dir`, the target's secret and `proxy.toml` for `target` on a
/// free loopback port, with `users.toml` of `dir` (the caller writes it)
/// and `extra` top-level lines.
pub fn write_config(dir: &Path, target: &Store, extra: &str) -> anyhow::Result<Layout> {
    write_private(&dir.join("target.secret"), &target.secret_key)?;
    let port = crate::free_port()?;
    let socket = dir.join("proxy.sock");
    let config = dir.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "{extra}http_addr = \"127.0.0.1:{port}\"\nusers_file = \"{users}\"\nstate_file = \"{state}\"\n\
             socket_path = \"{sock}\"\nsocket_group = \"root\"\n\n[target]\nurl = \"{url}\"\n\
             region = \"{region}\"\naccess_key = \"{key}\"\nsecret_file = \"{secret}\"\n",
            users = dir.join("users.toml").display(),
            state = dir.join("state.json").display(),
            sock = socket.display(),
            url = target.endpoint,
            region = target.region,
            key = target.access_key,
            secret = dir.join("target.secret").display(),
        ),
    )
    .context("write proxy.toml")?;
    Ok(Layout {
        config,
        socket,
        http: format!("http://127.0.0.1:{port}"),
    })
}

/// Makes the proxy of `config` a fleet member: its `state_file` line
/// gives way to a `[state]` section holding `state`.
pub fn join_fleet_config(config: &Path, state: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config).context("read proxy.toml")?;
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("state_file ="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(config, format!("{text}\n[state]\n{state}\n")).context("write proxy.toml")
}

/// Waits until the proxy `child`, whose work dir is `dir`, listens on
/// `http` and on `socket`.
pub fn wait_listening(
    child: &mut Child,
    http: &str,
    socket: &Path,
    dir: &Path,
) -> anyhow::Result<()> {
    let addr = http.trim_start_matches("http://");
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if TcpStream::connect(addr).is_ok() && socket.exists() {
            return Ok(());
        }
        if let Some(st) = child.try_wait()? {
            bail!("ferry-proxy exited with {st}:\n{}", read_log(dir));
        }
        if Instant::now() > deadline {
            bail!(
                "ferry-proxy did not come up within {} s:\n{}",
                START_LIMIT.as_secs(),
                read_log(dir)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ferryctl --socket SOCKET ARGS...`, to run.
pub fn ferryctl(ferryctl: &Path, socket: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(ferryctl);
    cmd.arg("--socket").arg(socket).args(args);
    cmd
}

/// The `ferryctl` arguments that attach `bucket` of `source` with the
/// source's own credentials (the forwarding user), plain http; the secret
/// goes to a file in `dir`.
pub fn attach_args(dir: &Path, bucket: &str, source: &Store) -> anyhow::Result<Vec<String>> {
    let secret = dir.join(format!("{bucket}.source.secret"));
    write_private(&secret, &source.secret_key)?;
    let secret = secret.to_str().context("work dir path is not UTF-8")?;
    Ok([
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
    ]
    .map(str::to_owned)
    .to_vec())
}

/// The `ferryctl` arguments that set `bucket`'s mode.
pub fn set_mode_args<'a>(bucket: &'a str, mode: &'a str) -> [&'a str; 8] {
    [
        "s3", "bucket", "migrate", "update", "--bucket", bucket, "--mode", mode,
    ]
}
