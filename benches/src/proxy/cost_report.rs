//! Cost mode's tables and goals (see `cost.rs`): each path's figures per
//! request kind, then ferry-proxy's over each floor, as the median of the
//! differences within a round.

use std::fmt::Write as _;

use crate::case::case_title;
use crate::clients::Body;
use crate::cost::{self, CostRow, FunctionCost, PROXY, PathCost, Sample};
use crate::floor::{FLOOR_NAME, SIGV4_FLOOR_NAME};
use crate::report::{FERRY_OWN_CPU_US, FERRY_REST_CPU_US, Goal};
use crate::stats::{spread, spread_text};

/// What ferry-proxy may spend per request over each floor, µs.
const OVER: [(&str, f64); 2] = [
    (FLOOR_NAME, FERRY_OWN_CPU_US),
    (SIGV4_FLOOR_NAME, FERRY_REST_CPU_US),
];

fn each(p: &PathCost, f: impl Fn(&Sample) -> Option<f64>) -> Vec<f64> {
    p.samples.iter().filter_map(f).collect()
}

/// `proxy − floor` of `f`, round by round.
fn differences(proxy: &PathCost, floor: &PathCost, f: impl Fn(&Sample) -> Option<f64>) -> Vec<f64> {
    proxy
        .samples
        .iter()
        .zip(&floor.samples)
        .filter_map(|(p, b)| Some(f(p)? - f(b)?))
        .collect()
}

fn median_of(v: Vec<f64>) -> Option<f64> {
    spread(v).map(|(m, _, _)| m)
}

pub fn section(s: &mut String, rows: &[CostRow], size: u64, callgrind: bool, together: bool) {
    let rounds = rows
        .first()
        .and_then(|r| r.paths.first())
        .map_or(0, |p| p.samples.len());
    let how = if together {
        "through the three paths at the same time, each with its own clients and \
         requests in flight, their CPU read over the same seconds"
    } else {
        "through the three paths back to back, the first path moving one place each round"
    };
    let samples = rows.iter().flat_map(|r| &r.paths).flat_map(|p| &p.samples);
    let (all, in_ticks) = samples.fold((0, 0), |(n, t), x| (n + 1, t + usize::from(!x.exact_cpu)));
    let cache_sim = cost::cache_sim(rows.iter().flat_map(|r| &r.paths));
    let cpu = if callgrind {
        let lines = if cache_sim {
            " With its cache simulation, the lines of instructions and of data read \
             that missed the first-level caches (64-byte lines, 32 KiB each), per request."
        } else {
            ""
        };
        format!(
            " The three ran under valgrind's callgrind: the instructions are each \
             process's own per request (its background work included); CPU times under \
             valgrind are valgrind's, so none is reported.{lines}"
        )
    } else {
        format!(
            " CPU: each process's threads' run time from /proc/PID/task/*/schedstat \
             (nanoseconds), split into user and system as its /proc/PID/stat ticks split it; \
             {in_ticks} of {all} runs read in 10 ms ticks alone (a thread started or ended \
             during the run)."
        )
    };
    let _ = writeln!(
        s,
        "Each round runs each request kind {how}; {rounds} rounds. Figures are the \
         median over the rounds (least–most).{cpu}\n"
    );
    if callgrind && cache_sim {
        let _ = writeln!(
            s,
            "| request | path | requests | errors | instructions/req | instruction lines missed/req | data lines read missed/req |"
        );
        let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|");
    } else if callgrind {
        let _ = writeln!(
            s,
            "| request | path | requests | errors | instructions/req |"
        );
        let _ = writeln!(s, "|---|---|--:|--:|--:|");
    } else {
        let _ = writeln!(
            s,
            "| request | path | requests | errors | CPU µs/req | user · system µs/req |"
        );
        let _ = writeln!(s, "|---|---|--:|--:|--:|--:|");
    }
    for r in rows {
        let title = case_title(size, r.op, Body::Plain, "");
        for p in &r.paths {
            let requests: u64 = p.samples.iter().map(|x| x.requests).sum();
            let errors: u64 = p.samples.iter().map(|x| x.errors).sum();
            let figures = if callgrind && cache_sim {
                format!(
                    "{} | {} | {}",
                    spread_text(&each(p, Sample::instructions), false, 0),
                    spread_text(&each(p, Sample::i1_misses), false, 0),
                    spread_text(&each(p, Sample::d1_read_misses), false, 0),
                )
            } else if callgrind {
                spread_text(&each(p, Sample::instructions), false, 0)
            } else {
                format!(
                    "{} | {:.0} · {:.0}",
                    spread_text(&each(p, Sample::cpu_us), false, 0),
                    median_of(each(p, Sample::user_us)).unwrap_or(f64::NAN),
                    median_of(each(p, Sample::system_us)).unwrap_or(f64::NAN),
                )
            };
            let _ = writeln!(
                s,
                "| {title} | {} | {requests} | {errors} | {figures} |",
                p.name
            );
        }
    }
    s.push('\n');
    let unit = if callgrind {
        "instructions/req"
    } else {
        "CPU µs/req"
    };
    let _ = writeln!(
        s,
        "| request | ferry-proxy over | {unit}: median of the round differences (least to most) | over, median |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|");
    for r in rows {
        let Some(proxy) = r.path(PROXY) else { continue };
        for (name, _) in OVER {
            let Some(floor) = r.path(name) else { continue };
            let f = if callgrind {
                Sample::instructions
            } else {
                Sample::cpu_us
            };
            let ratio = median_of(each(proxy, f))
                .zip(median_of(each(floor, f)))
                .filter(|(_, b)| *b > 0.0)
                .map_or("—".into(), |(p, b)| {
                    format!("{:+.1}%", (p / b - 1.0) * 100.0)
                });
            let _ = writeln!(
                s,
                "| {} | {name} | {} | {ratio} |",
                case_title(size, r.op, Body::Plain, ""),
                spread_text(&differences(proxy, floor, f), true, 0),
            );
        }
    }
    s.push('\n');
    if callgrind {
        functions(s, rows, size, cache_sim);
    }
}

/// Functions listed per request kind in [`functions`]: with the most more
/// in ferry-proxy, and in the floor.
const FUNCTIONS_SHOWN: usize = 15;
const FLOOR_FUNCTIONS_SHOWN: usize = 5;

/// Where ferry-proxy's cost over the sigv4 floor lies, function by
/// function (the table's own text says how to read it).
fn functions(s: &mut String, rows: &[CostRow], size: u64, cache_sim: bool) {
    let what = if cache_sim {
        "instruction lines missed in the first-level cache"
    } else {
        "instructions"
    };
    let _ = writeln!(
        s,
        "Where ferry-proxy's extra {what} per request are, against {SIGV4_FLOOR_NAME}: \
         each function's own, without its callees, summed over the rounds; the \
         {FUNCTIONS_SHOWN} largest differences of each request kind, then the \
         {FLOOR_FUNCTIONS_SHOWN} with the most more in the floor (a function the compiler \
         inlined into another in one build and not in the other shows on both lists).\n"
    );
    let _ = writeln!(
        s,
        "| request | function | ferry-proxy | {SIGV4_FLOOR_NAME} | difference |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|");
    for r in rows {
        let title = case_title(size, r.op, Body::Plain, "");
        let all: f64 = r.functions.iter().map(FunctionCost::difference).sum();
        let more = r.functions.iter().filter(|f| f.difference() > 0.5).count();
        let _ = writeln!(
            s,
            "| {title} | all functions ({more} with more in ferry-proxy) | {:.0} | {:.0} | {all:+.0} |",
            r.functions.iter().map(|f| f.proxy).sum::<f64>(),
            r.functions.iter().map(|f| f.floor).sum::<f64>(),
        );
        // Then the few with the most more in the floor: mostly the same
        // code, inlined elsewhere there.
        let least: Vec<&FunctionCost> = r
            .functions
            .iter()
            .rev()
            .take(FLOOR_FUNCTIONS_SHOWN)
            .filter(|f| f.difference() < -0.5)
            .collect();
        let shown = r.functions.iter().take(FUNCTIONS_SHOWN);
        for f in shown.chain(least.into_iter().rev()) {
            let _ = writeln!(
                s,
                "| {title} | `{}` | {:.1} | {:.1} | {:+.1} |",
                f.name.replace('|', "\\|").replace('`', "'"),
                f.proxy,
                f.floor,
                f.difference()
            );
        }
    }
    s.push('\n');
}

/// The goals of ferry-proxy's CPU over each floor, on the median of the
/// round differences. None under callgrind, whose CPU times are valgrind's.
pub fn goals(rows: &[CostRow], size: u64, callgrind: bool, goals: &mut Vec<Goal>) {
    if callgrind {
        return;
    }
    for r in rows {
        let Some(proxy) = r.path(PROXY) else { continue };
        for (name, limit) in OVER {
            let Some(floor) = r.path(name) else { continue };
            let d = median_of(differences(proxy, floor, Sample::cpu_us));
            goals.push(Goal {
                what: format!(
                    "cost, {}: the proxy's CPU per request over {name}'s, median of {} paired rounds",
                    case_title(size, r.op, Body::Plain, ""),
                    proxy.samples.len()
                ),
                target: format!("≤ + {limit:.0} µs"),
                measured: d.map_or("—".into(), |d| format!("{d:+.0} µs")),
                met: d.map(|d| d <= limit),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(cpu_us: &[f64]) -> PathCost {
        PathCost {
            name: "p",
            samples: cpu_us
                .iter()
                .map(|&us| Sample {
                    requests: 1000,
                    errors: 0,
                    user_secs: us * 1000.0 / 1e6,
                    system_secs: 0.0,
                    exact_cpu: true,
                    counts: None,
                })
                .collect(),
        }
    }

    #[test]
    fn cache_lines_are_shown_when_the_dumps_counted_them() {
        use crate::callgrind::Counts;
        let mut p = path(&[100.0]);
        assert!(!cost::cache_sim([&p]));
        let plain = Counts {
            instructions: 1000,
            i1_misses: None,
            d1_read_misses: None,
        };
        p.samples[0].counts = Some(plain);
        assert!(!cost::cache_sim([&p]), "instructions alone");
        p.samples[0].counts = Some(Counts {
            i1_misses: Some(30),
            ..plain
        });
        assert!(cost::cache_sim([&p]));
    }

    #[test]
    fn differences_pair_the_rounds() {
        // The floor drifts from round to round; the proxy stays 10 above.
        let floor = path(&[100.0, 140.0, 90.0]);
        let proxy = path(&[110.0, 150.0, 100.0]);
        let d = differences(&proxy, &floor, Sample::cpu_us);
        assert_eq!(d.len(), 3);
        assert!(d.iter().all(|v| (v - 10.0).abs() < 1e-6), "{d:?}");
    }
}
