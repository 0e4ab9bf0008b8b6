//! One measured run: the figures a report row shows.

use std::time::Duration;

use crate::cpu::CpuUse;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Ceiling,
    /// GET then PUT of each key with s3migrate's HTTP stack and nothing
    /// else: the floor of any copier here.
    NullCopier,
    S3migrate,
    /// s3migrate with `--delete-journal`, as in a live migration.
    S3migrateJournal,
    RcloneDefault,
    RcloneTuned,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Ceiling => "ceiling",
            Tool::NullCopier => "null copier",
            Tool::S3migrate => "s3migrate",
            Tool::S3migrateJournal => "s3migrate, journal",
            Tool::RcloneDefault => "rclone default",
            Tool::RcloneTuned => "rclone tuned",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub tool: Tool,
    /// How it was run, e.g. `--threads 64`.
    pub label: String,
    pub wall: Duration,
    /// Objects and bytes the run had to copy.
    pub objects: u64,
    pub bytes: u64,
    pub max_rss_kib: Option<u64>,
    pub cpu_secs: Option<f64>,
    /// Where the machine's CPU went during the run.
    pub cpu: CpuUse,
    /// Empty when the destination held every object with every byte and the
    /// tool said it succeeded; otherwise why this run does not count.
    pub problem: Option<String>,
    /// S3 requests per object, by operation, on each side.
    pub requests: String,
    /// Anything else worth a line (the copier's own view of the run).
    pub note: String,
    /// s3migrate's `--threads`, when it is an s3migrate run.
    pub threads: Option<usize>,
    /// Wall seconds of every round of this run, in order.
    pub rounds: Vec<f64>,
}

impl Row {
    /// One row for several rounds of the same run: the figures of the
    /// fastest round (the least disturbed one on a shared machine), the
    /// highest peak RSS of any round, and the first problem of any round.
    pub fn fastest_of(rows: Vec<Row>) -> Option<Row> {
        let rounds: Vec<f64> = rows.iter().map(Row::secs).collect();
        let max_rss = rows.iter().filter_map(|r| r.max_rss_kib).max();
        let many = rows.len() > 1;
        let problem = rows.iter().enumerate().find_map(|(i, r)| {
            let p = r.problem.as_ref()?;
            Some(if many {
                format!("round {}: {p}", i + 1)
            } else {
                p.clone()
            })
        });
        let mut best = rows.into_iter().min_by_key(|r| r.wall)?;
        best.rounds = rounds;
        best.max_rss_kib = max_rss;
        best.problem = problem;
        Some(best)
    }

    pub fn valid(&self) -> bool {
        self.problem.is_none()
    }

    pub fn secs(&self) -> f64 {
        self.wall.as_secs_f64().max(1e-9)
    }

    pub fn objects_per_sec(&self) -> f64 {
        self.objects as f64 / self.secs()
    }

    /// Decimal megabytes (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs()
    }

    pub fn rss_mib(&self) -> Option<f64> {
        self.max_rss_kib.map(|k| k as f64 / 1024.0)
    }
}
