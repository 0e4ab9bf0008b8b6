//! Helpers shared by the s3find tests (`ferry_harness::s3find`): the real
//! `s3find` binary, a test tree with every awkward kind of entry, and
//! checks on the chunk files it writes.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferry_control::keylist;

pub use crate::s3find_bin;

/// File names that need care as S3 keys or key-list lines.
pub const ODD_NAMES: &[&str] = &[
    "with space",
    "two  spaces ",
    "50%",
    "%25 literal",
    "%0A not a newline",
    "a+b",
    "caf\u{e9}",   // NFC
    "cafe\u{301}", // NFD: a different key
    "cr\rname",
    "lf\nname",
    "crlf\r\nname",
    "tab\tname",
    "ctrl\u{1}x",
    "del\u{7f}x",
    "hash#tag",
    "what?",
    "amp&er=eq;semi",
    "star*[br]{ce}",
    "back\\slash",
    "quote\"s'",
    "\u{65e5}\u{672c}\u{8a9e}",
    "emoji\u{1f600}",
    "~tilde",
    "-dash",
    "..dots",
    ".hidden",
    "UPPER",
    "lower",
    "\u{ff5e}fullwidth",
];

/// Directory names with odd characters; each gets a few files.
pub const ODD_DIRS: &[&str] = &["dir with space", "d%25", "\u{fc}n\u{ef}", "q?#", "lf\ndir"];

/// What a tree holds, as s3find should see it.
#[derive(Debug)]
pub struct Tree {
    pub root: PathBuf,
    /// Every key s3find must list, with the file's content.
    pub files: BTreeMap<String, Vec<u8>>,
    pub symlinks: u64,
    pub special: u64,
    pub non_utf8: u64,
    pub too_long: u64,
    /// Keys of the files inside the unreadable directory (also in `files`).
    pub locked: Vec<String>,
    pub locked_dir: Option<PathBuf>,
}

/// Creates a directory (and parents) with mode 0755 whatever the umask,
/// so that another user can walk it.
pub fn mkdir(p: &Path) {
    let mut cur = PathBuf::new();
    for c in p.components() {
        cur.push(c);
        if !cur.exists() {
            fs::create_dir(&cur).unwrap();
            fs::set_permissions(&cur, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

/// Deterministic content: empty for one file in five, else up to 2 KiB.
pub fn content(i: u64) -> Vec<u8> {
    if i.is_multiple_of(5) {
        return Vec::new();
    }
    // The length comes from the stream's seed state, the bytes after it.
    let len = ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1) % 2048) as usize;
    crate::xorshift_bytes(i, len)
}

impl Tree {
    pub fn new(root: &Path) -> Self {
        mkdir(root);
        Self {
            root: root.to_owned(),
            files: BTreeMap::new(),
            symlinks: 0,
            special: 0,
            non_utf8: 0,
            too_long: 0,
            locked: Vec::new(),
            locked_dir: None,
        }
    }

    /// A regular file that must become the key `key`.
    pub fn file(&mut self, key: &str, body: Vec<u8>) {
        let p = self.root.join(key);
        mkdir(p.parent().unwrap());
        fs::write(&p, &body).unwrap();
        self.files.insert(key.to_owned(), body);
    }

    /// Every odd name as a file, in the root, in a nested directory and in
    /// each odd directory; hidden files and ignore files that ripgrep would
    /// honour; deep nesting.
    pub fn odd_entries(&mut self) {
        self.odd_entries_where(|_| true);
    }

    /// [`Tree::odd_entries`] with only the odd names `keep` accepts.
    pub fn odd_entries_where(&mut self, keep: impl Fn(&str) -> bool) {
        let mut i = 1;
        let mut next = || {
            i += 1;
            content(i)
        };
        for name in ODD_NAMES.iter().filter(|n| keep(n)) {
            self.file(name, next());
            self.file(&format!("nested/a/b/{name}"), next());
        }
        for dir in ODD_DIRS.iter().filter(|n| keep(n)) {
            for name in ["x", "y z", "50%"] {
                self.file(&format!("{dir}/{name}"), next());
            }
        }
        // ripgrep's walker would skip all of these by default.
        self.file(".gitignore", b"*\n".to_vec());
        self.file(".ignore", b"*\n".to_vec());
        self.file(".git/config", next());
        self.file(".hidden-dir/file", next());
        self.file("deep/1/2/3/4/5/6/7/8/9/10/11/12/file", next());
        for n in 0..20 {
            self.file(&format!("empty/e{n:02}"), Vec::new());
        }
    }

    /// Entries that are not keys: symlinks, a FIFO, a socket, names that
    /// are not UTF-8, a key over 1,024 bytes.
    pub fn non_keys(&mut self) {
        let r = self.root.clone();
        mkdir(&r.join("links"));
        std::os::unix::fs::symlink("../with space", r.join("links/to-file")).unwrap();
        std::os::unix::fs::symlink("../deep", r.join("links/to-dir")).unwrap();
        std::os::unix::fs::symlink("nowhere", r.join("links/dangling")).unwrap();
        self.symlinks += 3;

        mkdir(&r.join("special"));
        let fifo = r.join("special/fifo");
        let st = Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("run mkfifo");
        assert!(st.success(), "mkfifo failed");
        // The listener is dropped at once; the socket file stays.
        std::os::unix::net::UnixListener::bind(r.join("special/socket")).unwrap();
        self.special += 2;

        let bad = OsStr::from_bytes(b"bad-\xff-name");
        fs::write(r.join(bad), b"x").unwrap();
        let bad_dir = r.join(OsStr::from_bytes(b"bad-\xfe-dir"));
        mkdir(&bad_dir);
        fs::write(bad_dir.join("inside-1"), b"x").unwrap();
        fs::write(bad_dir.join("inside-2"), b"x").unwrap();
        self.non_utf8 += 3;

        // 5 x 250 bytes of directory names: the key is over 1,024 bytes.
        let mut long = r.join("long");
        for c in ["a", "b", "c", "d", "e"] {
            long.push(c.repeat(250));
        }
        mkdir(&long);
        fs::write(long.join("file"), b"x").unwrap();
        self.too_long += 1;
        // Exactly at the limit: still a key.
        let dirs = ["a", "b", "c", "d"].map(|c| c.repeat(250)).join("/");
        let key = format!("long/{dirs}/{}", "k".repeat(1024 - 5 - 4 * 251));
        assert_eq!(key.len(), 1024);
        self.file(&key, b"y".to_vec());
    }

    /// A directory made unreadable (mode 000) with files in it. They stay
    /// in `files`; a caller that can make the directory unreadable removes
    /// them from the expected keys with [`Tree::expect_locked_missing`].
    pub fn locked_dir(&mut self) {
        for n in 0..3 {
            let key = format!("locked/f{n}");
            self.file(&key, content(n));
            self.locked.push(key);
        }
        let d = self.root.join("locked");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o000)).unwrap();
        self.locked_dir = Some(d);
    }

    pub fn expect_locked_missing(&mut self) {
        for k in &self.locked {
            self.files.remove(k);
        }
    }

    /// `dirs` directories of `per_dir` files (empty, or with [`content`]),
    /// made by two threads.
    /// Names vary in length and first byte so the order is not trivial.
    pub fn bulk(&mut self, dirs: usize, per_dir: usize, with_content: bool) {
        let root = self.root.join("bulk");
        mkdir(&root);
        let names: Vec<Vec<(String, Vec<u8>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|t| {
                    let root = &root;
                    s.spawn(move || {
                        let mut keys = Vec::new();
                        for d in (t..dirs).step_by(2) {
                            let dir = root.join(format!("d{d:04}"));
                            mkdir(&dir);
                            for i in 0..per_dir {
                                let name = bulk_name(d, i);
                                let body = if with_content {
                                    content((d * per_dir + i) as u64)
                                } else {
                                    Vec::new()
                                };
                                fs::write(dir.join(&name), &body).unwrap();
                                keys.push((format!("bulk/d{d:04}/{name}"), body));
                            }
                        }
                        keys
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        self.files.extend(names.into_iter().flatten());
    }
}

pub fn bulk_name(d: usize, i: usize) -> String {
    const FIRST: [&str; 6] = ["", "A", "z", "\u{e9}", "_", "0"];
    let h = (d as u64 * 1_000_003 + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{}{:x}-{i}", FIRST[i % FIRST.len()], h >> (i % 40))
}

impl Drop for Tree {
    /// Give the locked directory its mode back so the temp dir can go.
    fn drop(&mut self) {
        if let Some(d) = &self.locked_dir {
            let _ = fs::set_permissions(d, fs::Permissions::from_mode(0o755));
        }
    }
}

/// Runs `s3find` with `args`; prints its stderr tail for failures.
pub fn s3find(args: &[&OsStr]) -> Output {
    run(Command::new(crate::s3find_bin()).args(args))
}

pub fn run(cmd: &mut Command) -> Output {
    let t = std::time::Instant::now();
    let out = cmd.output().expect("run s3find");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    eprintln!(
        "s3find exit={:?} in {:.1}s\n--- stderr (tail)\n{}",
        out.status.code(),
        t.elapsed().as_secs_f64(),
        lines[lines.len().saturating_sub(25)..].join("\n")
    );
    out
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn summary(out_dir: &Path) -> serde_json::Value {
    let text = fs::read(out_dir.join("s3find-summary.json")).expect("s3find-summary.json");
    serde_json::from_slice(&text).unwrap()
}

/// Reads a key-list folder chunk by chunk, independently of
/// `KeyListReader`'s own checks: every chunk holds at most 100,000 lines,
/// each line unescapes, keys strictly increase by raw bytes within and
/// across chunks. Returns the chunks' keys, in order.
pub fn read_chunks(out_dir: &Path) -> Vec<Vec<String>> {
    let files = keylist::chunk_files(out_dir).unwrap();
    let mut chunks = Vec::new();
    let mut last: Option<String> = None;
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("chunk-") && name.ends_with(".keys"),
            "unexpected chunk name {name}"
        );
        let text = fs::read_to_string(f).unwrap();
        assert!(text.ends_with('\n'), "{name} does not end with a newline");
        assert!(!text.contains('\r'), "{name} holds a raw CR");
        let mut keys = Vec::new();
        for line in text.lines() {
            let key = keylist::unescape(line)
                .unwrap_or_else(|e| panic!("{name}: bad line {line:?}: {e}"));
            assert_eq!(keylist::escape(&key), line, "{name}: not canonical");
            if let Some(prev) = &last {
                assert!(
                    prev.as_bytes() < key.as_bytes(),
                    "{name}: {key:?} does not sort after {prev:?}"
                );
            }
            last = Some(key.clone());
            keys.push(key);
        }
        assert!(!keys.is_empty(), "{name} is empty");
        assert!(keys.len() <= 100_000, "{name} holds {} keys", keys.len());
        chunks.push(keys);
    }
    // The crate's reader agrees.
    if !files.is_empty() {
        let n = keylist::validate(out_dir).unwrap();
        assert_eq!(n as usize, chunks.iter().map(Vec::len).sum::<usize>());
    }
    chunks
}

/// All keys of a key-list folder, through `KeyListReader`.
pub fn read_keys(out_dir: &Path) -> Vec<String> {
    let mut r = keylist::KeyListReader::open(out_dir).unwrap();
    let mut keys = Vec::new();
    while let Some(k) = r.next_key().unwrap() {
        keys.push(k);
    }
    keys
}

/// The effective uid, from a file we create.
pub fn my_uid(dir: &Path) -> u32 {
    let p = dir.join(".uid-probe");
    fs::write(&p, b"").unwrap();
    let uid = fs::metadata(&p).unwrap().uid();
    fs::remove_file(&p).unwrap();
    uid
}

/// Asserts that a string list is sorted by raw bytes, as `LC_ALL=C sort`
/// would put it, by running `sort` on the keys without a newline.
pub fn assert_c_sort_agrees(keys: &[String], scratch: &Path) {
    let plain: Vec<&String> = keys.iter().filter(|k| !k.contains('\n')).collect();
    let mut input = Vec::new();
    for k in &plain {
        input.extend_from_slice(k.as_bytes());
        input.push(b'\n');
    }
    let unsorted = scratch.join("sort-input");
    // Reverse order, so `sort` has work to do.
    let mut rev = Vec::new();
    for k in plain.iter().rev() {
        rev.extend_from_slice(k.as_bytes());
        rev.push(b'\n');
    }
    fs::write(&unsorted, &rev).unwrap();
    let out = Command::new("sort")
        .env_clear()
        .env("LC_ALL", "C")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg(&unsorted)
        .output()
        .expect("run sort");
    assert!(out.status.success(), "sort failed");
    assert!(
        out.stdout == input,
        "LC_ALL=C sort orders {} keys differently from s3find",
        plain.len()
    );
}

/// A scratch directory for big trees: a tmpfs mounted for this test when
/// we may mount (file creation there is several times faster than on a
/// journalled disk), else a plain temp dir. Unmounted on drop.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    mounted: bool,
}

impl Scratch {
    pub fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},nr_inodes=4m,mode=0755"))
            .arg("tmpfs")
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        let mounted = matches!(st, Ok(s) if s.success());
        if !mounted {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self { dir, mounted }
    }

    /// Mounts a tmpfs, or says why not.
    pub fn tmpfs(size: &str) -> Result<Self, String> {
        let s = Self::new(size);
        if s.mounted {
            Ok(s)
        } else {
            Err(format!(
                "cannot mount a tmpfs on {}",
                s.dir.path().display()
            ))
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn is_tmpfs(&self) -> bool {
        self.mounted
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.mounted {
            let st = Command::new("umount").arg(self.dir.path()).status();
            if !matches!(st, Ok(s) if s.success()) {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(self.dir.path())
                    .status();
            }
        }
    }
}
