//! A running `ferry-proxy` in front of a real target store, with a real
//! source store, driven by the real `ferryctl`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::Store;
pub use crate::{ferryctl_bin, proxy_bin};

pub mod clients;
pub mod launch;
pub mod migrate;

pub fn python() -> PathBuf {
    let p = crate::python_bin();
    assert!(p.exists(), "{} is missing: run scripts/setup", p.display());
    p
}

/// [`crate::free_port`], for tests that have no error to return.
pub fn free_port() -> u16 {
    crate::free_port().expect("a free loopback port")
}

/// [`launch::write_private`], for tests.
pub fn write_private(path: &Path, text: &str) {
    launch::write_private(path, text).unwrap();
}

pub struct Client {
    pub name: &'static str,
    pub access_key: &'static str,
    pub secret: &'static str,
}

pub const ALICE: Client = Client {
    name: "alice",
    access_key: "GKalice0000000000000000",
    secret: "alice-secret-0123456789abcdef",
};
/// Read-only on the bucket.
pub const BOB: Client = Client {
    name: "bob",
    access_key: "GKbob000000000000000000",
    secret: "bob-secret-0123456789abcdef",
};

/// Two Garage stores, each holding `bucket`: (source, target).
pub fn garage_pair(bucket: &str) -> (Store, Store) {
    let source = Store::garage().unwrap();
    source.create_bucket(bucket).unwrap();
    let target = Store::garage().unwrap();
    target.create_bucket(bucket).unwrap();
    (source, target)
}

pub struct Proxy {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub http: String,
    /// `FERRY_LOG` for the proxy.
    log_filter: String,
    /// More environment for the proxy (test hooks), from its next spawn.
    pub env: Vec<(String, String)>,
    /// A program and its arguments that run the proxy (its path and
    /// arguments follow), from its next spawn; empty: run it directly.
    pub launcher: Vec<String>,
    child: Option<Child>,
}

impl Proxy {
    /// Writes a config for `target` and starts the proxy.
    pub fn start(target: &Store, bucket: &str) -> Proxy {
        Self::start_with(target, bucket, "")
    }

    /// As `start`, with more top-level config lines (`extra`).
    pub fn start_with(target: &Store, bucket: &str, extra: &str) -> Proxy {
        Self::start_logging(target, bucket, extra, "warn")
    }

    /// As `start_with`, with `FERRY_LOG` set to `filter`.
    pub fn start_logging(target: &Store, bucket: &str, extra: &str, filter: &str) -> Proxy {
        Self::start_configured(target, bucket, extra, filter, None)
    }

    /// A member of the fleet whose `[state]` section is `state` (no
    /// `state_file`), logging at info so that a failure shows the fleet's
    /// steps.
    pub fn start_in_fleet(target: &Store, bucket: &str, extra: &str, state: &str) -> Proxy {
        Self::start_configured(target, bucket, extra, "info", Some(state))
    }

    fn start_configured(
        target: &Store,
        bucket: &str,
        extra: &str,
        filter: &str,
        state: Option<&str>,
    ) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_private(
            &d.join("users.toml"),
            &format!(
                "[[user]]\nname = \"{}\"\naccess_key = \"{}\"\nsecret = \"{}\"\n[user.buckets]\n{bucket} = \"write\"\n\n\
                 [[user]]\nname = \"{}\"\naccess_key = \"{}\"\nsecret = \"{}\"\n[user.buckets]\n{bucket} = \"read\"\n",
                ALICE.name, ALICE.access_key, ALICE.secret, BOB.name, BOB.access_key, BOB.secret
            ),
        );
        let layout = launch::write_config(
            d,
            target,
            &format!("{extra}s3_domains = [\"s3.ferry.test\"]\n"),
        )
        .unwrap();
        if let Some(state) = state {
            launch::join_fleet_config(&layout.config, state).unwrap();
        }
        let mut p = Proxy {
            dir,
            config: layout.config,
            socket: layout.socket,
            http: layout.http,
            log_filter: filter.to_owned(),
            env: Vec::new(),
            launcher: Vec::new(),
            child: None,
        };
        p.spawn();
        p
    }

    pub fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("proxy.log")).unwrap();
        std::fs::create_dir_all(self.pause_dir()).unwrap();
        let mut cmd = match self.launcher.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(proxy_bin());
                cmd
            }
            None => Command::new(proxy_bin()),
        };
        let child = cmd
            .arg("--config")
            .arg(&self.config)
            .env("FERRY_LOG", &self.log_filter)
            .env("FERRY_TEST_PAUSE", self.pause_dir())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let child = self.child.insert(child);
        if let Err(e) = launch::wait_listening(child, &self.http, &self.socket, self.dir.path()) {
            panic!("{e:#}");
        }
    }

    /// Where a test holds a migrate-mode step of a key (the proxy's
    /// `FERRY_TEST_PAUSE`, see `migrate::test_pause`): a
    /// `<point>-<hex(key)>.hold` file holds it, `.paused` appears, `.go`
    /// releases.
    pub fn pause_dir(&self) -> PathBuf {
        self.dir.path().join("pause")
    }

    /// Holds the migrate-mode step `point` of `key` (see `pause_dir`).
    pub fn hold(&self, point: &str, key: &str) -> Hold {
        let h = Hold {
            dir: self.pause_dir(),
            name: format!("{point}-{}", hex::encode(key)),
        };
        std::fs::write(h.dir.join(format!("{}.hold", h.name)), "").unwrap();
        h
    }

    pub fn log(&self) -> String {
        launch::read_log(self.dir.path())
    }

    /// aws-sdk-s3 through the proxy as `alice`, signing for `region` (the
    /// target's or the bucket's source's). No retries: a test sees the
    /// first answer, or a timeout after [`crate::client::ATTEMPT_TIMEOUT`].
    pub fn client(&self, region: &str) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .endpoint_url(&self.http)
                .region(aws_sdk_s3::config::Region::new(region.to_owned()))
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    ALICE.access_key,
                    ALICE.secret,
                    None,
                    None,
                    "test",
                ))
                .force_path_style(true)
                .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
                .timeout_config(crate::client::timeouts())
                .build(),
        )
    }

    /// SIGHUP: reload the config, the users and the certificates.
    pub fn hup(&self) {
        self.signal("-HUP");
    }

    /// SIGTERM: a graceful stop (see [`Proxy::wait`]).
    pub fn term(&self) {
        self.signal("-TERM");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("proxy running").id();
        let st = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Waits for the proxy to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().expect("proxy running");
        while Instant::now() < deadline {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL: no chance to save anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn ferryctl(&self, args: &[&str]) -> Output {
        eprintln!("ferryctl {args:?}");
        migrate::run(&mut launch::ferryctl(&ferryctl_bin(), &self.socket, args))
    }

    pub fn ferryctl_ok(&self, args: &[&str]) -> String {
        let out = self.ferryctl(args);
        assert!(out.status.success(), "ferryctl {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Attaches `bucket` with the source's own credentials (the forwarding
    /// user), plain http.
    pub fn attach(&self, bucket: &str, source: &Store) {
        let args = launch::attach_args(self.dir.path(), bucket, source).unwrap();
        self.ferryctl_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    pub fn set_mode(&self, bucket: &str, mode: &str) {
        self.ferryctl_ok(&launch::set_mode_args(bucket, mode));
    }
}

/// A held step of the proxy (`Proxy::hold`).
pub struct Hold {
    dir: PathBuf,
    name: String,
}

impl Hold {
    /// Waits until the proxy has reached the step and stopped there.
    pub fn wait_paused(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.dir.join(format!("{}.paused", self.name)).exists() {
            assert!(Instant::now() < deadline, "{} never paused", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn release(&self) {
        std::fs::write(self.dir.join(format!("{}.go", self.name)), "").unwrap();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs tests/clients/workload.py with boto3; returns its JSON summary.
/// `ca`: the CA that signed an https endpoint's certificate. Over https
/// boto3 sends each body's checksum in an aws-chunked trailer (over http,
/// in a header).
pub fn boto3_workload(
    ca: Option<&Path>,
    endpoint: &str,
    bucket: &str,
    key: &str,
    secret: &str,
    region: &str,
    prefix: &str,
) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/workload.py");
    let mut c = Command::new(python());
    c.arg(script)
        .args([endpoint, bucket, key, secret, region, prefix]);
    crate::apply_loopback_env(&mut c);
    if let Some(ca) = ca {
        c.env("AWS_CA_BUNDLE", ca);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "boto3 workload against {endpoint} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A workload summary with its key prefix taken out, so runs under
/// different prefixes compare equal.
pub fn normalized(v: &serde_json::Value, prefix: &str) -> String {
    v.to_string().replace(prefix, "<p>")
}

// ---------------------------------------------------------------------------
// Raw HTTP and hand-signed SigV4 requests (proxy_auth, proxy_faults,
// proxy_clients). Loopback only. The signing side uses aws-sigv4, not the
// proxy's own code, so the proxy is checked against an independent signer.
// ---------------------------------------------------------------------------

use std::io::{Read, Write};
use std::time::SystemTime;

/// `127.0.0.1:PORT` of an `http://127.0.0.1:PORT` endpoint.
pub fn authority(endpoint: &str) -> &str {
    endpoint.trim_start_matches("http://").trim_end_matches('/')
}

/// One HTTP response, read off a raw connection.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `<Code>` of an S3 XML error body.
    pub fn s3_code(&self) -> Option<String> {
        xml_tag(&self.text(), "Code")
    }
}

/// The text of the first `<tag>...</tag>` in `xml`.
pub fn xml_tag(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(xml[start..end].to_owned())
}

/// Every `<tag>...</tag>` text in `xml`, in order.
pub fn xml_tags(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let s = &rest[i + open.len()..];
        let Some(j) = s.find(&close) else { break };
        out.push(s[..j].to_owned());
        rest = &s[j + close.len()..];
    }
    out
}

/// Connects to `addr` with generous timeouts, so that no test can hang.
pub fn raw_connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// Reads one response from `s`. `Ok(None)`: the peer closed (or reset) the
/// connection before sending a single byte. `head`: the request was HEAD,
/// so there is no body whatever the headers say.
pub fn read_response(s: &mut TcpStream, head: bool) -> std::io::Result<Option<RawResponse>> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16384];
    let header_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = match s.read(&mut tmp) {
            Ok(n) => n,
            Err(e) if buf.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed inside the response head: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head_text = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut rest = buf[header_end + 4..].to_vec();
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut read_more = |rest: &mut Vec<u8>| -> std::io::Result<bool> {
        let n = s.read(&mut tmp)?;
        rest.extend_from_slice(&tmp[..n]);
        Ok(n > 0)
    };
    let body = if head || status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(p) = rest.windows(2).position(|w| w == b"\r\n") {
                    break p;
                }
                if !read_more(&mut rest)? {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            };
            let size_line = String::from_utf8_lossy(&rest[..line_end]).into_owned();
            let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size_line:?}")))?;
            rest.drain(..line_end + 2);
            while rest.len() < size + 2 {
                if !read_more(&mut rest)? {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            body.extend_from_slice(&rest[..size]);
            rest.drain(..size + 2);
            if size == 0 {
                break;
            }
        }
        body
    } else if let Some(len) = find("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| std::io::Error::other(format!("bad content-length {len:?}")))?;
        while rest.len() < len {
            if !read_more(&mut rest)? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        rest.truncate(len);
        rest
    } else {
        while read_more(&mut rest)? {}
        rest
    };
    Ok(Some(RawResponse {
        status,
        headers,
        body,
    }))
}

/// Writes `request` as is on a new connection to `addr` and reads one
/// response (`None`: closed without a response).
pub fn send_raw(addr: &str, request: &[u8]) -> Option<RawResponse> {
    let head = request.starts_with(b"HEAD ");
    let mut s = raw_connect(addr);
    s.write_all(request)
        .unwrap_or_else(|e| panic!("write to {addr}: {e}"));
    read_response(&mut s, head).unwrap_or_else(|e| panic!("read from {addr}: {e}"))
}

/// Percent-encodes for a URL query or path segment (SigV4's unreserved set).
pub fn url_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Headers to add, query parameters to add, and the signature.
type SigningOutput = (Vec<(String, String)>, Vec<(String, String)>, String);

/// A request to build by hand and send over a raw connection.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    /// Path and query as they go on the request line (already encoded).
    pub target: String,
    /// In order, `Host` first. Sent as is.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// `host` is the `Host` header value.
    pub fn new(method: &str, host: &str, target: &str) -> RawRequest {
        RawRequest {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: vec![("Host".to_owned(), host.to_owned())],
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> RawRequest {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> RawRequest {
        self.body = body.into();
        self
    }

    fn host(&self) -> &str {
        &self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .expect("a Host header")
            .1
    }

    /// Signs as `who` (key, secret, region, time); returns the headers and
    /// the query parameters to add, and the signature.
    fn signable(
        &self,
        who: (&str, &str, &str, SystemTime),
        location: aws_sigv4::http_request::SignatureLocation,
        expires: Option<Duration>,
        body: aws_sigv4::http_request::SignableBody<'_>,
    ) -> SigningOutput {
        let (key, secret, region, time) = who;
        use aws_sigv4::http_request::{
            PayloadChecksumKind, PercentEncodingMode, SignableRequest, SigningSettings,
            UriPathNormalizationMode, sign,
        };
        let identity =
            aws_credential_types::Credentials::new(key, secret, None, None, "test").into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = if expires.is_some() {
            PayloadChecksumKind::NoHeader
        } else {
            PayloadChecksumKind::XAmzSha256
        };
        settings.signature_location = location;
        settings.expires_in = expires;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let uri = format!("http://{}{}", self.host(), self.target);
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let req = SignableRequest::new(&self.method, uri, headers.into_iter(), body).unwrap();
        let (instructions, signature) = sign(req, &params).unwrap().into_parts();
        let h = instructions
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let p = instructions
            .params()
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.to_string()))
            .collect();
        (h, p, signature)
    }

    /// Signs with SigV4 in the Authorization header, at `time`, with the
    /// body's own SHA-256. Every header present is signed.
    pub fn sign(self, key: &str, secret: &str, region: &str, time: SystemTime) -> RawRequest {
        let body = self.body.clone();
        self.sign_with_body(
            key,
            secret,
            region,
            time,
            aws_sigv4::http_request::SignableBody::Bytes(&body),
        )
        .0
    }

    /// Signs with an explicit payload (e.g. a STREAMING value); also returns
    /// the signature, the seed of a chunked body.
    pub fn sign_with_body(
        mut self,
        key: &str,
        secret: &str,
        region: &str,
        time: SystemTime,
        body: aws_sigv4::http_request::SignableBody<'_>,
    ) -> (RawRequest, String) {
        let (h, _, sig) = self.signable(
            (key, secret, region, time),
            aws_sigv4::http_request::SignatureLocation::Headers,
            None,
            body,
        );
        self.headers.extend(h);
        (self, sig)
    }

    /// Presigns (query-string SigV4) for `expires`, as of `time`.
    pub fn presign(
        mut self,
        key: &str,
        secret: &str,
        region: &str,
        time: SystemTime,
        expires: Duration,
    ) -> RawRequest {
        let (_, params, _) = self.signable(
            (key, secret, region, time),
            aws_sigv4::http_request::SignatureLocation::QueryParams,
            Some(expires),
            aws_sigv4::http_request::SignableBody::UnsignedPayload,
        );
        let q: Vec<String> = params
            .iter()
            .map(|(n, v)| format!("{}={}", url_encode(n, false), url_encode(v, false)))
            .collect();
        let sep = if self.target.contains('?') { '&' } else { '?' };
        self.target = format!("{}{sep}{}", self.target, q.join("&"));
        self
    }

    /// The request on the wire: the headers as they are, plus
    /// `Content-Length` (unless present, or `Transfer-Encoding` is) and
    /// `Connection: close`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        let has = |n: &str| self.headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(n));
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        if !has("content-length") && !has("transfer-encoding") {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// Sends it on a new connection; the response (panics if none comes).
    pub fn send(&self, addr: &str) -> RawResponse {
        send_raw(addr, &self.to_bytes()).unwrap_or_else(|| {
            panic!(
                "{addr} closed the connection without answering {} {}",
                self.method, self.target
            )
        })
    }
}

/// Garage's request counts, or an empty map with a message if they cannot
/// be read (then every comparison still fails loudly).
pub fn counts(store: &Store) -> std::collections::BTreeMap<String, u64> {
    store.request_counts().expect("Garage request counts")
}

/// The operations whose count grew between `before` and `after`.
pub fn new_requests(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> Vec<(String, u64)> {
    after
        .iter()
        .filter_map(|(op, n)| {
            let was = before.get(op).copied().unwrap_or(0);
            (*n > was).then(|| (op.clone(), n - was))
        })
        .collect()
}

impl Proxy {
    /// Peak resident memory of the proxy process so far, in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let pid = self.child.as_ref().expect("proxy running").id();
        crate::procfs::status_kib(pid, "VmHWM").expect("VmHWM in /proc/PID/status") * 1024
    }
}

/// Who signs a hand-built request, and when.
#[derive(Debug, Clone)]
pub struct Signer {
    pub key: String,
    pub secret: String,
    pub region: String,
    pub time: SystemTime,
}

impl Signer {
    /// A client from the users file, signing now, in Garage's region.
    pub fn client(c: &Client) -> Signer {
        Signer {
            key: c.access_key.to_owned(),
            secret: c.secret.to_owned(),
            region: "garage".to_owned(),
            time: SystemTime::now(),
        }
    }

    /// A store's own credentials, signing now.
    pub fn store(s: &Store) -> Signer {
        Signer {
            key: s.access_key.clone(),
            secret: s.secret_key.clone(),
            region: s.region.clone(),
            time: SystemTime::now(),
        }
    }

    pub fn with_secret(mut self, secret: &str) -> Signer {
        self.secret = secret.to_owned();
        self
    }

    pub fn with_key(mut self, key: &str) -> Signer {
        self.key = key.to_owned();
        self
    }

    pub fn at(mut self, time: SystemTime) -> Signer {
        self.time = time;
        self
    }

    /// Header-signed request (body hashed).
    pub fn sign(&self, r: RawRequest) -> RawRequest {
        r.sign(&self.key, &self.secret, &self.region, self.time)
    }

    /// Presigned request, valid for `expires` from `self.time`.
    pub fn presign(&self, r: RawRequest, expires: Duration) -> RawRequest {
        r.presign(&self.key, &self.secret, &self.region, self.time, expires)
    }

    /// A PUT of `chunks` as a signed aws-chunked body
    /// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`): the request signature, then
    /// one signature per chunk, each chained on the previous one, computed
    /// by aws-sigv4 (`sign_chunk`), and the final empty chunk.
    pub fn chunked_put(&self, host: &str, target: &str, chunks: &[&[u8]]) -> RawRequest {
        let decoded: usize = chunks.iter().map(|c| c.len()).sum();
        self.chunked_put_declaring(host, target, chunks, decoded)
    }

    /// `chunked_put` with `x-amz-decoded-content-length: decoded` whatever
    /// the chunks add up to (signed as declared).
    pub fn chunked_put_declaring(
        &self,
        host: &str,
        target: &str,
        chunks: &[&[u8]],
        decoded: usize,
    ) -> RawRequest {
        use aws_sigv4::http_request::{SignableBody, SigningSettings};
        let mut encoded_len = 0;
        for c in chunks.iter().map(|c| c.len()).chain([0]) {
            // "<hex>;chunk-signature=<64>\r\n<data>\r\n"
            encoded_len += format!("{c:x}").len() + 17 + 64 + 2 + c + 2;
        }
        // Content-Length is left unsigned (to_bytes adds it), so that tests
        // can reframe the body without breaking the request signature.
        let r = RawRequest::new("PUT", host, target)
            .header("Content-Encoding", "aws-chunked")
            .header("x-amz-decoded-content-length", &decoded.to_string());
        let (mut r, seed) = r.sign_with_body(
            &self.key,
            &self.secret,
            &self.region,
            self.time,
            SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_owned()),
        );
        let identity =
            aws_credential_types::Credentials::new(&self.key, &self.secret, None, None, "test")
                .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(self.time)
            .settings(SigningSettings::default())
            .build()
            .unwrap();
        let mut prev = seed;
        let mut body = Vec::with_capacity(encoded_len);
        for c in chunks.iter().copied().chain([&b""[..]]) {
            let sig =
                aws_sigv4::sign::v4::sign_chunk(&bytes::Bytes::copy_from_slice(c), &prev, &params)
                    .unwrap()
                    .into_parts()
                    .1;
            body.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", c.len()).as_bytes());
            body.extend_from_slice(c);
            body.extend_from_slice(b"\r\n");
            prev = sig;
        }
        assert_eq!(body.len(), encoded_len);
        r.body = body;
        r
    }

    /// A PUT of `chunks` as an unsigned aws-chunked body with a trailing
    /// checksum (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`, what the AWS SDKs
    /// send by default). `crc32` is the base64 trailer value to send.
    pub fn unsigned_trailer_put(
        &self,
        host: &str,
        target: &str,
        chunks: &[&[u8]],
        crc32: &str,
    ) -> RawRequest {
        use aws_sigv4::http_request::SignableBody;
        let decoded: usize = chunks.iter().map(|c| c.len()).sum();
        let mut body = Vec::new();
        for c in chunks {
            body.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            body.extend_from_slice(c);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("0\r\nx-amz-checksum-crc32:{crc32}\r\n\r\n").as_bytes());
        let r = RawRequest::new("PUT", host, target)
            .header("Content-Encoding", "aws-chunked")
            .header("x-amz-decoded-content-length", &decoded.to_string())
            .header("x-amz-trailer", "x-amz-checksum-crc32")
            .header("Content-Length", &body.len().to_string());
        let (mut r, _) = r.sign_with_body(
            &self.key,
            &self.secret,
            &self.region,
            self.time,
            SignableBody::StreamingUnsignedPayloadTrailer,
        );
        r.body = body;
        r
    }
}

/// CRC32 of `data`, base64, as `x-amz-checksum-crc32` carries it.
pub fn crc32_b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(data).to_be_bytes())
}

/// SHA-256 of `data`, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Runs `cmd` (stdin closed), killing it if it takes longer than `limit`.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{:?} {:?} did not finish within {limit:?}",
                cmd.get_program(),
                cmd.get_args().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

/// Whether `program` is on PATH.
pub fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(program))
            .find(|f| f.is_file())
    })
}

/// Whether the proxy's log shows a panic.
pub fn proxy_panicked(p: &Proxy) -> bool {
    p.log().contains("panicked")
}

/// The proxy's Prometheus text, from `metrics_addr` on `port`.
pub fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// The value of one series (`name{labels}`) in a scrape; 0 if absent.
pub fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
