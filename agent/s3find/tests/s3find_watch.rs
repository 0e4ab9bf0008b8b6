//! `s3find --watch`, through the real binary: after the initial list,
//! every interval an incremental set holds exactly the keys created or
//! modified (a rename is a delete plus a create) and, in `deleted/`, the
//! keys deleted; changes below directories without a watch are found by
//! the full rescans; a file still being written is listed once it settles;
//! TERM ends the watch with exit code 0.

use ferry_harness::s3find as support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, FileTimes};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferry_control::keylist::{self, KeyListReader};
use support::{mkdir, s3find_bin};

/// A running `s3find --watch`, its stderr collected line by line.
struct Watch {
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    out: PathBuf,
}

impl Watch {
    fn start(root: &Path, out: &Path, flags: &[&str]) -> Self {
        Self::spawn(Command::new(s3find_bin()), root, out, flags)
    }

    /// `cmd` runs s3find (directly, or through a wrapper that execs it).
    fn spawn(mut cmd: Command, root: &Path, out: &Path, flags: &[&str]) -> Self {
        let mut child = cmd
            .arg("--watch")
            .arg(root)
            .arg(out)
            .args(flags)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start s3find --watch");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                eprintln!("  | {line}");
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let w = Self {
            child: Some(child),
            stderr,
            out: out.to_owned(),
        };
        w.wait_for("s3find: watching:", Duration::from_secs(30));
        w
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn wait_for(&self, needle: &str, timeout: Duration) {
        let t = Instant::now();
        while !self.stderr().contains(needle) {
            assert!(
                t.elapsed() < timeout,
                "no {needle:?} on stderr within {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls the sets until `done` holds (or fails after `timeout`).
    fn wait_sets(&self, timeout: Duration, done: impl Fn(&Union) -> bool) -> Vec<Set> {
        let t = Instant::now();
        loop {
            let sets = read_sets(&self.out);
            if done(&Union::of(&sets)) {
                return sets;
            }
            assert!(
                t.elapsed() < timeout,
                "the sets did not reach the expected state within {timeout:?}: {:#?}\nstderr:\n{}",
                Union::of(&sets),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends TERM and waits for the exit.
    fn stop(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -TERM");
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                panic!("s3find did not stop within 15 s of TERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // Let the reader thread take the last lines.
        std::thread::sleep(Duration::from_millis(200));
        (status, self.stderr())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One incremental set, read back.
#[derive(Debug)]
struct Set {
    name: String,
    changed: Vec<String>,
    deleted: Vec<String>,
    manifest: serde_json::Value,
}

fn keys_of(dir: &Path) -> Vec<String> {
    let mut r = KeyListReader::open_optional(dir).unwrap();
    let mut v = Vec::new();
    while let Some(k) = r.next_key().unwrap() {
        v.push(k);
    }
    v
}

/// Every set in `out/incr`, in order, each checked: sorted key lists
/// that round-trip through `unescape`, counts that match the manifest.
fn read_sets(out: &Path) -> Vec<Set> {
    let incr = out.join("incr");
    let Ok(rd) = fs::read_dir(&incr) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let dir = incr.join(&name);
            let changed = keys_of(&dir);
            let deleted = keys_of(&dir.join("deleted"));
            for f in keylist::chunk_files(&dir)
                .unwrap()
                .into_iter()
                .chain(keylist::chunk_files(&dir.join("deleted")).unwrap())
            {
                for line in fs::read_to_string(&f).unwrap().lines() {
                    let key = keylist::unescape(line).unwrap();
                    assert_eq!(keylist::escape(&key), line, "{f:?}");
                }
            }
            let manifest: serde_json::Value =
                serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
            assert_eq!(manifest["name"], name.as_str());
            assert_eq!(manifest["changed"], changed.len() as u64, "{name}");
            assert_eq!(manifest["deleted"], deleted.len() as u64, "{name}");
            assert!(
                !changed.is_empty() || !deleted.is_empty(),
                "{name}: an empty set was written"
            );
            Set {
                name,
                changed,
                deleted,
                manifest,
            }
        })
        .collect()
}

/// All sets together: which set(s) listed each key.
#[derive(Debug, Default)]
struct Union {
    changed: BTreeMap<String, Vec<String>>,
    deleted: BTreeMap<String, Vec<String>>,
}

impl Union {
    fn of(sets: &[Set]) -> Self {
        let mut u = Self::default();
        for s in sets {
            for k in &s.changed {
                u.changed.entry(k.clone()).or_default().push(s.name.clone());
            }
            for k in &s.deleted {
                u.deleted.entry(k.clone()).or_default().push(s.name.clone());
            }
        }
        u
    }

    fn changed_keys(&self) -> BTreeSet<&str> {
        self.changed.keys().map(String::as_str).collect()
    }

    fn deleted_keys(&self) -> BTreeSet<&str> {
        self.deleted.keys().map(String::as_str).collect()
    }

    fn covers(&self, changed: &BTreeSet<&str>, deleted: &BTreeSet<&str>) -> bool {
        changed.is_subset(&self.changed_keys()) && deleted.is_subset(&self.deleted_keys())
    }

    /// Every key is in one set only.
    fn assert_once(&self) {
        for (k, v) in self.changed.iter().chain(&self.deleted) {
            assert_eq!(v.len(), 1, "{k:?} is listed in several sets: {v:?}");
        }
    }
}

/// Writes a file whose mtime is an hour ago: settled, whatever
/// `--quiet-secs` says.
fn old_file(root: &Path, key: &str, body: &[u8]) {
    let p = root.join(key);
    mkdir(p.parent().unwrap());
    fs::write(&p, body).unwrap();
    let t = SystemTime::now() - Duration::from_secs(3600);
    File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_times(FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

fn set_of<'a>(keys: &[&'a str]) -> BTreeSet<&'a str> {
    keys.iter().copied().collect()
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(out.join("s3find-watch-summary.json")).unwrap()).unwrap()
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn created_modified_renamed_and_deleted_keys_are_listed_exactly() {
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    let out = tmp.path().join("lists");
    let initial = [
        "keep/m.txt",
        "keep/r-old",
        "keep/d.txt",
        "keep/untouched",
        "olddir/f1",
        "olddir/sub/f2",
        "stable/s1",
        "stable/s2",
    ];
    for k in initial {
        old_file(&root, k, k.as_bytes());
    }
    // Events only: no rescan happens during the test.
    let w = Watch::start(&root, &out, &["--interval", "1", "--quiet-secs", "1"]);
    assert_eq!(
        support::read_keys(&out),
        set_of(&initial).into_iter().collect::<Vec<_>>()
    );

    let odd = "odd 50%\nline\r\t\u{e9}";
    fs::write(root.join("top.txt"), b"top").unwrap();
    mkdir(&root.join("new"));
    fs::write(root.join("new/a.txt"), b"a").unwrap();
    fs::write(root.join(odd), b"odd").unwrap();
    File::options()
        .append(true)
        .open(root.join("keep/m.txt"))
        .unwrap()
        .write_all(b" more")
        .unwrap();
    fs::rename(root.join("keep/r-old"), root.join("keep/r-new")).unwrap();
    fs::remove_file(root.join("keep/d.txt")).unwrap();
    fs::rename(root.join("olddir"), root.join("moveddir")).unwrap();
    mkdir(&root.join("newdir/sub"));
    fs::write(root.join("newdir/sub/x"), b"x").unwrap();
    // Reading raises events too; they change nothing.
    assert_eq!(
        fs::read(root.join("keep/untouched")).unwrap(),
        b"keep/untouched"
    );
    let _ = fs::read_dir(root.join("stable")).unwrap().count();

    let changed = set_of(&[
        "keep/m.txt",
        "keep/r-new",
        "moveddir/f1",
        "moveddir/sub/f2",
        "new/a.txt",
        "newdir/sub/x",
        odd,
        "top.txt",
    ]);
    let deleted = set_of(&["keep/d.txt", "keep/r-old", "olddir/f1", "olddir/sub/f2"]);
    w.wait_sets(Duration::from_secs(15), |u| u.covers(&changed, &deleted));
    // Two more intervals: nothing else may show up.
    std::thread::sleep(Duration::from_millis(2500));
    let (status, err) = w.stop();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("s3find: stopping"), "{err}");

    let sets = read_sets(&out);
    let u = Union::of(&sets);
    assert_eq!(u.changed_keys(), changed, "created and modified keys");
    assert_eq!(u.deleted_keys(), deleted, "deleted keys");
    u.assert_once();
    for (i, s) in sets.iter().enumerate() {
        assert_eq!(s.manifest["seq"], i as u64 + 1, "{}", s.name);
        assert_eq!(s.manifest["source"], "events", "{}", s.name);
        assert!(s.name.starts_with(&format!("{:06}-", i + 1)), "{}", s.name);
        let (a, b) = (
            s.manifest["window_start_unix"].as_f64().unwrap(),
            s.manifest["window_end_unix"].as_f64().unwrap(),
        );
        assert!(a < b, "{}: window {a}..{b}", s.name);
        if i > 0 {
            assert_eq!(
                s.manifest["window_start"],
                sets[i - 1].manifest["window_end"],
                "windows follow each other"
            );
        }
        if !s.changed.is_empty() {
            // A set is a key list s3migrate --src-folder takes as it is.
            assert_eq!(
                keylist::validate(&out.join("incr").join(&s.name)).unwrap(),
                s.changed.len() as u64
            );
        }
    }
    // No scratch folder is left; the stats agree.
    let left: Vec<_> = fs::read_dir(out.join("incr"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let sm = summary(&out);
    assert_eq!(sm["stopped"], true);
    assert_eq!(sm["rescans"], 0);
    assert_eq!(sm["sets"], sets.len() as u64);
    assert_eq!(sm["changed"], changed.len() as u64);
    assert_eq!(sm["deleted"], deleted.len() as u64);
    assert_eq!(sm["watch"]["limit_reached"], false);
    assert!(sm["events"].as_u64().unwrap() > 0);
    eprintln!("done in {:.1}s", t0.elapsed().as_secs_f64());
}

#[test]
fn changes_below_unwatched_directories_are_found_by_the_rescans() {
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    let out = tmp.path().join("lists");
    for d in 0..20 {
        for e in 0..3 {
            old_file(&root, &format!("deep/d{d:02}/e{e}/f"), b"f");
        }
    }
    old_file(&root, "top", b"t");
    let w = Watch::start(
        &root,
        &out,
        &[
            "--interval",
            "1",
            "--quiet-secs",
            "1",
            "--rescan-interval",
            "2",
            "--max-watches",
            "1",
        ],
    );
    let err = w.stderr();
    assert!(
        err.contains("watch limit reached after 1 directories (--max-watches 1)"),
        "{err}"
    );
    assert!(
        err.contains("1 directories watched, 81 without a watch"),
        "{err}"
    );

    fs::write(root.join("deep/d07/e1/new.txt"), b"new").unwrap();
    File::options()
        .append(true)
        .open(root.join("deep/d12/e0/f"))
        .unwrap()
        .write_all(b"+")
        .unwrap();
    fs::remove_file(root.join("deep/d15/e2/f")).unwrap();
    fs::rename(root.join("deep/d03/e1/f"), root.join("deep/d03/e1/g")).unwrap();
    mkdir(&root.join("deep/d19/e9"));
    fs::write(root.join("deep/d19/e9/h"), b"h").unwrap();

    let changed = set_of(&[
        "deep/d03/e1/g",
        "deep/d07/e1/new.txt",
        "deep/d12/e0/f",
        "deep/d19/e9/h",
    ]);
    let deleted = set_of(&["deep/d03/e1/f", "deep/d15/e2/f"]);
    w.wait_sets(Duration::from_secs(20), |u| u.covers(&changed, &deleted));
    std::thread::sleep(Duration::from_millis(2500));
    let (status, err) = w.stop();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("limit=reached (--max-watches 1"), "{err}");

    let sets = read_sets(&out);
    let u = Union::of(&sets);
    assert_eq!(u.changed_keys(), changed);
    assert_eq!(u.deleted_keys(), deleted);
    u.assert_once();
    // No watch saw any of it: all of it came from full scans.
    let total = |f: &str| -> u64 { sets.iter().map(|s| s.manifest[f].as_u64().unwrap()).sum() };
    assert_eq!(total("changed_by_scan"), changed.len() as u64);
    assert_eq!(total("deleted_by_scan"), deleted.len() as u64);
    assert!(sets.iter().any(|s| s.manifest["source"] == "rescan"));
    let sm = summary(&out);
    assert!(sm["rescans"].as_u64().unwrap() >= 1, "{sm}");
    assert_eq!(sm["watch"]["limit_reached"], true);
    assert_eq!(sm["watch"]["limit"], "--max-watches 1");
    assert_eq!(sm["watch"]["watched_dirs"], 1);
    assert!(
        sm["watch"]["unwatched_dirs"].as_u64().unwrap() >= 81,
        "{sm}"
    );
    assert_eq!(sm["changed_by_scan"], changed.len() as u64);
    eprintln!("done in {:.1}s", t0.elapsed().as_secs_f64());
}

#[test]
fn a_file_being_written_is_listed_once_it_settles() {
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    let out = tmp.path().join("lists");
    old_file(&root, "already", b"x");
    let w = Watch::start(&root, &out, &["--interval", "1", "--quiet-secs", "1"]);

    // Appends for about 2 s, across two or three intervals.
    let mut f = File::create(root.join("slow.bin")).unwrap();
    for _ in 0..9 {
        f.write_all(&[7u8; 100]).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
    let writing_ended = SystemTime::now();
    drop(f);
    let mtime = unix_secs(
        fs::metadata(root.join("slow.bin"))
            .unwrap()
            .modified()
            .unwrap(),
    );

    let want = set_of(&["slow.bin"]);
    w.wait_sets(Duration::from_secs(10), |u| {
        u.covers(&want, &BTreeSet::new())
    });
    std::thread::sleep(Duration::from_millis(2500));
    let (status, err) = w.stop();
    assert_eq!(status.code(), Some(0), "{err}");

    let sets = read_sets(&out);
    let u = Union::of(&sets);
    assert_eq!(u.changed_keys(), want);
    assert!(u.deleted.is_empty());
    u.assert_once();
    let set = sets
        .iter()
        .find(|s| s.changed.contains(&"slow.bin".into()))
        .unwrap();
    let written = set.manifest["written_unix"].as_f64().unwrap();
    assert!(
        written >= unix_secs(writing_ended) - 0.05,
        "listed at {written}, before the writing ended at {}",
        unix_secs(writing_ended)
    );
    assert!(
        written >= mtime + 1.0 - 0.05,
        "listed at {written}, less than --quiet-secs after its last write at {mtime}"
    );
    assert!(summary(&out)["held_back"].as_u64().unwrap() >= 1);
    eprintln!("done in {:.1}s", t0.elapsed().as_secs_f64());
}

/// A real ENOSPC from the kernel, without touching the machine's sysctls:
/// s3find runs in a user namespace of its own whose inotify watch limit
/// (`/proc/sys/user/max_inotify_watches`, per namespace) is 3. Skipped
/// where user namespaces cannot be made.
#[test]
fn the_kernels_watch_limit_is_reported_and_rescans_cover_the_rest() {
    const TEST: &str = "the_kernels_watch_limit_is_reported_and_rescans_cover_the_rest";
    let setup = "echo 3 > /proc/sys/user/max_inotify_watches";
    let probe = Command::new("unshare")
        .args(["-U", "-r", "sh", "-c", setup])
        .stderr(Stdio::null())
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        ferry_harness::skip(TEST, "cannot set an inotify limit in a new user namespace");
        return;
    }
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    let out = tmp.path().join("lists");
    for d in 0..10 {
        old_file(&root, &format!("d{d}/f"), b"f");
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["-U", "-r", "sh", "-c"])
        .arg(format!("{setup} && exec \"$0\" \"$@\""))
        .arg(s3find_bin());
    let w = Watch::spawn(
        cmd,
        &root,
        &out,
        &[
            "--interval",
            "1",
            "--quiet-secs",
            "0",
            "--rescan-interval",
            "2",
        ],
    );
    let err = w.stderr();
    assert!(
        err.contains("watch limit reached after 3 directories (the kernel's limit fs.inotify.max_user_watches"),
        "{err}"
    );
    for d in 0..10 {
        fs::write(root.join(format!("d{d}/new")), b"n").unwrap();
    }
    let changed: BTreeSet<String> = (0..10).map(|d| format!("d{d}/new")).collect();
    let changed: BTreeSet<&str> = changed.iter().map(String::as_str).collect();
    w.wait_sets(Duration::from_secs(15), |u| {
        u.covers(&changed, &BTreeSet::new())
    });
    let (status, err) = w.stop();
    assert_eq!(status.code(), Some(0), "{err}");
    let u = Union::of(&read_sets(&out));
    assert_eq!(u.changed_keys(), changed);
    u.assert_once();
    let sm = summary(&out);
    assert_eq!(sm["watch"]["limit_reached"], true);
    assert!(
        sm["watch"]["limit"]
            .as_str()
            .unwrap()
            .contains("fs.inotify.max_user_watches"),
        "{sm}"
    );
    assert_eq!(sm["watch"]["watched_dirs"], 3);
    assert_eq!(sm["watch"]["unwatched_dirs"], 8);
    eprintln!("done in {:.1}s", t0.elapsed().as_secs_f64());
}
