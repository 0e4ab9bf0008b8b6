//! The `s3find` command line: WEKA's syntax, and Ferry's own flags.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::watch::{
    DEFAULT_INTERVAL_SECS, DEFAULT_QUIET_SECS, DEFAULT_RESCAN_INTERVAL_SECS, WatchOptions,
};
use super::{FindError, Options, filter};

/// The defaults of `--memory-mb` and `--progress-interval-secs`, which a
/// find job's options share.
pub use ferry_control::jobs::{
    DEFAULT_FIND_MEMORY_MB as DEFAULT_MEMORY_MB,
    DEFAULT_FIND_PROGRESS_SECS as DEFAULT_PROGRESS_SECS,
};

/// List every file below a directory (a mounted bucket) as sorted key-list
/// chunks of at most 100,000 keys, for `s3migrate --src-folder`.
///
/// Each regular file becomes one key: its path relative to DIRECTORY.
/// Symlinks, FIFOs, sockets, devices, names that are not UTF-8 and keys
/// over 1,024 bytes are skipped and counted. Unreadable directories are
/// reported and counted; they never stop the scan.
///
/// With --watch, after that scan it keeps watching DIRECTORY and writes,
/// every --interval seconds, an incremental set of the keys created or
/// modified and of the keys deleted into OUTPUT_DIR/incr/ (see
/// docs/s3find.md). TERM or INT ends the watch after the current set.
///
/// Exit codes: 0 the key list was written (also when some directories
/// could not be read: see the errors line and s3find-summary.json); with
/// --watch, stopped by TERM/INT after the initial scan; 1 the scan could
/// not finish (e.g. the disk is full; an earlier key list is left as it
/// was; or stopped during the initial scan); 2 bad input (missing or
/// unreadable DIRECTORY, bad flags, an earlier scan's chunks without
/// --overwrite).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "s3find",
    version,
    max_term_width = 100,
    args_override_self = true,
    override_usage = "s3find <DIRECTORY> <OUTPUT_DIR> [-later-than <N_DAYS>] [OPTIONS]"
)]
pub struct Args {
    /// The directory to scan: a bucket's mounted filesystem.
    #[arg(value_name = "DIRECTORY")]
    pub directory: PathBuf,
    /// Where the chunk files go (created if missing); the --src-folder of
    /// s3migrate.
    #[arg(value_name = "OUTPUT_DIR")]
    pub output_dir: PathBuf,
    /// Keep only files changed (max of mtime and ctime) within the last
    /// N days; fractions allowed. WEKA's spelling `-later-than` works too.
    /// Not with --watch.
    #[arg(long, value_name = "N_DAYS", conflicts_with = "watch")]
    pub later_than: Option<f64>,
    /// Count the --later-than days back from this moment (Unix seconds,
    /// fractions allowed) instead of from now: repeats a scan's selection
    /// exactly. Files changed after it are kept too.
    #[arg(long, value_name = "UNIX_SECS", requires = "later_than")]
    pub reference_time: Option<f64>,
    /// Memory for sorting, in MiB (key bytes plus 8 bytes per key). Beyond
    /// it, sorted runs spill into OUTPUT_DIR/.s3find-tmp-*.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MEMORY_MB,
          value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub memory_mb: u32,
    /// Walker threads; 0 = one per core, at most 12. On network
    /// filesystems more threads hide latency.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Count the bytes of the listed files, for the summary. It costs one
    /// lstat per file, which a plain listing does not need (the file type
    /// comes with the directory entry): about half the speed on a large
    /// local tree.
    #[arg(long)]
    pub sizes: bool,
    /// Replace the chunk files (*.keys) of an earlier scan in OUTPUT_DIR.
    /// The old ones are removed only once the new list is complete.
    #[arg(long)]
    pub overwrite: bool,
    /// Seconds between progress lines on stderr; 0 = none.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_PROGRESS_SECS)]
    pub progress_interval_secs: u64,
    /// After the scan, keep watching DIRECTORY: every --interval seconds,
    /// write the keys created, modified and deleted since the last set
    /// into OUTPUT_DIR/incr/<seq>-<UTC time>/. Runs until TERM or INT.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: seconds between incremental sets.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_INTERVAL_SECS,
          requires = "watch", value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
    /// With --watch: seconds between full rescans, which find the changes
    /// that raised no event (made on another host of a network or cluster
    /// filesystem, or below a directory without a watch).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_RESCAN_INTERVAL_SECS,
          requires = "watch", value_parser = clap::value_parser!(u64).range(1..))]
    pub rescan_interval: u64,
    /// With --watch: a file is listed once its mtime is at least this many
    /// seconds old (it is no longer being written); until then it is held
    /// back to a later set. 0 lists files at once.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_QUIET_SECS, requires = "watch")]
    pub quiet_secs: u64,
    /// With --watch: add at most N directory watches (testing and safety
    /// knob; the kernel's fs.inotify.max_user_watches applies anyway).
    /// Directories beyond are covered by the rescans only.
    #[arg(long, value_name = "N", requires = "watch", hide = true)]
    pub max_watches: Option<u64>,
}

impl Args {
    /// Parses `argv` after [`normalize_argv`].
    pub fn try_parse_weka<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        Self::try_parse_from(normalize_argv(argv))
    }

    /// The watch mode's options (`--watch`).
    pub fn to_watch_options(&self) -> Result<WatchOptions, FindError> {
        Ok(WatchOptions {
            scan: self.to_options()?,
            interval: Duration::from_secs(self.interval),
            rescan_interval: Duration::from_secs(self.rescan_interval),
            quiet: Duration::from_secs(self.quiet_secs),
            max_watches: self.max_watches,
        })
    }

    pub fn to_options(&self) -> Result<Options, FindError> {
        let reference_time = self
            .reference_time
            .map(filter::unix_secs_to_nanos)
            .transpose()
            .map_err(FindError::Input)?;
        if let Some(days) = self.later_than {
            // Refuse a bad value now, with the flag's name, not mid-scan.
            filter::TimeFilter::later_than_days(days, 0).map_err(FindError::Input)?;
        }
        Ok(Options {
            root: self.directory.clone(),
            output_dir: self.output_dir.clone(),
            later_than_days: self.later_than,
            reference_time,
            memory_bytes: self.memory_mb as usize * 1024 * 1024,
            threads: self.threads,
            sizes: self.sizes,
            overwrite: self.overwrite,
            progress_every: (self.progress_interval_secs > 0)
                .then(|| Duration::from_secs(self.progress_interval_secs)),
        })
    }
}

/// WEKA's s3find takes `-later-than N` with one dash, which clap would read
/// as a bundle of short flags. Rewrite it (and `-later-than=N`) to the long
/// form. Arguments after `--` are left alone.
pub fn normalize_argv<I, T>(argv: I) -> Vec<OsString>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut rest = false;
    argv.into_iter()
        .map(Into::into)
        .map(|a| {
            if rest {
                return a;
            }
            if a == "--" {
                rest = true;
                return a;
            }
            match a.to_str() {
                Some("-later-than") => OsString::from("--later-than"),
                Some(s) if s.starts_with("-later-than=") => OsString::from(format!("-{s}")),
                _ => a,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_weka(std::iter::once("s3find").chain(args.iter().copied()))
    }

    #[test]
    fn weka_single_dash_and_long_forms_agree() {
        for form in [
            &["/mnt/b", "/out", "-later-than", "7"][..],
            &["/mnt/b", "/out", "--later-than", "7"],
            &["/mnt/b", "/out", "-later-than=7"],
            &["/mnt/b", "/out", "--later-than=7"],
            &["-later-than", "7", "/mnt/b", "/out"],
        ] {
            let a = parse(form).unwrap();
            assert_eq!(a.later_than, Some(7.0), "{form:?}");
            assert_eq!(a.directory, PathBuf::from("/mnt/b"));
            assert_eq!(a.output_dir, PathBuf::from("/out"));
        }
    }

    #[test]
    fn defaults() {
        let a = parse(&["d", "o"]).unwrap();
        assert_eq!(a.later_than, None);
        assert_eq!(a.memory_mb, DEFAULT_MEMORY_MB);
        assert_eq!(a.threads, 0);
        assert!(!a.overwrite);
        let o = a.to_options().unwrap();
        assert_eq!(o.memory_bytes, 256 << 20);
        assert_eq!(o.progress_every, Some(Duration::from_secs(5)));
    }

    #[test]
    fn watch_flags() {
        let a = parse(&["d", "o", "--watch"]).unwrap();
        let w = a.to_watch_options().unwrap();
        assert_eq!(w.interval, Duration::from_secs(60));
        assert_eq!(w.rescan_interval, Duration::from_secs(3600));
        assert_eq!(w.quiet, Duration::from_secs(5));
        assert_eq!(w.max_watches, None);
        let a = parse(&[
            "--watch",
            "d",
            "o",
            "--interval",
            "1",
            "--rescan-interval",
            "2",
            "--quiet-secs",
            "0",
            "--max-watches",
            "1",
        ])
        .unwrap();
        let w = a.to_watch_options().unwrap();
        assert_eq!(w.interval, Duration::from_secs(1));
        assert_eq!(w.rescan_interval, Duration::from_secs(2));
        assert_eq!(w.quiet, Duration::ZERO);
        assert_eq!(w.max_watches, Some(1));
        assert_eq!(w.scan.root, PathBuf::from("d"));
    }

    #[test]
    fn after_double_dash_nothing_is_rewritten() {
        let v = normalize_argv(["s3find", "--", "-later-than"]);
        assert_eq!(v[2], "-later-than");
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(parse(&["d"]).is_err(), "output_dir is required");
        assert!(parse(&["d", "o", "-later-than", "x"]).is_err());
        assert!(parse(&["d", "o", "--memory-mb", "0"]).is_err());
        assert!(parse(&["d", "o", "--reference-time", "5"]).is_err());
        assert!(parse(&["d", "o", "-l"]).is_err());
        assert!(
            parse(&["d", "o", "--interval", "5"]).is_err(),
            "needs --watch"
        );
        assert!(parse(&["d", "o", "--watch", "--interval", "0"]).is_err());
        assert!(parse(&["d", "o", "--watch", "-later-than", "1"]).is_err());
        let neg = parse(&["d", "o", "--later-than=-1"]).unwrap();
        assert!(matches!(neg.to_options(), Err(FindError::Input(_))));
    }
}
