//! An in-process admin server (the proxy's real `Admin` on a temp socket and
//! a temp state file) and a runner for the real `ferryctl` binary.

#![allow(dead_code)] // each test file uses part of this

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ferry_proxy::admin::{self, Admin, NoCheck};
use ferry_proxy::state::{BucketTable, FileStore};
use tempfile::TempDir;

pub use ferry_harness::ferryctl::{Run, run};

pub const FERRYCTL: &str = env!("CARGO_BIN_EXE_ferryctl");
pub const SECRET: &str = "source-secret-Zq8vX2";
/// The target's URL through this proxy: `update --url` with it selects
/// every bucket.
pub const TARGET_URL: &str = "https://s3.target.test:443";

/// One admin server. Dropping it stops the server (its runtime) and removes
/// the temp dir.
pub struct Proxy {
    pub admin: Arc<Admin>,
    pub socket: PathBuf,
    pub state_file: PathBuf,
    pub secret_file: PathBuf,
    rt: tokio::runtime::Runtime,
    pub dir: TempDir,
}

impl Proxy {
    /// A server whose socket group is `ferry` (root only if it does not exist).
    pub fn start() -> Proxy {
        Proxy::start_with_group("ferry")
    }

    pub fn start_with_group(group: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let state_dir = dir.path().join("state");
        std::fs::create_dir(&state_dir).unwrap();
        let state_file = state_dir.join("buckets.json");
        let socket = dir.path().join("proxy.sock");
        let secret_file = dir.path().join("source.secret");
        std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let admin = Arc::new(
            Admin::new(
                Box::new(FileStore::new(&state_file)),
                Box::new(NoCheck),
                group,
            )
            .unwrap()
            .with_target_urls(vec![TARGET_URL.to_owned()]),
        );
        let listener = {
            let _in_runtime = rt.enter();
            admin::bind(&socket, group).unwrap()
        };
        rt.spawn(admin.clone().serve(listener));
        Proxy {
            admin,
            socket,
            state_file,
            secret_file,
            rt,
            dir,
        }
    }

    /// `ferryctl --socket SOCKET ARGS…` with no input.
    pub fn ferryctl(&self, args: &[&str]) -> Run {
        self.ferryctl_with_input(args, "")
    }

    pub fn ferryctl_with_input(&self, args: &[&str], input: &str) -> Run {
        let mut cmd = Command::new(FERRYCTL);
        cmd.arg("--socket").arg(&self.socket).args(args);
        run(cmd, input)
    }

    /// `s3 bucket migrate attach BUCKET URL none --s3-key AK --s3-secret-file F`.
    pub fn attach(&self, bucket: &str, url: &str) -> Run {
        let secret = self.secret_file.to_str().unwrap();
        self.ferryctl(&[
            "s3",
            "bucket",
            "migrate",
            "attach",
            bucket,
            url,
            "none",
            "--s3-key",
            "AKSRC",
            "--s3-secret-file",
            secret,
        ])
    }

    /// The table a restarted proxy would load: a new `Admin` on a new
    /// `FileStore` of the same state file.
    pub fn reloaded(&self) -> BucketTable {
        reload(&self.state_file)
    }

    /// Assert that the state on disk is the table being served.
    pub fn assert_persisted(&self) {
        assert_eq!(
            self.reloaded(),
            *self.admin.table(),
            "the state file must reload to the served table"
        );
    }
}

pub fn reload(state_file: &Path) -> BucketTable {
    let again = Admin::new(
        Box::new(FileStore::new(state_file)),
        Box::new(NoCheck),
        "ferry",
    )
    .expect("the state file loads");
    BucketTable::clone(&again.table())
}
