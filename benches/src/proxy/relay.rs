//! A plain TCP relay: bytes copied both ways, no HTTP at all. Requests
//! through it show what a second loopback hop costs any proxy on this
//! machine, so the proxy's own cost can be told from the hop's.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(store) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    // As Pingora does on both its sockets.
                    let _ = client.set_nodelay(true);
                    let _ = store.set_nodelay(true);
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_store, mut to_store) = store.into_split();
                    let up = async move {
                        tokio::io::copy(&mut from_client, &mut to_store).await?;
                        to_store.shutdown().await
                    };
                    let down = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = from_store.read(&mut buf).await?;
                            if n == 0 {
                                return to_client.shutdown().await;
                            }
                            // Garage writes a response's head and body
                            // apart: the body would wait 40 ms for our
                            // delayed ACK of the head. The proxy acks at
                            // once (proxy/src/quickack.rs); so does the
                            // floor it is measured against.
                            let _ =
                                socket2::SockRef::from(from_store.as_ref()).set_tcp_quickack(true);
                            to_client.write_all(&buf[..n]).await?;
                        }
                    };
                    let _ = tokio::join!(up, down);
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
