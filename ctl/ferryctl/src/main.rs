//! `ferryctl`: the operator's CLI. It parses the command line, calls the
//! daemon's admin socket through `ferry_control::Client` (the proxy's for the
//! bucket verbs, the agent's for `job`), runs the runbook's checks
//! (`check …`), and prints the answer for people or, with `--output json`,
//! for scripts.
//!
//! With `--etcd` (or a `[state]` section in its config file), the bucket
//! verbs go to the fleet's etcd instead of one proxy's socket, and a mode
//! change is fenced across every proxy of the fleet (`fleet.rs`).
//!
//! Exit codes: `failure.rs`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferry_control::{Client, DEFAULT_AGENT_SOCKET, DEFAULT_PROXY_SOCKET, codes};

mod bucket;
mod check;
mod failure;
mod fleet;
mod generate;
mod job;
mod output;
mod prom;
mod status;
mod verify;

use bucket::MigrateCommand;
use failure::{EXIT_CODES_HELP, EXIT_USAGE, Failure};
use output::{Output, one_line, print_json};

/// Drive Ferry's proxies and agents over their Unix sockets, or a fleet of
/// proxies through its etcd, and check each step of a migration.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None, after_help = EXIT_CODES_HELP)]
struct Cli {
    /// The proxy's admin socket.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "FERRY_PROXY_SOCKET",
        default_value = DEFAULT_PROXY_SOCKET,
        value_name = "PATH"
    )]
    socket: PathBuf,
    /// The agent's admin socket (for `job`, `verify` and `rollback`).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
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
        help_heading = "Global options",
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
        help_heading = "Global options",
        env = "FERRYCTL_CONFIG",
        default_value = fleet::DEFAULT_CONFIG,
        value_name = "FILE"
    )]
    config: PathBuf,
    /// Text for people, or JSON for scripts (the same schema as the admin
    /// API; a failure is `{"error": {"code", "message"}, "exit_code"}`).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "FERRYCTL_OUTPUT",
        value_enum,
        default_value_t = Output::Text
    )]
    output: Output,
    /// Short for `--output json`.
    #[arg(long, global = true, help_heading = "Global options")]
    json: bool,
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
    /// Agent job control (start, list, show, pause, resume, cancel, logs,
    /// retry).
    Job {
        #[command(subcommand)]
        command: job::JobCommand,
    },
    /// The runbook's checks: each item passes, warns or fails with a
    /// reason; exit 1 when any fails.
    Check {
        #[command(subcommand)]
        command: check::CheckCommand,
    },
    /// The whole picture: each bucket's mode, the agent's jobs with their
    /// progress lines, the share of reads the target served, and errors.
    Status(status::StatusArgs),
    /// Phase 4: verify the copy of a bucket on the agent (every key
    /// accounted for: source and target listings merged, checked against
    /// the delete journal and the copier's records). A pass is recorded on
    /// the bucket, so that detach needs no --force. Exit 1 on differences.
    Verify(verify::VerifyArgs),
    /// Rollback from migrate mode: `rollback plan BUCKET [--run]`.
    Rollback {
        #[command(subcommand)]
        command: verify::RollbackCommand,
    },
    /// Shell completions and man pages, from these very definitions.
    Generate {
        #[command(subcommand)]
        command: generate::GenerateCommand,
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

fn main() -> ExitCode {
    if let Some(refusal) = refused_secret_flag() {
        eprintln!("ferryctl: {refusal}");
        return ExitCode::from(EXIT_USAGE);
    }
    let cli = Cli::parse();
    let out = if cli.json { Output::Json } else { cli.output };
    match run(cli, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if out == Output::Json
                && let Some(json) = failure.json()
            {
                print_json(&json);
            }
            eprintln!("ferryctl: {}", one_line(&failure.message()));
            if let Failure::Refused(e) = &failure
                && e.code == codes::REVERSE_COPY_REQUIRED
            {
                eprint!("{}", bucket::REVERSE_COPY_HELP);
            }
            ExitCode::from(failure.exit_code())
        }
    }
}

/// A secret on the command line (WEKA's `--s3-secret SECRET`, s3migrate's
/// `--src-secret`) is refused before parsing, so that the refusal says why
/// rather than "unexpected argument".
fn refused_secret_flag() -> Option<String> {
    let flag = ["--s3-secret"]
        .into_iter()
        .chain(job::REFUSED_SECRET_FLAGS)
        .find(|flag| {
            std::env::args_os().any(|a| {
                a.to_str()
                    .is_some_and(|a| a == *flag || a.starts_with(&format!("{flag}=")))
            })
        })?;
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
    Some(format!(
        "{flag} is refused: a secret on the command line shows in `ps` and in shell history; \
         {instead}"
    ))
}

/// A runtime for the async clients (etcd, DNS, S3) on this one thread.
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start a runtime: {e}")))
}

fn run(cli: Cli, out: Output) -> Result<(), Failure> {
    let daemon = bucket::Daemon {
        socket: &cli.socket,
        etcd: &cli.etcd,
        config: &cli.config,
    };
    let agent = Client::new(&cli.agent_socket);
    match cli.command {
        Command::Job { command } => job::run(&agent, out, command),
        Command::S3 {
            command:
                S3Command::Bucket {
                    command: BucketCommand::Migrate { command },
                },
        } => bucket::run(&daemon, out, command),
        Command::Check { command } => check::run(&daemon, out, command),
        Command::Status(args) => status::run(&daemon, &agent, out, args),
        Command::Verify(args) => verify::verify(&daemon, &agent, out, args),
        Command::Rollback { command } => verify::rollback(&daemon, &agent, out, command),
        Command::Generate { command } => generate::run(command),
    }
}
