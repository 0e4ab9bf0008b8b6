//! `ferryctl check idle BUCKET`: before the switch to migrate mode, is
//! anyone but the migration still using the source? Two samples of the
//! source's request counters (Prometheus text, e.g. Garage's admin
//! `/metrics`) and of every proxy's `ferry_proxy_requests_total`, some
//! seconds apart: the source's writes beyond those the proxies forwarded
//! came from someone else. The copier never writes the source, so any
//! such write is a client that still goes around the proxy.

use std::time::Duration;

use clap::Args;
use ferry_s3::{Grant, S3Op};

use super::{Item, Report, Status};
use crate::failure::Failure;
use crate::prom::{Counts, add, by_label, fetch};
use ferry_control::metrics::proxy::REQUESTS as PROXY_REQUESTS;

#[derive(Args, Debug)]
pub struct IdleArgs {
    /// The bucket (its name on the target).
    bucket: String,
    /// Each proxy's metrics endpoint (its `metrics_addr`), as
    /// http://HOST:PORT/metrics, comma-separated.
    #[arg(long, value_delimiter = ',', required = true, value_name = "URLS")]
    proxy_metrics: Vec<String>,
    /// The source's Prometheus endpoint with per-operation request
    /// counters (Garage: its admin API's /metrics).
    #[arg(long, value_name = "URL")]
    source_metrics: Option<String>,
    /// The source's request counter, and its label that names the S3
    /// operation.
    #[arg(long, default_value = "api_s3_request_counter", value_name = "NAME")]
    source_counter: String,
    #[arg(long, default_value = "api_endpoint", value_name = "LABEL")]
    source_op_label: String,
    /// Seconds between the two samples.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    seconds: u64,
}

pub fn run(args: &IdleArgs) -> Result<Report, Failure> {
    let sample = || -> Result<(Counts, Option<Counts>), Failure> {
        let mut proxies = Counts::new();
        for url in &args.proxy_metrics {
            let text = fetch(url)?;
            add(&mut proxies, proxy_to_source(&text, &args.bucket));
        }
        let source = match &args.source_metrics {
            Some(url) => Some(by_label(
                &fetch(url)?,
                &args.source_counter,
                &args.source_op_label,
                &[],
            )),
            None => None,
        };
        Ok((proxies, source))
    };
    let (p0, s0) = sample()?;
    std::thread::sleep(Duration::from_secs(args.seconds));
    let (p1, s1) = sample()?;
    let proxied = delta(&p0, &p1);
    let secs = args.seconds;
    let mut items = vec![Item::new(
        "proxy traffic",
        Status::Pass,
        format!(
            "in {secs} s the proxies sent {} requests of {} to the source ({} writes)",
            proxied.values().sum::<u64>(),
            args.bucket,
            writes(&proxied).values().sum::<u64>()
        ),
    )];
    let (Some(s0), Some(s1)) = (s0, s1) else {
        items.push(Item::new(
            "source",
            Status::Warn,
            "not sampled: give --source-metrics (the source's own request counters) to see \
             access that does not pass the proxy",
        ));
        return Ok(Report::new("idle", &args.bucket, items));
    };
    let at_source = delta(&s0, &s1);
    let others = |all: &Counts, ours: &Counts| -> Counts {
        all.iter()
            .filter_map(|(op, n)| {
                let extra = n.saturating_sub(ours.get(op).copied().unwrap_or(0));
                (extra > 0).then(|| (op.clone(), extra))
            })
            .collect()
    };
    let other_writes = others(&writes(&at_source), &writes(&proxied));
    items.push(if other_writes.is_empty() {
        Item::new(
            "source writes",
            Status::Pass,
            format!("in {secs} s no write reached the source but through the proxies"),
        )
    } else {
        Item::new(
            "source writes",
            Status::Fail,
            format!(
                "in {secs} s {} writes reached the source not through the proxies ({}): a \
                 client still writes the source directly (its counters are store-wide: writes \
                 to its other buckets count too); restrict access, then `check restricted`",
                other_writes.values().sum::<u64>(),
                list(&other_writes)
            ),
        )
    });
    let all_others = others(&at_source, &proxied);
    let other_reads: Counts = all_others
        .into_iter()
        .filter(|(op, _)| !other_writes.contains_key(op))
        .collect();
    items.push(if other_reads.is_empty() {
        Item::new(
            "source reads",
            Status::Pass,
            format!("in {secs} s no other request reached the source"),
        )
    } else {
        Item::new(
            "source reads",
            Status::Warn,
            format!(
                "in {secs} s {} other requests reached the source not through the proxies \
                 ({}); the copier's reads count here too",
                other_reads.values().sum::<u64>(),
                list(&other_reads)
            ),
        )
    });
    Ok(Report::new("idle", &args.bucket, items))
}

/// The write operations among `counts` (by their S3 name; a name Ferry
/// does not know is not counted as one).
fn writes(counts: &Counts) -> Counts {
    counts
        .iter()
        .filter(|(op, _)| {
            S3Op::ALL
                .iter()
                .any(|o| o.name() == op.as_str() && o.grant() == Grant::Write)
        })
        .map(|(op, n)| (op.clone(), *n))
        .collect()
}

fn list(c: &Counts) -> String {
    c.iter()
        .map(|(op, n)| format!("{op} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn delta(before: &Counts, after: &Counts) -> Counts {
    after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// The requests a proxy sent to the source for `bucket`, by operation.
fn proxy_to_source(text: &str, bucket: &str) -> Counts {
    by_label(
        text,
        PROXY_REQUESTS,
        "operation",
        &[("bucket", bucket), ("upstream", "source")],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxies_requests_to_the_source_are_summed_by_operation() {
        let text = "# HELP x\n\
            ferry_proxy_requests_total{bucket=\"photos\",operation=\"PutObject\",mode=\"forward\",upstream=\"source\",status=\"2xx\"} 3\n\
            ferry_proxy_requests_total{bucket=\"photos\",operation=\"PutObject\",mode=\"forward\",upstream=\"source\",status=\"4xx\"} 1\n\
            ferry_proxy_requests_total{bucket=\"photos\",operation=\"GetObject\",mode=\"forward\",upstream=\"target\",status=\"2xx\"} 9\n\
            ferry_proxy_requests_total{bucket=\"other\",operation=\"PutObject\",mode=\"forward\",upstream=\"source\",status=\"2xx\"} 5\n";
        let c = proxy_to_source(text, "photos");
        assert_eq!(c, Counts::from([("PutObject".to_owned(), 4)]));
    }

    #[test]
    fn only_write_operations_count_as_writes() {
        let c = Counts::from([
            ("PutObject".to_owned(), 1),
            ("DeleteObject".to_owned(), 1),
            ("GetObject".to_owned(), 1),
            ("NoSuchOperation".to_owned(), 1),
        ]);
        let w = writes(&c);
        assert!(
            w.contains_key("PutObject") && !w.contains_key("GetObject"),
            "{w:?}"
        );
        assert!(!w.contains_key("NoSuchOperation"));
    }
}
