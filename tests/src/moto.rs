//! A moto_server process (in-memory S3, checks no signatures).

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use crate::http;
use crate::process::ServerProcess;

pub const REGION: &str = "us-east-1";
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Describe `moto_server -H 127.0.0.1 -p PORT` with its log in `dir`.
pub fn prepare(dir: &Path, port: u16) -> ServerProcess {
    let args: Vec<OsString> = vec![
        "-H".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string().into(),
    ];
    ServerProcess::new(
        "moto_server",
        crate::bins::moto_server_bin(),
        args,
        dir.join("moto.log"),
    )
    .env("PYTHONUNBUFFERED", "1")
}

/// Ready when `GET /` (ListBuckets) answers 200.
pub fn wait_ready(server: &mut ServerProcess, port: u16) -> anyhow::Result<()> {
    server.wait_until("HTTP", READY_TIMEOUT, || {
        Ok(http::get(port, "/")?.status == 200)
    })
}
