//! `ferryctl check dns HOSTNAME --target-ips …`: the cutover's DNS step,
//! checked (the seed's "repoint the bucket hostname", "keep the TTL low"
//! and "persistent source and target records"). With `--watch` it asks
//! again until every item passes or `--timeout` runs out, for following
//! propagation.
//!
//! Every round builds a new resolver, so no answer comes from our own
//! cache; `/etc/hosts` is never read (it is not DNS).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use clap::Args;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};

use super::{Item, Report, Status};
use crate::failure::Failure;
use crate::output::Output;

#[derive(Args, Debug)]
pub struct DnsArgs {
    /// The bucket hostname clients use (e.g. photos.s3.example.com).
    hostname: String,
    /// The target cluster's IPs, comma-separated: the hostname must resolve
    /// to these only.
    #[arg(long, value_delimiter = ',', required = true, value_name = "IPS")]
    target_ips: Vec<IpAddr>,
    /// The highest TTL accepted on the hostname's answers, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    max_ttl: u32,
    /// The persistent source record (it must keep pointing at the source
    /// for the whole migration).
    #[arg(long, requires = "source_ips", value_name = "NAME")]
    source_record: Option<String>,
    /// The source cluster's IPs, comma-separated, for --source-record.
    #[arg(
        long,
        value_delimiter = ',',
        requires = "source_record",
        value_name = "IPS"
    )]
    source_ips: Vec<IpAddr>,
    /// The persistent target record (it must resolve to --target-ips).
    #[arg(long, value_name = "NAME")]
    target_record: Option<String>,
    /// Ask this nameserver (IP or IP:PORT) instead of the system's.
    #[arg(long, value_name = "ADDR")]
    nameserver: Option<String>,
    /// Ask again every --interval until every item passes (propagation),
    /// or fail after --timeout.
    #[arg(long)]
    watch: bool,
    /// With --watch: seconds between rounds.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    interval: u64,
    /// With --watch: give up after this many seconds.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    timeout: u64,
}

pub fn run(args: &DnsArgs, out: Output) -> Result<Report, Failure> {
    let nameserver = args.nameserver.as_deref().map(nameserver).transpose()?;
    let rt = crate::runtime()?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let resolver = resolver(nameserver)?;
        let report = rt.block_on(round(args, &resolver));
        if report.ok || !args.watch || Instant::now() >= deadline {
            return Ok(report);
        }
        if out == Output::Text {
            let waiting: Vec<&str> = report
                .items
                .iter()
                .filter(|i| i.status == Status::Fail)
                .map(|i| i.detail.as_str())
                .collect();
            eprintln!("waiting: {}", waiting.join("; "));
        }
        std::thread::sleep(Duration::from_secs(args.interval));
    }
}

async fn round(args: &DnsArgs, resolver: &TokioResolver) -> Report {
    let host = &args.hostname;
    let mut items = Vec::new();
    match resolve(resolver, host).await {
        Err(e) => items.push(Item::new(
            format!("{host}: answers"),
            Status::Fail,
            format!("does not resolve: {e}"),
        )),
        Ok(answer) => {
            items.push(only_on(
                host,
                "answers",
                &answer,
                &args.target_ips,
                "a target IP",
            ));
            items.push(ttl_item(host, &answer, args.max_ttl));
        }
    }
    for (record, ips, what) in [
        (&args.source_record, &args.source_ips, "a source IP"),
        (&args.target_record, &args.target_ips, "a target IP"),
    ] {
        let Some(record) = record else { continue };
        items.push(match resolve(resolver, record).await {
            Ok(answer) => only_on(record, "persistent record", &answer, ips, what),
            Err(e) => Item::new(
                format!("{record}: persistent record"),
                Status::Fail,
                format!("does not resolve: {e}"),
            ),
        });
    }
    Report::new("dns", host, items)
}

/// Passes when the answer's TTL is at most `max_ttl`.
fn ttl_item(host: &str, answer: &Answer, max_ttl: u32) -> Item {
    let ttl = answer.max_ttl;
    if ttl <= max_ttl {
        return Item::new(
            format!("{host}: ttl"),
            Status::Pass,
            format!("TTL {ttl} s, at most {max_ttl} s"),
        );
    }
    Item::new(
        format!("{host}: ttl"),
        Status::Fail,
        format!("TTL {ttl} s is above {max_ttl} s: resolvers may keep the old address that long"),
    )
}

/// Preflight's DNS item: `host`'s TTL is already at most `max_ttl`, so
/// that the cutover will propagate fast.
pub async fn ttl(host: &str, max_ttl: u32, nameserver_addr: Option<&str>) -> Result<Item, Failure> {
    let resolver = resolver(nameserver_addr.map(nameserver).transpose()?)?;
    Ok(match resolve(&resolver, host).await {
        Ok(answer) => ttl_item(host, &answer, max_ttl),
        Err(e) => Item::new(
            format!("{host}: ttl"),
            Status::Fail,
            format!("does not resolve: {e}"),
        ),
    })
}

/// Passes when `answer` holds only addresses in `allowed`.
fn only_on(name: &str, what: &str, answer: &Answer, allowed: &[IpAddr], kind: &str) -> Item {
    let stray: Vec<String> = answer
        .ips
        .iter()
        .filter(|ip| !allowed.contains(ip))
        .map(IpAddr::to_string)
        .collect();
    let all = join(&answer.ips);
    if stray.is_empty() {
        Item::new(
            format!("{name}: {what}"),
            Status::Pass,
            format!("resolves to {all}, each {kind}"),
        )
    } else {
        Item::new(
            format!("{name}: {what}"),
            Status::Fail,
            format!(
                "resolves to {all}: {} not {kind} (expected only {})",
                stray.join(", "),
                join(allowed)
            ),
        )
    }
}

fn join<'a>(ips: impl IntoIterator<Item = &'a IpAddr>) -> String {
    ips.into_iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

struct Answer {
    ips: BTreeSet<IpAddr>,
    max_ttl: u32,
}

async fn resolve(resolver: &TokioResolver, name: &str) -> Result<Answer, String> {
    // A trailing dot: the name as given, never with a search domain.
    let fqdn = if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    };
    let lookup = resolver
        .lookup_ip(fqdn.as_str())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Answer {
        ips: BTreeSet::new(),
        max_ttl: 0,
    };
    for r in lookup.as_lookup().answers() {
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        answer.ips.insert(ip);
        answer.max_ttl = answer.max_ttl.max(r.ttl);
    }
    if answer.ips.is_empty() {
        return Err("no A or AAAA record".into());
    }
    Ok(answer)
}

fn nameserver(s: &str) -> Result<SocketAddr, Failure> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| Failure::Usage(format!("--nameserver {s}: expected IP or IP:PORT")))
}

fn resolver(nameserver: Option<SocketAddr>) -> Result<TokioResolver, Failure> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = match nameserver {
        Some(addr) => {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            Resolver::builder_with_config(ResolverConfig::from_name_servers(vec![ns]), provider)
        }
        None => Resolver::builder(provider)
            .map_err(|e| Failure::Usage(format!("the system's resolver configuration: {e}")))?,
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.cache_size = 0;
    opts.attempts = 2;
    opts.timeout = Duration::from_secs(3);
    builder
        .build()
        .map_err(|e| Failure::Usage(format!("cannot build a resolver: {e}")))
}
