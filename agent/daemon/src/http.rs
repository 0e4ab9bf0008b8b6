//! The admin API's HTTP side: accept, check the peer (exactly as the
//! proxy does, through [`ferry_control::socket::AccessPolicy`]), route, answer
//! JSON. Routes are listed in [`ferry_control::jobs`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_control::socket::AccessPolicy;
use ferry_control::{ApiError, JobList, StartJobRequest, codes};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::{UnixListener, UnixStream};

use super::Refusal;
use super::manager::{DEFAULT_LOG_LINES, Manager};

/// Largest request body (a job spec is a few hundred bytes).
const MAX_BODY_BYTES: usize = 1 << 20;

/// Serve the API on `listener` until the task is dropped. Each connection's
/// peer is checked once, when it connects: root and members of the socket
/// group may act, everyone else gets 403 `AccessDenied` naming the group.
pub async fn serve(manager: Arc<Manager>, access: AccessPolicy, listener: UnixListener) {
    let access = Arc::new(access);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(manager.clone(), access.clone(), stream));
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(manager: Arc<Manager>, access: Arc<AccessPolicy>, stream: UnixStream) {
    let allowed = access.check_peer(&stream);
    if let Err(why) = &allowed {
        tracing::warn!(reason = %why, "admin connection refused");
    }
    let service = service_fn(move |req| {
        let manager = manager.clone();
        let allowed = allowed.clone();
        async move {
            let resp = match allowed {
                Ok(()) => route(&manager, req).await,
                Err(why) => Err(Refusal::new(403, codes::ACCESS_DENIED, why)),
            };
            Ok::<_, Infallible>(match resp {
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

async fn route(
    manager: &Arc<Manager>,
    req: Request<Incoming>,
) -> Result<(StatusCode, Bytes), Refusal> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let method = req.method().clone();
    let rest = path
        .strip_prefix("/v1/jobs")
        .ok_or_else(|| not_found(&path))?;
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (parts.as_slice(), &method) {
        ([], &Method::GET) => ok(&JobList {
            jobs: manager.list(),
        }),
        ([], &Method::POST) => {
            let body: StartJobRequest = read_json(req).await?;
            let manager = manager.clone();
            // Creating a job writes and fsyncs its files.
            let view = tokio::task::spawn_blocking(move || manager.start(body))
                .await
                .map_err(|e| Refusal::internal(format!("the start task failed: {e}")))??;
            Ok((StatusCode::CREATED, to_json(&view)))
        }
        ([id], &Method::GET) => ok(&manager.show(parse_id(id)?)?),
        ([id, "logs"], &Method::GET) => ok(&manager.logs(parse_id(id)?, parse_lines(&query)?)?),
        ([id, "pause"], &Method::POST) => ok(&manager.pause(parse_id(id)?)?),
        ([id, "resume"], &Method::POST) => ok(&manager.resume(parse_id(id)?)?),
        ([id, "cancel"], &Method::POST) => ok(&manager.cancel(parse_id(id)?).await?),
        ([] | [_] | [_, "logs" | "pause" | "resume" | "cancel"], _) => Err(Refusal::new(
            405,
            codes::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}"),
        )),
        _ => Err(not_found(&path)),
    }
}

fn parse_id(s: &str) -> Result<u64, Refusal> {
    s.parse()
        .map_err(|_| Refusal::invalid(format!("job id {s:?} is not a number")))
}

fn parse_lines(query: &str) -> Result<usize, Refusal> {
    let mut lines = DEFAULT_LOG_LINES;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("lines", n)) => {
                lines = n.parse().map_err(|_| {
                    Refusal::invalid(format!("lines={n:?} is not a number of lines"))
                })?
            }
            _ => {
                return Err(Refusal::invalid(format!(
                    "unknown query parameter {pair:?} (only lines=N)"
                )));
            }
        }
    }
    Ok(lines)
}

async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Refusal> {
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
    // The message goes back to the caller only; it is never logged.
    serde_json::from_slice(&body)
        .map_err(|e| Refusal::invalid(format!("the request body is not valid: {e}")))
}

fn ok<T: Serialize>(value: &T) -> Result<(StatusCode, Bytes), Refusal> {
    Ok((StatusCode::OK, to_json(value)))
}

fn to_json<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("API types always serialize"))
}

fn not_found(path: &str) -> Refusal {
    Refusal::new(404, codes::NOT_FOUND, format!("no such route: {path}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_ids() {
        assert_eq!(parse_lines(""), Ok(DEFAULT_LOG_LINES));
        assert_eq!(parse_lines("lines=5"), Ok(5));
        assert!(parse_lines("lines=x").is_err());
        assert!(parse_lines("line=5").is_err());
        assert_eq!(parse_id("12"), Ok(12));
        assert!(parse_id("-1").is_err());
    }
}
