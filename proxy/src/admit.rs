//! The request path's second stage, between the plan and Pingora's
//! proxying: migrate mode's part ([`migrate::handle`]), then, for signed
//! aws-chunked bodies, the read-ahead of the first chunk (`preread`). A
//! body that turns out whole in the read-ahead is sent by the proxy itself
//! and answered here.

use std::sync::Arc;

use bytes::Bytes;
use pingora::proxy::Session;
use tracing::field::display;

use crate::headers::{forwarded, header_pairs};
use crate::migrate::{self, AfterWrite, Handled, merged};
use crate::outbound::Outbound;
use crate::plan::Plan;
use crate::preread::{self, FirstChunk};
use crate::s3error::{Code, S3Error};
use crate::sigv4::chunked::ChunkedDecoder;
use crate::upstream::fetch::{self, Fetcher};

/// What is left for Pingora.
pub enum Admitted {
    /// The response is written.
    Answered,
    /// Proxy to the target untouched.
    PassThrough,
    Proxy(Box<Proxying>),
}

/// A request Pingora proxies to one store.
pub struct Proxying {
    pub out: Outbound,
    /// Migrate mode: what the upstream's answer to a write voids.
    pub after: Option<AfterWrite>,
    /// Verified body read ahead, sent upstream before the rest.
    pub preread: Option<Bytes>,
}

/// A plan that needs nothing awaited (no migrate-mode work, no
/// read-ahead), admitted at once; any other is given back for [`admit`].
/// The common request then builds no admit future: that future holds
/// migrate mode's inline, so it is large, and a future is copied whole
/// into the box Pingora's hooks run in (`__memmove` was 4% of the proxy's
/// CPU against the floor's 1.5%).
pub fn at_once(plan: Plan, decoder: Option<&ChunkedDecoder>) -> Result<Admitted, Plan> {
    match plan {
        Plan::PassThrough => Ok(Admitted::PassThrough),
        Plan::Resign { out, .. } if !decoder.is_some_and(ChunkedDecoder::is_signed) => {
            Ok(Admitted::Proxy(Box::new(Proxying {
                out: *out,
                after: None,
                preread: None,
            })))
        }
        plan => Err(plan),
    }
}

/// Takes a planned request up to where Pingora proxies it. `span`: the
/// request's, where the upstream is recorded once known.
pub async fn admit(
    svc: &Arc<migrate::Services>,
    fetcher: &Fetcher,
    session: &mut Session,
    plan: Plan,
    decoder: Option<&mut ChunkedDecoder>,
    span: &tracing::Span,
) -> Result<Admitted, S3Error> {
    let (out, after) = match plan {
        Plan::PassThrough => return Ok(Admitted::PassThrough),
        Plan::Resign { out, .. } => (*out, None),
        Plan::Migrate(req) => match migrate::handle(svc, session, req).await? {
            Handled::Served => return Ok(Admitted::Answered),
            Handled::Proxy(p) => {
                let (out, after) = *p;
                (out, Some(after))
            }
        },
    };
    let mut preread = None;
    if let Some(dec) = decoder.filter(|d| d.is_signed()) {
        match preread::first_chunk(session, dec).await? {
            FirstChunk::More(b) => preread = Some(b),
            FirstChunk::Whole(body) => {
                span.record("upstream", display(out.label));
                send_whole(fetcher, session, &out, after.as_ref(), body).await?;
                return Ok(Admitted::Answered);
            }
        }
    }
    Ok(Admitted::Proxy(Box::new(Proxying {
        out,
        after,
        preread,
    })))
}

/// Sends a body read whole ahead of time (see `preread`) and passes the
/// answer on. A migrate-mode write's `AfterWrite` runs here, as it does
/// for a proxied one.
async fn send_whole(
    fetcher: &Fetcher,
    session: &mut Session,
    out: &Outbound,
    after: Option<&AfterWrite>,
    body: Bytes,
) -> Result<(), S3Error> {
    let names = header_pairs(&session.req_header().headers, false);
    let mut headers = forwarded(&names, true);
    if out.create_only {
        merged::as_create_only(&mut headers);
    }
    let req = fetch::Request {
        method: session.req_header().method.as_str(),
        target: &out.target,
        headers,
        body: fetch::Body::Full(body),
    };
    let resp = fetcher.send(&out.side(), req).await?;
    if let Some(after) = after
        && !after.cleared(resp.status).await
    {
        return Err(S3Error::new(
            Code::InternalError,
            "the write landed but a journalled delete of the key still stands; retry the write",
        ));
    }
    migrate::wire::pass_through(fetcher, session, resp).await
}
