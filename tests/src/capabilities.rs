//! What each store lacks or does differently, as data tests can branch on.
//! `tests/tests/stores.rs` asserts every one of these against the real
//! servers, so a store upgrade that changes one fails there first.

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
