//! The markdown report: figures per path, the proxy's cost against direct,
//! and the goals, met or missed.

use std::fmt::Write as _;

use ferry_benches::host::{Host, garage_version};
use ferry_benches::units::{KIB, MIB, size_text};

use crate::args::{Args, BenchMode};
use crate::case::{
    Case, FALLBACK, FLOOR, HIT, MANY, MERGED, ModeResult, RELAY, SIGV4_FLOOR, case_title,
    is_baseline,
};
use crate::clients::Body;
use crate::cost_report;
use crate::full_list::FullList;
use crate::stats::{
    Series, p50_differences, p50_ratios, proxy_cpu_differences, spread, spread_text,
};
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

/// A mode's heading, and the machine's load before and after it.
pub fn mode_heading(s: &mut String, title: &str, mr: &ModeResult) {
    let _ = writeln!(s, "#### {title}\n");
    let _ = writeln!(
        s,
        "Load average {} before, {} after; {:.0} s.\n",
        load_text(mr.load_before),
        load_text(mr.load_after),
        mr.secs
    );
}

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
        BenchMode::Cost => "the target",
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

/// A case's p50 through the proxy over direct, for its goal: the median
/// of the rounds' ratios (see [`p50_ratios`]), and that with their range
/// and the pooled difference of the tables above.
fn paired_p50(c: &Case) -> (Option<f64>, String) {
    let Some(d) = c.direct.as_ref() else {
        return (None, "—".into());
    };
    let ratios = p50_ratios(&c.proxy, d);
    let n = ratios.len();
    let pooled = added(c.proxy.p50_ms(), d.p50_ms());
    match spread(ratios) {
        Some((m, lo, hi)) => (
            Some(m),
            format!("{m:.2}×, median of {n} paired rounds ({lo:.2}–{hi:.2}); pooled {pooled}"),
        ),
        None => (None, "—".into()),
    }
}

pub fn ratio(p: Option<f64>, d: Option<f64>) -> Option<f64> {
    match (p, d) {
        (Some(p), Some(d)) if d > 0.0 => Some(p / d),
        _ => None,
    }
}

fn pct1(r: f64) -> String {
    format!("{:.1}%", r * 100.0)
}

/// What Ferry may add to Pingora's own CPU per small request, µs: its
/// SigV4 verify and re-sign (a handful of HMACs each), the plan, metrics
/// and access log.
pub const FERRY_OWN_CPU_US: f64 = 20.0;
/// What Ferry may add to a Pingora proxy that verifies and re-signs with
/// its code (pingora-floor --sigv4), µs: the routing, grant, metrics, log
/// and request context. bench-plan times them at about 4 µs in a quiet
/// process; a process sharing two busy cores spends 2-3 times that.
pub const FERRY_REST_CPU_US: f64 = 10.0;

/// The proxy's own CPU per request of a path, µs.
fn proxy_cpu_us(s: &Series) -> Option<f64> {
    let n = s.ok();
    (n > 0).then(|| s.cpu().proxy_secs * 1e6 / n as f64)
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

pub struct Goal {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: Option<bool>,
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
             {} rounds per path. A round runs every path of a case back to back (direct, proxy, \
             then the relay and floors), every other round in reverse order, each after a warm-up \
             on the same client; a baseline row shares its proxy row's direct runs. Latency: request sent to body fully read; p50/p90/p99 over all rounds.",
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
        let baselines = [
            (
                RELAY,
                "the relay rows send the same requests through a plain TCP relay in this \
                 process (bytes copied both ways, no HTTP): what a second loopback hop costs \
                 any proxy on this machine, the floor of the proxy's latency. Its CPU is in \
                 the client column.",
            ),
            (
                FLOOR,
                "the pingora-floor rows send the same requests through a Pingora proxy that \
                 does nothing but pass them to the target (ferry-proxy's server settings and \
                 quick-ack; no parsing, SigV4, routing, metrics or log): what Pingora itself \
                 costs here. Its CPU is in the proxy column.",
            ),
            (
                SIGV4_FLOOR,
                "the pingora-floor --sigv4 rows add to that floor the work no re-signing \
                 proxy can skip, with ferry-proxy's own code: the client's SigV4 signature \
                 verified, the request rewritten and signed anew for the target. What \
                 ferry-proxy spends over it is its routing, grant, metrics, log and request \
                 context. Its CPU is in the proxy column.",
            ),
        ];
        for (variant, note) in baselines {
            if self
                .modes
                .iter()
                .any(|mr| mr.variant(Op::Get, variant).is_some())
            {
                notes.push(note.to_owned());
            }
        }
        log_note(self.proxy_log_lines, &mut notes);
        notes_section(&mut s, notes);
        s
    }

    fn mode_section(&self, s: &mut String, mr: &ModeResult) {
        if mr.mode == BenchMode::Cost {
            mode_heading(
                s,
                "Cost mode: the proxy's own cost per request against its floors",
                mr,
            );
            cost_report::section(
                s,
                &mr.costs,
                self.small_size(),
                self.args.callgrind,
                self.args.cost_together,
            );
            return;
        }
        let title = format!(
            "{} mode: {} directly vs through the proxy",
            capitalize(mr.mode.as_str()),
            store_name(mr.mode)
        );
        mode_heading(s, &title, mr);
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
        let small: Vec<&Case> = mr
            .cases
            .iter()
            .filter(|c| !c.large && c.variant != MANY)
            .collect();
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
                for ser in c.rows() {
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
        if let Some(c) = mr.variant(Op::Get, MANY) {
            many_clients_section(s, c, self.args.many_clients, self.args.small_secs);
        }
        if !mr.full_lists.is_empty() {
            full_lists_section(s, &mr.full_lists);
        }
    }

    fn small_size(&self) -> u64 {
        self.args.small_kib * KIB
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
            let (r, measured) = paired_p50(c);
            goals.push(Goal {
                what: format!("ready, {} GET: added p50", size_text(c.size)),
                target: "< 10% (1.10×)".into(),
                measured,
                met: r.map(|r| r - 1.0 < 0.10),
            });
        }
        if let Some(c) = find(BenchMode::Ready, false, Op::Head) {
            let (r, measured) = paired_p50(c);
            goals.push(Goal {
                what: format!(
                    "(extra) ready, {} HEAD: added p50 (the GET goal without Garage's stall)",
                    size_text(c.size)
                ),
                target: "< 10% (1.10×)".into(),
                measured,
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
                let (r, measured) = paired_p50(c);
                goals.push(Goal {
                    what: format!(
                        "{}forward, {} {}: p50 through the proxy",
                        if op == Op::Head { "(extra) " } else { "" },
                        size_text(c.size),
                        op.as_str()
                    ),
                    target: "≤ 1.2× direct (WEKA: about 2×)".into(),
                    measured,
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
                let (r, measured) = paired_p50(c);
                goals.push(Goal {
                    what: format!(
                        "{}migrate, {}: p50 through the proxy",
                        if op == Op::Head { "(extra) " } else { "" },
                        case_name(c)
                    ),
                    target: target.into(),
                    measured,
                    met: r.map(|r| r < limit || (inclusive && r <= limit)),
                });
            }
        }
        for m in self.modes {
            extra_goals(m, self.args.many_clients, &mut goals);
            cost_report::goals(&m.costs, self.small_size(), self.args.callgrind, &mut goals);
        }
        self.floor_goals(&mut goals);
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

impl Report<'_> {
    /// The goals against what this machine can reach: the proxy's own CPU
    /// per small request, its latency over a plain relay's, and its
    /// upstream connection reuse.
    fn floor_goals(&self, goals: &mut Vec<Goal>) {
        let cpu_goal_us = |op: Op| if op == Op::Head { 40.0 } else { 60.0 };
        for m in self.modes.iter() {
            for c in m
                .cases
                .iter()
                .filter(|c| !c.large && !is_baseline(c.variant) && c.variant != MANY)
            {
                let limit = match (m.mode, c.op, c.variant) {
                    (BenchMode::Ready | BenchMode::Forward, Op::Head | Op::Get | Op::Put, _)
                        if c.body == Body::Plain =>
                    {
                        cpu_goal_us(c.op)
                    }
                    (BenchMode::Migrate, Op::Head | Op::Get, v) if v == FALLBACK => {
                        2.0 * cpu_goal_us(c.op)
                    }
                    _ => continue,
                };
                let us = proxy_cpu_us(&c.proxy);
                goals.push(Goal {
                    what: format!(
                        "{}, {}: the proxy's CPU per request",
                        m.mode.as_str(),
                        case_name(c)
                    ),
                    target: format!("≤ {limit:.0} µs"),
                    measured: opt(us, |v| format!("{v:.0} µs")),
                    met: us.map(|v| v <= limit),
                });
            }
            // Ferry's own share: the proxy's CPU over Pingora's alone, and
            // over Pingora with Ferry's SigV4 verify and re-sign, for the
            // same requests in the same rounds.
            for (floor, whose, short, limit) in [
                (FLOOR, "pingora-floor's", "floor", FERRY_OWN_CPU_US),
                (
                    SIGV4_FLOOR,
                    "pingora-floor --sigv4's",
                    "sigv4 floor",
                    FERRY_REST_CPU_US,
                ),
            ] {
                for op in [Op::Head, Op::Get, Op::Put] {
                    let (Some(c), Some(f)) =
                        (m.case(false, op, Body::Plain), m.variant_small(op, floor))
                    else {
                        continue;
                    };
                    let over = proxy_cpu_differences(&c.proxy, &f.proxy);
                    goals.push(Goal {
                        what: format!(
                            "{}, {}: the proxy's CPU per request over {whose}, in paired rounds",
                            m.mode.as_str(),
                            case_name(c)
                        ),
                        target: format!("≤ {short} + {limit:.0} µs"),
                        measured: format!("{} µs", spread_text(&over, true, 0)),
                        met: spread(over).map(|(m, _, _)| m <= limit),
                    });
                }
            }
            // Pingora alone adds more than 0.15 ms over the relay here (see
            // docs/benchmarks.md), so the floor's p50 is the reachable one;
            // the relay's stays for reference.
            for (baseline, whose, short) in [
                (FLOOR, "pingora-floor's", "floor"),
                (RELAY, "the relay's", "relay"),
            ] {
                for op in [Op::Head, Op::Get] {
                    let (Some(c), Some(b)) = (
                        m.case(false, op, Body::Plain),
                        m.variant_small(op, baseline),
                    ) else {
                        continue;
                    };
                    let over = p50_differences(&c.proxy, &b.proxy);
                    goals.push(Goal {
                        what: format!(
                            "{}, {}: p50 over {whose}, in paired rounds",
                            m.mode.as_str(),
                            case_name(c)
                        ),
                        target: format!("≤ {short} + 0.15 ms"),
                        measured: format!("{} ms", spread_text(&over, true, 2)),
                        met: spread(over).map(|(m, _, _)| m <= 0.15),
                    });
                }
            }
        }
        self.fallback_floor_goals(goals);
        let mut conns = (0, 0);
        for c in self.modes.iter().flat_map(|m| &m.cases) {
            if let Some((r, o)) = c.proxy.upstream {
                conns = (conns.0 + r, conns.1 + o);
            }
        }
        let all = conns.0 + conns.1;
        if all > 0 {
            let share = conns.0 as f64 / all as f64;
            goals.push(Goal {
                what: "upstream connections reused, every proxy row".into(),
                target: "≥ 99%".into(),
                measured: format!("{} ({} of {all})", pct1(share), conns.0),
                met: Some(share >= 0.99),
            });
        }
    }
}

impl Report<'_> {
    /// A fallback is two upstream exchanges, so the goal is twice
    /// the one-exchange goal. Against the floor, that is twice ready mode's
    /// pingora-floor of this run plus Ferry's share ([`FERRY_OWN_CPU_US`]).
    fn fallback_floor_goals(&self, goals: &mut Vec<Goal>) {
        let mode = |m: BenchMode| self.modes.iter().find(|r| r.mode == m);
        let (Some(migrate), Some(ready)) = (mode(BenchMode::Migrate), mode(BenchMode::Ready))
        else {
            return;
        };
        for op in [Op::Head, Op::Get] {
            let (Some(c), Some(f)) = (
                migrate.variant(op, FALLBACK),
                ready.variant_small(op, FLOOR),
            ) else {
                continue;
            };
            let p = proxy_cpu_us(&c.proxy);
            let limit = proxy_cpu_us(&f.proxy).map(|f| 2.0 * (f + FERRY_OWN_CPU_US));
            goals.push(Goal {
                what: format!(
                    "migrate, {}: the proxy's CPU per request over twice ready mode's \
                     pingora-floor's",
                    case_name(c)
                ),
                target: format!("≤ 2 × (floor + {FERRY_OWN_CPU_US:.0} µs)"),
                measured: match (p, limit) {
                    (Some(p), Some(l)) => format!("{p:.0} µs against {l:.0} µs"),
                    _ => "–".into(),
                },
                met: p.zip(limit).map(|(p, l)| p <= l),
            });
        }
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
        "| case | path | requests | req/s | p50 ms | p90 ms | p99 ms | p50 by round, ms | errors | CPU µs/req: client · proxy · Garage | busy · others (cores) | upstream conns reused |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for c in small {
        for ser in c.rows() {
            let (cpu, busy) = cpu_cells(ser, ser.ok() as f64, 1e6, 0);
            let reuse = match ser.upstream {
                Some((r, o)) => format!("{} ({r} of {})", opt(ser.reuse(), pct1), r + o),
                None => "—".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {cpu} | {busy} | {reuse} |",
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
        for ser in c.rows() {
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

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The proxy's RSS in MiB: before → peak (VmHWM) · the largest sampled.
fn rss_text(m: &crate::mem::MemSeen) -> String {
    format!(
        "{} → {} · {}",
        mib(m.rss_before_kib),
        if m.hwm_kib > 0 {
            mib(m.hwm_kib)
        } else {
            "?".to_owned()
        },
        mib(m.sampled_max_kib)
    )
}

/// `--many-clients`: each path's clients, the connections seen open, the
/// latency and errors, and the proxy's memory.
fn many_clients_section(s: &mut String, c: &Case, clients: usize, secs: f64) {
    let _ = writeln!(
        s,
        "*Many clients* (`--many-clients`): {clients} clients at once doing {} GETs, each \
         its own S3 client with its own HTTP pool and one request after another, so each \
         keeps one keep-alive connection; {secs} s per run. *Connections open*: the most of \
         this process's sockets ESTABLISHED to the path's port at once (sampled every \
         200 ms), less those open before the case (other cases' idle pooled ones, in \
         brackets): a lower bound of the clients' own. Proxy RSS: VmRSS when the run \
         started → VmHWM at its end (reset at its start) · the largest VmRSS sampled every \
         20 ms, MiB, over the path's rounds.\n",
        size_text(c.size),
    );
    let _ = writeln!(
        s,
        "| path | clients | connections open | requests | req/s | p50 ms | p99 ms | max ms | errors | CPU µs/req: client · proxy · Garage | busy · others (cores) | proxy RSS MiB: before → peak · sampled | proxy open files | upstream conns reused |"
    );
    let _ = writeln!(
        s,
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for ser in c.rows() {
        let is_proxy = std::ptr::eq(ser, &c.proxy);
        let m = ser.mem.unwrap_or_default();
        let (cpu, busy) = cpu_cells(ser, ser.ok() as f64, 1e6, 0);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {cpu} | {busy} | {} | {} | {} |",
            ser.path,
            clients,
            if ser.mem.is_some() {
                format!("{} ({} before)", m.conns_own(), m.conns_before)
            } else {
                "—".into()
            },
            ser.ok(),
            opt(ser.rate(), |v| format!("{v:.0}")),
            opt(ser.p50_ms(), |v| format!("{v:.2}")),
            opt(ser.p99_ms(), |v| format!("{v:.2}")),
            opt(ser.max_ms(), |v| format!("{v:.2}")),
            ser.errors(),
            if is_proxy && ser.mem.is_some() {
                rss_text(&m)
            } else {
                "—".into()
            },
            if is_proxy && ser.mem.is_some() {
                m.fds_max.to_string()
            } else {
                "—".into()
            },
            match ser.upstream {
                Some((r, o)) => format!("{} ({r} of {})", opt(ser.reuse(), pct1), r + o),
                None => "—".into(),
            },
        );
    }
    s.push('\n');
}

/// `--full-list-keys`: each size listed to the end, directly from the
/// union bucket and merged through the proxy, and the proxy's memory.
fn full_lists_section(s: &mut String, lists: &[FullList]) {
    let _ = writeln!(
        s,
        "*Merged listing to the end* (`--full-list-keys`): for each size, that many keys per \
         side (every fifth key on both sides, the others split between them, so the union \
         holds 5/3 of it), listed to the last {LIST_PAGE}-key page one page at a time: \
         directly from a bucket on the target that holds the union, and merged through the \
         proxy. Every key is checked to be the next one in order. Page latency over all \
         rounds; *to the end*: the mean time of one whole listing. Proxy RSS: VmRSS when \
         the size's first listing started → VmHWM (reset before each listing) · the \
         largest VmRSS sampled every 20 ms, MiB, over the size's listings.\n"
    );
    let _ = writeln!(
        s,
        "| keys per side | union | pages | seeded in | direct page p50 · p99 ms | merged page p50 · p99 ms | p50 ratio | to the end: direct · proxy s | errors: direct · proxy | proxy RSS MiB: before → peak · sampled | CPU ms/page: client · proxy · Garage (proxy path) |"
    );
    let _ = writeln!(s, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for l in lists {
        let pq = |ser: &Series| {
            format!(
                "{} · {}",
                opt(ser.p50_ms(), |v| format!("{v:.2}")),
                opt(ser.p99_ms(), |v| format!("{v:.2}"))
            )
        };
        let mean_wall = |ser: &Series| {
            let n = ser.runs.len();
            (n > 0).then(|| ser.wall_secs() / n as f64)
        };
        let (cpu, _) = cpu_cells(&l.proxy, l.proxy.ok() as f64, 1e3, 2);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} s | {} | {} | {} | {} · {} | {} · {} | {} | {cpu} |",
            l.per_side,
            l.union,
            l.pages,
            l.seed_secs,
            pq(&l.direct),
            pq(&l.proxy),
            times(ratio(l.proxy.p50_ms(), l.direct.p50_ms())),
            opt(mean_wall(&l.direct), |v| format!("{v:.2}")),
            opt(mean_wall(&l.proxy), |v| format!("{v:.2}")),
            l.direct.errors(),
            l.proxy.errors(),
            rss_text(&l.mem),
        );
    }
    s.push('\n');
}

/// The goals of the extra cases: `--many-clients` (no errors, the
/// proxy's peak RSS, every client on its own connection) and
/// `--full-list-keys` (each size's page against a direct page, and the
/// proxy's peak RSS the same for every size).
fn extra_goals(m: &ModeResult, clients: usize, goals: &mut Vec<Goal>) {
    if let Some(c) = m.variant(Op::Get, MANY) {
        let name = case_name(c);
        let p = &c.proxy;
        let d = c.direct.as_ref();
        goals.push(Goal {
            what: format!("{}, {name}: errors through the proxy", m.mode.as_str()),
            target: "none".into(),
            measured: format!(
                "{} errors, {} ok; p99 {} ms (direct {} ms, {} errors)",
                p.errors(),
                p.ok(),
                opt(p.p99_ms(), |v| format!("{v:.1}")),
                opt(d.and_then(Series::p99_ms), |v| format!("{v:.1}")),
                d.map_or(0, Series::errors),
            ),
            met: Some(p.errors() == 0 && p.ok() > 0),
        });
        if let Some(mem) = p.mem {
            let direct = d.and_then(|d| d.mem).map_or(0, |m| m.conns_own());
            goals.push(Goal {
                what: format!(
                    "{}, {name}: connections open at once, one per client",
                    m.mode.as_str()
                ),
                target: format!("≥ {clients}"),
                measured: format!("{} to the proxy ({direct} direct)", mem.conns_own()),
                met: Some(mem.conns_own() >= clients),
            });
            goals.push(Goal {
                what: format!("{}, {name}: the proxy's peak RSS", m.mode.as_str()),
                target: "< 200 MiB".into(),
                measured: format!("{} MiB", mib(mem.peak_kib())),
                met: Some(mem.peak_kib() < 200 * 1024),
            });
        }
    }
    let lists = &m.full_lists;
    for l in lists {
        let r = ratio(l.proxy.p50_ms(), l.direct.p50_ms());
        goals.push(Goal {
            what: format!(
                "{}, merged listing of {} keys per side paged to the end: page p50 through the proxy",
                m.mode.as_str(),
                l.per_side
            ),
            target: "< 2.5× a direct page from one store holding the union".into(),
            measured: format!("{} ({})", times(r), added(l.proxy.p50_ms(), l.direct.p50_ms())),
            met: r.map(|r| r < 2.5 && l.proxy.errors() == 0),
        });
    }
    if let (Some(small), Some(large)) = (lists.first(), lists.last())
        && lists.len() > 1
    {
        let (a, b) = (small.mem.peak_kib(), large.mem.peak_kib());
        goals.push(Goal {
            what: format!(
                "{}, merged listing paged to the end: the proxy's peak RSS at {} keys per side \
                 against {}",
                m.mode.as_str(),
                large.per_side,
                small.per_side
            ),
            target: "the same: within 10%".into(),
            measured: format!(
                "{} MiB against {} MiB ({:+.1}%)",
                mib(b),
                mib(a),
                (b as f64 / a.max(1) as f64 - 1.0) * 100.0
            ),
            met: (a > 0).then_some(b as f64 <= a as f64 * 1.10),
        });
    }
}
