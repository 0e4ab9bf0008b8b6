//! One element of a listing stream, and the resume position that pages
//! through it.

use std::cmp::Ordering;

/// A key, a multipart upload or a CommonPrefix, in the order S3 lists them:
/// by raw name bytes, then (for uploads of one key) by upload id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `rest` is the upstream's own XML for every child but `Key`, kept
    /// verbatim so fields we do not know (checksums, restore status) pass
    /// through.
    Object {
        key: Vec<u8>,
        rest: String,
    },
    Upload {
        key: Vec<u8>,
        upload_id: String,
        rest: String,
    },
    /// A `<Version>` of ListObjectVersions (only `null` ones are merged).
    Version {
        key: Vec<u8>,
        version_id: String,
        rest: String,
    },
    Prefix(Vec<u8>),
}

impl Entry {
    pub(crate) fn name(&self) -> &[u8] {
        match self {
            Self::Object { key, .. } | Self::Upload { key, .. } | Self::Version { key, .. } => key,
            Self::Prefix(p) => p,
        }
    }

    /// The upload id or version id that orders entries of one key, and
    /// resumes a page after one (`upload-id-marker`, `version-id-marker`).
    pub(crate) fn upload_id(&self) -> Option<&str> {
        match self {
            Self::Upload { upload_id, .. } => Some(upload_id),
            Self::Version { version_id, .. } => Some(version_id),
            _ => None,
        }
    }

    pub(crate) fn order(&self, other: &Self) -> Ordering {
        self.name()
            .cmp(other.name())
            .then_with(|| self.upload_id().cmp(&other.upload_id()))
    }
}

/// The CommonPrefix `key` rolls up into, if any.
pub(crate) fn common_prefix<'k>(key: &'k [u8], prefix: &[u8], delim: &[u8]) -> Option<&'k [u8]> {
    if delim.is_empty() || !key.starts_with(prefix) {
        return None;
    }
    let rest = &key[prefix.len()..];
    let at = rest.windows(delim.len()).position(|w| w == delim)?;
    Some(&key[..prefix.len() + at + delim.len()])
}

/// Where a page resumes: after a marker / start-after / token key, and for
/// uploads after an upload id of that key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub name: Vec<u8>,
    pub upload_id: Option<String>,
    /// The name is a CommonPrefix of this listing (it rolls up into itself):
    /// the prefix and everything under it were already returned. Derived,
    /// not carried, so a v1 marker and a v2 token behave the same.
    pub is_prefix: bool,
}

impl Position {
    pub(crate) fn new(
        name: Vec<u8>,
        upload_id: Option<String>,
        prefix: &[u8],
        delim: Option<&[u8]>,
    ) -> Self {
        let is_prefix = delim
            .and_then(|d| common_prefix(&name, prefix, d))
            .is_some_and(|p| p == name.as_slice());
        Self {
            name,
            upload_id,
            is_prefix,
        }
    }

    /// Whether `e` comes after this position. Upstreams differ on what they
    /// return for a start-after that is a CommonPrefix (some return the
    /// prefix or keys under it again), so every side is filtered with this.
    pub(crate) fn passes(&self, e: &Entry) -> bool {
        if self.is_prefix && e.name().starts_with(&self.name) {
            return false;
        }
        match e {
            // An upstream rolls up only keys after the position, so a
            // prefix before it (holding such keys) is legitimate.
            Entry::Prefix(_) => true,
            Entry::Object { key, .. } => key.as_slice() > self.name.as_slice(),
            Entry::Upload {
                key, upload_id: id, ..
            }
            | Entry::Version {
                key,
                version_id: id,
                ..
            } => match key.as_slice().cmp(&self.name) {
                Ordering::Greater => true,
                Ordering::Less => false,
                Ordering::Equal => self.upload_id.as_deref().is_some_and(|u| id.as_str() > u),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollup_and_prefix_positions() {
        assert_eq!(common_prefix(b"a/b/c", b"a/", b"/"), Some(&b"a/b/"[..]));
        assert_eq!(common_prefix(b"a/b", b"a/", b"/"), None);
        assert_eq!(common_prefix(b"x/b", b"a/", b"/"), None);
        let p = Position::new(b"a/".to_vec(), None, b"", Some(b"/"));
        assert!(p.is_prefix);
        assert!(!p.passes(&Entry::Prefix(b"a/".to_vec())));
        let under = Entry::Object {
            key: b"a/x".to_vec(),
            rest: String::new(),
        };
        assert!(!p.passes(&under));
        assert!(p.passes(&Entry::Prefix(b"b/".to_vec())));
        let k = Position::new(b"a/".to_vec(), None, b"", None);
        assert!(!k.is_prefix);
        assert!(k.passes(&under));
    }
}
