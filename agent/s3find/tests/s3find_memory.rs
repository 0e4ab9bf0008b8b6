//! Sorting in bounded memory: with a small `--memory-mb`, sorted runs spill
//! to disk and a k-way merge writes the chunks; the output is still exactly
//! the fully sorted set of keys.

use ferry_harness::s3find as support;

use std::fs;
use std::time::Instant;

use ferry_control::keylist::KeyListWriter;
use s3find::sort::{ExternalSorter, SortConfig};
use support::*;

const MIB: usize = 1024 * 1024;

/// A million names shaped like a bucket's keys: shared prefixes, mixed
/// lengths, unicode, and a few duplicates (a tree has none, but the merge
/// must still write strictly increasing keys).
fn names(n: usize) -> Vec<String> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut v: Vec<String> = (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let dir = x % 1000;
            match i % 4 {
                0 => format!("photos/{dir:03}/IMG_{:08}.jpg", x % 100_000_000),
                1 => format!("logs/{dir}/{:x}%{}", x, i),
                2 => format!("\u{e9}t\u{e9}/{dir}/{}", bulk_name(dir as usize, i)),
                _ => format!("{:x}/{}", x >> 40, i),
            }
        })
        .collect();
    for i in 0..1000 {
        let dup = v[i * 7].clone();
        v.push(dup);
    }
    v
}

#[test]
fn sorter_sorts_1m_names_in_4_mib_through_spilled_runs() {
    let t0 = Instant::now();
    let keys = names(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    fs::create_dir(&runs).unwrap();
    let out = tmp.path().join("out");

    let mut sorter = ExternalSorter::new(&runs, SortConfig::with_memory(4 * MIB));
    for k in &keys {
        sorter.push(k.as_bytes()).unwrap();
    }
    assert!(
        sorter.runs_spilled() > 1,
        "4 MiB cannot hold a million keys"
    );
    let mut w = KeyListWriter::create(&out, "chunk-").unwrap();
    let stats = sorter
        .finish(&mut |k| {
            w.push(std::str::from_utf8(k).unwrap())
                .map_err(s3find::FindError::from)
        })
        .unwrap();
    let chunks = w.finish().unwrap();
    eprintln!("{stats:?} in {:.1}s", t0.elapsed().as_secs_f64());
    let key_bytes: usize = keys.iter().map(|k| k.len() + 8).sum();
    assert!(
        stats.runs_spilled as usize >= key_bytes / (4 * MIB),
        "{} runs for {key_bytes} bytes of keys in 4 MiB",
        stats.runs_spilled
    );
    assert_eq!(
        fs::read_dir(&runs).unwrap().count(),
        0,
        "run files removed after the merge"
    );

    let mut want = keys;
    want.sort_unstable();
    want.dedup();
    assert_eq!(stats.keys, want.len() as u64);
    assert_eq!(chunks as usize, want.len().div_ceil(100_000));
    let got = read_chunks(&out).concat();
    assert!(got == want, "merged keys differ from the fully sorted set");
}

/// A million empty files in 1,000 directories, made by two threads; returns
/// their keys, sorted.
fn million_files(root: &std::path::Path) -> Vec<String> {
    mkdir(root);
    let mut keys: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                s.spawn(move || {
                    let mut keys = Vec::with_capacity(500_000);
                    let mut path = root.to_path_buf();
                    for d in (t..1000).step_by(2) {
                        let dir = format!("d{d:03}");
                        path.push(&dir);
                        fs::create_dir(&path).unwrap();
                        for i in 0..1000 {
                            let name = bulk_name(d, i);
                            path.push(&name);
                            fs::File::create(&path).unwrap();
                            path.pop();
                            keys.push(format!("{dir}/{name}"));
                        }
                        path.pop();
                    }
                    keys
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    keys.sort_unstable();
    keys
}

#[test]
fn s3find_with_4_mib_on_a_million_files() {
    let t0 = Instant::now();
    let scratch = match Scratch::tmpfs("2g") {
        Ok(s) => s,
        Err(why) => {
            ferry_harness::skip("s3find_with_4_mib_on_a_million_files", &why);
            return;
        }
    };
    let root = scratch.path().join("tree");
    let want = million_files(&root);
    let made = t0.elapsed().as_secs_f64();

    let out = scratch.path().join("out");
    let o = run(std::process::Command::new(s3find_bin())
        .arg(&root)
        .arg(&out)
        .args(["--memory-mb", "4", "--progress-interval-secs", "2"]));
    assert_eq!(o.status.code(), Some(0));
    let scanned = t0.elapsed().as_secs_f64() - made;
    let s = summary(&out);
    assert_eq!(s["files"], 1_000_000);
    assert_eq!(s["sort"]["memory_limit_bytes"], 4 * MIB as u64);
    let runs = s["sort"]["runs_spilled"].as_u64().unwrap();
    assert!(runs > 1, "spilled {runs} runs: {s}");
    assert!(
        stderr(&o).contains("merging"),
        "the merge phase is announced"
    );
    // 4 MiB for keys, plus the binary itself and I/O buffers: well below
    // what the keys alone would take in memory.
    let rss = s["peak_rss_bytes"].as_u64().unwrap() as usize;
    let in_memory: usize = want.iter().map(|k| k.len() + 8).sum();
    eprintln!(
        "peak RSS {} MiB, {runs} runs; the keys alone are {} MiB",
        rss / MIB,
        in_memory / MIB
    );
    assert!(
        rss < 32 * MIB && rss < in_memory,
        "peak RSS {rss} bytes with --memory-mb 4 ({in_memory} bytes of keys)"
    );

    let chunks = read_chunks(&out);
    assert_eq!(chunks.len(), 10);
    assert!(chunks.iter().all(|c| c.len() == 100_000));
    assert!(chunks.concat() == want, "keys differ from the tree");
    // No scratch left behind.
    assert!(
        fs::read_dir(&out).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".s3find-tmp")),
        "spill folder not removed"
    );
    eprintln!(
        "tree made in {made:.1}s, scanned and checked in {scanned:.1}s, total {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}
