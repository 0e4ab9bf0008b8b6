//! `ferryctl check …`: the runbook's checks. Each check is a list of items
//! that pass, warn or fail with a reason; the command exits 1 when any item
//! fails, so a script can stop before an unsafe step.

use clap::Subcommand;
use serde::Serialize;

use crate::bucket::Daemon;
use crate::failure::Failure;
use crate::output::{Output, print_table};

mod dns;
mod forward;
mod idle;
mod preflight;
pub mod restricted;
pub mod s3;
mod tls;

#[derive(Subcommand, Debug)]
pub enum CheckCommand {
    /// A bucket hostname's DNS at cutover: it resolves only to the target's
    /// IPs with a short TTL, and the persistent source and target records
    /// still point where they should.
    Dns(dns::DnsArgs),
    /// The certificate a TLS endpoint serves for each name (SNI): its
    /// chain, that its SAN covers the name, and its validity window.
    Tls(tls::TlsArgs),
    /// Forward mode, end to end: through the proxy, pinned to each bucket
    /// hostname, a probe object is written, read, listed and deleted, and
    /// seen on the source itself.
    Forward(forward::ForwardArgs),
    /// Phase 1, before anything moves: the source's copier user reads and
    /// may not write, the target bucket exists, is empty and has no
    /// lifecycle rules, the target's user writes and the target honours
    /// conditional writes, the journal bucket exists, the source's size
    /// against the target's space; reminders (source lifecycle rules and
    /// policy, users to replicate); the certificate and DNS TTL if asked.
    Preflight(Box<preflight::PreflightArgs>),
    /// Before migrate mode: is anyone but the migration still using the
    /// source? Two samples of the source's request counters and the
    /// proxies' metrics, --seconds apart: a write the proxies did not
    /// forward came around them.
    Idle(idle::IdleArgs),
    /// The source is closed to clients: a client user's write straight to
    /// the source is refused, while the proxy still reaches the source
    /// with the migration credentials.
    Restricted(restricted::RestrictedArgs),
}

pub fn run(daemon: &Daemon<'_>, out: Output, command: CheckCommand) -> Result<(), Failure> {
    let report = match command {
        CheckCommand::Dns(args) => dns::run(&args, out)?,
        CheckCommand::Tls(args) => tls::run(&args)?,
        CheckCommand::Forward(args) => forward::run(daemon, &args)?,
        CheckCommand::Restricted(args) => restricted::run(daemon, &args)?,
        CheckCommand::Preflight(args) => preflight::run(daemon, &args)?,
        CheckCommand::Idle(args) => idle::run(&args)?,
    };
    out.emit(&report, Report::print);
    report.verdict()
}

/// One check's outcome.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `dns`, `tls`, …
    pub check: &'static str,
    /// What was checked (a hostname, an endpoint, a bucket).
    pub subject: String,
    /// No item failed.
    pub ok: bool,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub name: String,
    pub status: Status,
    /// Why, in one sentence.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Item {
    pub fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Item {
        Item {
            name: name.into(),
            status,
            detail: detail.into(),
        }
    }
}

impl Report {
    pub fn new(check: &'static str, subject: impl Into<String>, items: Vec<Item>) -> Report {
        Report {
            check,
            subject: subject.into(),
            ok: items.iter().all(|i| i.status != Status::Fail),
            items,
        }
    }

    fn failed(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.status == Status::Fail)
            .count()
    }

    fn print(&self) {
        println!("check {} {}", self.check, self.subject);
        let rows: Vec<[String; 3]> = self
            .items
            .iter()
            .map(|i| {
                let status = match i.status {
                    Status::Pass => "pass",
                    Status::Warn => "WARN",
                    Status::Fail => "FAIL",
                };
                [status.to_owned(), i.name.clone(), i.detail.clone()]
            })
            .collect();
        print_table(["STATUS", "ITEM", "DETAIL"], &rows);
        if self.ok {
            println!("result: pass");
        } else {
            println!(
                "result: FAIL ({} of {} items)",
                self.failed(),
                self.items.len()
            );
        }
    }

    fn verdict(&self) -> Result<(), Failure> {
        if self.ok {
            return Ok(());
        }
        let failed: Vec<String> = self
            .items
            .iter()
            .filter(|i| i.status == Status::Fail)
            .map(|i| format!("{}: {}", i.name, i.detail))
            .collect();
        Err(Failure::CheckFailed(format!(
            "check {} {} failed: {}",
            self.check,
            self.subject,
            failed.join("; ")
        )))
    }
}
