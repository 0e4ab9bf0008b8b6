//! Where an upstream's name points.
//!
//! Pingora's `HttpPeer::new` looks a `host:port` up on every call, with the
//! system's blocking resolver on the worker thread, and panics if the
//! lookup fails. So the proxy hands Pingora an address instead:
//! - an upstream given by IP address is parsed once, with its URL
//!   ([`Upstream::from_url`](super::Upstream::from_url));
//! - one given by name is looked up with the system's resolver
//!   (getaddrinfo: `/etc/hosts` and nsswitch apply, as they do for the
//!   source check at attach), on Tokio's blocking pool and within the
//!   connect timeout. The answer is kept for [`FRESH`].
//!
//! When a lookup fails, an earlier answer is kept, so a DNS outage does not
//! take away a source that is still reachable. With no earlier answer the
//! request gets a 503, and the failure is kept for [`RETRY`], so that a
//! broken name costs one lookup a second, not one per request. Requests
//! take the addresses of an answer in turn: a source cluster behind
//! round-robin DNS gets the proxy's requests spread over its nodes. A
//! connection refused or timed out at one address is tried at the one
//! after it (`after`; [`count`] says how many there are), so a dead node
//! costs a connect attempt, not the request.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use super::Upstream;

/// How long an answer is used before the name is looked up again.
pub const FRESH: Duration = Duration::from_secs(10);
/// How long a failed lookup with no earlier answer stands.
pub const RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resolve {name}: {why}")]
pub struct ResolveError {
    pub name: String,
    pub why: String,
}

#[derive(Default)]
struct Entry {
    /// The last answer with addresses in it; empty if there never was one.
    addrs: Arc<[SocketAddr]>,
    /// The next of `addrs` to hand out.
    next: usize,
    /// Until when the entry stands without a new lookup.
    until: Option<Instant>,
    /// Why the last lookup failed, while `addrs` is empty.
    failed: Option<String>,
}

impl Entry {
    /// The address after `after` if it is one of them (a failed connect's
    /// next try, whatever other requests drew meanwhile), else the next in
    /// turn.
    fn pick(&mut self, after: Option<SocketAddr>) -> Option<SocketAddr> {
        let n = self.addrs.len();
        if let Some(i) = after.and_then(|a| self.addrs.iter().position(|x| *x == a)) {
            return Some(self.addrs[(i + 1) % n]);
        }
        let a = *self.addrs.get(self.next % n.max(1))?;
        self.next = self.next.wrapping_add(1);
        Some(a)
    }
}

/// Keyed by `host:port`. foldhash: the keys are the operator's upstreams.
static NAMES: LazyLock<Mutex<foldhash::HashMap<String, Entry>>> = LazyLock::new(Mutex::default);

/// The address to connect to for `up`, within `limit` if a lookup is due;
/// `after`: the address whose connect just failed.
pub async fn address(
    up: &Upstream,
    limit: Duration,
    after: Option<SocketAddr>,
) -> Result<SocketAddr, ResolveError> {
    if let Some(ip) = up.ip {
        return Ok(ip);
    }
    let name = up.authority.as_str();
    if let Some(cached) = cached(name, Instant::now(), after) {
        return cached;
    }
    let looked = match tokio::time::timeout(limit, tokio::net::lookup_host(name)).await {
        Ok(Ok(addrs)) => Ok(addrs.collect::<Vec<_>>()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    };
    answer(name, looked, Instant::now(), after)
}

/// How many addresses a connection to `up` may try: 1 for an IP address,
/// else as many as the name's last answer has.
pub fn count(up: &Upstream) -> usize {
    if up.ip.is_some() {
        return 1;
    }
    let names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    names
        .get(up.authority.as_str())
        .map_or(1, |e| e.addrs.len().max(1))
}

/// A standing entry's address or failure; `None`: a lookup is due.
fn cached(
    name: &str,
    now: Instant,
    after: Option<SocketAddr>,
) -> Option<Result<SocketAddr, ResolveError>> {
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    let e = names.get_mut(name)?;
    if e.until.is_none_or(|until| now >= until) {
        return None;
    }
    Some(match (e.pick(after), &e.failed) {
        (Some(a), _) => Ok(a),
        (None, why) => Err(error(name, why.as_deref().unwrap_or("no address"))),
    })
}

/// Records a lookup of `name` and answers from the entry.
pub(super) fn answer(
    name: &str,
    looked: Result<Vec<SocketAddr>, String>,
    now: Instant,
    after: Option<SocketAddr>,
) -> Result<SocketAddr, ResolveError> {
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    let e = names.entry(name.to_owned()).or_default();
    match looked {
        Ok(addrs) if !addrs.is_empty() => {
            if e.failed.take().is_some() || addrs.as_slice() != &*e.addrs {
                tracing::info!(upstream = name, addresses = ?addrs, "upstream name resolved");
            }
            e.addrs = addrs.into();
            e.until = Some(now + FRESH);
        }
        looked => {
            let why = looked.err().unwrap_or_else(|| "no address".to_owned());
            if e.addrs.is_empty() {
                tracing::warn!(upstream = name, error = %why, "cannot resolve an upstream");
                e.failed = Some(why);
                e.until = Some(now + RETRY);
            } else {
                tracing::warn!(
                    upstream = name,
                    error = %why,
                    addresses = ?e.addrs,
                    "cannot resolve an upstream; its last addresses stay in use"
                );
                e.until = Some(now + FRESH);
            }
        }
    }
    e.pick(after)
        .ok_or_else(|| error(name, e.failed.as_deref().unwrap_or("no address")))
}

fn error(name: &str, why: &str) -> ResolveError {
    ResolveError {
        name: name.to_owned(),
        why: why.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(authority: &str) -> Upstream {
        Upstream::from_url(&format!("http://{authority}")).unwrap()
    }

    #[tokio::test]
    async fn an_address_is_parsed_once_and_a_name_is_looked_up() {
        let ip = named("127.0.0.1:3900");
        assert_eq!(ip.ip, Some("127.0.0.1:3900".parse().unwrap()));
        assert_eq!(named("[::1]:9000").ip, Some("[::1]:9000".parse().unwrap()));
        let name = named("localhost:3901");
        assert_eq!(name.ip, None);
        let a = address(&name, Duration::from_secs(5), None).await.unwrap();
        assert!(a.ip().is_loopback() && a.port() == 3901, "{a}");
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_an_error_that_names_it() {
        let up = named("no-such-host.invalid:9000");
        let e = address(&up, Duration::from_secs(5), None)
            .await
            .unwrap_err();
        assert_eq!(e.name, "no-such-host.invalid:9000");
        assert!(
            e.to_string()
                .starts_with("cannot resolve no-such-host.invalid:9000: ")
        );
        // Kept for RETRY: the same error, from the entry.
        assert_eq!(cached(&e.name, Instant::now(), None), Some(Err(e)));
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_answer_and_requests_rotate() {
        let name = "rotate.test:80";
        let (a, b): (SocketAddr, SocketAddr) = (
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        );
        let t0 = Instant::now();
        assert_eq!(answer(name, Ok(vec![a, b]), t0, None), Ok(a));
        assert_eq!(count(&named(name)), 2);
        assert_eq!(cached(name, t0, None), Some(Ok(b)));
        // After a failed connect: the address after it, out of turn.
        assert_eq!(cached(name, t0, Some(b)), Some(Ok(a)));
        assert_eq!(cached(name, t0, Some(a)), Some(Ok(b)));
        assert_eq!(cached(name, t0, None), Some(Ok(a)));
        // Stale: a lookup is due. It fails, and the answer stays.
        let later = t0 + FRESH;
        assert_eq!(cached(name, later, None), None);
        assert_eq!(answer(name, Err("SERVFAIL".into()), later, None), Ok(b));
        assert_eq!(cached(name, later, None), Some(Ok(a)));
        // A new answer replaces it.
        let c: SocketAddr = "10.0.0.3:80".parse().unwrap();
        assert_eq!(answer(name, Ok(vec![c]), later + FRESH, Some(a)), Ok(c));
        assert_eq!(cached(name, later + FRESH, None), Some(Ok(c)));
        assert_eq!(count(&named(name)), 1);
        assert_eq!(count(&named("10.0.0.9:80")), 1);
    }
}
