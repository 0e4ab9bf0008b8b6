//! Deletes in migrate mode. Each key is journalled first (so that a copier
//! that read it before the delete cannot bring it back), then deleted on
//! the source, then on the target. A key is reported deleted only when it
//! is gone from both.

use bytes::Bytes;
use futures::StreamExt;
use pingora::proxy::Session;
use quick_xml::events::Event;

use super::merged::{Conditions, Key, judge_current};
use super::wire::{read_body, reply, reply_xml};
use super::{Call, Services, journal};
use crate::s3error::{Code, S3Error, xml_escape};
use crate::upstream::fetch::{Body, Request, Side, error_code};
use ferry_s3::percent::query_value;

/// S3's limit on one DeleteObjects request.
const MAX_KEYS: usize = 1000;
/// Keys deleted at once within one DeleteObjects.
const CONCURRENCY: usize = 16;

pub async fn one(svc: &Services, session: &mut Session, call: &Call) -> Result<(), S3Error> {
    let key = call.key.as_deref().unwrap_or_default();
    current_only(query_value(&call.raw_query, "versionId").as_deref())?;
    // A conditional delete is judged on the object clients see, and the
    // target's delete carries that object's ETag: a write landing on the
    // target meanwhile stays (412), whichever side held the object.
    let mut target_if = None;
    let conditions = Conditions::of(&call.headers);
    if conditions.if_match.is_some() {
        let k = Key {
            target_object: call.target.object(key)?,
            source_object: call.source.object(key)?,
            target: call.target.clone(),
            source: call.source.clone(),
        };
        target_if = judge_current(svc, &k, &conditions).await?;
    }
    delete_key(svc, call, key, target_if.as_deref()).await?;
    reply(session, 204, &[], Bytes::new()).await
}

/// A delete of the current object: no version id, or `null`, which tools
/// that empty a bucket send for every key of an unversioned one. Any
/// other version id names a version of one store's history, which the
/// other store does not share: refused, never applied to the current
/// object.
fn current_only(version_id: Option<&str>) -> Result<(), S3Error> {
    match version_id {
        None | Some("" | "null") => Ok(()),
        Some(_) => Err(S3Error::new(
            Code::NotImplemented,
            "deleting a specific object version is not supported while a bucket is under migration: the two stores' version ids are unrelated; delete the current object (no version id, or versionId=null)",
        )),
    }
}

/// Journals `key`, then deletes it on the source and the target, then
/// journals it again.
///
/// The second entry is for a client write of the key that raced the delete:
/// the write clears the entry once it has landed, and if it landed on the
/// target before the target step here, the delete removed it and ended
/// last, so the key is deleted and needs its entry back; without it, a
/// copier that read the key before the delete could bring it back unseen.
/// (A write that lands after the target step clears the second entry, as
/// it should; one that clears it while this delete is between its steps is
/// covered by the second entry.)
///
/// `target_if`: the target's delete carries `If-Match` (a conditional
/// delete whose object is the target's).
async fn delete_key(
    svc: &Services,
    call: &Call,
    key: &str,
    target_if: Option<&str>,
) -> Result<(), S3Error> {
    let journal = journal(svc)?;
    journal.record(&svc.fetcher, &call.bucket, key).await?;
    delete_on(svc, &call.source, key, None).await?;
    super::test_pause("delete", key).await;
    delete_on(svc, &call.target, key, target_if).await?;
    journal.record(&svc.fetcher, &call.bucket, key).await
}

async fn delete_on(
    svc: &Services,
    side: &Side,
    key: &str,
    if_match: Option<&str>,
) -> Result<(), S3Error> {
    let target = side.object(key)?;
    let (status, body) = svc
        .fetcher
        .fetch(
            side,
            Request {
                method: "DELETE",
                target: &target,
                headers: if_match
                    .map(|e| vec![("if-match".to_owned(), e.to_owned())])
                    .unwrap_or_default(),
                body: Body::Empty,
            },
            64 * 1024,
        )
        .await?;
    match status {
        // Gone, or never there: either way not on this side.
        200..=299 | 404 => Ok(()),
        // A conditional delete found a newer write: it stays.
        412 if if_match.is_some() => Err(S3Error::new(
            Code::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        )),
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
    let (objects, quiet) = parse_delete(&body)?;
    let call = &call;
    let results: Vec<(Object, Result<(), S3Error>)> = futures::stream::iter(objects)
        .map(|o| async move {
            let r = match current_only(o.version_id.as_deref()) {
                Ok(()) => delete_key(svc, call, &o.key, None).await,
                Err(e) => Err(e),
            };
            (o, r)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    for (o, r) in results {
        let version = o
            .version_id
            .as_deref()
            .map(|v| format!("<VersionId>{}</VersionId>", xml_escape(v)))
            .unwrap_or_default();
        match r {
            Ok(()) if quiet => {}
            Ok(()) => xml.push_str(&format!(
                "<Deleted><Key>{}</Key>{version}</Deleted>",
                xml_escape(&o.key)
            )),
            Err(e) => xml.push_str(&format!(
                "<Error><Key>{}</Key>{version}<Code>{}</Code><Message>{}</Message></Error>",
                xml_escape(&o.key),
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

/// One `<Object>` of a `<Delete>` body.
#[derive(Debug, Default, PartialEq, Eq)]
struct Object {
    key: String,
    version_id: Option<String>,
}

/// The objects and the `Quiet` flag of a `<Delete>` body. An object with
/// an empty or missing key fails the whole request: nothing is deleted.
fn parse_delete(body: &[u8]) -> Result<(Vec<Object>, bool), S3Error> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut keys: Vec<Object> = Vec::new();
    let mut quiet = false;
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    loop {
        match reader.read_event().map_err(malformed)? {
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_vec());
                if path.len() == 2 && path[1] == b"Object" {
                    keys.push(Object::default());
                }
                text.clear();
            }
            // `<Object/>`: an object with no key.
            Event::Empty(e) if path.len() == 1 && e.local_name().as_ref() == b"Object" => {
                keys.push(Object::default());
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
                    [b"Delete", b"Object", b"Key"] => {
                        if let Some(o) = keys.last_mut() {
                            o.key = std::mem::take(&mut text);
                        }
                    }
                    [b"Delete", b"Object", b"VersionId"] => {
                        if let Some(o) = keys.last_mut() {
                            o.version_id = Some(std::mem::take(&mut text));
                        }
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
    if keys.iter().any(|o| o.key.is_empty()) {
        return Err(S3Error::new(
            Code::UserKeyMustBeSpecified,
            "The request was missing a required key: an object of the delete has an empty key",
        ));
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
        let (objects, quiet) = parse_delete(body).unwrap();
        let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a & b", "x\u{1}y<"]);
        assert!(quiet);
        assert!(parse_delete(b"<Delete></Delete>").is_err());
        let v = b"<Delete><Object><Key>a</Key><VersionId>null</VersionId></Object></Delete>";
        assert_eq!(
            parse_delete(v).unwrap().0[0].version_id.as_deref(),
            Some("null")
        );
        for empty in [
            &b"<Delete><Object><Key></Key></Object></Delete>"[..],
            b"<Delete><Object><Key/></Object></Delete>",
            b"<Delete><Object><VersionId>null</VersionId></Object></Delete>",
            b"<Delete><Object/></Delete>",
        ] {
            assert_eq!(
                parse_delete(empty).unwrap_err().code,
                Code::UserKeyMustBeSpecified,
                "{}",
                String::from_utf8_lossy(empty)
            );
        }
    }
}
