//! The `s3find` command line: WEKA's syntax, and Ferry's own flags.

use std::ffi::OsString;

use std::time::Duration;

use clap::Parser;
use ferry_control::FindOptions;

use super::watch::{
    DEFAULT_INTERVAL_SECS, DEFAULT_QUIET_SECS, DEFAULT_RESCAN_INTERVAL_SECS, WatchOptions,
};
use super::{FindError, Options, filter};

/// The default of `--memory-mb`, which a find job's options share.
pub use ferry_control::jobs::DEFAULT_FIND_MEMORY_MB as DEFAULT_MEMORY_MB;

/// List every file below a directory (a mounted bucket) as sorted key-list
/// chunks of at most 100,000 keys, for `s3migrate --src-folder`.
///
/// Each regular file becomes one key: its path relative to DIRECTORY.
/// Symlinks, FIFOs, sockets, devices, names that are not UTF-8 and keys
/// over 1,024 bytes are skipped and counted. An unreadable directory is
/// reported and the scan goes on, but then fails at the end (no key list
/// written) unless --allow-unreadable.
///
/// With --watch, after that scan it keeps watching DIRECTORY and writes,
/// every --interval seconds, an incremental set of the keys created or
/// modified and of the keys deleted into OUTPUT_DIR/incr/ (see
/// docs/s3find.md). TERM or INT ends the watch after the current set.
///
/// Exit codes: 0 the key list was written (with --allow-unreadable, also
/// when some directories could not be read: see the errors line and
/// s3find-summary.json); with --watch, stopped by TERM/INT after the
/// initial scan; 1 the scan could not finish or is incomplete (e.g. the
/// disk is full, or a directory could not be read: an earlier key list is
/// left as it was; or stopped during the initial scan); 2 bad input (missing or
/// unreadable DIRECTORY, bad flags, an earlier scan's chunks without
/// --overwrite).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "s3find",
    version,
    max_term_width = 100,
    args_override_self = true,
    override_usage = "s3find <DIRECTORY> <OUTPUT_DIR> [-later-than <N_DAYS>] [OPTIONS]",
    // What only s3find's --later-than is: WEKA's spelling, and not a watch.
    mut_arg("later_than", |a| a.help(
        "Keep only files changed (max of mtime and ctime) within the last N days; fractions \
         allowed. WEKA's spelling `-later-than` works too. Not with --watch."
    ))
)]
pub struct Args {
    /// What to scan and how: the same schema as an agent's find job.
    #[command(flatten)]
    pub scan: FindOptions,
    /// After the scan, keep watching DIRECTORY: every --interval seconds,
    /// write the keys created, modified and deleted since the last set
    /// into OUTPUT_DIR/incr/<seq>-<UTC time>/. Runs until TERM or INT.
    #[arg(long, conflicts_with = "later_than")]
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
            scan: Options {
                // A watch runs until cancelled: it reports and counts
                // unreadable directories, and goes on.
                allow_unreadable: true,
                ..self.to_options()?
            },
            interval: Duration::from_secs(self.interval),
            rescan_interval: Duration::from_secs(self.rescan_interval),
            quiet: Duration::from_secs(self.quiet_secs),
            max_watches: self.max_watches,
        })
    }

    pub fn to_options(&self) -> Result<Options, FindError> {
        scan_options(&self.scan)
    }
}

/// The engine's options for a scan: s3find's flags or a find job's, checked.
pub fn scan_options(o: &FindOptions) -> Result<Options, FindError> {
    o.check().map_err(FindError::Input)?;
    let reference_time = o
        .reference_time
        .map(filter::unix_secs_to_nanos)
        .transpose()
        .map_err(FindError::Input)?;
    if let Some(days) = o.later_than {
        // Refuse a bad value now, with the flag's name, not mid-scan.
        filter::TimeFilter::later_than_days(days, 0).map_err(FindError::Input)?;
    }
    Ok(Options {
        root: o.directory.clone(),
        output_dir: o.output_dir.clone(),
        later_than_days: o.later_than,
        reference_time,
        memory_bytes: o.resources.memory_mb as usize * 1024 * 1024,
        threads: o.resources.threads,
        sizes: o.sizes,
        overwrite: o.overwrite,
        allow_unreadable: o.allow_unreadable,
        progress_every: (o.progress_interval_secs > 0)
            .then(|| Duration::from_secs(o.progress_interval_secs)),
    })
}

/// The engine's options for a watch job: its scan, then its timings.
pub fn watch_options(o: &ferry_control::jobs::WatchOptions) -> Result<WatchOptions, FindError> {
    o.check().map_err(FindError::Input)?;
    let scan = FindOptions {
        directory: o.directory.clone(),
        output_dir: o.output_dir.clone(),
        later_than: None,
        reference_time: None,
        resources: o.resources.clone(),
        sizes: false,
        overwrite: o.overwrite,
        // As `Args::to_watch_options`.
        allow_unreadable: true,
        progress_interval_secs: 0,
        bucket: None,
    };
    Ok(WatchOptions {
        scan: scan_options(&scan)?,
        interval: Duration::from_secs(o.interval),
        rescan_interval: Duration::from_secs(o.rescan_interval),
        quiet: Duration::from_secs(o.quiet_secs),
        max_watches: None,
    })
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
    use std::path::PathBuf;

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
            assert_eq!(a.scan.later_than, Some(7.0), "{form:?}");
            assert_eq!(a.scan.directory, PathBuf::from("/mnt/b"));
            assert_eq!(a.scan.output_dir, PathBuf::from("/out"));
        }
    }

    #[test]
    fn defaults() {
        let a = parse(&["d", "o"]).unwrap();
        assert_eq!(a.scan.later_than, None);
        assert_eq!(a.scan.resources.memory_mb, DEFAULT_MEMORY_MB);
        assert_eq!(a.scan.resources.threads, 0);
        assert!(!a.scan.overwrite);
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
        // A scan refuses an unreadable directory by default; a watch,
        // which runs until cancelled, reports it and goes on.
        assert!(!a.to_options().unwrap().allow_unreadable);
        assert!(w.scan.allow_unreadable);
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
