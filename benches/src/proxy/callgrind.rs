//! `--callgrind`: the proxies run under valgrind's callgrind, and a timed
//! run counts the instructions the process executed during it. This VM
//! has no hardware counters, and the CPU time of a request moves by 20-30
//! µs with what else the shared cores run; an instruction count does not
//! (the same program, requests and inputs give the same count whatever the
//! machine's load), so differences of a few µs between two proxies show.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Where the processes' counts are dumped.
pub struct Callgrind {
    dir: tempfile::TempDir,
}

impl Callgrind {
    /// Checks that valgrind and callgrind_control run.
    pub fn new() -> anyhow::Result<Callgrind> {
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
        Ok(Callgrind { dir })
    }

    /// `bin` under callgrind, counting instructions only (no cache or
    /// branch simulation), its dumps in this run's dir named by its pid.
    pub fn command(&self, bin: &Path) -> Command {
        let mut cmd = Command::new("valgrind");
        cmd.arg("--tool=callgrind")
            .arg(format!(
                "--callgrind-out-file={}/%p.out",
                self.dir.path().display()
            ))
            .arg(bin);
        cmd
    }

    /// Sets `pid`'s counters to zero.
    pub fn zero(&self, pid: u32) -> anyhow::Result<()> {
        control(pid, "--zero")
    }

    /// The instructions `pid` executed since its last [`Callgrind::zero`].
    /// The dump, a profile of that window (`callgrind_annotate` reads it),
    /// is renamed `{name}.out`.
    pub fn dump(&self, pid: u32, name: &str) -> anyhow::Result<u64> {
        control(pid, "--dump")?;
        let dump = self.newest_dump(pid)?;
        let text =
            std::fs::read_to_string(&dump).with_context(|| format!("read {}", dump.display()))?;
        let named = self.dir.path().join(format!("{name}.out"));
        std::fs::rename(&dump, &named).with_context(|| format!("rename {}", dump.display()))?;
        text.lines()
            .find_map(|l| l.strip_prefix("totals:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no totals line in {}", named.display()))
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
