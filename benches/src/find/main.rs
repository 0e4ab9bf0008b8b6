//! `bench-find`: `s3find DIR OUT` against the GNU pipeline
//! `find DIR -type f | LC_ALL=C sort | split -l 100000`, side by side in one
//! run on the same tree (by default 1,000 dirs × 1,000 empty files) on a
//! tmpfs this program mounts and unmounts. Each tool runs `--runs` times,
//! alternating. Reports wall seconds, files/s and peak RSS (GNU time `%M`).
//! Needs root (for the mount) and `/usr/bin/time`. See docs/benchmarks.md.
//!
//! The tmpfs gets an inode limit sized from the tree (a tmpfs allows one
//! inode per page of half the RAM by default: about 3 million here, too
//! few for 10 million files), and the run is refused up front when
//! MemAvailable cannot hold the tree's kernel memory (about 1 KiB a file)
//! and the outputs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use clap::Parser;
use ferry_benches::host::Host;

const CHUNK_KEYS: usize = 100_000;

#[derive(Parser)]
#[command(
    name = "bench-find",
    about = "s3find vs find | sort | split, on a tmpfs tree"
)]
struct Args {
    /// The s3find binary to measure.
    #[arg(long, env = "S3FIND_BIN")]
    s3find: PathBuf,
    /// Directories in the tree.
    #[arg(long, default_value_t = 1_000)]
    dirs: usize,
    /// Files in each directory.
    #[arg(long, default_value_t = 1_000)]
    files_per_dir: usize,
    /// Runs of each tool (alternating: s3find, GNU, s3find, GNU, ...).
    #[arg(long, default_value_t = 2)]
    runs: usize,
    /// tmpfs size, as given to `mount -o size=` (default: 2 GiB, or 256
    /// bytes a file if more: room for both tools' outputs at once).
    #[arg(long)]
    tmpfs_size: Option<String>,
    /// tmpfs inode limit, as given to `mount -o nr_inodes=` (default: the
    /// tree's files and directories plus 100,000 for the outputs).
    #[arg(long)]
    tmpfs_inodes: Option<u64>,
    /// Also write the Markdown report here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    ferry_benches::cli::exit("bench-find", run(Args::parse()))
}

/// A tmpfs mounted for the run; unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str, inodes: u64) -> anyhow::Result<Tmpfs> {
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},nr_inodes={inodes}"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .context("running mount")?;
        ensure!(
            status.success(),
            "mount -t tmpfs failed ({status}); are we root?"
        );
        Ok(Tmpfs {
            dir: dir.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        match Command::new("umount").arg(&self.dir).status() {
            Ok(s) if s.success() => {}
            other => eprintln!(
                "bench-find: umount {} failed ({other:?}); unmount it by hand",
                self.dir.display()
            ),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Tool {
    S3find,
    Gnu,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::S3find => "s3find",
            Tool::Gnu => "find | sort | split",
        }
    }
}

struct RunResult {
    tool: Tool,
    index: usize,
    wall_secs: f64,
    /// Peak RSS per process, KiB, as GNU time reports it.
    rss_kib: Vec<(&'static str, u64)>,
    chunks: usize,
    /// s3find's sort: runs spilled to disk (from its summary).
    runs_spilled: Option<u64>,
    load_before: String,
    load_after: String,
}

impl RunResult {
    /// The largest single process (what one would cap).
    fn rss_max_kib(&self) -> u64 {
        self.rss_kib.iter().map(|r| r.1).max().unwrap_or(0)
    }
    /// The sum over the pipeline's processes: an upper bound on the
    /// pipeline's joint peak, since they run at the same time.
    fn rss_sum_kib(&self) -> u64 {
        self.rss_kib.iter().map(|r| r.1).sum()
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.runs > 0, "--runs must be at least 1");
    ensure!(
        Path::new("/usr/bin/time").exists(),
        "/usr/bin/time (GNU time) is required"
    );
    let s3find = std::fs::canonicalize(&args.s3find)
        .with_context(|| format!("s3find binary {}", args.s3find.display()))?;
    let plan = Plan::new(&args);
    plan.check_memory()?;
    let tmp = tempfile::Builder::new().prefix("bench-find-").tempdir()?;
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt)?;
    let started = Instant::now();
    let load_start = loadavg();
    let report = {
        let _tmpfs = Tmpfs::mount(&mnt, &plan.size, plan.inodes)?;
        bench(&args, &plan, &s3find, &mnt)
    };
    let report = report?;
    print!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
    }
    eprintln!(
        "bench-find: done in {:.1}s (load average at start: {load_start})",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The tmpfs's size and inode limit, and what the run will take from RAM.
struct Plan {
    size: String,
    inodes: u64,
    /// Files in the tree.
    files: u64,
}

/// Kernel memory per file of a tmpfs tree of empty files (inode, dentry):
/// about 1 KiB; the run reports what it really was.
const KERNEL_BYTES_PER_FILE: u64 = 1024;
/// What the outputs and the check take per file, at most: both tools'
/// chunks on the tmpfs, and the check's copies of them in this process.
const OUTPUT_BYTES_PER_FILE: u64 = 256 + 128;
/// Left for everything else on the machine.
const HEADROOM_BYTES: u64 = 1 << 30;
const GIB: u64 = 1 << 30;

impl Plan {
    fn new(args: &Args) -> Plan {
        let files = (args.dirs * args.files_per_dir) as u64;
        let size = args
            .tmpfs_size
            .clone()
            .unwrap_or_else(|| format!("{}", (2 * GIB).max(files * 256)));
        let inodes = args
            .tmpfs_inodes
            .unwrap_or(files + args.dirs as u64 + 100_000);
        Plan {
            size,
            inodes,
            files,
        }
    }

    /// What the tree and the outputs need from RAM.
    fn need_bytes(&self) -> u64 {
        self.inodes * KERNEL_BYTES_PER_FILE + self.files * OUTPUT_BYTES_PER_FILE + HEADROOM_BYTES
    }

    /// Refuses a tree that MemAvailable cannot hold: a tmpfs cannot be
    /// swapped out here, and running the machine out of memory would kill
    /// other people's work, not just this run.
    fn check_memory(&self) -> anyhow::Result<()> {
        let avail = meminfo_kib("MemAvailable").context("reading MemAvailable")? * 1024;
        let need = self.need_bytes();
        ensure!(
            avail >= need,
            "a tree of {} files needs about {:.1} GiB of RAM ({} B of kernel memory per \
             inode for {} inodes, {} B per file for the outputs and the check, {:.0} GiB \
             headroom), but MemAvailable is {:.1} GiB: use fewer files",
            self.files,
            need as f64 / GIB as f64,
            KERNEL_BYTES_PER_FILE,
            self.inodes,
            OUTPUT_BYTES_PER_FILE,
            HEADROOM_BYTES as f64 / GIB as f64,
            avail as f64 / GIB as f64,
        );
        eprintln!(
            "bench-find: tmpfs size={} nr_inodes={}; about {:.1} GiB of RAM needed, {:.1} GiB available",
            self.size,
            self.inodes,
            need as f64 / GIB as f64,
            avail as f64 / GIB as f64
        );
        Ok(())
    }
}

/// A field of /proc/meminfo, KiB.
fn meminfo_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The kernel's memory that a tmpfs tree takes: slab (inodes, dentries)
/// and shmem (tmpfs pages), KiB.
fn kernel_kib() -> u64 {
    ["Slab", "Shmem"]
        .iter()
        .filter_map(|f| meminfo_kib(f))
        .sum()
}

fn bench(args: &Args, plan: &Plan, s3find: &Path, mnt: &Path) -> anyhow::Result<String> {
    let tree = mnt.join("tree");
    let total = args.dirs * args.files_per_dir;
    eprintln!(
        "bench-find: creating {} dirs × {} files in {}",
        args.dirs,
        args.files_per_dir,
        tree.display()
    );
    let t = Instant::now();
    let kernel_before = kernel_kib();
    generate(&tree, args.dirs, args.files_per_dir)?;
    let gen_secs = t.elapsed().as_secs_f64();
    // Other work on the machine moves these too: an estimate.
    let kernel_per_file =
        kernel_kib().saturating_sub(kernel_before) as f64 * 1024.0 / total.max(1) as f64;
    eprintln!(
        "bench-find: tree created in {gen_secs:.1}s; kernel memory (slab + shmem) grew by \
         {kernel_per_file:.0} B a file"
    );

    let mut results = Vec::new();
    let mut verified = false;
    for i in 1..=args.runs {
        for tool in [Tool::S3find, Tool::Gnu] {
            let out = mnt.join(format!("out-{}-{i}", tool_slug(tool)));
            std::fs::create_dir(&out)?;
            let r = match tool {
                Tool::S3find => run_s3find(s3find, &tree, &out, i)?,
                Tool::Gnu => run_gnu(&tree, &out, i)?,
            };
            eprintln!(
                "bench-find: run {i} {}: {:.2}s, {:.0} files/s, peak RSS {} KiB",
                tool.name(),
                r.wall_secs,
                total as f64 / r.wall_secs,
                r.rss_max_kib()
            );
            results.push(r);
        }
        if !verified {
            verify(
                &tree,
                &mnt.join(format!("out-s3find-{i}")),
                &mnt.join(format!("out-gnu-{i}")),
                total,
            )?;
            verified = true;
        }
        for tool in [Tool::S3find, Tool::Gnu] {
            std::fs::remove_dir_all(mnt.join(format!("out-{}-{i}", tool_slug(tool))))?;
        }
    }
    Ok(render(
        args,
        plan,
        total,
        gen_secs,
        kernel_per_file,
        &results,
    ))
}

fn tool_slug(tool: Tool) -> &'static str {
    match tool {
        Tool::S3find => "s3find",
        Tool::Gnu => "gnu",
    }
}

/// Creates `dirs` directories of `per_dir` empty files, on every core.
fn generate(tree: &Path, dirs: usize, per_dir: usize) -> anyhow::Result<()> {
    std::fs::create_dir(tree)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> anyhow::Result<()> {
                    let mut path = PathBuf::new();
                    for d in (t..dirs).step_by(threads) {
                        let dir = tree.join(format!("d{d:04}"));
                        std::fs::create_dir(&dir)?;
                        for f in 0..per_dir {
                            path.clone_from(&dir);
                            path.push(format!("f{:07}", d * per_dir + f));
                            std::fs::File::create(&path)
                                .with_context(|| format!("creating {}", path.display()))?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("generator panicked"))??;
        }
        Ok(())
    })
}

/// As /proc/loadavg writes them (two decimals), empty when unreadable.
fn loadavg() -> String {
    ferry_benches::procstat::loadavg()
        .map_or_else(String::new, |(a, b, c)| format!("{a:.2} {b:.2} {c:.2}"))
}

fn timed(prog: &str, rss_file: &Path) -> Command {
    let mut c = Command::new("/usr/bin/time");
    c.arg("-f").arg("%M").arg("-o").arg(rss_file).arg(prog);
    c
}

fn read_rss(file: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(file)?;
    // With a non-zero exit GNU time writes "Command exited ..." first.
    text.lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("no RSS in {}: {text:?}", file.display()))
}

fn count_chunks(out: &Path, prefix: &str) -> anyhow::Result<usize> {
    Ok(std::fs::read_dir(out)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .count())
}

fn run_s3find(s3find: &Path, tree: &Path, out: &Path, index: usize) -> anyhow::Result<RunResult> {
    let rss = out.with_extension("rss");
    let load_before = loadavg();
    let t = Instant::now();
    let status = timed(&s3find.to_string_lossy(), &rss)
        .arg(tree)
        .arg(out)
        .args(["--progress-interval-secs", "0", "--overwrite"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running s3find")?;
    let wall_secs = t.elapsed().as_secs_f64();
    let load_after = loadavg();
    ensure!(status.success(), "s3find failed: {status}");
    Ok(RunResult {
        tool: Tool::S3find,
        index,
        wall_secs,
        rss_kib: vec![("s3find", read_rss(&rss)?)],
        chunks: count_chunks(out, "chunk-")?,
        runs_spilled: runs_spilled(out),
        load_before,
        load_after,
    })
}

fn run_gnu(tree: &Path, out: &Path, index: usize) -> anyhow::Result<RunResult> {
    let rss: Vec<PathBuf> = ["find", "sort", "split"]
        .iter()
        .map(|p| out.with_extension(format!("{p}.rss")))
        .collect();
    let load_before = loadavg();
    let t = Instant::now();
    let mut find = timed("find", &rss[0])
        .arg(tree)
        .args(["-type", "f"])
        .stdout(Stdio::piped())
        .spawn()
        .context("spawning find")?;
    let mut sort = timed("sort", &rss[1])
        .env("LC_ALL", "C")
        .stdin(find.stdout.take().context("find stdout")?)
        .stdout(Stdio::piped())
        .spawn()
        .context("spawning sort")?;
    let mut split = timed("split", &rss[2])
        .args(["-l", &CHUNK_KEYS.to_string(), "-", "gnu-"])
        .current_dir(out)
        .stdin(sort.stdout.take().context("sort stdout")?)
        .spawn()
        .context("spawning split")?;
    let statuses = [find.wait()?, sort.wait()?, split.wait()?];
    let wall_secs = t.elapsed().as_secs_f64();
    let load_after = loadavg();
    for (name, s) in ["find", "sort", "split"].iter().zip(statuses) {
        ensure!(s.success(), "{name} failed: {s}");
    }
    Ok(RunResult {
        tool: Tool::Gnu,
        index,
        wall_secs,
        rss_kib: vec![
            ("find", read_rss(&rss[0])?),
            ("sort", read_rss(&rss[1])?),
            ("split", read_rss(&rss[2])?),
        ],
        chunks: count_chunks(out, "gnu-")?,
        runs_spilled: None,
        load_before,
        load_after,
    })
}

/// The sort runs s3find spilled, from its summary.
fn runs_spilled(out: &Path) -> Option<u64> {
    let text = std::fs::read(out.join("s3find-summary.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    v.pointer("/sort/runs_spilled")?.as_u64()
}

fn concat(out: &Path, prefix: &str) -> anyhow::Result<Vec<u8>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(out)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    names.sort();
    let mut all = Vec::new();
    for n in names {
        all.extend(std::fs::read(n)?);
    }
    Ok(all)
}

/// Both outputs list the same keys in the same order (GNU's with the
/// `TREE/` prefix that `find TREE` prints, which is stripped here).
fn verify(tree: &Path, s3: &Path, gnu: &Path, total: usize) -> anyhow::Result<()> {
    let s3_all = concat(s3, "chunk-")?;
    let gnu_all = concat(gnu, "gnu-")?;
    let prefix = format!("{}/", tree.display());
    let mut stripped = Vec::with_capacity(gnu_all.len());
    for line in gnu_all.split_inclusive(|&b| b == b'\n') {
        match line.strip_prefix(prefix.as_bytes()) {
            Some(rest) => stripped.extend_from_slice(rest),
            None => bail!(
                "GNU line without the tree prefix: {:?}",
                String::from_utf8_lossy(line)
            ),
        }
    }
    let lines = s3_all.iter().filter(|&&b| b == b'\n').count();
    ensure!(
        lines == total,
        "s3find listed {lines} keys, expected {total}"
    );
    ensure!(
        stripped == s3_all,
        "s3find's key list differs from find | sort | split"
    );
    eprintln!("bench-find: outputs verified: both list the same {total} keys in the same order");
    Ok(())
}

fn machine() -> String {
    let h = Host::describe();
    format!(
        "{}, {} cores ({}), Linux {}",
        h.date, h.cores, h.cpu, h.kernel
    )
}

fn version(prog: &str) -> String {
    Command::new(prog)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn render(
    args: &Args,
    plan: &Plan,
    total: usize,
    gen_secs: f64,
    kernel_per_file: f64,
    results: &[RunResult],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Machine: {}", machine());
    let _ = writeln!(
        s,
        "Tree: {} dirs × {} empty files = {total} files on tmpfs (size={}, nr_inodes={}), \
         created in {gen_secs:.1}s; kernel memory (slab + shmem) grew by about \
         {kernel_per_file:.0} B a file. Tools: {}, {}, `LC_ALL=C`.",
        args.dirs,
        args.files_per_dir,
        plan.size,
        plan.inodes,
        version("find"),
        version("sort"),
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| run | tool | wall s | files/s | peak RSS (MiB) | chunks | sort runs spilled | load avg before → after |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---|---:|---:|---|");
    for r in results {
        let rss = if r.rss_kib.len() == 1 {
            format!("{:.1}", mib(r.rss_kib[0].1))
        } else {
            let parts: Vec<String> = r
                .rss_kib
                .iter()
                .map(|(n, k)| format!("{n} {:.1}", mib(*k)))
                .collect();
            format!(
                "max {:.1}, sum {:.1} ({})",
                mib(r.rss_max_kib()),
                mib(r.rss_sum_kib()),
                parts.join(", ")
            )
        };
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {:.0} | {rss} | {} | {} | {} → {} |",
            r.index,
            r.tool.name().replace('|', "\\|"),
            r.wall_secs,
            total as f64 / r.wall_secs,
            r.chunks,
            r.runs_spilled
                .map_or_else(|| "—".to_owned(), |n| n.to_string()),
            r.load_before,
            r.load_after,
        );
    }
    let best = |tool: Tool| {
        results
            .iter()
            .filter(|r| r.tool == tool)
            .map(|r| r.wall_secs)
            .fold(f64::INFINITY, f64::min)
    };
    let worst = |tool: Tool| {
        results
            .iter()
            .filter(|r| r.tool == tool)
            .map(|r| r.wall_secs)
            .fold(0.0, f64::max)
    };
    let (s3_best, s3_worst, gnu_best, gnu_worst) = (
        best(Tool::S3find),
        worst(Tool::S3find),
        best(Tool::Gnu),
        worst(Tool::Gnu),
    );
    let s3_rss = results
        .iter()
        .filter(|r| r.tool == Tool::S3find)
        .map(RunResult::rss_max_kib)
        .max()
        .unwrap_or(0);
    let _ = writeln!(s);
    let faster = if s3_worst < gnu_best {
        "met: every s3find run beat every GNU run"
    } else if s3_best < gnu_best {
        "met on the best runs, but the runs overlap"
    } else {
        "missed"
    };
    let _ = writeln!(
        s,
        "Goal, faster than the GNU pipeline: {faster} (best {s3_best:.2}s vs {gnu_best:.2}s, {:.2}× ; \
         worst {s3_worst:.2}s vs {gnu_worst:.2}s).",
        gnu_best / s3_best
    );
    let spilled = results
        .iter()
        .filter_map(|r| r.runs_spilled)
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        s,
        "Goal, peak RSS ≤ 256 MiB: {} (s3find's peak RSS was at most {:.1} MiB; its sort \
         budget is `--memory-mb`, default 256 MiB; {}).",
        if s3_rss <= 256 * 1024 {
            "met"
        } else {
            "missed"
        },
        mib(s3_rss),
        if spilled == 0 {
            "this tree fit in it without spilling".to_owned()
        } else {
            format!("it spilled up to {spilled} sorted runs to disk")
        }
    );
    s
}
