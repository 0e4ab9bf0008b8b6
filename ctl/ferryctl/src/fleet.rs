//! The bucket verbs against a fleet's etcd (`--etcd`, or `[state]` in
//! ferryctl's config file): the same rules as a proxy's socket, and each
//! mode change fenced across every live proxy, with its steps printed.

use std::path::Path;

use ferry_control::socket::server::Refusal;
use ferry_control::{AttachRequest, BucketView, Mark, UpdateRequest, UpdateResponse};
use ferry_fleet::etcd::{self, EtcdConfig, Progress};
use ferry_fleet::source_check::S3SourceCheck;

use crate::failure::Failure;
use crate::output::one_line;

/// Where ferryctl looks for its config file.
pub const DEFAULT_CONFIG: &str = "/etc/ferry/ferryctl.toml";

/// ferryctl's config file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    state: Option<EtcdConfig>,
}

/// The fleet's etcd, from `--etcd` (first) or the config file; `None`:
/// the verbs go to the proxy's socket.
pub fn config(endpoints: &[String], file: &Path) -> Result<Option<EtcdConfig>, Failure> {
    if !endpoints.is_empty() {
        return Ok(Some(EtcdConfig::new(endpoints.to_vec())));
    }
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Failure::Usage(format!("{}: {e}", file.display()))),
    };
    let c: FileConfig = toml::from_str(&text)
        .map_err(|e| Failure::Usage(format!("{}: {}", file.display(), one_line(&e.to_string()))))?;
    Ok(c.state)
}

pub struct Fleet {
    rt: tokio::runtime::Runtime,
    fleet: etcd::Fleet,
}

impl Fleet {
    pub fn connect(config: &EtcdConfig) -> Result<Fleet, Failure> {
        let rt = crate::runtime()?;
        let fleet = rt
            .block_on(etcd::Fleet::connect(config, Box::new(S3SourceCheck)))
            .map_err(|e| match e {
                etcd::FleetError::Unreachable(_) => Failure::Unreachable(e.to_string()),
                _ => Failure::Usage(e.to_string()),
            })?;
        Ok(Fleet { rt, fleet })
    }

    pub fn attach(&self, req: AttachRequest) -> Result<BucketView, Failure> {
        self.rt.block_on(self.fleet.attach(req)).map_err(refused)
    }

    pub fn update(&self, req: UpdateRequest) -> Result<UpdateResponse, Failure> {
        self.rt
            .block_on(self.fleet.update(req, &print_progress))
            .map_err(refused)
    }

    pub fn detach(&self, bucket: &str, force: bool) -> Result<BucketView, Failure> {
        let view = self
            .rt
            .block_on(self.fleet.detach(bucket, force))
            .map_err(refused)?;
        eprintln!(
            "ferryctl: note: the delete journal's entries of {bucket} stay on the target; a \
             proxy's own `detach` (over its socket) clears them"
        );
        Ok(view)
    }

    pub fn show(&self, bucket: &str) -> Result<BucketView, Failure> {
        self.rt.block_on(self.fleet.show(bucket)).map_err(refused)
    }

    pub fn mark(&self, bucket: &str, mark: Mark) -> Result<BucketView, Failure> {
        self.rt
            .block_on(self.fleet.mark(bucket, mark))
            .map_err(refused)
    }

    pub fn list(&self) -> Result<Vec<BucketView>, Failure> {
        self.rt.block_on(self.fleet.list()).map_err(refused)
    }
}

fn refused(r: Refusal) -> Failure {
    Failure::Refused(r.error)
}

/// The fence's steps, on stderr (stdout holds the answer).
fn print_progress(p: Progress) {
    match p {
        Progress::Fencing { buckets, members } => {
            let buckets: Vec<String> = buckets
                .iter()
                .map(|(b, epoch)| format!("{b} (epoch {epoch})"))
                .collect();
            if members.is_empty() {
                eprintln!(
                    "fencing {}: no proxy is registered in the fleet; nothing to wait for",
                    buckets.join(", ")
                );
            } else {
                eprintln!(
                    "fencing {}: waiting for {} to drain their writes: {}",
                    buckets.join(", "),
                    proxies(members.len()),
                    members.join(", ")
                );
            }
        }
        Progress::Waiting { members } => {
            eprintln!("still waiting for: {}", members.join(", "));
        }
        Progress::TakingOver {
            bucket,
            epoch,
            since,
        } => {
            eprintln!(
                "{bucket}: taking over the change of epoch {epoch}, begun at {since} and never \
                 finished (its ferryctl died?)"
            );
        }
        Progress::Fenced { members } => {
            eprintln!(
                "all {} acknowledged; putting the new mode in force",
                proxies(members.len())
            );
        }
    }
}

fn proxies(n: usize) -> String {
    match n {
        1 => "1 proxy".to_owned(),
        n => format!("{n} proxies"),
    }
}
