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
//!   pingora-floor --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT

use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use ferry_proxy::upstream::Upstream;
use pingora::http::ResponseHeader;
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
}

struct Floor {
    upstream: Upstream,
    connect_timeout: Duration,
    read_timeout: Duration,
}

#[async_trait]
impl ProxyHttp for Floor {
    /// The upstream socket, acknowledged once the response head is read.
    type CTX = Option<std::os::fd::RawFd>;

    fn new_ctx(&self) -> Self::CTX {
        None
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(ferry_proxy::upstream::peer(
            &self.upstream,
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
        *ctx = Some(fd);
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
        if let Some(fd) = *ctx {
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
        },
    );
    svc.add_tcp(&args.listen);
    server.add_service(svc);
    server.run_forever();
}
