//! The no-lost-write rules across passes (acceptance 5 and 7), dry runs
//! (8), the progress line and the summary counts (9).

use ferry_harness::s3migrate as common;

use std::collections::BTreeMap;

use common::*;
use ferry_harness::{StoreKind, get_bytes, list_keys, put_objects};

/// The progress line exactly in the WEKA format.
const PROGRESS: &str = r"^obj=\d+ :: ign=\d+ exist=\d+ work=\d+ \[\d{1,3}% ~(\d+h:\d{2}m:\d{2}s|\?)\] :: fail=\d+ skip\(dn=\d+ up=\d+\) dnld=\d+ \(\d+\.\d/s\) dl\.byt=\d+(\.\d)?[KMGTP]?B \(\d+(\.\d)?[KMGTP]?B/s\) upld=\d+ \(\d+\.\d/s\) ul\.byt=\d+(\.\d)?[KMGTP]?B \(\d+(\.\d)?[KMGTP]?B/s\)$";

fn progress_lines(err: &str) -> Vec<String> {
    err.lines()
        .filter(|l| l.starts_with("obj="))
        .map(str::to_owned)
        .collect()
}

fn field(line: &str, name: &str) -> u64 {
    let at = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
    line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// Acceptance 5, 7 (second half) and 9, with moto as the destination since
/// it enforces conditional writes.
#[test]
fn newer_destination_objects_are_never_overwritten() {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    let (sc, dc) = (src.client(), dest.client());
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let rt = rt();
    let n = 60u64;
    rt.block_on(put_objects(
        &sc,
        "src-bucket",
        (0..n).map(|i| (format!("obj/{i:03}"), data(i, 1000 + i as usize))),
        8,
    ))
    .unwrap();
    // A client already wrote a newer obj/007 on the destination.
    let client_bytes = data(7777, 55);
    rt.block_on(put_objects(
        &dc,
        "dest-bucket",
        [("obj/007".to_owned(), client_bytes.clone())],
        1,
    ))
    .unwrap();

    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-list");
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0));
    let s = last_summary(&folder);
    let o = counts(&s);
    assert_eq!(o["obj"], n);
    assert_eq!(o["copied"], n - 1);
    assert_eq!(o["skip_up"], 1);
    assert_eq!(
        rt.block_on(get_bytes(&dc, "dest-bucket", "obj/007"))
            .unwrap(),
        client_bytes
    );

    // Acceptance 9: every progress line matches the format, and the last one
    // agrees with the summary.
    let re = regex::Regex::new(PROGRESS).unwrap();
    let lines = progress_lines(&stderr(&out));
    assert!(!lines.is_empty(), "no progress line");
    for l in &lines {
        assert!(re.is_match(l), "progress line off format: {l}");
    }
    let last = lines.last().unwrap();
    assert_eq!(field(last, "obj"), n);
    assert_eq!(field(last, "upld"), n - 1);
    assert_eq!(field(last, "up"), 1);
    assert!(last.contains("[100% ~0h:00m:00s]"), "{last}");

    // Between passes: the source changes obj/010 and obj/011; a client
    // overwrites obj/011 and obj/012 on the destination.
    let new10 = data(1010, 2000);
    rt.block_on(put_objects(
        &sc,
        "src-bucket",
        [
            ("obj/010".to_owned(), new10.clone()),
            ("obj/011".to_owned(), data(1011, 2000)),
        ],
        2,
    ))
    .unwrap();
    let client11 = data(2011, 30);
    let client12 = data(2012, 30);
    rt.block_on(put_objects(
        &dc,
        "dest-bucket",
        [
            ("obj/011".to_owned(), client11.clone()),
            ("obj/012".to_owned(), client12.clone()),
        ],
        2,
    ))
    .unwrap();

    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-list");
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0));
    let o = counts(&last_summary(&folder));
    // obj/010 rewritten (If-Match on the copier's own write); obj/007,
    // obj/011 and obj/012 belong to clients.
    assert_eq!(o["copied"], 1, "{o}");
    assert_eq!(o["skip_up"], 3, "{o}");
    assert_eq!(o["exist"], n - 4, "{o}");
    assert_eq!(
        rt.block_on(get_bytes(&dc, "dest-bucket", "obj/010"))
            .unwrap(),
        new10
    );
    assert_eq!(
        rt.block_on(get_bytes(&dc, "dest-bucket", "obj/011"))
            .unwrap(),
        client11
    );
    assert_eq!(
        rt.block_on(get_bytes(&dc, "dest-bucket", "obj/012"))
            .unwrap(),
        client12
    );
    assert_eq!(
        rt.block_on(get_bytes(&dc, "dest-bucket", "obj/007"))
            .unwrap(),
        client_bytes
    );
}

/// Acceptance 8: a dry run of the first 100 keys writes nothing and reports
/// what it would do.
#[test]
fn dry_run_first_100_leaves_destination_untouched() {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let lists = tmp.path().join("lists");
    let rt = rt();
    let keys: Vec<String> = (0..250).map(|i| format!("d/{i:04}")).collect();
    rt.block_on(put_objects(
        &src.client(),
        "src-bucket",
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), data(i as u64, 64))),
        8,
    ))
    .unwrap();
    // One of the first 100 is on the destination already.
    rt.block_on(put_objects(
        &dest.client(),
        "dest-bucket",
        [("d/0003".to_owned(), data(3, 64))],
        1,
    ))
    .unwrap();
    write_key_list(&lists, &keys);
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder")
        .arg(&lists)
        .args(["--dry-run", "--first", "100"]);
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("dry run"), "{}", stdout(&out));
    let s = last_summary(&folder);
    assert_eq!(s["dry_run"], true);
    let o = counts(&s);
    assert_eq!(o["obj"], 100);
    assert_eq!(o["copied"], 99, "would copy");
    assert_eq!(o["exist"], 1);
    assert_eq!(
        rt.block_on(list_keys(&dest.client(), "dest-bucket"))
            .unwrap(),
        vec!["d/0003".to_owned()]
    );
    assert!(
        !folder.join("migrate.log").exists(),
        "a dry run must not write migrate.log"
    );
}

/// Acceptance 7 (first half): a full pass of 20,000 keys onto an empty
/// destination sends no per-key HEAD, counted by the stores themselves.
#[test]
fn full_pass_onto_empty_destination_sends_no_head() {
    let (src, dest) = pair(StoreKind::Garage, StoreKind::Garage);
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let lists = tmp.path().join("lists");
    let rt = rt();
    let n = 20_000;
    let keys: Vec<String> = (0..n).map(|i| format!("h/{i:05}")).collect();
    rt.block_on(put_objects(
        &src.client(),
        "src-bucket",
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), data(i as u64, 256))),
        32,
    ))
    .unwrap();
    write_key_list(&lists, &keys);
    let heads = |counts: &BTreeMap<String, u64>| counts.get("HeadObject").copied().unwrap_or(0);
    let src_before = heads(&src.request_counts().unwrap());
    let dest_before = heads(&dest.request_counts().unwrap());
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder").arg(&lists).args(["--threads", "48"]);
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0));
    let o = counts(&last_summary(&folder));
    assert_eq!(o["copied"], n);
    let src_heads = heads(&src.request_counts().unwrap()) - src_before;
    let dest_heads = heads(&dest.request_counts().unwrap()) - dest_before;
    assert_eq!(src_heads, 0, "HEADs sent to the source");
    assert_eq!(dest_heads, 0, "HEADs sent to the destination");
    // The same bucket listed again: every key is there, none twice.
    let listed = rt
        .block_on(list_keys(&dest.client(), "dest-bucket"))
        .unwrap();
    assert_eq!(listed, keys);
}

/// `--passes N`: after the full pass, differential passes run until one
/// changes nothing. Here pass 1 copies everything, pass 2 finds nothing to
/// do, and no third pass runs.
#[test]
fn passes_stop_when_nothing_changes() {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let rt = rt();
    rt.block_on(put_objects(
        &src.client(),
        "src-bucket",
        (0..40).map(|i| (format!("p/{i:02}"), data(i, 300))),
        8,
    ))
    .unwrap();
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.args(["--src-list", "--passes", "3"]);
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0));
    let summaries: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("summary-"))
        .collect();
    assert_eq!(summaries.len(), 2, "{summaries:?}");
    let o = counts(&last_summary(&folder));
    assert_eq!(o["exist"], 40);
    assert_eq!(o["copied"], 0);
    assert!(stdout(&out).contains("pass 2:"), "{}", stdout(&out));
}

/// Key lists of the destination in the dest folder (s3find run on the
/// target) stand in for listing it; tags are copied where both stores
/// have tagging.
#[test]
fn destination_key_lists_and_tags() {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    let (sc, dc) = (src.client(), dest.client());
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let lists = tmp.path().join("lists");
    let rt = rt();
    let keys: Vec<String> = (0..30).map(|i| format!("t/{i:02}")).collect();
    rt.block_on(put_objects(
        &sc,
        "src-bucket",
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), data(i as u64, 100))),
        4,
    ))
    .unwrap();
    rt.block_on(async {
        sc.put_object()
            .bucket("src-bucket")
            .key("t/tagged")
            .body(data(99, 10).into())
            .tagging("team=blue&note=a%20b")
            .send()
            .await
            .unwrap();
    });
    let mut all = keys.clone();
    all.push("t/tagged".to_owned());
    write_key_list(&lists, &all);
    // The destination already holds t/00..t/09, the same bytes; its key
    // list says so.
    rt.block_on(put_objects(
        &dc,
        "dest-bucket",
        keys[..10]
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), data(i as u64, 100))),
        4,
    ))
    .unwrap();
    write_key_list(&folder, &keys[..10]);
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder").arg(&lists);
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0));
    let o = counts(&last_summary(&folder));
    assert_eq!(o["exist"], 10, "{o}");
    assert_eq!(o["copied"], 21, "{o}");
    let tags = rt.block_on(async {
        dc.get_object_tagging()
            .bucket("dest-bucket")
            .key("t/tagged")
            .send()
            .await
            .unwrap()
    });
    let mut got: Vec<(String, String)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("note".into(), "a b".into()),
            ("team".into(), "blue".into())
        ]
    );
}
