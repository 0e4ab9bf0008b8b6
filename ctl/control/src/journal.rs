//! The delete journal: the one format the proxy writes and `s3migrate`
//! reads, so that a client's delete in migrate mode can never be undone by a
//! copier that read the object just before it.
//!
//! The journal is a reserved bucket on the target store (the proxy's
//! `journal_bucket`), never the migrating bucket, so no client listing
//! shows it. One object per deleted key:
//!
//! - name: `<bucket>/<sha256 of the key, hex>`; hashing keeps the name
//!   within S3's 1024-byte limit for any key, and a later delete of the same
//!   key simply replaces the entry;
//! - body: [`Entry`] as JSON, which holds the raw key.
//!
//! The proxy writes the entry before it sends the delete anywhere, and
//! removes it again after a client write of the same key lands (the key is
//! then the client's again, not a leftover). Detach removes the bucket's
//! entries. The copier lists `<bucket>/`, and removes a copy of its own that
//! landed after the delete.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The format of [`Entry`]; a reader refuses entries with a higher one.
pub const ENTRY_VERSION: u32 = 1;

/// One journalled delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub version: u32,
    /// The migrating bucket's name (as clients know it, on the target).
    pub bucket: String,
    /// The deleted key, raw.
    pub key: String,
    /// When the proxy accepted the delete (RFC 3339, UTC).
    pub deleted_at: String,
}

/// The prefix under which `bucket`'s entries live.
pub fn prefix(bucket: &str) -> String {
    format!("{bucket}/")
}

/// The journal object name of `key` in `bucket`.
pub fn entry_name(bucket: &str, key: &str) -> String {
    format!("{bucket}/{}", hex::encode(Sha256::digest(key.as_bytes())))
}

impl Entry {
    pub fn new(bucket: &str, key: &str, deleted_at: String) -> Entry {
        Entry {
            version: ENTRY_VERSION,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            deleted_at,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an entry serializes")
    }

    /// Parses an entry body read from `name`, refusing one that does not
    /// belong under that name (a hand-placed or corrupt object).
    pub fn parse(name: &str, body: &[u8]) -> Result<Entry, String> {
        let e: Entry =
            serde_json::from_slice(body).map_err(|err| format!("journal entry {name:?}: {err}"))?;
        if e.version > ENTRY_VERSION {
            return Err(format!(
                "journal entry {name:?} has version {}; this build reads up to {ENTRY_VERSION}",
                e.version
            ));
        }
        if entry_name(&e.bucket, &e.key) != name {
            return Err(format!(
                "journal entry {name:?} names {:?} in {:?}, which belongs elsewhere",
                e.key, e.bucket
            ));
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_round_trip() {
        let long = "k".repeat(1024);
        let name = entry_name("b", &long);
        assert!(name.starts_with(&prefix("b")));
        assert_eq!(name.len(), 2 + 64);
        let e = Entry::new("b", &long, "2026-11-25T00:00:00Z".into());
        assert_eq!(Entry::parse(&name, &e.to_json()).unwrap(), e);
        // Misplaced or newer entries are refused, not trusted.
        assert!(Entry::parse(&entry_name("b", "other"), &e.to_json()).is_err());
        let mut newer = e.clone();
        newer.version = ENTRY_VERSION + 1;
        assert!(Entry::parse(&name, &newer.to_json()).is_err());
    }
}
