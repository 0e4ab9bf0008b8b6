//! Ferry's test harness: starts real third-party S3 servers (Garage, moto) on
//! loopback at ports picked at run time, and tears them down on drop.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let store = ferry_harness::Store::garage()?;
//! store.create_bucket("src")?;
//! let client = store.client();
//! client.put_object().bucket("src").key("k").body(b"v".to_vec().into()).send().await?;
//! assert_eq!(ferry_harness::list_keys(&client, "src").await?, ["k"]);
//! # Ok(()) }
//! ```
//!
//! Binaries come from `scripts/setup` (see [`garage_bin`] and [`moto_server_bin`]).
//!
//! Without its default feature `stores`, the harness is the part that needs
//! no S3 client (finding Ferry's programs, free ports, `skip`/`note`,
//! s3find's file trees): s3find's tests use just that, so that s3find's
//! dependency tree holds no S3 client crate.

#[cfg(feature = "stores")]
pub mod agent;
mod bins;
#[cfg(feature = "stores")]
mod blocking;
#[cfg(feature = "stores")]
mod boto3;
#[cfg(feature = "stores")]
mod capabilities;
#[cfg(feature = "stores")]
mod client;
/// A small DNS server on loopback whose records a test sets.
pub mod dns;
mod env;
/// A real etcd cluster on loopback: members killed, restarted, paused at will.
pub mod etcd;
#[cfg(feature = "stores")]
pub mod ferryctl;
#[cfg(feature = "stores")]
mod garage;
#[cfg(feature = "stores")]
mod http;
#[cfg(feature = "stores")]
pub mod live;
mod log_tail;
#[cfg(feature = "stores")]
mod moto;
mod outcome;
mod pattern;
mod ports;
#[cfg(feature = "stores")]
mod process;
pub mod procfs;
/// A real Prometheus on loopback and its HTTP API.
#[cfg(feature = "stores")]
pub mod prometheus;
#[cfg(feature = "stores")]
pub mod proxy;
pub mod s3find;
#[cfg(feature = "stores")]
pub mod s3migrate;
#[cfg(feature = "stores")]
mod secrets;
#[cfg(feature = "stores")]
mod store;
#[cfg(feature = "stores")]
pub mod tls;
#[cfg(feature = "stores")]
mod urlencoding;

pub use bins::{
    agent_bin, ferryctl_bin, find_program, garage_bin, moto_server_bin, program, proxy_bin,
    python_bin, s3find_bin, s3migrate_bin,
};
#[cfg(feature = "stores")]
pub use boto3::Boto3;
#[cfg(feature = "stores")]
pub use client::{complete_upload, get_bytes, list_keys, put_multipart, put_objects};
pub use env::{apply_loopback_env, loopback_env};
pub use outcome::{note, skip};
pub use pattern::xorshift_bytes;
pub use ports::free_port;
#[cfg(feature = "stores")]
pub use secrets::random_hex;
#[cfg(feature = "stores")]
pub use store::{Store, StoreKind};
#[cfg(feature = "stores")]
pub use urlencoding::form_decode;
