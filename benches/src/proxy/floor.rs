//! `pingora-floor` running in front of a store: the same Pingora
//! server as ferry-proxy with none of Ferry's work, or with only its SigV4
//! verify and re-sign (see `benches/src/floor/main.rs`). Their rows tell
//! Pingora's own cost per request, and the signatures', from what the
//! rest of Ferry adds.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferry_harness::Store;

use crate::callgrind::{self, Callgrind};
use crate::case::{FLOOR, SIGV4_FLOOR};

/// The floors' names in the report.
pub const FLOOR_NAME: &str = "pingora-floor";
pub const SIGV4_FLOOR_NAME: &str = "pingora-floor --sigv4";

pub struct Floor {
    /// `http://127.0.0.1:PORT`
    pub http: String,
    /// The variant of its rows ([`FLOOR`] or [`SIGV4_FLOOR`]).
    pub variant: &'static str,
    /// Its path's name in the report.
    pub name: &'static str,
    /// The endpoint of the store it passes to.
    pub upstream: String,
    child: Child,
}

impl Floor {
    /// Starts `bin` with a pass-through to `store` and waits until it
    /// accepts connections. `sigv4`: it verifies and signs anew with the
    /// store's key. Under callgrind with `cg`.
    pub fn start(
        bin: &Path,
        store: &Store,
        sigv4: bool,
        cg: Option<&Callgrind>,
    ) -> anyhow::Result<Floor> {
        let addr = format!("127.0.0.1:{}", ferry_harness::free_port()?);
        let upstream = store.endpoint.trim_start_matches("http://");
        let mut cmd = callgrind::command(bin, cg);
        cmd.args(["--listen", &addr, "--upstream", upstream]);
        if sigv4 {
            cmd.args(["--sigv4", "--access-key", &store.access_key])
                .args(["--region", &store.region])
                .env("FLOOR_SECRET_KEY", &store.secret_key);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            if let Some(st) = child.try_wait()? {
                bail!("{} exited with {st} before listening", bin.display());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("{} did not listen on {addr} within 20 s", bin.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Floor {
            http: format!("http://{addr}"),
            variant: if sigv4 { SIGV4_FLOOR } else { FLOOR },
            name: if sigv4 { SIGV4_FLOOR_NAME } else { FLOOR_NAME },
            upstream: store.endpoint.clone(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        // INT: Pingora's quick shutdown (TERM waits out its grace period).
        ferry_benches::stop::stop(&mut self.child, "INT", Duration::from_secs(10));
    }
}
