//! The real `ferry-agent` binary on a temp config, state folder and socket,
//! and the real `ferryctl` binary to drive it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Store;
pub use crate::{agent_bin, ferryctl_bin};
use tempfile::TempDir;

pub use crate::ferryctl::Run;

/// Runs `cmd` (a `ferryctl` command) with nothing on its stdin.
pub fn run(cmd: Command) -> Run {
    crate::ferryctl::run(cmd, "")
}

/// One agent process and its folder. Dropping it kills the agent and
/// removes the folder.
pub struct Agent {
    child: Option<Child>,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    /// The agent's stderr, across restarts.
    pub log: PathBuf,
    pub dir: TempDir,
}

impl Agent {
    /// An agent whose socket group is `ferry`, with `extra` config lines.
    pub fn start(extra: &str) -> Agent {
        Agent::start_with_group("ferry", extra)
    }

    pub fn start_with_group(group: &str, extra: &str) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("ferry-agent-")
            .tempdir()
            .unwrap();
        // Traversable, so that another uid can reach the socket.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("agent.toml");
        let socket = dir.path().join("agent.sock");
        let state_dir = dir.path().join("state");
        let mut f = std::fs::File::create(&config).unwrap();
        writeln!(
            f,
            "state_dir = {:?}\nsocket_path = {:?}\nsocket_group = {group:?}\nshutdown_grace_secs = 30\n{extra}",
            state_dir.to_str().unwrap(),
            socket.to_str().unwrap(),
        )
        .unwrap();
        let log = dir.path().join("agent.stderr");
        let mut a = Agent {
            child: None,
            config,
            socket,
            state_dir,
            log,
            dir,
        };
        a.spawn();
        a
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(agent_bin())
            .arg("--config")
            .arg(&self.config)
            .env("FERRY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&self.socket).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "ferry-agent exited ({status}) before serving:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "ferry-agent did not serve its socket in time:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no chance to checkpoint anything.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("running");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// SIGTERM, and wait for the exit.
    pub fn term(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "ferry-agent ignored TERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start the agent again on the same config and state.
    pub fn restart(&mut self) {
        self.spawn();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ferryctl --agent-socket SOCKET ARGS…`.
    pub fn ferryctl(&self, args: &[&str]) -> Run {
        self.ferryctl_env(args, &[])
    }

    pub fn ferryctl_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(ferryctl_bin());
        cmd.env_remove("S3MIGRATE_SRC_SECRET")
            .env_remove("S3MIGRATE_DEST_SECRET")
            .arg("--agent-socket")
            .arg(&self.socket)
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(cmd)
    }

    /// `job show ID --json`.
    pub fn show(&self, id: u64) -> serde_json::Value {
        self.ferryctl(&["job", "show", &id.to_string(), "--json"])
            .ok()
            .json()
    }

    /// Polls `job show` until `done` holds for it.
    #[track_caller]
    pub fn wait_for(
        &self,
        id: u64,
        what: &str,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.show(id);
            if done(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "job {id}: {what} did not happen in {timeout:?}; last view: {v:#}\nagent log:\n{}\njob log:\n{}",
                tail(&self.stderr(), 40),
                self.job_log(id)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[track_caller]
    pub fn wait_state(&self, id: u64, state: &str, timeout: Duration) -> serde_json::Value {
        self.wait_for(id, &format!("state {state}"), timeout, |v| {
            v["state"] == state
        })
    }

    pub fn job_dir(&self, id: u64) -> PathBuf {
        self.state_dir.join("jobs").join(id.to_string())
    }

    pub fn job_log(&self, id: u64) -> String {
        std::fs::read_to_string(self.job_dir(id).join("job.log")).unwrap_or_default()
    }

    /// The lines of a copy job's migrate.log (in its default dest folder).
    pub fn migrate_log(&self, id: u64) -> Vec<String> {
        std::fs::read_to_string(self.job_dir(id).join("dest/migrate.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until a copy job's migrate.log has at least `n` lines.
    #[track_caller]
    pub fn wait_log_lines(&self, id: u64, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let have = self.migrate_log(id).len();
            if have >= n {
                return have;
            }
            assert!(
                Instant::now() < deadline,
                "job {id}: migrate.log has {have} lines, waited for {n}\njob log:\n{}\nagent log:\n{}",
                self.job_log(id),
                tail(&self.stderr(), 40)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `job start migrate` arguments for `src-bucket` → `dest-bucket`, with
/// the source listed (no key list). The source secret is passed through
/// the environment, the destination's from a 0600 file (both ways
/// ferryctl takes them): see [`migrate_env`].
pub fn migrate_args(src: &Store, dest: &Store, dest_secret_file: &Path) -> Vec<String> {
    [
        "job",
        "start",
        "migrate",
        "--src-url",
        &src.endpoint,
        "--src-bucket",
        "src-bucket",
        "--src-key",
        &src.access_key,
        "--src-region",
        &src.region,
        "--src-list",
        "--dest-url",
        &dest.endpoint,
        "--dest-bucket",
        "dest-bucket",
        "--dest-key",
        &dest.access_key,
        "--dest-region",
        &dest.region,
        "--dest-secret-file",
        dest_secret_file.to_str().unwrap(),
        "--progress-interval-secs",
        "1",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `job start migrate` arguments of a live migration's copy of `bucket`:
/// the source listed, read as `src_key` (its secret in `src_secret`),
/// written to the same bucket on the target, with the proxy's delete
/// journal `journal`. The caller adds the rest (passes, threads, shares).
pub fn live_copy_args(
    source: &Store,
    (src_key, src_secret): (&str, &Path),
    target: &Store,
    target_secret: &Path,
    bucket: &str,
    journal: &str,
) -> Vec<String> {
    [
        "job",
        "start",
        "migrate",
        "--src-url",
        &source.endpoint,
        "--src-bucket",
        bucket,
        "--src-key",
        src_key,
        "--src-region",
        &source.region,
        "--src-secret-file",
        src_secret.to_str().unwrap(),
        "--src-list",
        "--dest-url",
        &target.endpoint,
        "--dest-bucket",
        bucket,
        "--dest-key",
        &target.access_key,
        "--dest-region",
        &target.region,
        "--dest-secret-file",
        target_secret.to_str().unwrap(),
        "--delete-journal",
        journal,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Writes `secret` into a 0600 file in `dir`.
pub fn secret_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// The WEKA progress line, every field.
pub fn weka_line() -> regex::Regex {
    regex::Regex::new(
        r"obj=\d+ :: ign=\d+ exist=\d+ work=\d+ \[\d+% ~(\?|\d+h:\d{2}m:\d{2}s)\] :: fail=\d+ skip\(dn=\d+ up=\d+\) dnld=\d+ \(\d+\.\d/s\) dl\.byt=\d+(\.\d)?[KMGTP]?B \(\d+(\.\d)?[KMGTP]?B/s\) upld=\d+ \(\d+\.\d/s\) ul\.byt=\d+(\.\d)?[KMGTP]?B \(\d+(\.\d)?[KMGTP]?B/s\)",
    )
    .unwrap()
}

/// Asserts `lines` are strictly increasing (sorted, no key twice).
#[track_caller]
pub fn assert_strictly_sorted(lines: &[String]) {
    for w in lines.windows(2) {
        assert!(
            w[0] < w[1],
            "migrate.log is not strictly sorted: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
}
