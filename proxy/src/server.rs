//! The Pingora front end: per request, find the bucket, check the client's
//! signature and grant for attached buckets, pick the upstream by the
//! bucket's mode, and re-sign toward it. Unattached buckets pass through to
//! the target untouched.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};
use tracing::Instrument;
use tracing::field::display;

use crate::attached::Directory;
use crate::copy_from;
use crate::metrics;
use crate::migrate::{self, Route, merged};
use crate::preread::{self, FirstChunk};
use crate::resign::{self, RequestLine, UpstreamCreds};
use crate::route::{self, Target};
use crate::s3error::{Code, S3Error};
use crate::sigv4::chunked::{ChunkedDecoder, Signing};
use crate::sigv4::verify::{Outcome, Payload};
use crate::sigv4::{RequestView, verify};
use crate::upstream::fetch::{self, Fetcher, Side};
use crate::upstream::{self, Upstream};
use ferry_control::Mode;
use ferry_s3::{Grant, S3Op};

pub struct Settings {
    pub target: Upstream,
    pub target_creds: UpstreamCreds,
    pub s3_domains: Vec<String>,
    pub max_clock_skew_secs: i64,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

/// Counts a request while it is in flight (for the drain on TERM).
pub struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    fn new(n: &Arc<std::sync::atomic::AtomicUsize>) -> InFlight {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(n.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

pub struct FerryProxy {
    /// Requests in flight.
    pub in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Swapped whole by a config reload (HUP).
    pub settings: Arc<ArcSwap<Settings>>,
    pub directory: Arc<dyn Directory>,
    /// The client of the requests the proxy sends itself.
    pub fetcher: Arc<Fetcher>,
    pub migrate: Arc<migrate::Services>,
}

/// How one request goes upstream.
enum Plan {
    /// Not decided yet.
    None,
    /// An unattached bucket: to the target, untouched.
    PassThrough,
    Resign(Box<Resign>),
    /// Migrate mode, served from both sides by `migrate`.
    Migrate(Box<migrate::Call>),
}

struct Resign {
    /// `x-amz-copy-source` with the upstream's bucket name.
    copy_source: Option<String>,
    mode: Mode,
    /// `source` or `target`, for metrics.
    label: &'static str,
    upstream: Upstream,
    creds: UpstreamCreds,
    /// Canonical path and query for the upstream.
    target: String,
    payload_hash: String,
    /// The decoded length of an aws-chunked body.
    decoded_length: Option<u64>,
    /// Migrate mode: the bucket and key whose journalled delete a
    /// successful write voids.
    clears_journal: Option<(String, String)>,
    /// Migrate mode: what is decided from both sides before the request
    /// goes upstream.
    before: Option<Box<Before>>,
    /// Migrate mode: the write goes to the target with `If-None-Match: *`
    /// in place of its `If-Match` (see `merged::Verdict`).
    create_only: bool,
}

/// Migrate mode's steps before a proxied request goes upstream.
enum Before {
    /// An upload part goes to the source instead if its upload is there.
    Part(PartRoute),
    /// A sub-resource write: a key only on the source is promoted first.
    /// `bool`: the source's tags come along (not for a change of tags).
    Promote(merged::Key, bool),
    /// A conditional write, judged against both sides.
    Judge(merged::Key, merged::Conditions),
}

/// The source alternative of an upload part.
struct PartRoute {
    upload_id: String,
    source_target: String,
    key: merged::Key,
    source_uploads: Arc<[String]>,
}

pub struct Ctx {
    _in_flight: InFlight,
    /// Metric labels: the S3 operation, and the bucket if attached (a
    /// bounded set the operator controls).
    operation: &'static str,
    bucket: Option<String>,
    plan: Plan,
    decoder: Option<ChunkedDecoder>,
    /// Verified body read ahead of the upstream request (see `preread`),
    /// sent upstream before the rest.
    preread: Option<Bytes>,
    error: Option<S3Error>,
    resource: String,
    started: std::time::Instant,
    /// Metric labels: the bucket's mode and where the request went.
    mode: &'static str,
    upstream: &'static str,
    /// The upstream socket, to acknowledge the response head at once
    /// (see `quickack`).
    upstream_fd: Option<std::os::fd::RawFd>,
    /// Named in error bodies and in the request's span.
    id: String,
    /// Every event about this request, the proxy's own and its sub-requests',
    /// is emitted in this span, so one request's story can be filtered out
    /// of a busy log by its id.
    span: tracing::Span,
}

fn request_id() -> String {
    let n = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:016X}", (n as u64) ^ std::process::id() as u64)
}

/// Writes an S3 XML error and ends the request.
async fn respond(session: &mut Session, e: &S3Error, resource: &str, id: &str) -> Result<()> {
    let head = session.req_header().method == "HEAD";
    let body = Bytes::from(e.to_xml(resource, id));
    let mut resp = ResponseHeader::build(e.code.status(), Some(4))?;
    resp.insert_header("content-type", "application/xml")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("x-amz-request-id", id)?;
    // The request body may not have been read: do not reuse the connection.
    session.set_keepalive(None);
    session.write_response_header(Box::new(resp), head).await?;
    if !head {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// One line per request, in its span. A busy proxy answers thousands of
/// requests a second, so the line is at debug level (`FERRY_LOG=ferry_proxy=debug`)
/// unless the request failed on our side or upstream's: 5xx, or a
/// connection that broke, is a warning an operator sees by default.
fn access_log(span: &tracing::Span, r: &metrics::RequestRecord<'_>, e: Option<&Error>) {
    let elapsed_ms = r.elapsed.as_secs_f64() * 1000.0;
    let error = e.map(ToString::to_string);
    let error = error.as_deref();
    if r.status >= 500 || r.status == 0 || error.is_some() {
        tracing::warn!(
            parent: span,
            status = r.status,
            elapsed_ms,
            bytes_in = r.bytes_in,
            bytes_out = r.bytes_out,
            error,
            "request failed"
        );
    } else {
        tracing::debug!(
            parent: span,
            status = r.status,
            elapsed_ms,
            bytes_in = r.bytes_in,
            bytes_out = r.bytes_out,
            "request"
        );
    }
}

/// Headers that decide where a request goes or who sent it. Given twice,
/// the proxy and a store could each read another one, so such a request
/// is refused.
const SINGLE: [&str; 9] = [
    "host",
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
    "x-amz-copy-source",
    "x-amz-decoded-content-length",
    "if-match",
    "if-none-match",
];

fn single_headers(req: &RequestHeader) -> Result<(), S3Error> {
    match SINGLE
        .iter()
        .find(|n| req.headers.get_all(**n).iter().nth(1).is_some())
    {
        Some(n) => Err(S3Error::new(
            Code::InvalidArgument,
            format!("the request carries {n} more than once"),
        )),
        None => Ok(()),
    }
}

/// Every header as (name, text), values as [`header_text`] reads them
/// (Latin-1 past ASCII unless `utf8`), so that none is dropped; `fetch`
/// writes Latin-1 text back as the same bytes.
fn header_pairs(headers: &http::HeaderMap, utf8: bool) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                header_text(v.as_bytes(), utf8).into_owned(),
            )
        })
        .collect()
}

/// A header value as text: ASCII as it is; other bytes as Latin-1 (each
/// byte one character, as HTTP/1.1 defines header octets), or as UTF-8
/// when `utf8` and valid.
fn header_text(v: &[u8], utf8: bool) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(v) {
        Ok(s) if s.is_ascii() || utf8 => s.into(),
        _ => fetch::latin1(v).into(),
    }
}

fn header<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

impl FerryProxy {
    /// Runs migrate mode's step before a proxied request.
    async fn before(&self, r: &mut Resign, b: Before) -> Result<(), S3Error> {
        match b {
            Before::Part(p) => self.route_part(r, p).await,
            Before::Promote(k, with_tags) => merged::promote(&self.migrate, &k, with_tags).await,
            Before::Judge(k, c) => {
                r.create_only =
                    merged::judge(&self.migrate, &k, &c).await? == merged::Verdict::CreateOnly;
                Ok(())
            }
        }
    }

    /// Sends an upload part to the source when its upload is there.
    async fn route_part(&self, r: &mut Resign, p: PartRoute) -> Result<(), S3Error> {
        let paths = migrate::uploads::UploadPaths {
            source_uploads: &p.source_uploads,
            target: &p.key.target,
            source: &p.key.source,
            target_object: &p.key.target_object,
            source_object: &p.key.source_object,
        };
        if migrate::uploads::part_on_source(&self.migrate, &paths, &p.upload_id).await? {
            let enc = |b: &str| ferry_s3::percent::uri_encode(b.as_bytes(), false);
            r.copy_source = r.copy_source.take().map(|cs| {
                let rest = cs
                    .strip_prefix(&format!("/{}", enc(&p.key.target.bucket)))
                    .unwrap_or(&cs);
                format!("/{}{rest}", enc(&p.key.source.bucket))
            });
            r.label = "source";
            r.upstream = p.key.source.upstream;
            r.creds = p.key.source.creds;
            r.target = p.source_target;
        }
        Ok(())
    }

    /// Signed aws-chunked bodies: the first chunk is verified before the
    /// upstream is asked (see `preread`). `None`: the body was whole and has
    /// been sent and answered.
    async fn read_ahead(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        r: Box<Resign>,
    ) -> Result<Option<Plan>, S3Error> {
        let dec = ctx.decoder.as_mut().expect("a signed aws-chunked decoder");
        match preread::first_chunk(session, dec).await? {
            FirstChunk::More(b) => {
                ctx.preread = Some(b);
                Ok(Some(Plan::Resign(r)))
            }
            FirstChunk::Whole(body) => {
                ctx.upstream = r.label;
                ctx.span.record("upstream", display(ctx.upstream));
                self.send_whole(session, &r, body).await?;
                Ok(None)
            }
        }
    }

    /// Sends a body read whole ahead of time (see `preread`) and passes the
    /// answer on; what `response_filter` does for a proxied write is done
    /// here too.
    async fn send_whole(
        &self,
        session: &mut Session,
        r: &Resign,
        body: Bytes,
    ) -> Result<(), S3Error> {
        let names = header_pairs(&session.req_header().headers, false);
        let side = Side {
            upstream: r.upstream.clone(),
            creds: r.creds.clone(),
            bucket: String::new(),
            label: r.label,
        };
        let mut headers = forwarded(&names, true);
        if r.create_only {
            merged::as_create_only(&mut headers);
        }
        let req = fetch::Request {
            method: session.req_header().method.as_str(),
            target: &r.target,
            headers,
            body: fetch::Body::Full(body),
        };
        let resp = self.fetcher.send(&side, req).await?;
        if !self.write_cleared_journal(r, resp.status).await {
            return Err(S3Error::new(
                Code::InternalError,
                "the write landed but a journalled delete of the key still stands; retry the write",
            ));
        }
        migrate::wire::pass_through(&self.fetcher, session, resp).await
    }

    /// Migrate mode: a successful write voids a journalled delete of its
    /// key. False when that failed: the delete still stands, so the client
    /// must be told to retry the write, which clears it.
    async fn write_cleared_journal(&self, r: &Resign, status: u16) -> bool {
        let (Some((bucket, key)), Some(journal)) = (&r.clears_journal, &self.migrate.journal)
        else {
            return true;
        };
        if !(200..300).contains(&status) {
            return true;
        }
        match journal.clear(&self.migrate.fetcher, bucket, key).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(key, error = %e, "a write could not clear the delete journal");
                false
            }
        }
    }

    /// Decides the plan for a request, or the error to answer with.
    fn plan(
        &self,
        req: &RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<(Plan, Option<ChunkedDecoder>), S3Error> {
        let settings = self.settings.load();
        let raw_path = req.uri.path();
        let raw_query = req.uri.query().unwrap_or("");
        let host = header(req, "host").or_else(|| req.uri.authority().map(|a| a.as_str()));
        single_headers(req)?;
        let target: Target = route::parse(host, raw_path, &settings.s3_domains)?;
        let op = S3Op::parse(
            req.method.as_str(),
            target.level(),
            raw_query,
            req.headers.contains_key("x-amz-copy-source"),
        );
        ctx.operation = op.name();
        let Some(bucket) = target.bucket.as_deref() else {
            return Ok((Plan::PassThrough, None));
        };
        if self
            .migrate
            .journal
            .as_ref()
            .is_some_and(|j| j.is_bucket(bucket))
        {
            return Err(S3Error::new(
                Code::AccessDenied,
                "the delete journal's bucket is the migration proxy's own; no client may reach it",
            ));
        }
        if !target.virtual_host
            && let Some(b) = host.and_then(route::host_bucket)
            && self.directory.attached(&b).is_some()
        {
            return Err(S3Error::new(
                Code::AccessDenied,
                format!(
                    "the host names bucket {b:?}, which is under migration, under a domain this proxy does not serve as virtual-hosted (s3_domains); use a domain in s3_domains or path-style requests"
                ),
            ));
        }
        let Some(att) = self.directory.attached(bucket) else {
            ctx.bucket = None;
            // A virtual-hosted request for an unattached bucket goes to the
            // target untouched; if the target does not know the domain it
            // reads the path style instead. Never let that reach an
            // attached bucket around its mode.
            if target.virtual_host
                && let Ok(path_style) = route::parse(None, raw_path, &[])
                && let Some(b) = path_style.bucket.as_deref()
                && self.directory.attached(b).is_some()
            {
                return Err(S3Error::new(
                    Code::AccessDenied,
                    "ambiguous request: the path names a bucket under migration",
                ));
            }
            return Ok((Plan::PassThrough, None));
        };
        ctx.bucket = Some(bucket.to_owned());
        if op == S3Op::Unknown {
            return Err(S3Error::new(Code::NotImplemented, ferry_s3::op::UNKNOWN));
        }
        // An attached bucket: the proxy authenticates the client itself.
        let names = header_pairs(&req.headers, false);
        let method = req.method.as_str();
        let dir = &self.directory;
        let now = time::OffsetDateTime::now_utc();
        let check = |headers: &[(String, String)]| {
            let mut view: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            // HTTP/2 has no Host header: the signed `host` is the
            // `:authority`, which is also what routed the request.
            if !req.headers.contains_key("host")
                && let Some(a) = req.uri.authority()
            {
                view.push(("host", a.as_str()));
            }
            let rv = RequestView {
                method,
                raw_path,
                raw_query,
                headers: &view,
            };
            verify(&rv, |k| dir.secret(k), now, settings.max_clock_skew_secs)
        };
        // A header value that is not ASCII (user metadata) is signed as
        // the client's HTTP library meant its bytes: Latin-1 for most
        // (botocore, and `names`), UTF-8 for some; both are tried, nothing
        // is dropped.
        let verified = match check(&names) {
            Err(e)
                if e.code == Code::SignatureDoesNotMatch
                    && req.headers.values().any(|v| !v.as_bytes().is_ascii()) =>
            {
                check(&header_pairs(&req.headers, true))
            }
            r => r,
        };
        let verified = match verified? {
            Outcome::Anonymous => {
                return Err(S3Error::new(
                    Code::AccessDenied,
                    "Anonymous access to a bucket under migration is not allowed",
                ));
            }
            Outcome::Signed(v) => v,
        };
        // Grants are on objects. Bucket configuration (policy, CORS,
        // lifecycle, deleting the bucket) is the operator's, on the stores
        // themselves, never through the migration proxy.
        let write = match op.grant() {
            Grant::Operator => {
                return Err(S3Error::new(
                    Code::AccessDenied,
                    "bucket configuration cannot be changed through the migration proxy",
                ));
            }
            Grant::Write => true,
            Grant::Read | Grant::None => false,
        };
        if !dir.allowed(&verified.access_key, bucket, write) {
            return Err(S3Error::new(Code::AccessDenied, "Access Denied"));
        }
        // The scope must name S3 and a region this endpoint answers for:
        // the target's, or the bucket's source's.
        let region = verified.scope.split('/').nth(1).unwrap_or("");
        if region != settings.target_creds.region && region != att.source_creds.region {
            return Err(S3Error::new(
                Code::AuthorizationHeaderMalformed,
                format!(
                    "the credential scope names region {region:?}; this endpoint expects {:?}",
                    settings.target_creds.region
                ),
            ));
        }
        // A copy reads its source with the proxy's credentials: the client
        // needs a read grant there, and only a copy within the bucket can
        // be served by one upstream.
        let target_side = Side {
            upstream: settings.target.clone(),
            creds: settings.target_creds.clone(),
            bucket: bucket.to_owned(),
            label: "target",
        };
        // A copy reads its source with the proxy's credentials: the client
        // needs a read grant there, and the copy source must be where this
        // bucket's mode can read it (`copy_from`).
        let copy_source = match header(req, "x-amz-copy-source") {
            Some(cs) => {
                let (src_bucket, rest) = route::parse_copy_source(cs)?;
                if !dir.allowed(&verified.access_key, &src_bucket, false) {
                    return Err(S3Error::new(
                        Code::AccessDenied,
                        "Access Denied (copy source)",
                    ));
                }
                let src_att = self.directory.attached(&src_bucket);
                let from = copy_from::resolve(&att, &target_side, &src_bucket, src_att.as_ref())?;
                Some((rest, from))
            }
            None => None,
        };
        let source_side = Side {
            upstream: att.source.clone(),
            creds: att.source_creds.clone(),
            bucket: att.source_bucket.clone(),
            label: "source",
        };
        let route = (att.mode == Mode::Migrate).then(|| {
            let copy_key = copy_source
                .as_ref()
                .map(|(rest, _)| route::copy_source_key(rest))
                .transpose();
            copy_key.and_then(|k| migrate::classify(op, raw_query, k))
        });
        let route = route.transpose()?;
        let decoded_length = header(req, "x-amz-decoded-content-length")
            .map(|v| v.trim().parse::<u64>())
            .transpose()
            .map_err(|_| S3Error::new(Code::InvalidArgument, "bad x-amz-decoded-content-length"))?;
        let signing = Signing::Signed {
            key: verified.signing_key,
            amz_date: verified.amz_date.clone(),
            scope: verified.scope.clone(),
            prev: verified.seed_signature.clone(),
        };
        let trailer = header(req, "x-amz-trailer");
        let (payload_hash, decoder) = match &verified.payload {
            Payload::Sha256(h) => (h.clone(), None),
            Payload::Unsigned => ("UNSIGNED-PAYLOAD".to_owned(), None),
            Payload::StreamingSigned => (
                "UNSIGNED-PAYLOAD".to_owned(),
                Some(ChunkedDecoder::new(signing, None, false, decoded_length)?),
            ),
            Payload::StreamingSignedTrailer => (
                "UNSIGNED-PAYLOAD".to_owned(),
                Some(ChunkedDecoder::new(signing, trailer, true, decoded_length)?),
            ),
            Payload::StreamingUnsignedTrailer => (
                "UNSIGNED-PAYLOAD".to_owned(),
                Some(ChunkedDecoder::new(
                    Signing::Unsigned,
                    trailer,
                    false,
                    decoded_length,
                )?),
            ),
        };
        if decoder.is_some() && decoded_length.is_none() {
            return Err(S3Error::new(
                Code::InvalidRequest,
                "aws-chunked bodies need x-amz-decoded-content-length",
            ));
        }
        let target_path = resign::canonical_target(&target.upstream_path(bucket), raw_query)?;
        let source_path =
            || resign::canonical_target(&target.upstream_path(&att.source_bucket), raw_query);
        let mut clears_journal = None;
        let mut before = None;
        let key = || {
            let object = |b: &str| resign::canonical_target(&target.upstream_path(b), "");
            Ok::<_, S3Error>(merged::Key {
                target_object: object(bucket)?,
                source_object: object(&att.source_bucket)?,
                target: target_side.clone(),
                source: source_side.clone(),
            })
        };
        match route {
            Some(Route::Serve(op)) => {
                let call = migrate::Call {
                    op,
                    method: method.to_owned(),
                    bucket: bucket.to_owned(),
                    key: target.key.clone(),
                    raw_query: raw_query.to_owned(),
                    source_path: source_path()?,
                    target_path,
                    target: target_side,
                    source: source_side,
                    headers: forwarded(&names, decoder.is_some()),
                    payload_hash,
                    decoder,
                    source_uploads: att.source_uploads.clone(),
                    copy_from: copy_source.map(|(_, from)| from),
                };
                return Ok((Plan::Migrate(Box::new(call)), None));
            }
            Some(Route::Write) => {
                clears_journal = Some((bucket.to_owned(), target.key.clone().unwrap_or_default()));
                let conditions = merged::Conditions {
                    if_match: header(req, "if-match").map(str::to_owned),
                    if_none_match: header(req, "if-none-match").map(str::to_owned),
                };
                if conditions.any() {
                    before = Some(Box::new(Before::Judge(key()?, conditions)));
                }
            }
            Some(Route::Promote) => {
                let with_tags = !matches!(op, S3Op::PutObjectTagging | S3Op::DeleteObjectTagging);
                before = Some(Box::new(Before::Promote(key()?, with_tags)));
            }
            Some(Route::Part { upload_id }) => {
                before = Some(Box::new(Before::Part(PartRoute {
                    upload_id,
                    source_target: source_path()?,
                    key: key()?,
                    source_uploads: att.source_uploads.clone(),
                })));
            }
            Some(Route::Target) | None => {}
        }
        let (label, upstream, creds) = match att.mode {
            Mode::Forward => ("source", att.source.clone(), att.source_creds.clone()),
            // Migrate mode sends what it proxies to the target (an upload
            // part may move to the source in `request_filter`).
            Mode::Ready | Mode::Migrate => (
                "target",
                settings.target.clone(),
                settings.target_creds.clone(),
            ),
        };
        let copy_source = copy_source.map(|(rest, from)| {
            format!(
                "/{}{rest}",
                ferry_s3::percent::uri_encode(from.upstream_bucket.as_bytes(), false)
            )
        });
        let target = if att.mode == Mode::Forward {
            source_path()?
        } else {
            target_path
        };
        Ok((
            Plan::Resign(Box::new(Resign {
                copy_source,
                mode: att.mode,
                label,
                upstream,
                creds,
                target,
                payload_hash,
                decoded_length: decoder.as_ref().and(decoded_length),
                clears_journal,
                before,
                create_only: false,
            })),
            decoder,
        ))
    }
}

/// Client headers that go upstream on requests the proxy makes itself:
/// not the signature, host or framing, which are the proxy's own.
fn forwarded(names: &[(String, String)], chunked: bool) -> Vec<(String, String)> {
    const OWN: [&str; 13] = [
        "host",
        "authorization",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "expect",
        "x-amz-decoded-content-length",
        "x-amz-trailer",
        "te",
    ];
    names
        .iter()
        .filter(|(n, _)| !OWN.contains(&n.as_str()))
        .filter(|(n, _)| !(chunked && n == "content-encoding"))
        .cloned()
        .collect()
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
            _in_flight: InFlight::new(&self.in_flight),
            operation: "unknown",
            bucket: None,
            plan: Plan::None,
            decoder: None,
            preread: None,
            error: None,
            resource: String::new(),
            started: std::time::Instant::now(),
            mode: "unattached",
            upstream: "none",
            upstream_fd: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.resource = session.req_header().uri.path().to_owned();
        ctx.span
            .record("method", display(session.req_header().method.as_str()))
            .record("path", display(&ctx.resource));
        let span = ctx.span.clone();
        let planned = self.plan(session.req_header(), ctx);
        span.record("bucket", display(ctx.bucket.as_deref().unwrap_or("-")))
            .record("op", display(ctx.operation));
        let planned = match planned {
            Ok((plan, decoder)) => {
                (ctx.mode, ctx.upstream) = match &plan {
                    Plan::Resign(r) => (r.mode.as_str(), r.label),
                    Plan::Migrate(_) => ("migrate", "both"),
                    _ => ("unattached", "target"),
                };
                ctx.decoder = decoder;
                span.record("mode", display(ctx.mode));
                match plan {
                    Plan::Migrate(call) => migrate::serve(&self.migrate, session, *call)
                        .instrument(span.clone())
                        .await
                        .map(|()| None),
                    Plan::Resign(mut r) => match r.before.take() {
                        Some(b) => self
                            .before(&mut r, *b)
                            .instrument(span.clone())
                            .await
                            .map(|()| Some(Plan::Resign(r))),
                        None => Ok(Some(Plan::Resign(r))),
                    },
                    plan => Ok(Some(plan)),
                }
            }
            Err(e) => Err(e),
        };
        let planned = match planned {
            Ok(Some(Plan::Resign(r)))
                if ctx.decoder.as_ref().is_some_and(ChunkedDecoder::is_signed) =>
            {
                self.read_ahead(session, ctx, r)
                    .instrument(span.clone())
                    .await
            }
            planned => planned,
        };
        match planned {
            Ok(Some(plan)) => {
                if let Plan::Resign(r) = &plan {
                    ctx.upstream = r.label;
                }
                span.record("upstream", display(ctx.upstream));
                ctx.plan = plan;
                Ok(false)
            }
            // Served whole by migrate mode.
            Ok(None) => Ok(true),
            Err(e) => {
                metrics::refused(e.code.as_str());
                tracing::debug!(parent: &span, code = %e.code.as_str(), "refused");
                respond(session, &e, &ctx.resource, &ctx.id).await?;
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
        let Plan::Resign(r) = &ctx.plan else {
            return Ok(());
        };
        let cleared = self
            .write_cleared_journal(r, resp.status.as_u16())
            .instrument(ctx.span.clone())
            .await;
        if !cleared {
            resp.set_status(500)?;
        }
        Ok(())
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        fd: std::os::fd::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_fd = Some(fd);
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
        let up = match &ctx.plan {
            Plan::Resign(r) => &r.upstream,
            _ => &settings.target,
        };
        let peer = upstream::peer(up, settings.connect_timeout, settings.read_timeout);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Plan::Resign(r) = &ctx.plan else {
            return Ok(());
        };
        let uri: http::Uri = r
            .target
            .parse()
            .map_err(|e| Error::because(ErrorType::InternalError, "upstream uri", e))?;
        upstream.set_uri(uri);
        for h in [
            "authorization",
            "x-amz-date",
            "x-amz-security-token",
            "x-amz-content-sha256",
        ] {
            upstream.remove_header(h);
        }
        if let Some(len) = r.decoded_length {
            // The body goes upstream decoded: plain bytes of this length.
            for h in [
                "content-encoding",
                "x-amz-decoded-content-length",
                "x-amz-trailer",
                "transfer-encoding",
            ] {
                upstream.remove_header(h);
            }
            upstream.insert_header("content-length", len.to_string())?;
        }
        if ctx.preread.is_some() {
            // The proxy answered `100 Continue` itself when it read ahead.
            upstream.remove_header("expect");
        }
        upstream.insert_header("host", r.upstream.authority.as_str())?;
        if let Some(cs) = &r.copy_source {
            upstream.insert_header("x-amz-copy-source", cs.as_str())?;
        }
        if r.create_only {
            upstream.remove_header("if-match");
            upstream.insert_header("if-none-match", "*")?;
        }
        let headers = header_pairs(&upstream.headers, false);
        let line = RequestLine {
            method: upstream.method.as_str(),
            scheme: if r.upstream.tls { "https" } else { "http" },
            host: &r.upstream.authority,
            target: &r.target,
        };
        let add = resign::sign_request(
            &line,
            &headers,
            &r.payload_hash,
            &r.creds,
            SystemTime::now(),
        )
        .map_err(|e| Error::because(ErrorType::InternalError, "re-signing", e))?;
        for (n, v) in add {
            upstream.insert_header(n, v)?;
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(dec) = ctx.decoder.as_mut() else {
            return Ok(());
        };
        let input = body.take().unwrap_or_default();
        let ahead = ctx.preread.take();
        let result = dec.feed(&input).and_then(|mut parts| {
            if end_of_stream {
                dec.finish()?;
            }
            parts.splice(0..0, ahead);
            Ok(parts)
        });
        match result {
            Ok(parts) => {
                let mut out = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
                for p in parts {
                    out.extend_from_slice(&p);
                }
                *body = Some(out.freeze());
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
        let s3 = ctx.error.take().unwrap_or_else(|| match e.esource() {
            ErrorSource::Upstream => S3Error::new(
                Code::ServiceUnavailable,
                "The upstream S3 service is unavailable; please retry.",
            ),
            ErrorSource::Downstream => {
                S3Error::new(Code::IncompleteBody, "bad or incomplete request")
            }
            _ => S3Error::new(Code::InternalError, "internal error"),
        });
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
            let _ = respond(session, &s3, &ctx.resource, &ctx.id).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}
