//! The merge against the reference (an in-memory S3 over the union of both
//! sides), its laziness, its errors, and the XML it writes.

use super::entry::Entry;
use super::memlister::MemLister;
use super::parse::{Page, parse_page};
use super::*;
use crate::s3error::Code;
use ferry_s3::percent::uri_encode;

pub(super) const SECRET: &[u8] = b"test-token-key";

pub(super) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

pub(super) fn query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                uri_encode(k.as_bytes(), false),
                uri_encode(v.as_bytes(), false)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn objects(keys: &[&str], etag: &str) -> MemLister {
    MemLister {
        objects: keys
            .iter()
            .map(|k| (k.as_bytes().to_vec(), etag.to_string()))
            .collect(),
        ..MemLister::default()
    }
}

fn names(p: &Page) -> Vec<String> {
    p.entries
        .iter()
        .map(|e| String::from_utf8_lossy(e.name()).into_owned())
        .collect()
}

async fn page(
    kind: Kind,
    t: &MemLister,
    s: &MemLister,
    q: &[(&str, &str)],
) -> Result<Page, S3Error> {
    let body = merged(kind, t, s, "bkt", &query(&pairs(q)), SECRET).await?;
    Ok(parse_page(&body, true).unwrap())
}

#[test]
fn target_wins_and_prefixes_interleave() {
    let t = objects(&["a", "d/1", "c"], "t");
    let s = objects(&["a", "b", "d/2", "e/1", "f"], "s");
    let p = block_on(page(
        Kind::ObjectsV2,
        &t,
        &s,
        &[("list-type", "2"), ("delimiter", "/")],
    ))
    .unwrap();
    assert_eq!(names(&p), ["a", "b", "c", "d/", "e/", "f"]);
    match &p.entries[0] {
        Entry::Object { rest, .. } => assert!(rest.contains("&quot;t&quot;"), "{rest}"),
        e => panic!("{e:?}"),
    }
    assert!(!p.truncated);
}

#[test]
fn resuming_after_a_prefix_skips_everything_under_it() {
    let t = objects(&["a/1", "a/2", "b"], "t");
    let s = objects(&["a/3", "a0"], "s");
    block_on(async {
        let q = [("list-type", "2"), ("delimiter", "/"), ("max-keys", "1")];
        let p1 = page(Kind::ObjectsV2, &t, &s, &q).await.unwrap();
        assert_eq!(names(&p1), ["a/"]);
        assert!(p1.truncated);
        let tok = p1.next_token.unwrap();
        let mut q2 = q.to_vec();
        q2.push(("continuation-token", &tok));
        let p2 = page(Kind::ObjectsV2, &t, &s, &q2).await.unwrap();
        assert_eq!(names(&p2), ["a0"]);
        // v1: NextMarker is the prefix, and the marker skips it too.
        let q = [("delimiter", "/"), ("max-keys", "1")];
        let p1 = page(Kind::ObjectsV1, &t, &s, &q).await.unwrap();
        assert_eq!(p1.next_marker.as_deref(), Some(&b"a/"[..]));
        let p2 = page(
            Kind::ObjectsV1,
            &t,
            &s,
            &[("delimiter", "/"), ("marker", "a/")],
        )
        .await
        .unwrap();
        assert_eq!(names(&p2), ["a0", "b"]);
        assert_eq!(p2.next_marker, None);
    });
}

#[test]
fn max_keys_zero_is_empty_and_not_truncated() {
    let t = objects(&["a"], "t");
    let s = objects(&["b"], "s");
    let p = block_on(page(
        Kind::ObjectsV2,
        &t,
        &s,
        &[("list-type", "2"), ("max-keys", "0")],
    ))
    .unwrap();
    assert!(p.entries.is_empty() && !p.truncated);
    assert_eq!(t.calls() + s.calls(), 0);
}

#[test]
fn a_failing_side_is_the_answer_never_a_partial_listing() {
    for (tf, sf) in [
        (Some(0), None),
        (None, Some(0)),
        (Some(1), None),
        (None, Some(1)),
    ] {
        let keys: Vec<String> = (0..30).map(|i| format!("k{i:02}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut t = objects(&keys[..15], "t");
        let mut s = objects(&keys[15..], "s");
        t.fail_from = tf;
        s.fail_from = sf;
        // Small upstream pages force a second request to each side.
        t.page_cap = Some(4);
        s.page_cap = Some(4);
        let r = block_on(async {
            let q = pairs(&[("list-type", "2"), ("max-keys", "20")]);
            merged(Kind::ObjectsV2, &t, &s, "bkt", &query(&q), SECRET).await
        });
        let e = r.unwrap_err();
        assert_eq!(e.code, Code::ServiceUnavailable, "{tf:?} {sf:?}");
    }
}

#[test]
fn a_page_asks_each_side_for_no_more_than_it_needs() {
    let keys: Vec<String> = (0..3000).map(|i| format!("k{i:04}")).collect();
    let t = MemLister {
        objects: keys
            .iter()
            .step_by(2)
            .map(|k| (k.clone().into_bytes(), "t".into()))
            .collect(),
        ..MemLister::default()
    };
    let s = MemLister {
        objects: keys
            .iter()
            .skip(1)
            .step_by(2)
            .map(|k| (k.clone().into_bytes(), "s".into()))
            .collect(),
        ..MemLister::default()
    };
    block_on(async {
        let p = page(
            Kind::ObjectsV2,
            &t,
            &s,
            &[("list-type", "2"), ("max-keys", "3")],
        )
        .await
        .unwrap();
        assert_eq!(names(&p), ["k0000", "k0001", "k0002"]);
        assert!(p.truncated);
        // One request each, for the page plus one lookahead entry.
        for side in [&t, &s] {
            let asked = side.asked.lock().unwrap();
            assert_eq!(asked.len(), 1);
            assert!(asked[0].contains(&("max-keys".into(), "4".into())));
        }
        // A full page: one upstream page per side, none past it; IsTruncated
        // comes from the upstreams' own flags.
        let t = MemLister {
            asked: Default::default(),
            objects: keys
                .iter()
                .map(|k| (k.clone().into_bytes(), "t".into()))
                .collect(),
            ..MemLister::default()
        };
        let s = objects(&[], "s");
        let p = page(Kind::ObjectsV2, &t, &s, &[("list-type", "2")])
            .await
            .unwrap();
        assert_eq!(p.entries.len(), 1000);
        assert!(p.truncated);
        assert_eq!(t.calls(), 1);
        assert_eq!(s.calls(), 1);
        for q in t.asked.lock().unwrap().iter() {
            let m: usize = q
                .iter()
                .find(|(k, _)| k == "max-keys")
                .unwrap()
                .1
                .parse()
                .unwrap();
            assert!(m <= 1000);
        }
    });
}

#[test]
fn uploads_of_both_sides_are_listed_and_identical_ones_once() {
    let t = MemLister {
        uploads: [("a", "u1"), ("a", "u3"), ("b/1", "u1")]
            .iter()
            .map(|(k, u)| (k.as_bytes().to_vec(), u.to_string()))
            .collect(),
        ..MemLister::default()
    };
    let s = MemLister {
        uploads: [("a", "u2"), ("a", "u3"), ("c", "u9")]
            .iter()
            .map(|(k, u)| (k.as_bytes().to_vec(), u.to_string()))
            .collect(),
        ..MemLister::default()
    };
    block_on(async {
        let p = page(
            Kind::MultipartUploads,
            &t,
            &s,
            &[("uploads", ""), ("max-uploads", "2")],
        )
        .await
        .unwrap();
        let ids: Vec<_> = p
            .entries
            .iter()
            .map(|e| match e {
                Entry::Upload { key, upload_id, .. } => {
                    (String::from_utf8_lossy(key).into_owned(), upload_id.clone())
                }
                e => panic!("{e:?}"),
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("a".to_string(), "u1".to_string()),
                ("a".into(), "u2".into())
            ]
        );
        assert!(p.truncated);
        assert_eq!(p.next_marker.as_deref(), Some(&b"a"[..]));
        assert_eq!(p.next_upload_id.as_deref(), Some("u2"));
        let p = page(
            Kind::MultipartUploads,
            &t,
            &s,
            &[
                ("uploads", ""),
                ("key-marker", "a"),
                ("upload-id-marker", "u2"),
                ("delimiter", "/"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(names(&p), ["a", "b/", "c"]);
        assert!(!p.truncated);
    });
}

#[test]
fn xml_round_trip_of_odd_keys() {
    let odd = [
        "a b",
        "a+b",
        "a%b",
        "a-b",
        "a/",
        "a/x",
        "\u{e9}\u{4e2d}\u{1f600}",
        "&<>\"'",
        "\u{1}\u{1f}\t\n\r\u{7f}",
    ];
    for encode in [false, true] {
        let list: Vec<Entry> = odd
            .iter()
            .filter(|k| encode || !k.contains('\u{1}'))
            .map(|k| Entry::Object {
                key: k.as_bytes().to_vec(),
                rest: "<ETag>&quot;x&quot;</ETag><Size>1</Size>".into(),
            })
            .chain([Entry::Prefix(b"p &<+%/".to_vec())])
            .collect();
        let xml = write::v2(
            &write::V2 {
                echo: write::Echo {
                    bucket: "b",
                    prefix: b"",
                    delimiter: Some(b"/"),
                    max: 10,
                    encode,
                    truncated: true,
                },
                start_after: Some(b"a b"),
                token: None,
                next_token: Some("tok"),
            },
            &list,
        );
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name>"));
        if encode {
            assert!(
                xml.contains("<Key>a+b</Key>") && xml.contains("<Key>a%2Bb</Key>"),
                "{xml}"
            );
            assert!(xml.contains("<StartAfter>a+b</StartAfter>"));
        }
        let p = parse_page(xml.as_bytes(), true).unwrap();
        let mut want = list.clone();
        want.sort_by(Entry::order);
        assert_eq!(p.entries, want, "encode={encode}");
        assert!(p.truncated);
        assert_eq!(p.next_token.as_deref(), Some("tok"));
    }
}

#[test]
fn parses_what_upstreams_write_and_drops_an_unasked_owner() {
    let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>
  <Delimiter>%2F</Delimiter><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>
  <Contents>
    <Key>a%20b%2Bc</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>
    <ETag>"e"</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Size>3</Size>
    <Owner><ID>x</ID><DisplayName>y</DisplayName></Owner><StorageClass>STANDARD</StorageClass>
  </Contents>
  <CommonPrefixes><Prefix>d%26%2F</Prefix></CommonPrefixes>
</ListBucketResult>"#;
    let p = parse_page(xml, false).unwrap();
    assert_eq!(
        p.entries,
        [
            Entry::Object {
                key: b"a b+c".to_vec(),
                rest: "<LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>\"e\"</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Size>3</Size><StorageClass>STANDARD</StorageClass>".into()
            },
            Entry::Prefix(b"d&/".to_vec()),
        ]
    );
    assert!(parse_page(b"<ListBucketResult><Contents>", true).is_err());
}

#[test]
fn kinds_of_bucket_gets() {
    use ferry_s3::S3Op;
    assert_eq!(Kind::of_op(S3Op::ListObjectsV2), Some(Kind::ObjectsV2));
    assert_eq!(Kind::of_op(S3Op::ListObjects), Some(Kind::ObjectsV1));
    assert_eq!(
        Kind::of_op(S3Op::ListMultipartUploads),
        Some(Kind::MultipartUploads)
    );
    assert_eq!(Kind::of_op(S3Op::GetBucketLocation), None);
    assert_eq!(
        Kind::of_op(S3Op::ListObjectVersions),
        Some(Kind::ObjectVersions)
    );
}

#[test]
fn a_token_for_other_parameters_is_refused() {
    let t = objects(&["a/1", "a/2", "b/1"], "t");
    let s = objects(&[], "s");
    block_on(async {
        let p = page(
            Kind::ObjectsV2,
            &t,
            &s,
            &[("list-type", "2"), ("max-keys", "1")],
        )
        .await
        .unwrap();
        let tok = p.next_token.unwrap();
        for q in [
            vec![
                ("list-type", "2"),
                ("continuation-token", tok.as_str()),
                ("prefix", "a/"),
            ],
            vec![
                ("list-type", "2"),
                ("continuation-token", tok.as_str()),
                ("delimiter", "/"),
            ],
            vec![
                ("list-type", "2"),
                ("continuation-token", tok.as_str()),
                ("encoding-type", "url"),
            ],
            vec![("list-type", "2"), ("continuation-token", "AAAA")],
        ] {
            let e = page(Kind::ObjectsV2, &t, &s, &q).await.unwrap_err();
            assert_eq!(e.code, Code::InvalidArgument);
            assert_eq!(e.message, "The continuation token provided is incorrect");
        }
        // The same parameters (in another order, with other max-keys) resume.
        let p = page(
            Kind::ObjectsV2,
            &t,
            &s,
            &[
                ("max-keys", "5"),
                ("continuation-token", &tok),
                ("list-type", "2"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(names(&p), ["a/2", "b/1"]);
    });
}

#[test]
fn reference_sanity() {
    // The reference itself behaves like S3 on a known example.
    let u = objects(&["a/1", "a/2", "b", "c/1"], "t");
    let body = block_on(u.list(&pairs(&[
        ("list-type", "2"),
        ("delimiter", "/"),
        ("max-keys", "2"),
    ])))
    .unwrap();
    let p = parse_page(&body, true).unwrap();
    assert_eq!(names(&p), ["a/", "b"]);
    assert!(p.truncated);
}
