//! `ferryctl check restricted BUCKET`: the seed's "restrict access to the
//! source" step, checked. A client user's write straight to the source
//! must be refused (else clients can still change the source behind the
//! migration's back, and those writes would be lost at the switch), while
//! the proxy still reaches the source with the migration credentials.
//! `update --mode migrate` runs the first item itself.

use aws_sdk_s3::primitives::ByteStream;
use clap::Args;
use ferry_control::{BucketView, Mode};

use super::s3::{self, CaFiles, ClientUser, Credential, Target};
use super::{Item, Report, Status};
use crate::bucket::Daemon;
use crate::failure::Failure;

#[derive(Args, Debug)]
pub struct RestrictedArgs {
    /// The attached bucket.
    bucket: String,
    /// Also check, through this proxy (http://HOST:PORT or
    /// https://HOST:PORT), that it still reaches the source with the
    /// migration credentials.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// The bucket hostname to reach the proxy under (URL, Host and SNI).
    /// Default: the --proxy host.
    #[arg(long, requires = "proxy", value_name = "NAME")]
    hostname: Option<String>,
    #[command(flatten)]
    ca: CaFiles,
    #[command(flatten)]
    user: ClientUser,
}

pub fn run(daemon: &Daemon<'_>, args: &RestrictedArgs) -> Result<Report, Failure> {
    let view = daemon.show(&args.bucket)?;
    let cred = args.user.credential(&args.bucket)?;
    let source_ca = args.ca.source()?;
    let rt = crate::runtime()?;
    let mut items = vec![rt.block_on(client_write_refused(&view, &cred, source_ca.as_deref()))?];
    items.push(match &args.proxy {
        None => Item::new(
            "migration credentials",
            Status::Warn,
            "not checked: give --proxy to check that the proxy still reaches the source",
        ),
        Some(url) => {
            let ca = args.ca.proxy()?;
            let proxy = s3::proxy_addr(url)?;
            let hostname = args.hostname.as_deref().unwrap_or(&proxy.host);
            let client = s3::client(
                &proxy.as_named(hostname, &view.bucket, &view.source_region, ca.as_deref()),
                &cred,
            )?;
            rt.block_on(proxy_reaches_source(&view, &client))
        }
    });
    Ok(Report::new("restricted", &args.bucket, items))
}

/// A probe PUT straight to the source as a client user: refused (403)
/// passes; accepted fails (and the probe is deleted again).
pub async fn client_write_refused(
    view: &BucketView,
    cred: &Credential,
    source_ca: Option<&[u8]>,
) -> Result<Item, Failure> {
    let source = s3::client(&Target::source(view, source_ca), cred)?;
    let key = s3::probe_key("restricted");
    let at = format!("bucket {} at {}", view.source_bucket, view.source_url);
    let name = "client write to source";
    let put = source
        .put_object()
        .bucket(&view.source_bucket)
        .key(&key)
        .body(ByteStream::from_static(b"ferryctl check restricted\n"))
        .send()
        .await;
    Ok(match put {
        Err(e) if s3::status(&e) == Some(403) => Item::new(
            name,
            Status::Pass,
            format!(
                "the source refused client user {}'s write to {at}: {}",
                cred.name,
                s3::why(&e)
            ),
        ),
        Err(e) => Item::new(
            name,
            Status::Fail,
            format!("could not tell: the write to {at} failed: {}", s3::why(&e)),
        ),
        Ok(_) => {
            let cleanup = match source
                .delete_object()
                .bucket(&view.source_bucket)
                .key(&key)
                .send()
                .await
            {
                Ok(_) => String::new(),
                Err(e) => format!(
                    " (and the probe {key} could not be deleted: {})",
                    s3::why(&e)
                ),
            };
            Item::new(
                name,
                Status::Fail,
                format!(
                    "the source accepted client user {}'s write to {at}: clients can still change \
                     the source directly, and what they write there after the switch to migrate \
                     mode would be lost; restrict access to the source first{cleanup}",
                    cred.name
                ),
            )
        }
    })
}

/// A GET of a key no one has, through the proxy: in forward and migrate
/// mode it reaches the source signed with the migration credentials, so a
/// 404 from the source shows they still work.
async fn proxy_reaches_source(view: &BucketView, client: &aws_sdk_s3::Client) -> Item {
    let name = "migration credentials";
    if view.mode == Mode::Ready {
        return Item::new(
            name,
            Status::Warn,
            "not checked: in ready mode the proxy does not use the source",
        );
    }
    let key = s3::probe_key("restricted-absent");
    let got = client
        .get_object()
        .bucket(&view.bucket)
        .key(&key)
        .send()
        .await;
    match got {
        Err(e) if s3::status(&e) == Some(404) => Item::new(
            name,
            Status::Pass,
            "the proxy reaches the source with the migration credentials",
        ),
        Err(e) => Item::new(
            name,
            Status::Fail,
            format!(
                "through the proxy, a read that goes to the source failed: {}",
                s3::why(&e)
            ),
        ),
        Ok(_) => Item::new(
            name,
            Status::Fail,
            format!("through the proxy, the absent probe {key} was found"),
        ),
    }
}
