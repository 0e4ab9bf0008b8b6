//! The agent's routes on the admin socket (listed in
//! [`ferry_control::jobs`]); the server is the proxy's too
//! ([`ferry_control::socket::server`]).

use std::sync::Arc;

use ferry_control::StartJobRequest;
use ferry_control::socket::AccessPolicy;
use ferry_control::socket::server::{self, Answer, Refusal, created, ok, read_json};
use ferry_control::{FollowUp, JobList};
use hyper::body::Incoming;
use hyper::{Method, Request};
use tokio::net::UnixListener;

use super::manager::{DEFAULT_LOG_LINES, Manager};

/// Serve the API on `listener` until the task is dropped (the server and
/// the peer check are the proxy's too: [`server::serve`]).
pub async fn serve(manager: Arc<Manager>, access: AccessPolicy, listener: UnixListener) {
    server::serve(listener, access, move |req| {
        let manager = manager.clone();
        async move { route(&manager, req).await }
    })
    .await
}

async fn route(manager: &Arc<Manager>, req: Request<Incoming>) -> Answer {
    let (method, path, query) = server::target(&req);
    let rest = path
        .strip_prefix("/v1/jobs")
        .ok_or_else(|| Refusal::not_found(&path))?;
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
            created(&view)
        }
        ([id], &Method::GET) => ok(&manager.show(parse_id(id)?)?),
        ([id, "logs"], &Method::GET) => ok(&manager.logs(parse_id(id)?, parse_lines(&query)?)?),
        ([id, "pause"], &Method::POST) => ok(&manager.pause(parse_id(id)?)?),
        ([id, "resume"], &Method::POST) => ok(&manager.resume(parse_id(id)?)?),
        ([id, "cancel"], &Method::POST) => ok(&manager.cancel(parse_id(id)?).await?),
        ([] | [_] | [_, "logs" | "pause" | "resume" | "cancel"], _) => {
            Err(Refusal::method_not_allowed(&method, &path))
        }
        ([id, what], m) => match FollowUp::parse(what) {
            Some(what) if m == Method::POST => {
                let (id, manager) = (parse_id(id)?, manager.clone());
                // Like a start: the new job's files are written and fsynced.
                let view = tokio::task::spawn_blocking(move || manager.follow_up(id, what))
                    .await
                    .map_err(|e| Refusal::internal(format!("the {what:?} task failed: {e}")))??;
                created(&view)
            }
            Some(_) => Err(Refusal::method_not_allowed(&method, &path)),
            None => Err(Refusal::not_found(&path)),
        },
        _ => Err(Refusal::not_found(&path)),
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
