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

mod bins;
mod blocking;
mod boto3;
mod capabilities;
mod client;
mod env;
mod garage;
mod http;
mod moto;
mod ports;
mod process;
mod secrets;
mod store;
pub mod tls;
mod urlencoding;

pub use bins::{garage_bin, moto_server_bin, python_bin};
pub use boto3::Boto3;
pub use capabilities::{note, skip};
pub use client::{get_bytes, list_keys, put_objects};
pub use env::{apply_loopback_env, loopback_env};
pub use ports::free_port;
pub use store::{Store, StoreKind};
pub use urlencoding::form_decode;
