//! A plain TCP relay: bytes copied both ways, no HTTP at all. GETs through
//! it show what a second loopback hop costs any proxy on this machine, so
//! the proxy's own cost can be told from the hop's.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Relay {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on a free loopback port and relays each connection to
    /// `upstream` (`host:port`). It runs on the benchmark's own runtime, so
    /// its CPU is counted as the client's.
    pub async fn start(upstream: &str) -> anyhow::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the relay")?;
        let addr = listener.local_addr()?;
        let upstream = upstream.to_owned();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut store) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    // As Pingora does on both its sockets.
                    let _ = client.set_nodelay(true);
                    let _ = store.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut store).await;
                });
            }
        });
        Ok(Relay { addr, task })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
