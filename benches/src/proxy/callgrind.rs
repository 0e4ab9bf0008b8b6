//! `--callgrind`: the proxies run under valgrind's callgrind, and a timed
//! run counts the instructions the process executed during it. This VM
//! has no hardware counters, and the CPU time of a request moves by 20-30
//! µs with what else the shared cores run; an instruction count does not
//! (the same program, requests and inputs give the same count whatever the
//! machine's load), so differences of a few µs between two proxies show.
//! With `--cache-sim` callgrind also simulates the first-level caches and
//! counts the lines each process fetched anew, per function.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Where the processes' counts are dumped.
pub struct Callgrind {
    dir: tempfile::TempDir,
    cache_sim: bool,
}

/// What callgrind counted in one process over one run.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub instructions: u64,
    /// With the cache simulation: instruction lines, and data lines read,
    /// that missed the first-level caches.
    pub i1_misses: Option<u64>,
    pub d1_read_misses: Option<u64>,
}

/// The event a function's cost is compared in: the instruction lines
/// missed with the cache simulation, else the instructions.
pub fn function_event(cache_sim: bool) -> &'static str {
    if cache_sim { "I1mr" } else { "Ir" }
}

impl Callgrind {
    /// Checks that valgrind and callgrind_control run.
    pub fn new(cache_sim: bool) -> anyhow::Result<Callgrind> {
        for tool in ["valgrind", "callgrind_control"] {
            let ok = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                bail!("--callgrind needs {tool} (Debian's valgrind package)");
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("ferry-bench-callgrind-")
            .tempdir()
            .context("create the callgrind dump dir")?;
        Ok(Callgrind { dir, cache_sim })
    }

    /// `bin` under callgrind, counting instructions (and with the cache
    /// simulation, first-level cache misses), its dumps in this run's dir
    /// named by its pid.
    pub fn command(&self, bin: &Path) -> Command {
        let mut cmd = Command::new("valgrind");
        cmd.arg("--tool=callgrind")
            .arg(format!(
                "--callgrind-out-file={}/%p.out",
                self.dir.path().display()
            ))
            .args(self.cache_sim.then_some("--cache-sim=yes"))
            .arg(bin);
        cmd
    }

    /// Sets `pid`'s counters to zero.
    pub fn zero(&self, pid: u32) -> anyhow::Result<()> {
        control(pid, "--zero")
    }

    /// What `pid` executed since its last [`Callgrind::zero`]. The dump, a
    /// profile of that window (`callgrind_annotate` reads it), is renamed
    /// `{name}.out`.
    pub fn dump(&self, pid: u32, name: &str) -> anyhow::Result<Counts> {
        control(pid, "--dump")?;
        let dump = self.newest_dump(pid)?;
        let text =
            std::fs::read_to_string(&dump).with_context(|| format!("read {}", dump.display()))?;
        let named = self.named(name);
        std::fs::rename(&dump, &named).with_context(|| format!("rename {}", dump.display()))?;
        counts(&text).with_context(|| format!("no events and totals lines in {}", named.display()))
    }

    /// Each function's own `event` in the dump named `name` (see
    /// [`self_costs`]).
    pub fn functions(&self, name: &str, event: &str) -> anyhow::Result<HashMap<String, u64>> {
        let path = self.named(name);
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        self_costs(&text, event)
            .with_context(|| format!("no {event} in the events of {}", path.display()))
    }

    fn named(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.out"))
    }

    /// Keeps the dumps (the dir is deleted on drop otherwise).
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }

    /// `PID.out.N` with the largest N: callgrind numbers each dump.
    fn newest_dump(&self, pid: u32) -> anyhow::Result<PathBuf> {
        let prefix = format!("{pid}.out.");
        let newest = std::fs::read_dir(self.dir.path())?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let n: u64 = name.strip_prefix(&prefix)?.parse().ok()?;
                Some((n, e.path()))
            })
            .max_by_key(|(n, _)| *n);
        newest
            .map(|(_, p)| p)
            .with_context(|| format!("callgrind wrote no dump for pid {pid}"))
    }
}

/// The columns of a dump's cost lines, from its `events:` line.
fn events(text: &str) -> Option<Vec<&str>> {
    let line = text.lines().find_map(|l| l.strip_prefix("events:"))?;
    Some(line.split_whitespace().collect())
}

/// The costs on one line, in the order of `events`; callgrind leaves out
/// trailing zeros.
fn costs(fields: &str) -> impl Iterator<Item = u64> + '_ {
    fields.split_whitespace().map(|v| v.parse().unwrap_or(0))
}

/// The whole run's counts, from the dump's `totals:` line.
fn counts(text: &str) -> Option<Counts> {
    let events = events(text)?;
    let totals: Vec<u64> = costs(text.lines().find_map(|l| l.strip_prefix("totals:"))?).collect();
    let get = |e: &str| {
        let i = events.iter().position(|x| *x == e)?;
        Some(totals.get(i).copied().unwrap_or(0))
    };
    Some(Counts {
        instructions: get("Ir")?,
        i1_misses: get("I1mr"),
        d1_read_misses: get("D1mr"),
    })
}

/// Each function's own cost of `event`, without its callees, by name (the
/// legacy symbol hash left off, so that two builds' names match). In the
/// dump a function's cost lines follow its `fn=` line, except the line
/// after each `calls=`, which is the call's inclusive cost and belongs to
/// the callee. Names are compressed: `fn=(id) name` the first time an id
/// appears in a `fn=` or `cfn=` line, `fn=(id)` after. `None`: no such
/// event.
pub fn self_costs(text: &str, event: &str) -> Option<HashMap<String, u64>> {
    let column = events(text)?.iter().position(|e| *e == event)?;
    let positions = text
        .lines()
        .find_map(|l| l.strip_prefix("positions:"))
        .map_or(1, |p| p.split_whitespace().count());
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut by_id: HashMap<&str, u64> = HashMap::new();
    let mut current = None;
    let mut after_call = false;
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix("fn=")
            .or_else(|| line.strip_prefix("cfn="))
        {
            let (id, name) = match rest.split_once(") ") {
                Some((id, name)) => (id, Some(name)),
                None => (rest.trim_end_matches(')'), None),
            };
            if let Some(name) = name {
                names.insert(id, name);
            }
            if line.starts_with("fn=") {
                current = Some(id);
            }
        } else if line.starts_with("calls=") {
            after_call = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '*')) {
            if std::mem::take(&mut after_call) {
                continue;
            }
            let Some(id) = current else { continue };
            let mut fields = line.splitn(positions + 1, ' ');
            let cost = fields
                .nth(positions)
                .map_or(0, |f| costs(f).nth(column).unwrap_or(0));
            *by_id.entry(id).or_default() += cost;
        }
    }
    let mut out: HashMap<String, u64> = HashMap::new();
    for (id, cost) in by_id {
        let name = names.get(id).copied().unwrap_or(id);
        *out.entry(without_hash(name).to_owned()).or_default() += cost;
    }
    Some(out)
}

/// `name` without the `::h0123456789abcdef` a legacy-mangled Rust symbol
/// ends with.
fn without_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    }
}

/// `callgrind_control OP PID`, which reaches the process through
/// valgrind's gdbserver.
fn control(pid: u32, op: &str) -> anyhow::Result<()> {
    let out = Command::new("callgrind_control")
        .args([op, &pid.to_string()])
        .output()
        .context("run callgrind_control")?;
    if !out.status.success() {
        bail!(
            "callgrind_control {op} {pid}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `bin`, under callgrind when `cg` is given.
pub fn command(bin: &Path, cg: Option<&Callgrind>) -> Command {
    cg.map_or_else(|| Command::new(bin), |c| c.command(bin))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape callgrind writes (`--compress-strings`, `--compress-pos`):
    /// `main` costs 10 + 3 of its own and calls `work`, whose 200 are
    /// inclusive; `work` costs 150 + 50, some of it on a line given as
    /// `+2`; the second `fn=(2)` names `work` by its id alone.
    const DUMP: &str = "\
version: 1
positions: line
events: Ir I1mr D1mr
summary: 213 9 4
fn=(1) main
10 10 2 1
cfn=(2) work::h0123456789abcdef
calls=1 20
11 200 6 3
12 3 1
fn=(2)
20 150 4 2
+2 50
totals: 213 9 4
";

    #[test]
    fn totals_are_read_by_event_name() {
        let c = counts(DUMP).unwrap();
        assert_eq!(
            (c.instructions, c.i1_misses, c.d1_read_misses),
            (213, Some(9), Some(4))
        );
        let plain = counts("events: Ir\ntotals: 77\n").unwrap();
        assert_eq!((plain.instructions, plain.i1_misses), (77, None));
    }

    #[test]
    fn a_function_costs_its_own_lines_and_not_its_callees() {
        let ir = self_costs(DUMP, "Ir").unwrap();
        assert_eq!(ir.get("main"), Some(&13));
        assert_eq!(ir.get("work"), Some(&200), "the hash is left off: {ir:?}");
        // A trailing zero is left out of a cost line.
        let i1 = self_costs(DUMP, "I1mr").unwrap();
        assert_eq!((i1.get("main"), i1.get("work")), (Some(&3), Some(&4)));
        assert!(self_costs(DUMP, "Bc").is_none());
    }
}
