//! The users file: the client users replicated from the source, with their
//! secrets and bucket grants. The proxy authenticates requests for attached
//! buckets (forward and migrate mode) against it (reading it at start and
//! on a reload, never on the request path); `ferryctl check restricted`
//! takes a client's credential from it.
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! access_key = "AKIAALICE"
//! secret = "…"
//! [user.buckets]
//! photos = "write"   # write implies read
//! logs = "read"
//! ```
//!
//! The file holds secrets: it must have no group or other permission bits.
//! Secrets are never logged and `Debug` never prints them.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::private_file::check_private_file;

/// What a user may do in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grant {
    Read,
    /// Read and write.
    Write,
}

/// One client user.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub access_key: String,
    secret: String,
    /// Bucket name to grant. Default: none (the user may do nothing).
    #[serde(default)]
    pub buckets: BTreeMap<String, Grant>,
}

impl User {
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("access_key", &self.access_key)
            .field("buckets", &self.buckets)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<User>,
}

/// Why a users file was refused, on one line naming the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", file.display())]
pub struct UsersError {
    pub file: PathBuf,
    pub problem: String,
}

/// The loaded users, by access key.
#[derive(Clone, Default)]
pub struct Users {
    /// foldhash, not SipHash: every request looks its key up twice, and
    /// the keys are the operator's.
    by_key: foldhash::HashMap<String, User>,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&User> = self.by_key.values().collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        f.debug_struct("Users").field("users", &users).finish()
    }
}

impl Users {
    /// Read and validate the users file: private mode, known fields only,
    /// names and access keys unique and non-empty, secrets non-empty.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let err = |problem: String| UsersError {
            file: path.to_owned(),
            problem,
        };
        check_private_file(path).map_err(err)?;
        let text = fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        Users::parse(&text).map_err(err)
    }

    /// Parse users from TOML text (no file checks).
    pub fn parse(text: &str) -> Result<Users, String> {
        let file: UsersFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            match line {
                Some(l) => format!("line {l}: {msg}"),
                None => msg,
            }
        })?;
        let mut by_key =
            foldhash::HashMap::with_capacity_and_hasher(file.user.len(), Default::default());
        let mut names = std::collections::HashSet::new();
        for (i, u) in file.user.into_iter().enumerate() {
            let which = format!("user #{} ({:?})", i + 1, u.name);
            if u.name.trim().is_empty() {
                return Err(format!("user #{}: name is empty", i + 1));
            }
            if u.access_key.trim().is_empty() {
                return Err(format!("{which}: access_key is empty"));
            }
            if u.secret.is_empty() {
                return Err(format!("{which}: secret is empty"));
            }
            if !names.insert(u.name.clone()) {
                return Err(format!("{which}: another user has the same name"));
            }
            if let Some(other) = by_key.get(&u.access_key) {
                let other: &User = other;
                return Err(format!(
                    "{which}: access_key {:?} is also user {:?}'s",
                    u.access_key, other.name
                ));
            }
            by_key.insert(u.access_key.clone(), u);
        }
        Ok(Users { by_key })
    }

    /// The secret of `access_key`, to verify its signatures with.
    pub fn secret(&self, access_key: &str) -> Option<&str> {
        self.by_key.get(access_key).map(User::secret)
    }

    /// The user behind `access_key`.
    pub fn user(&self, access_key: &str) -> Option<&User> {
        self.by_key.get(access_key)
    }

    /// Whether `access_key` may read (`write == false`) or write `bucket`.
    /// A write grant implies read. Unknown keys may do nothing.
    pub fn allowed(&self, access_key: &str, bucket: &str, write: bool) -> bool {
        match self
            .by_key
            .get(access_key)
            .and_then(|u| u.buckets.get(bucket))
        {
            Some(Grant::Write) => true,
            Some(Grant::Read) => !write,
            None => false,
        }
    }

    /// Every user, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.by_key.values()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const TWO_USERS: &str = r#"
[[user]]
name = "alice"
access_key = "AKALICE"
secret = "alice-secret-value"
[user.buckets]
photos = "write"
logs = "read"

[[user]]
name = "bob"
access_key = "AKBOB"
secret = "bob-secret-value"
"#;

    #[test]
    fn grants_write_implies_read() {
        let u = Users::parse(TWO_USERS).unwrap();
        assert_eq!(u.len(), 2);
        assert!(u.allowed("AKALICE", "photos", false));
        assert!(u.allowed("AKALICE", "photos", true));
        assert!(u.allowed("AKALICE", "logs", false));
        assert!(!u.allowed("AKALICE", "logs", true));
        assert!(!u.allowed("AKALICE", "other", false));
        assert!(!u.allowed("AKBOB", "photos", false), "bob has no grants");
        assert!(!u.allowed("AKNOBODY", "photos", false));
        assert_eq!(u.secret("AKBOB"), Some("bob-secret-value"));
        assert_eq!(u.secret("AKNOBODY"), None);
        assert_eq!(u.user("AKALICE").unwrap().name, "alice");
    }

    #[test]
    fn debug_never_prints_secrets() {
        let u = Users::parse(TWO_USERS).unwrap();
        let dump = format!("{u:?} {:?}", u.user("AKALICE").unwrap());
        assert!(dump.contains("alice") && dump.contains("AKBOB"), "{dump}");
        assert!(!dump.contains("secret-value"), "{dump}");
    }

    #[test]
    fn bad_files_are_refused() {
        let cases = [
            (TWO_USERS.replace("\"read\"", "\"readwrite\""), "line 8"),
            (
                TWO_USERS.replace("secret = \"bob", "secrte = \"bob"),
                "unknown field",
            ),
            (TWO_USERS.replace("AKBOB", "AKALICE"), "also user \"alice\""),
            (TWO_USERS.replace("\"bob\"", "\"alice\""), "same name"),
            (TWO_USERS.replace("bob-secret-value", ""), "secret is empty"),
            (
                TWO_USERS.replace("\"AKBOB\"", "\"\""),
                "access_key is empty",
            ),
        ];
        for (text, want) in cases {
            let e = Users::parse(&text).unwrap_err();
            assert!(e.contains(want), "want {want:?} in {e:?}");
            assert!(!e.contains("secret-value"), "{e}");
        }
        assert!(Users::parse("").unwrap().is_empty());
    }

    #[test]
    fn group_or_world_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users.toml");
        fs::write(&p, TWO_USERS).unwrap();
        for mode in [0o644, 0o640, 0o604] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            let e = Users::load(&p).unwrap_err();
            assert!(e.to_string().contains("chmod 600"), "{e}");
            assert!(e.to_string().contains("users.toml"), "{e}");
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Users::load(&p).unwrap().len(), 2);
    }
}
