//! k-way merge of sorted runs into one strictly increasing stream.
//!
//! Each source yields keys in byte order. A min-heap holds the head of
//! every source; the smallest is emitted, and its source is advanced. Equal
//! keys (from different runs) are emitted once. A key below the one emitted
//! before it means a corrupt run, and is an error rather than output out of
//! order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::FindError;
use super::spill::RunReader;

/// A sorted stream of keys.
pub trait SortedSource {
    /// Reads the next key into `buf`; `false` at the end.
    fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<bool, FindError>;
}

impl SortedSource for RunReader {
    fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<bool, FindError> {
        RunReader::next_into(self, buf)
    }
}

/// The head of one source in the heap. Ordered so that `BinaryHeap` (a
/// max-heap) pops the smallest key first, lower source index on ties.
struct Head {
    key: Vec<u8>,
    src: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .key
            .cmp(&self.key)
            .then_with(|| other.src.cmp(&self.src))
    }
}

/// Merges `sources` into `emit`, strictly increasing, duplicates dropped.
/// Returns how many keys were emitted.
pub fn merge<S: SortedSource>(
    mut sources: Vec<S>,
    emit: &mut dyn FnMut(&[u8]) -> Result<(), FindError>,
) -> Result<u64, FindError> {
    let mut heap = BinaryHeap::with_capacity(sources.len());
    for (src, s) in sources.iter_mut().enumerate() {
        let mut key = Vec::new();
        if s.next_into(&mut key)? {
            heap.push(Head { key, src });
        }
    }
    let mut last: Option<Vec<u8>> = None;
    let mut emitted = 0;
    while let Some(mut head) = heap.pop() {
        match last.as_deref().map(|l| l.cmp(&head.key)) {
            Some(Ordering::Equal) => {}
            Some(Ordering::Greater) => {
                return Err(FindError::Internal(
                    "a sorted run is out of order (corrupt temporary file?)",
                ));
            }
            _ => {
                emit(&head.key)?;
                emitted += 1;
                match &mut last {
                    Some(l) => {
                        l.clear();
                        l.extend_from_slice(&head.key);
                    }
                    None => last = Some(head.key.clone()),
                }
            }
        }
        if sources[head.src].next_into(&mut head.key)? {
            heap.push(head);
        }
    }
    Ok(emitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory source.
    struct VecSource(std::vec::IntoIter<Vec<u8>>);

    impl SortedSource for VecSource {
        fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<bool, FindError> {
            match self.0.next() {
                Some(k) => {
                    *buf = k;
                    Ok(true)
                }
                None => Ok(false),
            }
        }
    }

    fn src(keys: &[&str]) -> VecSource {
        VecSource(
            keys.iter()
                .map(|k| k.as_bytes().to_vec())
                .collect::<Vec<_>>()
                .into_iter(),
        )
    }

    fn run(sources: Vec<VecSource>) -> Result<Vec<String>, FindError> {
        let mut out = Vec::new();
        let n = merge(sources, &mut |k| {
            out.push(String::from_utf8(k.to_vec()).unwrap());
            Ok(())
        })?;
        assert_eq!(n as usize, out.len());
        Ok(out)
    }

    #[test]
    fn interleaves_and_drops_duplicates() {
        let got = run(vec![
            src(&["a", "c", "e", "g"]),
            src(&[]),
            src(&["b", "c", "d"]),
            src(&["a", "z"]),
        ])
        .unwrap();
        assert_eq!(got, ["a", "b", "c", "d", "e", "g", "z"]);
    }

    #[test]
    fn byte_order_across_sources() {
        // NFC é (C3 A9) sorts after NFD e+◌́ (65 CC 81); CR and LF sort
        // before every printable byte; uppercase before lowercase.
        let got = run(vec![
            src(&["z", "\u{e9}"]),
            src(&["A", "e\u{301}"]),
            src(&["a\nb", "a\rb"]),
        ])
        .unwrap();
        let mut want: Vec<String> = ["\u{e9}", "z", "A", "e\u{301}", "a\nb", "a\rb"]
            .map(String::from)
            .to_vec();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(got.first().map(String::as_str), Some("A"));
        assert_eq!(got.last().map(String::as_str), Some("\u{e9}"));
    }

    #[test]
    fn out_of_order_run_is_an_error_not_output() {
        let err = run(vec![src(&["b", "a"]), src(&["c"])]).unwrap_err();
        assert!(matches!(err, FindError::Internal(_)), "{err}");
    }

    #[test]
    fn many_sources_random_keys() {
        let mut all = Vec::new();
        let mut sources = Vec::new();
        let mut x: u64 = 0x1234_5678;
        for _ in 0..37 {
            let mut run = Vec::new();
            for _ in 0..(x % 500) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                run.push(format!("{:x}/{}", x % 4096, x % 7));
            }
            run.sort();
            all.extend(run.iter().cloned());
            sources.push(VecSource(
                run.into_iter()
                    .map(String::into_bytes)
                    .collect::<Vec<_>>()
                    .into_iter(),
            ));
        }
        all.sort();
        all.dedup();
        assert_eq!(run(sources).unwrap(), all);
    }
}
