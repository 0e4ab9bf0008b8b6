//! The markdown report: figures per path, the proxy's cost against direct,
//! and the goals, met or missed.

use std::fmt::Write as _;

use ferry_benches::host::{Host, garage_version};
use ferry_benches::units::{KIB, MIB, size_text};

use crate::args::{Args, BenchMode};
use crate::case::{Case, FALLBACK, HIT, MERGED, ModeResult, RELAY, case_title};
use crate::clients::Body;
use crate::stats::Series;
use crate::workload::{LIST_PAGE, Op};

/// The host, and the stores' Garage.
pub struct Machine {
    pub host: Host,
    pub garage: String,
}

impl Machine {
    pub fn describe() -> Machine {
        Machine {
            host: Host::describe(),
            garage: garage_version(),
        }
    }
}

pub struct Report<'a> {
    pub machine: &'a Machine,
    pub args: &'a Args,
    pub command: String,
    pub modes: &'a [ModeResult],
    pub load_start: Option<(f64, f64, f64)>,
    pub load_end: Option<(f64, f64, f64)>,
    pub total_secs: f64,
    pub proxy_log_lines: usize,
}

pub fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "—".to_owned(), f)
}

/// The 1, 5 and 15 minute load averages, if /proc had them.
pub type Load = Option<(f64, f64, f64)>;

pub fn load_text(l: Option<(f64, f64, f64)>) -> String {
    l.map_or_else(
        || "?".to_owned(),
        |(a, b, c)| format!("{a:.1} / {b:.1} / {c:.1}"),
    )
}

pub fn rounds_text(v: &[Option<f64>], decimals: usize) -> String {
    v.iter()
        .map(|x| opt(*x, |x| format!("{x:.decimals$}")))
        .collect::<Vec<_>>()
        .join(" · ")
}

pub fn case_name(c: &Case) -> String {
    case_title(c.size, c.op, c.body, c.variant)
}

fn store_name(mode: BenchMode) -> &'static str {
    match mode {
        BenchMode::Ready => "the target",
        BenchMode::Forward => "the source",
        BenchMode::Migrate => "one store",
    }
}

/// "+0.12 ms (+9.8%)"
pub fn added(p: Option<f64>, d: Option<f64>) -> String {
    match (p, d) {
        (Some(p), Some(d)) if d > 0.0 => {
            format!("{:+.2} ms ({:+.1}%)", p - d, (p / d - 1.0) * 100.0)
        }
        _ => "—".into(),
    }
}

pub fn ratio(p: Option<f64>, d: Option<f64>) -> Option<f64> {
    match (p, d) {
        (Some(p), Some(d)) if d > 0.0 => Some(p / d),
        _ => None,
    }
}

pub fn times(r: Option<f64>) -> String {
    opt(r, |r| format!("{r:.2}×"))
}

pub fn cpu_cells(s: &Series, per: f64, unit_scale: f64, decimals: usize) -> (String, String) {
    let c = s.cpu();
    let f = |secs: f64| {
        if per > 0.0 {
            format!("{:.decimals$}", secs * unit_scale / per)
        } else {
            "—".into()
        }
    };
    (
        format!(
            "{} · {} · {}",
            f(c.client_secs),
            f(c.proxy_secs),
            f(c.stores_secs)
        ),
        match c.other_cores() {
            Some(o) => format!("{:.0}% · {o:.1}", c.machine_busy * 100.0),
            None => "n/a (/proc/stat below the processes' own CPU)".to_owned(),
        },
    )
}

struct Goal {
    what: String,
    target: String,
    measured: String,
    met: Option<bool>,
}

impl Report<'_> {
    pub fn render(&self) -> String {
        let mut s = String::new();
        let m = self.machine;
        let a = self.args;
        let _ = writeln!(s, "### bench-proxy, {}\n", m.host.date);
        machine_lines(
            &mut s,
            m,
            "ferry-proxy (Pingora, 2 worker threads)",
            "the proxy",
            (self.load_start, self.load_end),
        );
        let _ = writeln!(
            s,
            "- Client: aws-sdk-s3 in this process, one config for both paths (path style, \
             retries off, checksums only when required: plain bodies with a signed SHA-256), \
             except the *aws-chunked* rows (the SDK's default: `STREAMING-UNSIGNED-PAYLOAD-TRAILER` \
             with a CRC32 trailer). Direct: the store's own key. Proxy: the users-file client."
        );
        client_stack_line(&mut s, a);
        let _ = writeln!(
            s,
            "- Small: {} objects, {} in flight, {} s per run; large: {} objects of {} per run, {} at a time. \
             {} rounds per path, alternating (direct, proxy, proxy, direct, …), each after a warm-up \
             on the same client. Latency: request sent to body fully read; p50/p90/p99 over all rounds.",
            size_text(a.small_kib * KIB),
            a.concurrency,
            a.small_secs,
            a.large,
            size_text(a.large_mib * MIB),
            a.large_concurrency,
            a.rounds
        );
        let _ = writeln!(
            s,
            "- CPU columns: CPU time of the client · the proxy · the Garage stores, per request \
             (µs) or per GB moved (s); *busy*: share of all cores busy during the runs.",
        );
        command_line(&mut s, &self.command, self.total_secs);
        for mr in self.modes {
            self.mode_section(&mut s, mr);
        }
        self.goals_section(&mut s);
        let mut notes = Vec::new();
        for mr in self.modes {
            case_notes(mr, &mut notes);
        }
        let stalled = self.modes.iter().any(|mr| {
            mr.case(false, Op::Get, Body::Plain)
                .and_then(|c| c.direct.as_ref()?.p50_ms())
                .is_some_and(|p50| p50 >= 38.0)
        });
        if stalled {
            notes.push(
                "direct small GETs take about 40 ms at the median: Garage writes the response \
                 head and the body in two writes on a socket without TCP_NODELAY, so the body \
                 waits (Nagle) for the client's delayed ACK of the head. The proxy acknowledges \
                 a head at once (TCP_QUICKACK), so only the direct path pays it here; \
                 `--quick-ack-client` gives the direct path the same, and the HEAD rows show \
                 the proxy's own per-request cost without it."
                    .to_owned(),
            );
        }
        if self
            .modes
            .iter()
            .any(|mr| mr.variant(Op::Get, RELAY).is_some())
        {
            notes.push(
                "the relay row sends the same large GETs through a plain TCP relay in this \
                 process (bytes copied both ways, no HTTP): what a second loopback hop costs \
                 any proxy on this machine. Its CPU is in the client column."
                    .to_owned(),
            );
        }
        log_note(self.proxy_log_lines, &mut notes);
        notes_section(&mut s, notes);
        s
    }

    fn mode_section(&self, s: &mut String, mr: &ModeResult) {
        let store = store_name(mr.mode);
        let _ = writeln!(
            s,
            "#### {} mode: {store} directly vs through the proxy\n",
            capitalize(mr.mode.as_str())
        );
        let _ = writeln!(
            s,
            "Load average {} before, {} after; {:.0} s.\n",
            load_text(mr.load_before),
            load_text(mr.load_after),
            mr.secs
        );
        if mr.mode == BenchMode::Migrate {
            let a = self.args;
            let _ = writeln!(
                s,
                "*Target hit*: {n} objects put on the target only, read through the proxy and \
                 directly from the target. *Fallback*: {n} objects put on the source only (the \
                 proxy's GET to the target answers 404, then it reads the source), read through \
                 the proxy and directly from the source. *Merged page*: {k} keys, every fifth \
                 on both sides and the rest split evenly, so {side} on each side; the first \
                 {LIST_PAGE}-key ListObjectsV2 page through the proxy against the same page \
                 from a bucket on the target that holds all {k} keys (checked to be the same \
                 keys before the timed runs), {lc} request(s) in flight.\n",
                n = a.small_keys.max(1),
                k = a.list_keys,
                side = a.list_keys - a.list_keys * 2 / 5,
                lc = a.list_concurrency.max(1),
            );
        }
        let small: Vec<&Case> = mr.cases.iter().filter(|c| !c.large).collect();
        let large: Vec<&Case> = mr.cases.iter().filter(|c| c.large).collect();
        if !small.is_empty() {
            small_tables(s, &small);
        }
        if !large.is_empty() {
            let _ = writeln!(
                s,
                "| case | path | objects | MB/s | s/object p50 | MB/s by round | errors | CPU s/GB: client · proxy · Garage | busy · others (cores) |"
            );
            let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|--:|");
            for c in &large {
                for ser in c.direct.iter().chain([&c.proxy]) {
                    let gb = ser.runs.iter().map(|r| r.bytes).sum::<u64>() as f64 / 1e9;
                    let (cpu, busy) = cpu_cells(ser, gb, 1.0, 2);
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} | {} | {} | {cpu} | {busy} |",
                        case_name(c),
                        ser.path,
                        ser.ok(),
                        opt(ser.mb_per_sec(), |v| format!("{v:.0}")),
                        opt(ser.p50_ms(), |v| format!("{:.2}", v / 1000.0)),
                        rounds_text(&ser.mb_per_sec_by_round(), 0),
                        ser.errors()
                    );
                }
            }
            s.push('\n');
            let _ = writeln!(
                s,
                "| case | MB/s ratio (proxy or relay / direct) | added s/object p50 |"
            );
            let _ = writeln!(s, "|---|--:|--:|");
            for c in &large {
                let Some(d) = &c.direct else { continue };
                let p = &c.proxy;
                let add = match (p.p50_ms(), d.p50_ms()) {
                    (Some(p), Some(d)) => format!("{:+.2} s", (p - d) / 1000.0),
                    _ => "—".into(),
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {add} |",
                    case_name(c),
                    opt(ratio(p.mb_per_sec(), d.mb_per_sec()), |r| format!(
                        "{:.0}%",
                        r * 100.0
                    )),
                );
            }
            s.push('\n');
        }
    }

    fn goals_section(&self, s: &mut String) {
        let mut goals = Vec::new();
        let find = |mode: BenchMode, large: bool, op: Op| {
            self.modes
                .iter()
                .find(|m| m.mode == mode)
                .and_then(|m| m.case(large, op, Body::Plain))
        };
        if let Some(c) = find(BenchMode::Ready, false, Op::Get) {
            let d = c.direct.as_ref().and_then(Series::p50_ms);
            let p = c.proxy.p50_ms();
            let r = ratio(p, d);
            goals.push(Goal {
                what: format!("ready, {} GET: added p50", size_text(c.size)),
                target: "< 10%".into(),
                measured: added(p, d),
                met: r.map(|r| r - 1.0 < 0.10),
            });
        }
        if let Some(c) = find(BenchMode::Ready, false, Op::Head) {
            let d = c.direct.as_ref().and_then(Series::p50_ms);
            let p = c.proxy.p50_ms();
            let r = ratio(p, d);
            goals.push(Goal {
                what: format!(
                    "(extra) ready, {} HEAD: added p50 (the GET goal without Garage's stall)",
                    size_text(c.size)
                ),
                target: "< 10%".into(),
                measured: added(p, d),
                met: r.map(|r| r - 1.0 < 0.10),
            });
        }
        for op in [Op::Get, Op::Put] {
            if let Some(c) = find(BenchMode::Ready, true, op) {
                let r = ratio(
                    c.proxy.mb_per_sec(),
                    c.direct.as_ref().and_then(Series::mb_per_sec),
                );
                goals.push(Goal {
                    what: format!(
                        "ready, {} {}: throughput through the proxy",
                        size_text(c.size),
                        op.as_str()
                    ),
                    target: "≥ 95% of direct".into(),
                    measured: opt(r, |r| format!("{:.0}%", r * 100.0)),
                    met: r.map(|r| r >= 0.95),
                });
            }
        }
        for op in [Op::Get, Op::Put, Op::Head] {
            if let Some(c) = find(BenchMode::Forward, false, op) {
                let d = c.direct.as_ref().and_then(Series::p50_ms);
                let p = c.proxy.p50_ms();
                let r = ratio(p, d);
                goals.push(Goal {
                    what: format!(
                        "{}forward, {} {}: p50 through the proxy",
                        if op == Op::Head { "(extra) " } else { "" },
                        size_text(c.size),
                        op.as_str()
                    ),
                    target: "≤ 1.2× direct (WEKA: about 2×)".into(),
                    measured: format!("{} ({})", times(r), added(p, d)),
                    met: r.map(|r| r <= 1.2),
                });
            }
        }
        if let Some(m) = self.modes.iter().find(|m| m.mode == BenchMode::Migrate) {
            // (op, variant, the ratio's limit, whether the limit itself
            // meets the goal, the goal's text)
            let hit = (1.1, true, "≤ 1.1× direct (the target)");
            let fallback = (
                2.2,
                false,
                "< 2.2× direct (the source): one extra round trip",
            );
            let targets = [
                (Op::Get, HIT, hit),
                (Op::Get, FALLBACK, fallback),
                (
                    Op::List,
                    MERGED,
                    (2.5, false, "< 2.5× a direct page from one store"),
                ),
                (Op::Head, HIT, hit),
                (Op::Head, FALLBACK, fallback),
            ];
            for (op, variant, (limit, inclusive, target)) in targets {
                let Some(c) = m.variant(op, variant) else {
                    continue;
                };
                let d = c.direct.as_ref().and_then(Series::p50_ms);
                let p = c.proxy.p50_ms();
                let r = ratio(p, d);
                goals.push(Goal {
                    what: format!(
                        "{}migrate, {}: p50 through the proxy",
                        if op == Op::Head { "(extra) " } else { "" },
                        case_name(c)
                    ),
                    target: target.into(),
                    measured: format!("{} ({})", times(r), added(p, d)),
                    met: r.map(|r| r < limit || (inclusive && r <= limit)),
                });
            }
        }
        if goals.is_empty() {
            return;
        }
        let _ = writeln!(s, "#### Goals\n");
        let _ = writeln!(s, "| goal | target | measured | |");
        let _ = writeln!(s, "|---|---|--:|---|");
        for g in goals {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                g.what,
                g.target,
                g.measured,
                match g.met {
                    Some(true) => "met",
                    Some(false) => "**missed**",
                    None => "not measured",
                }
            );
        }
        s.push('\n');
    }
}

/// The small-object tables of `small`: each path's figures, then the
/// second path against the first (the reference).
pub fn small_tables(s: &mut String, small: &[&Case]) {
    let Some(first) = small.first() else { return };
    let a = first.direct.as_ref().map_or("direct", |d| d.path.as_str());
    let b = first.proxy.path.as_str();
    let _ = writeln!(
        s,
        "| case | path | requests | req/s | p50 ms | p90 ms | p99 ms | p50 by round, ms | errors | CPU µs/req: client · proxy · Garage | busy · others (cores) |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for c in small {
        for ser in c.direct.iter().chain([&c.proxy]) {
            let (cpu, busy) = cpu_cells(ser, ser.ok() as f64, 1e6, 0);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {cpu} | {busy} |",
                case_name(c),
                ser.path,
                ser.ok(),
                opt(ser.rate(), |v| format!("{v:.0}")),
                opt(ser.p50_ms(), |v| format!("{v:.2}")),
                opt(ser.quantile_ms(0.90), |v| format!("{v:.2}")),
                opt(ser.p99_ms(), |v| format!("{v:.2}")),
                rounds_text(&ser.p50_by_round_ms(), 2),
                ser.errors()
            );
        }
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "| case | added p50 ({b} − {a}) | added p99 | p50 ratio | p99 ratio | req/s ratio |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|");
    for c in small {
        let Some(d) = &c.direct else { continue };
        let p = &c.proxy;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            case_name(c),
            added(p.p50_ms(), d.p50_ms()),
            added(p.p99_ms(), d.p99_ms()),
            times(ratio(p.p50_ms(), d.p50_ms())),
            times(ratio(p.p99_ms(), d.p99_ms())),
            times(ratio(p.rate(), d.rate()))
        );
    }
    s.push('\n');
}

/// The machine, and what shares it: `sharing` runs besides the stores and
/// the client; `proxy` names it in the *others* column's meaning.
pub fn machine_lines(
    s: &mut String,
    m: &Machine,
    sharing: &str,
    proxy: &str,
    (start, end): (Load, Load),
) {
    let _ = writeln!(
        s,
        "- Machine: {} cores ({}), Linux {}; the two Garage stores ({}), \
         {sharing} and the client all share these cores.",
        m.host.cores, m.host.cpu, m.host.kernel, m.garage
    );
    let _ = writeln!(
        s,
        "- Load average (1/5/15 min): {} at the start, {} at the end; \
         per section below. Other people's builds and tests ran on the machine too \
         (column *others*: busy cores that were neither the client, {proxy} nor the stores).",
        load_text(start),
        load_text(end)
    );
}

pub fn client_stack_line(s: &mut String, a: &Args) {
    let _ = writeln!(
        s,
        "- Client HTTP stack: {}.",
        if a.quick_ack_client {
            "s3migrate's (`--quick-ack-client`): every read acknowledged at once (TCP_QUICKACK)"
        } else {
            "the SDK's default: ACKs delayed, as with awscli or rclone"
        }
    );
}

pub fn command_line(s: &mut String, command: &str, total_secs: f64) {
    let _ = writeln!(s, "- Command: `{command}`; total {total_secs:.0} s.\n");
}

/// A note for each case of `mr` the store refused, and for each path that
/// had errors.
pub fn case_notes(mr: &ModeResult, notes: &mut Vec<String>) {
    for c in &mr.cases {
        if let Some(n) = &c.note {
            notes.push(format!("{} {}: {n}", mr.mode.as_str(), case_name(c)));
        }
        for ser in c.direct.iter().chain([&c.proxy]) {
            if let Some(e) = ser.first_error() {
                notes.push(format!(
                    "{} {} {}: {} errors, the first: {e}",
                    mr.mode.as_str(),
                    case_name(c),
                    ser.path,
                    ser.errors()
                ));
            }
        }
    }
}

pub fn log_note(proxy_log_lines: usize, notes: &mut Vec<String>) {
    if proxy_log_lines > 0 {
        notes.push(format!(
            "ferry-proxy logged {proxy_log_lines} lines at warn or above (see its work dir \
             with --keep-work)"
        ));
    }
}

pub fn notes_section(s: &mut String, notes: Vec<String>) {
    if !notes.is_empty() {
        let _ = writeln!(s, "#### Notes\n");
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
        s.push('\n');
    }
}

pub fn capitalize(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
