//! Writes the merged page as S3 does: the same elements in the same order,
//! all keys (or uploads) before all CommonPrefixes.

use super::codec::push_key;
use super::entry::Entry;
use crate::s3error::push_xml_text;

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
const XMLNS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";

/// What every listing response echoes of its request.
pub(crate) struct Echo<'a> {
    pub bucket: &'a str,
    pub prefix: &'a [u8],
    pub delimiter: Option<&'a [u8]>,
    pub max: usize,
    pub encode: bool,
    pub truncated: bool,
}

/// `<tag>`, what `inner` writes, `</tag>`.
fn tagged(out: &mut String, tag: &str, inner: impl FnOnce(&mut String)) {
    out.push('<');
    out.push_str(tag);
    out.push('>');
    inner(out);
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

fn el(out: &mut String, tag: &str, value: &str) {
    tagged(out, tag, |out| push_xml_text(out, value.as_bytes()));
}

fn key_el(out: &mut String, tag: &str, value: &[u8], encode: bool) {
    tagged(out, tag, |out| push_key(out, value, encode));
}

/// Every entry as `<Tag><Key/>[<Id/>]...</Tag>`, then the common prefixes.
fn entries(out: &mut String, list: &[Entry], encode: bool) {
    for e in list {
        let (tag, key, id, rest) = match e {
            Entry::Object { key, rest } => ("Contents", key, None, rest),
            Entry::Upload {
                key,
                upload_id,
                rest,
            } => ("Upload", key, Some(("UploadId", upload_id)), rest),
            Entry::Version {
                key,
                version_id,
                rest,
            } => ("Version", key, Some(("VersionId", version_id)), rest),
            Entry::Prefix(_) => continue,
        };
        tagged(out, tag, |out| {
            key_el(out, "Key", key, encode);
            if let Some((id_tag, id)) = id {
                el(out, id_tag, id);
            }
            out.push_str(rest);
        });
    }
    for e in list {
        if let Entry::Prefix(p) = e {
            tagged(out, "CommonPrefixes", |out| {
                key_el(out, "Prefix", p, encode)
            });
        }
    }
}

fn capacity(list: &[Entry]) -> usize {
    512 + list
        .iter()
        .map(|e| match e {
            Entry::Object { key, rest }
            | Entry::Upload { key, rest, .. }
            | Entry::Version { key, rest, .. } => 64 + key.len() * 3 + rest.len(),
            Entry::Prefix(p) => 48 + p.len() * 3,
        })
        .sum::<usize>()
}

/// The XML declaration and the root element's opening tag, in a string
/// sized for `list`.
fn open(root: &str, list: &[Entry]) -> String {
    let mut out = String::with_capacity(capacity(list));
    out.push_str(HEAD);
    out.push('<');
    out.push_str(root);
    out.push(' ');
    out.push_str(XMLNS);
    out.push('>');
    out
}

/// EncodingType (when the keys are encoded) and IsTruncated, which every
/// listing writes together, in this order.
fn truncation(out: &mut String, e: &Echo<'_>) {
    if e.encode {
        el(out, "EncodingType", "url");
    }
    el(
        out,
        "IsTruncated",
        if e.truncated { "true" } else { "false" },
    );
}

/// What ends every listing: the entries, the closing tag.
fn close(out: &mut String, e: &Echo<'_>, list: &[Entry], root: &str) {
    entries(out, list, e.encode);
    out.push_str("</");
    out.push_str(root);
    out.push('>');
}

pub(crate) struct V2<'a> {
    pub echo: Echo<'a>,
    pub start_after: Option<&'a [u8]>,
    pub token: Option<&'a str>,
    pub next_token: Option<&'a str>,
}

pub(crate) fn v2(p: &V2<'_>, list: &[Entry]) -> String {
    let e = &p.echo;
    let mut out = open("ListBucketResult", list);
    el(&mut out, "Name", e.bucket);
    key_el(&mut out, "Prefix", e.prefix, e.encode);
    if let Some(t) = p.token {
        el(&mut out, "ContinuationToken", t);
    }
    if let Some(t) = p.next_token {
        el(&mut out, "NextContinuationToken", t);
    }
    el(&mut out, "KeyCount", &list.len().to_string());
    el(&mut out, "MaxKeys", &e.max.to_string());
    if let Some(d) = e.delimiter {
        key_el(&mut out, "Delimiter", d, e.encode);
    }
    truncation(&mut out, e);
    if let Some(s) = p.start_after {
        key_el(&mut out, "StartAfter", s, e.encode);
    }
    close(&mut out, e, list, "ListBucketResult");
    out
}

pub(crate) struct V1<'a> {
    pub echo: Echo<'a>,
    pub marker: &'a [u8],
    pub next_marker: Option<&'a [u8]>,
}

pub(crate) fn v1(p: &V1<'_>, list: &[Entry]) -> String {
    let e = &p.echo;
    let mut out = open("ListBucketResult", list);
    el(&mut out, "Name", e.bucket);
    key_el(&mut out, "Prefix", e.prefix, e.encode);
    key_el(&mut out, "Marker", p.marker, e.encode);
    if let Some(m) = p.next_marker {
        key_el(&mut out, "NextMarker", m, e.encode);
    }
    el(&mut out, "MaxKeys", &e.max.to_string());
    if let Some(d) = e.delimiter {
        key_el(&mut out, "Delimiter", d, e.encode);
    }
    truncation(&mut out, e);
    close(&mut out, e, list, "ListBucketResult");
    out
}

/// A listing by key and id marker: ListMultipartUploads (upload ids) and
/// ListObjectVersions (version ids).
pub(crate) struct Uploads<'a> {
    pub echo: Echo<'a>,
    pub key_marker: &'a [u8],
    pub upload_id_marker: &'a str,
    pub next_key_marker: Option<&'a [u8]>,
    pub next_upload_id_marker: Option<&'a str>,
}

impl Uploads<'_> {
    /// The markers, echoed and next, in the order both listings write them;
    /// the id's are named by the listing (`UploadIdMarker`,
    /// `VersionIdMarker` and their `Next...`).
    fn markers(&self, out: &mut String, id_marker: &str, next_id_marker: &str) {
        let encode = self.echo.encode;
        key_el(out, "KeyMarker", self.key_marker, encode);
        el(out, id_marker, self.upload_id_marker);
        if let Some(k) = self.next_key_marker {
            key_el(out, "NextKeyMarker", k, encode);
        }
        if let Some(u) = self.next_upload_id_marker {
            el(out, next_id_marker, u);
        }
    }
}

pub(crate) fn uploads(p: &Uploads<'_>, list: &[Entry]) -> String {
    let e = &p.echo;
    let mut out = open("ListMultipartUploadsResult", list);
    el(&mut out, "Bucket", e.bucket);
    p.markers(&mut out, "UploadIdMarker", "NextUploadIdMarker");
    key_el(&mut out, "Prefix", e.prefix, e.encode);
    if let Some(d) = e.delimiter {
        key_el(&mut out, "Delimiter", d, e.encode);
    }
    el(&mut out, "MaxUploads", &e.max.to_string());
    truncation(&mut out, e);
    close(&mut out, e, list, "ListMultipartUploadsResult");
    out
}

pub(crate) fn versions(p: &Uploads<'_>, list: &[Entry]) -> String {
    let e = &p.echo;
    let mut out = open("ListVersionsResult", list);
    el(&mut out, "Name", e.bucket);
    key_el(&mut out, "Prefix", e.prefix, e.encode);
    p.markers(&mut out, "VersionIdMarker", "NextVersionIdMarker");
    el(&mut out, "MaxKeys", &e.max.to_string());
    if let Some(d) = e.delimiter {
        key_el(&mut out, "Delimiter", d, e.encode);
    }
    truncation(&mut out, e);
    close(&mut out, e, list, "ListVersionsResult");
    out
}
