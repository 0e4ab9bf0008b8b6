//! The admin API's HTTP side: accept, check the peer, route, answer JSON.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_control::{ApiError, AttachRequest, BucketList, UpdateRequest, codes};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::{UnixListener, UnixStream};

use super::{Admin, Refusal};

/// Largest request body (an attach with a certificate chain fits easily).
const MAX_BODY_BYTES: usize = 1 << 20;

impl Admin {
    /// Serve the admin API on `listener` until the task is dropped. Each
    /// connection runs on its own task; its peer is checked once, when it
    /// connects: root and members of the socket group may act, everyone else
    /// gets 403 `AccessDenied` naming the group.
    pub async fn serve(self: Arc<Self>, listener: UnixListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let admin = self.clone();
                    tokio::spawn(async move { admin.serve_connection(stream).await });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on.
                    tracing::warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn serve_connection(self: Arc<Self>, stream: UnixStream) {
        let access = self.access.check_peer(&stream);
        if let Err(why) = &access {
            tracing::warn!(reason = %why, "admin connection refused");
        }
        let service = service_fn(move |req| {
            let admin = self.clone();
            let access = access.clone();
            async move {
                let resp = match access {
                    Ok(()) => admin.route(req).await,
                    Err(why) => Err(Refusal::new(403, codes::ACCESS_DENIED, why)),
                };
                Ok::<_, Infallible>(match resp {
                    Ok((status, body)) => json(status, body),
                    Err(r) => refusal(r),
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

    async fn route(&self, req: Request<Incoming>) -> Result<(StatusCode, Bytes), Refusal> {
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let method = req.method().clone();
        let rest = path
            .strip_prefix("/v1/buckets")
            .ok_or_else(|| not_found(&path))?;
        match (rest, &method) {
            ("" | "/", &Method::GET) => ok(&BucketList {
                buckets: self.list(),
            }),
            ("" | "/", &Method::POST) => {
                let req: AttachRequest = read_json(req).await?;
                let view = self.attach(req).await?;
                Ok((StatusCode::CREATED, to_json(&view)))
            }
            ("" | "/", _) => Err(method_not_allowed(&method, &path)),
            ("/update", &Method::POST) => {
                ok(&self.update(read_json::<UpdateRequest>(req).await?).await?)
            }
            (name, _) => {
                let name = name.strip_prefix('/').ok_or_else(|| not_found(&path))?;
                if name.contains('/') {
                    return Err(not_found(&path));
                }
                ferry_control::check_bucket_name(name).map_err(Refusal::invalid)?;
                match method {
                    Method::GET => ok(&self.show(name).await?),
                    Method::DELETE => ok(&self.detach(name, parse_force(&query)?).await?),
                    _ => Err(method_not_allowed(&method, &path)),
                }
            }
        }
    }
}

fn parse_force(query: &str) -> Result<bool, Refusal> {
    let mut force = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("force", "true")) => force = true,
            Some(("force", "false")) => force = false,
            _ => {
                return Err(Refusal::invalid(format!(
                    "unknown query parameter {pair:?} (only force=true|false)"
                )));
            }
        }
    }
    Ok(force)
}

async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, Refusal> {
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

fn ok<T: Serialize>(value: &T) -> Result<(StatusCode, Bytes), Refusal> {
    Ok((StatusCode::OK, to_json(value)))
}

fn to_json<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("API types always serialize"))
}

fn not_found(path: &str) -> Refusal {
    Refusal::new(404, codes::NOT_FOUND, format!("no such route: {path}"))
}

fn method_not_allowed(method: &Method, path: &str) -> Refusal {
    Refusal::new(
        405,
        codes::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {path}"),
    )
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

fn refusal(r: Refusal) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, to_json::<ApiError>(&r.error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn force_query() {
        assert_eq!(parse_force(""), Ok(false));
        assert_eq!(parse_force("force=true"), Ok(true));
        assert_eq!(parse_force("force=false"), Ok(false));
        assert!(parse_force("force=yes").is_err());
        assert!(parse_force("forse=true").is_err());
    }
}
