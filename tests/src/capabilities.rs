//! What each store lacks or does differently, as data tests can branch on.
//! `tests/tests/stores.rs` asserts every one of these against the real
//! servers, so a store upgrade that changes one fails there first.

use std::io::Write;

use crate::StoreKind;

impl StoreKind {
    pub const ALL: [StoreKind; 2] = [StoreKind::Garage, StoreKind::Moto];

    /// A PUT or CompleteMultipartUpload with `If-None-Match: *` on an existing
    /// key fails with 412. Garage ignores the header and replaces the object.
    pub fn enforces_if_none_match(self) -> bool {
        matches!(self, StoreKind::Moto)
    }

    /// Requests signed with a wrong secret are rejected (403 AccessDenied).
    /// moto checks no signatures.
    pub fn checks_signatures(self) -> bool {
        matches!(self, StoreKind::Garage)
    }

    /// PutObjectTagging/GetObjectTagging work. Garage: NotImplemented.
    pub fn supports_object_tagging(self) -> bool {
        matches!(self, StoreKind::Moto)
    }

    /// A key with a leading `/` is stored as sent. Garage stores `/lead` as `lead`.
    pub fn keeps_leading_slash(self) -> bool {
        matches!(self, StoreKind::Moto)
    }

    /// GET with `partNumber` returns just that part (206, PartsCount). moto
    /// returns the whole object.
    pub fn honours_part_number_on_get(self) -> bool {
        matches!(self, StoreKind::Garage)
    }

    /// Buckets and objects survive [`crate::Store::stop`] + [`crate::Store::restart`].
    /// moto is in-memory.
    pub fn keeps_data_across_restart(self) -> bool {
        matches!(self, StoreKind::Garage)
    }

    /// [`crate::Store::request_counts`] works.
    pub fn has_request_counter(self) -> bool {
        matches!(self, StoreKind::Garage)
    }
}

/// Report that the running test cannot run here because a tool or a
/// system facility is missing (a client binary, `setpriv`, a group, an
/// inotify limit, a tmpfs), and why. Call it, then `return` from the test.
/// Written straight to stderr (not `eprintln!`, which the test runner
/// captures for passing tests), so the reason always shows:
/// `SKIPPED <test>: <reason>`.
///
/// Under `FERRY_REQUIRE_ALL=1`, which the test command sets in CI, such a
/// skip is a failure: CI installs what the tests need, so a test that
/// cannot run there would be a test that always passes.
///
/// A client's own inability (rclone cannot presign a PUT) is not a skip:
/// say it with [`note`].
pub fn skip(test: &str, reason: &str) {
    if require_all() {
        panic!("{test} cannot run here ({reason}), and FERRY_REQUIRE_ALL=1 forbids skipping it");
    }
    let line = format!("SKIPPED {test}: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Whether every test must run (`FERRY_REQUIRE_ALL=1`, set by the test
/// command in CI).
fn require_all() -> bool {
    std::env::var("FERRY_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Records what a test leaves out because a client or store cannot do it
/// (not because this machine lacks something): `NOTE <test>: <what>`.
pub fn note(test: &str, what: &str) {
    let line = format!("NOTE {test}: {what}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}
