//! The floor of ferry-proxy's own cost: a Pingora proxy that does nothing
//! but pass each request to one upstream, with ferry-proxy's server and
//! upstream settings (2 threads, its connect and read timeouts on the
//! upstream peer, quick-ack of the upstream response head), and no
//! parsing, signature work, routing, metrics or log.
//!
//! bench-proxy runs it as its own process, so the CPU it spends per
//! request is counted the way ferry-proxy's is. The difference between the
//! two is what Ferry adds on top of Pingora.
//!
//! With `--sigv4` it also does the one part of Ferry's work that no
//! re-signing proxy can skip, with ferry-proxy's own code: it verifies the
//! client's SigV4 signature (`sigv4::verify`, over `headers::header_pairs`)
//! and rewrites and signs the request anew for the upstream
//! (`outbound::Outbound::rewrite`). It verifies and signs with the one
//! key it is given, the store's, so the store's own clients can use it.
//! What ferry-proxy spends over this floor is its routing, grant, metrics,
//! log and request context.
//!
//!   pingora-floor --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT
//!   pingora-floor … --sigv4 --access-key AK --region R   (secret: FLOOR_SECRET_KEY)

use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use ferry_proxy::headers::header_pairs;
use ferry_proxy::outbound::Outbound;
use ferry_proxy::resign::{UpstreamCreds, canonical_target};
use ferry_proxy::sigv4::verify::{Outcome, Payload};
use ferry_proxy::sigv4::{RequestView, verify};
use ferry_proxy::upstream::Upstream;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::upstreams::peer::HttpPeer;

#[global_allocator]
static ALLOCATOR: ferry_proxy::Allocator = ferry_proxy::Allocator {};

#[derive(Parser)]
#[command(
    name = "pingora-floor",
    about = "A do-nothing Pingora pass-through: the floor of ferry-proxy's cost per request"
)]
struct Args {
    /// Where it listens (`host:port`).
    #[arg(long)]
    listen: String,
    /// The plain-HTTP upstream every request goes to (`host:port`).
    #[arg(long)]
    upstream: String,
    /// As ferry-proxy's `target.connect_timeout_secs`.
    #[arg(long, default_value_t = ferry_proxy::config::default_connect_timeout_secs())]
    connect_timeout_secs: u64,
    /// As ferry-proxy's `target.read_timeout_secs` (Pingora arms a timer
    /// per upstream read with it).
    #[arg(long, default_value_t = ferry_proxy::config::default_read_timeout_secs())]
    read_timeout_secs: u64,
    /// Verify each request's SigV4 signature and sign it anew for the
    /// upstream, both with --access-key, FLOOR_SECRET_KEY and --region.
    #[arg(long, requires_all = ["access_key", "region"])]
    sigv4: bool,
    #[arg(long)]
    access_key: Option<String>,
    #[arg(
        long,
        env = "FLOOR_SECRET_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    secret_key: String,
    #[arg(long)]
    region: Option<String>,
}

struct Floor {
    upstream: Upstream,
    connect_timeout: Duration,
    read_timeout: Duration,
    /// `--sigv4`: the one key requests are verified and signed with.
    sigv4: Option<std::sync::Arc<UpstreamCreds>>,
}

#[derive(Default)]
struct Ctx {
    /// The upstream socket, acknowledged once the response head is read.
    fd: Option<std::os::fd::RawFd>,
    /// `--sigv4`: the verified request's payload hash, signed upstream.
    payload_hash: String,
}

impl Floor {
    /// SigV4 verify, as ferry-proxy's plan does it for a request whose
    /// headers are ASCII. `None`: refused.
    fn verify(&self, creds: &UpstreamCreds, req: &RequestHeader, ctx: &mut Ctx) -> Option<()> {
        let names = header_pairs(&req.headers, false);
        let view: Vec<(&str, &str)> = names.iter().map(|(n, v)| (*n, v.as_ref())).collect();
        let rv = RequestView {
            method: req.method.as_str(),
            raw_path: req.uri.path(),
            raw_query: req.uri.query().unwrap_or(""),
            headers: &view,
        };
        let secret = |k: &str| (k == creds.access_key).then(|| creds.secret.clone());
        let Ok(Outcome::Signed(v)) = verify(&rv, secret, time::OffsetDateTime::now_utc(), 900)
        else {
            return None;
        };
        ctx.payload_hash = match v.payload {
            Payload::Sha256(h) => h,
            Payload::Unsigned => "UNSIGNED-PAYLOAD".to_owned(),
            // aws-chunked bodies need the proxy's decoder: not a floor's.
            _ => return None,
        };
        Some(())
    }
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = Ctx;

    fn new_ctx(&self) -> Self::CTX {
        Ctx::default()
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<bool> {
        let Some(creds) = &self.sigv4 else {
            return Ok(false);
        };
        if self.verify(creds, session.req_header(), ctx).is_some() {
            return Ok(false);
        }
        session.respond_error(403).await?;
        Ok(true)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        let Some(creds) = &self.sigv4 else {
            return Ok(());
        };
        let pq = upstream.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let (path, query) = pq.split_once('?').unwrap_or((pq, ""));
        let target = canonical_target(path, query)
            .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "target", e))?;
        // What ferry-proxy's plan builds for a ready-mode request.
        let out = Outbound {
            label: "target",
            upstream: self.upstream.clone(),
            creds: creds.clone(),
            target,
            copy_source: None,
            payload_hash: std::mem::take(&mut ctx.payload_hash),
            decoded_length: None,
            trailer: None,
            create_only: false,
        };
        out.rewrite(upstream, false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        // An address: parsed once, as ferry-proxy's target is.
        let addr =
            ferry_proxy::upstream::resolve::address(&self.upstream, self.connect_timeout, None)
                .await
                .map_err(|e| {
                    pingora::Error::because(pingora::ErrorType::ConnectError, "upstream", e)
                })?;
        Ok(Box::new(ferry_proxy::upstream::peer(
            &self.upstream,
            addr,
            self.connect_timeout,
            self.read_timeout,
        )))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        fd: std::os::fd::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        ctx.fd = Some(fd);
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        // Without it every small GET waits out a 40 ms delayed ACK (see
        // ferry_proxy::quickack), and the floor would be no floor.
        if let Some(fd) = ctx.fd {
            ferry_proxy::quickack::ack_now(fd);
        }
        Ok(())
    }
}

fn main() {
    let args = Args::parse();
    let conf = ServerConf {
        threads: 2,
        ..Default::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut svc = pingora::proxy::http_proxy_service(
        &server.configuration,
        Floor {
            upstream: Upstream::from_url(&format!("http://{}", args.upstream)).unwrap_or_else(
                |e| {
                    eprintln!("pingora-floor: --upstream: {e}");
                    std::process::exit(2)
                },
            ),
            connect_timeout: Duration::from_secs(args.connect_timeout_secs),
            read_timeout: Duration::from_secs(args.read_timeout_secs),
            sigv4: args.sigv4.then(|| {
                std::sync::Arc::new(UpstreamCreds {
                    access_key: args.access_key.clone().unwrap_or_default(),
                    secret: args.secret_key.clone(),
                    region: args.region.clone().unwrap_or_default(),
                })
            }),
        },
    );
    svc.add_tcp(&args.listen);
    server.add_service(svc);
    server.run_forever();
}
