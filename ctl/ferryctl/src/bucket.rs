//! `ferryctl s3 bucket migrate …`: the WEKA verbs, against one proxy's
//! admin socket or the fleet's etcd.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, Subcommand};
use ferry_control::{
    AttachRequest, BucketView, Client, Mark, Mode, Selector, UpdateRequest, UpdateResponse,
};

use crate::check;
use crate::failure::Failure;
use crate::fleet;
use crate::output::{Output, print_rows, print_table};

#[derive(Subcommand, Debug)]
pub enum MigrateCommand {
    /// Attach a target bucket to its source bucket (in ready mode).
    Attach(AttachArgs),
    /// Change the migration mode of one bucket, of all buckets of a source
    /// URL, or of all buckets.
    Update(UpdateArgs),
    /// Detach a bucket: in ready mode, or in migrate mode once `ferryctl
    /// verify` has passed and the source's open uploads have ended (or
    /// with --force).
    Detach {
        bucket: String,
        /// Detach in migrate mode without a passing `verify`, or while
        /// uploads begun on the source are still open.
        #[arg(long)]
        force: bool,
    },
    /// Refuse every client request for the bucket with 503 (the WEKA
    /// rollback's "block access to the target bucket"), on every proxy.
    Block { bucket: String },
    /// Serve the bucket's clients again.
    Unblock { bucket: String },
    /// Show one bucket's migration configuration.
    Show { bucket: String },
    /// List every attached bucket.
    List,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("secret").required(true).multiple(false)))]
pub struct AttachArgs {
    /// Name of the target bucket.
    bucket: String,
    /// URL of the source S3 endpoint (http:// or https://).
    url: String,
    /// The source's TLS certificate or CA (PEM file); `-` or `none` for a
    /// plain-http source or for https checked against the system roots.
    tls_cert: String,
    /// Name of the source bucket, if it differs from the target's.
    #[arg(long, value_name = "SOURCE_BUCKET")]
    source: Option<String>,
    /// SigV4 region of the source [default: us-east-1].
    #[arg(long, value_name = "R")]
    region: Option<String>,
    /// Source access key (the migration user, e.g. s3_rw_migrate).
    #[arg(long, value_name = "KEY")]
    s3_key: String,
    /// File holding the source secret (its first line).
    #[arg(long, value_name = "FILE", group = "secret")]
    s3_secret_file: Option<PathBuf>,
    /// Read the source secret from standard input (its first line).
    #[arg(long, group = "secret")]
    s3_secret_stdin: bool,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("selector").required(true).multiple(false)))]
pub struct UpdateArgs {
    /// The new mode.
    #[arg(
        long,
        value_parser = PossibleValuesParser::new(["ready", "forward", "migrate"])
            .map(|s| s.parse::<Mode>().expect("restricted to the three modes")),
    )]
    mode: Mode,
    /// Update this bucket.
    #[arg(long, group = "selector")]
    bucket: Option<String>,
    /// Update every bucket whose source is this URL.
    #[arg(long, group = "selector")]
    url: Option<String>,
    /// Update every attached bucket.
    #[arg(long, group = "selector")]
    all: bool,
    /// Allow leaving migrate mode (after the reverse copy); with `--mode
    /// migrate`, switch even though `check restricted` failed.
    #[arg(long)]
    force: bool,
    /// With `--mode migrate`: the users file whose client user `check
    /// restricted` acts as first [default: /etc/ferry/users.toml; when
    /// that does not exist, the check is skipped with a warning].
    #[arg(long, value_name = "FILE")]
    users_file: Option<PathBuf>,
    /// With `--mode migrate`: the client user to act as (default: the first
    /// with a write grant on the bucket).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// With `--mode migrate`: CA certificates (PEM) for an https source.
    #[arg(long, value_name = "FILE")]
    source_ca_file: Option<PathBuf>,
}

pub const REVERSE_COPY_HELP: &str = "\
Rolling back from migrate mode is a reverse copy: since migrate mode was set,
client writes have gone to the target only, so the source lacks them.
  1. ferryctl s3 bucket migrate block BUCKET   (clients get 503 meanwhile)
  2. ferryctl rollback plan BUCKET --run       (copies back exactly what
     clients wrote on the target; their deletes already reached the source)
  3. ferryctl s3 bucket migrate update --bucket BUCKET --mode ready --force
     (or --mode forward --force, to serve clients from the source through
     the proxy while DNS moves back)
  4. ferryctl s3 bucket migrate unblock BUCKET
See docs/runbook.md, \"Rollback from migrate mode\".
";

/// Where the bucket verbs go: the fleet's etcd (`--etcd`, or `[state]` in
/// the config file), else the proxy's socket.
pub struct Daemon<'a> {
    pub socket: &'a Path,
    pub etcd: &'a [String],
    pub config: &'a Path,
}

impl Daemon<'_> {
    fn backend(&self) -> Result<Backend, Failure> {
        Ok(match fleet::config(self.etcd, self.config)? {
            Some(etcd) => Backend::Fleet(Box::new(fleet::Fleet::connect(&etcd)?)),
            None => Backend::Socket(Client::new(self.socket)),
        })
    }

    /// One bucket's view (for the checks).
    pub fn show(&self, bucket: &str) -> Result<BucketView, Failure> {
        self.backend()?.show(bucket)
    }

    pub fn mark(&self, bucket: &str, mark: Mark) -> Result<BucketView, Failure> {
        self.backend()?.mark(bucket, mark)
    }

    pub fn list(&self) -> Result<Vec<BucketView>, Failure> {
        self.backend()?.list()
    }
}

pub fn run(daemon: &Daemon<'_>, out: Output, command: MigrateCommand) -> Result<(), Failure> {
    migrate(&daemon.backend()?, out, command)
}

/// Where the bucket verbs go.
enum Backend {
    /// One proxy's admin socket.
    Socket(Client),
    /// The fleet's etcd.
    Fleet(Box<fleet::Fleet>),
}

impl Backend {
    fn attach(&self, req: &AttachRequest) -> Result<BucketView, Failure> {
        match self {
            Backend::Socket(c) => Ok(c.attach(req)?),
            Backend::Fleet(f) => f.attach(req.clone()),
        }
    }
    fn update(&self, req: &UpdateRequest) -> Result<UpdateResponse, Failure> {
        match self {
            Backend::Socket(c) => Ok(c.update(req)?),
            Backend::Fleet(f) => f.update(req.clone()),
        }
    }
    fn detach(&self, bucket: &str, force: bool) -> Result<BucketView, Failure> {
        match self {
            Backend::Socket(c) => Ok(c.detach(bucket, force)?),
            Backend::Fleet(f) => f.detach(bucket, force),
        }
    }
    fn show(&self, bucket: &str) -> Result<BucketView, Failure> {
        match self {
            Backend::Socket(c) => Ok(c.show(bucket)?),
            Backend::Fleet(f) => f.show(bucket),
        }
    }
    fn mark(&self, bucket: &str, mark: Mark) -> Result<BucketView, Failure> {
        match self {
            Backend::Socket(c) => Ok(c.mark(bucket, &mark)?),
            Backend::Fleet(f) => f.mark(bucket, mark),
        }
    }
    fn list(&self) -> Result<Vec<BucketView>, Failure> {
        match self {
            Backend::Socket(c) => Ok(c.list()?),
            Backend::Fleet(f) => f.list(),
        }
    }
}

fn migrate(client: &Backend, out: Output, command: MigrateCommand) -> Result<(), Failure> {
    match command {
        MigrateCommand::Attach(args) => {
            let req = attach_request(args)?;
            let view = client.attach(&req)?;
            out.emit(&view, |v| {
                println!(
                    "attached {} (source {} at {}), mode {}",
                    v.bucket, v.source_bucket, v.source_url, v.mode
                );
                for w in &v.warnings {
                    eprintln!("ferryctl: warning: {w}");
                }
            });
        }
        MigrateCommand::Update(args) => {
            let selector = match (args.bucket.clone(), args.url.clone(), args.all) {
                (Some(b), _, _) => Selector::Bucket(b),
                (_, Some(u), _) => Selector::Url(u),
                _ => Selector::All,
            };
            if args.mode == Mode::Migrate && !args.force {
                source_restricted(client, &selector, &args)?;
            }
            let resp = client.update(&UpdateRequest {
                mode: args.mode,
                selector,
                force: args.force,
            })?;
            out.emit(&resp, print_update);
        }
        MigrateCommand::Detach { bucket, force } => {
            let view = client.detach(&bucket, force)?;
            out.emit(&view, |v| {
                println!("detached {} (was in {} mode)", v.bucket, v.mode)
            });
        }
        MigrateCommand::Block { bucket } => {
            let view = client.mark(&bucket, Mark::Block)?;
            out.emit(&view, |v| {
                println!(
                    "{}: blocked; clients get 503 until `unblock` (mode {})",
                    v.bucket, v.mode
                )
            });
        }
        MigrateCommand::Unblock { bucket } => {
            let view = client.mark(&bucket, Mark::Unblock)?;
            out.emit(&view, |v| {
                println!(
                    "{}: unblocked; clients are served (mode {})",
                    v.bucket, v.mode
                )
            });
        }
        MigrateCommand::Show { bucket } => out.emit(&client.show(&bucket)?, print_show),
        MigrateCommand::List => out.emit(&client.list()?, |v| print_list(v)),
    }
    Ok(())
}

/// Before migrate mode: a client user's write straight to the source of
/// each selected bucket in forward mode must be refused (`check
/// restricted`'s first item), else the switch is refused.
fn source_restricted(
    client: &Backend,
    selector: &Selector,
    args: &UpdateArgs,
) -> Result<(), Failure> {
    let users_file = match &args.users_file {
        Some(f) => f.clone(),
        None => {
            let default = PathBuf::from(check::s3::DEFAULT_USERS_FILE);
            if !default.exists() {
                eprintln!(
                    "ferryctl: warning: not checked that the source refuses client writes: {} \
                     does not exist (give --users-file, or run `ferryctl check restricted` first)",
                    default.display()
                );
                return Ok(());
            }
            default
        }
    };
    let user = check::s3::ClientUser {
        users_file,
        user: args.user.clone(),
    };
    let users = user.load()?;
    let source_ca = check::s3::read_opt(&args.source_ca_file)?;
    let rt = crate::runtime()?;
    let mut open = Vec::new();
    let views = client.list()?;
    let same_url = |v: &BucketView, u: &str| {
        ferry_fleet::rules::normalize_url(&v.source_url) == ferry_fleet::rules::normalize_url(u)
    };
    // A URL that is no bucket's source is the target's own (every bucket)
    // or nothing the update will accept: checking every bucket is right
    // for both.
    let by_source = |u: &str| views.iter().any(|v| same_url(v, u));
    for view in &views {
        let selected = match selector {
            Selector::Bucket(b) => view.bucket == *b,
            Selector::Url(u) => !by_source(u) || same_url(view, u),
            Selector::All => true,
        };
        if !selected || view.mode != Mode::Forward {
            continue;
        }
        let cred = users.credential(&view.bucket)?;
        let item = rt.block_on(check::restricted::client_write_refused(
            view,
            &cred,
            source_ca.as_deref(),
        ))?;
        if item.status != check::Status::Pass {
            open.push(format!("{}: {}", view.bucket, item.detail));
        }
    }
    if open.is_empty() {
        return Ok(());
    }
    Err(Failure::CheckFailed(format!(
        "not switching to migrate mode: {} (see `ferryctl check restricted BUCKET`; --force \
         switches anyway)",
        open.join("; ")
    )))
}

fn attach_request(args: AttachArgs) -> Result<AttachRequest, Failure> {
    let secret = match &args.s3_secret_file {
        Some(path) => first_line(
            std::fs::read_to_string(path)
                .map_err(|e| Failure::Usage(format!("--s3-secret-file {}: {e}", path.display())))?,
        ),
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Failure::Usage(format!("--s3-secret-stdin: {e}")))?;
            first_line(s)
        }
    };
    if secret.is_empty() {
        return Err(Failure::Usage("the source secret is empty".into()));
    }
    let tls_cert_pem = match args.tls_cert.as_str() {
        "-" | "none" => None,
        path => Some(read_pem(Path::new(path))?),
    };
    Ok(AttachRequest {
        bucket: args.bucket,
        source_url: args.url,
        source_bucket: args.source,
        source_region: args.region,
        access_key: args.s3_key,
        secret,
        tls_cert_pem,
    })
}

fn first_line(s: String) -> String {
    s.lines().next().unwrap_or_default().trim().to_owned()
}

fn read_pem(path: &Path) -> Result<String, Failure> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("tls-cert {}: {e}", path.display())))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(Failure::Usage(format!(
            "tls-cert {}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----; \
             give `none` for a plain-http source)",
            path.display()
        )));
    }
    Ok(pem)
}

fn print_update(resp: &UpdateResponse) {
    for c in &resp.changes {
        if c.from == c.to {
            println!("{}: already in {} mode (no change)", c.bucket, c.to);
        } else {
            println!("{}: {} -> {}", c.bucket, c.from, c.to);
        }
    }
}

fn print_show(v: &BucketView) {
    print_bucket_rows(v);
    if !v.members.is_empty() {
        println!("members:");
        let rows: Vec<[String; 3]> = v
            .members
            .iter()
            .map(|m| {
                [
                    format!("  {}", m.id),
                    m.epoch.map_or("-".into(), |e| e.to_string()),
                    m.phase.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        print_table(["  PROXY", "EPOCH", "PHASE"], &rows);
    }
}

fn print_bucket_rows(v: &BucketView) {
    let rows = [
        ("bucket", v.bucket.clone()),
        ("mode", v.mode.to_string()),
        ("source url", v.source_url.clone()),
        ("source bucket", v.source_bucket.clone()),
        ("source region", v.source_region.clone()),
        ("source access key", v.source_access_key.clone()),
        ("tls cert", v.tls_cert.clone()),
        ("attached at", v.attached_at.clone()),
        ("updated at", v.updated_at.clone()),
        ("source uploads open", v.source_uploads_open.to_string()),
        ("blocked", v.blocked.to_string()),
        (
            "verified",
            match (&v.verified_at, &v.verified) {
                (Some(at), Some(what)) => format!("{at}: {what}"),
                _ if !v.shares_verified.is_empty() => {
                    format!("hash shares {} only", v.shares_verified.join(", "))
                }
                _ => "no".to_owned(),
            },
        ),
        ("epoch", v.epoch.to_string()),
        ("phase", v.phase.clone()),
    ];
    print_rows(20, &rows);
}

fn print_list(views: &[BucketView]) {
    let header = ["BUCKET", "MODE", "SOURCE URL", "SOURCE BUCKET", "UPDATED"];
    let rows: Vec<[String; 5]> = views
        .iter()
        .map(|v| {
            [
                v.bucket.clone(),
                v.mode.to_string(),
                v.source_url.clone(),
                v.source_bucket.clone(),
                v.updated_at.clone(),
            ]
        })
        .collect();
    print_table(header, &rows);
}
