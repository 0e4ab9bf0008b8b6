//! S3 requests per object, from Garage's per-operation request counters.

use std::collections::BTreeMap;

use ferry_harness::Store;

pub type Counts = BTreeMap<String, u64>;

/// The store's counters now; empty when they cannot be read (they are only
/// used to describe a run, never to judge it).
pub fn snapshot(store: &Store) -> Counts {
    store.request_counts().unwrap_or_default()
}

/// "src: …; dst: …": the requests of a copy of `objects` objects, on the
/// source since `src_before` and on the destination (fresh for each run)
/// all of them.
pub fn copy_per_object(src_before: &Counts, src: &Store, dest: &Store, objects: u64) -> String {
    format!(
        "src: {}; dst: {}",
        per_object(src_before, &snapshot(src), objects),
        per_object(&Counts::new(), &snapshot(dest), objects)
    )
}

/// `GetObject 1.00, ListObjectsV2 0.01`: requests between `before` and
/// `after`, per object copied, busiest first.
pub fn per_object(before: &Counts, after: &Counts, objects: u64) -> String {
    let mut ops: Vec<(&str, u64)> = after
        .iter()
        .map(|(op, &n)| {
            (
                op.as_str(),
                n.saturating_sub(before.get(op).copied().unwrap_or(0)),
            )
        })
        .filter(|&(_, n)| n > 0)
        .collect();
    if ops.is_empty() {
        return "none".into();
    }
    ops.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let objects = objects.max(1) as f64;
    ops.iter()
        .map(|(op, n)| {
            let per = *n as f64 / objects;
            if per >= 0.1 {
                format!("{op} {per:.2}")
            } else {
                format!("{op} {n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn per_object_shows_deltas() {
        let before = [("GetObject".to_owned(), 10)].into_iter().collect();
        let after = [
            ("GetObject".to_owned(), 110),
            ("ListObjectsV2".to_owned(), 2),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            super::per_object(&before, &after, 100),
            "GetObject 1.00, ListObjectsV2 2"
        );
    }
}
