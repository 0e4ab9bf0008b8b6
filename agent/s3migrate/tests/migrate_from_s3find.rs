//! s3find's key lists drive s3migrate: the real s3find lists a tree of
//! odd names, the real s3migrate copies it between two real stores with
//! `--src-folder`, and the copy matches the tree byte for byte; a second
//! scan replaces the list only with `--overwrite`.

use std::ffi::OsStr;
use std::fs;

use ferry_harness::s3find::{Tree, read_chunks, s3find, stderr};
use ferry_harness::s3migrate as common;
use ferry_harness::{StoreKind, get_bytes, list_keys, put_objects};

/// Garage keeps every key exactly, LF included, but ignores conditional
/// writes (s3migrate then runs with --allow-overwrite).
#[test]
fn keys_from_s3find_drive_s3migrate_to_a_byte_identical_copy_on_garage() {
    copy_tree_through_s3find_and_s3migrate(StoreKind::Garage);
}

/// moto enforces conditional writes, but moto 5.2.5 answers 404 to any key
/// with a line feed (its URL routing stops at LF), so its tree has none.
#[test]
fn keys_from_s3find_drive_s3migrate_to_a_byte_identical_copy_on_moto() {
    copy_tree_through_s3find_and_s3migrate(StoreKind::Moto);
}

fn copy_tree_through_s3find_and_s3migrate(kind: StoreKind) {
    let lf_ok = kind == StoreKind::Garage;
    if !lf_ok {
        ferry_harness::note(
            "keys_from_s3find_drive_s3migrate_to_a_byte_identical_copy_on_moto (keys with LF)",
            "moto 5.2.5 answers 404 to keys with a line feed; the Garage variant copies them",
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut tree = Tree::new(&tmp.path().join("tree"));
    tree.odd_entries_where(|name| lf_ok || !name.contains('\n'));
    tree.non_keys();
    // moto is slow (about 130 objects/s here): its tree is half the size.
    tree.bulk(10, if lf_ok { 195 } else { 95 }, true);
    let n = tree.files.len();
    assert!(n >= if lf_ok { 2_000 } else { 1_000 }, "{n}");

    let out = tmp.path().join("lists");
    let o = s3find(&[tree.root.as_os_str(), out.as_os_str()]);
    assert_eq!(o.status.code(), Some(0));
    let keys: Vec<String> = read_chunks(&out).concat();
    assert_eq!(keys, tree.files.keys().cloned().collect::<Vec<_>>());

    // The source bucket holds the tree's files (read back from disk).
    let (src, dest) = common::pair(kind, kind);
    let rt = common::rt();
    let objects: Vec<(String, bytes::Bytes)> = tree
        .files
        .keys()
        .map(|k| (k.clone(), fs::read(tree.root.join(k)).unwrap().into()))
        .collect();
    rt.block_on(put_objects(&src.client(), "src-bucket", objects, 16))
        .unwrap();

    let folder = tmp.path().join("dest-folder");
    let mut c = common::s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder").arg(&out);
    let o = common::run(&mut c);
    assert_eq!(o.status.code(), Some(0), "s3migrate exit code");
    let counts = common::counts(&common::last_summary(&folder));
    assert_eq!(counts["obj"], n as u64, "{counts}");
    assert_eq!(counts["copied"], n as u64, "{counts}");
    assert_eq!(counts["fail"], 0, "{counts}");

    // The destination is the tree: same keys, same bytes.
    let dest_client = dest.client();
    let listed = rt.block_on(list_keys(&dest_client, "dest-bucket")).unwrap();
    assert_eq!(listed, keys, "destination keys differ from the tree");
    let bodies = rt.block_on(async {
        use futures::StreamExt;
        futures::stream::iter(keys.iter())
            .map(|k| {
                let c = &dest_client;
                async move { (k, get_bytes(c, "dest-bucket", k).await.unwrap()) }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
    });
    for (k, body) in bodies {
        assert!(
            body.as_ref() == fs::read(tree.root.join(k)).unwrap().as_slice(),
            "bytes of {k:?} differ"
        );
    }

    // A second scan into the same folder is refused without --overwrite,
    // and leaves the first list as it was.
    let before: Vec<Vec<u8>> = ferry_control::keylist::chunk_files(&out)
        .unwrap()
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    fs::remove_file(tree.root.join("50%")).unwrap();
    let added = if lf_ok {
        "added\nlater"
    } else {
        "added\rlater"
    };
    fs::write(tree.root.join(added), b"new").unwrap();
    let o = s3find(&[tree.root.as_os_str(), out.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("--overwrite"), "{err}");
    let after: Vec<Vec<u8>> = ferry_control::keylist::chunk_files(&out)
        .unwrap()
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    assert_eq!(before, after);

    // With --overwrite the new list replaces the old one entirely.
    let o = s3find(&[
        tree.root.as_os_str(),
        out.as_os_str(),
        OsStr::new("--overwrite"),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let mut want = keys.clone();
    want.retain(|k| k != "50%");
    want.push(added.into());
    want.sort();
    assert_eq!(read_chunks(&out).concat(), want);
    assert!(!out.join("00-s3find-incomplete.keys").exists());
}
