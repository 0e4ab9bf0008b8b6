//! The admin API's HTTP side, for both daemons: accept, check each peer
//! once, hand each request to the daemon's router, answer JSON. A router
//! answers a status and a JSON body, or a [`Refusal`]; everything else
//! (timeouts, body limits, the error body) is the same on both sockets.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::{UnixListener, UnixStream};

use super::AccessPolicy;
use crate::{ApiError, codes};

/// Largest request body: a job spec is a few hundred bytes, an attach with
/// a certificate chain a few kilobytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A refused or failed API call: the HTTP status and the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub error: ApiError,
}

impl Refusal {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            error: ApiError::new(code, message),
        }
    }

    /// 400: the request itself is wrong.
    pub fn invalid(message: impl Into<String>) -> Refusal {
        Refusal::new(400, codes::INVALID_REQUEST, message)
    }

    /// 500: the daemon failed.
    pub fn internal(message: impl Into<String>) -> Refusal {
        Refusal::new(500, codes::INTERNAL, message)
    }

    /// 404: no route by this path.
    pub fn not_found(path: &str) -> Refusal {
        Refusal::new(404, codes::NOT_FOUND, format!("no such route: {path}"))
    }

    /// 405: the route exists, not with this method.
    pub fn method_not_allowed(method: &Method, path: &str) -> Refusal {
        Refusal::new(
            405,
            codes::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}"),
        )
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.error)
    }
}

/// What a router answers: a status and a JSON body, or a refusal.
pub type Answer = Result<(StatusCode, Bytes), Refusal>;

/// Serve `router` on `listener` until the task is dropped. Each connection
/// runs on its own task; its peer is checked once, when it connects: root
/// and members of the socket group may act, everyone else gets 403
/// `AccessDenied` naming the group.
pub async fn serve<R, F>(listener: UnixListener, access: AccessPolicy, router: R)
where
    R: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    let access = Arc::new(access);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, access.clone(), router.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, then go on.
                tracing::warn!(error = %e, "admin socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection<R, F>(stream: UnixStream, access: Arc<AccessPolicy>, router: R)
where
    R: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    let allowed = access.check_peer(&stream);
    if let Err(why) = &allowed {
        tracing::warn!(reason = %why, "admin connection refused");
    }
    let service = service_fn(move |req| {
        let answer = match &allowed {
            Ok(()) => Ok(router(req)),
            Err(why) => Err(Refusal::new(403, codes::ACCESS_DENIED, why.clone())),
        };
        async move {
            let answer = match answer {
                Ok(routed) => routed.await,
                Err(r) => Err(r),
            };
            Ok::<_, Infallible>(match answer {
                Ok((status, body)) => json(status, body),
                Err(r) => {
                    let status =
                        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    json(status, to_json::<ApiError>(&r.error))
                }
            })
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "admin connection ended with an error");
    }
}

/// A request's method, path and query (empty if none), owned, for a router
/// that then takes the body.
pub fn target(req: &Request<Incoming>) -> (Method, String, String) {
    let uri = req.uri();
    let query = uri.query().unwrap_or_default().to_owned();
    (req.method().clone(), uri.path().to_owned(), query)
}

/// The request's JSON body, at most [`MAX_BODY_BYTES`]. The parse error
/// goes back to the caller only; it is never logged (it may quote a
/// secret).
pub async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, Refusal> {
    let body = Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            Refusal::new(
                413,
                codes::INVALID_REQUEST,
                format!("cannot read the request body (at most {MAX_BODY_BYTES} bytes): {e}"),
            )
        })?
        .to_bytes();
    serde_json::from_slice(&body)
        .map_err(|e| Refusal::invalid(format!("the request body is not valid: {e}")))
}

/// 200 with `value`.
pub fn ok<T: Serialize>(value: &T) -> Answer {
    Ok((StatusCode::OK, to_json(value)))
}

/// 201 with `value`.
pub fn created<T: Serialize>(value: &T) -> Answer {
    Ok((StatusCode::CREATED, to_json(value)))
}

fn to_json<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("API types always serialize"))
}

fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}
