//! A small authoritative DNS server on 127.0.0.1 (UDP), for `ferryctl check
//! dns`: it answers A and AAAA queries from a table the test changes while
//! the server runs (to flip a record mid-`--watch`). A name not in the
//! table is NXDOMAIN.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// name (lowercase, no trailing dot) → (addresses, TTL in seconds).
type Zone = HashMap<String, (Vec<IpAddr>, u32)>;

pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    pub fn start() -> anyhow::Result<DnsServer> {
        let socket = UdpSocket::bind("127.0.0.1:0").context("bind the DNS server")?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = socket.local_addr()?;
        let zone = Arc::new(Mutex::new(Zone::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (zone, stop) = (zone.clone(), stop.clone());
            std::thread::spawn(move || serve(&socket, &zone, &stop))
        };
        Ok(DnsServer {
            addr,
            zone,
            stop,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT`, for `--nameserver`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets (or replaces) `name`'s records.
    pub fn set(&self, name: &str, ips: &[IpAddr], ttl: u32) {
        self.zone
            .lock()
            .expect("zone lock")
            .insert(key(name), (ips.to_vec(), ttl));
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn serve(socket: &UdpSocket, zone: &Mutex<Zone>, stop: &AtomicBool) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let reply = answer(&query, &zone.lock().expect("zone lock"));
        if let Ok(bytes) = reply.to_vec() {
            let _ = socket.send_to(&bytes, peer);
        }
    }
}

fn answer(query: &Message, zone: &Zone) -> Message {
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.message_type = MessageType::Response;
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    for q in &query.queries {
        reply.add_query(q.clone());
        let Some((ips, ttl)) = zone.get(&key(&q.name().to_ascii())) else {
            reply.metadata.response_code = ResponseCode::NXDomain;
            continue;
        };
        for ip in ips {
            let rdata = match (ip, q.query_type()) {
                (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
                (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
                _ => continue,
            };
            let name: Name = q.name().clone();
            reply.add_answer(Record::from_rdata(name, *ttl, rdata));
        }
    }
    reply
}
