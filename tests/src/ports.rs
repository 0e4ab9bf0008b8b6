//! Free loopback ports, picked at run time.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, PoisonError};

/// Ports handed out by this process, never handed out twice: the kernel may
/// give the same ephemeral port to two `bind(0)` calls once the first
/// listener is closed, and the server that will use it has not bound it yet.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Bind `127.0.0.1:0`, read the port, release it.
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..64 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let mut guard = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    anyhow::bail!("could not find a free loopback port not already handed out")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_are_distinct_and_bindable() {
        let a = super::free_port().unwrap();
        let b = super::free_port().unwrap();
        assert_ne!(a, b);
        std::net::TcpListener::bind(("127.0.0.1", a)).unwrap();
    }
}
