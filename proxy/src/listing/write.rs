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

fn el(out: &mut String, tag: &str, value: &str) {
    out.push('<');
    out.push_str(tag);
    out.push('>');
    push_xml_text(out, value.as_bytes());
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

fn key_el(out: &mut String, tag: &str, value: &[u8], encode: bool) {
    out.push('<');
    out.push_str(tag);
    out.push('>');
    push_key(out, value, encode);
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

fn entries(out: &mut String, list: &[Entry], encode: bool) {
    for e in list {
        match e {
            Entry::Object { key, rest } => {
                out.push_str("<Contents>");
                key_el(out, "Key", key, encode);
                out.push_str(rest);
                out.push_str("</Contents>");
            }
            Entry::Upload {
                key,
                upload_id,
                rest,
            } => {
                out.push_str("<Upload>");
                key_el(out, "Key", key, encode);
                el(out, "UploadId", upload_id);
                out.push_str(rest);
                out.push_str("</Upload>");
            }
            Entry::Version {
                key,
                version_id,
                rest,
            } => {
                out.push_str("<Version>");
                key_el(out, "Key", key, encode);
                el(out, "VersionId", version_id);
                out.push_str(rest);
                out.push_str("</Version>");
            }
            Entry::Prefix(_) => {}
        }
    }
    for e in list {
        if let Entry::Prefix(p) = e {
            out.push_str("<CommonPrefixes>");
            key_el(out, "Prefix", p, encode);
            out.push_str("</CommonPrefixes>");
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

pub(crate) struct V2<'a> {
    pub echo: Echo<'a>,
    pub start_after: Option<&'a [u8]>,
    pub token: Option<&'a str>,
    pub next_token: Option<&'a str>,
}

pub(crate) fn v2(p: &V2<'_>, list: &[Entry]) -> String {
    let e = &p.echo;
    let mut out = String::with_capacity(capacity(list));
    out.push_str(HEAD);
    out.push_str("<ListBucketResult ");
    out.push_str(XMLNS);
    out.push('>');
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
    if e.encode {
        el(&mut out, "EncodingType", "url");
    }
    el(
        &mut out,
        "IsTruncated",
        if e.truncated { "true" } else { "false" },
    );
    if let Some(s) = p.start_after {
        key_el(&mut out, "StartAfter", s, e.encode);
    }
    entries(&mut out, list, e.encode);
    out.push_str("</ListBucketResult>");
    out
}

pub(crate) struct V1<'a> {
    pub echo: Echo<'a>,
    pub marker: &'a [u8],
    pub next_marker: Option<&'a [u8]>,
}

pub(crate) fn v1(p: &V1<'_>, list: &[Entry]) -> String {
    let e = &p.echo;
    let mut out = String::with_capacity(capacity(list));
    out.push_str(HEAD);
    out.push_str("<ListBucketResult ");
    out.push_str(XMLNS);
    out.push('>');
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
    if e.encode {
        el(&mut out, "EncodingType", "url");
    }
    el(
        &mut out,
        "IsTruncated",
        if e.truncated { "true" } else { "false" },
    );
    entries(&mut out, list, e.encode);
    out.push_str("</ListBucketResult>");
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

pub(crate) fn uploads(p: &Uploads<'_>, list: &[Entry]) -> String {
    let e = &p.echo;
    let mut out = String::with_capacity(capacity(list));
    out.push_str(HEAD);
    out.push_str("<ListMultipartUploadsResult ");
    out.push_str(XMLNS);
    out.push('>');
    el(&mut out, "Bucket", e.bucket);
    key_el(&mut out, "KeyMarker", p.key_marker, e.encode);
    el(&mut out, "UploadIdMarker", p.upload_id_marker);
    if let Some(k) = p.next_key_marker {
        key_el(&mut out, "NextKeyMarker", k, e.encode);
    }
    if let Some(u) = p.next_upload_id_marker {
        el(&mut out, "NextUploadIdMarker", u);
    }
    key_el(&mut out, "Prefix", e.prefix, e.encode);
    if let Some(d) = e.delimiter {
        key_el(&mut out, "Delimiter", d, e.encode);
    }
    el(&mut out, "MaxUploads", &e.max.to_string());
    finish(&mut out, e, list, "ListMultipartUploadsResult");
    out
}

/// What ends a listing by key and id marker: the encoding, IsTruncated,
/// the entries, the closing tag.
fn finish(out: &mut String, e: &Echo<'_>, list: &[Entry], root: &str) {
    if e.encode {
        el(out, "EncodingType", "url");
    }
    el(
        out,
        "IsTruncated",
        if e.truncated { "true" } else { "false" },
    );
    entries(out, list, e.encode);
    out.push_str("</");
    out.push_str(root);
    out.push('>');
}

pub(crate) fn versions(p: &Uploads<'_>, list: &[Entry]) -> String {
    let e = &p.echo;
    let mut out = String::with_capacity(capacity(list));
    out.push_str(HEAD);
    out.push_str("<ListVersionsResult ");
    out.push_str(XMLNS);
    out.push('>');
    el(&mut out, "Name", e.bucket);
    key_el(&mut out, "Prefix", e.prefix, e.encode);
    key_el(&mut out, "KeyMarker", p.key_marker, e.encode);
    el(&mut out, "VersionIdMarker", p.upload_id_marker);
    if let Some(k) = p.next_key_marker {
        key_el(&mut out, "NextKeyMarker", k, e.encode);
    }
    if let Some(v) = p.next_upload_id_marker {
        el(&mut out, "NextVersionIdMarker", v);
    }
    el(&mut out, "MaxKeys", &e.max.to_string());
    if let Some(d) = e.delimiter {
        key_el(&mut out, "Delimiter", d, e.encode);
    }
    finish(&mut out, e, list, "ListVersionsResult");
    out
}
