//! A real etcd cluster on loopback, for tests of code that keeps its state
//! in etcd: n members started as one static cluster, each killable,
//! restartable (it rejoins with its data) and pausable (SIGSTOP, to cut its
//! clients off without the cluster noticing a crash).
//!
//! ```no_run
//! let Some(mut etcd) = ferry_harness::etcd::EtcdCluster::start_or_skip("my_test", 3) else {
//!     return;
//! };
//! let endpoints = etcd.endpoints();
//! etcd.kill(0);
//! etcd.restart(0);
//! ```
//!
//! [`EtcdCluster::start_tls`] serves the members' client URLs over https
//! with a given certificate (optionally asking clients for one of theirs);
//! the members still speak plain http to each other, on loopback.
//!
//! The binary is `$ETCD_BIN`, else `etcd` on `PATH` (`scripts/setup`
//! installs Debian's etcd-server).
//!
//! This module needs neither an S3 client nor the `stores` feature, so it
//! has its own small health probe instead of the stores' HTTP helper; over
//! TLS the probe is `curl`.

use crate::log_tail::tail;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::env::apply_loopback_env;
use crate::ports::free_port;

/// How long every member may take to report healthy, after a start or a
/// restart.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of a member's log shown in a failure.
const TAIL_LINES: usize = 40;

/// A running etcd cluster; every member is killed when it is dropped, and
/// its data dirs and logs removed.
pub struct EtcdCluster {
    members: Vec<Member>,
    /// `m0=http://127.0.0.1:PEER,...`: a restarted member needs the same.
    initial_cluster: String,
    token: String,
    bin: PathBuf,
    /// Client TLS, if the members serve https.
    tls: Option<EtcdTls>,
    // Declared last so that it is removed after the members are dead.
    dir: tempfile::TempDir,
}

/// Client TLS of a cluster's members ([`EtcdCluster::start_tls`]): each
/// serves its client URL over https with `cert` and `key` (a certificate
/// for `127.0.0.1`), which `ca` signed. With `client_cert_auth`, a member
/// also refuses a client without a certificate that `ca` signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_cert_auth: bool,
}

impl EtcdTls {
    /// Server TLS only: clients need `ca`, no certificate of their own.
    pub fn new(ca: impl Into<PathBuf>, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        EtcdTls {
            ca: ca.into(),
            cert: cert.into(),
            key: key.into(),
            client_cert_auth: false,
        }
    }

    /// The members ask every client for a certificate `ca` signed
    /// (`--client-cert-auth --trusted-ca-file`).
    pub fn with_client_cert_auth(mut self) -> Self {
        self.client_cert_auth = true;
        self
    }
}

/// The harness's test CA and its leaf for `127.0.0.1`, server TLS only.
#[cfg(feature = "stores")]
impl From<&crate::tls::TestCa> for EtcdTls {
    fn from(ca: &crate::tls::TestCa) -> Self {
        EtcdTls::new(&ca.ca, &ca.cert, &ca.key)
    }
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: AtomicBool,
}

impl EtcdCluster {
    /// Starts `n` members as one new cluster and waits until each reports
    /// healthy. Panics if etcd is missing (tests that may run without it
    /// use [`EtcdCluster::start_or_skip`]), or if a member does not become
    /// healthy within 30 s (with the tail of its log).
    pub fn start(n: usize) -> EtcdCluster {
        let bin = etcd_bin().unwrap_or_else(|why| panic!("{why}"));
        Self::start_with(bin, n, None)
    }

    /// [`EtcdCluster::start`] with the members' client URLs served over
    /// https with `tls` ([`EtcdCluster::endpoints`] are then
    /// `https://127.0.0.1:PORT`); the health checks go over TLS too, with
    /// `curl`.
    pub fn start_tls(n: usize, tls: EtcdTls) -> EtcdCluster {
        let bin = etcd_bin().unwrap_or_else(|why| panic!("{why}"));
        Self::start_with(bin, n, Some(tls))
    }

    /// [`EtcdCluster::start_tls`], or `None` after reporting the test
    /// skipped when etcd is not installed (as
    /// [`EtcdCluster::start_or_skip`]).
    pub fn start_tls_or_skip(test: &str, n: usize, tls: EtcdTls) -> Option<EtcdCluster> {
        match etcd_bin() {
            Ok(bin) => Some(Self::start_with(bin, n, Some(tls))),
            Err(why) => {
                crate::skip(test, &why);
                None
            }
        }
    }

    /// [`EtcdCluster::start`], or `None` after reporting the test skipped
    /// (see [`crate::skip`]; a failure under `FERRY_REQUIRE_ALL=1`) when
    /// etcd is not installed. The caller then returns.
    pub fn start_or_skip(test: &str, n: usize) -> Option<EtcdCluster> {
        match etcd_bin() {
            Ok(bin) => Some(Self::start_with(bin, n, None)),
            Err(why) => {
                crate::skip(test, &why);
                None
            }
        }
    }

    fn start_with(bin: PathBuf, n: usize, tls: Option<EtcdTls>) -> EtcdCluster {
        assert!(n >= 1, "an etcd cluster needs at least one member");
        let dir = tempfile::Builder::new()
            .prefix("ferry-etcd-")
            .tempdir()
            .expect("create a temp dir for etcd");
        let members: Vec<Member> = (0..n)
            .map(|i| {
                let port = || free_port().expect("pick a free loopback port for etcd");
                Member {
                    name: format!("m{i}"),
                    client_port: port(),
                    peer_port: port(),
                    data_dir: dir.path().join(format!("m{i}.data")),
                    log: dir.path().join(format!("m{i}.log")),
                    child: None,
                    paused: AtomicBool::new(false),
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members,
            initial_cluster,
            token: unique_token(),
            bin,
            tls,
            dir,
        };
        // All members before any wait: none is healthy until a quorum runs.
        for i in 0..n {
            cluster.spawn(i, "new");
        }
        let all: Vec<usize> = (0..n).collect();
        cluster.wait_healthy(&all);
        cluster
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a cluster has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The client URLs, `http://127.0.0.1:PORT` (`https://` with TLS), of
    /// all members (killed and paused ones too), in member order.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.endpoint(i)).collect()
    }

    /// The client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        self.client_url(self.member(i))
    }

    /// The client TLS the members serve with, if any.
    pub fn tls(&self) -> Option<&EtcdTls> {
        self.tls.as_ref()
    }

    fn client_url(&self, m: &Member) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", m.client_port)
    }

    /// The process id of member `i`, if it is running (or paused).
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.member(i).child.as_ref().map(Child::id)
    }

    /// The temp dir holding the members' data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGKILLs member `i` and reaps it. Does nothing if it is not running.
    pub fn kill(&mut self, i: usize) {
        let m = self.member_mut(i);
        if let Some(mut child) = m.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        m.paused.store(false, Ordering::SeqCst);
    }

    /// Starts the killed member `i` again on its data dir, ports and flags,
    /// as a member of the existing cluster, and waits until it is healthy.
    /// Panics if it is still running.
    pub fn restart(&mut self, i: usize) {
        assert!(
            self.member(i).child.is_none(),
            "etcd member {i} is still running: kill it before restarting it"
        );
        self.spawn(i, "existing");
        self.wait_healthy(&[i]);
    }

    /// SIGSTOPs member `i`: its connections stay open but it answers
    /// nothing, and its peers see it as unreachable rather than gone.
    pub fn pause(&self, i: usize) {
        self.signal(i, "STOP");
        self.member(i).paused.store(true, Ordering::SeqCst);
    }

    /// SIGCONTs member `i` after [`EtcdCluster::pause`].
    pub fn resume(&self, i: usize) {
        self.signal(i, "CONT");
        self.member(i).paused.store(false, Ordering::SeqCst);
    }

    /// Whether member `i` answers `GET /health` with `"health":"true"` now
    /// (false for a killed or paused member).
    pub fn is_healthy(&self, i: usize) -> bool {
        self.health(i).unwrap_or(false)
    }

    /// `GET /health` on member `i`: whether the body says
    /// `"health":"true"`. Over TLS with `curl`, which verifies the member
    /// with the CA (and shows the member's certificate as its own when the
    /// member asks for one).
    fn health(&self, i: usize) -> Result<bool, String> {
        let port = self.member(i).client_port;
        let Some(tls) = &self.tls else {
            return health(port);
        };
        let url = format!("https://127.0.0.1:{port}/health");
        let mut cmd = Command::new("curl");
        // Short timeouts, as the plain probe's: a paused member accepts
        // the connection but never answers.
        cmd.args(["--silent", "--show-error", "--connect-timeout", "1"])
            .args(["--max-time", "3", "--cacert"])
            .arg(&tls.ca);
        if tls.client_cert_auth {
            cmd.arg("--cert").arg(&tls.cert).arg("--key").arg(&tls.key);
        }
        cmd.arg(&url).stdin(Stdio::null());
        apply_loopback_env(&mut cmd);
        let out = cmd
            .output()
            .map_err(|e| format!("run curl (needed for an etcd over TLS): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "curl {url}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).contains("\"health\":\"true\""))
    }

    /// The last lines of member `i`'s log (all its runs), labelled, for
    /// failure messages.
    pub fn log_tail(&self, i: usize) -> String {
        let m = self.member(i);
        format!(
            "--- last lines of etcd member {} ({}) ---\n{}",
            m.name,
            m.log.display(),
            tail(&m.log, TAIL_LINES)
        )
    }

    fn member(&self, i: usize) -> &Member {
        let n = self.members.len();
        self.members
            .get(i)
            .unwrap_or_else(|| panic!("no etcd member {i}: the cluster has {n}"))
    }

    fn member_mut(&mut self, i: usize) -> &mut Member {
        let n = self.members.len();
        self.members
            .get_mut(i)
            .unwrap_or_else(|| panic!("no etcd member {i}: the cluster has {n}"))
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let args = self.args(i, state);
        let bin = self.bin.clone();
        let m = self.member_mut(i);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", m.log.display()));
        // The log is kept across restarts: a marker tells the runs apart.
        let _ = writeln!(log, "=== ferry harness: etcd {} {}", m.name, args.join(" "));
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the etcd log handle"))
            .stderr(log);
        apply_loopback_env(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run etcd ({}): {e}", bin.display()));
        m.child = Some(child);
    }

    fn args(&self, i: usize, state: &str) -> Vec<String> {
        let m = self.member(i);
        let client = self.client_url(m);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let data_dir = m.data_dir.to_string_lossy().into_owned();
        let mut args = [
            "--name",
            &m.name,
            "--data-dir",
            &data_dir,
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &self.initial_cluster,
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            &self.token,
            "--heartbeat-interval",
            "100",
            "--election-timeout",
            "1000",
            // A login token lives 2 s, not 300: a client that does not
            // renew its token fails in a test as it would after 5 idle
            // minutes in production.
            "--auth-token-ttl",
            "2",
            // 3.4's default logger is the deprecated capnslog, which warns so.
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
        ]
        .map(str::to_owned)
        .to_vec();
        if let Some(tls) = &self.tls {
            let path = |p: &Path| p.to_string_lossy().into_owned();
            args.extend([
                "--cert-file".to_owned(),
                path(&tls.cert),
                "--key-file".to_owned(),
                path(&tls.key),
            ]);
            if tls.client_cert_auth {
                args.extend([
                    "--client-cert-auth".to_owned(),
                    "--trusted-ca-file".to_owned(),
                    path(&tls.ca),
                ]);
            }
        }
        args
    }

    /// Waits until each of `which` is healthy, panicking with the member's
    /// log tail if it exits or [`READY_TIMEOUT`] passes.
    fn wait_healthy(&mut self, which: &[usize]) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut pending: Vec<usize> = which.to_vec();
        while let Some(&i) = pending.first() {
            let exited = match self.member_mut(i).child.as_mut() {
                Some(child) => child.try_wait().ok().flatten(),
                None => panic!("etcd member {i} is not running"),
            };
            if let Some(status) = exited {
                self.member_mut(i).child = None;
                panic!(
                    "etcd member {i} ({}) exited with {status} before it was healthy\n{}",
                    self.endpoint(i),
                    self.log_tail(i)
                );
            }
            let last = match self.health(i) {
                Ok(true) => {
                    pending.remove(0);
                    continue;
                }
                Ok(false) => "health is not true yet".to_owned(),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "etcd member {i} ({}) not healthy after {} s (last: {last})\n{}",
                    self.endpoint(i),
                    READY_TIMEOUT.as_secs(),
                    self.log_tail(i)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `SIG<name>` to member `i` with kill(1): the harness depends on
    /// neither nix nor libc, and unsafe code is denied.
    fn signal(&self, i: usize, name: &str) {
        let pid = self
            .pid(i)
            .unwrap_or_else(|| panic!("etcd member {i} is not running"));
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap_or_else(|e| panic!("run `kill -{name} {pid}`: {e}"));
        assert!(
            status.success(),
            "`kill -{name} {pid}` failed with {status}"
        );
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].paused.load(Ordering::SeqCst) {
                // Best effort: a failure here must not hide the test's own.
                let _ = Command::new("kill")
                    .arg("-CONT")
                    .args(self.pid(i).map(|p| p.to_string()))
                    .status();
            }
            self.kill(i);
        }
    }
}

/// The etcd binary: `$ETCD_BIN`, else `etcd` on `PATH`; the error says
/// how to get it.
fn etcd_bin() -> Result<PathBuf, String> {
    let given = std::env::var_os("ETCD_BIN").filter(|v| !v.is_empty());
    let name = given.clone().unwrap_or_else(|| OsString::from("etcd"));
    resolve(&name, std::env::var_os("PATH")).ok_or_else(|| match given {
        Some(p) => format!("ETCD_BIN={} is not a file", Path::new(&p).display()),
        None => "etcd is not on PATH: run scripts/setup (it installs etcd-server), \
                 or set ETCD_BIN to its path"
            .to_owned(),
    })
}

/// `program` itself if it names a path, else the first file of that name
/// in `path`'s dirs.
fn resolve(program: &OsString, path: Option<OsString>) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_owned());
    }
    std::env::split_paths(&path?)
        .map(|d| d.join(p))
        .find(|f| f.is_file())
}

/// A cluster token no other cluster started on this machine has, so that a
/// stray member of an earlier run can never join this one.
fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "ferry-test-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `GET /health` on `127.0.0.1:port`: whether the body says
/// `"health":"true"`.
fn health(port: u16) -> Result<bool, String> {
    let (_, body) = request(port, "GET", "/health", "")?;
    Ok(body.contains("\"health\":\"true\""))
}

/// One HTTP/1.0 request (so that the body ends at the close, never
/// chunked) to `127.0.0.1:port`: the status and the body. Short timeouts,
/// because a paused member accepts the connection (the kernel does) but
/// never answers.
fn request(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let io = |e: std::io::Error| format!("{method} {addr}{path}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(3)))
        .map_err(io)?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {addr}{path}: no HTTP status in {head:?}"))?;
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // etcdctl is not installed with etcd-server (it is Debian's
    // etcd-client, which scripts/setup does not install), so the tests
    // speak etcd's v3 JSON gateway; keys and values are base64.
    const K1: &str = "azE="; // "k1"
    const V1: &str = "djE="; // "v1"
    const K2: &str = "azI="; // "k2"
    const V2: &str = "djI="; // "v2"

    /// Runs `op` on the members `on` in turn, as a client with those
    /// endpoints would fail over, until one succeeds; retried for a while
    /// because killing a member may kill the leader, and requests fail
    /// until the others have elected a new one.
    fn with_failover<T>(
        etcd: &EtcdCluster,
        on: &[usize],
        op: impl Fn(u16) -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut errors = Vec::new();
            for &i in on {
                match op(etcd.member(i).client_port) {
                    Ok(v) => return v,
                    Err(e) => errors.push(e),
                }
            }
            assert!(Instant::now() < deadline, "{}", errors.join("\n"));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn call(port: u16, path: &str, body: serde_json::Value) -> Result<serde_json::Value, String> {
        let (status, text) = request(port, "POST", path, &body.to_string())?;
        if status != 200 {
            return Err(format!("POST {path} on port {port}: HTTP {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("POST {path}: {e}: {text}"))
    }

    fn put(etcd: &EtcdCluster, on: &[usize], key: &str, value: &str) {
        let body = serde_json::json!({"key": key, "value": value});
        with_failover(etcd, on, |port| call(port, "/v3/kv/put", body.clone()));
    }

    /// The value of `key` (both base64), `None` if it is absent.
    fn get(etcd: &EtcdCluster, on: &[usize], key: &str) -> Option<String> {
        let body = serde_json::json!({"key": key});
        let answer = with_failover(etcd, on, |port| call(port, "/v3/kv/range", body.clone()));
        answer["kvs"][0]["value"].as_str().map(str::to_owned)
    }

    #[test]
    fn three_members_survive_one_killed_and_it_rejoins() {
        let test = "etcd::three_members_survive_one_killed_and_it_rejoins";
        let Some(mut etcd) = EtcdCluster::start_or_skip(test, 3) else {
            return;
        };
        assert_eq!(etcd.endpoints().len(), 3);
        for i in 0..3 {
            assert!(etcd.is_healthy(i), "{}", etcd.log_tail(i));
        }

        put(&etcd, &[0, 1, 2], K1, V1);
        assert_eq!(get(&etcd, &[2], K1).as_deref(), Some(V1));
        assert_eq!(get(&etcd, &[1], K2), None);

        etcd.kill(0);
        assert_eq!(etcd.pid(0), None);
        assert!(!etcd.is_healthy(0));
        put(&etcd, &[1, 2], K2, V2);
        assert_eq!(get(&etcd, &[1, 2], K1).as_deref(), Some(V1));

        etcd.restart(0);
        assert!(etcd.is_healthy(0), "{}", etcd.log_tail(0));
        // Written while it was down: it has caught up from the others.
        assert_eq!(get(&etcd, &[0], K2).as_deref(), Some(V2));
        let log = std::fs::read_to_string(&etcd.member(0).log).unwrap();
        assert_eq!(
            log.matches("--initial-cluster-state existing").count(),
            1,
            "{}",
            etcd.log_tail(0)
        );
    }

    #[test]
    fn a_paused_member_answers_nothing_until_resumed_and_drop_reaps_it() {
        let test = "etcd::a_paused_member_answers_nothing_until_resumed_and_drop_reaps_it";
        let Some(etcd) = EtcdCluster::start_or_skip(test, 1) else {
            return;
        };
        etcd.pause(0);
        assert!(!etcd.is_healthy(0));
        etcd.resume(0);
        assert!(etcd.is_healthy(0), "{}", etcd.log_tail(0));

        // Dropped while stopped: Drop must still kill and reap it.
        etcd.pause(0);
        let pid = etcd.pid(0).unwrap();
        let dir = etcd.dir().to_owned();
        drop(etcd);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        assert!(!dir.exists());
    }

    #[cfg(feature = "stores")]
    #[test]
    fn a_tls_cluster_serves_https_only_and_a_restarted_member_keeps_it() {
        let test = "etcd::a_tls_cluster_serves_https_only_and_a_restarted_member_keeps_it";
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::tls::test_ca(dir.path(), "etcd").unwrap();
        let tls = EtcdTls::from(&ca).with_client_cert_auth();
        let Some(mut etcd) = EtcdCluster::start_tls_or_skip(test, 1, tls.clone()) else {
            return;
        };
        assert_eq!(etcd.tls(), Some(&tls));
        let port = etcd.member(0).client_port;
        assert_eq!(etcd.endpoints(), [format!("https://127.0.0.1:{port}")]);
        assert!(etcd.is_healthy(0), "{}", etcd.log_tail(0));
        // Neither plain http nor a client without a certificate is served.
        let plain = health(port);
        assert!(!matches!(plain, Ok(true)), "plain http: {plain:?}");
        let no_cert = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "3", "--cacert"])
            .arg(&ca.ca)
            .arg(format!("https://127.0.0.1:{port}/health"))
            .output()
            .unwrap();
        assert!(
            !no_cert.status.success(),
            "no client certificate: {}",
            String::from_utf8_lossy(&no_cert.stdout)
        );

        // A restart keeps the flags, TLS among them.
        etcd.kill(0);
        assert!(!etcd.is_healthy(0));
        etcd.restart(0);
        assert!(etcd.is_healthy(0), "{}", etcd.log_tail(0));
        let log = std::fs::read_to_string(&etcd.member(0).log).unwrap();
        assert_eq!(
            log.matches("--client-cert-auth --trusted-ca-file").count(),
            2,
            "{}",
            etcd.log_tail(0)
        );
    }

    #[test]
    fn resolves_a_path_or_a_name_on_path() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("etcd");
        std::fs::write(&prog, "").unwrap();
        let path = Some(dir.path().as_os_str().to_owned());
        assert_eq!(resolve(&"etcd".into(), path.clone()), Some(prog.clone()));
        assert_eq!(resolve(&prog.clone().into_os_string(), None), Some(prog));
        assert_eq!(resolve(&"etcdX".into(), path), None);
        assert_eq!(resolve(&dir.path().join("no").into_os_string(), None), None);
    }
}
