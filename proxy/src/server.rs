//! The Pingora front end: each phase hands its work to the module named
//! for it. Per request: [`plan`] decides (bucket, signature, grant, mode),
//! [`admit`] runs migrate mode's part and the read-ahead of signed chunks,
//! then Pingora proxies as the plan's [`Outbound`] says, or to the target
//! untouched for an unattached bucket.
//!
//! [`Outbound`]: crate::outbound::Outbound

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};
use tracing::Instrument;
use tracing::field::display;

use crate::access_log::access_log;
use crate::admit::{self, Admitted, Proxying};
use crate::attached::Directory;
use crate::fence::{Fenced, WriteGates, WriteGuard};
use crate::metrics;
use crate::migrate;
use crate::plan::{self, Env, Settings};
use crate::rechunk::Rechunker;
use crate::reply::{self, respond};
use crate::request_body;
use crate::s3error::{Code, S3Error};
use crate::sigv4::chunked::ChunkedDecoder;
use crate::upstream::{self, fetch::Fetcher};

/// Counts a request while it is in flight (for the drain on TERM). The
/// counter lives as long as the process, so a request holds a plain
/// reference: no reference count to bump on a cache line both worker
/// threads write.
pub struct InFlight(&'static AtomicUsize);

impl InFlight {
    fn new(n: &'static AtomicUsize) -> InFlight {
        n.fetch_add(1, Ordering::SeqCst);
        InFlight(n)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct FerryProxy {
    /// Requests in flight.
    pub in_flight: &'static AtomicUsize,
    /// Swapped whole by a config reload (HUP).
    pub settings: Arc<ArcSwap<Settings>>,
    pub directory: Arc<dyn Directory>,
    /// The client of the requests the proxy sends itself.
    pub fetcher: Arc<Fetcher>,
    pub migrate: Arc<migrate::Services>,
    /// In a fleet, the write gates of the attached buckets; `None` on a
    /// single host, where mode changes need no fence.
    pub gates: Option<Arc<WriteGates>>,
}

pub struct Ctx {
    _in_flight: InFlight,
    /// Held while a write to an attached bucket is in flight, in a fleet.
    _write: Option<WriteGuard>,
    /// Metric labels: the S3 operation, and the bucket if attached (a
    /// bounded set the operator controls).
    operation: &'static str,
    bucket: Option<String>,
    /// `None`: to the target, untouched.
    proxying: Option<Box<Proxying>>,
    /// Boxed: most requests have none, and the context is moved with the
    /// request's future.
    decoder: Option<Box<ChunkedDecoder>>,
    /// Frames the decoded body anew when it carries a checksum trailer.
    rechunk: Option<Rechunker>,
    error: Option<S3Error>,
    started: std::time::Instant,
    /// Metric labels: the bucket's mode and where the request went.
    mode: &'static str,
    upstream: &'static str,
    /// The upstream socket, to acknowledge the response head at once
    /// (see `quickack`).
    upstream_fd: Option<std::os::fd::RawFd>,
    /// Connects that failed, each at one of a name's addresses, and the
    /// address of the last one tried.
    failed_connects: u8,
    connect_to: Option<std::net::SocketAddr>,
    /// Named in error bodies and in the request's span.
    id: String,
    /// Every event about this request, the proxy's own and its sub-requests',
    /// is emitted in this span, so one request's story can be filtered out
    /// of a busy log by its id.
    span: tracing::Span,
}

/// 16 upper-case hex digits, one id per request: the clock's nanoseconds
/// and the process id. Written digit by digit (the `hex` crate's iterator
/// cost as much as the rest of `new_ctx`), with the process id read once:
/// `getpid` is a system call each time.
fn request_id() -> String {
    static PID: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| std::process::id().into());
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = (nanos as u64) ^ *PID;
    let mut id = String::with_capacity(16);
    for shift in (0..16).rev().map(|i| i * 4) {
        id.push(char::from(DIGITS[(n >> shift) as usize & 0xF]));
    }
    id
}

/// Where the request goes: the plan's upstream, or the target untouched.
fn upstream_of<'a>(ctx: &'a Ctx, settings: &'a Settings) -> &'a upstream::Upstream {
    match &ctx.proxying {
        Some(p) => &p.out.upstream,
        None => &settings.target,
    }
}

impl FerryProxy {
    fn plan(&self, req: &RequestHeader) -> plan::Planned {
        let settings = self.settings.load();
        let env = Env {
            settings: &settings,
            directory: &*self.directory,
            journal: self.migrate.journal.as_ref(),
            now: time::OffsetDateTime::now_utc(),
        };
        plan::plan(&env, req)
    }
}

#[async_trait]
impl ProxyHttp for FerryProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        let id = request_id();
        let empty = tracing::field::Empty;
        let span = tracing::info_span!(
            "request",
            id = %id,
            method = empty,
            path = empty,
            bucket = empty,
            op = empty,
            mode = empty,
            upstream = empty,
        );
        Ctx {
            id,
            span,
            _in_flight: InFlight::new(self.in_flight),
            _write: None,
            operation: "unknown",
            bucket: None,
            proxying: None,
            decoder: None,
            rechunk: None,
            error: None,
            started: std::time::Instant::now(),
            mode: "unattached",
            upstream: "none",
            upstream_fd: None,
            failed_connects: 0,
            connect_to: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let span = ctx.span.clone();
        let req = session.req_header();
        span.record("method", display(req.method.as_str()))
            .record("path", display(req.uri.path()));
        let mut planned = self.plan(req);
        ctx.operation = planned.operation.unwrap_or(ctx.operation);
        if planned.result.is_ok()
            && let (Some(gates), Some(bucket), Some(generation)) =
                (&self.gates, &planned.bucket, planned.write_generation)
        {
            match gates.enter(bucket, generation) {
                Ok(guard) => ctx._write = Some(guard),
                Err(Fenced) => {
                    planned.result = Err(S3Error::new(
                        Code::SlowDown,
                        "the bucket's migration mode is changing across the proxy fleet, or this \
                         proxy lost contact with the fleet; retry shortly",
                    ));
                }
            }
        }
        ctx.bucket = planned.bucket;
        span.record("bucket", display(ctx.bucket.as_deref().unwrap_or("-")))
            .record("op", display(ctx.operation));
        let admitted = match planned.result {
            Ok((plan, decoder)) => {
                (ctx.mode, ctx.upstream) = (plan.mode(), plan.upstream());
                ctx.decoder = decoder;
                span.record("mode", display(ctx.mode));
                match admit::at_once(plan, ctx.decoder.as_deref()) {
                    Ok(admitted) => Ok(admitted),
                    Err(plan) => {
                        let dec = ctx.decoder.as_deref_mut();
                        let admit =
                            admit::admit(&self.migrate, &self.fetcher, session, plan, dec, &span);
                        Box::pin(admit.instrument(span.clone())).await
                    }
                }
            }
            Err(e) => Err(e),
        };
        match admitted {
            Ok(Admitted::Answered) => Ok(true),
            Ok(proxied) => {
                if let Admitted::Proxy(p) = proxied {
                    ctx.upstream = p.out.label;
                    ctx.rechunk = p.out.trailer.map(Rechunker::new);
                    ctx.proxying = Some(p);
                }
                span.record("upstream", display(ctx.upstream));
                Ok(false)
            }
            Err(e) => {
                metrics::refused(e.code.as_str());
                tracing::debug!(parent: &span, code = %e.code.as_str(), "refused");
                Box::pin(respond(session, &e, &ctx.id)).await?;
                Ok(true)
            }
        }
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(after) = ctx.proxying.as_ref().and_then(|p| p.after.as_ref()) else {
            return Ok(());
        };
        // Boxed, as admit's future is (see `admit::at_once`): held inline it
        // would make every request's response_filter future as large.
        let cleared = Box::pin(
            after
                .cleared(resp.status.as_u16())
                .instrument(ctx.span.clone()),
        )
        .await;
        if !cleared {
            resp.set_status(500)?;
        }
        Ok(())
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        fd: std::os::fd::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_fd = Some(fd);
        metrics::upstream_connection(ctx.upstream, reused);
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(fd) = ctx.upstream_fd {
            crate::quickack::ack_now(fd);
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let settings = self.settings.load();
        let up = upstream_of(ctx, &settings);
        let after = ctx.connect_to.filter(|_| ctx.failed_connects > 0);
        let addr = match upstream::resolve::address(up, settings.connect_timeout, after).await {
            Ok(addr) => addr,
            Err(e) => {
                // The client's 503; the metric is counted in fail_to_proxy.
                ctx.error = Some(upstream::fetch::unavailable(ctx.upstream, &e));
                return Err(Error::explain(metrics::DNS_ERROR, e.to_string()).into_up());
            }
        };
        let peer = upstream::peer(up, addr, settings.connect_timeout, settings.read_timeout);
        ctx.connect_to = Some(addr);
        Ok(Box::new(peer))
    }

    /// A name's next address after a failed connect (`upstream_peer` takes
    /// the one after `connect_to`): nothing of the request has gone
    /// upstream, so Pingora may try again, once per address.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.failed_connects = ctx.failed_connects.saturating_add(1);
        let settings = self.settings.load();
        if usize::from(ctx.failed_connects) < upstream::resolve::count(upstream_of(ctx, &settings))
        {
            // The last failure is counted in fail_to_proxy.
            metrics::upstream_error(ctx.upstream, metrics::error_class(e.etype()));
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        match &ctx.proxying {
            Some(p) => p.out.rewrite(upstream, p.preread.is_some()),
            None => Ok(()),
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(dec) = ctx.decoder.as_deref_mut() else {
            return Ok(());
        };
        let input = body.take().unwrap_or_default();
        let ahead = ctx.proxying.as_mut().and_then(|p| p.preread.take());
        match request_body::decode(dec, ctx.rechunk.as_mut(), ahead, &input, end_of_stream) {
            Ok(out) => {
                *body = Some(out);
                Ok(())
            }
            Err(e) => {
                // Nothing of the bad chunk went upstream; the upstream
                // request is cut short of its content-length and aborted.
                ctx.error = Some(e);
                Error::e_explain(ErrorType::InvalidHTTPHeader, "bad aws-chunked body")
            }
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let record = metrics::RequestRecord {
            bucket: ctx.bucket.as_deref().unwrap_or("-"),
            operation: ctx.operation,
            mode: ctx.mode,
            upstream: ctx.upstream,
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            elapsed: ctx.started.elapsed(),
            bytes_in: session.body_bytes_read() as u64,
            bytes_out: session.body_bytes_sent() as u64,
        };
        metrics::request(&record);
        access_log(&ctx.span, &record, e);
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let s3 = ctx.error.take().unwrap_or_else(|| reply::failure(e));
        let code = s3.code.status();
        if e.esource() == &ErrorSource::Upstream {
            metrics::upstream_error(ctx.upstream, metrics::error_class(e.etype()));
        } else {
            metrics::refused(s3.code.as_str());
        }
        if !matches!(
            e.etype(),
            ErrorType::WriteError | ErrorType::ConnectionClosed
        ) {
            let _ = respond(session, &s3, &ctx.id).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_16_upper_case_hex_digits() {
        let id = super::request_id();
        assert_eq!(id.len(), 16, "{id}");
        assert!(
            id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')),
            "{id}"
        );
        assert_eq!(
            u64::from_str_radix(&id, 16).map(|n| format!("{n:016X}")),
            Ok(id)
        );
    }
}
