//! Reads one upstream listing page (ListObjectsV2 / ListObjects /
//! ListMultipartUploads / ListObjectVersions XML) into sorted entries.

use quick_xml::Reader;
use quick_xml::escape::unescape;
use quick_xml::events::Event;

use super::entry::Entry;
use crate::s3error::{Code, S3Error};
use ferry_s3::percent::form_decode;

#[derive(Debug, Default)]
pub(crate) struct Page {
    /// Keys or uploads and CommonPrefixes, interleaved in listing order.
    pub entries: Vec<Entry>,
    pub truncated: bool,
    pub next_token: Option<String>,
    /// NextMarker (v1) or NextKeyMarker (uploads), decoded.
    pub next_marker: Option<Vec<u8>>,
    pub next_upload_id: Option<String>,
}

/// The one kind of version listing the proxy merges is an unversioned
/// bucket's, where every version is `null`: the two stores' version
/// histories cannot be merged into one.
fn versioned() -> S3Error {
    S3Error::new(
        Code::NotImplemented,
        "ListObjectVersions of a bucket under migration is answered only while neither store keeps versions (every VersionId null): the two stores' version histories cannot be merged into one",
    )
}

fn bad() -> S3Error {
    S3Error::new(Code::InternalError, "an upstream listing could not be read")
}

/// Entries before their names are decoded: `EncodingType` may come after
/// them in the document.
enum Raw {
    Object(String, String),
    Upload(String, String, String),
    Version(String, String, String),
    Prefix(String),
}

/// `keep_owner` false drops `Owner` (a v2 listing without fetch-owner, from
/// an upstream that sends it anyway).
pub(crate) fn parse_page(body: &[u8], keep_owner: bool) -> Result<Page, S3Error> {
    let text = std::str::from_utf8(body).map_err(|_| bad())?;
    let mut r = Reader::from_str(text);
    r.config_mut().trim_text(true);
    let mut raws = Vec::new();
    let mut page = Page::default();
    let mut encoded = false;
    let mut next_marker = None;
    let mut depth = 0usize;
    loop {
        match r.read_event().map_err(|_| bad())? {
            Event::Start(_) if depth == 0 => depth = 1,
            Event::Start(e) => {
                let name = e.name();
                match name.as_ref() {
                    b"Contents" => raws.push(read_item(&mut r, text, b"Contents", keep_owner)?),
                    b"Upload" => raws.push(read_item(&mut r, text, b"Upload", true)?),
                    b"Version" => raws.push(read_item(&mut r, text, b"Version", true)?),
                    // Only an unversioned bucket's listing is merged: a
                    // delete marker means the store keeps versions.
                    b"DeleteMarker" => return Err(versioned()),
                    b"CommonPrefixes" => {
                        let mut p = None;
                        loop {
                            match r.read_event().map_err(|_| bad())? {
                                Event::Start(c) if c.name().as_ref() == b"Prefix" => {
                                    p = Some(read_text(&mut r, b"Prefix")?)
                                }
                                Event::Start(c) => {
                                    r.read_to_end(c.name()).map_err(|_| bad())?;
                                }
                                Event::End(_) => break,
                                Event::Eof => return Err(bad()),
                                _ => {}
                            }
                        }
                        raws.push(Raw::Prefix(p.unwrap_or_default()));
                    }
                    b"IsTruncated" => page.truncated = read_text(&mut r, b"IsTruncated")? == "true",
                    b"NextContinuationToken" => {
                        page.next_token = Some(read_text(&mut r, b"NextContinuationToken")?)
                    }
                    b"NextMarker" => next_marker = Some(read_text(&mut r, b"NextMarker")?),
                    b"NextKeyMarker" => next_marker = Some(read_text(&mut r, b"NextKeyMarker")?),
                    b"NextUploadIdMarker" => {
                        page.next_upload_id = Some(read_text(&mut r, b"NextUploadIdMarker")?)
                    }
                    b"NextVersionIdMarker" => {
                        page.next_upload_id = Some(read_text(&mut r, b"NextVersionIdMarker")?)
                    }
                    b"EncodingType" => encoded = read_text(&mut r, b"EncodingType")? == "url",
                    _ => {
                        let end = e.to_end().into_owned();
                        r.read_to_end(end.name()).map_err(|_| bad())?;
                    }
                }
            }
            Event::End(_) => depth = 0,
            Event::Eof => break,
            _ => {}
        }
    }
    let name = |s: String| -> Result<Vec<u8>, S3Error> {
        if encoded {
            form_decode(&s).ok_or_else(bad)
        } else {
            Ok(s.into_bytes())
        }
    };
    page.next_marker = next_marker
        .filter(|m| !m.is_empty())
        .map(name)
        .transpose()?;
    page.next_upload_id = page.next_upload_id.filter(|u| !u.is_empty());
    page.entries = raws
        .into_iter()
        .map(|raw| {
            Ok(match raw {
                Raw::Object(k, rest) => Entry::Object {
                    key: name(k)?,
                    rest,
                },
                Raw::Upload(k, upload_id, rest) => Entry::Upload {
                    key: name(k)?,
                    upload_id,
                    rest,
                },
                Raw::Version(k, version_id, rest) => Entry::Version {
                    key: name(k)?,
                    version_id,
                    rest,
                },
                Raw::Prefix(p) => Entry::Prefix(name(p)?),
            })
        })
        .collect::<Result<_, S3Error>>()?;
    // S3 writes all keys, then all prefixes; the merge wants one stream.
    // Stable, so uploads of one key keep their order when ids tie.
    page.entries.sort_by(Entry::order);
    Ok(page)
}

/// The unescaped text of a simple element whose start was just read.
fn read_text(r: &mut Reader<&[u8]>, tag: &[u8]) -> Result<String, S3Error> {
    let raw = r
        .read_text(quick_xml::name::QName(tag))
        .map_err(|_| bad())?;
    Ok(unescape(&raw).map_err(|_| bad())?.into_owned())
}

/// A `Contents` or `Upload`: its Key (and UploadId) read, every other child
/// kept as the upstream wrote it.
fn read_item(
    r: &mut Reader<&[u8]>,
    text: &str,
    tag: &[u8],
    keep_owner: bool,
) -> Result<Raw, S3Error> {
    let mut key = None;
    let mut upload_id = None;
    let mut rest = String::new();
    loop {
        let before = r.buffer_position() as usize;
        match r.read_event().map_err(|_| bad())? {
            Event::Start(c) => match c.name().as_ref() {
                b"Key" => key = Some(read_text(r, b"Key")?),
                b"UploadId" | b"VersionId" => {
                    let tag = c.name().as_ref().to_vec();
                    upload_id = Some(read_text(r, &tag)?)
                }
                n => {
                    let keep = keep_owner || n != b"Owner";
                    let end = c.to_end().into_owned();
                    r.read_to_end(end.name()).map_err(|_| bad())?;
                    if keep {
                        let after = r.buffer_position() as usize;
                        rest.push_str(text.get(before..after).ok_or_else(bad)?.trim());
                    }
                }
            },
            Event::Empty(c) if keep_owner || c.name().as_ref() != b"Owner" => {
                let after = r.buffer_position() as usize;
                rest.push_str(text.get(before..after).ok_or_else(bad)?.trim());
            }
            Event::End(e) if e.name().as_ref() == tag => break,
            Event::Eof => return Err(bad()),
            _ => {}
        }
    }
    let key = key.ok_or_else(bad)?;
    Ok(match upload_id {
        Some(u) if tag == b"Upload" => Raw::Upload(key, u, rest),
        Some(v) if tag == b"Version" && v == "null" => Raw::Version(key, v, rest),
        Some(_) if tag == b"Version" => return Err(versioned()),
        _ if tag == b"Upload" || tag == b"Version" => return Err(bad()),
        _ => Raw::Object(key, rest),
    })
}
