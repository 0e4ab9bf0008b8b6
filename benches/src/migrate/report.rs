//! The markdown report: figures, ratios, and the goals with pass or miss.

use std::fmt::Write as _;
use std::time::Duration;

use ferry_benches::units::{MIB, size_text};

use crate::args::Args;
use crate::bench::{KeysRss, SetResult};
use crate::machine::Machine;
use crate::row::{Row, Tool};

pub struct Report<'a> {
    pub machine: &'a Machine,
    pub args: &'a Args,
    pub sets: &'a [SetResult],
    /// The peak-RSS dry runs, smallest key count first.
    pub keys: &'a [KeysRss],
    pub total: Duration,
}

/// The s3migrate setting with the most objects/s among valid runs.
pub fn best_s3migrate(set: &SetResult) -> Option<&Row> {
    best_of(set, Tool::S3migrate)
}

/// The row of `tool` with the most objects/s among valid runs.
fn best_of(set: &SetResult, tool: Tool) -> Option<&Row> {
    set.rows
        .iter()
        .filter(|r| r.tool == tool && r.valid())
        .max_by(|a, b| a.objects_per_sec().total_cmp(&b.objects_per_sec()))
}

fn valid_row(set: &SetResult, tool: Tool) -> Option<&Row> {
    set.rows.iter().find(|r| r.tool == tool && r.valid())
}

/// `a / b` in objects/s (the same as in MB/s: same data), when both ran.
fn ratio(a: Option<&Row>, b: Option<&Row>) -> Option<f64> {
    Some(a?.objects_per_sec() / b?.objects_per_sec())
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "—".to_owned(), f)
}

struct Goal {
    what: String,
    target: String,
    measured: String,
    met: Option<bool>,
}

impl Goal {
    fn ratio(what: &str, target: f64, value: Option<f64>, percent: bool) -> Goal {
        let show = |v: f64| {
            if percent {
                format!("{:.0}%", v * 100.0)
            } else {
                format!("{v:.2}×")
            }
        };
        Goal {
            what: what.to_owned(),
            target: format!("≥ {}", show(target)),
            measured: opt(value, show),
            met: value.map(|v| v >= target),
        }
    }
}

/// How much more peak RSS the largest key count may take than the
/// smallest and still count as flat: the larger of the two.
const FLAT_GROWTH: f64 = 0.10;
const FLAT_SLACK_MIB: f64 = 4.0;

/// Flat from the smallest to the largest key count of the dry runs, when
/// there are two sizes or more (and both runs are valid).
fn flat_goal(runs: &[KeysRss]) -> Option<Goal> {
    let (first, last) = (runs.first()?, runs.last()?);
    if runs.len() < 2 {
        return None;
    }
    let valid = |k: &KeysRss| k.row.valid().then(|| k.row.rss_mib()).flatten();
    let (a, b) = (valid(first), valid(last));
    let allowed = a.map(|a| a + (a * FLAT_GROWTH).max(FLAT_SLACK_MIB));
    Some(Goal {
        what: format!(
            "s3migrate dry-run peak RSS flat from {} to {} keys",
            thousands(first.keys),
            thousands(last.keys)
        ),
        target: format!(
            "at most +{:.0}% or +{FLAT_SLACK_MIB:.0} MiB, whichever is more",
            FLAT_GROWTH * 100.0
        ),
        measured: match (a, b) {
            (Some(a), Some(b)) => format!("{a:.1} → {b:.1} MiB ({:+.1} MiB)", b - a),
            _ => "—".to_owned(),
        },
        met: allowed.zip(b).map(|(allowed, b)| b <= allowed),
    })
}

impl Report<'_> {
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.header(&mut s);
        for set in self.sets {
            self.set_section(&mut s, set);
        }
        if !self.keys.is_empty() {
            self.keys_section(&mut s, self.keys);
        }
        self.goals_section(&mut s);
        s
    }

    fn header(&self, s: &mut String) {
        let m = self.machine;
        let _ = writeln!(
            s,
            "# s3migrate vs rclone vs the destination's PUT ceiling\n"
        );
        let _ = writeln!(
            s,
            "Run {} on {} core(s) ({}), {:.1} GiB RAM, Linux {}; whole run {:.1} min.\n",
            m.host.date,
            m.host.cores,
            m.host.cpu,
            m.mem_gib,
            m.host.kernel,
            self.total.as_secs_f64() / 60.0
        );
        let _ = writeln!(s, "- s3migrate: {}", m.s3migrate);
        let _ = writeln!(s, "- {}", m.rclone);
        let _ = writeln!(s, "- Garage: {}\n", m.garage.lines().next().unwrap_or("?"));
        let _ = writeln!(s, "How it was run:\n");
        let _ = writeln!(
            s,
            "- Source and destination are two single-node Garage stores (sqlite metadata) on \
             loopback. **The stores, the copier and this benchmark share the same {} core(s)**, \
             so every figure includes the stores' own CPU; the \"machine busy\" column is the \
             share of all cores in use during the run.",
            m.host.cores
        );
        let _ = writeln!(
            s,
            "- Each data set is written to the source once and every run copies that same \
             source. Every run writes into a **fresh destination store** (new Garage, empty \
             bucket): Garage deduplicates blocks by content hash, so a reused destination would \
             let later runs skip their disk writes. Object contents are pseudo-random and \
             unique per object for the same reason (and because Garage compresses)."
        );
        let _ = writeln!(
            s,
            "- **s3migrate runs with `--allow-overwrite`**: Garage ignores `If-None-Match`, so \
             s3migrate refuses to run without it; its no-lost-write protection is off in these \
             runs (it sends no conditional headers). It enumerates the source with `--src-list`."
        );
        let _ = writeln!(
            s,
            "- rclone is configured through `RCLONE_CONFIG_*` environment variables only \
             (`AWS_CA_BUNDLE` removed from its environment) and runs `rclone copy src:B dst:B`, \
             at its defaults and with `{}`.",
            crate::rclone::TUNED.join(" ")
        );
        let _ = writeln!(
            s,
            "- The ceiling is {} parallel plain PutObject calls of the same keys and bytes from \
             this process (aws-sdk-s3, checksums only when required) into a fresh destination: \
             the destination's raw write rate, with no reads from a source. Small objects are \
             built in memory before the clock starts; large ones are generated while they are \
             sent.",
            self.args.ceiling_concurrency
        );
        let _ = writeln!(
            s,
            "- Every run but rclone at its defaults is repeated in {} round(s), the tools \
             interleaved (round 1: ceiling, s3migrate settings, rclone tuned; then round 2, \
             ...). rclone at its defaults runs once (in round 1): it is by far the slowest. A \
             row shows its **fastest round**, the least disturbed one (the machine is shared); \
             its peak RSS is the highest of its rounds, and every round must pass the checks. \
             \"rounds\" lists every round's wall time. The best s3migrate setting is picked \
             from these rows.",
            self.args.repeat.max(1)
        );
        let _ = writeln!(
            s,
            "- Times are wall clock of the whole tool process (start-up, listing, copying). \
             objects/s and MB/s (10^6 bytes) are over that time. Peak RSS and the tool's CPU \
             seconds come from GNU time (`%M`, `%U + %S`); the ceiling's CPU is this \
             process's. \"CPU s stores\" is both Garage processes; \"CPU s other\" is \
             everything else the machine spent meanwhile: the kernel (loopback networking, \
             disk) and other processes (this machine is shared: other people's builds and \
             tests run on it), so a large figure there marks a disturbed \
             run. After every \
             run the destination is listed and must hold every object with every byte, and the \
             tool must exit 0, or the run is marked INVALID and left out of ratios and goals."
        );
        let _ = writeln!(
            s,
            "- Nothing here asserts on time: goals are reported, not enforced.\n"
        );
    }

    fn set_section(&self, s: &mut String, set: &SetResult) {
        let d = &set.set;
        let layout = match d.source_part {
            Some(p) => format!("multipart uploads of {} parts", size_text(p)),
            None => "plain PutObject".to_owned(),
        };
        let _ = writeln!(
            s,
            "## {}: {} × {} ({:.1} MB)\n",
            d.name,
            thousands(d.count),
            size_text(d.size),
            d.total_bytes() as f64 / 1e6
        );
        let _ = writeln!(
            s,
            "Source written with {layout} in {:.1}s.\n",
            set.fill.as_secs_f64()
        );
        let best = best_s3migrate(set);
        let _ = writeln!(
            s,
            "| run | settings | wall s | objects/s | MB/s | peak RSS MiB | CPU s tool | CPU s stores | CPU s other | machine busy | rounds, wall s | check |"
        );
        let _ = writeln!(
            s,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
        );
        for r in &set.rows {
            let chosen = best.is_some_and(|b| std::ptr::eq(b, r)) && self.s3migrate_runs(set) > 1;
            let _ = writeln!(
                s,
                "| {}{} | `{}` | {:.1} | {:.0} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
                r.tool.name(),
                if chosen { " (best)" } else { "" },
                r.label,
                r.secs(),
                r.objects_per_sec(),
                r.mb_per_sec(),
                opt(r.rss_mib(), |v| format!("{v:.0}")),
                opt(r.cpu_secs, |v| format!("{v:.1}")),
                opt(r.cpu.stores_secs, |v| format!("{v:.1}")),
                opt(r.cpu.other_secs, |v| format!("{v:.1}")),
                opt(r.cpu.machine_busy, |v| format!("{:.0}%", v * 100.0)),
                r.rounds
                    .iter()
                    .map(|w| format!("{w:.1}"))
                    .collect::<Vec<_>>()
                    .join(" / "),
                r.problem
                    .as_deref()
                    .map_or_else(|| "ok".to_owned(), |p| format!("INVALID: {p}"))
            );
        }
        let _ = writeln!(s);
        if let Some(b) = best {
            let _ = writeln!(
                s,
                "s3migrate figures below use its best setting, `{}`.\n",
                b.label
            );
        }
        let ceiling = valid_row(set, Tool::Ceiling);
        let rd = valid_row(set, Tool::RcloneDefault);
        let rt = valid_row(set, Tool::RcloneTuned);
        let _ = writeln!(s, "| ratio (objects/s) | value |");
        let _ = writeln!(s, "|---|---:|");
        let x = |v: Option<f64>| opt(v, |v| format!("{v:.2}×"));
        let pct = |v: Option<f64>| opt(v, |v| format!("{:.0}%", v * 100.0));
        let _ = writeln!(s, "| s3migrate / rclone default | {} |", x(ratio(best, rd)));
        let _ = writeln!(s, "| s3migrate / rclone tuned | {} |", x(ratio(best, rt)));
        let _ = writeln!(s, "| s3migrate / ceiling | {} |", pct(ratio(best, ceiling)));
        let _ = writeln!(
            s,
            "| s3migrate / null copier | {} |",
            pct(ratio(best, best_of(set, Tool::NullCopier)))
        );
        if let Some(j) = best_of(set, Tool::S3migrateJournal) {
            let _ = writeln!(
                s,
                "| s3migrate `{} --delete-journal` / null copier | {} |",
                j.label,
                pct(ratio(Some(j), best_of(set, Tool::NullCopier)))
            );
        }
        let _ = writeln!(
            s,
            "| rclone default / ceiling | {} |",
            pct(ratio(rd, ceiling))
        );
        let _ = writeln!(
            s,
            "| rclone tuned / ceiling | {} |",
            pct(ratio(rt, ceiling))
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Per object copied: CPU milliseconds of the tool and of the stores, and S3 \
             requests (Garage's counters; counts under 0.1 per object are shown as totals):\n"
        );
        let _ = writeln!(
            s,
            "| run | settings | tool CPU ms | stores CPU ms | requests |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---|");
        for r in &set.rows {
            let per = |v: Option<f64>| {
                opt(v, |v| {
                    format!("{:.2}", v * 1000.0 / r.objects.max(1) as f64)
                })
            };
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | {} | {} |",
                r.tool.name(),
                r.label,
                per(r.cpu_secs),
                per(r.cpu.stores_secs),
                r.requests
            );
        }
        let _ = writeln!(s);
        for r in set.rows.iter().filter(|r| !r.note.is_empty()) {
            let _ = writeln!(s, "- {} `{}`: {}", r.tool.name(), r.label, r.note);
        }
        let _ = writeln!(s);
    }

    fn s3migrate_runs(&self, set: &SetResult) -> usize {
        set.rows
            .iter()
            .filter(|r| r.tool == Tool::S3migrate)
            .count()
    }

    fn keys_section(&self, s: &mut String, runs: &[KeysRss]) {
        let counts: Vec<String> = runs.iter().map(|k| thousands(k.keys)).collect();
        let _ = writeln!(
            s,
            "## s3migrate peak RSS with {} keys\n",
            counts.join(" and ")
        );
        let _ = writeln!(
            s,
            "A key list of each size (`--src-folder`, written with `KeyListWriter`), run with \
             **`--dry-run`** and `--threads {}` against an empty destination, one size after \
             the other on the same two stores: s3migrate reads and checks the whole list, lists \
             the destination, and takes every key through the pipeline to its decision \
             (\"would copy\") and its logs, but copies nothing. So this measures the memory \
             that grows with the key count, not the memory of transfers in flight (that is in \
             the copy runs above).\n",
            runs.first().map_or(0, |k| k.threads)
        );
        let _ = writeln!(
            s,
            "| keys | wall s | keys/s | peak RSS MiB | CPU s | load avg before → after | check |"
        );
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---|---|");
        for k in runs {
            let r = &k.row;
            let _ = writeln!(
                s,
                "| {} | {:.1} | {:.0} | {} | {} | {} → {} | {} |",
                thousands(k.keys),
                r.secs(),
                r.objects_per_sec(),
                opt(r.rss_mib(), |v| format!("{v:.1}")),
                opt(r.cpu_secs, |v| format!("{v:.1}")),
                k.load_before,
                k.load_after,
                r.problem
                    .as_deref()
                    .map_or_else(|| "ok".to_owned(), |p| format!("INVALID: {p}"))
            );
        }
        let _ = writeln!(s);
        for k in runs.iter().filter(|k| !k.row.note.is_empty()) {
            let _ = writeln!(s, "- {} keys: {}", thousands(k.keys), k.row.note);
        }
        let _ = writeln!(s);
    }

    fn goals(&self) -> Vec<Goal> {
        let mut goals = Vec::new();
        for set in self.sets {
            let best = best_s3migrate(set);
            let ceiling = valid_row(set, Tool::Ceiling);
            let rd = valid_row(set, Tool::RcloneDefault);
            let rt = valid_row(set, Tool::RcloneTuned);
            let n = set.set.name;
            if set.set.size < MIB {
                goals.push(Goal::ratio(
                    &format!("{n}: s3migrate vs rclone default (objects/s)"),
                    2.0,
                    ratio(best, rd),
                    false,
                ));
                goals.push(Goal::ratio(
                    &format!("{n}: s3migrate vs rclone tuned (objects/s)"),
                    1.2,
                    ratio(best, rt),
                    false,
                ));
            } else {
                goals.push(Goal::ratio(
                    &format!("{n}: s3migrate no slower than rclone tuned"),
                    1.0,
                    ratio(best, rt),
                    false,
                ));
            }
            // The floor a copier can reach on these shared cores: objects/s
            // on small objects, MB/s on large (the same ratio: same data).
            goals.push(Goal::ratio(
                &format!("{n}: s3migrate share of the null copier"),
                if set.set.size < MIB { 0.95 } else { 0.98 },
                ratio(best, best_of(set, Tool::NullCopier)),
                true,
            ));
            goals.push(Goal::ratio(
                &format!("{n}: s3migrate share of the ceiling"),
                0.9,
                ratio(best, ceiling),
                true,
            ));
        }
        let mut rss: Vec<(String, f64)> = Vec::new();
        for set in self.sets {
            for r in set.rows.iter().filter(|r| r.tool == Tool::S3migrate) {
                if let Some(m) = r.rss_mib() {
                    rss.push((format!("{} `{}`", set.set.name, r.label), m));
                }
            }
        }
        for k in self.keys {
            if let Some(m) = k.row.rss_mib() {
                rss.push((format!("{} keys dry run", thousands(k.keys)), m));
            }
        }
        let max = rss.iter().map(|(_, m)| *m).reduce(f64::max);
        goals.push(Goal {
            what: "s3migrate peak RSS, any key count (max over its runs)".into(),
            target: "< 256 MiB".into(),
            measured: opt(max, |m| {
                let each: Vec<String> = rss.iter().map(|(w, v)| format!("{w}: {v:.0}")).collect();
                format!("{m:.0} MiB ({})", each.join("; "))
            }),
            met: max.map(|m| m < 256.0),
        });
        if let Some(g) = flat_goal(self.keys) {
            goals.push(g);
        }
        goals
    }

    fn goals_section(&self, s: &mut String) {
        let _ = writeln!(s, "## Goals\n");
        let _ = writeln!(s, "| goal | target | measured | result |");
        let _ = writeln!(s, "|---|---|---|---|");
        for g in self.goals() {
            let result = match g.met {
                Some(true) => "pass",
                Some(false) => "**miss**",
                None => "n/a (not run or invalid)",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                g.what, g.target, g.measured, result
            );
        }
        let _ = writeln!(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuUse;

    fn run(keys: u64, rss_mib: u64, problem: Option<&str>) -> KeysRss {
        KeysRss {
            keys,
            threads: 32,
            row: Row {
                tool: Tool::S3migrate,
                label: String::new(),
                wall: Duration::from_secs(1),
                objects: keys,
                bytes: 0,
                max_rss_kib: Some(rss_mib * 1024),
                cpu_secs: None,
                cpu: CpuUse::default(),
                problem: problem.map(str::to_owned),
                requests: String::new(),
                note: String::new(),
                threads: Some(32),
                rounds: Vec::new(),
            },
            load_before: String::new(),
            load_after: String::new(),
        }
    }

    #[test]
    fn flat_needs_two_sizes() {
        assert!(flat_goal(&[]).is_none());
        assert!(flat_goal(&[run(1_000_000, 14, None)]).is_none());
    }

    #[test]
    fn flat_allows_the_larger_of_ten_percent_and_four_mib() {
        let met = |a, b| {
            flat_goal(&[run(1_000_000, a, None), run(10_000_000, b, None)])
                .unwrap()
                .met
        };
        assert_eq!(met(14, 18), Some(true), "+4 MiB on a small figure");
        assert_eq!(met(14, 19), Some(false));
        assert_eq!(met(100, 110), Some(true), "+10% on a large one");
        assert_eq!(met(100, 111), Some(false));
        assert_eq!(met(20, 15), Some(true), "less is flat too");
    }

    #[test]
    fn an_invalid_run_decides_nothing() {
        let g = flat_goal(&[
            run(1_000_000, 14, None),
            run(10_000_000, 14, Some("exited with 1")),
        ])
        .unwrap();
        assert_eq!(g.met, None);
    }
}
