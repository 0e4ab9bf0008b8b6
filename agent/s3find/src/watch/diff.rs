//! The diff of two sorted streams: a full scan, record by record in key
//! order, against the state as the sets have told it so far.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::clock::Young;
use crate::FindError;
use crate::incr::SetWriter;
use crate::state::{Meta, StateWriter, View};

/// Whether `key` is one of `set`'s keys or below one of them (`""` is the
/// root: everything is below it).
pub(super) fn at_or_below_any(set: &BTreeSet<String>, key: &str) -> bool {
    !set.is_empty()
        && (set.contains("")
            || set.contains(key)
            || key.match_indices('/').any(|(i, _)| set.contains(&key[..i])))
}

/// Compares a new full scan (records pushed in key order) with the state
/// as told so far, writing the new state file and the set of differences.
pub(super) struct Merger<'v> {
    old: View<'v>,
    old_head: Option<(String, Meta)>,
    state: StateWriter,
    /// `None`: no earlier state to compare with; only record the new one.
    set: Option<SetWriter>,
    pub(super) unknown: BTreeSet<String>,
    quiet: Duration,
    young: Option<Young>,
    pending: BTreeMap<String, bool>,
    changed: u64,
    deleted: u64,
    held: u64,
}

pub(super) struct Merged {
    pub(super) state: StateWriter,
    pub(super) set: Option<SetWriter>,
    pub(super) pending: BTreeMap<String, bool>,
    pub(super) held: u64,
}

impl<'v> Merger<'v> {
    pub(super) fn new(
        mut old: View<'v>,
        state: StateWriter,
        set: Option<SetWriter>,
        quiet: Duration,
    ) -> Result<Self, FindError> {
        let old_head = old.next_record()?;
        Ok(Self {
            old,
            old_head,
            state,
            set,
            unknown: BTreeSet::new(),
            quiet,
            young: None,
            pending: BTreeMap::new(),
            changed: 0,
            deleted: 0,
            held: 0,
        })
    }

    /// An old key the new scan does not have: deleted, unless the scan
    /// could not see it.
    fn old_only(&mut self, key: &str, m: Meta) -> Result<(), FindError> {
        if at_or_below_any(&self.unknown, key) {
            return self.state.push(key, &m);
        }
        self.deleted += 1;
        self.set.as_mut().expect("diffing").deleted(key)
    }

    pub(super) fn push(&mut self, key: &str, meta: Meta) -> Result<(), FindError> {
        if self.set.is_none() {
            return self.state.push(key, &meta);
        }
        // "Young" is judged when the walk is over, not when it started.
        let young = *self.young.get_or_insert_with(|| Young::now(self.quiet));
        let old = loop {
            match self.old_head.take() {
                Some((k, m)) if k.as_str() < key => {
                    self.old_head = self.old.next_record()?;
                    self.old_only(&k, m)?;
                }
                Some((k, m)) if k == key => {
                    self.old_head = self.old.next_record()?;
                    break Some(m);
                }
                other => {
                    self.old_head = other;
                    break None;
                }
            }
        };
        if young.is(&meta) {
            // Listed once it settles; the state keeps what was told.
            self.held += 1;
            self.pending.insert(key.to_owned(), true);
            return match old {
                Some(m) => self.state.push(key, &m),
                None => Ok(()),
            };
        }
        if !old.is_some_and(|o| o.same(&meta)) {
            self.changed += 1;
            self.set.as_mut().expect("diffing").changed(key)?;
        }
        self.state.push(key, &meta)
    }

    pub(super) fn finish(mut self) -> Result<Merged, FindError> {
        if self.set.is_some() {
            while let Some((k, m)) = self.old_head.take() {
                self.old_head = self.old.next_record()?;
                self.old_only(&k, m)?;
            }
        }
        Ok(Merged {
            state: self.state,
            set: self.set,
            pending: self.pending,
            held: self.held,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::clock::tests::{S, meta};
    use super::*;
    use crate::filter;
    use crate::incr::{self, Manifest};

    #[test]
    fn unknown_covers_the_key_and_below() {
        let set: BTreeSet<String> = ["a/b", "c"].map(String::from).into();
        assert!(at_or_below_any(&set, "a/b"));
        assert!(at_or_below_any(&set, "a/b/c/d"));
        assert!(at_or_below_any(&set, "c/x"));
        assert!(!at_or_below_any(&set, "a/bc"));
        assert!(!at_or_below_any(&set, "a.b"));
        assert!(!at_or_below_any(&set, "cc"));
        assert!(!at_or_below_any(&BTreeSet::new(), "a"));
        assert!(at_or_below_any(&[String::new()].into(), "anything"));
    }

    /// The merge of a rescan: changed, created, deleted, unchanged, held
    /// back (new and modified), and unknown keys.
    #[test]
    fn merger_diffs_two_states() {
        let dir = tempfile::tempdir().unwrap();
        let incr = dir.path().join("incr");
        incr::prepare(&incr).unwrap();
        let now = filter::now() as i64;
        let old_t = now - 3600 * S;
        let mut w = StateWriter::create(&dir.path().join("state")).unwrap();
        for (k, size) in [
            ("gone", 1),
            ("locked/f", 1),
            ("modified", 1),
            ("same", 1),
            ("writing", 1),
        ] {
            w.push(k, &meta(size, old_t, old_t)).unwrap();
        }
        let st = w.finish().unwrap();
        // An event already reported "same2" as created.
        let mut overlay = BTreeMap::new();
        overlay.insert("same2".to_owned(), Some(meta(7, old_t, old_t)));
        let view = View::new(st.stream().unwrap(), &overlay).unwrap();
        let mut m = Merger::new(
            view,
            StateWriter::create(&dir.path().join("state2")).unwrap(),
            Some(SetWriter::create(&incr, 1).unwrap()),
            Duration::from_secs(5),
        )
        .unwrap();
        m.unknown = ["locked".to_owned()].into();
        for (k, mm) in [
            ("created", meta(3, old_t, old_t)),
            ("fresh", meta(3, now, now)),
            ("modified", meta(2, old_t + S, old_t + S)),
            ("same", meta(1, old_t, old_t)),
            ("same2", meta(7, old_t, old_t)),
            ("writing", meta(9, now, now)),
        ] {
            m.push(k, mm).unwrap();
        }
        let merged = m.finish().unwrap();
        let set = merged.set.unwrap();
        assert_eq!(set.counts(), (2, 1));
        let mut manifest = Manifest {
            source: "rescan".into(),
            ..incr::tests::manifest()
        };
        let p = set.commit(&mut manifest).unwrap().unwrap();
        let read = incr::tests::keys;
        assert_eq!(read(&p), ["created", "modified"]);
        assert_eq!(read(&p.join(incr::DELETED_DIR)), ["gone"]);
        assert_eq!(
            merged.pending.keys().collect::<Vec<_>>(),
            ["fresh", "writing"]
        );
        assert_eq!(merged.held, 2);
        // The new state keeps the unknown key and the told version of the
        // file still being written; the new file waits.
        let st2 = merged.state.finish().unwrap();
        let mut r = st2.stream().unwrap().unwrap();
        let mut got = Vec::new();
        while let Some((k, mm)) = r.next_record().unwrap() {
            got.push((k, mm.size));
        }
        let want: Vec<(String, u64)> = [
            ("created", 3),
            ("locked/f", 1),
            ("modified", 2),
            ("same", 1),
            ("same2", 7),
            ("writing", 1),
        ]
        .map(|(k, s)| (k.to_owned(), s))
        .to_vec();
        assert_eq!(got, want);
    }
}
