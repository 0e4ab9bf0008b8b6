//! Types shared by `ferryctl`, `ferry-proxy` and `ferry-agent`: the control
//! API lives here so that both daemons and the CLI agree on one schema, with
//! the small blocking client `ferryctl` uses to speak it.

pub mod api;
pub mod client;

pub use api::{
    ApiError, AttachRequest, BucketList, BucketView, Mode, ModeChange, Selector, UpdateRequest,
    UpdateResponse, check_bucket_name, codes,
};
pub use client::{Client, ClientError, DEFAULT_PROXY_SOCKET, RawResponse};
