//! s3find on real trees, through the real binary: every regular file is
//! exactly one key, in byte order across chunks of at most 100,000; what
//! is not a key is counted; unreadable directories are reported and fail
//! the scan, unless --allow-unreadable. (`s3migrate/tests/migrate_from_s3find.rs` copies such a
//! tree with the keys s3find lists.)

use ferry_harness::s3find as support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::*;

const NOBODY: u32 = 65534;

/// How this run can make a directory unreadable to s3find.
enum Locked {
    /// The current user cannot read a mode-000 directory.
    Direct,
    /// We are root (which reads anything): run s3find as `nobody`.
    AsNobody,
    /// Neither: the unreadable-directory check is skipped.
    Unavailable(String),
}

fn locked_mode(tree: &Tree, scratch: &Path) -> Locked {
    let dir = tree.locked_dir.as_ref().unwrap();
    if fs::read_dir(dir).is_err() {
        return Locked::Direct;
    }
    if my_uid(scratch) != 0 {
        return Locked::Unavailable(
            "a mode-000 directory is readable here, and we are not root".into(),
        );
    }
    // Root reads a mode-000 directory; nobody must not.
    let probe = Command::new("/bin/sh")
        .args(["-c", "ls \"$1\" >/dev/null 2>&1", "sh"])
        .arg(dir)
        .uid(NOBODY)
        .gid(NOBODY)
        .status();
    match probe {
        Ok(st) if !st.success() => Locked::AsNobody,
        Ok(_) => Locked::Unavailable("uid 65534 can read a mode-000 directory".into()),
        Err(e) => Locked::Unavailable(format!("cannot run a command as uid 65534: {e}")),
    }
}

/// The s3find binary where `nobody` can run it (hard link, else a copy),
/// in `dir`.
fn binary_for_nobody(dir: &Path) -> std::path::PathBuf {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("s3find");
    if fs::hard_link(s3find_bin(), &bin).is_err() {
        fs::copy(s3find_bin(), &bin).unwrap();
    }
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn tree_of_300k_files_lists_every_key_in_byte_order() {
    let t0 = Instant::now();
    let tmp = Scratch::new("1g");
    let mut tree = Tree::new(&tmp.path().join("tree"));
    tree.odd_entries();
    tree.non_keys();
    tree.locked_dir();
    tree.bulk(600, 500, false);
    eprintln!(
        "tree of {} files made in {:.1}s (on {})",
        tree.files.len(),
        t0.elapsed().as_secs_f64(),
        if tmp.is_tmpfs() {
            "a tmpfs"
        } else {
            "the temp dir's filesystem"
        }
    );
    assert!(tree.files.len() > 300_000);

    let out = tmp.path().join("out");
    let bin_dir = tempfile::tempdir().unwrap();
    let mode = locked_mode(&tree, tmp.path());
    let mut cmd = match &mode {
        Locked::Direct => Command::new(s3find_bin()),
        Locked::AsNobody => {
            mkdir(&out);
            std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY)).unwrap();
            let mut c = Command::new(binary_for_nobody(bin_dir.path()));
            c.uid(NOBODY).gid(NOBODY);
            c
        }
        Locked::Unavailable(why) => {
            ferry_harness::skip(
                "tree_of_300k_files_lists_every_key_in_byte_order (unreadable-directory part)",
                why,
            );
            Command::new(s3find_bin())
        }
    };
    let unreadable = !matches!(mode, Locked::Unavailable(_));
    if unreadable {
        tree.expect_locked_missing();
    }
    // The locked directory is accepted here; refusing it is the next test's.
    cmd.arg(&tree.root).arg(&out).args([
        "--progress-interval-secs",
        "1",
        "--sizes",
        "--allow-unreadable",
    ]);
    let o = run(&mut cmd);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "exit code");

    // What is not a key was reported by name, and counted.
    if unreadable {
        let locked = format!("cannot read directory {:?}", tree.root.join("locked"));
        assert!(err.contains(&locked), "no {locked:?} in stderr");
    }
    assert!(
        err.contains(r"bad-\xFF-name"),
        "non-UTF-8 file not reported"
    );
    assert!(
        err.contains(r"bad-\xFE-dir"),
        "non-UTF-8 directory not reported"
    );
    assert!(err.contains("S3 allows 1024"), "over-long key not reported");

    let s = summary(&out);
    let n = tree.files.len() as u64;
    assert_eq!(s["files"], n, "{s}");
    assert_eq!(
        s["bytes"],
        tree.files.values().map(|b| b.len() as u64).sum::<u64>()
    );
    assert_eq!(s["skipped"]["symlink"], tree.symlinks, "{s}");
    assert_eq!(s["skipped"]["special"], tree.special, "{s}");
    assert_eq!(s["skipped"]["non_utf8"], tree.non_utf8, "{s}");
    assert_eq!(s["skipped"]["too_long"], tree.too_long, "{s}");
    assert_eq!(s["skipped"]["filtered_by_time"], 0);
    assert_eq!(s["errors"]["unreadable_dirs"], u64::from(unreadable), "{s}");
    assert_eq!(s["errors"]["stat_failed"], 0);
    assert_eq!(
        s["sort"]["runs_spilled"], 0,
        "300k keys fit in the default 256 MiB"
    );
    assert!(
        err.contains(&format!("errors={}", u64::from(unreadable))),
        "closing errors line"
    );

    // The chunks: at most 100,000 keys each (all full but the last),
    // strictly increasing across chunk boundaries, exactly the tree.
    let chunks = read_chunks(&out);
    assert_eq!(chunks.len() as u64, n.div_ceil(100_000));
    assert_eq!(s["chunks"], chunks.len() as u64);
    for c in &chunks[..chunks.len() - 1] {
        assert_eq!(c.len(), 100_000);
    }
    for w in chunks.windows(2) {
        assert!(w[0].last().unwrap().as_bytes() < w[1][0].as_bytes());
    }
    let keys: Vec<String> = chunks.concat();
    // BTreeMap<String, _> iterates in byte order of the keys.
    let want: Vec<&String> = tree.files.keys().collect();
    if let Some(i) = (0..keys.len().min(want.len())).find(|&i| &keys[i] != want[i]) {
        panic!(
            "key {i}: s3find wrote {:?}, the tree has {:?}",
            keys[i], want[i]
        );
    }
    assert_eq!(keys.len(), want.len());
    let mut raw: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    raw.sort_unstable();
    assert!(raw.iter().zip(&keys).all(|(r, k)| *r == k.as_bytes()));
    assert_eq!(read_keys(&out), keys, "KeyListReader reads the same keys");
    assert_c_sort_agrees(&keys, tmp.path());
    for k in [
        "cr\rname",
        "lf\nname",
        "caf\u{e9}",
        "cafe\u{301}",
        "50%",
        ".gitignore",
        ".git/config",
    ] {
        assert!(
            tree.files.contains_key(k) && keys.binary_search(&k.to_owned()).is_ok(),
            "{k:?}"
        );
    }

    // Nothing of the run is left but the chunks, the summary and the lock.
    for e in fs::read_dir(&out).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(
            name.ends_with(".keys") || name == "s3find-summary.json" || name == ".s3find.lock",
            "left over in the output folder: {name}"
        );
    }
    eprintln!("whole test {:.1}s", t0.elapsed().as_secs_f64());
}

/// A directory s3find cannot read (a bucket mount read as user `ferry`)
/// fails the scan: exit 1, no key list, the directory named on stderr and
/// in the summary. With --allow-unreadable the list is written without it.
#[test]
fn an_unreadable_directory_fails_the_scan_unless_allowed() {
    let tmp = Scratch::new("64m");
    let mut tree = Tree::new(&tmp.path().join("tree"));
    tree.locked_dir();
    tree.bulk(3, 10, false);
    let out = tmp.path().join("out");
    let bin_dir = tempfile::tempdir().unwrap();
    let mode = locked_mode(&tree, tmp.path());
    tree.expect_locked_missing();
    // Once: a second hard link over the first would truncate the binary.
    let nobody_bin = matches!(mode, Locked::AsNobody).then(|| binary_for_nobody(bin_dir.path()));
    let scan = |extra: &[&str]| {
        let mut cmd = match &mode {
            Locked::Direct => Command::new(s3find_bin()),
            Locked::AsNobody => {
                mkdir(&out);
                std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY)).unwrap();
                let mut c = Command::new(nobody_bin.as_ref().expect("made above"));
                c.uid(NOBODY).gid(NOBODY);
                c
            }
            Locked::Unavailable(why) => {
                ferry_harness::skip("an_unreadable_directory_fails_the_scan_unless_allowed", why);
                return None;
            }
        };
        cmd.arg(&tree.root).arg(&out).args(extra);
        Some(run(&mut cmd))
    };
    let Some(o) = scan(&[]) else { return };
    let locked = tree.root.join("locked");
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an unreadable directory fails: {err}"
    );
    assert!(err.contains("1 directories could not be read"), "{err}");
    assert!(err.contains("--allow-unreadable"), "{err}");
    assert!(err.contains(locked.to_str().unwrap()), "{err}");
    let s = summary(&out);
    assert_eq!(s["errors"]["unreadable_dirs"], 1, "{s}");
    assert_eq!(
        s["errors"]["unreadable"][0],
        locked.to_str().unwrap(),
        "{s}"
    );
    assert_eq!(s["chunks"], 0, "{s}");
    assert!(
        ferry_control::keylist::chunk_files(&out)
            .unwrap()
            .is_empty(),
        "no key list is written"
    );

    let o = scan(&["--allow-unreadable"]).unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let keys: Vec<String> = read_chunks(&out).concat();
    assert_eq!(keys.len(), tree.files.len(), "every readable file");
    assert_eq!(summary(&out)["errors"]["unreadable_dirs"], 1);
}
