//! `ferryctl`: the operator's CLI. It parses the command line, calls the
//! daemon's admin socket through `ferry_control::Client` (the proxy's for the
//! bucket verbs, the agent's for `job`), and prints the answer.
//!
//! With `--etcd` (or a `[state]` section in its config file), the bucket
//! verbs go to the fleet's etcd instead of one proxy's socket, and a mode
//! change is fenced across every proxy of the fleet (`fleet.rs`).
//!
//! Exit codes: 0 done; 1 refused (the message on one line); 2 usage or
//! connection error; 4 conflict: another change of the bucket was made or
//! is under way (look at `show`, then run it again).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, Parser, Subcommand};
use ferry_control::{
    AttachRequest, BucketView, Client, ClientError, DEFAULT_AGENT_SOCKET, DEFAULT_PROXY_SOCKET,
    Mode, Selector, UpdateRequest, UpdateResponse, codes,
};

mod fleet;
mod job;

/// Drive Ferry's proxies and agents over their Unix sockets, or a fleet of
/// proxies through its etcd.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 done; 1 refused (the reason on stderr); 2 usage, input or \
                  connection error; 4 conflict: another change of the bucket was made or is \
                  under way, and this one changed nothing (see `show`, then run it again)."
)]
struct Cli {
    /// The proxy's admin socket.
    #[arg(
        long,
        global = true,
        env = "FERRY_PROXY_SOCKET",
        default_value = DEFAULT_PROXY_SOCKET,
        value_name = "PATH"
    )]
    socket: PathBuf,
    /// The agent's admin socket (for `job`).
    #[arg(
        long,
        global = true,
        env = "FERRY_AGENT_SOCKET",
        default_value = DEFAULT_AGENT_SOCKET,
        value_name = "PATH"
    )]
    agent_socket: PathBuf,
    /// The fleet's etcd (comma-separated client URLs): the bucket verbs go
    /// there, to every proxy of the fleet, instead of to --socket.
    #[arg(
        long,
        global = true,
        env = "FERRY_ETCD_ENDPOINTS",
        value_name = "URLS",
        value_delimiter = ','
    )]
    etcd: Vec<String>,
    /// ferryctl's config file; its `[state]` section (as the proxy's)
    /// names the fleet's etcd, with TLS and auth. Read if it exists.
    #[arg(
        long,
        global = true,
        env = "FERRYCTL_CONFIG",
        default_value = fleet::DEFAULT_CONFIG,
        value_name = "FILE"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// S3 verbs: `s3 bucket migrate attach|update|detach|show|list`.
    S3 {
        #[command(subcommand)]
        command: S3Command,
    },
    /// Agent job control (start, list, show, pause, resume, cancel, logs).
    Job {
        #[command(subcommand)]
        command: job::JobCommand,
    },
}

#[derive(Subcommand, Debug)]
enum S3Command {
    /// Bucket verbs.
    Bucket {
        #[command(subcommand)]
        command: BucketCommand,
    },
}

#[derive(Subcommand, Debug)]
enum BucketCommand {
    /// Live bucket migration (the WEKA `s3 bucket migrate` verbs).
    Migrate {
        #[command(subcommand)]
        command: MigrateCommand,
    },
}

#[derive(Subcommand, Debug)]
enum MigrateCommand {
    /// Attach a target bucket to its source bucket (in ready mode).
    Attach(AttachArgs),
    /// Change the migration mode of one bucket, of all buckets of a source
    /// URL, or of all buckets.
    Update(UpdateArgs),
    /// Detach a bucket (ready mode; migrate mode with --force).
    Detach {
        bucket: String,
        /// Detach in migrate mode without a passing `verify`.
        #[arg(long)]
        force: bool,
    },
    /// Show one bucket's migration configuration.
    Show {
        bucket: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List every attached bucket.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("secret").required(true).multiple(false)))]
struct AttachArgs {
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
struct UpdateArgs {
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
    /// Allow leaving migrate mode (after the reverse copy).
    #[arg(long)]
    force: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

/// What went wrong, by exit code.
enum Failure {
    /// Exit 1 (4 for a conflict): refused.
    Refused(ferry_control::ApiError),
    /// Exit 2: bad usage, unreadable input, or no proper answer.
    Usage(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        match e {
            ClientError::Api { error, .. } => Failure::Refused(error),
            other => Failure::Usage(other.to_string()),
        }
    }
}

fn main() -> ExitCode {
    // A secret on the command line (WEKA's `--s3-secret SECRET`,
    // s3migrate's `--src-secret`) is refused before parsing, so that the
    // refusal says why rather than "unexpected argument".
    let refused = ["--s3-secret"]
        .into_iter()
        .chain(job::REFUSED_SECRET_FLAGS)
        .find(|flag| {
            std::env::args_os().any(|a| {
                a.to_str()
                    .is_some_and(|a| a == *flag || a.starts_with(&format!("{flag}=")))
            })
        });
    if let Some(flag) = refused {
        let instead = if flag == "--s3-secret" {
            "use --s3-secret-file FILE or --s3-secret-stdin".to_owned()
        } else {
            format!(
                "use {flag}-file FILE or the environment variable S3MIGRATE_{}",
                flag.trim_start_matches("--")
                    .replace('-', "_")
                    .to_uppercase()
            )
        };
        eprintln!(
            "ferryctl: {flag} is refused: a secret on the command line shows in `ps` and in \
             shell history; {instead}"
        );
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(e)) => {
            eprintln!("ferryctl: {}", one_line(&e.to_string()));
            if e.code == codes::REVERSE_COPY_REQUIRED {
                eprint!("{REVERSE_COPY_HELP}");
            }
            if e.code == codes::CONFLICT {
                ExitCode::from(EXIT_CONFLICT)
            } else {
                ExitCode::from(1)
            }
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("ferryctl: {}", one_line(&msg));
            ExitCode::from(2)
        }
    }
}

/// Another change of the bucket was made or is under way.
const EXIT_CONFLICT: u8 = 4;

const REVERSE_COPY_HELP: &str = "\
Rolling back from migrate mode is a reverse copy: since migrate mode was set,
client writes have gone to the target only, so the source lacks them.
  1. Copy target -> source with s3migrate (the target as --src-*, the source
     as --dest-*); deletes made in migrate mode already reached both sides.
  2. Check its summary: keys rewritten on the target come out as `skip up`
     and need a decision by hand.
  3. ferryctl s3 bucket migrate update --bucket BUCKET --mode ready --force
     (or --mode forward --force, to serve clients from the source through
     the proxy while DNS moves back).
See docs/ferryctl.md, \"Rollback\".
";

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Job { command } => job::run(&Client::new(&cli.agent_socket), command),
        Command::S3 {
            command:
                S3Command::Bucket {
                    command: BucketCommand::Migrate { command },
                },
        } => {
            let backend = match fleet::config(&cli.etcd, &cli.config)? {
                Some(etcd) => Backend::Fleet(Box::new(fleet::Fleet::connect(&etcd)?)),
                None => Backend::Socket(Client::new(&cli.socket)),
            };
            migrate(&backend, command)
        }
    }
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
    fn list(&self) -> Result<Vec<BucketView>, Failure> {
        match self {
            Backend::Socket(c) => Ok(c.list()?),
            Backend::Fleet(f) => f.list(),
        }
    }
}

fn migrate(client: &Backend, command: MigrateCommand) -> Result<(), Failure> {
    match command {
        MigrateCommand::Attach(args) => {
            let req = attach_request(args)?;
            let view = client.attach(&req)?;
            println!(
                "attached {} (source {} at {}), mode {}",
                view.bucket, view.source_bucket, view.source_url, view.mode
            );
        }
        MigrateCommand::Update(args) => {
            let selector = match (args.bucket, args.url, args.all) {
                (Some(b), _, _) => Selector::Bucket(b),
                (_, Some(u), _) => Selector::Url(u),
                _ => Selector::All,
            };
            let resp = client.update(&UpdateRequest {
                mode: args.mode,
                selector,
                force: args.force,
            })?;
            if args.json {
                print_json(&resp);
            } else {
                print_update(&resp);
            }
        }
        MigrateCommand::Detach { bucket, force } => {
            let view = client.detach(&bucket, force)?;
            println!("detached {} (was in {} mode)", view.bucket, view.mode);
        }
        MigrateCommand::Show { bucket, json } => {
            let view = client.show(&bucket)?;
            if json {
                print_json(&view);
            } else {
                print_show(&view);
            }
        }
        MigrateCommand::List { json } => {
            let views = client.list()?;
            if json {
                print_json(&views);
            } else {
                print_list(&views);
            }
        }
    }
    Ok(())
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

fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("API types always serialize")
    );
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
    print_rows(v);
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

fn print_rows(v: &BucketView) {
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
        ("epoch", v.epoch.to_string()),
        ("phase", v.phase.clone()),
    ];
    for (name, value) in rows {
        println!("{:<20} {value}", format!("{name}:"));
    }
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

/// Prints a left-aligned table, columns as wide as their widest cell.
pub(crate) fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{out}");
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
}
