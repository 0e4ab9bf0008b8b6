//! What one mode measured: its cases, each the direct path against the
//! proxy, and the names the report gives them.

use std::time::Instant;

use crate::args::BenchMode;
use crate::clients::Body;
use crate::cost::CostRow;
use crate::full_list::FullList;
use crate::stats::Series;
use crate::workload::Op;

/// The variant of a case sent through a plain TCP relay instead of the
/// proxy (ready mode: small GET, HEAD and PUT, and the large GET).
pub const RELAY: &str = " via a plain TCP relay (baseline, not ferry-proxy)";
/// The variant sent through pingora-floor, a Pingora pass-through with
/// none of Ferry's work (ready mode: small GET, HEAD and PUT).
pub const FLOOR: &str = " via pingora-floor (baseline, not ferry-proxy)";
/// The variant sent through pingora-floor `--sigv4`: the pass-through
/// plus ferry-proxy's SigV4 verify and re-sign, and nothing else of it.
pub const SIGV4_FLOOR: &str = " via pingora-floor --sigv4 (baseline, not ferry-proxy)";
/// Migrate mode's variants: a GET the target answers, one that falls back
/// to the source, and a listing page merged from both.
pub const HIT: &str = " (target hit)";
pub const FALLBACK: &str = " (fallback to the source)";
pub const MERGED: &str = " (merged page)";
/// Ready mode's `--many-clients` case: many clients at once, each on its
/// own connection.
pub const MANY: &str = " (many clients, one connection each)";

/// One case (say 4 KiB GET) in one mode: the direct path and the proxy.
pub struct Case {
    pub size: u64,
    pub large: bool,
    pub op: Op,
    pub body: Body,
    /// Which of several cases of one op, e.g. " (target hit)"; empty
    /// when there is one.
    pub variant: &'static str,
    /// `None` when the store refused the direct variant (then only the
    /// proxy row is shown).
    pub direct: Option<Series>,
    /// `direct` is a copy of the previous case's: the two paths ran in
    /// the same rounds (`Bench::cases`), so the report shows it once.
    pub direct_shared: bool,
    pub proxy: Series,
    pub note: Option<String>,
}

impl Case {
    /// The series the report shows as rows: direct unless shared, then
    /// the case's own path.
    pub fn rows(&self) -> impl Iterator<Item = &Series> {
        self.direct
            .iter()
            .filter(|_| !self.direct_shared)
            .chain([&self.proxy])
    }
}

pub struct ModeResult {
    pub mode: BenchMode,
    pub cases: Vec<Case>,
    pub load_before: Option<(f64, f64, f64)>,
    pub load_after: Option<(f64, f64, f64)>,
    pub secs: f64,
    /// Migrate mode's `--full-list-keys` listings, smallest first.
    pub full_lists: Vec<FullList>,
    /// Cost mode's request kinds through the proxy and its floors.
    pub costs: Vec<CostRow>,
}

impl ModeResult {
    pub fn case(&self, large: bool, op: Op, body: Body) -> Option<&Case> {
        // The baselines are no proxy cases.
        self.cases
            .iter()
            .find(|c| c.large == large && c.op == op && c.body == body && !is_baseline(c.variant))
    }

    /// The small-object case of `op` and `variant`.
    pub fn variant_small(&self, op: Op, variant: &str) -> Option<&Case> {
        self.cases
            .iter()
            .find(|c| !c.large && c.op == op && c.variant == variant)
    }

    pub fn variant(&self, op: Op, variant: &str) -> Option<&Case> {
        self.cases
            .iter()
            .find(|c| c.op == op && c.variant == variant)
    }
}

/// A mode under way: when it started and the machine's load then, so that
/// its result can say what else the machine was doing.
pub struct ModeStart {
    started: Instant,
    load_before: Option<(f64, f64, f64)>,
}

impl ModeStart {
    pub fn now() -> ModeStart {
        ModeStart {
            started: Instant::now(),
            load_before: ferry_benches::procstat::loadavg(),
        }
    }

    pub fn finish(self, mode: BenchMode, cases: Vec<Case>) -> ModeResult {
        ModeResult {
            mode,
            cases,
            load_before: self.load_before,
            load_after: ferry_benches::procstat::loadavg(),
            secs: self.started.elapsed().as_secs_f64(),
            full_lists: Vec::new(),
            costs: Vec::new(),
        }
    }
}

/// Whether a case's second path is a baseline (the relay or a floor),
/// not ferry-proxy.
pub fn is_baseline(variant: &str) -> bool {
    [RELAY, FLOOR, SIGV4_FLOOR].contains(&variant)
}

pub fn body_tag(body: Body) -> &'static str {
    match body {
        Body::Plain => "",
        Body::Chunked => " (aws-chunked)",
    }
}

/// "4 KiB GET (aws-chunked)"; a listing's `size` is its page in keys.
pub fn case_title(size: u64, op: Op, body: Body, variant: &str) -> String {
    match op {
        Op::List => format!("ListObjectsV2, {size}-key page{variant}"),
        _ => format!(
            "{} {}{}{variant}",
            ferry_benches::units::size_text(size),
            op.as_str(),
            body_tag(body)
        ),
    }
}
