//! `pingora-floor` running in front of the target: the same Pingora
//! server as ferry-proxy with none of Ferry's work (see
//! `benches/src/floor/main.rs`). Its rows tell Pingora's own cost per
//! request from what Ferry adds.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct Floor {
    /// `http://127.0.0.1:PORT`
    pub http: String,
    child: Child,
}

impl Floor {
    /// Starts `bin` with a pass-through to `upstream` (`host:port`) and
    /// waits until it accepts connections.
    pub fn start(bin: &Path, upstream: &str) -> anyhow::Result<Floor> {
        let addr = format!("127.0.0.1:{}", ferry_harness::free_port()?);
        let mut child = Command::new(bin)
            .args(["--listen", &addr, "--upstream", upstream])
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
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
