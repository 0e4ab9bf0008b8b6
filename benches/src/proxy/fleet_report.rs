//! The markdown report of `--fleet`: the pause clients see while the
//! fleet switches a bucket's mode, and a fleet member against a proxy with
//! a state file.

use std::fmt::Write as _;

use ferry_benches::units::{KIB, size_text};

use crate::args::Args;
use crate::case::Case;
use crate::env::FLEET_BUCKET;
use crate::fleet::{ETCD_MEMBERS, FleetResult, LEASE_TTL_SECS, MEMBERS, Put, RETRY_AFTER};
use crate::report::{
    Machine, case_notes, client_stack_line, command_line, load_text, log_note, machine_lines,
    mode_heading, notes_section, opt, small_tables,
};
use crate::stats::Series;

pub struct FleetReport<'a> {
    pub machine: &'a Machine,
    pub etcd: String,
    pub args: &'a Args,
    pub command: String,
    pub result: &'a FleetResult,
    pub load_start: Option<(f64, f64, f64)>,
    pub load_end: Option<(f64, f64, f64)>,
    pub total_secs: f64,
}

fn ms(v: Option<f64>) -> String {
    opt(v, |v| format!("{v:.1}"))
}

/// The write stalls of `puts`, as a series (for its quantiles).
fn stalls<'p>(name: &str, puts: impl Iterator<Item = &'p Put>) -> (Series, u64) {
    let mut lat = Vec::new();
    let mut slowdowns = 0u64;
    for p in puts {
        lat.push(p.stall_us);
        slowdowns += u64::from(p.slowdowns);
    }
    (Series::of_latencies(name, lat), slowdowns)
}

impl FleetReport<'_> {
    pub fn render(&self) -> String {
        let mut s = String::new();
        let m = self.machine;
        let a = self.args;
        let _ = writeln!(s, "### bench-proxy --fleet, {}\n", m.host.date);
        machine_lines(
            &mut s,
            m,
            &format!(
                "a {ETCD_MEMBERS}-member etcd {}, {} ferry-proxy processes ({MEMBERS} in the \
                 fleet, 1 with a state file; Pingora, 2 worker threads each)",
                self.etcd.replace("etcd Version: ", ""),
                MEMBERS + 1
            ),
            "the proxies",
            (self.load_start, self.load_end),
        );
        let _ = writeln!(
            s,
            "- Fleet: {MEMBERS} proxies in front of the target, each a member with a \
             {LEASE_TTL_SECS} s lease reaching all {ETCD_MEMBERS} etcd members; `{FLEET_BUCKET}` \
             attached with `ferryctl --etcd` (all {ETCD_MEMBERS} members), its source the other \
             Garage."
        );
        let _ = writeln!(
            s,
            "- Client: aws-sdk-s3 in this process, path style, retries off (the writers retry \
             by hand), plain bodies with a signed SHA-256; each proxy's users-file client."
        );
        client_stack_line(&mut s, a);
        command_line(&mut s, &self.command, self.total_secs);
        self.transitions_section(&mut s);
        self.steady_section(&mut s);
        let mut notes = Vec::new();
        let t = &self.result.transitions;
        if let Some(e) = &t.first_error {
            notes.push(format!(
                "fenced changes: {} failed PUTs, the first: {e}",
                t.errors
            ));
        }
        case_notes(&self.result.steady, &mut notes);
        log_note(self.result.proxy_log_lines, &mut notes);
        if self.result.proxy_log_503_lines > 0 {
            notes.push(format!(
                "{} of those lines are the access log's 503 answers (the fences' SlowDowns, \
                 logged at warn)",
                self.result.proxy_log_503_lines
            ));
        }
        notes_section(&mut s, notes);
        s
    }

    fn transitions_section(&self, s: &mut String) {
        let a = self.args;
        let t = &self.result.transitions;
        let _ = writeln!(s, "#### Fenced mode changes under load\n");
        let wall = t.wall.as_secs_f64();
        let _ = writeln!(
            s,
            "Load average {} before, {} after; {wall:.0} s.\n",
            load_text(t.load_before),
            load_text(t.load_after),
        );
        let _ = writeln!(
            s,
            "{c} writers, each PUTting {size} objects to new keys through the {MEMBERS} proxies \
             in turn; a PUT answered 503 SlowDown is sent again {retry} ms later, until it \
             succeeds. Meanwhile {n} mode changes of the bucket (forward → ready → forward …), \
             each `ferryctl --etcd … s3 bucket migrate update --bucket {FLEET_BUCKET} --mode M \
             --json` run to its end, {gap} s apart, with {gap} s of writes before the first and \
             after the last. *Write stall*: from a PUT's first attempt to its success. *During \
             a change*: PUTs whose first attempt was sent while a `ferryctl update` ran.\n",
            c = a.concurrency,
            size = size_text(a.small_kib * KIB),
            retry = RETRY_AFTER.as_millis(),
            n = a.transitions,
            gap = a.transition_gap_secs,
        );
        let during = |p: &&Put| t.transitions.iter().any(|x| x.covers(p.first_sent));
        let rows = [
            stalls("all", t.puts.iter()),
            stalls("first sent during a change", t.puts.iter().filter(during)),
            stalls(
                "refused at least once (503 SlowDown)",
                t.puts.iter().filter(|p| p.slowdowns > 0),
            ),
        ];
        let _ = writeln!(
            s,
            "| PUTs | count | write stall p50 ms | p99 ms | max ms | SlowDowns |"
        );
        let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|");
        for (ser, slowdowns) in &rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {slowdowns} |",
                ser.path,
                ser.ok(),
                ms(ser.p50_ms()),
                ms(ser.p99_ms()),
                ms(ser.max_ms()),
            );
        }
        let _ = writeln!(
            s,
            "\n{} PUTs in {wall:.1} s ({:.0}/s), {} failed.\n",
            t.puts.len(),
            t.puts.len() as f64 / wall.max(1e-9),
            t.errors
        );
        let _ = writeln!(
            s,
            "| # | change | ferryctl ms | fenced after ms | PUTs first sent during it | their SlowDowns | their max stall ms |"
        );
        let _ = writeln!(s, "|--:|---|--:|--:|--:|--:|--:|");
        let mut from = "forward";
        for (i, x) in t.transitions.iter().enumerate() {
            let (ser, slowdowns) = stalls("", t.puts.iter().filter(|p| x.covers(p.first_sent)));
            let _ = writeln!(
                s,
                "| {} | {from} → {} | {:.0} | {} | {} | {slowdowns} | {} |",
                i + 1,
                x.to,
                x.secs() * 1000.0,
                opt(x.fenced_after_ms, |v| format!("{v:.0}")),
                ser.ok(),
                ms(ser.max_ms()),
            );
            from = x.to;
        }
        let updates = Series::of_latencies(
            "ferryctl",
            t.transitions
                .iter()
                .map(|x| (x.secs() * 1e6) as u64)
                .collect(),
        );
        let fenced = Series::of_latencies(
            "fenced",
            t.transitions
                .iter()
                .filter_map(|x| x.fenced_after_ms.map(|ms| (ms * 1000.0) as u64))
                .collect(),
        );
        let _ = writeln!(
            s,
            "\n`ferryctl update`: p50 {} ms, max {} ms (the whole process: start, connect to \
             etcd, fence, new mode in force). *Fenced after*: from its start to the answer's \
             `fenced_at` (every proxy had drained and acknowledged): p50 {} ms, max {} ms.\n",
            ms(updates.p50_ms()),
            ms(updates.max_ms()),
            ms(fenced.p50_ms()),
            ms(fenced.max_ms()),
        );
    }

    fn steady_section(&self, s: &mut String) {
        let a = self.args;
        let mr = &self.result.steady;
        mode_heading(
            s,
            "Steady state: a proxy with a state file vs a member of the fleet",
            mr,
        );
        let _ = writeln!(
            s,
            "Both proxies forward `{FLEET_BUCKET}` to the source (forward mode), in front of \
             the same target: *file* has `state_file`, *fleet* is a member of the fleet above \
             (its {} peers idle). GETs and HEADs read {keys} objects of {size} seeded on the \
             source; PUTs write new keys. {c} in flight, {secs} s per run, {r} round(s) per path \
             alternating (file, fleet, fleet, file, …), each after a warm-up on the same client. \
             CPU columns: the client · both proxies · the Garage stores, per request. The etcd \
             members used {etcd:.2} s of CPU during this section (in *others*).\n",
            MEMBERS - 1,
            keys = a.small_keys.max(1),
            size = size_text(a.small_kib * KIB),
            c = a.concurrency,
            secs = a.small_secs,
            r = a.rounds,
            etcd = self.result.etcd_cpu_secs,
        );
        let small: Vec<&Case> = mr.cases.iter().collect();
        small_tables(s, &small);
    }
}
