//! The runs: for each data set, fill a source once, then the ceiling,
//! s3migrate (each setting tried), rclone at its defaults and tuned, each
//! into a fresh destination store.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_benches::units::{KIB, MIB};
use ferry_control::keylist::KeyListWriter;
use ferry_harness::Store;
use futures::{StreamExt, TryStreamExt};

use crate::args::Args;
use crate::cpu::{self, CpuUse, CpuWatch};
use crate::data::{self, DataSet};
use crate::proc::Timed;
use crate::requests::{self, Counts};
use crate::row::{Row, Tool};
use crate::{rclone, s3migrate};

/// The bucket every copy reads, on the source store.
pub const SRC_BUCKET: &str = "bench-src";
/// The bucket every copy writes, on a fresh destination store.
pub const DEST_BUCKET: &str = "bench-dst";
/// The delete journal of the `--journal` rows, on the destination.
pub const JOURNAL_BUCKET: &str = "ferry-journal";
/// Pause before each measured run, so that store start-up and the previous
/// run's background work do not land in it.
const SETTLE: Duration = Duration::from_secs(3);

pub struct SetResult {
    pub set: DataSet,
    /// Filling the source (in-process PUTs), for reference.
    pub fill: Duration,
    pub rows: Vec<Row>,
}

pub struct KeysRss {
    pub keys: u64,
    pub threads: usize,
    pub row: Row,
    /// The 1, 5 and 15 minute load averages before and after the run.
    pub load_before: String,
    pub load_after: String,
}

pub struct Bench {
    pub args: Args,
    pub s3migrate: PathBuf,
    rt: tokio::runtime::Runtime,
    work: PathBuf,
    /// Deletes the work dir on drop, unless `--keep-work`.
    _work_guard: Option<tempfile::TempDir>,
}

/// As /proc/loadavg writes them (two decimals), empty when unreadable.
fn loadavg() -> String {
    ferry_benches::procstat::loadavg()
        .map_or_else(String::new, |(a, b, c)| format!("{a:.2} {b:.2} {c:.2}"))
}

fn say(msg: impl AsRef<str>) {
    eprintln!("bench-migrate: {}", msg.as_ref());
}

impl Bench {
    pub fn new(args: Args) -> anyhow::Result<Bench> {
        let s3migrate = ferry_harness::find_program(args.s3migrate.as_deref(), "s3migrate")?;
        anyhow::ensure!(
            args.rclone.is_file(),
            "rclone not found at {} (apt-get install rclone, or pass --rclone)",
            args.rclone.display()
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let dir = tempfile::Builder::new().prefix("ferry-bench-").tempdir()?;
        let (work, guard) = if args.keep_work {
            (dir.keep(), None)
        } else {
            (dir.path().to_owned(), Some(dir))
        };
        Ok(Bench {
            args,
            s3migrate,
            rt,
            work,
            _work_guard: guard,
        })
    }

    fn work(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    pub fn small_set(&self) -> DataSet {
        DataSet {
            name: "small",
            prefix: "small",
            count: self.args.small,
            size: self.args.small_kib * KIB,
            source_part: None,
        }
    }

    pub fn large_set(&self) -> DataSet {
        DataSet {
            name: "large",
            prefix: "large",
            count: self.args.large,
            size: self.args.large_mib * MIB,
            source_part: (self.args.large_part_mib > 0).then(|| self.args.large_part_mib * MIB),
        }
    }

    /// A running Garage with one empty bucket.
    fn store_with_bucket(&self, bucket: &str) -> anyhow::Result<Store> {
        let store = Store::garage().context("start Garage")?;
        store.create_bucket(bucket)?;
        Ok(store)
    }

    pub fn run_set(&self, set: &DataSet) -> anyhow::Result<SetResult> {
        say(format!(
            "{}: filling the source with {} × {} bytes",
            set.name, set.count, set.size
        ));
        let src = self.store_with_bucket(SRC_BUCKET)?;
        let client = src.client();
        let started = Instant::now();
        self.rt.block_on(data::fill(&client, SRC_BUCKET, set))?;
        let fill = started.elapsed();
        let (n, bytes) = self.rt.block_on(data::census(&client, SRC_BUCKET))?;
        anyhow::ensure!(
            n == set.count && bytes == set.total_bytes(),
            "source holds {n} objects / {bytes} bytes after the fill, not {} / {}",
            set.count,
            set.total_bytes()
        );
        say(format!(
            "{}: source filled in {:.1}s",
            set.name,
            fill.as_secs_f64()
        ));

        let variants: Vec<(usize, Option<usize>)> = if set.size >= MIB {
            self.args
                .part_threads
                .iter()
                .map(|&p| (self.args.large_threads, Some(p)))
                .collect()
        } else {
            self.args.small_threads.iter().map(|&t| (t, None)).collect()
        };
        // Rounds interleave the tools, so that a burst of other load on the
        // machine lands on one round of several tools rather than on every
        // round of one tool.
        let mut runs: Vec<Vec<Row>> = Vec::new();
        let mut record = |row: Row| match runs
            .iter_mut()
            .find(|v| v[0].tool == row.tool && v[0].label == row.label)
        {
            Some(v) => v.push(row),
            None => runs.push(vec![row]),
        };
        let rounds = self.args.repeat.max(1);
        for round in 1..=rounds {
            say(format!("{}: round {round} of {rounds}", set.name));
            record(self.ceiling(set)?);
            for &(threads, part_threads) in &variants {
                record(self.null_copy(set, &src, threads)?);
                record(self.s3migrate_copy(set, &src, threads, part_threads, false)?);
                if self.args.journal {
                    record(self.s3migrate_copy(set, &src, threads, part_threads, true)?);
                }
            }
            if round == 1 && !self.args.skip_rclone_default {
                record(self.rclone_copy(set, &src, Tool::RcloneDefault)?);
            }
            record(self.rclone_copy(set, &src, Tool::RcloneTuned)?);
        }
        let rows = runs.into_iter().filter_map(Row::fastest_of).collect();
        Ok(SetResult {
            set: set.clone(),
            fill,
            rows,
        })
    }

    /// Parallel plain PutObject of the same objects into a fresh store.
    fn ceiling(&self, set: &DataSet) -> anyhow::Result<Row> {
        let conc = self.args.ceiling_concurrency.max(1);
        say(format!("{}: ceiling ({conc} parallel PutObject)", set.name));
        let dest = self.store_with_bucket(DEST_BUCKET)?;
        let client = dest.client();
        // Small objects are made before the clock starts; large ones are
        // generated as they are sent, so memory stays bounded.
        let small = set.size < MIB;
        let objects: Vec<_> = if small {
            (0..set.count).map(|i| (set.key(i), set.bytes(i))).collect()
        } else {
            Vec::new()
        };
        std::thread::sleep(SETTLE);
        let run = self.in_process(&[&dest], async {
            if small {
                ferry_harness::put_objects(&client, DEST_BUCKET, objects, conc).await
            } else {
                futures::stream::iter(0..set.count)
                    .map(|i| data::put_streamed(&client, DEST_BUCKET, set, i))
                    .buffer_unordered(conc)
                    .try_collect::<()>()
                    .await
            }
        })?;
        let requests = format!(
            "dst: {}",
            requests::per_object(&Counts::new(), &requests::snapshot(&dest), set.count)
        );
        let problem = self.check_dest(&dest, set, None)?;
        Ok(run.row(
            Tool::Ceiling,
            format!("{conc} × PutObject, in-process"),
            set,
            problem,
            requests,
        ))
    }

    /// The floor of any copier on this machine: each key of the data set
    /// read with one GET and written with one PUT (the GET's body streamed
    /// into it), `threads` at a time, through s3migrate's own HTTP stack,
    /// with nothing else: no log, no records, no probes, no conditions.
    fn null_copy(&self, set: &DataSet, src: &Store, threads: usize) -> anyhow::Result<Row> {
        let label = format!("{threads} × GET → PUT, in-process");
        say(format!("{}: null copier {label}", set.name));
        let dest = self.store_with_bucket(DEST_BUCKET)?;
        let endpoint = |s: &Store, bucket: &str| ::s3migrate::s3::client::Endpoint {
            url: s.endpoint.clone(),
            bucket: bucket.to_owned(),
            access_key: s.access_key.clone(),
            secret_key: s.secret_key.clone(),
            region: s.region.clone(),
            ca_pem: None,
        };
        let from = ::s3migrate::s3::client::build_client(&endpoint(src, SRC_BUCKET))
            .map_err(anyhow::Error::msg)?;
        let to = ::s3migrate::s3::client::build_client(&endpoint(&dest, DEST_BUCKET))
            .map_err(anyhow::Error::msg)?;
        std::thread::sleep(SETTLE);
        let src_before = requests::snapshot(src);
        let run = self.in_process(
            &[src, &dest],
            futures::stream::iter(0..set.count)
                .map(|i| null_copy_one(&from, &to, set.key(i)))
                .buffer_unordered(threads.max(1))
                .try_collect::<()>(),
        )?;
        let requests = requests::copy_per_object(&src_before, src, &dest, set.count);
        let problem = self.check_dest(&dest, set, None)?;
        Ok(Row {
            threads: Some(threads),
            ..run.row(Tool::NullCopier, label, set, problem, requests)
        })
    }

    /// Runs `work` in this process, timed, with the CPU of `stores` and of
    /// this process.
    fn in_process(
        &self,
        stores: &[&Store],
        work: impl std::future::Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<InProcess> {
        let watch = CpuWatch::start(stores);
        let self_cpu = cpu::own_secs();
        let started = Instant::now();
        self.rt.block_on(work)?;
        let wall = started.elapsed();
        let cpu = watch.stop(None);
        let cpu_secs = match (self_cpu, cpu::own_secs()) {
            (Some(b), Some(a)) => Some(a - b),
            _ => None,
        };
        Ok(InProcess {
            wall,
            cpu,
            cpu_secs,
        })
    }

    fn s3migrate_copy(
        &self,
        set: &DataSet,
        src: &Store,
        threads: usize,
        part_threads: Option<usize>,
        journal: bool,
    ) -> anyhow::Result<Row> {
        let mut label = format!("--threads {threads}");
        if let Some(p) = part_threads {
            label.push_str(&format!(" --part-threads {p}"));
        }
        let tool = match journal {
            true => Tool::S3migrateJournal,
            false => Tool::S3migrate,
        };
        say(format!("{}: {} {label}", set.name, tool.name()));
        let dest = self.store_with_bucket(DEST_BUCKET)?;
        let journal = journal.then_some(JOURNAL_BUCKET);
        if let Some(j) = journal {
            dest.create_bucket(j)?;
        }
        std::thread::sleep(SETTLE);
        let src_before = requests::snapshot(src);
        let watch = CpuWatch::start(&[src, &dest]);
        let (timed, summary) = s3migrate::run(
            &self.s3migrate,
            src,
            &dest,
            &s3migrate::Options {
                source: s3migrate::Source::List,
                threads,
                part_threads,
                dry_run: false,
                journal,
            },
            &self.work(set.name),
        )?;
        let cpu = watch.stop(timed.cpu_secs);
        let requests = requests::copy_per_object(&src_before, src, &dest, set.count);
        let mut problem = tool_problem(&timed);
        if problem.is_none()
            && (summary.fail > 0
                || summary.copied != set.count
                // More bytes than the data set is a retried transfer sent
                // again (the destination is checked below); fewer is wrong.
                || summary.bytes_uploaded < set.total_bytes())
        {
            problem = Some(format!(
                "summary says copied {} ({} bytes) and failed {} of {}",
                summary.copied, summary.bytes_uploaded, summary.fail, set.count
            ));
        }
        let problem = problem.or(self.check_dest(&dest, set, None)?);
        Ok(Row {
            problem,
            requests,
            note: format!(
                "its own pass time {:.1}s{}; last progress line: `{}`",
                summary.elapsed_secs,
                match summary.bytes_uploaded.saturating_sub(set.total_bytes()) {
                    0 => String::new(),
                    n => format!("; {n} bytes sent again by retries"),
                },
                summary.progress.trim()
            ),
            threads: Some(threads),
            ..row_from(tool, label, set, &timed, cpu)
        })
    }

    fn rclone_copy(&self, set: &DataSet, src: &Store, tool: Tool) -> anyhow::Result<Row> {
        let (extra, label): (&[&str], String) = match tool {
            Tool::RcloneTuned => (rclone::TUNED, rclone::TUNED.join(" ")),
            _ => (&[], "defaults".into()),
        };
        say(format!("{}: rclone copy {label}", set.name));
        let dest = self.store_with_bucket(DEST_BUCKET)?;
        std::thread::sleep(SETTLE);
        let src_before = requests::snapshot(src);
        let watch = CpuWatch::start(&[src, &dest]);
        let timed = rclone::run(&self.args.rclone, src, &dest, extra, &self.work(set.name))?;
        let cpu = watch.stop(timed.cpu_secs);
        let requests = requests::copy_per_object(&src_before, src, &dest, set.count);
        let problem = tool_problem(&timed).or(self.check_dest(&dest, set, None)?);
        Ok(Row {
            problem,
            requests,
            ..row_from(tool, label, set, &timed, cpu)
        })
    }

    /// Why the destination does not hold the data set (or `expect` objects
    /// of no bytes), if it does not.
    fn check_dest(
        &self,
        dest: &Store,
        set: &DataSet,
        expect: Option<(u64, u64)>,
    ) -> anyhow::Result<Option<String>> {
        let (want_n, want_bytes) = expect.unwrap_or((set.count, set.total_bytes()));
        let (n, bytes) = self
            .rt
            .block_on(data::census(&dest.client(), DEST_BUCKET))?;
        Ok((n != want_n || bytes != want_bytes).then(|| {
            format!("destination holds {n} objects / {bytes} bytes, not {want_n} / {want_bytes}")
        }))
    }

    /// Peak RSS of s3migrate walking a key list of each of `sizes` keys
    /// with `--dry-run` into an empty destination: one run per size, on
    /// the same two stores (a dry run writes nothing).
    pub fn keys_rss(&self, sizes: &[u64], threads: usize) -> anyhow::Result<Vec<KeysRss>> {
        let src = self.store_with_bucket(SRC_BUCKET)?;
        let dest = self.store_with_bucket(DEST_BUCKET)?;
        let mut out = Vec::new();
        for &keys in sizes {
            out.push(self.keys_rss_one(&src, &dest, keys, threads)?);
        }
        Ok(out)
    }

    fn keys_rss_one(
        &self,
        src: &Store,
        dest: &Store,
        keys: u64,
        threads: usize,
    ) -> anyhow::Result<KeysRss> {
        say(format!("keys-rss: writing a key list of {keys} keys"));
        let work = self.work(&format!("keys-rss-{keys}"));
        let dir = work.join("keylist");
        let mut w = KeyListWriter::create(&dir, "chunk-")?;
        for i in 0..keys {
            w.push(&format!("rss/{i:010}"))?;
        }
        w.finish()?;
        let set = DataSet {
            name: "keys-rss",
            prefix: "rss",
            count: keys,
            size: 0,
            source_part: None,
        };
        std::thread::sleep(SETTLE);
        let label = format!("--dry-run --src-folder --threads {threads}");
        say(format!("keys-rss: s3migrate {label} ({keys} keys)"));
        let load_before = loadavg();
        let watch = CpuWatch::start(&[src, dest]);
        let (timed, summary) = s3migrate::run(
            &self.s3migrate,
            src,
            dest,
            &s3migrate::Options {
                source: s3migrate::Source::Folder(&dir),
                threads,
                part_threads: None,
                dry_run: true,
                journal: None,
            },
            &work,
        )?;
        let cpu = watch.stop(timed.cpu_secs);
        let load_after = loadavg();
        say(format!(
            "keys-rss: {keys} keys in {:.1}s, peak RSS {} KiB",
            timed.wall.as_secs_f64(),
            timed.max_rss_kib.unwrap_or(0)
        ));
        let requests = requests::copy_per_object(&Counts::new(), src, dest, keys);
        let mut problem = tool_problem(&timed);
        if problem.is_none() && (summary.fail > 0 || summary.copied != keys) {
            problem = Some(format!(
                "dry-run summary says would copy {} and failed {} of {keys}",
                summary.copied, summary.fail
            ));
        }
        let problem = problem.or(self.check_dest(dest, &set, Some((0, 0)))?);
        if !self.args.keep_work {
            // 10 M keys are 150 MB of list: do not keep one per size.
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let row = Row {
            problem,
            requests,
            note: format!("last progress line: `{}`", summary.progress.trim()),
            threads: Some(threads),
            ..row_from(Tool::S3migrate, label, &set, &timed, cpu)
        };
        Ok(KeysRss {
            keys,
            threads,
            row,
            load_before,
            load_after,
        })
    }

    pub fn work_dir(&self) -> &Path {
        &self.work
    }
}

fn tool_problem(timed: &Timed) -> Option<String> {
    (!timed.status.success()).then(|| {
        format!(
            "exited with {}: {}",
            timed.status,
            crate::proc::log_tail(&timed.log, 3).replace('\n', " / ")
        )
    })
}

/// A row with the run's measurements; the caller fills in the rest.
fn row_from(tool: Tool, label: String, set: &DataSet, timed: &Timed, cpu: CpuUse) -> Row {
    Row {
        tool,
        label,
        wall: timed.wall,
        objects: set.count,
        bytes: set.total_bytes(),
        max_rss_kib: timed.max_rss_kib,
        cpu_secs: timed.cpu_secs,
        cpu,
        problem: None,
        requests: String::new(),
        note: String::new(),
        threads: None,
        rounds: vec![timed.wall.as_secs_f64()],
    }
}

/// A run made in the benchmark's own process (the ceiling, the null
/// copier).
struct InProcess {
    wall: Duration,
    cpu: CpuUse,
    cpu_secs: Option<f64>,
}

impl InProcess {
    fn row(
        self,
        tool: Tool,
        label: String,
        set: &DataSet,
        problem: Option<String>,
        requests: String,
    ) -> Row {
        Row {
            tool,
            label,
            wall: self.wall,
            objects: set.count,
            bytes: set.total_bytes(),
            max_rss_kib: None,
            cpu_secs: self.cpu_secs,
            cpu: self.cpu,
            problem,
            requests,
            note: String::new(),
            threads: None,
            rounds: vec![self.wall.as_secs_f64()],
        }
    }
}

/// Attempts per key of the null copier, as the SDK's standard retry
/// makes for a request whose body it can replay (the ceiling's PUTs).
const NULL_COPY_ATTEMPTS: u32 = 3;

/// One key of the null copier: the GET's body streamed into the PUT. A
/// streamed body cannot be replayed by the SDK, so a failed copy (Garage
/// answers 503 "database is locked" under load) is made again whole, as
/// s3migrate would; the last error ends the run.
async fn null_copy_one(
    from: &aws_sdk_s3::Client,
    to: &aws_sdk_s3::Client,
    key: String,
) -> anyhow::Result<()> {
    let mut attempt = 1;
    loop {
        match null_copy_attempt(from, to, &key).await {
            Err(_) if attempt < NULL_COPY_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

async fn null_copy_attempt(
    from: &aws_sdk_s3::Client,
    to: &aws_sdk_s3::Client,
    key: &str,
) -> anyhow::Result<()> {
    let got = from
        .get_object()
        .bucket(SRC_BUCKET)
        .key(key)
        .send()
        .await
        .with_context(|| format!("null copier: GET {key}"))?;
    to.put_object()
        .bucket(DEST_BUCKET)
        .key(key)
        .content_length(got.content_length.unwrap_or_default())
        .body(got.body)
        .send()
        .await
        .with_context(|| format!("null copier: PUT {key}"))?;
    Ok(())
}
