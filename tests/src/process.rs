//! One server child process: started with its output in a log file, killed
//! on stop and on drop.

use crate::log_tail::tail;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::env::apply_loopback_env;

pub struct ServerProcess {
    name: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    log: PathBuf,
    child: Option<Child>,
}

impl ServerProcess {
    /// Describe a server; nothing runs until [`ServerProcess::start`].
    pub fn new(name: &'static str, program: PathBuf, args: Vec<OsString>, log: PathBuf) -> Self {
        Self {
            name,
            program,
            args,
            envs: Vec::new(),
            log,
            child: None,
        }
    }

    /// Set an extra environment variable for the server.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Spawn the server (stdout and stderr appended to the log file).
    pub fn start(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "{} is already running", self.name);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("open log {}", self.log.display()))?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        apply_loopback_env(&mut cmd);
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        let child = cmd
            .spawn()
            .map_err(|e| missing_binary_error(self.name, &self.program, e))?;
        self.child = Some(child);
        Ok(())
    }

    /// Kill the process (SIGKILL) and reap it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Error (with the log's tail) if the process is not running any more.
    pub fn ensure_alive(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            anyhow::bail!("{} is not running", self.name);
        };
        if let Some(status) = child.try_wait()? {
            self.child = None;
            anyhow::bail!(
                "{} exited during startup with {status}\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of the log, labelled, for error messages.
    pub fn log_tail(&self) -> String {
        format!(
            "--- last lines of {} ---\n{}",
            self.log.display(),
            tail(&self.log, 30)
        )
    }

    /// Poll `probe` until it returns `Ok(true)`, the process dies, or
    /// `timeout` passes. Errors carry the probe's last error and the log tail.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last: String;
        loop {
            self.ensure_alive()?;
            match probe() {
                Ok(true) => return Ok(()),
                Ok(false) => last = "not ready yet".into(),
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{}: {what} not ready after {timeout:?} (last: {last})\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Turn a spawn failure into a message that says how to get the binary.
pub fn missing_binary_error(name: &str, program: &Path, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        let var = match name {
            "garage" => " (or set GARAGE_BIN to its path)",
            "moto_server" => " (or set MOTO_SERVER to its path)",
            _ => "",
        };
        anyhow::anyhow!(
            "{name} binary not found at {}: run scripts/setup to install it{var}",
            program.display()
        )
    } else {
        anyhow::anyhow!("cannot run {name} ({}): {e}", program.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_scripts_setup() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = ServerProcess::new(
            "garage",
            dir.path().join("no-such-garage"),
            vec![],
            dir.path().join("log"),
        );
        let err = p.start().unwrap_err().to_string();
        assert!(err.contains("scripts/setup"), "{err}");
        assert!(err.contains("no-such-garage"), "{err}");
    }

    #[test]
    fn early_exit_reports_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = ServerProcess::new(
            "sh",
            "/bin/sh".into(),
            vec!["-c".into(), "echo boom-marker >&2; exit 3".into()],
            dir.path().join("log"),
        );
        p.start().unwrap();
        let err = p
            .wait_until("never", Duration::from_secs(10), || Ok(false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("boom-marker"), "{err}");
        assert!(err.contains("exited"), "{err}");
    }
}
