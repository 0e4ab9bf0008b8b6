//! Acceptance 10: bad input gets one clear line and exit code 2, with
//! nothing written (no dest folder, no object on the destination).

use ferry_harness::s3migrate as common;

use common::*;
use ferry_harness::{StoreKind, list_keys};

fn assert_refused(out: &std::process::Output, must_contain: &[&str], folder: &std::path::Path) {
    assert_eq!(out.status.code(), Some(2), "exit code");
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "want exactly one line of error, got: {err}");
    for m in must_contain {
        assert!(
            lines[0].to_lowercase().contains(&m.to_lowercase()),
            "error line {:?} should mention {m:?}",
            lines[0]
        );
    }
    assert!(
        !folder.exists(),
        "dest folder was created despite the refusal"
    );
}

#[test]
fn bad_input_is_refused_with_one_line_and_exit_2() {
    let (src, dest) = pair(StoreKind::Garage, StoreKind::Garage);
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("dest-folder");
    let lists = tmp.path().join("lists");
    write_key_list(&lists, &["a".to_owned(), "b".to_owned()]);
    let rt = rt();
    rt.block_on(ferry_harness::put_objects(
        &src.client(),
        "src-bucket",
        [("a".to_owned(), data(1, 10)), ("b".to_owned(), data(2, 10))],
        2,
    ))
    .unwrap();

    // A missing required flag.
    let mut c = std::process::Command::new(s3migrate_bin());
    c.args(["--src-bucket", "x", "--dest-folder"]).arg(&folder);
    assert_refused(&run(&mut c), &["--src-url"], &folder);

    // A wrong secret on Garage: the 403 is named as such.
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder").arg(&lists);
    c.env("S3MIGRATE_SRC_SECRET", src.wrong_secret());
    assert_refused(&run(&mut c), &["403", "access denied", "secret"], &folder);

    // The same through --dest-secret-file.
    let secret_file = tmp.path().join("dest.secret");
    std::fs::write(&secret_file, format!("{}\n", dest.wrong_secret())).unwrap();
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.env_remove("S3MIGRATE_DEST_SECRET")
        .arg("--dest-secret-file")
        .arg(&secret_file)
        .arg("--src-folder")
        .arg(&lists);
    assert_refused(&run(&mut c), &["destination", "403"], &folder);

    // A bucket that does not exist.
    let mut c = s3migrate(&src, "no-such-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder").arg(&lists);
    assert_refused(&run(&mut c), &["no-such-bucket", "no such bucket"], &folder);

    // A src-folder that cannot be read: missing, and a file where a
    // directory should be (the tests run as root, so permissions would not
    // stop a read).
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder").arg(tmp.path().join("missing"));
    assert_refused(&run(&mut c), &["--src-folder", "missing"], &folder);
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder").arg(&secret_file);
    assert_refused(&run(&mut c), &["--src-folder"], &folder);

    // A malformed chunk: out of order, and a broken escape. The error names
    // the file and line.
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("chunk-000000.keys"), "a\nc\nb\n").unwrap();
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder").arg(&bad);
    assert_refused(&run(&mut c), &["chunk-000000.keys:3", "order"], &folder);
    std::fs::write(bad.join("chunk-000000.keys"), "a\nb%zz\n").unwrap();
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder").arg(&bad);
    assert_refused(&run(&mut c), &["chunk-000000.keys:2", "escape"], &folder);

    // Nothing reached the destination bucket.
    let keys = rt
        .block_on(list_keys(&dest.client(), "dest-bucket"))
        .unwrap();
    assert!(keys.is_empty(), "destination was written: {keys:?}");
}

/// Acceptance 5 (Garage half): a destination that ignores conditional
/// writes is refused in one sentence; with --allow-overwrite the run goes on
/// and warns that the guarantee is off.
#[test]
fn garage_destination_needs_allow_overwrite() {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Garage);
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let rt = rt();
    rt.block_on(ferry_harness::put_objects(
        &src.client(),
        "src-bucket",
        (0..20).map(|i| (format!("k{i}"), data(i, 100))),
        4,
    ))
    .unwrap();

    let mut c = s3migrate_strict(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-list");
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("If-None-Match") && lines[0].contains("--allow-overwrite"),
        "{err}"
    );
    assert!(!folder.exists());
    let keys = rt
        .block_on(list_keys(&dest.client(), "dest-bucket"))
        .unwrap();
    assert!(
        keys.is_empty(),
        "probe objects or data left behind: {keys:?}"
    );

    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-list");
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("no-lost-write guarantee is off"),
        "{}",
        stderr(&out)
    );
    let keys = rt
        .block_on(list_keys(&dest.client(), "dest-bucket"))
        .unwrap();
    assert_eq!(keys.len(), 20, "{keys:?}");
}
