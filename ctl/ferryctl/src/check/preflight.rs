//! `ferryctl check preflight BUCKET`: every phase-1 item that can be
//! checked before the migration starts, against the source with the
//! copier's (read-only) user and against the target store with the
//! target's credentials. Reminders with facts (the source's lifecycle
//! rules and policy, the users to replicate) are warnings: they do not
//! stop the migration, but must not be forgotten.

use std::path::PathBuf;

use aws_sdk_s3::primitives::ByteStream;
use clap::Args;
use ferry_control::jobs::DEFAULT_REGION;
use ferry_control::users::Users;

use super::s3::{self, CaFiles, Credential, DEFAULT_USERS_FILE, Target, status, why};
use super::tls::{self, TlsArgs};
use super::{Item, Report, Status, dns};
use crate::bucket::Daemon;
use crate::failure::Failure;

/// The seed's margin on the target's free space over the source's bytes.
const SPACE_MARGIN: f64 = 0.10;

#[derive(Args, Debug)]
pub struct PreflightArgs {
    /// The bucket (its name on the target).
    bucket: String,
    /// The source's S3 URL [default: the attached bucket's].
    #[arg(long, value_name = "URL")]
    source_url: Option<String>,
    /// The bucket's name on the source [default: the attached bucket's,
    /// else BUCKET].
    #[arg(long, value_name = "NAME")]
    source_bucket: Option<String>,
    /// The source's SigV4 region [default: the attached bucket's, else
    /// us-east-1].
    #[arg(long, value_name = "REGION")]
    source_region: Option<String>,
    /// The copier's source user, which must only read (e.g. s3_ro_migrate).
    #[arg(long, value_name = "KEY")]
    source_key: String,
    /// File holding --source-key's secret (its first line; mode 0600).
    #[arg(long, value_name = "FILE")]
    source_secret_file: PathBuf,
    /// The target store's S3 URL (behind the proxy).
    #[arg(long, value_name = "URL")]
    target_url: String,
    /// The target's user, which the copier and the proxy write with.
    #[arg(long, value_name = "KEY")]
    target_key: String,
    /// File holding --target-key's secret (its first line; mode 0600).
    #[arg(long, value_name = "FILE")]
    target_secret_file: PathBuf,
    /// The target's SigV4 region.
    #[arg(long, default_value = DEFAULT_REGION, value_name = "REGION")]
    target_region: String,
    /// The proxy's journal_bucket on the target (migrate mode needs it).
    #[arg(long, value_name = "BUCKET")]
    journal_bucket: Option<String>,
    /// The source is listed up to this many keys to estimate its size.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    max_keys: u64,
    /// The proxy's TLS endpoint (HOST:PORT), whose certificate must cover
    /// --names.
    #[arg(long, requires = "names", value_name = "HOST:PORT")]
    tls_endpoint: Option<String>,
    /// The bucket's hostnames, comma-separated (with --tls-endpoint).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    names: Vec<String>,
    /// The bucket hostname whose TTL must already be short.
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// The highest TTL accepted on --hostname, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    max_ttl: u32,
    /// Ask this nameserver (IP or IP:PORT) instead of the system's.
    #[arg(long, value_name = "ADDR")]
    nameserver: Option<String>,
    /// The proxy's users file: the client users to replicate.
    #[arg(long, default_value = DEFAULT_USERS_FILE, value_name = "FILE")]
    users_file: PathBuf,
    #[command(flatten)]
    ca: CaFiles,
}

pub fn run(daemon: &Daemon<'_>, args: &PreflightArgs) -> Result<Report, Failure> {
    let attached = match &args.source_url {
        Some(_) => None,
        None => Some(daemon.show(&args.bucket).map_err(|e| {
            Failure::Usage(format!(
                "{}; give --source-url for a bucket not attached yet",
                e.message()
            ))
        })?),
    };
    let source_url = args
        .source_url
        .clone()
        .or_else(|| attached.as_ref().map(|v| v.source_url.clone()))
        .expect("one or the other");
    let source_bucket = args
        .source_bucket
        .clone()
        .or_else(|| attached.as_ref().map(|v| v.source_bucket.clone()))
        .unwrap_or_else(|| args.bucket.clone());
    let source_region = args
        .source_region
        .clone()
        .or_else(|| attached.as_ref().map(|v| v.source_region.clone()))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    let source_ca = args.ca.source()?;
    let source = s3::client(
        &Target {
            url: source_url.clone(),
            path_style: true,
            region: &source_region,
            pin: None,
            ca_pem: source_ca.as_deref(),
        },
        &Credential::from_file(&args.source_key, &args.source_secret_file, "--source")?,
    )?;
    let target = s3::client(
        &Target {
            url: args.target_url.clone(),
            path_style: true,
            region: &args.target_region,
            pin: None,
            ca_pem: None,
        },
        &Credential::from_file(&args.target_key, &args.target_secret_file, "--target")?,
    )?;
    let rt = crate::runtime()?;
    let mut items = rt.block_on(async {
        let mut items = Vec::new();
        items.push(source_reads(&source, &source_bucket).await);
        items.push(source_read_only(&source, &source_bucket).await);
        let (size, size_item) = source_size(&source, &source_bucket, args.max_keys).await;
        items.push(size_item);
        items.push(target_empty(&target, &args.bucket).await);
        items.push(lifecycle(&target, &args.bucket, Side::Target).await);
        items.extend(target_writes(&target, &args.bucket).await);
        items.push(free_space(size));
        items.push(journal(&target, &args.bucket, args.journal_bucket.as_deref()).await);
        items.push(lifecycle(&source, &source_bucket, Side::Source).await);
        items.push(source_policy(&source, &source_bucket).await);
        if let Some(host) = &args.hostname {
            items.push(dns::ttl(host, args.max_ttl, args.nameserver.as_deref()).await?);
        } else {
            items.push(Item::new(
                "dns ttl",
                Status::Warn,
                "not checked: give --hostname (lower the bucket hostname's TTL well before the cutover)",
            ));
        }
        Ok::<_, Failure>(items)
    })?;
    items.push(users(&args.users_file, &args.bucket));
    match &args.tls_endpoint {
        Some(endpoint) => {
            let tls = tls::run(&TlsArgs::new(
                endpoint.clone(),
                args.names.clone(),
                args.ca.ca_file.clone(),
            ))?;
            items.extend(tls.items);
        }
        None => items.push(Item::new(
            "certificate",
            Status::Warn,
            "not checked: give --tls-endpoint HOST:PORT --names … (the proxy's certificate must cover the bucket's hostnames)",
        )),
    }
    Ok(Report::new("preflight", &args.bucket, items))
}

async fn source_reads(c: &aws_sdk_s3::Client, bucket: &str) -> Item {
    match c.list_objects_v2().bucket(bucket).max_keys(1).send().await {
        Ok(_) => Item::new(
            "source read",
            Status::Pass,
            format!("the copier's user lists {bucket}"),
        ),
        Err(e) => Item::new(
            "source read",
            Status::Fail,
            format!("the copier's user cannot list {bucket}: {}", why(&e)),
        ),
    }
}

/// The copier's source user must not write: a probe write is refused.
async fn source_read_only(c: &aws_sdk_s3::Client, bucket: &str) -> Item {
    let key = s3::probe_key("preflight");
    let put = c
        .put_object()
        .bucket(bucket)
        .key(&key)
        .body(ByteStream::from_static(b"ferry preflight"))
        .send()
        .await;
    match put {
        Err(e) if status(&e) == Some(403) => Item::new(
            "source read-only",
            Status::Pass,
            "a write with the copier's user is refused (403)",
        ),
        Err(e) => Item::new(
            "source read-only",
            Status::Warn,
            format!("a probe write failed, but not as refused: {}", why(&e)),
        ),
        Ok(_) => {
            let gone = c.delete_object().bucket(bucket).key(&key).send().await;
            let left = match gone {
                Ok(_) => String::new(),
                Err(e) => format!("; the probe {key} is left ({})", why(&e)),
            };
            Item::new(
                "source read-only",
                Status::Fail,
                format!(
                    "the copier's user may write the source: give the copier a read-only user \
                     (the seed's s3_ro_migrate), so that no bug can change the source{left}"
                ),
            )
        }
    }
}

/// The source's objects and bytes, counted up to `max` keys.
async fn source_size(c: &aws_sdk_s3::Client, bucket: &str, max: u64) -> (Option<u64>, Item) {
    let (mut objects, mut bytes, mut token) = (0u64, 0u64, None::<String>);
    loop {
        let page = match c
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token.take())
            .send()
            .await
        {
            Ok(p) => p,
            Err(e) => {
                return (None, Item::new("source size", Status::Fail, why(&e)));
            }
        };
        for o in page.contents() {
            objects += 1;
            bytes += o.size().unwrap_or(0).max(0) as u64;
        }
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() || objects >= max {
            break;
        }
    }
    let detail = match token {
        None => format!("{objects} objects, {bytes} bytes"),
        Some(_) => format!(
            "at least {objects} objects, {bytes} bytes (listing stopped at --max-keys {max})"
        ),
    };
    (Some(bytes), Item::new("source size", Status::Pass, detail))
}

async fn target_empty(c: &aws_sdk_s3::Client, bucket: &str) -> Item {
    match c.list_objects_v2().bucket(bucket).max_keys(1).send().await {
        Ok(page) => match page.contents().first().and_then(|o| o.key()) {
            None => Item::new(
                "target bucket",
                Status::Pass,
                format!("{bucket} exists and is empty"),
            ),
            Some(k) => Item::new(
                "target bucket",
                Status::Fail,
                format!(
                    "{bucket} is not empty (it holds {k:?}, at least): the copy would mix with \
                     what is there; migrate into an empty bucket"
                ),
            ),
        },
        Err(e) => Item::new(
            "target bucket",
            Status::Fail,
            format!(
                "{bucket} cannot be listed on the target: {} (create it first)",
                why(&e)
            ),
        ),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Target,
}

/// On the target, lifecycle rules would expire or move copied objects:
/// they must be off. On the source, they are a reminder: re-create them on
/// the target after finalization.
async fn lifecycle(c: &aws_sdk_s3::Client, bucket: &str, side: Side) -> Item {
    let (name, rules_found) = match side {
        Side::Target => ("target lifecycle", Status::Fail),
        Side::Source => ("source lifecycle", Status::Warn),
    };
    match c
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) if !out.rules().is_empty() => {
            let ids: Vec<&str> = out.rules().iter().filter_map(|r| r.id()).collect();
            let what = format!("{} lifecycle rules ({})", out.rules().len(), ids.join(", "));
            Item::new(
                name,
                rules_found,
                match side {
                    Side::Target => format!(
                        "{what} on the target would expire or move copied objects: remove \
                         them until finalization"
                    ),
                    Side::Source => format!(
                        "{what} on the source: re-create them on the target after finalization"
                    ),
                },
            )
        }
        Ok(_) => Item::new(name, Status::Pass, "no lifecycle rules"),
        Err(e) if status(&e) == Some(404) => Item::new(name, Status::Pass, "no lifecycle rules"),
        Err(e) => Item::new(
            name,
            Status::Warn,
            format!("cannot read the lifecycle rules: {}", why(&e)),
        ),
    }
}

async fn source_policy(c: &aws_sdk_s3::Client, bucket: &str) -> Item {
    match c.get_bucket_policy().bucket(bucket).send().await {
        Ok(out) if out.policy().is_some_and(|p| !p.trim().is_empty()) => Item::new(
            "source policy",
            Status::Warn,
            "the source bucket has a bucket policy: re-create it on the target",
        ),
        Ok(_) => Item::new("source policy", Status::Pass, "no bucket policy"),
        Err(e) if status(&e) == Some(404) => {
            Item::new("source policy", Status::Pass, "no bucket policy")
        }
        Err(e) => Item::new(
            "source policy",
            Status::Warn,
            format!("cannot read the bucket policy: {}", why(&e)),
        ),
    }
}

/// The target's user writes, and the target honours `If-None-Match: *`
/// (the copier's no-lost-write rule rests on it).
async fn target_writes(c: &aws_sdk_s3::Client, bucket: &str) -> Vec<Item> {
    let key = s3::probe_key("preflight");
    let put = |cond: bool| {
        c.put_object()
            .bucket(bucket)
            .key(&key)
            .set_if_none_match(cond.then(|| "*".to_owned()))
            .body(ByteStream::from_static(b"ferry preflight"))
            .send()
    };
    if let Err(e) = put(false).await {
        return vec![Item::new(
            "target write",
            Status::Fail,
            format!("the target's user cannot write {bucket}: {}", why(&e)),
        )];
    }
    let written = Item::new(
        "target write",
        Status::Pass,
        "the target's user writes and deletes",
    );
    let conditional = match put(true).await {
        Err(e) if status(&e) == Some(412) => Item::new(
            "target conditional put",
            Status::Pass,
            "If-None-Match: * on an existing key is refused (412)",
        ),
        Err(e) => Item::new(
            "target conditional put",
            Status::Warn,
            format!("the conditional probe failed otherwise: {}", why(&e)),
        ),
        Ok(_) => Item::new(
            "target conditional put",
            Status::Fail,
            "the target ignores If-None-Match: s3migrate then runs only with --allow-overwrite, \
             and a client's write in migrate mode could be overwritten by the copy",
        ),
    };
    let deleted = match c.delete_object().bucket(bucket).key(&key).send().await {
        Ok(_) => written,
        Err(e) => Item::new(
            "target write",
            Status::Fail,
            format!(
                "the target's user wrote {key} but cannot delete it: {}",
                why(&e)
            ),
        ),
    };
    vec![deleted, conditional]
}

/// S3 has no call for a store's free space: the figure to check by hand.
fn free_space(source_bytes: Option<u64>) -> Item {
    let need = match source_bytes {
        Some(b) => format!(
            "at least {} bytes free (the source's {b} bytes and {:.0}%)",
            (b as f64 * (1.0 + SPACE_MARGIN)).ceil() as u64,
            SPACE_MARGIN * 100.0
        ),
        None => "the source's size and 10% free".to_owned(),
    };
    Item::new(
        "target free space",
        Status::Warn,
        format!("the target does not report its free space over S3: make sure it has {need}"),
    )
}

async fn journal(c: &aws_sdk_s3::Client, bucket: &str, journal: Option<&str>) -> Item {
    let Some(j) = journal else {
        return Item::new(
            "journal bucket",
            Status::Warn,
            "not checked: give --journal-bucket (migrate mode needs the proxy's journal_bucket)",
        );
    };
    if j == bucket {
        return Item::new(
            "journal bucket",
            Status::Fail,
            "the journal must be a bucket of its own, never the migrating one",
        );
    }
    match c.list_objects_v2().bucket(j).max_keys(1).send().await {
        Ok(_) => Item::new(
            "journal bucket",
            Status::Pass,
            format!("{j} exists on the target and the target's user lists it"),
        ),
        Err(e) => Item::new(
            "journal bucket",
            Status::Fail,
            format!(
                "{j} cannot be listed on the target: {} (create it)",
                why(&e)
            ),
        ),
    }
}

/// The client users with a grant on the bucket: they must exist on the
/// target with the same keys before the cutover.
fn users(file: &std::path::Path, bucket: &str) -> Item {
    match Users::load(file) {
        Ok(users) => {
            let mut names: Vec<&str> = users
                .iter()
                .filter(|u| u.buckets.contains_key(bucket))
                .map(|u| u.name.as_str())
                .collect();
            names.sort_unstable();
            Item::new(
                "users",
                Status::Warn,
                format!(
                    "{} client users have grants on {bucket} in {} ({}); create them on the \
                     target with the same keys before the cutover",
                    names.len(),
                    file.display(),
                    names.join(", ")
                ),
            )
        }
        Err(e) => Item::new("users", Status::Warn, format!("not checked: {e}")),
    }
}
