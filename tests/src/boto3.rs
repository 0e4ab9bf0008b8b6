//! One-off boto3 snippets, run by the Python of moto's venv: for tests that
//! need a second, independent S3 client (an https store the harness's own
//! client does not trust, or a deliberately wrong secret).

use std::path::Path;
use std::process::{Command, Output};

/// Where and as whom the snippet's client `s3` talks: path style, one
/// attempt (no retries), certificates checked against `ca` if given, else
/// against the system's.
pub struct Boto3<'a> {
    pub endpoint: &'a str,
    pub key: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub ca: Option<&'a Path>,
}

impl Boto3<'_> {
    /// Runs `code` with `s3` (and `boto3`, `hashlib`) bound.
    pub fn run(&self, code: &str) -> Output {
        let verify = match self.ca {
            Some(ca) => format!("{:?}", ca.display().to_string()),
            None => "None".to_owned(),
        };
        let script = format!(
            "import boto3, hashlib\nfrom botocore.config import Config\n\
             s3 = boto3.client('s3', endpoint_url={:?}, aws_access_key_id={:?}, \
             aws_secret_access_key={:?}, region_name={:?}, verify={verify}, \
             config=Config(s3={{'addressing_style': 'path'}}, retries={{'max_attempts': 1}}))\n{code}",
            self.endpoint, self.key, self.secret, self.region
        );
        let mut c = Command::new(crate::python_bin());
        c.args(["-c", &script]);
        crate::apply_loopback_env(&mut c);
        c.output().expect("run the venv's python")
    }
}
