//! The request path's first stage, run before anything goes upstream and
//! without a Pingora session: from the request head, the bucket table and
//! the users, how the request goes upstream ([`Plan`]), or the S3 error it
//! is refused with. Each step is a function below, in request order.

mod auth;
mod body;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use pingora::http::RequestHeader;

use crate::attached::{Attached, Directory};
use crate::copy_from::{self, CopyFrom};
use crate::headers::{COPY_SOURCE, HeaderPair, forwarded, header, header_pairs, single_headers};
use crate::journal::Journal;
use crate::migrate::{self, Route, merged, proxied};
use crate::outbound::Outbound;
use crate::resign::{self, UpstreamCreds};
use crate::route::{self, Target};
use crate::s3error::{Code, S3Error};
use crate::sigv4::chunked::ChunkedDecoder;
use crate::upstream::Upstream;
use crate::upstream::fetch::Side;
use ferry_control::Mode;
use ferry_s3::S3Op;

/// The request path's settings; swapped whole by a config reload (HUP).
pub struct Settings {
    pub target: Upstream,
    pub target_creds: Arc<UpstreamCreds>,
    pub s3_domains: Vec<String>,
    pub max_clock_skew_secs: i64,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

/// What planning reads besides the request.
pub struct Env<'a> {
    pub settings: &'a Settings,
    pub directory: &'a dyn Directory,
    /// The delete journal, whose bucket no client may reach.
    pub journal: Option<&'a Journal>,
    /// The clock the request's signature time is judged against.
    pub now: time::OffsetDateTime,
}

/// How one request goes upstream.
pub enum Plan {
    /// An unattached bucket: to the target, untouched.
    PassThrough,
    /// Ready or forward mode: to one side, re-signed.
    Resign { mode: Mode, out: Box<Outbound> },
    /// Migrate mode, handled by `migrate`.
    Migrate(migrate::Request),
}

impl Plan {
    /// The bucket's mode, as a metric label.
    pub fn mode(&self) -> &'static str {
        match self {
            Plan::PassThrough => "unattached",
            Plan::Resign { mode, .. } => mode.as_str(),
            Plan::Migrate(_) => Mode::Migrate.as_str(),
        }
    }

    /// Where the request goes, as a metric label.
    pub fn upstream(&self) -> &'static str {
        match self {
            Plan::PassThrough => "target",
            Plan::Resign { out, .. } => out.label,
            Plan::Migrate(migrate::Request::Serve(_)) => "both",
            Plan::Migrate(migrate::Request::Proxy(p)) => p.out.label,
        }
    }
}

/// What planning found, refused or not.
pub struct Planned {
    /// The S3 operation's name, once the request parsed.
    pub operation: Option<&'static str>,
    /// The bucket, if attached (a bounded set the operator controls).
    pub bucket: Option<String>,
    /// A write to an attached bucket: the bucket's routing generation it
    /// was planned at, for its write gate (`fence`).
    pub write_generation: Option<u64>,
    /// The plan, and the decoder of an aws-chunked body that Pingora
    /// proxies; or the refusal.
    pub result: Result<(Plan, Option<Box<ChunkedDecoder>>), S3Error>,
}

/// Plans one request.
pub fn plan(env: &Env<'_>, req: &RequestHeader) -> Planned {
    let mut planned = Planned {
        operation: None,
        bucket: None,
        write_generation: None,
        result: Ok((Plan::PassThrough, None)),
    };
    planned.result = steps(env, req, &mut planned);
    planned
}

fn steps(
    env: &Env<'_>,
    req: &RequestHeader,
    labels: &mut Planned,
) -> Result<(Plan, Option<Box<ChunkedDecoder>>), S3Error> {
    let host = header(req, http::header::HOST).or_else(|| req.uri.authority().map(|a| a.as_str()));
    let (target, op) = parse(env, req, host)?;
    labels.operation = Some(op.name());
    let Some(bucket) = target.bucket.as_deref() else {
        return Ok((Plan::PassThrough, None));
    };
    refuse_around_modes(env, host, &target, bucket)?;
    let Some(att) = env.directory.attached(bucket) else {
        unattached(env, req, &target)?;
        return Ok((Plan::PassThrough, None));
    };
    labels.bucket = Some(bucket.to_owned());
    refuse_blocked(bucket, &att)?;
    if op == S3Op::Unknown {
        return Err(S3Error::new(Code::NotImplemented, ferry_s3::op::UNKNOWN));
    }
    // An attached bucket: the proxy authenticates the client itself.
    let names = header_pairs(&req.headers, false);
    let verified = auth::authenticate(env, req, &names)?;
    auth::authorize(env, &verified, op, bucket)?;
    if op.grant() == ferry_s3::Grant::Write {
        labels.write_generation = Some(att.generation);
    }
    auth::check_region(env, &verified, &att)?;
    let copy_source = copy_source(env, req, &verified.access_key, bucket, &att)?;
    let route = match att.mode {
        Mode::Migrate => Some(classify(op, req, copy_source.as_ref())?),
        Mode::Ready | Mode::Forward => None,
    };
    let body = body::body(req, &verified)?;
    let raw_query = req.uri.query().unwrap_or("");
    let paths = Paths {
        target: &target,
        raw_query,
        bucket,
        source_bucket: &att.source_bucket,
    };
    let target_path = paths.on(bucket, raw_query)?;
    let one = OneSide {
        att: &att,
        target_path,
        paths: &paths,
        copy_source,
        body,
    };
    match route {
        None => {
            let (out, decoder) = one.outbound(env)?;
            Ok((
                Plan::Resign {
                    mode: att.mode,
                    out: Box::new(out),
                },
                decoder,
            ))
        }
        Some(route) => {
            let m = Migrating {
                op,
                req,
                sides: Sides::of(env, bucket, &att),
                names: &names,
            };
            m.plan(env, route, one)
        }
    }
}

/// The request's bucket, key and S3 operation. A header given twice that
/// decides where the request goes is refused first.
fn parse(
    env: &Env<'_>,
    req: &RequestHeader,
    host: Option<&str>,
) -> Result<(Target, S3Op), S3Error> {
    single_headers(req)?;
    let target = route::parse(host, req.uri.path(), &env.settings.s3_domains)?;
    let op = S3Op::parse(
        req.method.as_str(),
        target.level(),
        req.uri.query().unwrap_or(""),
        req.headers.contains_key(COPY_SOURCE),
    );
    Ok((target, op))
}

/// Requests that could reach a bucket around its mode, or the journal.
fn refuse_around_modes(
    env: &Env<'_>,
    host: Option<&str>,
    target: &Target,
    bucket: &str,
) -> Result<(), S3Error> {
    if env.journal.is_some_and(|j| j.is_bucket(bucket)) {
        return Err(S3Error::new(
            Code::AccessDenied,
            "the delete journal's bucket is the migration proxy's own; no client may reach it",
        ));
    }
    if !target.virtual_host
        && let Some(b) = host.and_then(route::host_bucket)
        && env.directory.attached(&b).is_some()
    {
        return Err(S3Error::new(
            Code::AccessDenied,
            format!(
                "the host names bucket {b:?}, which is under migration, under a domain this proxy does not serve as virtual-hosted (s3_domains); use a domain in s3_domains or path-style requests"
            ),
        ));
    }
    Ok(())
}

/// A blocked bucket (a rollback under way) answers every request with
/// 503, which clients retry: nothing reaches either side until `unblock`.
fn refuse_blocked(bucket: &str, att: &Attached) -> Result<(), S3Error> {
    match att.blocked {
        true => Err(S3Error::new(
            Code::ServiceUnavailable,
            format!(
                "bucket {bucket} is blocked while its migration is rolled back; try again later"
            ),
        )),
        false => Ok(()),
    }
}

/// A virtual-hosted request for an unattached bucket goes to the target
/// untouched; if the target does not know the domain it reads the path
/// style instead. Never let that reach an attached bucket around its mode.
fn unattached(env: &Env<'_>, req: &RequestHeader, target: &Target) -> Result<(), S3Error> {
    if target.virtual_host
        && let Ok(path_style) = route::parse(None, req.uri.path(), &[])
        && let Some(b) = path_style.bucket.as_deref()
        && env.directory.attached(b).is_some()
    {
        return Err(S3Error::new(
            Code::AccessDenied,
            "ambiguous request: the path names a bucket under migration",
        ));
    }
    Ok(())
}

/// The bucket on each store, with the proxy's credentials there.
struct Sides {
    target: Side,
    source: Side,
}

impl Sides {
    fn of(env: &Env<'_>, bucket: &str, att: &Attached) -> Sides {
        Sides {
            target: Side {
                upstream: env.settings.target.clone(),
                creds: env.settings.target_creds.clone(),
                bucket: bucket.to_owned(),
                label: "target",
            },
            source: Side {
                upstream: att.source.clone(),
                creds: att.source_creds.clone(),
                bucket: att.source_bucket.clone(),
                label: "source",
            },
        }
    }
}

/// A copy reads its source with the proxy's credentials: the client needs
/// a read grant there, and the copy source must be where this bucket's
/// mode can read it (`copy_from`). Returns the copy source after its
/// bucket, and where it is.
fn copy_source(
    env: &Env<'_>,
    req: &RequestHeader,
    access_key: &str,
    bucket: &str,
    att: &Attached,
) -> Result<Option<(String, CopyFrom)>, S3Error> {
    let Some(cs) = header(req, COPY_SOURCE) else {
        return Ok(None);
    };
    let (src_bucket, rest) = route::parse_copy_source(cs)?;
    if !env.directory.allowed(access_key, &src_bucket, false) {
        return Err(S3Error::new(
            Code::AccessDenied,
            "Access Denied (copy source)",
        ));
    }
    let src_att = env.directory.attached(&src_bucket);
    if let Some(a) = &src_att {
        refuse_blocked(&src_bucket, a)?;
    }
    let target = Sides::of(env, bucket, att).target;
    let from = copy_from::resolve(att, &target, &src_bucket, src_att.as_deref())?;
    Ok(Some((rest, from)))
}

/// Migrate mode's route for the request (`migrate::classify`).
fn classify(
    op: S3Op,
    req: &RequestHeader,
    copy_source: Option<&(String, CopyFrom)>,
) -> Result<Route, S3Error> {
    let copy_key = copy_source
        .map(|(rest, _)| route::copy_source_key(rest))
        .transpose()?;
    migrate::classify(op, req.uri.query().unwrap_or(""), copy_key)
}

/// The request's paths on the stores.
struct Paths<'a> {
    target: &'a Target,
    raw_query: &'a str,
    bucket: &'a str,
    source_bucket: &'a str,
}

impl Paths<'_> {
    /// Canonical path and query of the request on `bucket`.
    fn on(&self, bucket: &str, query: &str) -> Result<String, S3Error> {
        resign::canonical_target(&self.target.upstream_path(bucket), query)
    }

    fn on_source(&self) -> Result<String, S3Error> {
        self.on(self.source_bucket, self.raw_query)
    }
}

/// A request that goes to one store through Pingora.
struct OneSide<'a> {
    att: &'a Attached,
    /// The request's path on the target.
    target_path: String,
    paths: &'a Paths<'a>,
    copy_source: Option<(String, CopyFrom)>,
    body: body::Body,
}

impl OneSide<'_> {
    fn outbound(self, env: &Env<'_>) -> Result<(Outbound, Option<Box<ChunkedDecoder>>), S3Error> {
        let (label, upstream, creds) = match self.att.mode {
            Mode::Forward => (
                "source",
                self.att.source.clone(),
                self.att.source_creds.clone(),
            ),
            // Migrate mode sends what it proxies to the target (an upload
            // part may move to the source in `migrate::proxied`).
            Mode::Ready | Mode::Migrate => (
                "target",
                env.settings.target.clone(),
                env.settings.target_creds.clone(),
            ),
        };
        let copy_source = self.copy_source.map(|(rest, from)| {
            format!(
                "/{}{rest}",
                ferry_s3::percent::uri_encode(from.upstream_bucket.as_bytes(), false)
            )
        });
        let target = if self.att.mode == Mode::Forward {
            self.paths.on_source()?
        } else {
            self.target_path
        };
        let out = Outbound {
            label,
            upstream,
            creds,
            target,
            copy_source,
            payload_hash: self.body.payload_hash,
            decoded_length: self.body.decoded_length,
            trailer: self
                .body
                .decoder
                .as_deref()
                .and_then(ChunkedDecoder::checksum_trailer),
            create_only: false,
        };
        Ok((out, self.body.decoder))
    }
}

/// A request to a bucket in migrate mode.
struct Migrating<'a> {
    op: S3Op,
    req: &'a RequestHeader,
    sides: Sides,
    names: &'a [HeaderPair<'a>],
}

impl Migrating<'_> {
    fn plan(
        self,
        env: &Env<'_>,
        route: Route,
        one: OneSide<'_>,
    ) -> Result<(Plan, Option<Box<ChunkedDecoder>>), S3Error> {
        let paths = one.paths;
        let key = || {
            let object = |b: &str| paths.on(b, "");
            Ok::<_, S3Error>(merged::Key {
                target_object: object(paths.bucket)?,
                source_object: object(paths.source_bucket)?,
                target: self.sides.target.clone(),
                source: self.sides.source.clone(),
            })
        };
        let mut clears_journal = None;
        let before = match route {
            Route::Serve(op) => {
                let call = migrate::Call {
                    op,
                    method: self.req.method.as_str().to_owned(),
                    bucket: paths.bucket.to_owned(),
                    key: paths.target.key.clone(),
                    raw_query: paths.raw_query.to_owned(),
                    source_path: paths.on_source()?,
                    target_path: one.target_path,
                    target: self.sides.target,
                    source: self.sides.source,
                    headers: forwarded(self.names, one.body.decoder.is_some()),
                    payload_hash: one.body.payload_hash,
                    decoder: one.body.decoder.map(|d| *d),
                    source_uploads: one.att.source_uploads.clone(),
                    copy_from: one.copy_source.map(|(_, from)| from),
                };
                let plan = Plan::Migrate(migrate::Request::Serve(Box::new(call)));
                return Ok((plan, None));
            }
            Route::Write => {
                clears_journal = Some((
                    paths.bucket.to_owned(),
                    paths.target.key.clone().unwrap_or_default(),
                ));
                let conditions = merged::Conditions {
                    if_match: header(self.req, "if-match").map(str::to_owned),
                    if_none_match: header(self.req, "if-none-match").map(str::to_owned),
                };
                match conditions.any() {
                    true => Some(proxied::Before::Judge(key()?, conditions)),
                    false => None,
                }
            }
            Route::Promote => {
                let with_tags =
                    !matches!(self.op, S3Op::PutObjectTagging | S3Op::DeleteObjectTagging);
                Some(proxied::Before::Promote(key()?, with_tags))
            }
            Route::Part { upload_id } => Some(proxied::Before::Part(proxied::PartRoute {
                upload_id,
                source_target: paths.on_source()?,
                key: key()?,
                source_uploads: one.att.source_uploads.clone(),
            })),
            Route::Target => None,
        };
        let (out, decoder) = one.outbound(env)?;
        let p = migrate::Proxied {
            out,
            before,
            clears_journal,
        };
        Ok((Plan::Migrate(migrate::Request::Proxy(Box::new(p))), decoder))
    }
}
