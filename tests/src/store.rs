//! [`Store`]: one running S3 server on loopback.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::Context;
use aws_sdk_s3::error::DisplayErrorContext;
use tempfile::TempDir;

use crate::blocking::block_on;
use crate::client;
use crate::garage::{self, GarageNode};
use crate::moto;
use crate::ports::free_port;
use crate::process::ServerProcess;
use crate::secrets::{random_hex, wrong_secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    Garage,
    Moto,
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreKind::Garage => "garage",
            StoreKind::Moto => "moto",
        })
    }
}

/// A running S3 server on `127.0.0.1`, with its own temp dir. Dropping it
/// kills the server and deletes the temp dir.
pub struct Store {
    pub kind: StoreKind,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    port: u16,
    garage: Option<GarageNode>,
    // Field order matters: the server is killed (on drop) before its
    // directory is deleted.
    server: ServerProcess,
    dir: TempDir,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Start a single-node Garage (sqlite metadata, replication factor 1) with
    /// its layout applied and one key imported, and wait until it serves S3.
    pub fn garage() -> anyhow::Result<Store> {
        let dir = temp_dir("garage")?;
        let (node, mut server) = GarageNode::prepare(dir.path())?;
        server.start()?;
        node.initialize(&mut server)
            .context("Garage did not become ready")?;
        Ok(Store {
            kind: StoreKind::Garage,
            endpoint: format!("http://127.0.0.1:{}", node.s3_port),
            access_key: node.access_key.clone(),
            secret_key: node.secret_key.clone(),
            region: garage::REGION.to_owned(),
            port: node.s3_port,
            garage: Some(node),
            server,
            dir,
        })
    }

    /// Start `moto_server` and wait until it answers HTTP. moto keeps all
    /// data in memory and checks no signatures; any key and secret work.
    pub fn moto() -> anyhow::Result<Store> {
        let dir = temp_dir("moto")?;
        let port = free_port()?;
        let mut server = moto::prepare(dir.path(), port);
        server.start()?;
        moto::wait_ready(&mut server, port).context("moto_server did not become ready")?;
        Ok(Store {
            kind: StoreKind::Moto,
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key: format!("AKIA{}", random_hex(8).to_uppercase()),
            secret_key: random_hex(20),
            region: moto::REGION.to_owned(),
            port,
            garage: None,
            server,
            dir,
        })
    }

    pub fn start(kind: StoreKind) -> anyhow::Result<Store> {
        match kind {
            StoreKind::Garage => Store::garage(),
            StoreKind::Moto => Store::moto(),
        }
    }

    /// Create a bucket our key can read, write and own. Garage: its CLI
    /// (`bucket create` + `bucket allow`); moto: S3 CreateBucket.
    pub fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        match &self.garage {
            Some(node) => node
                .create_bucket(name)
                .with_context(|| format!("create Garage bucket {name:?}")),
            None => {
                let conf = self.config();
                let name = name.to_owned();
                block_on(move || async move {
                    aws_sdk_s3::Client::from_conf(conf)
                        .create_bucket()
                        .bucket(&name)
                        .send()
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "create moto bucket {name:?}: {}",
                                DisplayErrorContext(e)
                            )
                        })
                        .map(drop)
                })
            }
        }
    }

    /// The store's Prometheus endpoint with per-operation request counters
    /// (Garage's admin `/metrics`); moto has none.
    pub fn metrics_url(&self) -> Option<String> {
        self.garage.as_ref().map(GarageNode::metrics_url)
    }

    /// A new key that may only read `bucket`, as (access key, secret).
    /// Garage only: moto checks no permissions.
    pub fn read_only_key(&self, bucket: &str) -> anyhow::Result<(String, String)> {
        let node = self
            .garage
            .as_ref()
            .context("only Garage enforces a read-only key")?;
        let access_key = format!("GK{}", random_hex(12));
        let secret = random_hex(32);
        node.read_only_key(bucket, &access_key, &secret)?;
        Ok((access_key, secret))
    }

    /// An S3 client for this store: path style, static credentials, region,
    /// checksums only when required, `BehaviorVersion::latest()`.
    pub fn client(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.config())
    }

    /// An S3 client config, for callers that want to adjust it.
    pub fn config(&self) -> aws_sdk_s3::Config {
        client::config(
            &self.endpoint,
            &self.region,
            &self.access_key,
            &self.secret_key,
        )
    }

    /// Kill the server process (SIGKILL: simulates the store going down).
    /// The data directory is kept. Idempotent.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Start the server again on the same port with the same data directory
    /// and wait until it is ready (stopping it first if it is running).
    /// Garage keeps its data on disk, so objects and buckets survive. moto is
    /// in-memory: a restarted moto is EMPTY (no buckets, no objects).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.server.stop();
        self.server.start()?;
        match &self.garage {
            Some(node) => node
                .wait_ready(&mut self.server, GarageNode::default_ready_timeout())
                .context("restarting Garage"),
            None => moto::wait_ready(&mut self.server, self.port).context("restarting moto"),
        }
    }

    /// Garage only: S3 request counts by operation (`"HeadObject" -> n`),
    /// errors included, from Garage's admin `/metrics`
    /// (`api_s3_request_counter{api_endpoint="..."}`). Operations not yet seen
    /// are absent. moto has no request counter: this is an error there.
    pub fn request_counts(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        match &self.garage {
            Some(node) => node.request_counts(),
            None => anyhow::bail!(
                "{} has no request counter (only Garage exposes per-operation S3 request counts)",
                self.kind
            ),
        }
    }

    /// A syntactically valid secret for `access_key` that is wrong. Only
    /// Garage rejects it (403 AccessDenied); moto checks no signatures.
    pub fn wrong_secret(&self) -> String {
        wrong_secret(&self.secret_key)
    }

    /// The server's log file (stdout and stderr), for debugging.
    pub fn log_path(&self) -> &std::path::Path {
        self.server.log_path()
    }
}

fn temp_dir(kind: &str) -> anyhow::Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("ferry-{kind}-"))
        .tempdir()
        .context("create temp dir for store")
}
