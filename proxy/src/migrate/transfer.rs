//! The streamed source-to-target transfer that migrate mode does itself: a
//! copy whose copy source is only on a source, a completed source upload,
//! a promoted object. The GET streams into the PUT with bounded buffers;
//! an object larger than one PUT may carry is handed across as a
//! multipart upload, part by part, never left behind.

use bytes::Bytes;

use super::Services;
use super::wire::{source_failed, source_passes};
use crate::s3error::{Code, S3Error, xml_escape};
use crate::upstream::fetch::{Body, Request, Response, Side, error_code};
use ferry_s3::percent::uri_encode;

/// The largest object one PUT may carry (S3's limit).
const MAX_PUT: u64 = 5 << 30;

/// S3's most parts in one upload.
const MAX_PARTS: u64 = 10_000;

/// Object headers that travel with a copied object.
pub(super) fn object_header(name: &str) -> bool {
    matches!(
        name,
        "content-type"
            | "content-encoding"
            | "content-disposition"
            | "content-language"
            | "cache-control"
            | "expires"
            | "x-amz-website-redirect-location"
    ) || name.starts_with("x-amz-meta-")
}

/// The condition of a transfer's write to the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutIf {
    /// Whatever is there is replaced.
    Always,
    /// `If-None-Match: *`: only if nothing is there.
    Absent,
    /// `If-Match: <etag>`: only if that object is still there.
    Still(String),
}

impl PutIf {
    fn header(&self) -> Option<(String, String)> {
        match self {
            PutIf::Always => None,
            PutIf::Absent => Some(("if-none-match".into(), "*".into())),
            PutIf::Still(etag) => Some(("if-match".into(), etag.clone())),
        }
    }
}

/// One object (or part) streamed from one side to another.
pub struct Transfer<'a> {
    pub from: &'a Side,
    /// Canonical path of what is read.
    pub from_object: &'a str,
    pub to: &'a Side,
    /// Canonical path (and query, for an upload part) of what is written.
    pub to_object: &'a str,
    /// The written object's headers; `None`: the source's object headers.
    pub headers: Option<Vec<(String, String)>>,
    /// Conditions on the read (`If-Match`, `Range`, …).
    pub read_if: Vec<(String, String)>,
    /// The write's condition; when it fails, `PreconditionFailed`.
    pub put_if: PutIf,
    /// A whole object, which may be handed across as a multipart upload
    /// when it is too large for one PUT; `false` for an upload part.
    pub whole: bool,
    /// The written object gets the source object's tags
    /// (`x-amz-tagging`), read before anything is written, so that a retry
    /// never finds a copy without them.
    pub with_tags: bool,
}

fn refused(to: &Side, what: &str, status: u16, body: &[u8]) -> S3Error {
    let code = error_code(body).unwrap_or_else(|| format!("HTTP {status}"));
    S3Error::new(
        Code::ServiceUnavailable,
        format!(
            "the {} refused the copied object's {what} ({code}); please retry",
            to.label
        ),
    )
}

fn changed() -> S3Error {
    S3Error::new(
        Code::PreconditionFailed,
        "the object on the target changed meanwhile",
    )
}

impl<'a> Transfer<'a> {
    /// An upload part (UploadPartCopy streamed across): the bytes only,
    /// read with `read_if` (the copy source's conditions and range).
    pub fn part(
        from: &'a Side,
        from_object: &'a str,
        to: &'a Side,
        to_part: &'a str,
        read_if: Vec<(String, String)>,
    ) -> Self {
        Transfer {
            from,
            from_object,
            to,
            to_object: to_part,
            headers: Some(Vec::new()),
            read_if,
            put_if: PutIf::Always,
            whole: false,
            with_tags: false,
        }
    }

    /// Runs the transfer; returns the written ETag.
    pub async fn run(self, svc: &Services) -> Result<String, S3Error> {
        let mut get = svc
            .fetcher
            .send(
                self.from,
                Request {
                    method: "GET",
                    target: self.from_object,
                    headers: self.read_if.clone(),
                    body: Body::Empty,
                },
            )
            .await?;
        if !matches!(get.status, 200 | 206) {
            let status = get.status;
            let code = get.error_code().await?;
            return Err(match status {
                404 => S3Error::new(Code::NoSuchKey, "The specified key does not exist."),
                // A copy source's `If-None-Match` / `If-Modified-Since`
                // that did not hold: S3 answers a copy with 412.
                304 | 412 => S3Error::new(
                    Code::PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold",
                ),
                s if source_passes(s) => S3Error::new(
                    Code::InvalidRequest,
                    format!("the copy source answered {code}"),
                ),
                s => source_failed(s),
            });
        }
        let len: u64 = get
            .header_str("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                crate::upstream::fetch::unavailable(self.from.label, "an object without a length")
            })?;
        let headers = self.headers.clone().unwrap_or_else(|| {
            get.header()
                .headers
                .iter()
                .filter(|(n, _)| object_header(n.as_str()))
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        crate::upstream::fetch::latin1(v.as_bytes()),
                    )
                })
                .collect()
        });
        let mut headers = headers;
        if self.with_tags
            && let Some(tags) = self.source_tags(svc).await?
        {
            headers.retain(|(n, _)| n != "x-amz-tagging");
            headers.push(("x-amz-tagging".into(), tags));
        }
        let mut rest = Remainder { get, carry: None };
        let etag = if self.whole && len > svc.max_put {
            self.multipart(svc, &mut rest, len, headers).await?
        } else {
            let mut headers = headers;
            headers.extend(self.put_if.header());
            self.put(svc, &mut rest, self.to_object, len, headers)
                .await?
        };
        svc.fetcher.release(rest.get).await;
        Ok(etag)
    }

    /// The source object's tags as an `x-amz-tagging` value; `None` when it
    /// has none, or its store has no tagging (Garage answers
    /// NotImplemented). Any other failure fails the transfer.
    async fn source_tags(&self, svc: &Services) -> Result<Option<String>, S3Error> {
        let target = format!("{}?tagging=", self.from_object);
        let (status, body) = svc.fetcher.get(self.from, &target, 1 << 20).await?;
        match (status, crate::upstream::fetch::error_class(status, &body)) {
            (200, _) => Ok(tags_header(&body)),
            (_, ferry_s3::ErrorClass::NotImplemented) => Ok(None),
            (s, _) => Err(crate::upstream::fetch::unavailable(
                self.from.label,
                format!("HTTP {s} to reading the object's tags"),
            )),
        }
    }

    /// One streamed PUT of the next `len` bytes of `rest` to `target`.
    async fn put(
        &self,
        svc: &Services,
        rest: &mut Remainder,
        target: &str,
        len: u64,
        headers: Vec<(String, String)>,
    ) -> Result<String, S3Error> {
        let mut put = svc
            .fetcher
            .start(
                self.to,
                Request {
                    method: "PUT",
                    target,
                    headers,
                    body: Body::Stream(len),
                },
            )
            .await?;
        let mut sent = 0u64;
        while sent < len {
            let b = rest.next((len - sent) as usize, self.from).await?;
            sent += b.len() as u64;
            put.write(b, false).await?;
        }
        let mut r = put.response().await?;
        let status = r.status;
        let etag = r.header_str("etag").unwrap_or_default().to_owned();
        let body = r.body(64 * 1024).await?;
        svc.fetcher.release(r).await;
        match status {
            200 => Ok(etag),
            412 if self.put_if != PutIf::Always => Err(changed()),
            s => Err(refused(self.to, "write", s, &body)),
        }
    }

    /// The object as a multipart upload of equal parts, completed under
    /// the write's condition; aborted if anything fails.
    async fn multipart(
        &self,
        svc: &Services,
        rest: &mut Remainder,
        len: u64,
        headers: Vec<(String, String)>,
    ) -> Result<String, S3Error> {
        let (status, body) = svc
            .fetcher
            .fetch(
                self.to,
                Request {
                    method: "POST",
                    target: &format!("{}?uploads=", self.to_object),
                    headers,
                    body: Body::Empty,
                },
                64 * 1024,
            )
            .await?;
        let id = match (status, xml_text(&body, "UploadId")) {
            (200, Some(id)) => id,
            (s, _) => return Err(refused(self.to, "upload", s, &body)),
        };
        let upload = format!("uploadId={}", uri_encode(id.as_bytes(), false));
        let done = self.parts_and_complete(svc, rest, len, &upload).await;
        if done.is_err() {
            // Best effort: a store drops abandoned uploads by its lifecycle
            // rules too; the client's error is the transfer's.
            let _ = svc
                .fetcher
                .fetch(
                    self.to,
                    Request {
                        method: "DELETE",
                        target: &format!("{}?{upload}", self.to_object),
                        headers: Vec::new(),
                        body: Body::Empty,
                    },
                    64 * 1024,
                )
                .await;
        }
        done
    }

    async fn parts_and_complete(
        &self,
        svc: &Services,
        rest: &mut Remainder,
        len: u64,
        upload: &str,
    ) -> Result<String, S3Error> {
        let part = part_size(len, svc.max_put);
        let mut xml = String::from("<CompleteMultipartUpload>");
        let (mut left, mut n) = (len, 1u64);
        while left > 0 {
            let this = part.min(left);
            // Canonical query order: partNumber before uploadId.
            let target = format!("{}?partNumber={n}&{upload}", self.to_object);
            let etag = self.put(svc, rest, &target, this, Vec::new()).await?;
            xml.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
                xml_escape(&etag)
            ));
            left -= this;
            n += 1;
        }
        xml.push_str("</CompleteMultipartUpload>");
        let complete = Request {
            method: "POST",
            target: &format!("{}?{upload}", self.to_object),
            headers: self.put_if.header().into_iter().collect(),
            body: Body::Full(Bytes::from(xml)),
        };
        let (status, body) = svc.fetcher.fetch(self.to, complete, 1 << 20).await?;
        let failed = String::from_utf8_lossy(&body).contains("<Error>");
        match (status, xml_text(&body, "ETag")) {
            (200, Some(etag)) if !failed => Ok(etag),
            (412, _) if self.put_if != PutIf::Always => Err(changed()),
            (s, _) => Err(refused(self.to, "completion", s, &body)),
        }
    }
}

/// A GetObjectTagging answer as an `x-amz-tagging` header value
/// (`k=v&k2=v2`, form-encoded); `None` for no tags.
fn tags_header(xml: &[u8]) -> Option<String> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_reader(xml);
    let (mut pairs, mut key, mut value, mut text) = (Vec::new(), None, None, String::new());
    loop {
        match r.read_event().ok()? {
            Event::Start(_) => text.clear(),
            Event::Text(t) => text.push_str(&t.xml10_content().ok()?),
            Event::GeneralRef(g) => match g.resolve_char_ref().ok()? {
                Some(c) => text.push(c),
                None => text.push_str(quick_xml::escape::resolve_predefined_entity(
                    &g.decode().ok()?,
                )?),
            },
            Event::End(e) => match e.local_name().as_ref() {
                b"Key" => key = Some(std::mem::take(&mut text)),
                b"Value" => value = Some(std::mem::take(&mut text)),
                b"Tag" => {
                    let k = key.take()?;
                    let v = value.take().unwrap_or_default();
                    pairs.push(format!(
                        "{}={}",
                        uri_encode(k.as_bytes(), false),
                        uri_encode(v.as_bytes(), false)
                    ));
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    (!pairs.is_empty()).then(|| pairs.join("&"))
}

/// Equal parts, as few as S3 allows and none larger than one PUT.
fn part_size(len: u64, max_put: u64) -> u64 {
    let fewest = len.div_ceil(MAX_PARTS);
    // 64 MiB parts unless the object needs larger ones; a test may lower
    // max_put below that.
    fewest.max((64 << 20).min(max_put)).max(5 << 20)
}

/// The unescaped text of the first `<tag>` of a small XML answer.
fn xml_text(body: &[u8], tag: &str) -> Option<String> {
    let s = std::str::from_utf8(body).ok()?;
    let open = format!("<{tag}>");
    let start = s.find(&open)? + open.len();
    let end = s[start..].find(&format!("</{tag}>"))? + start;
    quick_xml::escape::unescape(&s[start..end])
        .ok()
        .map(|t| t.into_owned())
}

/// What is left of the GET's body: chunks as they come, split at part
/// boundaries.
struct Remainder {
    get: Response,
    carry: Option<Bytes>,
}

impl Remainder {
    /// At most `max` bytes of what comes next; a body that ends early is
    /// the source's failure.
    async fn next(&mut self, max: usize, from: &Side) -> Result<Bytes, S3Error> {
        let mut b = match self.carry.take() {
            Some(b) => b,
            None => self.get.chunk().await?.ok_or_else(|| {
                crate::upstream::fetch::unavailable(from.label, "the object was cut short")
            })?,
        };
        if b.len() > max {
            self.carry = Some(b.split_off(max));
        }
        Ok(b)
    }
}

/// The largest PUT, unless a test lowers it (`FERRY_TEST_MAX_PUT_BYTES`,
/// in builds with the `test-hooks` feature only) so that the multipart
/// handover runs on small objects.
pub fn max_put() -> u64 {
    #[cfg(feature = "test-hooks")]
    if let Some(n) = std::env::var("FERRY_TEST_MAX_PUT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    MAX_PUT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_within_s3_limits() {
        let gib = 1u64 << 30;
        assert_eq!(part_size(6 * gib, MAX_PUT), 64 << 20);
        // 5 TiB: 10,000 parts at most.
        let big = 5 * 1024 * gib;
        assert!(big.div_ceil(part_size(big, MAX_PUT)) <= MAX_PARTS);
        assert!(part_size(big, MAX_PUT) <= MAX_PUT);
        // A test's low limit still gives parts S3 takes (5 MiB at least).
        assert_eq!(part_size(11 << 20, 6 << 20), 6 << 20);
        assert_eq!(part_size(11 << 20, 1 << 20), 5 << 20);
        assert_eq!(
            xml_text(b"<R><UploadId>a&amp;b</UploadId></R>", "UploadId").as_deref(),
            Some("a&b")
        );
    }

    #[test]
    fn tags_become_a_tagging_header() {
        let xml = br#"<Tagging><TagSet><Tag><Key>team</Key><Value>blue sky</Value></Tag><Tag><Key>a&amp;b</Key><Value></Value></Tag></TagSet></Tagging>"#;
        assert_eq!(tags_header(xml).as_deref(), Some("team=blue%20sky&a%26b="));
        assert_eq!(tags_header(b"<Tagging><TagSet/></Tagging>"), None);
    }
}
