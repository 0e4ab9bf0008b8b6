//! The proxy's routes on the admin socket; the server is the agent's too
//! ([`ferry_control::socket::server`]).

use std::sync::Arc;

use ferry_control::socket::server::{self, Answer, Refusal, created, ok, read_json};
use ferry_control::{AttachRequest, BucketList, Mark, UpdateRequest, VerifiedRequest};
use hyper::body::Incoming;
use hyper::{Method, Request};
use tokio::net::UnixListener;

use super::Admin;

impl Admin {
    /// Serve the admin API on `listener` until the task is dropped (the
    /// server and the peer check are the agent's too: [`server::serve`]).
    pub async fn serve(self: Arc<Self>, listener: UnixListener) {
        let access = self.access.clone();
        server::serve(listener, access, move |req| {
            let admin = self.clone();
            async move { admin.route(req).await }
        })
        .await
    }

    async fn route(&self, req: Request<Incoming>) -> Answer {
        let (method, path, query) = server::target(&req);
        let rest = path
            .strip_prefix("/v1/buckets")
            .ok_or_else(|| Refusal::not_found(&path))?;
        match (rest, &method) {
            ("" | "/", &Method::GET) => ok(&BucketList {
                buckets: self.list(),
            }),
            ("" | "/", &Method::POST) => {
                let req: AttachRequest = read_json(req).await?;
                let view = self.attach(req).await?;
                created(&view)
            }
            ("" | "/", _) => Err(Refusal::method_not_allowed(&method, &path)),
            ("/update", &Method::POST) => {
                ok(&self.update(read_json::<UpdateRequest>(req).await?).await?)
            }
            (name, _) => {
                let name = name
                    .strip_prefix('/')
                    .ok_or_else(|| Refusal::not_found(&path))?;
                if let Some((name, what)) = name.split_once('/') {
                    // POST /v1/buckets/{name}/{verified|block|unblock}
                    if !matches!(what, "verified" | "block" | "unblock") {
                        return Err(Refusal::not_found(&path));
                    }
                    ferry_control::check_bucket_name(name).map_err(Refusal::invalid)?;
                    let mark = match (what, &method) {
                        ("verified", &Method::POST) => {
                            Mark::Verified(read_json::<VerifiedRequest>(req).await?)
                        }
                        ("block", &Method::POST) => Mark::Block,
                        ("unblock", &Method::POST) => Mark::Unblock,
                        _ => return Err(Refusal::method_not_allowed(&method, &path)),
                    };
                    return ok(&self.mark(name, mark).await?);
                }
                ferry_control::check_bucket_name(name).map_err(Refusal::invalid)?;
                match method {
                    Method::GET => ok(&self.show(name).await?),
                    Method::DELETE => ok(&self.detach(name, parse_force(&query)?).await?),
                    _ => Err(Refusal::method_not_allowed(&method, &path)),
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
