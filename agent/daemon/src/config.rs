//! The agent's configuration file (TOML), read and validated before anything
//! binds. Unknown keys are refused; durations carry their unit in the name.
//! Relative paths are taken relative to the config file's folder.
//!
//! ```toml
//! state_dir = "/var/lib/ferry/agent"
//! socket_path = "/run/ferry/agent.sock"
//! socket_group = "ferry"
//! metrics_addr = "127.0.0.1:9465"
//! max_running_jobs = 2
//! shutdown_grace_secs = 60
//! ```
//!
//! Every field has a default, so an empty file is a valid config. Every
//! error names the file, the field and the problem on one line.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ferry_s3::program;
use serde::Deserialize;

/// The agent's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where jobs live (`jobs/<id>/`: spec, secrets, state, log, and a copy
    /// job's default dest folder). Created if missing (mode 0700).
    /// Default: `/var/lib/ferry/agent`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The admin API's Unix socket. Default: `/run/ferry/agent.sock`.
    #[serde(default = "default_socket_path")]
    pub socket_path: PathBuf,
    /// Group whose members may use the admin socket (besides root).
    /// Default: `ferry`.
    #[serde(default = "ferry_control::socket::default_group")]
    pub socket_group: String,
    /// Prometheus metrics listener, e.g. `"127.0.0.1:9465"`. Default: none
    /// (no metrics endpoint).
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    /// Jobs that run at once; more wait in state `queued`. A paused job
    /// keeps its slot while the agent runs. Default: 2. Reloaded on HUP.
    #[serde(default = "default_max_running_jobs")]
    pub max_running_jobs: usize,
    /// On TERM, how long running copies may take to finish the objects in
    /// flight and checkpoint before the agent exits anyway (a cut copy
    /// still resumes exactly, from its migrate.log). Default: 60.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/ferry/agent")
}
fn default_socket_path() -> PathBuf {
    PathBuf::from(ferry_control::DEFAULT_AGENT_SOCKET)
}
fn default_max_running_jobs() -> usize {
    2
}
fn default_shutdown_grace_secs() -> u64 {
    60
}

impl Default for Config {
    fn default() -> Config {
        Config {
            state_dir: default_state_dir(),
            socket_path: default_socket_path(),
            socket_group: ferry_control::socket::default_group(),
            metrics_addr: None,
            max_running_jobs: default_max_running_jobs(),
            shutdown_grace_secs: default_shutdown_grace_secs(),
        }
    }
}

/// Why a config file was refused: `FILE: FIELD: PROBLEM`, one line.
pub use ferry_s3::program::ConfigError;

impl Config {
    /// Read, parse and validate the config at `path`. Nothing is created
    /// or bound.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        program::load_toml(path, |config: &mut Config, base| {
            for p in [&mut config.state_dir, &mut config.socket_path] {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
            config.validate()
        })
    }

    /// Parse TOML text (no validation).
    pub fn parse(text: &str) -> Result<Config, String> {
        program::parse_toml(text)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.state_dir.as_os_str().is_empty() {
            return Err(("state_dir", "must not be empty".into()));
        }
        if let Ok(m) = fs::metadata(&self.state_dir)
            && !m.is_dir()
        {
            return Err((
                "state_dir",
                format!("{} exists and is not a directory", self.state_dir.display()),
            ));
        }
        ferry_control::socket::check_config(&self.socket_path, &self.socket_group)?;
        if self.max_running_jobs == 0 {
            return Err(("max_running_jobs", "must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_and_misspelt_keys_are_refused_with_the_line() {
        let e = Config::parse("max_running_jobs = 3\nmax_runing_jobs = 2\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(e.contains("max_runing_jobs"), "{e}");
        assert!(Config::parse("metrics_addr = \"nowhere\"").is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        fs::write(&file, "max_running_jobs = 0\n").unwrap();
        let e = Config::load(&file).unwrap_err();
        assert_eq!(e.field, Some("max_running_jobs"));
        fs::write(&file, "state_dir = \"agent.toml\"\n").unwrap();
        let e = Config::load(&file).unwrap_err();
        assert_eq!(e.field, Some("state_dir"), "{e}");
        fs::write(&file, "state_dir = \"state\"\nsocket_path = \"a.sock\"\n").unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(c.state_dir, dir.path().join("state"));
        assert_eq!(c.socket_path, dir.path().join("a.sock"));
    }
}
