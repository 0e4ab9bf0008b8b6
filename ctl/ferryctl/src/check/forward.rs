//! `ferryctl check forward BUCKET --proxy URL`: the seed's forward-mode
//! validation in one command. As a client user (from the users file),
//! through the proxy, pinned to each bucket hostname (no /etc/hosts edit),
//! a probe object is written, read, listed and deleted; the source itself
//! is asked whether the write, and then the delete, reached it.

use std::path::PathBuf;

use aws_sdk_s3::primitives::ByteStream;
use clap::Args;
use ferry_control::{BucketView, Mode};

use super::s3::{self, CaFiles, ClientUser, Credential, Target};
use super::{Item, Report, Status};
use crate::bucket::Daemon;
use crate::failure::Failure;

#[derive(Args, Debug)]
pub struct ForwardArgs {
    /// The attached bucket.
    bucket: String,
    /// The proxy to go through: http://HOST:PORT or https://HOST:PORT.
    #[arg(long, value_name = "URL")]
    proxy: String,
    /// The hostnames clients use for the bucket, comma-separated. A name
    /// that starts with `BUCKET.` is used virtual-hosted style, any other
    /// path style. Default: the --proxy host, path style.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    hostnames: Vec<String>,
    #[command(flatten)]
    ca: CaFiles,
    /// The key that asks the source whether the probe landed (e.g. the
    /// copier's read-only user). Default: the client user's own, which the
    /// source takes until access to it is restricted.
    #[arg(long, requires = "source_secret_file", value_name = "KEY")]
    source_key: Option<String>,
    /// File holding --source-key's secret (its first line; mode 0600).
    #[arg(long, requires = "source_key", value_name = "FILE")]
    source_secret_file: Option<PathBuf>,
    #[command(flatten)]
    user: ClientUser,
}

pub fn run(daemon: &Daemon<'_>, args: &ForwardArgs) -> Result<Report, Failure> {
    let view = daemon.show(&args.bucket)?;
    let cred = args.user.credential(&args.bucket)?;
    let proxy = s3::proxy_addr(&args.proxy)?;
    let ca = args.ca.proxy()?;
    let source_ca = args.ca.source()?;
    let source_cred = match (&args.source_key, &args.source_secret_file) {
        (Some(key), Some(file)) => Credential::from_file(key, file, "--source")?,
        _ => cred.clone(),
    };
    let source = s3::client(&Target::source(&view, source_ca.as_deref()), &source_cred)?;
    let hostnames = if args.hostnames.is_empty() {
        vec![proxy.host.clone()]
    } else {
        args.hostnames.clone()
    };
    let mut items = vec![mode_item(&view)];
    let rt = crate::runtime()?;
    for host in &hostnames {
        let client = s3::client(
            &proxy.as_named(host, &args.bucket, &view.source_region, ca.as_deref()),
            &cred,
        )?;
        items.extend(rt.block_on(probe(host, &client, &source, &view, &cred, &args.bucket)));
    }
    Ok(Report::new("forward", &args.bucket, items))
}

fn mode_item(view: &BucketView) -> Item {
    if view.mode == Mode::Forward {
        Item::new("mode", Status::Pass, "forward")
    } else {
        Item::new(
            "mode",
            Status::Fail,
            format!(
                "{} mode: forward mode sends every request to the source; set it with \
                 `ferryctl s3 bucket migrate update --bucket {} --mode forward`",
                view.mode, view.bucket
            ),
        )
    }
}

/// The probe through one hostname: each step an item; a step that fails
/// ends the probe (later steps would only repeat it), after a best-effort
/// delete of what it wrote.
async fn probe(
    host: &str,
    proxy: &aws_sdk_s3::Client,
    source: &aws_sdk_s3::Client,
    view: &BucketView,
    cred: &Credential,
    bucket: &str,
) -> Vec<Item> {
    let key = s3::probe_key("forward");
    let body = format!("ferryctl check forward through {host}\n");
    let mut items = Vec::new();
    let item =
        |step: &str, status, detail: String| Item::new(format!("{host}: {step}"), status, detail);
    let as_user = format!("as {}", cred.name);

    let put = proxy
        .put_object()
        .bucket(bucket)
        .key(&key)
        .body(ByteStream::from(body.clone().into_bytes()))
        .send()
        .await;
    let etag = match put {
        Ok(o) => {
            items.push(item("write", Status::Pass, format!("PUT {key} {as_user}")));
            o.e_tag().unwrap_or_default().to_owned()
        }
        Err(e) => {
            items.push(item(
                "write",
                Status::Fail,
                format!("PUT {key} {as_user}: {}", s3::why(&e)),
            ));
            return items;
        }
    };
    let done =
        async {
            let got = proxy.get_object().bucket(bucket).key(&key).send().await;
            match got {
                Ok(o) => match o.body.collect().await.map(|b| b.into_bytes()) {
                    Ok(b) if b == body.as_bytes() => {
                        items.push(item(
                            "read",
                            Status::Pass,
                            "GET returns what was written".into(),
                        ));
                    }
                    Ok(_) => {
                        items.push(item("read", Status::Fail, "GET returns other bytes".into()));
                        return;
                    }
                    Err(e) => {
                        items.push(item("read", Status::Fail, format!("GET body: {e}")));
                        return;
                    }
                },
                Err(e) => {
                    items.push(item("read", Status::Fail, format!("GET: {}", s3::why(&e))));
                    return;
                }
            }
            let listed = proxy
                .list_objects_v2()
                .bucket(bucket)
                .prefix(&key)
                .send()
                .await;
            match listed {
                Ok(l) if l.contents().iter().any(|o| o.key() == Some(key.as_str())) => {
                    items.push(item("list", Status::Pass, "the listing holds it".into()));
                }
                Ok(_) => {
                    items.push(item(
                        "list",
                        Status::Fail,
                        "the listing does not hold it".into(),
                    ));
                    return;
                }
                Err(e) => {
                    items.push(item("list", Status::Fail, format!("LIST: {}", s3::why(&e))));
                    return;
                }
            }
            let at_source = format!("bucket {} at {}", view.source_bucket, view.source_url);
            match source.head_object().bucket(&view.source_bucket).key(&key).send().await {
            Ok(h) if h.e_tag().unwrap_or_default() == etag => items.push(item(
                "on source",
                Status::Pass,
                format!("the write reached the source ({at_source})"),
            )),
            Ok(h) => items.push(item(
                "on source",
                Status::Fail,
                format!(
                    "the source holds another object under the probe's key (ETag {} not {etag})",
                    h.e_tag().unwrap_or_default()
                ),
            )),
            Err(e) => items.push(item(
                "on source",
                Status::Fail,
                format!(
                    "the write did not reach the source ({at_source}: {}); the proxy did not \
                     forward it",
                    s3::why(&e)
                ),
            )),
        }
        };
    done.await;
    let deleted = proxy.delete_object().bucket(bucket).key(&key).send().await;
    match deleted {
        Ok(_) => items.push(item("delete", Status::Pass, "DELETE".into())),
        Err(e) => {
            items.push(item(
                "delete",
                Status::Fail,
                format!("DELETE {key}: {}", s3::why(&e)),
            ));
            return items;
        }
    }
    if items.iter().all(|i| i.status == Status::Pass) {
        let gone = source
            .head_object()
            .bucket(&view.source_bucket)
            .key(&key)
            .send()
            .await;
        items.push(match gone {
            Err(e) if s3::status(&e) == Some(404) => item(
                "deleted on source",
                Status::Pass,
                "the delete reached the source".into(),
            ),
            Ok(_) => item(
                "deleted on source",
                Status::Fail,
                format!("{key} is still on the source"),
            ),
            Err(e) => item("deleted on source", Status::Fail, s3::why(&e)),
        });
    }
    items
}
