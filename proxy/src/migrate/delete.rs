//! Deletes in migrate mode. Each key is journalled first (so that a copier
//! that read it before the delete cannot bring it back), then deleted on
//! the source, then on the target. A key is reported deleted only when it
//! is gone from both.

use bytes::Bytes;
use futures::StreamExt;
use pingora::proxy::Session;
use quick_xml::events::Event;

use super::wire::{read_body, reply, reply_xml};
use super::{Call, Services, journal};
use crate::fetch::{Body, Request, Side, error_code};
use crate::resign::canonical_target;
use crate::s3error::{Code, S3Error, xml_escape};
use crate::sigv4::canonical::uri_encode;

/// S3's limit on one DeleteObjects request.
const MAX_KEYS: usize = 1000;
/// Keys deleted at once within one DeleteObjects.
const CONCURRENCY: usize = 16;

pub async fn one(svc: &Services, session: &mut Session, call: &Call) -> Result<(), S3Error> {
    let key = call.key.as_deref().unwrap_or_default();
    delete_key(svc, call, key).await?;
    reply(session, 204, &[], Bytes::new()).await
}

/// Journals `key`, then deletes it on the source and the target.
async fn delete_key(svc: &Services, call: &Call, key: &str) -> Result<(), S3Error> {
    journal(svc)?
        .record(&svc.fetcher, &call.bucket, key)
        .await?;
    delete_on(svc, &call.source, key).await?;
    delete_on(svc, &call.target, key).await
}

async fn delete_on(svc: &Services, side: &Side, key: &str) -> Result<(), S3Error> {
    let target = canonical_target(
        &format!(
            "/{}/{}",
            uri_encode(side.bucket.as_bytes(), false),
            uri_encode(key.as_bytes(), true)
        ),
        "",
    )?;
    let mut r = svc
        .fetcher
        .send(
            side,
            Request {
                method: "DELETE",
                target: &target,
                headers: Vec::new(),
                body: Body::Empty,
            },
        )
        .await?;
    let status = r.status;
    let body = r.body(64 * 1024).await?;
    svc.fetcher.release(r).await;
    match status {
        // Gone, or never there: either way not on this side.
        200..=299 | 404 => Ok(()),
        _ => {
            let code = error_code(&body).unwrap_or_else(|| format!("HTTP {status}"));
            Err(S3Error::new(
                Code::ServiceUnavailable,
                format!(
                    "the {} refused the delete ({code}); the key may still be there, please retry",
                    side.label
                ),
            ))
        }
    }
}

/// DeleteObjects: per-key results, in the order asked.
pub async fn many(svc: &Services, session: &mut Session, mut call: Call) -> Result<(), S3Error> {
    journal(svc)?;
    let body = read_body(session, &mut call, 2 << 20).await?;
    let (keys, quiet) = parse_delete(&body)?;
    let call = &call;
    let results: Vec<(String, Result<(), S3Error>)> = futures::stream::iter(keys)
        .map(|k| async move {
            let r = delete_key(svc, call, &k).await;
            (k, r)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    for (k, r) in results {
        match r {
            Ok(()) if quiet => {}
            Ok(()) => xml.push_str(&format!("<Deleted><Key>{}</Key></Deleted>", xml_escape(&k))),
            Err(e) => xml.push_str(&format!(
                "<Error><Key>{}</Key><Code>{}</Code><Message>{}</Message></Error>",
                xml_escape(&k),
                e.code.as_str(),
                xml_escape(&e.message)
            )),
        }
    }
    xml.push_str("</DeleteResult>");
    reply_xml(session, 200, xml).await
}

fn malformed(why: impl std::fmt::Display) -> S3Error {
    S3Error::new(
        Code::MalformedXML,
        format!(
            "The XML you provided was not well-formed or did not validate against our published schema: {why}"
        ),
    )
}

/// The keys and the `Quiet` flag of a `<Delete>` body.
fn parse_delete(body: &[u8]) -> Result<(Vec<String>, bool), S3Error> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut keys = Vec::new();
    let mut quiet = false;
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    loop {
        match reader.read_event().map_err(malformed)? {
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_vec());
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.xml10_content().map_err(malformed)?),
            Event::CData(t) => text.push_str(&t.decode().map_err(malformed)?),
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(malformed)?;
                match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) => text.push(c),
                    None => text.push_str(
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| malformed(format!("unknown entity &{name};")))?,
                    ),
                }
            }
            Event::End(_) => {
                let at: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
                match at.as_slice() {
                    [b"Delete", b"Object", b"Key"] => keys.push(std::mem::take(&mut text)),
                    [b"Delete", b"Object", b"VersionId"] => {
                        return Err(S3Error::new(
                            Code::NotImplemented,
                            "deleting object versions is not supported while a bucket is under migration",
                        ));
                    }
                    [b"Delete", b"Quiet"] => quiet = text.trim() == "true",
                    _ => {}
                }
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(malformed(format!(
            "a delete names 1 to {MAX_KEYS} keys, not {}",
            keys.len()
        )));
    }
    Ok((keys, quiet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_bodies_parse_with_odd_keys() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a &amp; b</Key></Object><Object><Key>x&#x1;y&lt;</Key></Object><Quiet>true</Quiet></Delete>"#;
        let (keys, quiet) = parse_delete(body).unwrap();
        assert_eq!(keys, ["a & b", "x\u{1}y<"]);
        assert!(quiet);
        assert!(parse_delete(b"<Delete></Delete>").is_err());
        let v = b"<Delete><Object><Key>a</Key><VersionId>1</VersionId></Object></Delete>";
        assert_eq!(parse_delete(v).unwrap_err().code, Code::NotImplemented);
    }
}
