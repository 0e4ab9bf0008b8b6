//! Acknowledge an upstream response's head at once.
//!
//! Garage 2.5 (and any store that leaves Nagle's algorithm on) writes a
//! response's headers and its body in two writes. A body smaller than one
//! segment then waits for our ACK of the headers, which Linux delays by
//! 40 ms: a 4 KiB GET took 44 ms instead of 1 ms, direct or proxied.
//! Setting `TCP_QUICKACK` once the head has been read sends that pending ACK
//! now. It is set per response, not per connection, because Linux leaves
//! quick-ack mode again by itself.

use std::os::fd::{BorrowedFd, RawFd};

/// Send any ACK pending on `fd`, an upstream socket Pingora gave us for the
/// request in hand. A failure only costs the delay this avoids.
pub fn ack_now(fd: RawFd) {
    // Pingora's in-memory streams (sub-requests, test mocks) report id 0:
    // never touch standard I/O.
    if fd <= 2 {
        return;
    }
    // The one reviewed `unsafe` of the workspace (STYLE.md). Pingora hands
    // out its upstream socket only as a raw fd, and every safe socket API
    // wants a borrowed one.
    // SAFETY: `fd` is the socket of the upstream connection whose response
    // head was just read (Pingora's TLS streams report their TCP socket's
    // fd); the caller holds that connection for the whole call, so the fd
    // is open and is that socket. It is only borrowed, never closed.
    #[allow(unsafe_code)]
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = socket2::SockRef::from(&fd).set_tcp_quickack(true);
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    /// The kernel reports quick-ack mode on after the call, whatever it was.
    #[test]
    fn turns_quick_ack_on() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let sock = socket2::SockRef::from(&client);
        sock.set_tcp_quickack(false).unwrap();
        assert!(!sock.tcp_quickack().unwrap());
        ack_now(client.as_raw_fd());
        assert!(sock.tcp_quickack().unwrap(), "quick-ack still off");
    }
}
