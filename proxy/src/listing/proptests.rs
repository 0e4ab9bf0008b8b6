//! The property: for random key sets split across the sides (with
//! overlap), random parameters and page sizes, paging through the merge
//! gives exactly the pages of the reference over the union: the same
//! entries, page boundaries, IsTruncated and markers.

use proptest::prelude::*;

use super::memlister::MemLister;
use super::parse::parse_page;
use super::tests::{SECRET, block_on, query};
use super::*;

#[derive(Debug, Clone)]
struct Case {
    kind: Kind,
    /// Per key: 0 target, 1 source, 2 both.
    objects: Vec<(String, u8)>,
    uploads: Vec<(String, String, u8)>,
    max: usize,
    prefix: &'static str,
    delimiter: Option<&'static str>,
    encode: bool,
    fetch_owner: bool,
    start: Option<String>,
    /// Upstream page sizes below what is asked, per side.
    caps: (Option<usize>, Option<usize>),
    /// Sides that return a CommonPrefix again when resumed at it.
    repeats: (bool, bool),
}

fn key() -> impl Strategy<Value = String> {
    let atom = prop::sample::select(vec![
        "a",
        "b",
        "a/",
        "/",
        "-",
        " ",
        "+",
        "%",
        "&<",
        "\u{e9}",
        "\u{1f600}",
        "~",
        "\u{1}",
        "z",
    ]);
    prop::collection::vec(atom, 1..5).prop_map(|v| v.concat())
}

/// The in-memory lister has no versions: the merged version listing is
/// checked against moto on both sides (tests/migrate_semantics.rs).
const NOT_GENERATED: &str = "version listings are not generated here";

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(vec![
            Kind::ObjectsV2,
            Kind::ObjectsV1,
            Kind::MultipartUploads,
        ]),
        prop::collection::btree_map(key(), 0u8..3, 0..40),
        prop::collection::btree_set((key(), prop::sample::select(vec!["u1", "u2", "u3"])), 0..25),
        prop::collection::vec(0u8..3, 25),
        prop_oneof![4 => 1usize..=4, 1 => 1usize..=1000],
        prop::sample::select(vec!["", "a", "a/"]),
        prop::sample::select(vec![None, Some("/"), Some("b"), Some("a/")]),
        any::<bool>(),
        any::<bool>(),
        (
            prop::option::of(key()),
            prop::option::of(1usize..4),
            prop::option::of(1usize..4),
            any::<(bool, bool)>(),
        ),
    )
        .prop_map(
            |(
                kind,
                objects,
                ups,
                up_sides,
                max,
                prefix,
                delimiter,
                encode,
                fetch_owner,
                (start, tcap, scap, repeats),
            )| {
                let keep = |k: &String| encode || !k.contains('\u{1}');
                Case {
                    kind,
                    objects: objects.into_iter().filter(|(k, _)| keep(k)).collect(),
                    uploads: ups
                        .into_iter()
                        .zip(up_sides)
                        .filter(|((k, _), _)| keep(k))
                        .map(|((k, u), s)| (k, u.to_string(), s))
                        .collect(),
                    max,
                    prefix,
                    delimiter,
                    encode,
                    fetch_owner,
                    start: start.filter(keep),
                    caps: (tcap, scap),
                    repeats,
                }
            },
        )
}

struct Sides {
    target: MemLister,
    source: MemLister,
    union: MemLister,
}

fn sides(c: &Case) -> Sides {
    let mut target = MemLister::default();
    let mut source = MemLister::default();
    let mut union = MemLister::default();
    target.page_cap = c.caps.0;
    source.page_cap = c.caps.1;
    target.repeats_prefix = c.repeats.0;
    source.repeats_prefix = c.repeats.1;
    for (k, side) in &c.objects {
        let k = k.as_bytes().to_vec();
        if *side != 1 {
            target.objects.insert(k.clone(), "t".into());
        }
        if *side != 0 {
            source.objects.insert(k.clone(), "s".into());
        }
        union
            .objects
            .insert(k, if *side == 1 { "s" } else { "t" }.into());
    }
    for (k, u, side) in &c.uploads {
        let up = (k.as_bytes().to_vec(), u.clone());
        if *side != 1 {
            target.uploads.insert(up.clone());
        }
        if *side != 0 {
            source.uploads.insert(up.clone());
        }
        union.uploads.insert(up);
    }
    Sides {
        target,
        source,
        union,
    }
}

/// Pages through the merge and the reference side by side.
async fn check(c: &Case) -> Result<(), TestCaseError> {
    let sd = sides(c);
    let mut base: Vec<(String, String)> = Vec::new();
    let max_name = match c.kind {
        Kind::ObjectsV2 => {
            base.push(("list-type".into(), "2".into()));
            if c.fetch_owner {
                base.push(("fetch-owner".into(), "true".into()));
            }
            "max-keys"
        }
        Kind::ObjectsV1 => "max-keys",
        Kind::MultipartUploads => {
            base.push(("uploads".into(), String::new()));
            "max-uploads"
        }
        Kind::ObjectVersions => unreachable!("{NOT_GENERATED}"),
    };
    base.push((max_name.into(), c.max.to_string()));
    if !c.prefix.is_empty() {
        base.push(("prefix".into(), c.prefix.into()));
    }
    if let Some(d) = c.delimiter {
        base.push(("delimiter".into(), d.into()));
    }
    if c.encode {
        base.push(("encoding-type".into(), "url".into()));
    }
    let start_name = match c.kind {
        Kind::ObjectsV2 => "start-after",
        Kind::ObjectsV1 => "marker",
        Kind::MultipartUploads => "key-marker",
        Kind::ObjectVersions => unreachable!("{NOT_GENERATED}"),
    };
    let mut ours_next: Vec<(String, String)> = Vec::new();
    let mut ref_next: Vec<(String, String)> = Vec::new();
    if let Some(s) = &c.start {
        ours_next.push((start_name.into(), s.clone()));
        ref_next.push((start_name.into(), s.clone()));
    }
    let entries = c.objects.len() + c.uploads.len();
    for n in 0..=entries + 1 {
        let q_ours: Vec<_> = base.iter().cloned().chain(ours_next.clone()).collect();
        let q_ref: Vec<_> = base.iter().cloned().chain(ref_next.clone()).collect();
        let ours = merged(
            c.kind,
            &sd.target,
            &sd.source,
            "bkt",
            &query(&q_ours),
            SECRET,
        )
        .await
        .map_err(|e| TestCaseError::fail(format!("merge failed: {e}")))?;
        let ours = parse_page(&ours, true).unwrap();
        let want = parse_page(&sd.union.list(&q_ref).await.unwrap(), true).unwrap();
        prop_assert_eq!(&ours.entries, &want.entries, "page {}", n);
        prop_assert_eq!(ours.truncated, want.truncated, "page {}", n);
        prop_assert_eq!(&ours.next_marker, &want.next_marker, "page {}", n);
        prop_assert_eq!(&ours.next_upload_id, &want.next_upload_id, "page {}", n);
        if !want.truncated {
            break;
        }
        prop_assert!(n <= entries, "paging did not end");
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        let last = text(want.entries.last().unwrap().name());
        match c.kind {
            Kind::ObjectsV2 => {
                ours_next = vec![("continuation-token".into(), ours.next_token.unwrap())];
                ref_next = vec![("continuation-token".into(), want.next_token.unwrap())];
            }
            Kind::ObjectsV1 => {
                // What clients do: NextMarker if given, else the last Key.
                let m = want.next_marker.map(|m| text(&m)).unwrap_or(last);
                ours_next = vec![("marker".into(), m.clone())];
                ref_next = ours_next.clone();
            }
            Kind::ObjectVersions => unreachable!("{NOT_GENERATED}"),
            Kind::MultipartUploads => {
                ours_next = vec![("key-marker".into(), text(&want.next_marker.unwrap()))];
                if let Some(u) = want.next_upload_id {
                    ours_next.push(("upload-id-marker".into(), u));
                }
                ref_next = ours_next.clone();
            }
        }
    }
    // Never more than one upstream page's worth per request.
    for side in [&sd.target, &sd.source] {
        for q in side.asked.lock().unwrap().iter() {
            let m: usize = q
                .iter()
                .find(|(k, _)| k == "max-keys" || k == "max-uploads")
                .unwrap()
                .1
                .parse()
                .unwrap();
            prop_assert!((1..=1000).contains(&m));
            prop_assert!(q.contains(&("encoding-type".into(), "url".into())));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]
    #[test]
    fn paging_the_merge_equals_paging_the_union(c in case()) {
        block_on(check(&c))?;
    }
}
