//! `-later-than N` (WEKA's single-dash form) and `--later-than N` select
//! exactly the files whose max(mtime, ctime) is inside the window, so a
//! file renamed inside the window is selected although its mtime is old;
//! and names with CR, LF and `%` come back exactly from the chunk lines.

use ferry_harness::s3find as support;

use std::ffi::OsStr;
use std::fs::{self, File, FileTimes};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::*;

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

fn set_mtime(p: &Path, t: SystemTime) {
    File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_times(FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

fn ctime_secs(p: &Path) -> f64 {
    let m = fs::symlink_metadata(p).unwrap();
    m.ctime() as f64 + m.ctime_nsec() as f64 / 1e9
}

/// Keys of a fresh scan of `root` with `flags`, checked chunk by chunk.
fn scan(root: &Path, out: &Path, flags: &[&str]) -> (Vec<String>, serde_json::Value) {
    let mut args: Vec<&OsStr> = vec![root.as_os_str(), out.as_os_str()];
    args.extend(flags.iter().map(OsStr::new));
    args.push(OsStr::new("--overwrite"));
    let o = s3find(&args);
    assert_eq!(o.status.code(), Some(0), "s3find {flags:?}: {}", stderr(&o));
    (read_chunks(out).concat(), summary(out))
}

#[test]
fn later_than_selects_by_the_later_of_mtime_and_ctime() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    let t_a = SystemTime::now();
    // Phase A: every file is written and gets its mtime now, so every
    // ctime is about t_a.
    let mut tree = Tree::new(&root);
    let inside = ["in/recent", "in/cr\rlf\n%25", "in/\u{e9}t\u{e9}", "future"];
    let outside = ["out/month-old", "out/hour-old", "old-dir/deep/x"];
    for k in inside.iter().chain(&outside) {
        tree.file(k, b"x".to_vec());
    }
    tree.file("to-move/old-contents", b"moved".to_vec());
    mkdir(&root.join("moved"));
    // The window will be [t_b - 0.75 s, t_b + 1 day - 0.75 s], t_b being the
    // rename below (at least 2 s after t_a).
    set_mtime(
        &root.join("in/recent"),
        t_a + Duration::from_secs(12 * HOUR),
    );
    set_mtime(
        &root.join("in/cr\rlf\n%25"),
        t_a + Duration::from_secs(20 * HOUR),
    );
    set_mtime(
        &root.join("in/\u{e9}t\u{e9}"),
        t_a + Duration::from_secs(HOUR),
    );
    // Beyond the end of the window: timestamps in the future count as recent.
    set_mtime(&root.join("future"), t_a + Duration::from_secs(3 * DAY));
    set_mtime(
        &root.join("out/month-old"),
        t_a - Duration::from_secs(30 * DAY),
    );
    set_mtime(&root.join("out/hour-old"), t_a - Duration::from_secs(HOUR));
    set_mtime(
        &root.join("old-dir/deep/x"),
        t_a - Duration::from_secs(2 * DAY),
    );
    set_mtime(
        &root.join("to-move/old-contents"),
        t_a - Duration::from_secs(30 * DAY),
    );

    // Phase B: a rename keeps the 30-day-old mtime and sets the ctime.
    std::thread::sleep(Duration::from_secs(2));
    let moved = root.join("moved/renamed");
    fs::rename(root.join("to-move/old-contents"), &moved).unwrap();
    let t_b = ctime_secs(&moved);
    let t_a_secs = t_a.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let last_a_ctime = inside
        .iter()
        .chain(&outside)
        .map(|k| ctime_secs(&root.join(k)))
        .fold(0.0, f64::max);
    assert!(
        t_b - last_a_ctime > 1.5 && last_a_ctime >= t_a_secs - 1.0,
        "the rename did not set the ctime (t_a={t_a_secs} last phase-A ctime={last_a_ctime} t_b={t_b})"
    );
    let mtime = fs::symlink_metadata(&moved).unwrap().mtime() as f64;
    assert!(
        mtime < t_a_secs - 29.0 * DAY as f64,
        "rename kept the old mtime"
    );

    let reference = format!("{:.3}", t_b + DAY as f64 - 0.75);
    let mut want: Vec<String> = inside.iter().map(|s| s.to_string()).collect();
    want.push("moved/renamed".into());
    want.sort();

    let out = tmp.path().join("out");
    let forms: [&[&str]; 3] = [
        &["-later-than", "1", "--reference-time", &reference],
        &["--later-than", "1", "--reference-time", &reference],
        &["--reference-time", &reference, "-later-than=1"],
    ];
    let mut first_chunks: Option<Vec<Vec<u8>>> = None;
    for flags in forms {
        let (keys, s) = scan(&root, &out, flags);
        assert_eq!(keys, want, "{flags:?}");
        assert_eq!(s["files"], want.len() as u64);
        assert_eq!(
            s["skipped"]["filtered_by_time"],
            outside.len() as u64,
            "{s}"
        );
        assert_eq!(s["later_than_days"], 1.0);
        let cutoff = s["cutoff_unix_secs"].as_f64().unwrap();
        assert!(
            (cutoff - (t_b - 0.75)).abs() < 0.01,
            "cutoff {cutoff} vs {t_b}"
        );
        let chunks: Vec<Vec<u8>> = ferry_control::keylist::chunk_files(&out)
            .unwrap()
            .iter()
            .map(|p| fs::read(p).unwrap())
            .collect();
        match &first_chunks {
            None => first_chunks = Some(chunks),
            Some(first) => assert_eq!(first, &chunks, "{flags:?} wrote other chunks"),
        }
    }

    // Three days back from the same reference reaches t_a: every ctime is
    // inside, so every file is selected, the month-old ones included.
    let mut all: Vec<String> = inside
        .iter()
        .chain(&outside)
        .map(|s| s.to_string())
        .collect();
    all.push("moved/renamed".into());
    all.sort();
    let (keys, s) = scan(
        &root,
        &out,
        &["--later-than", "3", "--reference-time", &reference],
    );
    assert_eq!(keys, all);
    assert_eq!(s["skipped"]["filtered_by_time"], 0);

    // Without a filter nothing is filtered and the summary says so.
    let (keys, s) = scan(&root, &out, &[]);
    assert_eq!(keys, all);
    assert!(s["later_than_days"].is_null() && s["cutoff_unix_secs"].is_null());
}

#[test]
fn bad_later_than_values_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    mkdir(&root);
    let out = tmp.path().join("out");
    for flags in [
        &["-later-than", "soon"][..],
        &["--later-than=-1"],
        &["-later-than"],
        &["--reference-time", "5"],
        &["--memory-mb", "0"],
        &["--no-such-flag"],
    ] {
        let mut args: Vec<&OsStr> = vec![root.as_os_str(), out.as_os_str()];
        args.extend(flags.iter().map(OsStr::new));
        let o = s3find(&args);
        assert_eq!(o.status.code(), Some(2), "{flags:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{flags:?}: {err}");
        assert!(err.starts_with("s3find: "), "{err}");
        assert!(!out.exists(), "{flags:?} created the output folder");
    }
    // A missing directory, and one that is a file.
    let file = tmp.path().join("file");
    fs::write(&file, b"x").unwrap();
    for bad in [tmp.path().join("missing"), file] {
        let o = s3find(&[bad.as_os_str(), out.as_os_str()]);
        assert_eq!(o.status.code(), Some(2));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&bad.display().to_string()), "{err}");
    }
    // An output folder inside the scanned tree would list itself.
    let o = s3find(&[root.as_os_str(), root.join("lists").as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("inside the scanned directory"));
}

#[test]
fn names_with_cr_lf_and_percent_unescape_to_the_raw_names() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    let mut tree = Tree::new(&root);
    let names = [
        "cr\rin-name",
        "lf\nin-name",
        "crlf\r\n",
        "\nleading-lf",
        "100%",
        "%",
        "%%",
        "%25",
        "%0A",
        "%zz",
        "tab\t%\u{7f}",
        "d\ndir/with\rfile%",
    ];
    for n in names {
        tree.file(n, n.as_bytes().to_vec());
    }
    let out = tmp.path().join("out");
    let o = s3find(&[root.as_os_str(), out.as_os_str()]);
    assert_eq!(o.status.code(), Some(0));

    let files = ferry_control::keylist::chunk_files(&out).unwrap();
    assert_eq!(files.len(), 1);
    let text = fs::read_to_string(&files[0]).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), names.len(), "one line per name: {text:?}");
    assert!(!text.contains('\r') && !text.contains('\t'));
    // The escaped forms, exactly.
    for (raw, line) in [
        ("cr\rin-name", "cr%0Din-name"),
        ("lf\nin-name", "lf%0Ain-name"),
        ("crlf\r\n", "crlf%0D%0A"),
        ("100%", "100%25"),
        ("%25", "%2525"),
        ("%0A", "%250A"),
        ("tab\t%\u{7f}", "tab%09%25%7F"),
        ("d\ndir/with\rfile%", "d%0Adir/with%0Dfile%25"),
    ] {
        assert!(
            lines.contains(&line),
            "{raw:?} should be written as {line:?}: {lines:?}"
        );
    }
    // Every line unescapes to exactly one raw name, in raw byte order.
    let got: Vec<String> = lines
        .iter()
        .map(|l| ferry_control::keylist::unescape(l).unwrap())
        .collect();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(read_keys(&out), want);
}
