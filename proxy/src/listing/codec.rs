//! Text forms of key bytes in a listing: XML text, or S3's
//! `encoding-type=url` (`ferry_s3::percent`). Keys are compared as raw
//! bytes, so every key leaves the proxy through [`push_key`].

use ferry_s3::percent::url_encode;

use crate::s3error::push_xml_text;

/// A key-like value as the client asked for it: url-encoded or raw.
pub(crate) fn push_key(out: &mut String, bytes: &[u8], encode: bool) {
    if encode {
        // Url encoding leaves only characters that need no XML escape.
        out.push_str(&url_encode(bytes));
    } else {
        push_xml_text(out, bytes);
    }
}
